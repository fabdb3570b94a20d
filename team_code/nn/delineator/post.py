"""A small learned wave delineator: one lead in, none / P / QRS / T per sample out.

The network is a 1-D encoder-decoder (U-Net style, :class:`SegmentNet`) that reads ONE lead
at :data:`FS` Hz, band-limited (0.5 Hz Butterworth high-pass, 40 Hz low-pass: the kit's
``filters.remove_baseline`` and ``filters.remove_emg``) and divided by a robust amplitude
(the 99th percentile of its absolute deviation from the median, at least
:data:`MIN_SCALE_MV`), and labels every sample with one of :data:`CLASSES`.

Post-processing (:func:`segments_to_beats`) turns each lead's label runs into per-lead
onsets, peaks and offsets per beat: first a gap of up to 40 ms labelled ``none`` inside a P
wave is filled (:func:`close_gaps`; ``PostConfig.close_ms``), so that a P wave the network
splits keeps its onset; a beat is a stretch where at least a quorum of the leads
label QRS; each lead's QRS run is the one overlapping the beat, its P the last P run between
the previous beat and this one, its T the first T run between this beat and the next. A P
wave found on fewer than the quorum of leads is no P wave (no lead and no global boundary
has one). Every beat becomes a :class:`team_code.dsp.delineation.LeadDelineation` (the
structure ``delineate_leads`` returns; points in samples of the input record), whose global
boundaries come from :func:`team_code.dsp.delineation.global_from_leads` (earliest onset and
latest offset among the leads within 3 MAD of their median), anchored on the leads' median.
Then each lead's P onset and offset, QRS onset and offset and T end move a quarter of the
way to the usable leads' median on that beat (``PostConfig.lead_shrink``, chosen by a nested
loop on LUDB's folds; the T onset, the global boundaries, peaks and amplitudes stay as the
leads' own give them).

Training (:func:`train`, ``python -m team_code.nn.delineator train``) reads LUDB's per-lead
marks, labels each lead's annotated span only (the loss ignores the rest of the 10 s), and
augments every crop (gain, baseline wander, white noise, a random time shift of the crop);
it is deterministic given the seed on one thread. Options compared and not shipped (their
defaults keep the shipped recipe): extra loss weight near marked boundaries
(``TrainConfig.edge_weight``), a dilated bottleneck (``NetConfig.dilation``), no input
low-pass (``NetConfig.lowpass_hz``, kept with the weights), two input channels, the lead with
and without the low-pass (``NetConfig.input_channels``, kept with the weights; a file without
the field holds a one-channel network), sub-sample onsets and offsets from the logits
(``PostConfig.subsample``, :func:`subsample_edges`). ``folds`` trains one model
per record fold (the out-of-fold models of ``benchmarks/delineation.py``'s ``cnn-5fold``).
The kit's weights are built from the 100 shared LUDB records by :data:`BUILD_COMMAND` into
:data:`WEIGHTS` (or the file ``$ECG_KIT_DELINEATOR_WEIGHTS`` names; :func:`weights_path`);
they are not kept in git, and nothing is ever downloaded. ``features.measure`` and the rules
keep the wavelet delineation unless ``FeatureConfig.delineator`` (``--set
rules.delineator=cnn``) asks for this one.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import sys
import time
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from team_code.dsp import delineation as dl
from team_code.dsp import filters
from team_code.dsp.resample import resample

__all__ = [
    "FS",
    "CLASSES",
    "WEIGHTS",
    "WEIGHTS_ENV",
    "BUILD_COMMAND",
    "weights_path",
    "NetConfig",
    "PostConfig",
    "TrainConfig",
    "SegmentNet",
    "prepare",
    "predict_labels",
    "predict_logits",
    "close_gaps",
    "subsample_edges",
    "segments_to_beats",
    "delineate_record",
    "load",
    "save",
    "ludb_labels",
    "qtdb_labels",
    "train",
    "fold_split",
]

FS = 250.0  #: the network's sampling rate, Hz
CLASSES: tuple[str, ...] = ("none", "P", "QRS", "T")
NONE, P, QRS, T = range(4)
IGNORE = -1  #: label of samples outside a lead's annotated span (no loss there)
MIN_SCALE_MV = 0.01  #: a lead's robust amplitude is at least this (flat leads stay near 0)
#: Where the kit's weights are built by default (git-ignored: built by
#: :data:`BUILD_COMMAND`, never committed or downloaded); ``$ECG_KIT_DELINEATOR_WEIGHTS``
#: names another file.
WEIGHTS = Path(__file__).parents[1] / "delineator.safetensors"
WEIGHTS_ENV = "ECG_KIT_DELINEATOR_WEIGHTS"
#: How the default weights are built from the shared LUDB records (2.4 min on one thread).
BUILD_COMMAND = (
    "python -m team_code.nn.delineator train --ludb ../shared/data/ludb "
    "--out team_code/nn/delineator.safetensors"
)
LUDB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")


# --------------------------------------------------------------------------- network


def check_channels(input_channels: int, lowpass_hz: float, where: str) -> None:
    """Refuse an input other than one channel, or two with a low-pass (channel 1 is the lead
    without it: :func:`prepare`)."""
    if input_channels not in (1, 2) or (input_channels == 2 and not lowpass_hz > 0):
        raise ValueError(
            f"{where}: input_channels {input_channels} with lowpass_hz {lowpass_hz} "
            "(1 channel, or 2 with a low-pass)"
        )


@dataclasses.dataclass(frozen=True)
class NetConfig:
    """Shape of :class:`SegmentNet`."""

    widths: tuple[int, ...] = (8, 16, 16, 32)  # channels per level (each level halves time)
    kernel: int = 7  # convolution width at every level
    first_convs: int = 1  # convolutions in the finest level (encoder and decoder)
    dilation: int = 1  # dilation of the coarsest level's second convolution
    lowpass_hz: float = 40.0  # the input's low-pass cut-off (0: none; see prepare)
    input_channels: int = 1  # 1: the lead low-passed at lowpass_hz; 2: that and the lead
    # without the low-pass (see prepare)

    def __post_init__(self):
        bad = min(self.widths, default=0) < 1 or self.kernel < 1 or self.kernel % 2 == 0
        if len(self.widths) < 2 or bad or self.dilation < 1:
            raise ValueError(
                f"NetConfig needs at least two positive widths and an odd kernel; got {self}"
            )
        check_channels(self.input_channels, self.lowpass_hz, "NetConfig")

    @property
    def multiple(self) -> int:
        """Input lengths are padded to a multiple of this."""
        return 2 ** (len(self.widths) - 1)


def _block(c_in: int, c_out: int, kernel: int, n: int, dilation: int = 1) -> nn.Sequential:
    """``n`` convolutions (each with batch normalisation and ReLU); the second and later
    ones dilated by ``dilation``."""
    layers: list[nn.Module] = []
    for j in range(n):
        dil = dilation if j else 1
        layers += [
            nn.Conv1d(
                c_in if j == 0 else c_out, c_out, kernel, padding=dil * (kernel // 2), dilation=dil
            ),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class SegmentNet(nn.Module):
    """1-D U-Net: (batch, ``config.input_channels``, n) normalised lead -> (batch, 4, n)
    class logits.

    ``n`` must be a multiple of ``config.multiple`` (:func:`predict_labels` pads)."""

    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = cfg = config or NetConfig()
        w = cfg.widths
        self.down = nn.ModuleList()
        c = cfg.input_channels
        for i, width in enumerate(w):
            dil = cfg.dilation if i == len(w) - 1 else 1
            self.down.append(_block(c, width, cfg.kernel, cfg.first_convs if i == 0 else 2, dil))
            c = width
        self.up = nn.ModuleList(
            _block(w[i + 1] + w[i], w[i], cfg.kernel, cfg.first_convs if i == 0 else 2)
            for i in range(len(w) - 2, -1, -1)
        )
        self.head = nn.Conv1d(w[0], len(CLASSES), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = nn.functional.max_pool1d(x, 2)
            x = block(x)
            skips.append(x)
        for j, block in enumerate(self.up):
            skip = skips[-2 - j]
            x = nn.functional.interpolate(x, size=skip.shape[-1], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)

    def fuse(self) -> SegmentNet:
        """Fold every batch normalisation into its convolution (inference only; in place)."""
        for seq in [*self.down, *self.up]:
            layers = list(seq)
            fused: list[nn.Module] = []
            for layer in layers:
                if isinstance(layer, nn.BatchNorm1d) and fused and isinstance(fused[-1], nn.Conv1d):
                    conv = fused[-1]
                    s = layer.weight / torch.sqrt(layer.running_var + layer.eps)
                    with torch.no_grad():
                        conv.weight.mul_(s[:, None, None])
                        conv.bias.copy_((conv.bias - layer.running_mean) * s + layer.bias)
                    continue
                fused.append(layer)
            seq._modules.clear()
            for k, layer in enumerate(fused):
                seq.add_module(str(k), layer)
        return self.eval()


def save(model: SegmentNet, path: str | Path, facts: dict | None = None) -> None:
    """Weights as safetensors, with the network's shape (and ``facts``) in the metadata."""
    from safetensors.torch import save_file

    meta = {"net": json.dumps(dataclasses.asdict(model.config))}
    if facts:
        meta["facts"] = json.dumps(facts)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def weights_path() -> Path:
    """The kit's weights: ``$ECG_KIT_DELINEATOR_WEIGHTS`` if set, else :data:`WEIGHTS`; an
    error names the file and how to build it."""
    named = os.environ.get(WEIGHTS_ENV, "")
    path = Path(named) if named else WEIGHTS
    if not path.is_file():
        where = f"${WEIGHTS_ENV}" if named else "the default place"
        raise FileNotFoundError(
            f"delineator weights not found: {path} ({where}); build them with {BUILD_COMMAND}"
        )
    return path


