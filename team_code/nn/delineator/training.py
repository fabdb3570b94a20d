"""Training of the learned delineator's network (:func:`train`, :class:`TrainConfig`).

Each crop of a lead's annotated span is augmented (gain, baseline wander, white noise, a
random time shift of the crop); training is deterministic given the seed on one thread.
Options compared and not shipped (their defaults keep the shipped recipe): extra loss weight
near marked boundaries (``TrainConfig.edge_weight``), a dilated bottleneck
(``NetConfig.dilation``), no input low-pass (``NetConfig.lowpass_hz``, kept with the
weights), two input channels, the lead with and without the low-pass or the lead and the
record's context (``NetConfig.input_channels`` and ``second_channel``, kept with the weights;
a file without the fields holds a one-channel network).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch
from torch import nn

from team_code.dsp import filters
from team_code.nn.delineator.inputs import FS, IGNORE, _with_channels
from team_code.nn.delineator.net import NetConfig, SegmentNet


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training of :class:`SegmentNet` (augmentations in units of the normalised lead)."""

    epochs: int = 70
    batch: int = 32
    crop: int = 1024  # samples per training crop (the random crop is the time shift)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    gain: tuple[float, float] = (0.6, 1.5)  # random gain range
    wander: float = 0.4  # largest baseline-wander amplitude (sum of two slow sinusoids)
    wander_hz: tuple[float, float] = (0.05, 0.6)
    noise: float = 0.08  # largest white-noise SD
    seed: int = 0
    edge_weight: float = 0.0  # extra loss weight of samples near a marked wave boundary
    edge_samples: int = 2  # "near": at most this many samples from the boundary
    lead_dropout: float = 0.0  # leads read together (NetConfig.leads > 1): the chance that a
    # training crop loses a lead (zeroed)


def _augment(
    xb: np.ndarray,
    rng: np.random.Generator,
    cfg: TrainConfig,
    lowpass_hz: float = 0.0,
    independent: bool = False,
    second: str = "wide",
) -> np.ndarray:
    """``xb`` (b, channels, n) with a random gain, baseline wander and white noise per row,
    the same on every channel, except that the noise of channel 0 of a two-channel input is
    low-passed at ``lowpass_hz`` as that channel is (:func:`prepare`); a second channel that
    holds the record's context (``second="context"``, the other leads) stays as it is.
    ``independent``
    (channels that are leads read together): each channel draws its own gain, wander and
    noise, and is zeroed with probability ``cfg.lead_dropout`` (a lost lead)."""
    b, c, n = xb.shape
    k = c if independent else 1
    t = np.arange(n) / FS
    gain = rng.uniform(*cfg.gain, size=(b, k, 1))
    wander = np.zeros((b, k, n))
    for _ in range(2):
        amp = rng.uniform(0, cfg.wander / 2, size=(b, k, 1))
        hz = rng.uniform(*cfg.wander_hz, size=(b, k, 1))
        phase = rng.uniform(0, 2 * np.pi, size=(b, k, 1))
        wander += amp * np.sin(2 * np.pi * hz * t + phase)
    noise = rng.normal(size=(b, k, n)) * rng.uniform(0, cfg.noise, size=(b, k, 1))
    context = c == 2 and not independent and second == "context"
    if c == 2 and not independent and not context:
        noise = np.stack([filters.remove_emg(noise[:, 0], FS, lowpass_hz), noise[:, 0]], axis=1)
    out = gain * xb + wander + noise
    if context:
        out[:, 1] = xb[:, 1]
    if independent and cfg.lead_dropout > 0:
        out *= rng.uniform(size=(b, c, 1)) >= cfg.lead_dropout
    return out.astype(np.float32)


