"""DistributedDataParallel on two CPU processes (gloo), launched as torchrun would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import sys, json
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from team_code.nn import distributed
    from team_code.nn.training import TrainConfig, fit

    torch.set_num_threads(1)
    out = sys.argv[1]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=g)
    y = (x[:, :1] - x[:, 1:2] > 0).float()
    data = TensorDataset(x, y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
    config = TrainConfig(epochs=3, batch_size=16, lr=1e-2, progress=False)
    result = fit(model, data, data, nn.BCEWithLogitsLoss(), config, workdir=out + "/work",
                 log=None)
    rank = distributed.rank()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(state, f"{out}/rank{rank}.pt")
    with open(f"{out}/rank{rank}.json", "w") as handle:
        json.dump({"world": distributed.world_size(), "history": result.history}, handle)
    distributed.cleanup()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes_agree_and_learn(tmp_path):
    """About 6 s on an idle 2-core machine (two fresh torch imports); 25 s under heavy load."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = free_port()
    processes = []
    for rank in range(2):
        env = dict(
            os.environ,
            WORLD_SIZE="2",
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            PYTHONPATH=str(REPO),
            OMP_NUM_THREADS="1",
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, str(script), str(tmp_path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output
    import json

    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [i["world"] for i in infos] == [2, 2]
    for key in states[0]:  # parameters and BatchNorm buffers alike
        assert torch.equal(states[0][key], states[1][key]), key
    history = infos[0]["history"]
    losses = [[(h["train_loss"], h["val_loss"]) for h in i["history"]] for i in infos]
    assert losses[0] == losses[1]  # losses are averaged over both processes
    assert history[-1]["val_loss"] < history[0]["val_loss"] - 0.05
    # only rank 0 wrote the checkpoint and history
    assert (tmp_path / "work" / "checkpoint.pt").is_file()
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [
        "checkpoint.pt",
        "history.csv",
    ]