def load(path: str | Path | None = None) -> SegmentNet:
    """The network saved at ``path`` (default: the kit's, :func:`weights_path`), batch
    normalisation folded in, in eval mode. Never downloads."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"delineator weights not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "net" not in meta:
        raise ValueError(f"{path}: not a delineator weights file (no 'net' metadata)")
    raw = json.loads(meta["net"])
    cfg = NetConfig(**{**raw, "widths": tuple(raw["widths"])})
    model = SegmentNet(cfg)
    model.load_state_dict(load_file(str(path)))
    return model.eval().fuse()


# --------------------------------------------------------------------------- signal


def prepare(
    x, fs: float, lowpass_hz: float = 40.0, input_channels: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``(normalised, filtered_mv)``: each lead at :data:`FS` Hz, band-limited, and divided by
    its robust amplitude (``normalised``, float32, the network's input) or in mV
    (``filtered_mv``, for amplitudes). ``x``: (n_leads, n) or (n,) in mV at ``fs`` Hz.
    Band: the 0.5 Hz high-pass, and the low-pass at ``lowpass_hz`` (none where it is 0: the
    resampling's anti-aliasing alone).

    ``normalised`` is (n_leads, n) for one input channel; for two (``input_channels=2``,
    ``lowpass_hz > 0``) it is (n_leads, 2, n): channel 0 the one-channel input, channel 1
    the same lead with the high-pass only (pacing spikes and the QRS's sharp edges kept),
    centred on its own median and divided by channel 0's robust amplitude."""
    check_channels(input_channels, lowpass_hz, "prepare")
    y = np.atleast_2d(np.nan_to_num(np.asarray(x, dtype=np.float64)))
    wide = filters.remove_baseline(resample(y, float(fs), FS), FS)
    y = filters.remove_emg(wide, FS, lowpass_hz) if lowpass_hz > 0 else wide
    centred = y - np.median(y, axis=-1, keepdims=True)
    scale = np.maximum(np.percentile(np.abs(centred), 99, axis=-1, keepdims=True), MIN_SCALE_MV)
    z = (centred / scale).astype(np.float32)
    if input_channels == 2:
        z_wide = (wide - np.median(wide, axis=-1, keepdims=True)) / scale
        z = np.stack([z, z_wide.astype(np.float32)], axis=1)
    return z, y


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


