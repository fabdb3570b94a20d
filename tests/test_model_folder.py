"""A model folder is whole or refused: written into a temporary sibling and moved into place
when complete, its files checked against the manifest's list when loaded, refused when
another kit version wrote it; and a training's threads do not follow the machine's load.

Synthetic records only (no ../shared): every training here takes seconds."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

import run_model
import train_model
from team_code import __version__, harness, model_folder, threads, training
from team_code.classifiers import registry
from team_code.classifiers.base import Classifier
from team_code.data.synth import generate_dataset

#: A tiny parallel_cnn: two epochs on 8 short records trains in a few seconds.
TINY_CNN = [
    "--classifiers", "parallel_cnn", "--preset", "cpu", "--no-progress",
    "--set", "parallel_cnn.fs_hz=100", "--set", "parallel_cnn.length=500",
    "--set", "parallel_cnn.filters=4", "--set", "parallel_cnn.n_blocks=2",
    "--set", "parallel_cnn.epochs=2", "--set", "parallel_cnn.batch_size=4",
]  # fmt: skip


#: One epoch, the records prepared in this process: enough to tell thread counts apart.
ONE_EPOCH = ["--set", "parallel_cnn.epochs=1", "--workers", "1"]


def _quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    generate_dataset(folder, 8, seed=1, fs=250, duration_s=6)
    return folder


@pytest.fixture(scope="module")
def data_2(tmp_path_factory) -> Path:
    """Other records: another training's model differs from one trained on ``data``."""
    folder = tmp_path_factory.mktemp("data_2")
    generate_dataset(folder, 8, seed=2, fs=250, duration_s=6)
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    """The model's files (run state left out) and their bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.relative_to(folder).parts[0].startswith(".")
    }


def _siblings(model: Path) -> list[str]:
    return sorted(p.name for p in model.parent.glob(f".{model.name}.*"))


def _run(model, data, outputs, capsys) -> tuple[int, str]:
    status = run_model.main([str(model), str(data), str(outputs), "--no-progress"])
    return status, capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Written whole


@dataclasses.dataclass(frozen=True)
class _FailingConfig:
    """Options of the toy family below."""

    fail_in: str = "fit"  # where the training fails: "fit", or "save" after one file


class _Failing(Classifier):
    """A family whose training fails in ``fit`` or halfway through ``save`` (a full disk)."""

    Config = _FailingConfig

    def fit(self, records, task, ctx=None):
        self._begin(task, ctx)
        if self.config.fail_in == "fit":
            raise RuntimeError("fit failed")
        self.thresholds_ = np.full(len(self.classes_), 0.5)
        return self

    def predict_proba(self, records):
        return np.full((len(records), len(self.classes_)), 0.5)

    def _save_state(self, folder):
        (folder / "half.json").write_text("[")
        raise OSError("No space left on device")


@pytest.fixture
def failing():
    registry.register("failing_test")(_Failing)
    yield "failing_test"
    registry._REGISTERED.pop("failing_test", None)


@pytest.mark.parametrize("fail_in", ["fit", "save"])
def test_an_interrupted_retraining_leaves_the_previous_model_whole(
    data, tmp_path, failing, fail_in
):
    model = tmp_path / "model"
    harness.train(data, model, ["prevalence"], log=_quiet, progress=False)
    before = _files(model)
    scores = harness.load_model(model).predict_proba([])
    # A retraining for the 2021 table (26 classes) fails after prevalence was written.
    with pytest.raises((RuntimeError, OSError)):
        harness.train(
            data,
            model,
            ["prevalence", failing],
            {failing: {"fail_in": fail_in}},
            log=_quiet,
            progress=False,
            table="2021",
        )
    assert _files(model) == before  # the old manifest over the old weights, nothing new
    loaded = harness.load_model(model)
    assert len(loaded.classes_) == 24 and loaded.predict_proba([]).shape == scores.shape
    assert _siblings(model) == []  # the temporary folder is gone


def test_a_first_training_that_fails_leaves_no_model_folder(data, tmp_path, failing):
    model = tmp_path / "model"
    with pytest.raises(RuntimeError, match="fit failed"):
        harness.train(data, model, ["prevalence", failing], log=_quiet, progress=False)
    assert not model.exists() and _siblings(model) == []


def test_a_retraining_replaces_the_folder_and_keeps_the_run_state(data, tmp_path):
    model = tmp_path / "model"
    harness.train(
        data, model, ["prevalence"], log=_quiet, progress=False, lead_sets=[["I"], ["II"]]
    )
    assert (model / "leads-II" / "manifest.json").is_file()
    (model / ".work").mkdir()
    (model / ".work" / "checkpoint.pt").write_bytes(b"run state")
    harness.train(data, model, ["prevalence"], log=_quiet, progress=False, cache="keep")
    assert sorted(p.name for p in model.iterdir()) == [".work", "manifest.json", "prevalence"]
    assert (model / ".work" / "checkpoint.pt").read_bytes() == b"run state"
    assert harness.load_manifest(model)["task"]["leads"] == list(harness.STANDARD_LEADS)
    assert _siblings(model) == []


def test_a_folder_that_is_not_a_model_is_never_replaced(data, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    status = train_model.main([str(data), str(mine), "--classifiers", "prevalence"])
    assert status == 2
    assert "is not a model folder (it holds thesis.tex)" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]


def test_another_programs_manifest_does_not_make_a_folder_a_model(data, tmp_path, capsys):
    """A folder counts as a model to replace only by a manifest this kit wrote: another
    program's manifest.json (a web app's, a dataset's) leaves its folder untouched."""
    theirs = tmp_path / "app"
    (theirs / "photos").mkdir(parents=True)
    (theirs / "manifest.json").write_text('{"name": "my-app"}')
    (theirs / "photos" / "a.jpg").write_bytes(b"a photo")
    status = train_model.main([str(data), str(theirs), "--classifiers", "prevalence"])
    assert status == 2
    assert "is not a model folder (it holds manifest.json, photos)" in capsys.readouterr().err
    assert (theirs / "photos" / "a.jpg").read_bytes() == b"a photo"
    assert json.loads((theirs / "manifest.json").read_text()) == {"name": "my-app"}


