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

``delineate_leads(beat_mv, fs, r_index, rr_s, method="laguna1994")`` then delineates every
lead on its own around that global delineation (P, QRS and T onset, peak and offset per lead:
slope thresholds relative to the lead's largest QRS slope after Laguna et al. 1994, the
trapezium-area T end of Vazquez-Seisdedos et al. 2011, knee-point P boundaries) and remakes
the global boundaries from the leads as the interval standards define them (earliest onset,
latest offset; :data:`GLOBAL_RULES`, robust to one stray lead), with no P wave where the
caller's rhythm analysis says there is none.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import scipy.ndimage

__all__ = [
    "DelineationConfig",
    "Delineation",
    "delineate",
    "qtc",
    "LeadDelineationConfig",
    "LeadDelineation",
    "LEAD_POINTS",
    "LEAD_METHODS",
    "GLOBAL_RULES",
    "global_boundary",
    "T_END_METHODS",
    "delineate_leads",
    "global_from_leads",
]


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


# --------------------------------------------------------------------------- per lead

#: Columns of :attr:`LeadDelineation.points`, sample indices in the beat window.
LEAD_POINTS: tuple[str, ...] = (
    "p_on",
    "p_peak",
    "p_off",
    "qrs_on",
    "qrs_peak",
    "qrs_off",
    "t_on",
    "t_peak",
    "t_end",
)
_COL = {name: i for i, name in enumerate(LEAD_POINTS)}
#: The onsets and offsets among :data:`LEAD_POINTS` (the typical lead's, and those the
#: learned delineator pulls toward the leads' median).
BOUNDARY_POINTS: tuple[str, ...] = ("p_on", "p_off", "qrs_on", "qrs_off", "t_end")


@dataclasses.dataclass(frozen=True)
class LeadDelineationConfig:
    """Thresholds and windows of the per-lead delineation, in physical units."""

    slope_smooth_ms: float = 6.0  # moving average of each lead's derivative
    qrs_margin_ms: float = 50.0  # a lead's QRS is searched this far outside the global one
    qrs_slope_fraction: float = 0.3  # first/last significant slope: |dx/dt| >= this x the peak
    qrs_edge_fraction: float = 0.02  # the lead's QRS ends where |dx/dt| < this x the peak
    min_qrs_mv: float = 0.05  # a lead with a smaller QRS peak-to-peak takes the global QRS
    qrs_max_dev_ms: float = 12.0  # a lead's QRS boundary at most this from the global one
    t_smooth_ms: float = 16.0  # moving average of each lead before the T search
    t_search_ms: float = 100.0  # a lead's T peak is searched this far around the global one
    min_t_mv: float = 0.04  # a lead with a smaller T (from the PR level) takes the global T
    t_end_method: str = "vazquez2011"  # a lead's T end, see T_END_METHODS
    t_end_level: str = "zero"  # lepeschkin1952: tangent meets the PR level or the tail's floor
    t_end_after_ms: float = 100.0  # a lead's T end lies at most this after the T search window
    lead_t_end: bool = True  # each lead's own T end (else every lead takes the global T end)
    t_max_dev_ms: float = 60.0  # a lead T end farther than this from the global one: global
    p_margin_ms: float = 80.0  # a lead's P is searched this far outside the global one
    min_p_mv: float = 0.015  # a lead with a smaller P takes the global P boundaries
    global_rule: str = "mad"  # how leads give the global boundaries, see GLOBAL_RULES
    # "mad": a lead further than this (and than 3 x 1.4826 x MAD) from the median is an outlier
    outlier_ms: float = 12.0

    def __post_init__(self):
        if self.global_rule not in GLOBAL_RULES:
            raise ValueError(
                f"unknown global rule {self.global_rule!r}; known: {', '.join(GLOBAL_RULES)}"
            )
        if self.t_end_method not in T_END_METHODS:
            raise ValueError(
                f"unknown t_end_method {self.t_end_method!r}; known: {', '.join(T_END_METHODS)}"
            )
        if self.t_end_level not in ("zero", "floor"):
            raise ValueError(f"unknown t_end_level {self.t_end_level!r}; known: zero, floor")


