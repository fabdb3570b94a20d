"""Beat segmentation and a robust average beat.

``average_beat(signal_mv, fs, r_peaks)`` cuts a window around every R peak, refines the
alignment of each beat by cross-correlating its QRS with the median QRS (all leads at once),
groups the beats by QRS morphology and averages (median) only the dominant morphology, so that
premature ventricular beats or artefacts do not pollute the average (Bortolan and Christov's
"robust average beat"). Beats of the dominant morphology whose whole window correlates poorly
with the median (noise, baseline jumps) are also left out.

Every window is defined in seconds in :class:`AverageBeatConfig` and converted to samples
once from ``fs``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from team_code.dsp.rhythm import premature_beats

__all__ = ["AverageBeatConfig", "AverageBeat", "segment", "average_beat", "qrs_correlation"]


@dataclasses.dataclass(frozen=True)
class AverageBeatConfig:
    """Parameters of the average beat, in physical units."""

    pre_s: float = 0.45  # window start before the R peak (room for a long PR interval)
    post_s: float = 0.65  # window end after the R peak (room for a long QT interval)
    qrs_half_s: float = 0.07  # half-width of the QRS segment used to align and compare beats
    max_shift_s: float = 0.03  # largest alignment correction of a detected R peak
    same_morphology: float = 0.9  # QRS correlation above which two beats share a morphology
    min_window_corr: float = 0.8  # dominant beats below this whole-window correlation are noise


@dataclasses.dataclass(frozen=True)
class AverageBeat:
    """The median beat of the dominant morphology and how every beat was classified."""

    beat_mv: np.ndarray  # (n_leads, n_window) median of the kept beats, mV
    fs: float  # sampling frequency of ``beat_mv`` in Hz
    r_index: int  # sample of the R peak (fiducial point) inside the window
    r_peaks: np.ndarray  # aligned R-peak sample index of every beat of the record
    in_window: np.ndarray  # bool per beat: its whole window lies inside the record
    dominant: np.ndarray  # bool per beat: QRS morphology of the dominant cluster
    kept: np.ndarray  # bool per beat: used in the average (dominant, in window, not noisy)
    qrs_corr: np.ndarray  # per beat: QRS correlation with the dominant template (NaN if cut)
    # share of the beats (whole window inside the record) whose QRS has a look-alike among the
    # others (correlation >= same_morphology): low where noise leaves no two beats alike
    alike_fraction: float = math.nan

    @property
    def n_kept(self) -> int:
        """Number of beats averaged."""
        return int(self.kept.sum())

    def time_ms(self) -> np.ndarray:
        """Time of each window sample relative to the R peak, in ms."""
        return (np.arange(self.beat_mv.shape[-1]) - self.r_index) * 1e3 / self.fs


def segment(signal_mv, fs, r_peaks, pre_s: float, post_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Cut a window ``[r - pre_s, r + post_s)`` around each R peak.

    Args:
        signal_mv: (n_leads, n_samples) or (n_samples,) ECG in mV.
        fs: sampling frequency in Hz.
        r_peaks: R-peak sample indices.
        pre_s, post_s: window extent before and after the peak, in seconds.

    Returns:
        ``(beats, inside)``: beats shaped (n_beats, n_leads, n_window) for the peaks whose
        window lies inside the record, and the bool mask ``inside`` over all peaks.
    """
    x = np.atleast_2d(np.asarray(signal_mv, dtype=np.float64))
    r = np.asarray(r_peaks, dtype=np.int64).ravel()
    n_pre, n_post = int(round(pre_s * fs)), int(round(post_s * fs))
    inside = (r - n_pre >= 0) & (r + n_post <= x.shape[-1])
    idx = r[inside, None] + np.arange(-n_pre, n_post)[None, :]
    beats = np.transpose(x[:, idx], (1, 0, 2)) if idx.size else np.zeros((0, x.shape[0], 0))
    return beats, inside


