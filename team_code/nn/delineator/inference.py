"""Running the learned delineator: the network's logits and labels per sample
(:func:`predict_logits`, :func:`predict_labels`) and a whole record's beats
(:func:`delineate_record`: :func:`~team_code.nn.delineator.inputs.prepare`, the network,
then :func:`~team_code.nn.delineator.post.segments_to_beats`), with the kit's weights loaded
once (:func:`_shipped`).
"""

from __future__ import annotations

import functools
import warnings
import weakref

import numpy as np
import torch
from torch import nn

from team_code.dsp import delineation as dl
from team_code.nn.delineator.inputs import FS, _with_channels, prepare
from team_code.nn.delineator.net import SegmentNet, load, weights_path
from team_code.nn.delineator.post import PostConfig, segments_to_beats

_FROZEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _runner(model: SegmentNet, example: torch.Tensor):
    """``model`` traced and frozen for inference (about a fifth faster on one CPU core than
    eager mode, the same outputs), made once per model; the model itself while it trains or
    where tracing fails."""
    if model.training:
        return model
    if model not in _FROZEN:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(model, example)
                _FROZEN[model] = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        except Exception:  # an unusual torch build: eager mode gives the same labels
            _FROZEN[model] = model
    return _FROZEN[model]


def predict_labels(model: SegmentNet, normalised: np.ndarray) -> np.ndarray:
    """Class index per sample, (n_leads, n), of the leads of ``normalised`` (as
    :func:`prepare` gives it for the model)."""
    return predict_logits(model, normalised).argmax(axis=1)


def predict_logits(model: SegmentNet, normalised: np.ndarray) -> np.ndarray:
    """Class logits per sample, (n_leads, len(CLASSES), n) float32, of the leads of
    ``normalised``: (n_leads, n) for a one-channel network, (n_leads, channels, n) (as
    :func:`prepare` gives it) for any."""
    z = _with_channels(normalised, model.config.input_channels)
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
    z, y = prepare(x, fs, model.config.lowpass_hz, model.config.input_channels)
    logits = predict_logits(model, z)
    usable = np.ptp(y, axis=-1) >= 0.05  # a flat lead does not vote
    if not usable.any():
        usable[:] = True
    return segments_to_beats(
        logits.argmax(axis=1), y, FS, config, float(fs) / FS, usable, logits=logits
    )


def _shipped() -> SegmentNet:
    """The kit's network, loaded once per weights file."""
    return _loaded(str(weights_path()))


@functools.lru_cache(maxsize=2)
def _loaded(path: str) -> SegmentNet:
    return load(path)
