"""The organizers' own scripts run the kit unchanged (issue 27).

2020: their ``driver.py`` loads each ``.mat`` with ``scipy.io.loadmat(...)['val']`` as float64,
reads the ``.hea`` with ``readlines()``, calls ``run_12ECG_classifier(data, header_data,
model)`` and writes ``str()`` of each label and score itself. 2021: their ``test_model.py``
reads the header as text and the recording as ``loadmat(...)['val']`` (``helper_code``), calls
``load_model(model_directory, leads)`` once per sorted lead set found in the headers and
``run_model(model, header, recording)`` per record, writing an empty output where it raises.
The tests below repeat those call sequences (the organizers' code itself is not part of the
kit) and compare what they write with ``run_model.py``'s outputs on the same model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat

import run_model
from team_code import challenge_api, harness, presets, training
from team_code.data.leads import LEAD_SETS, reduce_record
from team_code.data.outputs import read_output
from team_code.data.records import STANDARD_LEADS, RecordError, find_records
from team_code.data.synth import generate_dataset

REPO = Path(__file__).resolve().parents[1]
N_RECORDS = 8

#: A cheap default: the rules (untuned) fused with a tiny parallel_cnn, in seconds.
QUICK = {
    "hybrid": {"members": "rules,parallel_cnn", "n_folds": "2", "fold_groups": "signal"},
    "rules": {"tune": "false", "decision": "half", "decision_policy": "thresholds"},
    "parallel_cnn": {
        "fs_hz": "100",
        "length": "200",
        "filters": "4",
        "n_blocks": "3",
        "epochs": "1",
        "val_fraction": "0.25",
    },
}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, Path]:
    """Synthetic 12-lead records, their copies with each 2021 lead set and with lead II only
    (fewer leads than any set: the 2021 model refuses them), and a folder of two records whose
    second one the reader refuses."""
    root = tmp_path_factory.mktemp("organizers")
    headers = generate_dataset(root / "12", N_RECORDS, seed=27, duration_s=6)
    folders = {"12": root / "12"}
    for name, leads in {**LEAD_SETS, "1": ("II",)}.items():
        if name != "12":
            for header in headers:
                reduce_record(header, root / name, leads)
            folders[name] = root / name
    bad = root / "bad"  # two records, the second refused by the reader (fs of 20 Hz)
    bad.mkdir()
    for header in headers[:2]:
        for path in header.parent.glob(header.stem + ".*"):
            (bad / path.name).write_bytes(path.read_bytes())
    lines = (bad / headers[1].name).read_text().split("\n")
    fields = lines[0].split(" ")
    lines[0] = " ".join([*fields[:2], "20", *fields[3:]])
    (bad / headers[1].name).write_text("\n".join(lines))
    folders["bad"] = bad
    return folders


@pytest.fixture(scope="module")
def models(records, tmp_path_factory) -> dict[str, Path]:
    """A 2020 model (twelve leads) and a 2021 model (the five lead sets), trained quickly."""
    root = tmp_path_factory.mktemp("organizers_models")
    quiet = {"log": lambda message: None, "progress": False, "preset": "cpu"}
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        harness.train(records["12"], root / "2020", ["hybrid"], QUICK, table="2020", **quiet)
        harness.train(
            records["12"],
            root / "2021",
            ["hybrid"],
            QUICK,
            table="2021",
            lead_sets=list(LEAD_SETS.values()),
            **quiet,
        )
    finally:
        torch.set_num_threads(threads)
    return {"2020": root / "2020", "2021": root / "2021"}


def _kit_outputs(model: Path, data: Path, out: Path) -> dict:
    """``run_model.py MODEL DATA OUTPUTS``'s outputs, by record name."""
    run_model.main([str(model), str(data), str(out), "--allow-failures", "--no-progress"])
    return {p.stem: read_output(p) for p in sorted(out.glob("*.csv"))}


def _write(path: Path, record: str, classes, labels, scores) -> None:
    """Write an output file the way both years' organizers' scripts do: ``str()`` of each
    value, comma-separated, under ``#record`` and the classes."""
    lines = [
        f"#{record}",
        ",".join(str(c) for c in classes),
        ",".join(str(v) for v in labels),
        ",".join(str(v) for v in scores),
    ]
    path.write_text("\n".join(lines) + "\n")