def _normalised_rows(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / np.where(norm > 0, norm, 1.0)


def qrs_correlation(beats: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Pearson correlation of each beat (leads concatenated) with a template of the same shape."""
    flat = _normalised_rows(beats.reshape(beats.shape[0], -1))
    ref = _normalised_rows(template.reshape(1, -1))
    return (flat @ ref.T).ravel()


def _align(x: np.ndarray, r: np.ndarray, n_half: int, n_shift: int) -> np.ndarray:
    """Shift each R peak by up to ``n_shift`` samples to best match the median QRS."""
    n = x.shape[-1]
    ok = (r - n_half - n_shift >= 0) & (r + n_half + n_shift < n)
    if ok.sum() < 2:
        return r
    win = np.arange(-n_half, n_half + 1)
    template = np.median(x[:, r[ok, None] + win[None, :]], axis=1)  # (n_leads, n_win)
    ref = _normalised_rows(template.reshape(1, -1))[0]
    shifts = np.arange(-n_shift, n_shift + 1)
    scores = np.empty((shifts.size, int(ok.sum())))
    for k, s in enumerate(shifts):
        seg = x[:, r[ok, None] + s + win[None, :]]  # (n_leads, n_beats, n_win)
        flat = _normalised_rows(np.transpose(seg, (1, 0, 2)).reshape(seg.shape[1], -1))
        scores[k] = flat @ ref
    out = r.copy()
    out[ok] = r[ok] + shifts[np.argmax(scores, axis=0)]
    return out


def average_beat(
    signal_mv, fs, r_peaks, config: AverageBeatConfig | None = None
) -> AverageBeat | None:
    """Robust average beat of the dominant QRS morphology.

    Args:
        signal_mv: (n_leads, n_samples) filtered ECG in mV (baseline removed).
        fs: sampling frequency in Hz.
        r_peaks: R-peak sample indices (e.g. from :func:`team_code.dsp.qrs.detect`).
        config: windows and thresholds; defaults to :class:`AverageBeatConfig()`.

    Returns:
        An :class:`AverageBeat`, or None when no beat has a full window inside the record.
    """
    config = config or AverageBeatConfig()
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"fs must be a positive sampling frequency in Hz; got {fs}")
    x = np.atleast_2d(np.asarray(signal_mv, dtype=np.float64))
    r = np.unique(np.asarray(r_peaks, dtype=np.int64).ravel())
    r = r[(r >= 0) & (r < x.shape[-1])]
    n_half = max(1, int(round(config.qrs_half_s * fs)))
    n_shift = int(round(config.max_shift_s * fs))
    r = _align(x, r, n_half, n_shift)
    beats, inside = segment(x, fs, r, config.pre_s, config.post_s)
    if beats.shape[0] == 0:
        return None
    n_pre = int(round(config.pre_s * fs))
    qrs = beats[:, :, n_pre - n_half : n_pre + n_half + 1]
    n_beats = beats.shape[0]
    # dominant morphology: the beat with most look-alikes that come on time seeds the cluster
    # (then most look-alikes, then the highest mean correlation). In ventricular bigeminy the
    # ectopic beats are as many as the conducted ones, and more alike: counting every
    # look-alike made them the dominant morphology.
    flat = _normalised_rows(qrs.reshape(n_beats, -1))
    corr = flat @ flat.T
    similar = corr >= config.same_morphology
    # beats with a look-alike besides themselves
    alike_fraction = float((similar.sum(axis=1) > 1).mean()) if n_beats > 1 else math.nan
    on_time = ~premature_beats(r, fs)[inside]
    rank = similar[:, on_time].sum(axis=1) * (n_beats + 1.0) + similar.sum(axis=1)
    seed = int(np.argmax(rank + 1e-3 * corr.mean(axis=1)))
    dominant = similar[seed]
    template_qrs = np.median(qrs[dominant], axis=0)
    qrs_corr = qrs_correlation(qrs, template_qrs)
    dominant = qrs_corr >= config.same_morphology
    if not dominant.any():
        dominant = np.zeros(n_beats, bool)
        dominant[seed] = True
    median = np.median(beats[dominant], axis=0)
    window_corr = qrs_correlation(beats, median)
    kept = dominant & (window_corr >= config.min_window_corr)
    if kept.sum() < max(1, dominant.sum() // 2):  # noisy record: keep the better half
        order = np.argsort(-np.where(dominant, window_corr, -np.inf))
        kept = np.zeros(n_beats, bool)
        kept[order[: max(1, (dominant.sum() + 1) // 2)]] = True
    beat = np.median(beats[kept], axis=0)
    n_all = r.size
    dom_all = np.zeros(n_all, bool)
    kept_all = np.zeros(n_all, bool)
    corr_all = np.full(n_all, np.nan)
    dom_all[inside], kept_all[inside], corr_all[inside] = dominant, kept, qrs_corr
    # beats cut by the record's ends: compare the part of their QRS that exists
    for i in np.flatnonzero(~inside):
        lo, hi = r[i] - n_half, r[i] + n_half + 1
        if lo >= 0 and hi <= x.shape[-1]:
            c = qrs_correlation(x[None, :, lo:hi], template_qrs)[0]
            corr_all[i] = c
            dom_all[i] = c >= config.same_morphology
    return AverageBeat(
        beat_mv=beat,
        fs=fs,
        r_index=n_pre,
        r_peaks=r,
        in_window=inside,
        dominant=dom_all,
        kept=kept_all,
        qrs_corr=corr_all,
        alike_fraction=alike_fraction,
    )