@pytest.mark.parametrize("text", ["[1, 2]", "not json", '"a string"'])
def test_a_manifest_that_is_not_a_json_object_is_refused_with_exit_2(data, tmp_path, capsys, text):
    model = tmp_path / "model"
    harness.train(data, model, ["prevalence"], log=_quiet, progress=False)
    (model / "manifest.json").write_text(text)
    status = run_model.main([str(model), str(data), str(tmp_path / "out")])
    assert status == 2
    assert "is not a model manifest" in capsys.readouterr().err


def test_a_leftover_of_a_killed_commit_is_put_back(data, tmp_path, failing):
    model = tmp_path / "model"
    harness.train(data, model, ["prevalence"], log=_quiet, progress=False)
    before = _files(model)
    aside = tmp_path / ".model.old-999999999"  # moved aside by a process that is gone
    model.rename(aside)
    (tmp_path / ".model.tmp-999999999").mkdir()
    model_folder.begin(model)
    assert _files(model) == before
    assert _siblings(model) == [f".model.tmp-{os.getpid()}"]
    # The next training finds it back too (it makes MODEL for its run state first).
    model_folder.discard(model_folder.staging_folder(model))
    model.rename(aside)
    with pytest.raises(RuntimeError, match="fit failed"):
        harness.train(data, model, ["prevalence", failing], log=_quiet, progress=False)
    assert _files(model) == before and _siblings(model) == []


def test_a_retraining_never_leaves_the_model_path_empty(data, tmp_path, monkeypatch):
    """The new model takes the old one's place in one step: no rename ever moves MODEL away
    (a reader at that instant would find no model)."""
    model = tmp_path / "model"
    harness.train(data, model, ["prevalence"], log=_quiet, progress=False)
    (model / ".work").mkdir()
    (model / ".work" / "state").write_bytes(b"run state")
    rename = os.rename

    def guarded(src, dst, *args, **kwargs):
        assert Path(src) != model, "MODEL was renamed away"
        return rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", guarded)
    harness.train(data, model, ["prevalence", "rules"], log=_quiet, progress=False)
    assert sorted(harness.load_manifest(model)["classifiers"]) == ["prevalence", "rules"]
    assert (model / ".work" / "state").read_bytes() == b"run state"
    assert _siblings(model) == []


def test_without_an_atomic_exchange_the_commit_renames_aside(data, tmp_path, monkeypatch):
    model = tmp_path / "model"
    harness.train(data, model, ["prevalence"], log=_quiet, progress=False)
    (model / ".work").mkdir()
    monkeypatch.setattr(model_folder, "exchange", lambda a, b: False)
    harness.train(data, model, ["prevalence", "rules"], log=_quiet, progress=False)
    assert sorted(harness.load_manifest(model)["classifiers"]) == ["prevalence", "rules"]
    assert (model / ".work").is_dir() and _siblings(model) == []