def _assert_same(theirs: Path, kit) -> None:
    ours = read_output(theirs)
    assert ours.record == kit.record
    assert ours.classes == kit.classes
    np.testing.assert_array_equal(ours.labels, kit.labels)
    np.testing.assert_allclose(ours.scores, kit.scores, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------
# 2020


def _driver_2020(model_input: Path, input_directory: Path, output_directory: Path) -> None:
    """The 2020 ``driver.py``'s call sequence."""
    from run_12ECG_classifier import load_12ECG_model, run_12ECG_classifier

    output_directory.mkdir()
    model = load_12ECG_model(str(model_input))
    for f in sorted(os.listdir(input_directory)):
        if not f.lower().endswith("mat"):
            continue
        filename = os.path.join(input_directory, f)
        data = np.asarray(loadmat(filename)["val"], dtype=np.float64)
        with open(filename.replace(".mat", ".hea")) as header_file:
            header_data = header_file.readlines()
        labels, scores, classes = run_12ECG_classifier(data, header_data, model)
        _write(output_directory / f.replace(".mat", ".csv"), f[:-4], classes, labels, scores)


@pytest.mark.parametrize("copy", ["12", "bad"])
def test_2020_driver_writes_what_run_model_writes(records, models, tmp_path, copy, capsys):
    kit = _kit_outputs(models["2020"], records[copy], tmp_path / "kit")
    capsys.readouterr()
    _driver_2020(models["2020"], records[copy], tmp_path / "driver")
    names = [p.stem for p in find_records(records[copy])]
    assert sorted(kit) == names and len(kit[names[0]].classes) == 24
    for name in names:
        _assert_same(tmp_path / "driver" / f"{name}.csv", kit[name])
    assert kit[names[0]].scores.any()
    if copy == "bad":  # refused: all-negative on both paths, the reason on stderr
        assert not kit[names[1]].labels.any() and not kit[names[1]].scores.any()
        assert f"error: record {names[1]}: sampling frequency 20 Hz" in capsys.readouterr().err


def test_2020_training_is_the_kits_default(monkeypatch, tmp_path):
    from train_12ECG_classifier import train_12ECG_classifier

    seen = {}
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: seen.update(kwargs) or {})
    train_12ECG_classifier(str(tmp_path / "data"), str(tmp_path / "model"))
    assert seen == {"table": "2020", "lead_sets": [STANDARD_LEADS]}  # classifiers, preset: default


# --------------------------------------------------------------------------------------------
# 2021


def _sorted_leads(header: str) -> tuple[str, ...]:
    """The lead names of a header's signal lines (the last field), in the twelve-lead order
    with others after them in file order, as the 2021 helper_code sorts them."""
    lines = header.split("\n")
    leads = [line.split(" ")[-1] for line in lines[1 : int(lines[0].split(" ")[1]) + 1]]
    return tuple(
        sorted(
            leads,
            key=lambda lead: (
                STANDARD_LEADS.index(lead) if lead in STANDARD_LEADS else 12 + leads.index(lead)
            ),
        )
    )


def _test_model_2021(model_directory: Path, data_directory: Path, output_directory: Path) -> None:
    """The 2021 ``test_model.py``'s call sequence."""
    from team_code import load_model, run_model

    output_directory.mkdir()
    found = sorted(p.stem for p in data_directory.glob("*.hea"))
    headers = {name: (data_directory / f"{name}.hea").read_text() for name in found}
    leads_to_model = {}
    for leads in {_sorted_leads(header) for header in headers.values()}:
        leads_to_model[leads] = load_model(str(model_directory), leads)
    for name in found:
        header = headers[name]
        recording = loadmat(str(data_directory / f"{name}.mat"))["val"]
        model = leads_to_model[_sorted_leads(header)]
        try:
            classes, labels, probabilities = run_model(model, header, recording)
        except Exception:
            classes, labels, probabilities = [], [], []
        _write(output_directory / f"{name}.csv", header.split(" ")[0], classes, labels,
               probabilities)  # fmt: skip


@pytest.mark.parametrize("copy", ["12", "6", "4", "3", "2"])
def test_2021_test_model_writes_what_run_model_writes(records, models, tmp_path, copy):
    kit = _kit_outputs(models["2021"], records[copy], tmp_path / "kit")
    _test_model_2021(models["2021"], records[copy], tmp_path / "test_model")
    names = [p.stem for p in find_records(records[copy])]
    assert sorted(kit) == names and len(kit[names[0]].classes) == 26
    for name in names:
        _assert_same(tmp_path / "test_model" / f"{name}.csv", kit[name])


def test_2021_load_model_serves_the_set_asked_for(models):
    for name, leads in LEAD_SETS.items():
        model = challenge_api.load_model(models["2021"], leads[::-1])  # any order
        assert (
            list(model.models) == [name]
            and model.classes_ == harness.load_model(models["2021"]).classes_
        )


def test_2021_refused_record_is_written_empty_by_test_model_and_negative_by_the_kit(
    records, models, tmp_path, capsys
):
    kit = _kit_outputs(models["2021"], records["1"], tmp_path / "kit")
    _test_model_2021(models["2021"], records["1"], tmp_path / "test_model")
    for name in kit:
        assert not kit[name].labels.any() and not kit[name].scores.any()
        lines = (tmp_path / "test_model" / f"{name}.csv").read_text().split("\n")
        assert lines[0] == f"#{name}" and lines[1:4] == ["", "", ""]
    header = next(records["1"].glob("*.hea"))
    model = challenge_api.load_model(models["2021"], ("II",))
    val = loadmat(header.with_suffix(".mat"))["val"]
    capsys.readouterr()
    with pytest.raises(RecordError, match=rf"record {header.stem}: has leads II: fewer than"):
        challenge_api.run_model(model, header.read_text(), val)
    # test_model.py's bare except hides the exception: the reason is on stderr already
    assert f"error: record {header.stem}: has leads II: fewer than" in capsys.readouterr().err