def edge_weights(labels: np.ndarray, extra: float, within: int) -> np.ndarray:
    """Per-sample loss weights of ``labels`` (n_rows, n): ``1 + extra`` on the samples at
    most ``within`` samples from a change between two marked classes (the boundary lies
    between the two samples that differ; neither :data:`IGNORE`), 1 elsewhere."""
    lab = np.atleast_2d(labels)
    w = np.ones(lab.shape, np.float32)
    if extra <= 0:
        return w
    change = (lab[:, 1:] != lab[:, :-1]) & (lab[:, 1:] != IGNORE) & (lab[:, :-1] != IGNORE)
    row, k = np.nonzero(change)  # boundary between samples k and k + 1
    near = np.zeros(lab.shape, bool)
    for d in range(-within, within + 1):
        j = k + (d if d > 0 else d + 1)  # d > 0: after the boundary; d <= 0: before it
        ok = (j >= 0) & (j < lab.shape[1]) & (d != 0)
        near[row[ok], j[ok]] = True
    w[near] += extra
    return w


def _crops(labels: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop start per lead, inside its annotated span where the span is long
    enough (else anywhere, the loss ignores what lies outside)."""
    n = labels.shape[1]
    starts = np.zeros(labels.shape[0], np.int64)
    for i, lab in enumerate(labels):
        idx = np.flatnonzero(lab != IGNORE)
        lo, hi = (int(idx[0]), int(idx[-1])) if idx.size else (0, n - 1)
        if hi - lo + 1 >= crop:
            a, b = lo, hi - crop + 1
        else:
            a, b = max(0, hi - crop + 1), min(lo, n - crop)
        starts[i] = rng.integers(a, max(a, b) + 1)
    return starts


def train(
    inputs: np.ndarray,
    labels: np.ndarray,
    net: NetConfig | None = None,
    config: TrainConfig | None = None,
    log=None,
) -> SegmentNet:
    """Train a :class:`SegmentNet` on normalised leads, (n, length) for one input channel or
    (n, channels, length) (as :func:`load_ludb` gives them for ``net``; (n, leads, length)
    for leads read together, as :func:`load_ludb_together` gives them), and their (n,
    length) labels (:data:`IGNORE` outside the annotated spans). Deterministic given
    ``config.seed`` on one thread."""
    cfg = config or TrainConfig()
    net = net or NetConfig()
    inputs = _with_channels(inputs, net.input_channels * net.leads)
    if cfg.lead_dropout and net.leads == 1:
        raise ValueError("TrainConfig.lead_dropout needs leads read together (NetConfig.leads > 1)")
    if inputs.shape[::2] != labels.shape or labels.ndim != 2:
        raise ValueError(
            f"inputs {inputs.shape} and labels {labels.shape} must hold the same leads and samples"
        )
    crop = min(cfg.crop, inputs.shape[-1])
    crop -= crop % net.multiple
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = SegmentNet(net)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, int(math.ceil(inputs.shape[0] / cfg.batch)))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE)
    loss_each = nn.CrossEntropyLoss(ignore_index=IGNORE, reduction="none")
    weights = edge_weights(labels, cfg.edge_weight, cfg.edge_samples)
    model.train()
    for epoch in range(cfg.epochs):
        order = rng.permutation(inputs.shape[0])
        starts = _crops(labels, crop, rng)
        total, t0 = 0.0, time.perf_counter()
        for s in range(steps_per_epoch):
            idx = order[s * cfg.batch : (s + 1) * cfg.batch]
            cols = starts[idx, None] + np.arange(crop)[None, :]
            xb = np.ascontiguousarray(inputs[idx[:, None], :, cols].transpose(0, 2, 1))
            xb = _augment(
                xb, rng, cfg, net.lowpass_hz, independent=net.leads > 1, second=net.second_channel
            )
            yb = labels[idx[:, None], cols]
            if (yb == IGNORE).all():
                continue
            logits = model(torch.from_numpy(xb))
            if cfg.edge_weight > 0:
                wb = np.where(yb == IGNORE, 0.0, weights[idx[:, None], cols]).astype(np.float32)
                per_sample = loss_each(logits, torch.from_numpy(yb))
                loss = (per_sample * torch.from_numpy(wb)).sum() / float(wb.sum())
            else:
                loss = loss_fn(logits, torch.from_numpy(yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        if log:
            log(
                f"epoch {epoch + 1}/{cfg.epochs} loss {total / steps_per_epoch:.4f} "
                f"({time.perf_counter() - t0:.1f} s)"
            )
    return model.eval()
