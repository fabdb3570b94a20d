"""Presets, thread counts and progress output: the run settings of train_model.py."""

from __future__ import annotations

import io
import json
import os

import pytest

import train_model
from team_code import harness, presets, threads
from team_code.data.synth import generate_dataset
from team_code.progress import progress

# ---------------------------------------------------------------------------------------------
# Presets


def test_cpu_preset_fills_members_and_user_options_win():
    wanted = {"hybrid", "rules", "parallel_cnn", "cwt_googlenet"}
    merged = presets.with_preset("cpu", {"parallel_cnn": {"epochs": "2"}}, wanted)
    assert merged["parallel_cnn"]["epochs"] == "2"  # --set wins
    assert merged["parallel_cnn"]["length"] == "2500"  # the preset fills the rest
    assert merged["cwt_googlenet"]["image_size"] == "64"
    assert merged["hybrid"]["n_folds"] == "3"
    assert "beats" not in merged  # neither trained nor a member: left out


def test_paper_preset_changes_nothing_and_unknown_preset_is_named():
    assert presets.with_preset("paper", {"rules": {"tune": "false"}}, {"rules"}) == {
        "rules": {"tune": "false"}
    }
    with pytest.raises(ValueError, match=r"unknown preset 'gpu'.*cpu, paper"):
        presets.preset_options("gpu")


def test_every_preset_option_is_a_real_option():
    from team_code.classifiers import registry
    from team_code.classifiers.base import apply_options

    for families in presets.PRESETS.values():
        for family, values in families.items():
            apply_options(registry.get(family).Config, values)  # raises on an unknown field


def test_train_model_preset_reaches_the_saved_models(tmp_path, one_thread):
    data = tmp_path / "data"
    generate_dataset(data, 12, seed=5)
    model = tmp_path / "model"
    status = train_model.main(
        [
            str(data),
            str(model),
            "--classifiers",
            "parallel_cnn",
            "--preset",
            "cpu",
            "--set",
            "parallel_cnn.epochs=1",
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    assert status == 0
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["preset"] == "cpu"
    config = manifest["classifiers"]["parallel_cnn"]["config"]
    assert (config["fs_hz"], config["length"], config["filters"]) == (250.0, 2500, 16)
    assert config["epochs"] == 1  # --set beats the preset
    assert "progress" not in config  # a run setting, not saved with the model


def test_train_model_rejects_an_unknown_preset(capsys):
    with pytest.raises(SystemExit) as stop:
        train_model.main(["data", "model", "--preset", "fast"])
    assert stop.value.code == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_a_run_setting_given_as_an_option_names_its_flag():
    with pytest.raises(ValueError, match=r"progress.*--no-progress"):
        harness.configure(["parallel_cnn"], {"parallel_cnn": {"progress": "false"}})
    with pytest.raises(ValueError, match=r"device.*--device"):
        harness.configure(["cwt_googlenet"], {"cwt_googlenet": {"device": "cpu"}})
    # a member of no trained ensemble (this hybrid fuses the rules only): said so
    with pytest.raises(ValueError, match="not trained: parallel_cnn"):
        harness.configure(
            ["hybrid"], {"hybrid": {"members": "rules"}, "parallel_cnn": {"epochs": "2"}}
        )
    # the default hybrid considers every engine: their options reach it
    configs = harness.configure(["hybrid"], {"parallel_cnn": {"epochs": "2"}})
    assert configs["hybrid"].member_options["parallel_cnn"]["epochs"] == "2"


# ---------------------------------------------------------------------------------------------
# Threads


@pytest.mark.parametrize(
    "processes,cores,busy,expected",
    [
        (1, 2, 0, 2),  # an idle 2-core machine: both cores
        (1, 2, 1, 1),  # another process busy on one core: one thread, never two fighting
        (1, 2, 5, 1),  # overloaded: still at least one
        (2, 2, 0, 1),  # two workers share two cores
        (3, 16, 1, 5),  # 15 free cores among 3 processes
    ],
)
def test_threads_never_exceed_free_cores(processes, cores, busy, expected):
    assert threads.choose_threads(processes, cores=cores, busy=busy) == expected
    assert threads.choose_threads(processes, cores=cores, busy=busy) * processes <= max(
        processes, cores - busy
    )


def test_requested_threads_win(monkeypatch):
    assert threads.choose_threads(4, requested=3, cores=2, busy=0) == 3
    with pytest.raises(ValueError, match=">= 1"):
        threads.choose_threads(1, requested=0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.requested_threads(None) == 2
    assert threads.requested_threads(1) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert threads.requested_threads(None) is None


def test_available_cores_follow_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert threads.available_cores() == 3


def test_apply_threads_sets_torch_and_the_environment(monkeypatch):
    import torch

    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(name, raising=False)
    try:
        threads.apply_threads(1)
        assert torch.get_num_threads() == 1
        assert os.environ["OMP_NUM_THREADS"] == "1"
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# Progress


class _Clock:
    """A fake perf_counter that advances by ``step`` seconds per call."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_progress_in_a_log_is_a_few_plain_lines(monkeypatch):
    monkeypatch.setattr("team_code.progress.time.perf_counter", _Clock(10.0))
    stream = io.StringIO()  # not a terminal
    items = list(progress(range(20), desc="preprocessing", unit="rec", stream=stream))
    assert items == list(range(20))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert 1 < len(lines) <= 20 * 10 / 30 + 1  # one line per 30 s at most, plus the last
    assert lines[-1].startswith("preprocessing: 20/20 rec in")


def test_short_passes_and_disabled_progress_are_silent(monkeypatch):
    monkeypatch.setattr("team_code.progress.time.perf_counter", _Clock(0.001))
    stream = io.StringIO()
    assert list(progress(range(5), desc="x", stream=stream)) == list(range(5))
    assert stream.getvalue() == ""
    monkeypatch.setattr("team_code.progress.time.perf_counter", _Clock(100.0))
    assert list(progress(range(5), desc="x", stream=stream, enabled=False)) == list(range(5))
    assert stream.getvalue() == ""


def test_progress_on_a_terminal_is_a_bar():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    assert list(progress(range(3), desc="epoch 1/2", stream=stream)) == [0, 1, 2]
    assert "epoch 1/2" in stream.getvalue() and "\r" in stream.getvalue()


def test_run_model_threads_option(tmp_path, capsys):
    import run_model

    data = tmp_path / "data"
    generate_dataset(data, 4, seed=6)
    harness.train(data, tmp_path / "model", ["prevalence"], log=lambda message: None)
    outputs = tmp_path / "outputs"
    assert run_model.main([str(tmp_path / "model"), str(data), str(outputs), "--threads", "0"]) == 2
    assert "threads must be >= 1" in capsys.readouterr().err
    assert not outputs.exists()  # a usage error writes nothing
    args = [str(tmp_path / "model"), str(data), str(outputs), "--threads", "1", "--no-progress"]
    assert run_model.main(args) == 0
    assert len(list(outputs.glob("*.csv"))) == 4