def test_2021_training_is_the_kits_default_with_every_lead_set(monkeypatch, tmp_path):
    from team_code import training_code

    seen = {}
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: seen.update(kwargs) or {})
    training_code(str(tmp_path / "data"), str(tmp_path / "model"))
    assert seen["table"] == "2021"
    assert [len(leads) for leads in seen["lead_sets"]] == [12, 6, 4, 3, 2]
    assert seen["lead_sets"][2] == ("I", "II", "III", "V2")
    assert set(seen) == {"table", "lead_sets"}  # classifiers and preset: the kit's defaults


def test_importing_team_code_stays_cheap_and_exports_the_2021_names():
    code = (
        "import sys, team_code; "
        "assert not [m for m in sys.modules if m.startswith('team_code.')], sys.modules; "
        "from team_code import training_code, load_model, run_model; "
        "from team_code import harness; "
        "assert 'torch' not in sys.modules; "
        "print(load_model.__module__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "team_code.challenge_api"
    import team_code

    with pytest.raises(AttributeError, match="has no attribute 'train_model'"):
        team_code.train_model  # noqa: B018


def test_header_lines_or_text_give_the_same_record(records):
    header = next(records["12"].glob("*.hea"))
    val = loadmat(header.with_suffix(".mat"))["val"]
    with open(header) as handle:
        lines = handle.readlines()
    from_lines = challenge_api.challenge_record(lines, np.asarray(val, dtype=np.float64))
    from_text = challenge_api.challenge_record(header.read_text(), val)
    from team_code.data.records import load_record

    loaded = load_record(header)
    for record in (from_lines, from_text):
        assert (record.name, record.leads, record.fs) == (loaded.name, loaded.leads, loaded.fs)
        np.testing.assert_array_equal(record.signal, loaded.signal)
    with pytest.raises(RecordError, match=rf"record {header.stem}: signal file has 11 leads"):
        challenge_api.challenge_record(lines, val[:11])


# --------------------------------------------------------------------------------------------
# The preset


@pytest.mark.parametrize(
    ("env", "device", "cuda", "expected"),
    [
        (None, "auto", True, ("paper", "CUDA is available")),
        (None, "auto", False, ("cpu", "CUDA is not available")),
        (None, "cpu", True, ("cpu", "training on cpu")),
        (None, "cuda:1", False, ("paper", "training on cuda:1")),
        ("cpu", "cuda", True, ("cpu", "$ECG_KIT_PRESET=cpu")),
        ("paper", "auto", False, ("paper", "$ECG_KIT_PRESET=paper")),
    ],
)
def test_default_preset_follows_the_device_unless_the_environment_names_one(
    monkeypatch, env, device, cuda, expected
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    if env is None:
        monkeypatch.delenv(presets.PRESET_ENV, raising=False)
    else:
        monkeypatch.setenv(presets.PRESET_ENV, env)
    assert presets.default_preset(device) == expected


def test_unknown_preset_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv(presets.PRESET_ENV, "fast")
    with pytest.raises(ValueError, match=r"\$ECG_KIT_PRESET='fast' is not a preset.*cpu, paper"):
        presets.default_preset()


def test_every_path_logs_and_records_the_chosen_preset(monkeypatch, records, tmp_path):
    import train_model

    monkeypatch.setenv(presets.PRESET_ENV, "cpu")
    messages = []
    manifest = harness.train(records["12"], tmp_path / "m", ["prevalence"], log=messages.append)
    assert manifest["preset"] == "cpu" and "preset cpu ($ECG_KIT_PRESET=cpu)" in messages
    seen = {}
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: seen.update(kwargs) or {})
    assert train_model.main(["d", str(tmp_path / "m2")]) == 0
    assert seen["preset"] is None  # harness.train then follows the device or $ECG_KIT_PRESET
    assert train_model.main(["d", str(tmp_path / "m2"), "--preset", "paper"]) == 0
    assert seen["preset"] == "paper"


def test_2020_classifier_failure_names_the_record_and_writes_all_negative(records, capsys):
    """A failure inside the model (not the reader) still names the record on stderr."""

    class Broken:
        classes_ = ("164889003", "426783006")
        task_ = harness.Task()  # twelve leads, as the record has

        def predict_proba(self, records):
            raise RuntimeError("out of memory")

    header = next(records["12"].glob("*.hea"))
    with open(header) as handle:
        lines = handle.readlines()
    val = loadmat(header.with_suffix(".mat"))["val"]
    labels, scores, classes = challenge_api.classify_2020(val, lines, Broken())
    assert classes == list(Broken.classes_)
    assert not labels.any() and not scores.any()
    err = capsys.readouterr().err
    assert f"error: record {header.stem}: classification failed: RuntimeError: out of memory" in err
