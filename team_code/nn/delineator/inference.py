"""Running the learned delineator: the network's logits and labels per sample
(:func:`predict_logits`, :func:`predict_labels`) and a whole record's beats
(:func:`delineate_record`: :func:`~team_code.nn.delineator.inputs.prepare`, the network,
then :func:`~team_code.nn.delineator.post.segments_to_beats`), with the kit's weights loaded
once (:func:`_shipped`). The network runs as its :class:`ChannelsLast` twin, traced and
frozen.
"""

from __future__ import annotations

import functools
import threading
import warnings
import weakref

import numpy as np
import torch
from torch import nn

from team_code.dsp import delineation as dl
from team_code.nn.delineator.inputs import FS, _with_channels, prepare
from team_code.nn.delineator.net import SegmentNet, load, weights_path
from team_code.nn.delineator.post import PostConfig, segments_to_beats

#: Each network's frozen twin, or None where it runs eagerly (held weakly: a value never
#: refers to its network); built under :data:`_FROZEN_LOCK`, once per network.
_FROZEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FROZEN_LOCK = threading.Lock()


def _conv2d(conv: nn.Conv1d) -> nn.Conv2d:
    """``conv`` as a 2-D convolution over (batch, channels, 1, n): the same weights."""
    out = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        (1, conv.kernel_size[0]),
        padding=(0, conv.padding[0]),
        dilation=(1, conv.dilation[0]),
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        out.weight.copy_(conv.weight.unsqueeze(2))
        if conv.bias is not None:
            out.bias.copy_(conv.bias)
    return out


class ChannelsLast(nn.Module):
    """Inference twin of a fused :class:`SegmentNet`: the same layers as 2-D operations on
    (batch, channels, 1, n) tensors in channels-last memory order, where oneDNN's
    convolutions of these few channels run about twice as fast on one CPU core as the 1-D
    ones; the same logits within float32 rounding. Its batch normalisations must be folded
    (``SegmentNet.fuse``, as ``load`` does)."""

    def __init__(self, model: SegmentNet):
        super().__init__()

        def block(seq: nn.Sequential) -> nn.Sequential:
            layers = []
            for layer in seq:
                if isinstance(layer, nn.BatchNorm1d):
                    raise ValueError("ChannelsLast needs a fused SegmentNet (SegmentNet.fuse)")
                layers.append(_conv2d(layer) if isinstance(layer, nn.Conv1d) else layer)
            return nn.Sequential(*layers)

        self.down = nn.ModuleList(block(b) for b in model.down)
        self.up = nn.ModuleList(block(b) for b in model.up)
        self.head = _conv2d(model.head)
        self.to(memory_format=torch.channels_last).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = nn.functional.max_pool2d(x, (1, 2))
            x = block(x)
            skips.append(x)
        for j, block in enumerate(self.up):
            skip = skips[-2 - j]
            x = nn.functional.interpolate(x, size=(1, skip.shape[-1]), mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x).squeeze(2).contiguous()


def _runner(model: SegmentNet, example: torch.Tensor):
    """``model`` for inference: its :class:`ChannelsLast` twin, traced and frozen (about
    twice as fast on one CPU core as the 1-D network in eager mode, the same labels), made
    once per model (one thread traces; the others wait for it); the model itself while it
    trains, or where the twin cannot be built or traced."""
    if model.training:
        return model
    with _FROZEN_LOCK:
        if model not in _FROZEN:
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    twin = ChannelsLast(model)
                    _FROZEN[model] = torch.jit.freeze(torch.jit.trace(twin, example))
            except Exception:  # an unfused model or an unusual torch build: eager mode
                _FROZEN[model] = None
        runner = _FROZEN[model]
    return model if runner is None else runner


def predict_labels(model: SegmentNet, normalised: np.ndarray) -> np.ndarray:
    """Class index per sample, (n_leads, n), of the leads of ``normalised`` (as
    :func:`prepare` gives it for the model)."""
    return predict_logits(model, normalised).argmax(axis=1)


def predict_logits(model: SegmentNet, normalised: np.ndarray) -> np.ndarray:
    """Class logits per sample, (n_leads, len(CLASSES), n) float32, of the leads of
    ``normalised``: (n_leads, n) for a one-channel network, (n_leads, channels, n) (as
    :func:`prepare` gives it) for any; for a network that reads ``config.leads`` leads
    together, (1, len(CLASSES), n) from those leads, (config.leads, n)."""
    cfg = model.config
    if cfg.leads > 1:
        z = np.asarray(normalised)
        if z.shape[:-1] != (cfg.leads,):
            raise ValueError(
                f"the network reads {cfg.leads} leads together: expected ({cfg.leads}, n); "
                f"got {z.shape}"
            )
        z = z[None]
    else:
        z = _with_channels(normalised, cfg.input_channels)
    n = z.shape[-1]
    m = model.config.multiple
    pad = (-n) % m
    xt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    if pad:
        xt = nn.functional.pad(xt, (0, pad))
    with torch.inference_mode():
        logits = _runner(model, xt)(xt)
    return np.ascontiguousarray(logits[..., :n].numpy())


def delineate_record(
    x, fs: float, model: SegmentNet | None = None, config: PostConfig | None = None
) -> list[dl.LeadDelineation]:
    """Every beat of a record, every lead: :func:`prepare`, the network, then
    :func:`segments_to_beats`; points in samples of ``x`` (at ``fs``).

    Args:
        x: (n_leads, n) ECG in mV.
        fs: its sampling rate in Hz.
        model: a loaded :class:`SegmentNet` (default: the kit's weights, :func:`weights_path`).
        config: post-processing settings.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.ndim != 2 or x.shape[-1] < 8:
        raise ValueError(f"delineate_record needs (n_leads, n_samples) with n >= 8; got {x.shape}")
    model = model if model is not None else _shipped()
    cfg = model.config
    z, y = prepare(x, fs, cfg.lowpass_hz, cfg.input_channels, cfg.second_channel)
    logits = predict_logits(model, z)
    usable = np.ptp(y, axis=-1) >= 0.05  # a flat lead does not vote
    if not usable.any():
        usable[:] = True
    return segments_to_beats(
        logits.argmax(axis=1), y, FS, config, float(fs) / FS, usable, logits=logits
    )


def delineate_together(
    x, fs: float, model: SegmentNet, config: PostConfig | None = None
) -> list[dl.LeadDelineation]:
    """The beats of a network that reads the record's leads together (``model.config.leads``
    rows of ``x``, in the order it was trained on: :data:`~team_code.nn.delineator.data.
    LUDB_LEADS`) and labels the union of their waves: :func:`prepare`, the network, then
    :func:`segments_to_beats` on its one row of labels (peaks on the lead of largest range).
    Each beat's ``global_`` holds the network's global boundaries, in samples of ``x``."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if model.config.leads < 2 or x.shape[0] != model.config.leads or x.shape[-1] < 8:
        raise ValueError(
            f"delineate_together needs a network of several leads and ({model.config.leads}, "
            f"n_samples) with n >= 8; got leads={model.config.leads}, x {x.shape}"
        )
    z, y = prepare(x, fs, model.config.lowpass_hz)
    logits = predict_logits(model, z)
    row = int(np.argmax(np.ptp(y, axis=-1)))
    return segments_to_beats(
        logits.argmax(axis=1), y[row : row + 1], FS, config, float(fs) / FS, logits=logits
    )


def _shipped() -> SegmentNet:
    """The kit's network, loaded once per weights file."""
    return _loaded(str(weights_path()))


@functools.lru_cache(maxsize=2)
def _loaded(path: str) -> SegmentNet:
    return load(path)
