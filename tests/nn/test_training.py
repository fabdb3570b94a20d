"""The training core: learning, seeds, resume, checkpoints, sampling, devices."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from team_code.nn.device import autocast, pick_device
from team_code.nn.training import (
    EpochSampler,
    TrainConfig,
    balanced_weights,
    fit,
    load_checkpoint,
    predict,
)


def planted_data(n=256, seed=0):
    """Class 0 is positive exactly when feature 0 + feature 1 > 0; class 1 is noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = torch.stack(
        [(x[:, 0] + x[:, 1] > 0).float(), (torch.rand(n, generator=g) > 0.5).float()], 1
    )
    return TensorDataset(x, y)


def small_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))


CONFIG = TrainConfig(epochs=4, batch_size=16, lr=1e-2, progress=False, grad_clip=1.0, l2=1e-4)


def test_fit_learns_planted_class():
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(1)
    train, val = planted_data(256, 0), planted_data(128, 1)
    model = small_model()
    result = fit(model, train, val, nn.BCEWithLogitsLoss(), CONFIG, log=None)
    losses = [h["val_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.1
    scores = predict(model, val, CONFIG)
    assert scores.shape == (128, 2)
    assert roc_auc_score(val.tensors[1][:, 0].numpy(), scores[:, 0]) > 0.95
    # the model ends on the best epoch's state
    assert result.best_loss == min(losses)
    assert result.best_epoch == 1 + int(np.argmin(losses))
    for key, value in model.state_dict().items():
        assert torch.equal(value, result.best_state_dict[key])


def test_same_seed_same_weights_other_seed_differs():
    data = planted_data(96)
    states = []
    for seed in (3, 3, 4):
        model = small_model()
        fit(
            model,
            data,
            None,
            nn.BCEWithLogitsLoss(),
            TrainConfig(epochs=2, batch_size=8, lr=1e-2, seed=seed, progress=False),
            log=None,
        )
        states.append(model.state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key])
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_resume_equals_uninterrupted_run(tmp_path):
    data, val = planted_data(96), planted_data(32, 1)
    config = TrainConfig(
        epochs=4,
        batch_size=8,
        lr=5e-3,
        progress=False,
        lr_decay_rate=0.5,
        lr_decay_steps=10,
        grad_clip=0.5,
        l1=1e-4,
    )
    full = small_model()
    whole = fit(full, data, val, nn.BCEWithLogitsLoss(), config, workdir=tmp_path / "a", log=None)

    # an interrupted run: a loss that raises during epoch 3
    calls = {"n": 0}
    per_epoch = 96 // 8 + 32 // 16  # 12 training batches + 2 validation batches of 16
    start = 96 // 16  # the initial weights' loss: the 96 training items in batches of 16

    def failing_loss(out, y):
        calls["n"] += 1
        if calls["n"] > start + 2 * per_epoch + 3:  # three batches into epoch 3
            raise KeyboardInterrupt
        return nn.functional.binary_cross_entropy_with_logits(out, y)

    with pytest.raises(KeyboardInterrupt):
        fit(small_model(), data, val, failing_loss, config, workdir=tmp_path / "b", log=None)
    assert load_checkpoint(tmp_path / "b")["epoch"] == 2
    resumed_model = small_model(seed=99)  # its own weights are replaced by the checkpoint's
    resumed = fit(
        resumed_model,
        data,
        val,
        nn.BCEWithLogitsLoss(),
        config,
        workdir=tmp_path / "b",
        resume=tmp_path / "b" / "checkpoint.pt",
        log=None,
    )
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    assert [h["val_loss"] for h in whole.history] == [h["val_loss"] for h in resumed.history]
    assert resumed.best_epoch == whole.best_epoch
    with open(tmp_path / "b" / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "lr", "seconds"}
    assert float(rows[3]["lr"]) < float(rows[0]["lr"])  # the exponential schedule ran


def test_checkpoint_loads_with_weights_only(tmp_path):
    fit(
        small_model(),
        planted_data(32),
        None,
        nn.BCEWithLogitsLoss(),
        TrainConfig(epochs=1, batch_size=8, progress=False),
        workdir=tmp_path,
        log=None,
    )
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and "model" in checkpoint and "rng" in checkpoint
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_early_stopping_by_patience():
    data = planted_data(64)
    # a learning rate of zero never improves after the first epoch
    config = TrainConfig(epochs=10, batch_size=16, lr=0.0, patience=2, progress=False)
    result = fit(small_model(), data, data, nn.BCEWithLogitsLoss(), config, log=None)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1


def test_balanced_weights_and_sampler():
    labels = np.zeros((100, 2), bool)
    labels[:10, 0] = True  # 10 of class 0, 90 with no class
    weights = balanced_weights(labels)
    assert np.allclose(weights[:10], 0.1) and np.allclose(weights[10:], 1 / 90)
    sampler = EpochSampler(100, seed=1, weights=weights)
    sampler.set_epoch(0)
    drawn = np.array(list(sampler))
    assert 0.35 < np.mean(drawn < 10) < 0.65  # about half the draws from the rare class
    with pytest.raises(ValueError, match="balanced_sampling"):
        fit(
            small_model(),
            planted_data(16),
            None,
            nn.BCEWithLogitsLoss(),
            TrainConfig(epochs=1, balanced_sampling=True, progress=False),
            log=None,
        )


def test_sampler_shards_cover_every_index_once():
    shards = []
    for rank in range(3):
        sampler = EpochSampler(10, seed=5, rank=rank, world_size=3)
        sampler.set_epoch(2)
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler) == 4
    flat = [i for shard in shards for i in shard]
    assert set(flat) == set(range(10)) and len(flat) == 12  # padded by repeats to 3 * 4
    again = EpochSampler(10, seed=5, rank=0, world_size=3)
    again.set_epoch(2)
    assert list(again) == shards[0]
    again.set_epoch(3)
    assert list(again) != shards[0]


