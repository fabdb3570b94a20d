"""Delineation of an average beat: P onset/peak/offset, QRS onset/offset, T peak/end.

``delineate(beat_mv, fs, r_index, rr_s)`` works on a multi-lead average beat (the output of
:func:`team_code.dsp.beats.average_beat`, ideally the 8 independent leads I, II, V1-V6) with
global, multi-lead boundaries (as in the "global" measurements of the 12-lead programs):

- QRS (``method="sv2000"``-like spatial velocity): the spatial velocity
  ``SV(t) = sqrt(sum_l (dx_l/dt)^2)``, smoothed over 8 ms, is high during the QRS. Its noise
  level is the 20th percentile of SV over the beat; QRS onset is the first sample, walking
  back from the R peak, after which SV stays below ``noise + qrs_fraction * (peak - noise)``
  for ``sustain_ms``; QRS offset the same walking forward.
- T wave: the spatial magnitude of the T wave (leads referred to their PR-segment level,
  smoothed over 20 ms); T peak is its maximum between QRS offset + 80 ms and
  ``R + min(0.75 RR, window)``; T end is where the tangent at the steepest descent after the
  peak meets the lowest level of the curve that follows (the tangent method of Lepeschkin and
  Surawicz, 1952, applied to the magnitude curve).
- P wave: the spatial magnitude of the lead-wise linearly detrended segment between the end of
  the previous T wave (``T end - RR``) or ``qrs_on - p_search_s`` and ``qrs_on - 20 ms``;
  P peak is its maximum and P onset/offset are the knees of the curve (the points farthest
  below the chord from the peak to 120 ms before / 100 ms after it).

Intervals come out in ms (PR = QRS onset - P onset; QT = T end - QRS onset). Anything that
cannot be found is NaN: a flat beat gives NaN everywhere, a beat without an atrial wave gives
NaN P measurements.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.ndimage

__all__ = ["DelineationConfig", "Delineation", "delineate", "qtc"]


@dataclasses.dataclass(frozen=True)
class DelineationConfig:
    """Thresholds and windows of the delineator, in physical units."""

    sv_smooth_ms: float = 8.0  # moving average of the spatial velocity
    qrs_fraction: float = 0.06  # SV threshold above noise, as a fraction of peak minus noise
    sustain_ms: float = 12.0  # SV must stay below threshold this long to end the QRS
    qrs_search_ms: float = 150.0  # QRS boundaries are searched this far from the R peak ...
    qrs_search_after_ms: float = 200.0  # ... and this far after it
    min_peak_sv_mv_s: float = 2.0  # a beat whose SV peak is below this (mV/s) is flat
    t_smooth_ms: float = 20.0  # moving average of the T magnitude
    t_start_after_qrs_ms: float = 80.0  # T peak searched from QRS offset + this ...
    t_max_rr: float = 0.75  # ... up to R + this fraction of the RR interval ...
    t_max_s: float = 0.62  # ... and at most this long after R
    p_smooth_ms: float = 20.0  # moving average of the P segment
    p_search_s: float = 0.36  # P wave searched at most this long before QRS onset
    p_gap_ms: float = 20.0  # ... and ending this long before QRS onset
    p_edge_ms: float = 50.0  # the P peak is not searched in the first this-many ms of the window
    p_onset_span_ms: float = 120.0  # P onset: knee of the magnitude within this before the peak
    p_offset_span_ms: float = 100.0  # P offset: knee within this after the peak
    min_p_mv: float = 0.03  # a P magnitude peak below this is no P wave


@dataclasses.dataclass(frozen=True)
class Delineation:
    """Fiducial points (sample indices in the beat window, NaN if absent) and intervals."""

    fs: float  # sampling frequency in Hz
    r_index: int  # R peak in the window
    p_on: float  # P onset sample
    p_peak: float  # P peak sample (of the magnitude curve)
    p_off: float  # P offset sample
    qrs_on: float  # QRS onset sample
    qrs_off: float  # QRS offset sample
    t_peak: float  # T peak sample (of the magnitude curve)
    t_end: float  # T end sample
    p_mv: float  # P magnitude at its peak, mV (NaN when no P search was possible)

    def _ms(self, a: float, b: float) -> float:
        return (b - a) * 1e3 / self.fs if math.isfinite(a) and math.isfinite(b) else math.nan

    @property
    def pr_ms(self) -> float:
        """PR interval: P onset to QRS onset."""
        return self._ms(self.p_on, self.qrs_on)

    @property
    def p_ms(self) -> float:
        """P-wave duration."""
        return self._ms(self.p_on, self.p_off)

    @property
    def qrs_ms(self) -> float:
        """QRS duration."""
        return self._ms(self.qrs_on, self.qrs_off)

    @property
    def qt_ms(self) -> float:
        """QT interval: QRS onset to T end."""
        return self._ms(self.qrs_on, self.t_end)

    def as_dict(self) -> dict:
        """JSON-able summary: intervals in ms and points in ms relative to the R peak."""
        rel = {
            f"{k}_ms_from_r": self._ms(self.r_index, getattr(self, k))
            for k in ("p_on", "p_off", "qrs_on", "qrs_off", "t_peak", "t_end")
        }
        return {
            "pr_ms": self.pr_ms,
            "p_ms": self.p_ms,
            "qrs_ms": self.qrs_ms,
            "qt_ms": self.qt_ms,
            "p_mv": self.p_mv,
            **rel,
        }


def qtc(qt_ms: float, rr_s: float, method: str = "bazett1920") -> float:
    """Heart-rate corrected QT in ms.

    ``bazett1920``: QT / RR^(1/2); ``fridericia1920``: QT / RR^(1/3); ``framingham1992``:
    QT + 154 (1 - RR). RR in seconds. NaN in, NaN out.
    """
    if not (math.isfinite(qt_ms) and math.isfinite(rr_s) and rr_s > 0):
        return math.nan
    if method == "bazett1920":
        return qt_ms / math.sqrt(rr_s)
    if method == "fridericia1920":
        return qt_ms / rr_s ** (1.0 / 3.0)
    if method == "framingham1992":
        return qt_ms + 154.0 * (1.0 - rr_s)
    raise ValueError(
        f"unknown QTc method {method!r}; known: bazett1920, fridericia1920, framingham1992"
    )


def _n(ms: float, fs: float) -> int:
    return max(1, int(round(ms * 1e-3 * fs)))


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    return x if n <= 1 else scipy.ndimage.uniform_filter1d(x, size=n, axis=-1, mode="nearest")


def _walk(below: np.ndarray, start: int, stop: int, step: int, sustain: int) -> int | None:
    """First index from ``start`` towards ``stop`` that begins a run of ``sustain`` True."""
    run = 0
    for i in range(start, stop, step):
        run = run + 1 if below[i] else 0
        if run >= sustain:
            return i - step * (sustain - 1)
    return None


def _knee(curve: np.ndarray, start: int, peak: int) -> int:
    """Point of ``curve`` between ``start`` and ``peak`` farthest below their chord.

    Where a wave rises from the baseline to its peak, that is where it leaves the baseline
    (its onset, or its offset when ``start`` lies after ``peak``); robust to a baseline offset.
    """
    if abs(peak - start) < 2:
        return start
    step = 1 if peak > start else -1
    idx = np.arange(start, peak + step, step)
    chord = np.linspace(curve[start], curve[peak], idx.size)
    return int(idx[int(np.argmax(chord - curve[idx]))])


def delineate(
    beat_mv, fs, r_index: int, rr_s: float = math.nan, config: DelineationConfig | None = None
) -> Delineation:
    """Delineate an average beat (see the module docstring).

    Args:
        beat_mv: (n_leads, n_window) average beat in mV (or 1-D for one lead).
        fs: sampling frequency in Hz.
        r_index: sample of the R peak in the window.
        rr_s: median RR interval in seconds (bounds the T and P searches); NaN if unknown.
        config: thresholds; defaults to :class:`DelineationConfig()`.

    Returns:
        A :class:`Delineation`; missing points are NaN.
    """
    config = config or DelineationConfig()
    fs = float(fs)
    x = np.atleast_2d(np.asarray(beat_mv, dtype=np.float64))
    n = x.shape[-1]
    nan = math.nan
    empty = Delineation(fs, int(r_index), nan, nan, nan, nan, nan, nan, nan, nan)
    if n < 4 or not (0 <= r_index < n) or not np.all(np.isfinite(x)):
        return empty
    # ---- QRS from the spatial velocity
    d = np.diff(x, axis=-1, prepend=x[:, :1]) * fs
    sv = _smooth(np.sqrt((d**2).sum(axis=0)), _n(config.sv_smooth_ms, fs))
    lo = max(0, r_index - _n(config.qrs_search_ms, fs))
    hi = min(n, r_index + _n(config.qrs_search_after_ms, fs))
    core = slice(max(0, r_index - _n(60, fs)), min(n, r_index + _n(60, fs)))
    peak = float(sv[core].max())
    if peak < config.min_peak_sv_mv_s:
        return empty
    noise = float(np.percentile(sv, 20))
    below = sv < noise + config.qrs_fraction * (peak - noise)
    sustain = _n(config.sustain_ms, fs)
    peak_at = core.start + int(np.argmax(sv[core]))
    on = _walk(below, peak_at, lo - 1, -1, sustain)
    off = _walk(below, peak_at, hi, 1, sustain)
    qrs_on = float(on if on is not None else lo)
    qrs_off = float(off if off is not None else hi - 1)
    # ---- T wave from the magnitude of the leads referred to the PR segment level
    i_on = int(qrs_on)
    ref = x[:, max(0, i_on - _n(20, fs)) : max(1, i_on - _n(4, fs) + 1)].mean(axis=-1)
    mag = _smooth(np.sqrt(((x - ref[:, None]) ** 2).sum(axis=0)), _n(config.t_smooth_ms, fs))
    t_lo = int(qrs_off) + _n(config.t_start_after_qrs_ms, fs)
    t_span = (
        config.t_max_s if not math.isfinite(rr_s) else min(config.t_max_s, config.t_max_rr * rr_s)
    )
    t_hi = min(n, r_index + _n(t_span * 1e3, fs))
    t_peak = t_end = nan
    if t_hi - t_lo > _n(40, fs):
        seg = mag[t_lo:t_hi]
        ip = int(np.argmax(seg))
        t_peak = float(t_lo + ip)
        after = seg[ip:]
        if after.size > 2:
            slope = np.diff(after)
            k = int(np.argmin(slope))
            floor = float(after.min())
            if slope[k] < 0:
                cross = k + (floor - after[k]) / slope[k]
                t_end = float(t_lo + ip + min(max(cross, k), after.size - 1))
    # ---- P wave in the segment before QRS onset
    p_on = p_peak = p_off = p_mv = nan
    p_hi = i_on - _n(config.p_gap_ms, fs)
    p_lo = max(0, i_on - _n(config.p_search_s * 1e3, fs))
    if math.isfinite(rr_s) and math.isfinite(t_end):
        p_lo = max(p_lo, int(t_end - rr_s * fs) + _n(20, fs))
    if p_hi - p_lo > _n(60, fs):
        seg = _smooth(x[:, p_lo : i_on + 1], _n(config.p_smooth_ms, fs))
        edge = _n(10, fs)
        a = seg[:, :edge].mean(axis=-1)
        b = seg[:, -edge:].mean(axis=-1)
        ramp = np.linspace(0.0, 1.0, seg.shape[-1])
        seg = seg - (a[:, None] + (b - a)[:, None] * ramp[None, :])
        pm = np.sqrt((seg**2).sum(axis=0))[: p_hi - p_lo]
        skip = min(_n(config.p_edge_ms, fs), pm.size - 2)  # the detrend pins the edge to 0
        ip = skip + int(np.argmax(pm[skip:]))
        p_mv = float(pm[ip])
        if p_mv >= config.min_p_mv and 0 < ip < pm.size - 1:
            n_back, n_fwd = _n(config.p_onset_span_ms, fs), _n(config.p_offset_span_ms, fs)
            p_on = float(p_lo + _knee(pm, max(0, ip - n_back), ip))
            p_peak = float(p_lo + ip)
            p_off = float(p_lo + _knee(pm, min(pm.size - 1, ip + n_fwd), ip))
    return Delineation(
        fs=fs,
        r_index=int(r_index),
        p_on=p_on,
        p_peak=p_peak,
        p_off=p_off,
        qrs_on=qrs_on,
        qrs_off=qrs_off,
        t_peak=t_peak,
        t_end=t_end,
        p_mv=p_mv,
    )