@dataclasses.dataclass(frozen=True)
class LeadDelineation:
    """Per-lead boundaries of an average beat and the global boundaries made from them."""

    fs: float  # sampling frequency in Hz
    r_index: int  # R peak in the window
    points: np.ndarray  # (n_leads, len(LEAD_POINTS)) sample indices, NaN where absent
    t_mv: np.ndarray  # (n_leads,) signed T amplitude at each lead's T peak (PR level), mV
    p_mv: np.ndarray  # (n_leads,) signed P amplitude at each lead's P peak (PR level), mV
    global_: Delineation  # global boundaries from the leads (``global_rule``)

    def lead(self, i: int) -> dict:
        """The points of lead row ``i`` by name."""
        return {name: float(self.points[i, k]) for name, k in _COL.items()}

    def ms(self, i: int, start: str, end: str) -> float:
        """Duration from point ``start`` to ``end`` of lead row ``i`` in ms (NaN if absent)."""
        return self.global_._ms(self.points[i, _COL[start]], self.points[i, _COL[end]])

    def lead_median(self) -> Delineation:
        """The typical lead: each boundary the median over the leads that have it (the
        global boundaries' peaks and P magnitude kept), the measurement that matches a
        lead-median reference, beside the standards' earliest onset and latest offset."""
        if not self.points.size:
            return self.global_
        med = nanmedian(self.points, axis=0)  # a wave no lead has: NaN
        return dataclasses.replace(
            self.global_, **{name: float(med[_COL[name]]) for name in BOUNDARY_POINTS}
        )


def _walk_until(a: np.ndarray, start: int, step: int, thr: float) -> int:
    """First index from ``start`` (stepping by ``step``) where ``a`` drops below ``thr``; the
    array's end if it never does."""
    k = start
    while 0 < k < a.size - 1 and a[k] >= thr:
        k += step
    return k


def _lead_qrs(x, fs, on, off, cfg: LeadDelineationConfig) -> tuple[float, float, float]:
    """QRS onset, peak (largest deflection from the PR level) and offset of one lead.

    After Laguna et al. (1994): the first and last slopes above ``qrs_slope_fraction`` of the
    lead's largest slope inside the global QRS (widened by ``qrs_margin_ms``) are the QRS's
    first and last significant slopes; the boundaries are where, walking outwards from them,
    the slope falls below ``qrs_edge_fraction`` of that largest slope.
    """
    n = x.size
    m = _n(cfg.qrs_margin_ms, fs)
    lo, hi = max(1, on - m), min(n - 1, off + m)
    core = x[on : off + 1]
    if hi - lo < 4 or core.size < 2 or float(np.ptp(core)) < cfg.min_qrs_mv:
        return math.nan, math.nan, math.nan
    d = np.abs(_smooth(np.gradient(x) * fs, _n(cfg.slope_smooth_ms, fs)))
    peak = float(d[on : off + 1].max())
    a = d[lo:hi]
    big = np.flatnonzero(a >= cfg.qrs_slope_fraction * peak)
    thr = cfg.qrs_edge_fraction * peak
    k_on = _walk_until(a, int(big[0]), -1, thr)
    k_off = _walk_until(a, int(big[-1]), 1, thr)
    k_pk = on + int(np.argmax(np.abs(core)))
    return float(lo + k_on), float(k_pk), float(lo + k_off)


def _steepest_descent(s: np.ndarray, ip: int, span: int) -> tuple[np.ndarray, int] | None:
    """``s`` from ``ip`` on and the index in it of the steepest descent within ``span``
    samples (None where there is no descent)."""
    after = s[ip:]
    if after.size < 3:
        return None
    slope = np.diff(after)
    k = int(np.argmin(slope[:span]))
    return (after, k) if slope[k] < 0 else None


def _tangent_end(s: np.ndarray, ip: int, span: int, level: str) -> float:
    """Where the tangent at the steepest descent of ``s`` within ``span`` samples after ``ip``
    meets the baseline (0, or the lowest level after the peak), at most ``span`` after that
    descent: the T end of Lepeschkin and Surawicz (1952)."""
    found = _steepest_descent(s, ip, span)
    if found is None:
        return math.nan
    after, k = found
    slope = after[k + 1] - after[k]
    floor = 0.0 if level == "zero" else float(after.min())
    cross = k + (floor - after[k]) / slope
    return float(ip + min(max(cross, k), k + span, after.size - 1))


