"""The harness and the three CLIs end to end, on real records and on broken ones."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from team_code import harness, training
from team_code.classifiers import registry
from team_code.classifiers.base import Classifier
from team_code.data.labels import scored_classes
from team_code.data.outputs import read_output, validate_output
from team_code.data.records import find_records
from team_code.data.writer import write_record

REPO = Path(__file__).resolve().parents[1]


def _cli(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _small_folder(folder: Path, n: int = 4) -> Path:
    rng = np.random.default_rng(1)
    leads = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    dx = [("426783006",), ("164889003",), ("426783006", "39732003"), ("426177001",)]
    for i in range(n):
        signal = rng.normal(0, 0.2, size=(12, 2500)).astype(np.float32)
        write_record(folder, f"T{i:04d}", signal, 500, leads, age=50, sex="Male", dx=dx[i % 4])
    return folder


def test_end_to_end_cli_on_real_records(challenge_dir, tmp_path):
    model, outputs = tmp_path / "model", tmp_path / "outputs"
    done = _cli("train_model.py", challenge_dir, model, "--classifiers", "prevalence")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["primary"] == "prevalence"
    assert manifest["classes"] == list(scored_classes().codes)
    assert manifest["training_data"]["n_records"] == 231
    assert manifest["training_data"]["by_source"] == {"A": 116, "E": 56, "HR": 29, "Q": 22, "S": 8}
    assert manifest["training_data"]["class_counts"]["NSR"] == 58
    assert "numpy" in manifest["versions"]

    outputs.mkdir()
    (outputs / "notes.txt").write_text("keep me")
    done = _cli("run_model.py", model, challenge_dir, outputs, "--no-progress")
    assert done.returncode == 0, done.stderr
    written = sorted(p.stem for p in outputs.glob("*.csv"))
    assert written == [p.stem for p in find_records(challenge_dir)]
    assert (outputs / "notes.txt").read_text() == "keep me"
    assert all(validate_output(outputs / f"{n}.csv", n) == [] for n in written)
    first = read_output(outputs / "A0002.csv")
    np.testing.assert_allclose(first.scores[list(first.classes).index("426783006")], 58 / 231)

    scores_csv, classes_csv = tmp_path / "scores.csv", tmp_path / "class_scores.csv"
    done = _cli(
        REPO / "evaluation" / "evaluate.py",
        challenge_dir,
        outputs,
        scores_csv,
        classes_csv,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(scores_csv.open()))
    assert rows[0] == [
        "AUROC",
        "AUPRC",
        "Accuracy",
        "F-measure",
        "Fbeta-measure",
        "Gbeta-measure",
        "Challenge metric",
    ]
    values = dict(zip(rows[0], map(float, rows[1])))
    assert values["AUROC"] == 0.5  # constant scores rank nothing
    # The prevalence floor predicts the classes that raise the training challenge metric;
    # 0.1824 was measured on the 231 shared records (training = test here).
    assert values["Challenge metric"] == pytest.approx(0.1824, abs=5e-4)


def test_run_isolates_broken_records(tmp_path, records_dir):
    data = _small_folder(tmp_path / "data")
    (data / "T0001.mat").write_bytes(b"\x00" * 10)  # truncated signal file
    (data / "T0002.hea").write_text((data / "T0002.hea").read_text().replace("1000/mV", "0/mV"))
    model = tmp_path / "model"
    harness.train(records_dir, model, ["prevalence"], log=lambda m: None)
    outputs = tmp_path / "out"
    done = _cli("run_model.py", model, data, outputs, "--no-progress")
    assert done.returncode == 1
    assert "record T0001:" in done.stderr and "record T0002: gain" in done.stderr
    # Every record has a file; the failed ones all negative, so the folder can be scored.
    assert sorted(p.stem for p in outputs.glob("*.csv")) == ["T0000", "T0001", "T0002", "T0003"]
    for name, real in (("T0000", True), ("T0001", False), ("T0002", False), ("T0003", True)):
        assert read_output(outputs / f"{name}.csv").scores.any() == real, name
    done = _cli("run_model.py", model, data, outputs, "--no-progress", "--allow-failures")
    assert done.returncode == 0


def test_train_leaves_out_unreadable_records(tmp_path):
    data = _small_folder(tmp_path / "data")
    (data / "T0003.mat").unlink()
    messages = []
    manifest = harness.train(data, tmp_path / "m", ["prevalence"], log=messages.append)
    assert manifest["training_data"]["n_records"] == 3
    assert manifest["training_data"]["unreadable"][0]["record"] == "T0003"
    assert any("T0003" in m and "missing" in m for m in messages)


def test_unknown_classifier_and_options_fail_clearly(tmp_path, records_dir):
    with pytest.raises(
        KeyError, match=r"unknown classifier 'nope'; known classifiers: .*prevalence"
    ):
        registry.get("nope")
    done = _cli("train_model.py", records_dir, tmp_path / "m", "--classifiers", "nope")
    assert done.returncode == 2 and "known classifiers" in done.stderr
    with pytest.raises(ValueError, match="not of the form"):
        harness.parse_options(["epochs=5"])
    with pytest.raises(ValueError, match="not trained"):
        harness.train(records_dir, tmp_path / "m", ["prevalence"], {"rules": {"x": "1"}})


def test_run_refuses_a_folder_without_manifest(tmp_path, records_dir):
    done = _cli("run_model.py", tmp_path, records_dir, tmp_path / "o")
    assert done.returncode == 2 and "manifest.json is missing" in done.stderr


def test_record_source():
    assert [harness.record_source(n) for n in ("A0001", "HR00001", "JS00001", "E1", "X1")] == [
        "A",
        "HR",
        "JS",
        "E",
        "other",
    ]


def test_workers_give_identical_outputs_and_failures(tmp_path, records_dir):
    data = _small_folder(tmp_path / "data", n=6)
    (data / "T0004.mat").unlink()
    model = tmp_path / "model"
    harness.train(records_dir, model, ["prevalence"], log=lambda m: None)
    one = harness.run(model, data, tmp_path / "one", progress=False, log=lambda m: None)
    two = harness.run(
        model, data, tmp_path / "two", workers=2, batch_size=2, progress=False, log=lambda m: None
    )
    assert one.written == two.written == ["T0000", "T0001", "T0002", "T0003", "T0005"]
    assert one.failures == two.failures and one.failures[0][0] == "T0004"
    assert one.placeholders == two.placeholders == ["T0004"]
    for name in [*one.written, *one.placeholders]:
        assert (tmp_path / "one" / f"{name}.csv").read_bytes() == (
            tmp_path / "two" / f"{name}.csv"
        ).read_bytes()


def test_report_and_plots_from_the_clis(tmp_path, records_dir):
    data = tmp_path / "data"
    data.mkdir()
    names = sorted(p.stem for p in records_dir.glob("*.hea"))[1:3]
    for name in names:
        for suffix in (".hea", ".mat"):
            (data / f"{name}{suffix}").write_bytes((records_dir / f"{name}{suffix}").read_bytes())
    model, outputs = tmp_path / "model", tmp_path / "out"
    harness.train(records_dir, model, ["prevalence"], log=lambda m: None)
    done = _cli("run_model.py", model, data, outputs, "--no-progress", "--report", tmp_path / "r")
    assert done.returncode == 0, done.stderr
    index = (tmp_path / "r" / "index.html").read_text()
    for name in names:
        assert (tmp_path / "r" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"{name}.png" in index
    # the report names the labels the output file holds, not the thresholds' reading of its
    # scores (a decision policy may differ from them)
    from team_code.report import report_outputs

    first = outputs / f"{names[0]}.csv"
    lines = first.read_text().splitlines()
    written = read_output(first)
    lines[2] = ",".join("1" if j == 3 else "0" for j in range(len(written.classes)))
    first.write_text("\n".join(lines) + "\n")
    report_outputs(model, data, outputs, tmp_path / "r2", log=lambda m: None)
    rows = json.loads((tmp_path / "r2" / "report.json").read_text())["records"]
    shown = {r["record"]: r["predicted"] for r in rows}
    assert shown[names[0]] == scored_classes().abbreviation(written.classes[3])
    done = _cli(REPO / "evaluation" / "evaluate.py", data, outputs, "--plots", tmp_path / "p")
    assert done.returncode == 0, done.stderr
    for name in ("f_measure.png", "auroc.png", "roc.png", "index.html"):
        assert (tmp_path / "p" / name).stat().st_size > 0


class _SpyClassifier(Classifier):
    """Records the run context of every fit; scores the training prevalence."""

    contexts: ClassVar[list] = []

    def fit(self, records, task, ctx=None):
        self._begin(task, ctx)
        type(self).contexts.append(self.ctx)
        self.prevalence_ = self.label_matrix(records).mean(axis=0)
        self.thresholds_ = np.full(len(self.classes_), 0.5)
        return self

    def predict_proba(self, records):
        return np.tile(self.prevalence_, (len(records), 1))


def test_the_run_context_reaches_every_member_and_fold(tmp_path, monkeypatch, records_dir):
    """Caches in MODEL/.cache (or $ECG_KIT_CACHE), a work folder per member and fold, the
    device, workers, loader workers and progress of the run: handed down, never read from
    configs."""
    monkeypatch.delenv("ECG_KIT_CACHE", raising=False)
    registry.register("spy_test")(_SpyClassifier)
    _SpyClassifier.contexts.clear()
    try:
        model = tmp_path / "model"
        options = {"hybrid": {"members": "spy_test", "n_folds": "2", "fold_groups": "signal"}}
        harness.train(
            records_dir, model, ["hybrid"], options, log=lambda m: None, progress=False,
            device="cpu", workers=1, cache="keep", loader_workers=3,
        )  # fmt: skip
        seen = _SpyClassifier.contexts
        work = model / ".work" / "hybrid" / "spy_test"
        assert [c.workdir for c in seen] == [str(work / p) for p in ("fold1", "fold2", "refit")]
        assert {(c.device, c.workers, c.loader_workers, c.progress, c.resume) for c in seen} == {
            ("cpu", 1, 3, False, False)
        }
        assert {c.cache_dir for c in seen} == {str(model / ".cache")}
        monkeypatch.setenv("ECG_KIT_CACHE", str(tmp_path / "env"))
        assert harness.run_context(model).cache_dir == str(tmp_path / "env")
        saved = (model / "hybrid" / "config.json").read_text()
        assert str(tmp_path) not in saved  # nothing of the run is saved with the model
    finally:
        registry._REGISTERED.pop("spy_test", None)


def test_a_manifest_cannot_point_outside_the_model_folder(tmp_path, records_dir):
    model = tmp_path / "model"
    harness.train(records_dir, model, ["prevalence"], log=lambda m: None)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["classifiers"]["prevalence"]["folder"] = "../elsewhere"
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="points outside the model folder"):
        harness.load_model(model)


def test_train_model_hands_loader_workers_to_the_training(monkeypatch, tmp_path):
    import train_model

    with pytest.raises(ValueError, match="loader_workers must be 0 or more"):
        harness.train(tmp_path, tmp_path / "m", ["prevalence"], loader_workers=-1)
    seen = {}
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: seen.update(kwargs) or {})
    assert train_model.main(["d", str(tmp_path / "m"), "--loader-workers", "4"]) == 0
    assert (seen["loader_workers"], seen["workers"]) == (4, 0)
    assert train_model.main(["d", str(tmp_path / "m")]) == 0
    assert seen["loader_workers"] == 0