def test_pick_device_cpu_and_errors(monkeypatch):
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pick_device("cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_cuda_mixed_precision_fit(dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    train, val = planted_data(256, 0), planted_data(128, 1)
    model = small_model()
    config = TrainConfig(
        epochs=4, batch_size=16, lr=1e-2, device="cuda", amp=True, amp_dtype=dtype, progress=False
    )
    result = fit(model, train, val, nn.BCEWithLogitsLoss(), config, log=None)
    assert next(model.parameters()).device.type == "cuda"
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    with autocast(torch.device("cuda"), True, dtype):
        out = model(val.tensors[0][:4].cuda())
    assert out.dtype in (torch.bfloat16, torch.float16)


def test_named_tuple_outputs_reach_the_loss_as_float():
    from collections import namedtuple

    from team_code.nn.training import _to_float

    Outputs = namedtuple("Outputs", ["logits", "aux"])
    out = _to_float(Outputs(torch.ones(2, dtype=torch.bfloat16), [torch.zeros(1).half()]))
    assert isinstance(out, Outputs)
    assert out.logits.dtype == torch.float32 and out.aux[0].dtype == torch.float32


def test_amp_dtype_auto_picks_bf16_only_where_supported(monkeypatch):
    from team_code.nn.device import amp_dtype

    assert amp_dtype("bf16") == torch.bfloat16 and amp_dtype("FP16") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype("auto") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # V100, T4
    assert amp_dtype("auto") == torch.float16
    with pytest.raises(ValueError, match="'auto', 'bf16' or 'fp16'"):
        amp_dtype("fp8")


def test_a_checkpoint_resumes_only_under_its_own_key(tmp_path):
    data, val = planted_data(32), planted_data(16, 1)
    config = TrainConfig(epochs=2, batch_size=8, lr=5e-3, progress=False)
    fit(small_model(), data, val, nn.BCEWithLogitsLoss(), config, workdir=tmp_path, key="run-a")
    assert load_checkpoint(tmp_path)["key"] == "run-a"
    for key, resumed in (("run-a", True), ("run-b", False), (None, True)):
        lines: list[str] = []
        fit(
            small_model(), data, val, nn.BCEWithLogitsLoss(), config,
            workdir=tmp_path / key if key == "run-b" else None,
            resume=tmp_path, key=key, log=lines.append,
        )  # fmt: skip
        text = "\n".join(lines)
        assert ("resuming from" in text) == resumed, (key, text)
        assert ("is of another run" in text) == (not resumed), (key, text)


def test_a_cpu_checkpoint_resumes_where_the_scaler_is_on(tmp_path, monkeypatch):
    """A checkpoint written on a CPU or a bf16 card holds no GradScaler state; resumed where
    fp16 turns the scaler on (a V100, a T4), the empty state is not loaded into it (torch
    refuses an empty state for an enabled scaler)."""
    import team_code.nn.training as training

    data, config = planted_data(32), TrainConfig(epochs=2, batch_size=8, progress=False)
    fit(small_model(), data, None, nn.BCEWithLogitsLoss(), config, workdir=tmp_path, log=None)
    assert not load_checkpoint(tmp_path)["scaler"]

    class EnabledScaler(torch.amp.GradScaler):
        """Enabled as on an fp16 card; steps as a disabled one, so that the CPU can train."""

        def is_enabled(self):
            return True

        def load_state_dict(self, state):
            if not state:
                raise RuntimeError("The source state dict is empty")
            super().load_state_dict(state)

    monkeypatch.setattr(training.torch.amp, "GradScaler", EnabledScaler)
    longer = TrainConfig(epochs=3, batch_size=8, progress=False)
    lines: list[str] = []
    fit(
        small_model(), data, None, nn.BCEWithLogitsLoss(), longer, workdir=tmp_path,
        resume=tmp_path, log=lines.append,
    )  # fmt: skip
    assert any("resuming from" in line and "after epoch 2" in line for line in lines), lines