def _with_channels(normalised: np.ndarray, channels: int) -> np.ndarray:
    """``normalised`` as (n_leads, channels, n): a (n_leads, n) or (n,) array gets the channel
    axis where ``channels`` is 1; an array of the wrong shape is an error that names it."""
    z = np.asarray(normalised)
    if z.ndim <= 2 and channels == 1:
        z = np.atleast_2d(z)[:, None, :]
    if z.ndim != 3 or z.shape[1] != channels:
        raise ValueError(
            f"the network reads {channels} input channel(s): expected (n_leads, n)"
            f"{' or (n_leads, 1, n)' if channels == 1 else f' as (n_leads, {channels}, n)'}"
            f"; got {z.shape}"
        )
    return z


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


# --------------------------------------------------------------------------- post-processing


@dataclasses.dataclass(frozen=True)
class PostConfig:
    """Post-processing of the label runs, in physical units."""

    min_ms: tuple[float, float, float] = (20.0, 20.0, 40.0)  # shortest P, QRS, T run kept
    quorum: float = 0.3  # a beat needs this fraction of the usable leads labelling QRS
    p_quorum: float = 0.5  # a beat's P wave needs this fraction of the usable leads
    record_p: float = 0.5  # a record with a P wave on fewer of its beats has none on any
    global_rule: str = "mad"  # global boundaries from the leads (dl.GLOBAL_RULES)
    close_ms: tuple[float, float] = (40.0, 0.0)  # a gap of "none" inside a P (a T) wave
    # at most this long is filled
    subsample: bool = False  # onsets and offsets where the class margin crosses zero (where
    # the logits are given to segments_to_beats)
    lead_shrink: float = 0.25  # each lead's onsets and offsets moved this fraction of the
    # way to the usable leads' median (the global boundaries come from the leads' own; 0: off;
    # a boundary no usable lead has stays as the leads give it)

    def __post_init__(self):
        if not 0.0 <= self.lead_shrink < 1.0:
            raise ValueError(f"PostConfig: lead_shrink must lie in [0, 1); got {self.lead_shrink}")


def close_gaps(labels: np.ndarray, classes: Sequence[int], max_gap: int) -> np.ndarray:
    """``labels`` (n_rows, n) with every run of ``none`` at most ``max_gap`` samples long
    that has the same class of ``classes`` on both sides relabelled as that class."""
    out = np.array(labels, copy=True)
    if max_gap < 1:
        return out
    row, a, b = _runs(out, NONE, 1)
    inner = (a > 0) & (b < out.shape[1] - 1) & (b - a + 1 <= max_gap)
    row, a, b = row[inner], a[inner], b[inner]
    before, after = out[row, a - 1], out[row, b + 1]
    fill = (before == after) & np.isin(before, classes)
    row, a, length, cls = row[fill], a[fill], (b - a + 1)[fill], before[fill]
    first = np.repeat(np.cumsum(length) - length, length)
    cols = np.repeat(a, length) + np.arange(int(length.sum())) - first
    out[np.repeat(row, length), cols] = np.repeat(cls, length)
    return out


def subsample_edges(
    logits: np.ndarray, row: np.ndarray, at: np.ndarray, cls: np.ndarray, onset: bool
) -> np.ndarray:
    """Onsets (``onset``) or offsets at sub-sample precision: for a run of class ``cls``
    on lead ``row`` that starts (ends) at sample ``at``, the point where the class's margin
    over the best other class crosses zero, linearly interpolated between the last sample
    outside the run and the first inside (the last inside and the first after), moved by
    half a sample so that a crossing midway between them gives ``at`` back. ``logits``:
    (n_leads, len(CLASSES), n); points outside the record's edges stay as they are."""
    at = np.asarray(at, dtype=np.int64)
    n = logits.shape[-1]
    out = at.astype(np.float64)
    nb = at + (-1 if onset else 1)
    ok = (nb >= 0) & (nb < n)
    if not ok.any():
        return out
    r, a, b, c = row[ok], at[ok], nb[ok], cls[ok]

    def margin(t):
        v = logits[r, :, t].astype(np.float64)
        own = v[np.arange(c.size), c]
        v[np.arange(c.size), c] = -np.inf
        return own - v.max(axis=1)

    inside, outside = margin(a), margin(b)
    span = inside - outside
    frac = np.clip(np.where(span > 0, inside / np.where(span > 0, span, 1.0), 0.5), 0.0, 1.0)
    # frac: distance from the inside sample to the crossing, in samples
    out[ok] = np.where(onset, a - frac + 0.5, a + frac - 0.5)
    return out


def _runs(labels: np.ndarray, cls: int, min_len: int) -> tuple[np.ndarray, ...]:
    """``(row, start, end)`` (end inclusive) of the runs of ``cls`` in each row of ``labels``
    (n_rows, n), at least ``min_len`` long, ordered by row, then start."""
    hit = np.zeros((labels.shape[0], labels.shape[1] + 2), np.int8)
    hit[:, 1:-1] = labels == cls
    step = np.diff(hit, axis=1)
    row, start = np.nonzero(step == 1)
    end = np.nonzero(step == -1)[1] - 1
    keep = end - start + 1 >= min_len
    return row[keep], start[keep], end[keep]


