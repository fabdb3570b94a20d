"""scripts/gpu_check.sh: its CPU rehearsal runs every step, and its projection adds up."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check

REPO = Path(__file__).resolve().parents[1]


def test_mixed_precision_is_bf16_only_where_the_device_supports_it():
    cuda = torch.device("cuda", 0)
    assert gpu_check.amp_setting(cuda, bf16_supported=True) == "bf16"
    assert gpu_check.amp_setting(cuda, bf16_supported=False) == "fp16"
    assert gpu_check.amp_setting(torch.device("cpu"), bf16_supported=True) == "none"
    # every engine gets it, whether or not its own config has an amp_dtype option
    for name in gpu_check.ENGINES:
        model = gpu_check.engine(name, tiny=False)
        fp16 = gpu_check.train_config(model, "fp16", epochs=3)
        assert (fp16.amp, fp16.amp_dtype, fp16.epochs, fp16.patience) == (True, "fp16", 3, 0)
        # the engine's default sizes (cwt_googlenet's 0: 32 off CUDA, chosen for the card on it)
        assert fp16.batch_size == (model.config.batch_size or 32) == 32
        assert not gpu_check.train_config(model, "none", epochs=3).amp


def test_the_projection_counts_every_epoch_fold_and_record():
    figures = {
        "train_items_per_s": 100.0,
        "infer_items_per_s": 400.0,
        "prep_s_per_record": 0.01,
        "default_epochs": 30,
        "val_fraction": 0.2,
    }
    p = gpu_check.project(figures, train_items=800, n_records=1000, world=2, n_folds=5)
    # an epoch: 800 items at 100/s, then 200 validation records at 400/s on each of 2 processes
    assert p["epoch_s"] == pytest.approx(8 + 200 / 800)
    assert p["training_s"] == pytest.approx(30 * 8.25)
    # 5 folds on 4/5 of the records and a refit on all: 5 trainings; 1000 out-of-fold scores
    assert p["hybrid_s"] == pytest.approx(5 * 30 * 8.25 + 1000 / 400)
    assert p["preprocess_s"] == pytest.approx(10.0)


def test_the_cpu_rehearsal_runs_one_process_then_torchrun(records_dir, tmp_path):
    out = tmp_path / "figures"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        "GPU_CHECK_OPTIONS": "--records 12",
        "CUDA_VISIBLE_DEVICES": "",  # the rehearsal, even on a machine with a GPU
    }
    process = subprocess.run(
        ["bash", "scripts/gpu_check.sh", str(records_dir), str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "== torchrun, 2 process(es)" in process.stdout
    assert process.stdout.count("projected for 43,101 records") == 2
    single = json.loads((out / "single.json").read_text())
    ddp = json.loads((out / "torchrun.json").read_text())
    assert (single["world_size"], ddp["world_size"]) == (1, 2)
    for report in (single, ddp):
        assert report["tiny"] and report["amp"] == "none" and report["records"] == 12
        assert set(report["engines"]) == set(gpu_check.ENGINES)
        for name, figures in report["engines"].items():
            assert len(figures["epoch_seconds"]) == 2  # one warm-up epoch, one timed
            assert figures["train_items_per_s"] > 0 and figures["infer_items_per_s"] > 0
            assert all(math.isfinite(loss) for loss in figures["loss_first_last"])
            assert report["projection"][name]["records"] == 43_101
    assert single["engines"]["cwt_googlenet"]["input_shape"] == [32, 32]
    assert single["engines"]["parallel_cnn"]["input_shape"] == [12, 500]
    # the second stage found the cache filled and took the first stage's preprocessing
    for name in gpu_check.ENGINES:
        assert ddp["engines"][name]["prep_from"] == str(out / "single.json")
        prep = ddp["engines"][name]["prep_s_per_record"]
        assert prep == single["engines"][name]["prep_s_per_record"]
    assert not (out / "cache").exists()


def test_device_cpu_rehearses_every_step_and_projects_both_challenge_sizes(records_dir, tmp_path):
    out = tmp_path / "cpu.json"
    args = ["--data", str(records_dir), "--records", "4", "--device", "cpu", "--json", str(out)]
    args += ["--cache", str(tmp_path / "c")]
    assert gpu_check.main(gpu_check.get_parser().parse_args(args)) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "CPU" and report["tiny"] and report["amp"] == "none"
    assert set(report["projections"]) == {"43101", "88000"}
    for figures in report["engines"].values():
        assert figures["packed"]  # read from the packed cache, a batch at a time
        assert figures["gpu_util_mean"] is None and figures["gpu_util_readings"] == 0
    big, bigger = report["projections"]["43101"], report["projections"]["88000"]
    assert bigger["parallel_cnn"]["training_s"] > big["parallel_cnn"]["training_s"] > 0