def _trapezium_end(s: np.ndarray, ip: int, span: int, level: str) -> float:
    """T end of ``s`` by the trapezium area of Vazquez-Seisdedos et al. (2011): from the
    steepest descent ``m`` within ``span`` samples after ``ip`` to a reference ``r`` = ``m``
    + ``span``, the point ``i`` that maximises ``(s[m] - s[i]) (2 r - i - m) / 2`` (no
    baseline level needed: ``level`` is ignored)."""
    found = _steepest_descent(s, ip, span)
    if found is None:
        return math.nan
    after, m = found
    r = min(m + span, after.size - 1)
    i = np.arange(m, r + 1)
    area = 0.5 * (after[m] - after[i]) * (2 * r - i - m)
    return float(ip + i[int(np.argmax(area))])


#: Per-lead T-end methods: name -> function(curve, peak index, span, level).
T_END_METHODS = {"lepeschkin1952": _tangent_end, "vazquez2011": _trapezium_end}


def _lead_t(y, fs, g: Delineation, qrs_off: float, t_hi: int, cfg: LeadDelineationConfig):
    """T onset, peak, end and signed peak amplitude of one lead referred to its PR level."""
    nan4 = (math.nan,) * 4
    if not math.isfinite(g.t_peak):
        return nan4
    ys = _smooth(y, _n(cfg.t_smooth_ms, fs))
    w = _n(cfg.t_search_ms, fs)
    start = int(qrs_off if math.isfinite(qrs_off) else g.qrs_off) + _n(40, fs)
    lo, hi = max(start, int(g.t_peak) - w), min(t_hi, int(g.t_peak) + w, ys.size - 1)
    if hi - lo < 3:
        return nan4
    ip = lo + int(np.argmax(np.abs(ys[lo:hi])))
    amp = float(ys[ip])
    if abs(amp) < cfg.min_t_mv or ip in (lo, hi - 1):  # small, or no peak inside the window
        return math.nan, math.nan, math.nan, amp
    s = ys * np.sign(amp)
    tail = s[: t_hi + _n(cfg.t_end_after_ms, fs)]
    end = T_END_METHODS[cfg.t_end_method](tail, ip, _n(150, fs), cfg.t_end_level)
    if math.isfinite(g.t_end) and abs(end - g.t_end) > cfg.t_max_dev_ms * 1e-3 * fs:
        end = g.t_end
    on = float(_knee(s, start, ip)) if ip - start >= 2 else math.nan
    return on, float(ip), end, amp


def _lead_p(y, fs, g: Delineation, cfg: LeadDelineationConfig):
    """P onset, peak, offset and signed peak amplitude of one lead (NaN without a global P)."""
    nan4 = (math.nan,) * 4
    if not (math.isfinite(g.p_on) and math.isfinite(g.p_off)):
        return nan4
    m = _n(cfg.p_margin_ms, fs)
    lo = max(0, int(g.p_on) - m)
    hi = min(int(g.qrs_on) - _n(4, fs), int(g.p_off) + m)
    if hi - lo < _n(60, fs):
        return nan4
    seg = _smooth(y[lo : hi + 1], _n(10, fs))
    seg = seg - np.linspace(seg[0], seg[-1], seg.size)
    a, b = int(g.p_on) - lo, int(g.p_off) - lo + 1
    ip = a + int(np.argmax(np.abs(seg[a:b])))
    amp = float(seg[ip])
    if abs(amp) < cfg.min_p_mv:
        return math.nan, math.nan, math.nan, amp
    s = seg * np.sign(amp)
    return float(lo + _knee(s, 0, ip)), float(lo + ip), float(lo + _knee(s, seg.size - 1, ip)), amp


def _laguna1994(y, fs, g: Delineation, t_hi: int, cfg: LeadDelineationConfig):
    """Per-lead points of :data:`LEAD_POINTS` plus T and P amplitudes, guided by the global
    delineation ``g`` (see :func:`delineate_leads`)."""
    n_leads = y.shape[0]
    pts = np.full((n_leads, len(LEAD_POINTS)), np.nan)
    t_mv = np.full(n_leads, np.nan)
    p_mv = np.full(n_leads, np.nan)
    on, off = int(g.qrs_on), int(g.qrs_off)
    for i in range(n_leads):
        q_on, q_pk, q_off = _lead_qrs(y[i], fs, on, off, cfg)
        if not math.isfinite(q_on):
            q_pk = float(on + np.argmax(np.abs(y[i, on : off + 1])))
            q_on, q_off = g.qrs_on, g.qrs_off
        dev = cfg.qrs_max_dev_ms * 1e-3 * fs
        q_on = float(np.clip(q_on, g.qrs_on - dev, g.qrs_on + dev))
        q_off = float(np.clip(q_off, g.qrs_off - dev, g.qrs_off + dev))
        pts[i, 3:6] = q_on, q_pk, q_off
        t_on, t_pk, t_end, t_mv[i] = _lead_t(y[i], fs, g, q_off, t_hi, cfg)
        if math.isfinite(g.t_peak) and not math.isfinite(t_pk):
            t_on, t_pk, t_end = math.nan, g.t_peak, g.t_end
        if not cfg.lead_t_end:
            t_end = g.t_end
        pts[i, 6:9] = t_on, t_pk, t_end
        p_on, p_pk, p_off, p_mv[i] = _lead_p(y[i], fs, g, cfg)
        if math.isfinite(g.p_on) and not math.isfinite(p_pk):
            p_on, p_pk, p_off = g.p_on, g.p_peak, g.p_off
        pts[i, 0:3] = p_on, p_pk, p_off
    return pts, t_mv, p_mv


