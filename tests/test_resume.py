"""Training killed mid-epoch resumes from its last checkpoint (train_model.py --resume)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from team_code.context import RunContext, Task
from team_code.nn.training import load_checkpoint

REPO = Path(__file__).resolve().parents[1]

OPTIONS = [
    "--set", "parallel_cnn.fs_hz=100", "--set", "parallel_cnn.length=1000",
    "--set", "parallel_cnn.filters=8", "--set", "parallel_cnn.n_blocks=3",
    "--set", "parallel_cnn.epochs=6", "--set", "parallel_cnn.patience=0",
    "--set", "parallel_cnn.batch_size=4", "--no-progress",
]  # fmt: skip


def _train(challenge_dir, model, *extra):
    return subprocess.Popen(
        [sys.executable, "train_model.py", challenge_dir, model, "--classifiers", "parallel_cnn",
         *OPTIONS, *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def test_killed_training_resumes(challenge_dir, tmp_path):
    model = tmp_path / "model"
    work = model / ".work" / "parallel_cnn"
    history = work / "history.csv"
    first = _train(challenge_dir, model)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) >= 3:  # 2 epochs done
            break
        time.sleep(0.05)
    assert first.poll() is None, "training ended before it could be interrupted"
    time.sleep(0.3)  # into the next epoch
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (work / "checkpoint.pt").is_file()
    assert not (model / "manifest.json").exists()
    # What the resume continues is the checkpoint's epoch (the kill may land between the
    # checkpoint and the history written after it).
    done_epochs = int(load_checkpoint(work)["epoch"])
    assert 2 <= done_epochs < 6

    second = _train(challenge_dir, model, "--resume")
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out
    assert f"after epoch {done_epochs}" in out
    rows = history.read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(e) for e in range(1, 7)]
    assert (model / "manifest.json").is_file()
    assert (model / "parallel_cnn" / "weights.safetensors").is_file()


# The hybrid of every engine at tiny sizes: every member and both folds train in seconds.
HYBRID_OPTIONS = [
    "--preset", "cpu", "--no-progress", "--threads", "1",
    "--set", "hybrid.members=rules,parallel_cnn,cwt_googlenet",
    "--set", "parallel_cnn.fs_hz=100", "--set", "parallel_cnn.length=500",
    "--set", "parallel_cnn.filters=4", "--set", "parallel_cnn.epochs=3",
    "--set", "cwt_googlenet.image_size=32", "--set", "cwt_googlenet.epochs=2",
    "--set", "cwt_googlenet.fs_hz=100", "--set", "cwt_googlenet.n_scales=12",
    "--set", "hybrid.n_folds=2",
]  # fmt: skip


def _train_hybrid(data, model, *extra):
    return subprocess.Popen(
        [sys.executable, "train_model.py", str(data), str(model), *HYBRID_OPTIONS, *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )  # fmt: skip


def test_default_hybrid_killed_inside_a_fold_resumes_to_the_uninterrupted_model(
    tmp_path, one_thread
):
    import json

    import numpy as np

    from team_code.data.records import RecordSet, find_records
    from team_code.data.synth import generate_dataset
    from team_code.harness import load_model

    data = tmp_path / "data"
    generate_dataset(data, 16, seed=3, fs=250, duration_s=6)
    whole_model, killed_model = tmp_path / "whole", tmp_path / "killed"
    whole = _train_hybrid(data, whole_model)  # the uninterrupted run, alongside
    killed = _train_hybrid(data, killed_model)
    work = killed_model / ".work" / "hybrid"
    # Inside fold 2 of the last member: its first epoch is checkpointed, its outputs are not.
    checkpoint = work / "cwt_googlenet" / "fold2" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and killed.poll() is None and not checkpoint.is_file():
        time.sleep(0.02)
    assert killed.poll() is None, killed.communicate()[0]  # ended before it was interrupted
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert checkpoint.is_file()
    assert not (checkpoint.parent / "outputs.safetensors").exists()
    assert not json.loads((checkpoint.parent / "fold.json").read_text())["finished"]
    assert json.loads((work / "parallel_cnn" / "fold2" / "fold.json").read_text())["finished"]
    assert not (work / "parallel_cnn" / "fold2" / "checkpoint.pt").exists()  # no longer needed
    assert not (killed_model / "manifest.json").exists()

    resumed = _train_hybrid(data, killed_model, "--resume")
    log, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, log
    expected_lines = [
        *(f"fold 1/2: {member} read back" for member in ("rules", "parallel_cnn", "cwt_googlenet")),
        "fold 2/2: rules read back",
        "fold 2/2: parallel_cnn read back",
        f"resuming from {checkpoint.parent}",  # cwt_googlenet, fold 2, mid-fold
        "fitting cwt_googlenet on all 16 records",  # the refit had not started
    ]
    assert [line for line in expected_lines if line not in log] == [], log
    whole_log, _ = whole.communicate(timeout=600)
    assert whole.returncode == 0, whole_log
    assert "read back" not in whole_log and "resuming" not in whole_log

    # The saved model is the same, file for file (configs included: nothing of the run is
    # saved with a model; the training summaries hold timings), and so are its outputs.
    run_facts = {"training.json", "parallel_cnn.json"}
    files = sorted(p.relative_to(whole_model) for p in (whole_model / "hybrid").rglob("*"))
    assert files == sorted(
        p.relative_to(killed_model) for p in (killed_model / "hybrid").rglob("*")
    )
    same = [f for f in files if f.name not in run_facts and (whole_model / f).is_file()]
    assert {f.name for f in same} >= {"fuser.safetensors", "weights.safetensors", "config.json"}
    for file in same:
        assert (whole_model / file).read_bytes() == (killed_model / file).read_bytes(), file
    records = RecordSet(find_records(data))
    expected, got = load_model(whole_model), load_model(killed_model)
    assert np.array_equal(got.thresholds_, expected.thresholds_)
    assert np.array_equal(got.predict_proba(records), expected.predict_proba(records))


def test_hybrid_reads_back_only_the_parts_trained_with_the_same_settings(
    tmp_path, capsys, one_thread
):
    import dataclasses

    import numpy as np

    from team_code.classifiers.hybrid import HybridClassifier, HybridConfig
    from team_code.classifiers.parallel_cnn import ParallelCNNClassifier
    from team_code.data.labels import scored_classes
    from team_code.data.records import RecordSet
    from team_code.data.synth import generate_dataset

    records = RecordSet(generate_dataset(tmp_path / "data", 16, seed=3, fs=250, duration_s=6))
    classes = scored_classes().codes
    run = RunContext(workdir=str(tmp_path / "work"), progress=False)
    resume = run.replace(resume=True)
    task = Task.of_classes(classes)
    cnn = dataclasses.asdict(ParallelCNNClassifier.quick_config())
    config = HybridConfig(
        members=("prevalence", "parallel_cnn"),
        n_folds=2,
        member_options={"parallel_cnn": cnn},
    )
    first = HybridClassifier(config).fit(records, task, run)
    assert "read back" not in capsys.readouterr().err

    again = HybridClassifier(config).fit(records, task, resume)
    log = capsys.readouterr().err
    assert "fitting" not in log and log.count("read back") == 6  # 2 members x (2 folds + refit)
    assert np.array_equal(again.predict_proba(records), first.predict_proba(records))

    changed = dataclasses.replace(config, member_options={"parallel_cnn": {**cnn, "seed": 1}})
    HybridClassifier(changed).fit(records, task, resume)
    log = capsys.readouterr().err
    assert log.count("trained with other settings") == 3
    assert log.count("fitting parallel_cnn") == 3
    read_back = [line for line in log.splitlines() if "read back" in line]
    assert len(read_back) == 3 and all("prevalence" in line for line in read_back)

    # A finished part whose outputs are gone is trained again (and parallel_cnn's parts, last
    # trained with seed 1, are too).
    (tmp_path / "work" / "prevalence" / "fold1" / "outputs.safetensors").unlink()
    HybridClassifier(config).fit(records, task, resume)
    log = capsys.readouterr().err
    assert "fold 1/2: fitting prevalence" in log and log.count("fitting parallel_cnn") == 3
    assert log.count("read back") == 2

    # A finished part saved by a kit that kept no decisions beside its scores (the member's
    # own labels, which a joint decision policy needs) is trained again.
    from team_code.fileio import load_arrays, save_arrays

    outputs = tmp_path / "work" / "prevalence" / "fold2" / "outputs.safetensors"
    save_arrays(outputs, {k: v for k, v in load_arrays(outputs).items() if k != "labels"})
    HybridClassifier(config).fit(records, task, resume)
    log = capsys.readouterr().err
    assert "keeps no decisions (an earlier kit); training afresh" in log
    assert "fold 2/2: fitting prevalence" in log and "fold 1/2: prevalence read back" in log

    HybridClassifier(config).fit(records, task, run)  # no resume: every part trains afresh
    assert "read back" not in capsys.readouterr().err


# In-process interruptions: a log that raises at an epoch's line stops the training there,
# after the previous epoch's checkpoint and before this one's, like a kill.


class _Killed(Exception):
    """Raised by :func:`_killing_log` to stop a training mid-run."""


def _killing_log(at: str, lines: list[str]):
    def log(message: str) -> None:
        lines.append(message)
        if message.startswith(at):
            raise _Killed(message)

    return log


def _lone(name: str):
    import dataclasses

    from team_code.classifiers import registry

    cls = registry.get(name)
    return cls, dataclasses.replace(cls.quick_config(), epochs=4, patience=0)


def _fit_lone(name, records, workdir, resume=False, log=None, **changes):
    import dataclasses

    cls, config = _lone(name)
    ctx = RunContext(cache_dir="none", workdir=str(workdir), resume=resume, progress=False)
    if log is not None:
        ctx = ctx.replace(log=log)
    return cls(dataclasses.replace(config, **changes)).fit(records, Task(), ctx)


def _synthetic_records(folder, n=16, seed=3, prefix="SYN"):
    from team_code.data.records import RecordSet
    from team_code.data.synth import generate_dataset

    return RecordSet(generate_dataset(folder, n, seed=seed, fs=250, duration_s=6, prefix=prefix))


@pytest.mark.parametrize("name", ["parallel_cnn", "cwt_googlenet"])
def test_lone_engine_killed_and_resumed_equals_the_uninterrupted_training(
    name, tmp_path, one_thread
):
    import numpy as np

    records = _synthetic_records(tmp_path / "data")
    whole = _fit_lone(name, records, tmp_path / "whole", log=lambda message: None)
    lines: list[str] = []
    with pytest.raises(_Killed):
        _fit_lone(name, records, tmp_path / "killed", log=_killing_log("epoch 3/4", lines))
    resumed_lines: list[str] = []
    resumed = _fit_lone(name, records, tmp_path / "killed", True, resumed_lines.append)
    assert any("after epoch 2" in line for line in resumed_lines), resumed_lines
    expected, got = whole.network_.state_dict(), resumed.network_.state_dict()
    assert expected.keys() == got.keys()
    assert all(np.array_equal(expected[k].numpy(), got[k].numpy()) for k in expected)
    assert np.array_equal(resumed.thresholds_, whole.thresholds_)
    assert np.array_equal(resumed.predict_proba(records), whole.predict_proba(records))


def test_lone_engine_resumes_only_a_checkpoint_of_its_own_run(tmp_path, one_thread):
    """Other records, relabelled headers or another lr start afresh and say so; the same run
    resumes."""
    import shutil

    data = tmp_path / "data"
    records = _synthetic_records(data)
    with pytest.raises(_Killed):
        _fit_lone("parallel_cnn", records, tmp_path / "run", log=_killing_log("epoch 3/4", []))

    def resume(records, **changes) -> str:
        work = tmp_path / f"try{len(list(tmp_path.glob('try*')))}"
        shutil.copytree(tmp_path / "run", work)
        lines: list[str] = []
        _fit_lone("parallel_cnn", records, work, True, lines.append, **changes)
        return "\n".join(lines)

    same = resume(records)
    assert "after epoch 2" in same and "another run" not in same
    for log in (
        resume(_synthetic_records(tmp_path / "other", seed=4)),  # other records
        resume(records, lr=2e-3),  # another learning rate
    ):
        assert "is of another run" in log and "training afresh" in log, log
        assert "resuming" not in log

    # The same signal files, one header relabelled.
    _relabel_first(data)
    log = resume(_synthetic_records_from(data))
    assert "is of another run" in log and "resuming" not in log


def _synthetic_records_from(folder):
    from team_code.data.records import RecordSet

    return RecordSet.from_folder(folder)


def _relabel_first(folder) -> None:
    """Give the first record's header other #Dx labels (the signal file is left as it is)."""
    header = sorted(folder.glob("*.hea"))[0]
    text = header.read_text()
    dx = next(line for line in text.splitlines() if line.startswith("#Dx"))
    header.write_text(
        text.replace(dx, "#Dx: 164889003" if "164889003" not in dx else "#Dx: 426783006")
    )


