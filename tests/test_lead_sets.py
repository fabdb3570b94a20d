"""The 2021 Challenge's reduced-lead models: ``train_model.py --task 2021 --leads 12,6,2``
trains one model per lead set; ``run_model.py`` serves each record with the largest set it
has, says which, and names a record with fewer leads than any set."""

from __future__ import annotations

import json

import numpy as np
import pytest

import run_model
import train_model
from team_code import harness
from team_code.data.leads import parse_lead_sets, reduce_record
from team_code.data.outputs import read_output
from team_code.data.records import RecordSet, find_records

N_RECORDS = 12

QUICK = [
    "--set", "hybrid.members=rules,parallel_cnn", "--set", "hybrid.n_folds=2",
    "--set", "hybrid.fold_groups=signal",
    "--set", "rules.tune=false", "--set", "rules.decision=half",
    "--set", "rules.decision_policy=thresholds",
    "--set", "parallel_cnn.fs_hz=100", "--set", "parallel_cnn.length=200",
    "--set", "parallel_cnn.filters=4", "--set", "parallel_cnn.n_blocks=3",
    "--set", "parallel_cnn.epochs=1", "--set", "parallel_cnn.val_fraction=0.25",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory, records_dir):
    """A 2021 model for 12, 6 and 2 leads, and 12-, 6-, 2- and 1-lead copies of records."""
    root = tmp_path_factory.mktemp("lead_sets")
    headers = find_records(records_dir)[:: len(find_records(records_dir)) // N_RECORDS]
    headers = headers[:N_RECORDS]
    data = {}
    for name, leads in {
        "12": None,
        "6": ("I", "II", "III", "aVR", "aVL", "aVF"),
        "2": ("I", "II"),
        "1": ("II",),
    }.items():
        folder = root / f"data{name}"
        for header in headers:
            if leads is None:
                folder.mkdir(exist_ok=True)
                for path in header.parent.glob(header.stem + ".*"):
                    (folder / path.name).symlink_to(path)
            else:
                reduce_record(header, folder, leads)
        data[name] = folder
    model = root / "model"
    status = train_model.main(
        [str(data["12"]), str(model), "--task", "2021", "--leads", "12,6,2", "--threads", "1",
         "--no-progress", *QUICK]
    )  # fmt: skip
    assert status == 0
    return model, data


def test_one_model_per_lead_set_in_one_folder(trained):
    model, _ = trained
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["task"] == {"table": "2021"}
    assert {k: v["folder"] for k, v in manifest["lead_sets"].items()} == {
        "12": "leads-12",
        "6": "leads-6",
        "2": "leads-2",
    }
    for name, n_leads in (("12", 12), ("6", 6), ("2", 2)):
        sub = json.loads((model / f"leads-{name}" / "manifest.json").read_text())
        assert len(sub["task"]["leads"]) == n_leads and sub["task"]["table"] == "2021"
        assert len(sub["classes"]) == 26 and "733534002" in sub["classes"]
        cnn = harness.load_model(model / f"leads-{name}", "hybrid.parallel_cnn")
        assert cnn.network_.stem[0].in_channels == n_leads  # one input channel per lead


@pytest.mark.parametrize("copy", ["12", "6", "2"])
def test_each_copy_is_served_by_its_own_lead_set(trained, tmp_path, copy):
    model, data = trained
    result = harness.run(model, data[copy], tmp_path / "out", progress=False, log=lambda m: None)
    assert not result.failures and len(result.written) == N_RECORDS
    assert set(result.lead_sets.values()) == {copy}  # the largest set each record has
    # The outputs are those of that lead set's model, alone.
    alone = harness.run(
        model / f"leads-{copy}", data[copy], tmp_path / "alone", progress=False, log=lambda m: None
    )
    assert len(alone.written) == N_RECORDS
    for name in result.written:
        got = read_output(tmp_path / "out" / f"{name}.csv")
        expected = read_output(tmp_path / "alone" / f"{name}.csv")
        assert got.classes == expected.classes and len(got.classes) == 26
        np.testing.assert_array_equal(got.labels, expected.labels)
        np.testing.assert_allclose(got.scores, expected.scores)


def _copy(header, folder, prefix: str = "") -> None:
    """Copy a record into ``folder``, its name prefixed (header lines and signal file)."""
    folder.mkdir(exist_ok=True)
    for path in header.parent.glob(header.stem + ".*"):
        content = path.read_bytes()
        if path.suffix == ".hea" and prefix:
            content = content.replace(header.stem.encode(), (prefix + header.stem).encode())
        (folder / (prefix + path.name)).write_bytes(content)


def test_a_record_with_fewer_leads_than_any_set_fails_on_its_own(trained, tmp_path, capsys):
    model, data = trained
    mixed = tmp_path / "mixed"
    for header in find_records(data["2"]):
        _copy(header, mixed)
    for header in find_records(data["1"])[:2]:
        _copy(header, mixed, "ONE")
    status = run_model.main([str(model), str(mixed), str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 1  # some records failed
    one = sorted(p.stem for p in mixed.glob("ONE*.hea"))
    assert len(one) == 2
    for name in one:
        assert f"error: record {name}: has leads II: fewer than any trained lead set" in err
        assert (tmp_path / "out" / f"{name}.csv").is_file()  # all-negative, scoreable
    assert f"{N_RECORDS} records by the 2-lead model" in err


def test_the_report_says_which_model_served_each_record(trained, tmp_path):
    model, data = trained
    both = tmp_path / "both"
    for folder, prefix in ((data["12"], ""), (data["2"], "TWO")):
        for header in find_records(folder)[:2]:
            _copy(header, both, prefix)
    result = harness.run(model, both, tmp_path / "out", progress=False, log=lambda m: None)
    assert sorted(set(result.lead_sets.values())) == ["12", "2"]
    index = harness.report(model, both, tmp_path / "out", tmp_path / "report", log=None)
    text = index.read_text()
    assert "2 records served by the 12-lead model" in text
    assert "2 records served by the 2-lead model" in text
    served_by_two = json.loads((tmp_path / "report" / "leads-2" / "report.json").read_text())
    assert sorted(r["record"] for r in served_by_two["records"]) == sorted(
        n for n in RecordSet.from_folder(both).names if n.startswith("TWO")
    )


def test_lead_sets_on_the_command_line():
    six = ("I", "II", "III", "aVR", "aVL", "aVF")
    assert parse_lead_sets("12,6,2")[1:] == [six, ("I", "II")]
    assert parse_lead_sets("I,II,V2") == [("I", "II", "V2")]  # one set by names
    assert parse_lead_sets("12;I,II,V2")[1] == ("I", "II", "V2")
    with pytest.raises(ValueError, match="twice"):
        parse_lead_sets("I,I")


@pytest.mark.parametrize("text", ["12,6,12", "2,2", "12;I,II;II,I", "I,II,III,aVR,aVL,aVF;6"])
def test_a_lead_set_given_twice_on_the_command_line_is_refused(text):
    with pytest.raises(ValueError, match=r"--leads .* given twice"):
        parse_lead_sets(text)
