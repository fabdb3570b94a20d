"""What ``run_model.py`` keeps when things go wrong: an output that cannot be written, a worker
process that dies, an OUTPUTS that is a file; and who can read what the kit writes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from team_code import harness, inference
from team_code.data.outputs import read_output
from team_code.data.writer import write_record
from team_code.fileio import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def _records(folder: Path, names) -> Path:
    rng = np.random.default_rng(2)
    for name in names:
        signal = rng.normal(0, 0.2, size=(12, 2500)).astype(np.float32)
        write_record(folder, name, signal, 500, LEADS, age=60, sex="Female", dx=("426783006",))
    return folder


@pytest.fixture(scope="module")
def prevalence_model(records_dir, tmp_path_factory):
    model = tmp_path_factory.mktemp("model")
    harness.train(records_dir, model, ["prevalence"], log=lambda m: None)
    return model


def test_an_output_that_cannot_be_written_costs_only_its_record(prevalence_model, tmp_path):
    data = _records(tmp_path / "data", ["R0000", "R0001", "R0002"])
    outputs = tmp_path / "out"
    (outputs / "R0001.csv").mkdir(parents=True)  # a folder where the output should go
    listing = tmp_path / "failed.json"
    done = _cli(
        "run_model.py", prevalence_model, data, outputs, "--no-progress", "--failure-list", listing
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "error: record R0001: output file could not be written" in done.stderr
    assert read_output(outputs / "R0000.csv").record == "R0000"
    assert read_output(outputs / "R0002.csv").record == "R0002"  # the record after it too
    failed = json.loads(listing.read_text())
    assert failed["n_records"] == 3 and failed["written"] == 2
    assert [(f["record"], f["output"]) for f in failed["failed"]] == [("R0001", "none")]


def test_a_failed_record_gets_an_all_negative_output_and_the_folder_stays_scoreable(
    prevalence_model, tmp_path
):
    data = _records(tmp_path / "data", ["R0000", "R0001", "R0002"])
    (data / "R0001.mat").write_bytes(b"\x00" * 10)  # truncated signal file
    outputs = tmp_path / "out"
    listing = outputs / "failures.json"  # inside OUTPUTS: neither scorer reads it
    done = _cli(
        "run_model.py", prevalence_model, data, outputs, "--no-progress", "--failure-list", listing
    )
    assert done.returncode == 1
    assert "error: record R0001: signal file R0001.mat" in done.stderr
    assert "1 records failed (1 given an all-negative output)" in done.stderr
    placeholder = read_output(outputs / "R0001.csv")
    assert placeholder.record == "R0001"
    assert not placeholder.labels.any() and not placeholder.scores.any()
    assert read_output(outputs / "R0000.csv").scores.any()
    failed = json.loads(listing.read_text())["failed"]
    assert [(f["record"], f["output"]) for f in failed] == [("R0001", "all-negative")]
    assert "truncated" in failed[0]["reason"] or "unreadable" in failed[0]["reason"]
    # The header is fine, so the scorer counts the record (its output all negative).
    labels = tmp_path / "labels"
    labels.mkdir()
    for name in ("R0000", "R0001", "R0002"):
        (labels / f"{name}.hea").write_text((data / f"{name}.hea").read_text())
    scored = _cli(REPO / "evaluation" / "evaluate.py", labels, outputs, tmp_path / "scores.csv")
    assert scored.returncode == 0, scored.stderr
    # --allow-failures: the same run, exit 0.
    args = ["--no-progress", "--allow-failures"]
    done = _cli("run_model.py", prevalence_model, data, outputs, *args)
    assert done.returncode == 0


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (lambda p: p.write_text("x"), [], "exists and is not a folder"),
        (lambda p: None, ["--workers", "0"], "workers must be at least 1"),
        (lambda p: None, ["--failure-list", "OUT/A0001.csv"], "must be a file"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(
    prevalence_model, tmp_path, records_dir, make, extra, message
):
    outputs = tmp_path / "OUT"
    make(outputs)
    extra = [str(tmp_path / e) if e.startswith("OUT/") else e for e in extra]
    done = _cli("run_model.py", prevalence_model, records_dir, outputs, "--no-progress", *extra)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not outputs.is_dir()  # nothing written


_PLUGIN = """
import os
import signal

from team_code.classifiers import registry
from team_code.classifiers.prevalence import PrevalenceClassifier

# Test hooks, active where ECG_KIT_TEST_DEATHS names a folder: a process classifying a record
# named *_die ends at once (as when it is killed); one classifying *_dieonce ends the first
# time only; the loads of the model numbered in ECG_KIT_TEST_DIE_LOADS ("3", or "3+" for the
# third and every later one) are killed while loading.


