"""Training killed mid-epoch resumes from its last checkpoint (train_model.py --resume)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

OPTIONS = [
    "--set", "parallel_cnn.fs_hz=100", "--set", "parallel_cnn.length=1000",
    "--set", "parallel_cnn.filters=8", "--set", "parallel_cnn.n_blocks=3",
    "--set", "parallel_cnn.epochs=6", "--set", "parallel_cnn.patience=0",
    "--set", "parallel_cnn.batch_size=4", "--set", "parallel_cnn.progress=false",
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
    done_epochs = len(history.read_text().splitlines()) - 1
    assert 2 <= done_epochs < 6

    second = _train(challenge_dir, model, "--resume")
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out
    assert f"after epoch {done_epochs}" in out
    rows = history.read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(e) for e in range(1, 7)]
    assert (model / "manifest.json").is_file()
    assert (model / "parallel_cnn" / "weights.safetensors").is_file()