def _peaks(sig: np.ndarray, row, start, end, detrend: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sample and signed size of the largest deflection of each stretch ``sig[row,
    start..end]`` (measured from the chord between its ends where ``detrend``)."""
    if not row.size:
        return np.zeros(0, np.int64), np.zeros(0)
    length = end - start + 1
    k = np.arange(int(length.max()))
    v = sig[row[:, None], np.minimum(start[:, None] + k, end[:, None])]
    if detrend:
        y0, y1 = sig[row, start], sig[row, end]
        frac = k[None, :] / np.maximum(length - 1, 1)[:, None]
        v = v - (y0[:, None] + (y1 - y0)[:, None] * frac)
    v = np.where(k[None, :] < length[:, None], v, 0.0)
    j = np.argmax(np.abs(v), axis=1)
    return start + j, v[np.arange(j.size), j]


def _pick(row, beat, n_beats: int, last: bool) -> np.ndarray:
    """Index of the last (or first) entry of each ``(row, beat)`` pair, entries given in
    row-then-time order."""
    key = row * n_beats + beat
    if last:
        _, first = np.unique(key[::-1], return_index=True)
        return key.size - 1 - first
    return np.unique(key, return_index=True)[1]


def _place(sig, pts, amps, runs, beat, ok, last: bool, cols: tuple[int, int, int]) -> None:
    """Write into ``pts[beat, lead, cols]`` the onset, peak and offset of the last (or first)
    of the ``runs`` (lead, start, end) where ``ok`` for each lead and beat, and its signed
    size (from the chord between its ends) into ``amps[beat, lead]``."""
    row, a, b, beat = runs[0][ok], runs[1][ok], runs[2][ok], beat[ok]
    k = _pick(row, beat, pts.shape[0], last)
    row, a, b, beat = row[k], a[k], b[k], beat[k]
    pk, amps[beat, row] = _peaks(sig, row, a, b, detrend=True)
    pts[beat, row, cols[0]], pts[beat, row, cols[1]], pts[beat, row, cols[2]] = a, pk, b


#: (point, class, is an onset) of every boundary :func:`_refine_edges` moves
_EDGES = (
    ("p_on", P, True),
    ("p_off", P, False),
    ("qrs_on", QRS, True),
    ("qrs_off", QRS, False),
    ("t_on", T, True),
    ("t_end", T, False),
)


def _refine_edges(pts: np.ndarray, logits: np.ndarray, col: dict[str, int]) -> None:
    """Every onset and offset of ``pts`` (n_beats, n_leads, points; in label samples) moved
    to its sub-sample place (:func:`subsample_edges`), in place."""
    for name, cls, onset in _EDGES:
        v = pts[:, :, col[name]]
        beat, lead = np.nonzero(np.isfinite(v))
        at = v[beat, lead].astype(np.int64)
        cls_arr = np.full(at.size, cls)
        v[beat, lead] = subsample_edges(logits, lead, at, cls_arr, onset)


_BOUNDARY_COLS = [dl.LEAD_POINTS.index(c) for c in dl.BOUNDARY_POINTS]


def segments_to_beats(
    labels: np.ndarray,
    signal_mv: np.ndarray,
    fs: float,
    config: PostConfig | None = None,
    scale: float = 1.0,
    usable: np.ndarray | None = None,
    logits: np.ndarray | None = None,
) -> list[dl.LeadDelineation]:
    """Per-beat, per-lead points from per-sample labels (see the module docstring).

    A beat is a stretch where at least ``config.quorum`` of the usable leads label QRS; a
    lead's QRS in it spans the lead's QRS runs that overlap it (a run belongs to the first
    beat it overlaps); its P is the last P run after the previous beat and before the lead's
    QRS onset (or the beat's, where the lead has no QRS); its T the first T run after the
    lead's QRS offset and before the next beat. Peaks: the largest deflection of a QRS run,
    of a P or T run from the chord between its ends.

    Args:
        labels: (n_leads, n) class indices at ``fs`` Hz.
        signal_mv: (n_leads, n) the filtered leads in mV (peaks and amplitudes).
        fs: the labels' sampling rate.
        config: post-processing settings.
        scale: points are returned multiplied by this (input samples per label sample).
        usable: (n_leads,) leads that count towards the quorums (default all).
        logits: (n_leads, len(CLASSES), n) the network's logits behind ``labels``; with
            ``config.subsample``, onsets and offsets come from them
            (:func:`subsample_edges`); without them, whole samples.

    Returns:
        One :class:`~team_code.dsp.delineation.LeadDelineation` per beat, in time order;
        ``fs`` is ``fs * scale``, points and ``r_index`` in those samples.
    """
    cfg = config or PostConfig()
    labels = np.atleast_2d(labels)
    if logits is not None and np.shape(logits) != (labels.shape[0], len(CLASSES), labels.shape[1]):
        raise ValueError(f"logits {np.shape(logits)} do not match labels {labels.shape}")
    for cls, ms in zip((P, T), cfg.close_ms):
        labels = close_gaps(labels, (cls,), int(round(ms * 1e-3 * fs)))
    sig = np.atleast_2d(np.asarray(signal_mv, dtype=np.float64))
    n_leads, n = labels.shape
    usable = np.ones(n_leads, bool) if usable is None else np.asarray(usable, bool)
    n_usable = max(1, int(usable.sum()))
    need = max(1, int(math.ceil(cfg.quorum * n_usable)))
    need_p = max(1, int(math.ceil(cfg.p_quorum * n_usable)))
    min_len = {c: max(1, int(round(ms * 1e-3 * fs))) for c, ms in zip((P, QRS, T), cfg.min_ms)}
    ql, qa, qb = _runs(labels, QRS, min_len[QRS])
    cover = np.zeros((n_leads, n + 1), np.int32)
    np.add.at(cover, (ql, qa), 1)
    np.add.at(cover, (ql, qb + 1), -1)
    count = np.cumsum(cover[usable], axis=1)[:, :n].sum(axis=0)
    _, bs, be = _runs((count >= need)[None, :], True, 1)
    nb = bs.size
    if not nb:
        return []
    col = {name: i for i, name in enumerate(dl.LEAD_POINTS)}
    pts = np.full((nb, n_leads, len(dl.LEAD_POINTS)), np.nan)
    t_mv = np.full((nb, n_leads), np.nan)
    p_mv = np.full((nb, n_leads), np.nan)
    # QRS: the runs overlapping each beat, merged
    j = np.searchsorted(be, qa)
    ok = (j < nb) & (bs[np.minimum(j, nb - 1)] <= qb)
    q_on = np.full((n_leads, nb), n)
    q_off = np.full((n_leads, nb), -1)
    np.minimum.at(q_on, (ql[ok], j[ok]), qa[ok])
    np.maximum.at(q_off, (ql[ok], j[ok]), qb[ok])
    li, bj = np.nonzero(q_off >= 0)
    pk, _ = _peaks(sig, li, q_on[li, bj], q_off[li, bj], detrend=False)
    pts[bj, li, col["qrs_on"]] = q_on[li, bj]
    pts[bj, li, col["qrs_peak"]] = pk
    pts[bj, li, col["qrs_off"]] = q_off[li, bj]
    on_eff = np.where(q_off >= 0, q_on, bs[None, :])
    off_eff = np.where(q_off >= 0, q_off, be[None, :])
    # P: the last run after the previous beat, before the lead's QRS onset
    prev_end = np.concatenate([[-1], be[:-1]])
    runs = _runs(labels, P, min_len[P])
    j = np.minimum(np.searchsorted(be, runs[2]), nb - 1)
    ok = (runs[1] > prev_end[j]) & (runs[2] < on_eff[runs[0], j])
    _place(sig, pts, p_mv, runs, j, ok, last=True, cols=(col["p_on"], col["p_peak"], col["p_off"]))
    # T: the first run after the lead's QRS offset, before the next beat
    next_start = np.concatenate([bs[1:], [n]])
    runs = _runs(labels, T, min_len[T])
    j = np.maximum(np.searchsorted(bs, runs[1], side="right") - 1, 0)
    ok = (runs[1] > off_eff[runs[0], j]) & (runs[1] < next_start[j])
    _place(sig, pts, t_mv, runs, j, ok, last=False, cols=(col["t_on"], col["t_peak"], col["t_end"]))
    # no P wave on a beat with too few leads showing one, nor in a record with too few beats
    no_p = np.isfinite(pts[:, usable, col["p_on"]]).sum(axis=1) < need_p
    if (~no_p).sum() < cfg.record_p * nb:
        no_p[:] = True
    pts[no_p, :, 0:3] = np.nan
    p_mv[no_p] = np.nan
    if cfg.subsample and logits is not None:
        _refine_edges(pts, np.asarray(logits), col)
    r = dl.nanmedian(pts[:, usable, col["qrs_peak"]], axis=1)
    r = np.where(np.isfinite(r), r, (bs + be) / 2.0)
    pts *= scale
    med = dl.nanmedian(pts[:, usable, :], axis=1)
    p_amp = dl.nanmedian(np.abs(p_mv[:, usable]), axis=1)
    lead_cfg = dl.LeadDelineationConfig(global_rule=cfg.global_rule)
    out_fs = fs * scale
    out = []
    for b in range(nb):
        r_index = int(round(r[b] * scale))
        anchor = dl.Delineation(
            out_fs,
            r_index,
            *(float(med[b, col[c]]) for c in ("p_on", "p_peak", "p_off", "qrs_on", "qrs_off")),
            *(float(med[b, col[c]]) for c in ("t_peak", "t_end")),
            float(p_amp[b]),
        )
        glob = dl.global_from_leads(pts[b], anchor, lead_cfg)
        own = pts[b]
        if cfg.lead_shrink > 0:
            own = own.copy()
            for c in _BOUNDARY_COLS:
                if math.isfinite(med[b, c]):  # else no usable lead has it: the leads' own stay
                    own[:, c] += cfg.lead_shrink * (med[b, c] - own[:, c])
        out.append(dl.LeadDelineation(out_fs, r_index, own, t_mv[b], p_mv[b], glob))
    return out


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


# --------------------------------------------------------------------------- training data


#: LUDB's wave symbols (any other symbol is not a wave)
_LUDB_KINDS = {"p": P, "N": QRS, "t": T}


def _annotated_waves(
    samples, symbols, kinds: dict[str, int], other: int | None = None
) -> list[tuple[int, float, float, float]]:
    """``(class, onset, peak, offset)`` of each wave of a WFDB wave annotation (``(`` the
    onset, the wave's symbol at its peak, ``)`` the offset; a missing onset or offset is
    NaN). ``kinds`` maps wave symbols to classes; any other symbol is a wave of class
    ``other``, or no wave where ``other`` is None (LUDB: ``_LUDB_KINDS``; QTDB's ``.q1c``:
    ``_QTDB_NOT_QRS``, every other symbol a beat's QRS)."""
    out: list[list] = []
    onset = math.nan
    open_wave: list | None = None
    for s, sym in zip(samples, symbols):
        if sym == "(":
            onset, open_wave = float(s), None
        elif sym == ")":
            if open_wave is not None:
                open_wave[3] = float(s)
            open_wave = None
        elif (cls := kinds.get(sym, other)) is not None:
            open_wave = [cls, onset, float(s), math.nan]
            out.append(open_wave)
            onset = math.nan
    return [tuple(w) for w in out]


def ludb_labels(samples, symbols, n: int, factor: int = 2) -> np.ndarray:
    """Per-sample class of one LUDB lead at ``1 / factor`` of its rate (500 -> 250 Hz):
    the waves' ``[onset, offset]`` get their class, the rest of the annotated span (first to
    last mark) ``none``, samples outside it :data:`IGNORE`; a wave without onset or offset
    makes the stretch from the span's edge to its known end :data:`IGNORE`."""
    lab = np.full(n, IGNORE, np.int64)
    samples = np.asarray(samples)
    if not samples.size:
        return lab[::factor].copy()
    lo, hi = int(samples.min()), int(samples.max())
    lab[lo : hi + 1] = NONE
    for cls, on, _, off in _annotated_waves(samples, symbols, _LUDB_KINDS):
        if math.isfinite(on) and math.isfinite(off):
            lab[int(on) : int(off) + 1] = cls
        elif math.isfinite(off):
            lab[lo : int(off) + 1] = IGNORE
        elif math.isfinite(on):
            lab[int(on) : hi + 1] = IGNORE
    return lab[::factor].copy()


def load_ludb(
    folder: str | Path, records: Sequence[str], lowpass_hz: float = 40.0, input_channels: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)`` of every lead of ``records``: (n_records * 12, n) normalised
    leads at :data:`FS` ((n_records * 12, 2, n) with two input channels; :func:`prepare`) and
    their per-sample labels (:func:`ludb_labels`). Digital samples at 1000 units/mV (LUDB's
    header gains are wrong)."""
    import wfdb

    folder = Path(folder)
    xs, ys = [], []
    for rec in records:
        path = folder / str(rec)
        if not path.with_suffix(".hea").is_file():
            raise FileNotFoundError(f"LUDB record {rec}: no header {path}.hea")
        r = wfdb.rdrecord(str(path), physical=False)
        if r.fs != 500:
            raise ValueError(f"LUDB record {rec}: sampling rate {r.fs} Hz, expected 500")
        names = [s.lower() for s in r.sig_name]
        x = r.d_signal.T.astype(np.float64) / 1000.0
        z, _ = prepare(x, r.fs, lowpass_hz, input_channels)
        for lead in LUDB_LEADS:
            if lead not in names:
                raise ValueError(f"LUDB record {rec}: lead {lead} missing ({names})")
            ann = wfdb.rdann(str(path), lead)
            lab = ludb_labels(ann.sample, ann.symbol, x.shape[1])
            m = min(lab.size, z.shape[-1])
            xs.append(z[names.index(lead), ..., :m])
            ys.append(lab[:m])
    m = min(v.shape[-1] for v in xs)
    return np.stack([v[..., :m] for v in xs]), np.stack([v[:m] for v in ys])


#: ``.q1c`` symbols of a wave that is not a QRS complex (any other wave symbol is a beat's QRS)
_QTDB_NOT_QRS = {"p": P, "t": T, "u": NONE}
QTDB_WINDOW = 2500  #: samples per QTDB training row at :data:`FS` (10 s, as a LUDB lead)
#: a listed beat this close (s) to a marked QRS peak is that beat (``.atr`` marks lie up to
#: ~50 ms from ``.q1c``'s peaks)
QTDB_SAME_BEAT_S = 0.16
#: ``.atr`` symbols of a beat (the benchmark's ``BEAT_SYMBOLS``); ``.pu`` marks each QRS "N"
_QTDB_BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


def _qtdb_beats(path: Path) -> np.ndarray | None:
    """Samples of every beat of a QTDB record: its source database's ``.atr`` beat labels,
    else ecgpuwave's ``.pu`` QRS marks, else None."""
    import wfdb

    for ext, symbols in (("atr", _QTDB_BEAT_SYMBOLS), ("pu", {"N"})):
        if path.with_suffix(f".{ext}").is_file():
            ann = wfdb.rdann(str(path), ext)
            return np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in symbols])
    return None


def qtdb_labels(
    samples, symbols, n: int, max_rr: float = 1.5, beats: Sequence[float] | None = None
) -> np.ndarray:
    """Per-sample class of a QTDB record (``.q1c``, one mark set for both leads, at
    :data:`FS`), :data:`IGNORE` outside its annotated runs. A run is a stretch of annotated
    beats whose QRS peaks lie at most ``max_rr`` times the median RR apart (a longer gap holds
    beats the cardiologist did not mark) and, where ``beats`` (the samples of every beat of
    the record: the source database's ``.atr`` or ecgpuwave's ``.pu``) is given, with no beat
    between two of them farther than :data:`QTDB_SAME_BEAT_S` from both (in sel213 the
    cardiologist marked every other beat of a bigeminy, so that the median RR is twice the
    rhythm's and the RR rule alone keeps the unmarked beats inside the run, as ``none``);
    inside a run, every sample between the first and the last mark is ``none`` unless a wave
    covers it. A wave without an onset (most T waves) is
    labelled from its peak on, the stretch from the previous mark to its peak ignored; one
    without an offset up to its peak, the stretch to the next mark ignored. In a record whose
    cardiologist marked no P wave at all, the stretch before each QRS onset back to the
    previous mark is ignored (the benchmark does not count a P wave found there as false)."""
    lab = np.full(n, IGNORE, np.int64)
    waves = [w for w in _annotated_waves(samples, symbols, _QTDB_NOT_QRS, QRS) if 0 <= w[2] < n]
    marks = np.sort(np.asarray(samples, dtype=np.float64))
    qrs = [w for w in waves if w[0] == QRS]
    if len(qrs) < 2:
        return lab
    peaks = np.array([w[2] for w in qrs])
    rr = np.diff(peaks)
    cut = rr > max_rr * np.median(rr)
    if beats is not None:  # a beat between two marked ones: they are not consecutive
        b = np.asarray(beats, dtype=np.float64)
        b = b[(b > peaks[0]) & (b < peaks[-1])]
        gap = np.searchsorted(peaks, b) - 1  # peaks[gap] < b <= peaks[gap + 1]
        apart = np.minimum(b - peaks[gap], peaks[gap + 1] - b) > QTDB_SAME_BEAT_S * FS
        cut[gap[apart]] = True
    cuts = np.flatnonzero(cut)
    bounds = np.split(np.arange(peaks.size), cuts + 1)
    p_marked = any(w[0] == P for w in waves)

    def prev_mark(x: float) -> int:
        i = np.searchsorted(marks, x, side="left") - 1
        return int(marks[i]) if i >= 0 else 0

    def next_mark(x: float) -> int:
        i = np.searchsorted(marks, x, side="right")
        return int(marks[i]) if i < marks.size else n - 1

    # each wave's beat: a QRS its own, a P wave the next QRS's, a T or U wave the previous's
    owner = []
    for cls, _, peak, _ in waves:
        i = int(np.searchsorted(peaks, peak, side="left"))
        owner.append(i if cls in (QRS, P) else i - 1)
    for run in bounds:
        mine = set(run.tolist())
        inside = [w for w, o in zip(waves, owner) if o in mine and abs(w[2] - peaks[o]) < FS]
        ends = [v for w in inside for v in (w[1], w[2], w[3]) if math.isfinite(v)]
        lab[int(min(ends)) : int(max(ends)) + 1] = NONE
        for cls, on, peak, off in inside:
            a = int(on) if math.isfinite(on) else int(peak)
            b = int(off) if math.isfinite(off) else int(peak)
            if not math.isfinite(on):
                lab[prev_mark(peak) + 1 : int(peak)] = IGNORE
            if not math.isfinite(off):
                lab[int(peak) + 1 : next_mark(peak)] = IGNORE
            lab[a : b + 1] = cls
            if cls == QRS and not p_marked:
                lab[prev_mark(a) + 1 : a] = IGNORE
    return lab


def read_qtdb(folder: str | Path, record: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, labels)`` of one QTDB record: its leads (n_leads, n) in mV at :data:`FS` and
    :func:`qtdb_labels` of its ``.q1c`` marks, split at the beats its ``.atr`` (else ``.pu``)
    lists. A record without ``.q1c`` marks is refused."""
    import wfdb

    path = Path(folder) / str(record)
    if not path.with_suffix(".q1c").is_file():
        raise FileNotFoundError(f"QTDB record {record}: no cardiologist marks {path}.q1c")
    r = wfdb.rdrecord(str(path))
    if r.fs != FS:
        raise ValueError(f"QTDB record {record}: sampling rate {r.fs} Hz, expected {FS:g}")
    x = np.nan_to_num(r.p_signal.T.astype(np.float64))
    ann = wfdb.rdann(str(path), "q1c")
    return x, qtdb_labels(ann.sample, ann.symbol, x.shape[1], beats=_qtdb_beats(path))


def load_qtdb(
    folder: str | Path,
    records: Sequence[str],
    lowpass_hz: float = 40.0,
    input_channels: int = 1,
    length: int = QTDB_WINDOW,
) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)`` of QTDB ``records`` in rows of ``length`` samples, as
    :func:`load_ludb` gives LUDB leads: each annotated run (:func:`qtdb_labels`) is cut into
    windows of ``length`` samples from 1 s before its first mark, each window of each lead
    prepared on its own (:func:`prepare`: a 10-s window is normalised as a 10-s record is),
    both leads taking the record's labels (:func:`read_qtdb`). Records without ``.q1c`` marks
    are refused."""
    xs, ys = [], []
    for rec in records:
        x, lab = read_qtdb(folder, rec)
        labelled = np.flatnonzero(lab != IGNORE)
        if not labelled.size or x.shape[1] < length:
            continue
        start, last = int(labelled[0]) - int(FS), int(labelled[-1])
        while start <= last:
            a = min(max(0, start), x.shape[1] - length)
            seg = lab[a : a + length]
            if (seg != IGNORE).any():
                z, _ = prepare(x[:, a : a + length], FS, lowpass_hz, input_channels)
                for lead in range(x.shape[0]):
                    xs.append(z[lead])
                    ys.append(seg.copy())
            nxt = np.flatnonzero(lab[a + length :] != IGNORE)
            start = a + length + int(nxt[0]) - int(FS) if nxt.size else last + 1
            start = max(start, a + 1)
    if not xs:
        shape = (0, input_channels, length) if input_channels == 2 else (0, length)
        return np.zeros(shape, np.float32), np.zeros((0, length), np.int64)
    return np.stack(xs), np.stack(ys)


# --------------------------------------------------------------------------- training


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


def _augment(
    xb: np.ndarray, rng: np.random.Generator, cfg: TrainConfig, lowpass_hz: float = 0.0
) -> np.ndarray:
    """``xb`` (b, channels, n) with a random gain, baseline wander and white noise per row,
    the same on every channel, except that the noise of channel 0 of a two-channel input is
    low-passed at ``lowpass_hz`` as that channel is (:func:`prepare`)."""
    b, c, n = xb.shape
    t = np.arange(n) / FS
    gain = rng.uniform(*cfg.gain, size=(b, 1))
    wander = np.zeros((b, n))
    for _ in range(2):
        amp = rng.uniform(0, cfg.wander / 2, size=(b, 1))
        hz = rng.uniform(*cfg.wander_hz, size=(b, 1))
        phase = rng.uniform(0, 2 * np.pi, size=(b, 1))
        wander += amp * np.sin(2 * np.pi * hz * t[None, :] + phase)
    noise = rng.normal(size=(b, n)) * rng.uniform(0, cfg.noise, size=(b, 1))
    if c == 1:
        noise = noise[:, None, :]
    else:
        noise = np.stack([filters.remove_emg(noise, FS, lowpass_hz), noise], axis=1)
    return (gain[:, :, None] * xb + wander[:, None, :] + noise).astype(np.float32)


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
    (n, channels, length) (as :func:`load_ludb` gives them for ``net``), and their (n,
    length) labels (:data:`IGNORE` outside the annotated spans). Deterministic given
    ``config.seed`` on one thread."""
    cfg = config or TrainConfig()
    net = net or NetConfig()
    inputs = _with_channels(inputs, net.input_channels)
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
            xb = _augment(xb, rng, cfg, net.lowpass_hz)
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


def fold_split(records: Sequence[str], k: int = 5, seed: int = 0) -> list[list[str]]:
    """``k`` folds of ``records`` by a seeded permutation (``numpy``), each in name order."""
    if not 2 <= k <= len(records):
        raise ValueError(f"need 2 <= k <= {len(records)} records; got k={k}")
    perm = np.random.default_rng(seed).permutation(len(records))
    return [sorted((records[j] for j in perm[f::k]), key=_natural) for f in range(k)]


def _natural(name: str):
    return (0, int(name)) if str(name).isdigit() else (1, str(name))


def _folder_records(folder: Path, wanted: Sequence[str] | None) -> list[str]:
    """``wanted``, else the folder's records (its ``RECORDS``, else its headers) in natural
    order: LUDB's and QTDB's folders alike."""
    if wanted:
        return list(wanted)
    f = folder / "RECORDS"
    names = f.read_text().split() if f.exists() else [p.stem for p in folder.glob("*.hea")]
    return sorted(names, key=_natural)


# --------------------------------------------------------------------------- command line


def get_parser() -> argparse.ArgumentParser:
    """``train`` (one model) and ``folds`` (one model per record fold)."""
    p = argparse.ArgumentParser(
        prog="python -m team_code.nn.delineator", description=__doc__.split("\n\n")[0]
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("train", "train one model on the records (default: all of the folder)"),
        ("folds", "train one model per record fold; writes folds.json beside the weights"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--ludb", type=Path, required=True, help="LUDB folder (WFDB records)")
        s.add_argument(
            "--out",
            type=Path,
            required=True,
            help="weights file (train) or folder (folds)",
        )
        s.add_argument("--records", nargs="+", default=None, help="record names (default all)")
        s.add_argument(
            "--qtdb",
            type=Path,
            default=None,
            help="QTDB folder: its records' .q1c marks join the training (folds: split as LUDB's)",
        )
        s.add_argument("--epochs", type=int, default=TrainConfig.epochs)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--widths", type=int, nargs="+", default=list(NetConfig.widths))
        s.add_argument("--kernel", type=int, default=NetConfig.kernel)
        s.add_argument(
            "--lowpass-hz",
            type=float,
            default=NetConfig.lowpass_hz,
            help="the input's low-pass cut-off (0: none)",
        )
        s.add_argument(
            "--input-channels",
            type=int,
            choices=(1, 2),
            default=NetConfig.input_channels,
            help="1: the low-passed lead; 2: also the lead without the low-pass",
        )
        s.add_argument(
            "--dilation",
            type=int,
            default=NetConfig.dilation,
            help="dilation of the coarsest level's second convolution",
        )
        s.add_argument(
            "--edge-weight",
            type=float,
            default=TrainConfig.edge_weight,
            help="extra loss weight of samples near a marked wave boundary",
        )
        if name == "folds":
            s.add_argument("--k", type=int, default=5, help="number of folds")
            s.add_argument("--split-seed", type=int, default=0, help="seed of the fold split")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see :func:`get_parser`)."""
    args = get_parser().parse_args(argv)
    torch.set_num_threads(1)
    folder = Path(args.ludb)
    if not folder.is_dir():
        print(f"error: LUDB folder {folder} not found", file=sys.stderr)
        return 2
    records = _folder_records(folder, args.records)
    qtdb = Path(args.qtdb) if args.qtdb else None
    if qtdb is not None and not qtdb.is_dir():
        print(f"error: QTDB folder {qtdb} not found", file=sys.stderr)
        return 2
    qtdb_records = (
        [r for r in _folder_records(qtdb, None) if (qtdb / f"{r}.q1c").is_file()] if qtdb else []
    )
    net = NetConfig(
        widths=tuple(args.widths),
        kernel=args.kernel,
        dilation=args.dilation,
        lowpass_hz=args.lowpass_hz,
        input_channels=args.input_channels,
    )
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, edge_weight=args.edge_weight)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def fit(train_records: Sequence[str], out: Path, train_qtdb: Sequence[str] = ()) -> None:
        t0 = time.perf_counter()
        inputs, labels = load_ludb(folder, train_records, net.lowpass_hz, net.input_channels)
        if train_qtdb:
            more = load_qtdb(qtdb, train_qtdb, net.lowpass_hz, net.input_channels, labels.shape[1])
            inputs, labels = np.concatenate([inputs, more[0]]), np.concatenate([labels, more[1]])
        model = train(inputs, labels, net, cfg, log=log)
        facts = {
            "records": list(train_records),
            "qtdb_records": list(train_qtdb),
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            "edge_weight": cfg.edge_weight,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        save(model, out, facts)
        log(f"wrote {out} ({out.stat().st_size} bytes, {facts['seconds']} s)")

    if args.command == "train":
        fit(records, args.out, qtdb_records)
        return 0
    folds = fold_split(records, args.k, args.split_seed)
    qtdb_folds = fold_split(qtdb_records, args.k, args.split_seed) if qtdb_records else None
    args.out.mkdir(parents=True, exist_ok=True)
    index = {}
    for f, held in enumerate(folds):
        name = f"fold{f}.safetensors"
        held_qtdb = qtdb_folds[f] if qtdb_folds else []
        fit(
            [r for r in records if r not in set(held)],
            args.out / name,
            [r for r in qtdb_records if r not in set(held_qtdb)],
        )
        index[name] = held + held_qtdb
    (args.out / "folds.json").write_text(json.dumps(index, indent=1) + "\n")
    log(f"wrote {args.out / 'folds.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