def test_hybrid_parts_of_relabelled_records_are_trained_afresh(tmp_path, capsys):
    from team_code.classifiers.hybrid import HybridClassifier, HybridConfig

    data = tmp_path / "data"
    records = _synthetic_records(data)
    run = RunContext(workdir=str(tmp_path / "work"), progress=False, cache_dir="none")
    config = HybridConfig(members=("prevalence",), n_folds=2)
    task = Task()
    HybridClassifier(config).fit(records, task, run)
    capsys.readouterr()
    HybridClassifier(config).fit(_synthetic_records_from(data), task, run.replace(resume=True))
    assert capsys.readouterr().err.count("read back") == 3  # 2 folds and the refit

    _relabel_first(data)
    HybridClassifier(config).fit(_synthetic_records_from(data), task, run.replace(resume=True))
    log = capsys.readouterr().err
    assert "read back" not in log  # the record is in one fold's held-out, the other's training
    assert log.count("trained with other settings") == 3, log


def test_run_key_follows_the_records_contents_not_their_paths_or_times(tmp_path):
    import dataclasses
    import os
    import shutil

    from team_code.classifiers.parallel_cnn import ParallelCNNClassifier
    from team_code.runs import run_key

    records = _synthetic_records(tmp_path / "data", n=4)
    config = ParallelCNNClassifier.quick_config()
    key = run_key("parallel_cnn", config, Task(), records)
    shutil.copytree(tmp_path / "data", tmp_path / "copy")
    for path in (tmp_path / "copy").iterdir():
        os.utime(path, (1e9, 1e9))
    assert (
        run_key("parallel_cnn", config, Task(), _synthetic_records_from(tmp_path / "copy")) == key
    )
    signal_file = sorted((tmp_path / "copy").glob("*.mat"))[0]
    data = bytearray(signal_file.read_bytes())
    data[-1] ^= 1  # one sample's lowest bit
    signal_file.write_bytes(bytes(data))
    changed = _synthetic_records_from(tmp_path / "copy")
    assert run_key("parallel_cnn", config, Task(), changed) != key
    other_lr = dataclasses.replace(config, lr=config.lr * 2)
    assert run_key("parallel_cnn", other_lr, Task(), records) != key
    assert run_key("parallel_cnn", config, Task("2021"), records) != key
    in_memory = list(records)
    assert run_key("parallel_cnn", config, Task(), in_memory) != run_key(
        "parallel_cnn",
        config,
        Task(),
        [dataclasses.replace(in_memory[0], labels=("164889003",)), *in_memory[1:]],
    )