#: Per-lead delineation methods: name -> function(y, fs, global, t_hi, config).
LEAD_METHODS = {"laguna1994": _laguna1994}


def _kth(values: np.ndarray, k: int, latest: bool) -> float:
    v = np.sort(values[np.isfinite(values)])
    if not v.size:
        return math.nan
    k = min(k, v.size) - 1
    return float(v[-1 - k] if latest else v[k])


def _sorted_median(v: np.ndarray) -> float:
    """The median of a sorted, non-empty ``v`` (the value ``np.median`` gives, without its
    overhead on the few leads of a beat)."""
    n = v.size
    return float(0.5 * (v[(n - 1) // 2] + v[n // 2]))


def _mad_extreme(values: np.ndarray, latest: bool, fs: float, outlier_ms: float) -> float:
    v = np.sort(values[np.isfinite(values)])
    if not v.size:
        return math.nan
    med = _sorted_median(v)
    dev = np.abs(v - med)
    mad = _sorted_median(np.sort(dev))
    keep = v[dev <= max(3.0 * 1.4826 * mad, outlier_ms * 1e-3 * fs)]
    return float(keep.max() if latest else keep.min())


def global_boundary(
    values, latest: bool, fs: float, config: LeadDelineationConfig | None = None
) -> float:
    """One global onset (``latest=False``) or offset (``latest=True``) from the leads' values
    of it (samples at ``fs``, NaN where a lead has none) by ``config.global_rule``
    (:data:`GLOBAL_RULES`; default the kit's ``mad``); NaN where no lead has one."""
    cfg = config or LeadDelineationConfig()
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    rule = cfg.global_rule
    if rule == "earliest":
        return _kth(values, 1, latest)
    if rule == "second":
        return _kth(values, 2 if np.isfinite(values).sum() >= 4 else 1, latest)
    if rule == "mad":
        return _mad_extreme(values, latest, fs, cfg.outlier_ms)
    if rule == "median":
        return float(nanmedian(values))
    raise ValueError(f"unknown global rule {rule!r}; known: {', '.join(GLOBAL_RULES)}")


def nanmedian(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """``np.nanmedian`` along ``axis`` (NaN where a slice is all NaN, without a warning),
    computed by one sort: the same values, a fraction of ``np.nanmedian``'s time on the few
    leads of a beat."""
    v = np.sort(np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1), axis=-1)  # NaN last
    if v.shape[-1] == 0:
        return np.full(v.shape[:-1], np.nan)
    n = np.isfinite(v).sum(axis=-1)
    lo = np.take_along_axis(v, (np.maximum(n - 1, 0) // 2)[..., None], -1)[..., 0]
    hi = np.take_along_axis(v, (n // 2)[..., None], -1)[..., 0]
    return np.where(n > 0, 0.5 * (lo + hi), np.nan)


#: How per-lead boundaries make the global ones: ``earliest`` (earliest onset, latest
#: offset: the CSE definition), ``second`` (the second-earliest onset and second-latest
#: offset, robust to one stray lead; the earliest with fewer than 4 leads), ``mad`` (the
#: earliest/latest of the leads within 3 scaled MADs, 3 x 1.4826 x MAD, and at least
#: ``outlier_ms``, of the median),
#: ``median`` (a typical lead).
GLOBAL_RULES: tuple[str, ...] = ("earliest", "second", "mad", "median")


def global_from_leads(
    points: np.ndarray, g: Delineation, config: LeadDelineationConfig | None = None
) -> Delineation:
    """Global boundaries from per-lead points (``config.global_rule``); peaks, and a wave
    the global delineation ``g`` does not find, stay as ``g`` has them. The QRS is at least
    as wide as ``g``'s (the spatial velocity of all leads together sees the first and last
    activity that a slope threshold on each single lead can miss)."""
    cfg = config or LeadDelineationConfig()
    fs = g.fs

    def pick(name: str, latest: bool, fallback: float) -> float:
        if not math.isfinite(fallback):
            return math.nan
        v = global_boundary(points[:, _COL[name]], latest, fs, cfg)
        if not math.isfinite(v):
            return fallback
        if name.startswith("qrs"):  # never inside the spatial-velocity QRS of all leads
            return max(v, fallback) if latest else min(v, fallback)
        return v

    return dataclasses.replace(
        g,
        p_on=pick("p_on", False, g.p_on),
        p_off=pick("p_off", True, g.p_off),
        qrs_on=pick("qrs_on", False, g.qrs_on),
        qrs_off=pick("qrs_off", True, g.qrs_off),
        t_end=pick("t_end", True, g.t_end),
    )


def delineate_leads(
    beat_mv,
    fs,
    r_index: int,
    rr_s: float = math.nan,
    method: str = "laguna1994",
    config: LeadDelineationConfig | None = None,
    anchor: Delineation | None = None,
    p_present: bool = True,
    anchor_rows: Sequence[int] | None = None,
) -> LeadDelineation:
    """P, QRS and T onsets, peaks and offsets on every lead of an average beat, and the
    global boundaries made from them.

    The global delineation (:func:`delineate` on ``anchor_rows``, or ``anchor`` when given)
    says where each wave is; each lead is then delineated on its own around it
    (``method``, see :data:`LEAD_METHODS`: ``laguna1994``, slope thresholds relative to the
    lead's largest QRS slope after Laguna et al. 1994, a T end of :data:`T_END_METHODS`
    and knee-point P boundaries, on each lead referred to its PR level).
    A lead too small for a wave takes the global boundaries of that wave. ``p_present=False``
    (atrial fibrillation or flutter, paced rhythm: the caller's rhythm analysis) removes the
    P wave from every lead and from the global result.

    Args:
        beat_mv: (n_leads, n_window) average beat in mV.
        fs: sampling frequency in Hz.
        r_index: sample of the R peak in the window.
        rr_s: median RR interval in seconds; NaN if unknown.
        method: per-lead method name.
        config: thresholds; defaults to :class:`LeadDelineationConfig()`.
        anchor: the global delineation to start from (else computed here).
        p_present: whether the rhythm has P waves.
        anchor_rows: the rows the global delineation reads (default all).

    Returns:
        A :class:`LeadDelineation`; where the beat is too flat to delineate, every point is
        NaN and ``global_`` is the empty delineation.
    """
    if method not in LEAD_METHODS:
        raise ValueError(
            f"unknown per-lead delineation method {method!r}; known: {', '.join(LEAD_METHODS)}"
        )
    cfg = config or LeadDelineationConfig()
    fs = float(fs)
    x = np.atleast_2d(np.asarray(beat_mv, dtype=np.float64))
    if anchor is None:
        rows = list(anchor_rows) if anchor_rows is not None else list(range(x.shape[0]))
        anchor = delineate(x[rows], fs, r_index, rr_s)
    g = anchor
    if not p_present:
        g = dataclasses.replace(g, p_on=math.nan, p_peak=math.nan, p_off=math.nan)
    n_leads = x.shape[0]
    if not (math.isfinite(g.qrs_on) and math.isfinite(g.qrs_off)) or not np.all(np.isfinite(x)):
        nan = np.full(n_leads, np.nan)
        return LeadDelineation(
            fs, int(r_index), np.full((n_leads, len(LEAD_POINTS)), np.nan), nan, nan.copy(), g
        )
    on = int(g.qrs_on)
    ref = x[:, max(0, on - _n(20, fs)) : max(1, on - _n(4, fs) + 1)].mean(axis=-1)
    y = x - ref[:, None]
    dc = DelineationConfig()
    t_span = dc.t_max_s if not math.isfinite(rr_s) else min(dc.t_max_s, dc.t_max_rr * rr_s)
    t_hi = min(x.shape[-1] - 1, int(r_index) + _n(t_span * 1e3, fs))
    pts, t_mv, p_mv = LEAD_METHODS[method](y, fs, g, t_hi, cfg)
    return LeadDelineation(fs, int(r_index), pts, t_mv, p_mv, global_from_leads(pts, g, cfg))