def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("in a")
    (b / "y").write_text("in b")
    if not model_folder.exchange(a, b):
        pytest.skip("this system cannot exchange two paths atomically")
    assert (a / "y").read_text() == "in b" and (b / "x").read_text() == "in a"
    with pytest.raises(FileNotFoundError):
        model_folder.exchange(a, tmp_path / "missing")


def test_a_relative_model_path_is_built_beside_it(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    harness.train(data, "model", ["prevalence"], log=_quiet, progress=False)
    harness.train(data, "model/", ["prevalence"], log=_quiet, progress=False)
    assert harness.load_manifest(tmp_path / "model")["primary"] == "prevalence"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_only_rank_0_writes(data, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    model = tmp_path / "model"
    harness.train(data, model, ["prevalence"], log=_quiet, progress=False)
    assert not (model / "manifest.json").exists() and _siblings(model) == []


# --------------------------------------------------------------------------------------------
# Checked when loaded


@pytest.fixture(scope="module")
def cnn_models(data, data_2, tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny parallel_cnn models of the same shape, trained on other records."""
    folder = tmp_path_factory.mktemp("cnn")
    for name, records in (("a", data), ("b", data_2)):
        status = train_model.main([str(records), str(folder / name), *TINY_CNN, "--threads", "1"])
        assert status == 0
    return folder / "a", folder / "b"


def _copy(model: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    return copy


def test_the_manifest_lists_every_file_with_size_and_hash(cnn_models):
    model = cnn_models[0]
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["format"] == model_folder.FORMAT
    assert manifest["kit_version"] == __version__
    assert manifest["threads"] == 1
    listed = {f["path"]: f for f in manifest["files"]}
    assert sorted(listed) == [
        "parallel_cnn/config.json",
        "parallel_cnn/parallel_cnn.json",
        "parallel_cnn/weights.safetensors",
    ]
    weights = model / "parallel_cnn" / "weights.safetensors"
    assert listed["parallel_cnn/weights.safetensors"]["bytes"] == weights.stat().st_size
    assert listed["parallel_cnn/weights.safetensors"]["sha256"] == model_folder.sha256(weights)


def test_a_truncated_weight_file_is_refused_with_exit_2_naming_it(
    cnn_models, data, tmp_path, capsys
):
    model = _copy(cnn_models[0], tmp_path)
    weights = model / "parallel_cnn" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    status, err = _run(model, data, tmp_path / "out", capsys)
    assert status == 2, err
    assert "parallel_cnn/weights.safetensors: size mismatch" in err
    assert not (tmp_path / "out").exists()


def test_a_weight_file_of_another_training_is_refused(cnn_models, data, tmp_path, capsys):
    model = _copy(cnn_models[0], tmp_path)
    ours = model / "parallel_cnn" / "weights.safetensors"
    theirs = cnn_models[1] / "parallel_cnn" / "weights.safetensors"
    assert ours.stat().st_size == theirs.stat().st_size  # same shape: only the hash tells
    assert ours.read_bytes() != theirs.read_bytes()
    harness.load_model(model)  # verified once, whole
    ours.write_bytes(theirs.read_bytes())
    status, err = _run(model, data, tmp_path / "out", capsys)
    assert status == 2, err
    assert "parallel_cnn/weights.safetensors: hash mismatch" in err
    assert f"cannot load the model in {model}" in err


@pytest.mark.parametrize(
    "damage,problem",
    [
        (lambda m: (m / "prevalence" / "config.json").unlink(), "config.json: missing"),
        (
            lambda m: (m / "prevalence" / "stale.safetensors").write_bytes(b"x"),
            "prevalence/stale.safetensors: not in the manifest's file list",
        ),
    ],
)
def test_a_missing_or_foreign_file_is_refused(data, tmp_path, damage, problem):
    model = tmp_path / "model"
    harness.train(data, model, ["prevalence"], log=_quiet, progress=False)
    (model / "notes.txt").write_text("mine")  # top-level files are no loader's business
    harness.load_model(model)
    damage(model)
    with pytest.raises(model_folder.ModelFolderError, match=problem):
        harness.load_model(model)


def test_lead_set_folders_are_listed_and_verified_through_the_top_folder(data, tmp_path):
    model = tmp_path / "model"
    harness.train(
        data, model, ["prevalence"], log=_quiet, progress=False, lead_sets=[["I", "II"], ["II"]]
    )
    listed = [f["path"] for f in harness.load_manifest(model)["files"]]
    assert "leads-II/manifest.json" in listed and "leads-2/prevalence/config.json" in listed
    harness.load_model(model)
    with open(model / "leads-II" / "prevalence" / "config.json", "a") as handle:
        handle.write(" ")
    with pytest.raises(model_folder.ModelFolderError, match=r"leads-II/prevalence/config\.json"):
        harness.load_model(model)


def test_files_are_hashed_once_per_process_while_unchanged(data, tmp_path, monkeypatch):
    model = tmp_path / "model"
    harness.train(data, model, ["prevalence"], log=_quiet, progress=False)
    hashed = []
    original = model_folder.sha256
    monkeypatch.setattr(model_folder, "sha256", lambda p: hashed.append(p) or original(p))
    monkeypatch.setattr(model_folder, "_verified", {})
    n_files = len(harness.load_manifest(model)["files"])
    harness.load_model(model)
    harness.load_manifest(model)
    assert len(hashed) == n_files
    config = model / "prevalence" / "config.json"
    config.write_text(config.read_text().replace("{", "{ ", 1)[:-1])  # same size, new bytes
    with pytest.raises(model_folder.ModelFolderError, match="hash mismatch"):
        harness.load_manifest(model)


# --------------------------------------------------------------------------------------------
# Versions


def _rewrite_manifest(model: Path, **fields) -> None:
    path = model / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(fields)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "fields,named",
    [
        ({"kit_version": "0.1.9"}, "kit version 0.1.9"),
        ({"format": "ecg-kit-model/1", "kit_version": None}, "a kit before version 0.2.0"),
    ],
)
def test_a_folder_of_another_kit_version_is_refused_with_retrain(
    data, tmp_path, capsys, fields, named
):
    model = tmp_path / "model"
    harness.train(data, model, ["prevalence"], log=_quiet, progress=False)
    _rewrite_manifest(model, **fields)
    status, err = _run(model, data, tmp_path / "out", capsys)
    assert status == 2, err
    assert named in err and f"kit version {__version__}" in err and "retrain" in err


def test_a_version_listed_as_output_identical_is_served(data, tmp_path, monkeypatch, capsys):
    model = tmp_path / "model"
    harness.train(data, model, ["prevalence"], log=_quiet, progress=False)
    _rewrite_manifest(model, kit_version="0.1.9")
    monkeypatch.setattr(model_folder, "SERVED_VERSIONS", ("0.1.9",))
    status, err = _run(model, data, tmp_path / "out", capsys)
    assert status == 0, err


def test_the_version_has_one_source():
    """pyproject.toml reads the version from team_code.__version__ (or repeats it)."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    if "version" in pyproject["project"].get("dynamic", []):
        dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
        assert dynamic == {"attr": "team_code.__version__"}
    else:
        assert pyproject["project"]["version"] == __version__
    assert __version__ == "0.2.0"  # model format 2: folders of 0.1.0 are refused


# --------------------------------------------------------------------------------------------
# Threads


def test_training_threads_never_follow_the_load(monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda: 7)
    assert threads.training_threads(1, cores=4) == 4
    assert threads.training_threads(2, cores=4) == 2
    assert threads.training_threads(1, requested=3, cores=4) == 3
    assert threads.choose_threads(1, cores=4) == 1  # classifying records still does


def test_the_same_training_gives_the_same_weights_whatever_the_load(data, tmp_path, monkeypatch):
    """Two trainings of the same records, options and seed, one on an idle machine and one
    on a busy one (``busy_cores`` as the load average would say): same threads, same bytes."""
    import torch

    saved = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    try:
        for busy in (0, 1):
            monkeypatch.setattr(threads, "busy_cores", lambda busy=busy: busy)
            monkeypatch.setattr(training, "busy_cores", lambda busy=busy: busy)
            status = train_model.main(
                [str(data), str(tmp_path / f"busy{busy}"), *TINY_CNN, *ONE_EPOCH]
            )
            assert status == 0
    finally:
        torch.set_num_threads(saved)
    weights = "parallel_cnn/weights.safetensors"
    idle, busy = ((tmp_path / n / weights).read_bytes() for n in ("busy0", "busy1"))
    assert idle == busy
    recorded = [
        json.loads((tmp_path / n / "manifest.json").read_text())["threads"]
        for n in ("busy0", "busy1")
    ]
    assert recorded == [2, 2]