def test_run_key_follows_the_files_options_name_and_the_tables_weights(tmp_path, monkeypatch):
    """A resume must not continue a run whose beat data, ImageNet weights ($-named as well),
    learned delineator weights or edited custom scoring table differ: each is in the key."""
    import dataclasses

    from team_code import runs
    from team_code.classifiers.beats import BeatsClassifier
    from team_code.classifiers.cwt_googlenet import CWTGoogLeNetClassifier
    from team_code.classifiers.rules import RulesClassifier
    from team_code.data import labels
    from team_code.nn import googlenet
    from team_code.nn.delineator import net

    assert runs.GOOGLENET_WEIGHTS_ENV == googlenet.WEIGHTS_ENV
    assert runs.DELINEATOR_WEIGHTS_ENV == net.WEIGHTS_ENV
    assert runs.DELINEATOR_WEIGHTS == net.WEIGHTS
    records = _synthetic_records(tmp_path / "data", n=2)

    def moves_with(path: Path, name: str, config, env: str = "") -> str:
        """The key before and after ``path`` (named by ``$env`` where given) changes."""
        path.write_bytes(b"first")
        if env:
            monkeypatch.setenv(env, str(path))
        key = runs.run_key(name, config, Task(), records)
        path.write_bytes(b"second")
        assert runs.run_key(name, config, Task(), records) != key
        return key

    beat_data = tmp_path / "mitdb"
    beat_data.mkdir()
    beats = dataclasses.replace(BeatsClassifier.quick_config(), beat_data=(str(beat_data),))
    moves_with(beat_data / "100.dat", "beats", beats)
    cwt = dataclasses.replace(CWTGoogLeNetClassifier.quick_config(), pretrained_weights="")
    key = moves_with(tmp_path / "imagenet.pth", "cwt_googlenet", cwt, runs.GOOGLENET_WEIGHTS_ENV)
    monkeypatch.delenv(runs.GOOGLENET_WEIGHTS_ENV)
    assert runs.run_key("cwt_googlenet", cwt, Task(), records) != key
    rules = dataclasses.replace(RulesClassifier.Config(), delineator="cnn")
    moves_with(tmp_path / "delineator.safetensors", "rules", rules, runs.DELINEATOR_WEIGHTS_ENV)

    table = tmp_path / "weights.csv"
    task = Task("2020")
    classes = ",".join(task.scored.codes)
    rows = [
        ",".join([code] + ["1" if i == j else "0" for j in range(len(task.scored.codes))])
        for i, code in enumerate(task.scored.codes)
    ]
    table.write_text("\n".join([f",{classes}", *rows]) + "\n")
    plain = runs.run_key("rules", RulesClassifier.Config(), Task(str(table)), records)
    rows[0] = rows[0].replace(",0", ",0.5", 1)
    table.write_text("\n".join([f",{classes}", *rows]) + "\n")
    labels._scored_classes.cache_clear()  # a resume is a new process: it reads the file again
    assert runs.run_key("rules", RulesClassifier.Config(), Task(str(table)), records) != plain