def _first(folder, name):
    try:
        os.close(os.open(os.path.join(folder, name), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


@registry.register("dies_on_record")
class DiesOnRecord(PrevalenceClassifier):
    @classmethod
    def load(cls, folder):
        deaths = os.environ.get("ECG_KIT_TEST_DEATHS")
        if deaths:
            number = next(n for n in range(1, 1000) if _first(deaths, f"load{n}"))
            rule = os.environ.get("ECG_KIT_TEST_DIE_LOADS", "")
            if rule.endswith("+") and number >= int(rule[:-1]) or rule == str(number):
                os.kill(os.getpid(), signal.SIGKILL)
        return super().load(folder)

    def predict_proba(self, records):
        deaths = os.environ.get("ECG_KIT_TEST_DEATHS")
        for record in records if deaths else ():
            if record.name.endswith("_die"):
                os._exit(7)
            if record.name.endswith("_dieonce") and _first(deaths, record.name):
                os._exit(7)
        return super().predict_proba(records)
"""


@pytest.fixture(scope="module")
def dying_model(tmp_path_factory):
    """A prevalence model whose workers die where the test hooks say (synthetic records);
    the environment that reaches the plugin."""
    root = tmp_path_factory.mktemp("dying")
    plugin = root / "plugin"
    plugin.mkdir()
    # The plugin reaches the worker processes (spawned afresh) through sitecustomize.
    (plugin / "sitecustomize.py").write_text(textwrap.dedent(_PLUGIN))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), str(REPO)])}
    data = _records(root / "train", [f"T{i:04d}" for i in range(8)])
    model = root / "model"
    args = ["--classifiers", "dies_on_record", "--no-progress"]
    done = _cli("train_model.py", data, model, *args, env=env)
    assert done.returncode == 0, done.stderr
    return model, env


def _names(die: str = "", n: int = 20) -> list[str]:
    """``n`` record names, the fourth ending in ``die``."""
    return [f"R{i:04d}" + (die if i == 3 else "") for i in range(n)]


def _deaths(env: dict, folder: Path, die_loads: str = "", monkeypatch=None) -> dict:
    """``env`` with the test hooks on, recording in ``folder``; with ``monkeypatch``, also set
    in this process's environment, which the worker processes inherit."""
    folder.mkdir()
    hooks = {
        "PYTHONPATH": env["PYTHONPATH"],
        "ECG_KIT_TEST_DEATHS": str(folder),
        "ECG_KIT_TEST_DIE_LOADS": die_loads,
    }
    for key, value in hooks.items() if monkeypatch else ():
        monkeypatch.setenv(key, value)
    return {**env, **hooks}


def _check_outputs(outputs: Path, names, failed=()) -> None:
    """Every record has its output: the model's, all negative for those ``failed``."""
    reference = read_output(outputs / f"{names[0]}.csv").scores
    assert reference.any()
    for name in names:
        expected = np.zeros_like(reference) if name in failed else reference
        np.testing.assert_array_equal(read_output(outputs / f"{name}.csv").scores, expected)


def test_a_replacement_worker_that_dies_costs_no_records(dying_model, tmp_path):
    # A worker dies on a record, its replacement is killed while loading the model; the
    # record is retried once by a later worker, dies again and fails; the others are written.
    model, env = dying_model
    env = _deaths(env, tmp_path / "deaths", die_loads="3")
    names = _names("_die")
    data = _records(tmp_path / "data", names)
    outputs = tmp_path / "out"
    listing = tmp_path / "failed.json"
    args = ["--no-progress", "--workers", "2", "--failure-list", listing]
    done = _cli("run_model.py", model, data, outputs, *args, env=env)
    assert done.returncode == 1, done.stderr
    reason = "worker died twice before classifying it (exit code 7, then exit code 7)"
    assert f"error: record R0003_die: {reason}" in done.stderr
    assert (tmp_path / "deaths" / "load3").exists()  # the replacement that was killed
    failed = json.loads(listing.read_text())
    assert failed["n_records"] == 20 and failed["written"] == 19
    assert failed["failed"] == [{"record": "R0003_die", "reason": reason, "output": "all-negative"}]
    _check_outputs(outputs, names, failed={"R0003_die"})


def test_a_worker_that_dies_once_costs_a_retry(dying_model, tmp_path, monkeypatch):
    model, env = dying_model
    _deaths(env, tmp_path / "deaths", monkeypatch=monkeypatch)
    names = _names("_dieonce")
    data = _records(tmp_path / "data", names)
    result = harness.run(model, data, tmp_path / "out", workers=2, progress=False)
    assert (tmp_path / "deaths" / "R0003_dieonce").exists()  # it did die
    assert result.failures == [] and result.written == names
    _check_outputs(tmp_path / "out", names)


def test_when_no_worker_can_be_started_the_records_left_fail_and_are_listed(
    dying_model, tmp_path, monkeypatch
):
    # Every replacement is killed while loading: the first worker's records go to the
    # second, which dies on the fatal record; the records left fail with the reason.
    model, env = dying_model
    _deaths(env, tmp_path / "deaths", die_loads="3+", monkeypatch=monkeypatch)
    names = _names("_die")
    data = _records(tmp_path / "data", names)
    messages = []
    result = harness.run(
        model, data, tmp_path / "out", workers=2, progress=False, log=messages.append
    )
    assert sorted(result.written + [name for name, _ in result.failures]) == names
    reasons = dict(result.failures)
    assert reasons.pop("R0003_die").startswith("worker died twice before classifying it")
    assert reasons  # the records no worker was left for
    left = "not classified: no worker process left (the last died while loading the model, "
    assert set(reasons.values()) == {left + "killed by SIGKILL)"}
    assert result.placeholders == [name for name, _ in result.failures]
    _check_outputs(tmp_path / "out", names, failed=set(result.placeholders))


def test_workers_killed_while_loading_the_model_make_nothing(dying_model, tmp_path, monkeypatch):
    model, env = dying_model
    _deaths(env, tmp_path / "deaths", die_loads="1+", monkeypatch=monkeypatch)
    data = _records(tmp_path / "data", _names())
    outputs = tmp_path / "out"
    with pytest.raises(ValueError, match="the worker process died while loading the model"):
        harness.run(model, data, outputs, workers=2, progress=False)
    assert not outputs.exists()
    assert len(list((tmp_path / "deaths").iterdir())) == 3  # two workers and one retry


def _modes(folder: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_models_and_outputs_are_readable_as_the_umask_allows(records_dir, tmp_path, umask, mode):
    data = _records(tmp_path / "data", ["R0000", "R0001"])
    old = os.umask(umask)
    try:
        harness.train(records_dir, tmp_path / "model", ["prevalence"], log=lambda m: None)
        harness.run(tmp_path / "model", data, tmp_path / "out", progress=False)
        atomic_write_text(tmp_path / "plain.txt", "x")
    finally:
        os.umask(old)
    assert _modes(tmp_path / "model") == {mode}
    assert _modes(tmp_path / "out") == {mode}
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == mode
    # No temporary file is left behind.
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "old")
    (tmp_path / "b.json").mkdir()
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "b.json", "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_an_unforeseen_reader_error_costs_only_its_record(prevalence_model, tmp_path, monkeypatch):
    data = _records(tmp_path / "data", ["R0000", "R0001", "R0002"])
    real = inference.load_record

    def load(path):
        if path.stem == "R0001":
            raise RuntimeError("unexpected")
        return real(path)

    monkeypatch.setattr(inference, "load_record", load)
    messages = []
    result = harness.run(
        prevalence_model, data, tmp_path / "out", progress=False, log=messages.append
    )
    assert result.written == ["R0000", "R0002"]
    assert result.failures == [("R0001", "cannot be read: RuntimeError: unexpected")]
    assert result.placeholders == ["R0001"]
    assert messages == ["error: record R0001: cannot be read: RuntimeError: unexpected"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_model_that_cannot_be_loaded_is_a_usage_error(
    prevalence_model, tmp_path, records_dir, workers
):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(prevalence_model, model)
    (model / "prevalence" / "prevalence.json").write_text("{not json")
    outputs = tmp_path / "out"
    done = _cli("run_model.py", model, records_dir, outputs, "--no-progress", "--workers", workers)
    assert done.returncode == 2, done.stderr
    assert f"cannot load the model in {model}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not outputs.exists()  # nothing is made before the model has loaded


def test_a_record_naming_a_lead_otherwise_is_classified_with_a_note(
    prevalence_model, records_dir, capsys
):
    """A lead under a name the reader does not know (``V6-chest``) leaves the model's V6
    missing: the record is classified with the leads it has, and stderr says why."""
    import dataclasses

    from team_code.data.records import RecordSet
    from team_code.model_folder import load_model

    record = RecordSet.from_folder(records_dir)[0]
    renamed = dataclasses.replace(
        record, leads=tuple("V6-chest" if lead == "V6" else lead for lead in record.leads)
    )
    model = load_model(prevalence_model)
    capsys.readouterr()
    scores, _ = inference.decide(model, [renamed])
    assert scores.shape == (1, len(model.classes_))
    note = capsys.readouterr().err
    assert f"note: record {record.name}: no lead named V6, and leads named V6-chest" in note
    inference.decide(model, [record])
    assert "note:" not in capsys.readouterr().err  # the standard names: nothing to say


@pytest.mark.parametrize(
    ("scale", "says"),
    [(1e-4, "every lead is flat"), (400.0, "its typical lead spans"), (1.0, None)],
)
def test_a_record_with_an_implausible_amplitude_is_classified_with_a_note(
    prevalence_model, records_dir, capsys, scale, says
):
    """Samples whose header gain is wrong by a factor of 1000 either way read as a flat
    record or as hundreds of millivolts: the record is classified, and stderr says why its
    outputs may be wrong."""
    import dataclasses

    from team_code.data.records import RecordSet
    from team_code.model_folder import load_model

    record = RecordSet.from_folder(records_dir)[0]
    scaled = dataclasses.replace(record, signal=(record.signal * scale).astype(np.float32))
    model = load_model(prevalence_model)
    capsys.readouterr()
    scores, _ = inference.decide(model, [scaled])
    assert scores.shape == (1, len(model.classes_))
    err = capsys.readouterr().err
    if says is None:
        assert "note:" not in err
    else:
        assert f"note: record {record.name}: {says}" in err and "gain" in err
