"""Rhythm measurements: RR statistics, premature beats, atrial fibrillation/flutter evidence,
pacemaker spikes.

- :func:`rr_statistics`: heart rate and RR variability (SDNN, RMSSD, coefficient of
  variation, the median successive-difference irregularity used by the AF rule).
- :func:`premature_beats`: beats arriving earlier than ``prematurity`` times the local RR
  (median of the surrounding intervals).
- :func:`derivative_zero_crossings` (``method="bortolan2020"``): the AF/AFL detector of
  Bortolan, Christov and Simova's 2020 Challenge entry: the number of zero crossings of the
  first derivative of lead II between QRS complexes, per second. f waves add many small
  oscillations to the TQ segments, where sinus rhythm shows only the T and P waves. To be
  robust to noise a turning point is counted only when the signal has moved by at least
  ``min_swing_mv`` since the last counted one (hysteresis).
- :func:`atrial_activity`: QRST cancellation (the average beat subtracted at each dominant
  beat) and the spectrum of the residual: dominant atrial frequency and its organisation
  index (share of 3-12 Hz power within +-0.5 Hz of the peak and its harmonic); flutter is
  organised at 3.5-6.5 Hz, fibrillation disorganised at 4-10 Hz.
- :func:`pacing_spikes`: fraction of beats preceded by a narrow high-slope spike (pacemaker
  stimulus artefact), from the residual of a running median over about 6 ms (3 samples at
  500 Hz) of the unfiltered leads, at the record's own sampling rate.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage
import scipy.signal
import scipy.stats

__all__ = [
    "rr_statistics",
    "premature_beats",
    "derivative_zero_crossings",
    "atrial_activity",
    "pacing_spikes",
]


def rr_statistics(r_peaks, fs) -> dict:
    """Heart rate and RR-interval statistics of a record.

    Args:
        r_peaks: R-peak sample indices (sorted).
        fs: sampling frequency in Hz.

    Returns:
        JSON-able dict: ``n_beats``, ``hr_bpm`` (the ventricular rate: 60 / the mean RR
        without its shortest and longest tenth, so that a missed or extra beat does not move
        it; in an alternating rhythm such as bigeminy it is the rate of all the beats, where
        the median RR is the more frequent of the two intervals), ``rr_median_s``,
        ``rr_min_s``, ``rr_max_s``, ``rr_range_s`` (max - min), ``sdnn_ms``, ``rmssd_ms``,
        ``rr_cv`` (SD / mean), ``rr_irregularity`` (median |successive difference| / median
        RR); NaN where fewer than 2 (or 3) beats exist.
    """
    r = np.sort(np.asarray(r_peaks, dtype=np.float64).ravel())
    rr = np.diff(r) / float(fs)
    nan = math.nan
    out = {
        "n_beats": int(r.size),
        "hr_bpm": nan,
        "rr_median_s": nan,
        "rr_min_s": nan,
        "rr_max_s": nan,
        "rr_range_s": nan,
        "sdnn_ms": nan,
        "rmssd_ms": nan,
        "rr_cv": nan,
        "rr_irregularity": nan,
    }
    if rr.size >= 1:
        med = float(np.median(rr))
        out.update(
            hr_bpm=60.0 / float(scipy.stats.trim_mean(rr, 0.1)),
            rr_median_s=med,
            rr_min_s=float(rr.min()),
            rr_max_s=float(rr.max()),
            rr_range_s=float(rr.max() - rr.min()),
            sdnn_ms=float(rr.std() * 1e3),
            rr_cv=float(rr.std() / rr.mean()),
        )
    if rr.size >= 2:
        drr = np.diff(rr)
        out.update(
            rmssd_ms=float(np.sqrt(np.mean(drr**2)) * 1e3),
            rr_irregularity=float(np.median(np.abs(drr)) / np.median(rr)),
        )
    return out


def premature_beats(r_peaks, fs, prematurity: float = 0.85, context: int = 4) -> np.ndarray:
    """Bool per beat: its RR is shorter than ``prematurity`` x the median of nearby RRs.

    The reference is the median of up to ``context`` intervals on each side (the beat's own
    interval and the one after it excluded, since a premature beat is followed by a pause).
    The first beat is never premature.
    """
    r = np.asarray(r_peaks, dtype=np.float64).ravel()
    out = np.zeros(r.size, bool)
    rr = np.diff(r) / float(fs)
    for i in range(rr.size):  # rr[i] ends at beat i + 1
        near = np.r_[rr[max(0, i - context) : i], rr[i + 2 : i + 2 + context]]
        if near.size >= 2:
            out[i + 1] = rr[i] < prematurity * float(np.median(near))
    return out


def _turning_points(x: np.ndarray, min_swing: float) -> int:
    """Number of turning points of x where the signal moved by >= min_swing (hysteresis)."""
    if x.size < 3:
        return 0
    d = np.diff(x)
    ext = np.flatnonzero(np.sign(d[1:]) * np.sign(d[:-1]) < 0) + 1
    if ext.size == 0:
        return 0
    values = np.r_[x[0], x[ext]]
    count, last, direction = 0, values[0], 0
    for v in values[1:]:
        step = v - last
        if direction >= 0 and step <= -min_swing:
            count, direction, last = count + (direction > 0), -1, v
        elif direction <= 0 and step >= min_swing:
            count, direction, last = count + (direction < 0), 1, v
        elif (direction > 0 and v > last) or (direction < 0 and v < last):
            last = v
    return count


def derivative_zero_crossings(
    lead_mv,
    fs,
    r_peaks,
    method: str = "bortolan2020",
    after_qrs_s: float = 0.08,
    before_qrs_s: float = 0.08,
    lowpass_hz: float = 25.0,
    min_swing_mv: float = 0.02,
) -> float:
    """Zero crossings of the first derivative of one lead between QRS complexes, per second.

    Args:
        lead_mv: one lead (lead II in the method), baseline-filtered, mV.
        fs: sampling frequency in Hz.
        r_peaks: R-peak sample indices.
        method: ``"bortolan2020"`` (the only one).
        after_qrs_s, before_qrs_s: the counted segment of each RR interval runs from
            R + after_qrs_s to the next R - before_qrs_s.
        lowpass_hz: zero-phase low-pass applied first (f waves lie at 4-10 Hz).
        min_swing_mv: hysteresis of a counted turning point.

    Returns:
        Turning points per second of analysed segment; NaN when no segment is long enough.
    """
    if method != "bortolan2020":
        raise ValueError(f"unknown zero-crossing method {method!r}; known: bortolan2020")
    x = np.asarray(lead_mv, dtype=np.float64).ravel()
    if lowpass_hz < 0.45 * fs:
        sos = scipy.signal.butter(2, lowpass_hz, fs=fs, output="sos")
        x = scipy.signal.sosfiltfilt(sos, x)
    r = np.sort(np.asarray(r_peaks, dtype=np.int64).ravel())
    n_a, n_b = int(round(after_qrs_s * fs)), int(round(before_qrs_s * fs))
    count, total = 0, 0
    for a, b in zip(r[:-1] + n_a, r[1:] - n_b):
        if b - a >= int(0.1 * fs):
            count += _turning_points(x[a:b], min_swing_mv)
            total += b - a
    return count * fs / total if total else math.nan


def atrial_activity(
    lead_mv, fs, r_peaks, template_mv, r_index: int, use: np.ndarray | None = None
) -> dict:
    """Dominant atrial frequency and organisation after QRST cancellation of one lead.

    Args:
        lead_mv: one filtered lead (V1 or II), mV.
        fs: sampling frequency in Hz.
        r_peaks: R-peak sample indices (aligned, as in ``AverageBeat.r_peaks``).
        template_mv: the lead's average beat (1-D), with its R peak at ``r_index``.
        use: bool per R peak: subtract the template only there (dominant beats); beats not
            cancelled are blanked (set to 0) over the template's extent.

    Returns:
        ``{"atrial_freq_hz", "atrial_organisation", "atrial_rms_mv"}``, NaN when the record is
        shorter than 4 s.
    """
    x = np.asarray(lead_mv, dtype=np.float64).ravel().copy()
    nan = {"atrial_freq_hz": math.nan, "atrial_organisation": math.nan, "atrial_rms_mv": math.nan}
    if x.size < 4 * fs:
        return nan
    t = np.asarray(template_mv, dtype=np.float64)
    # cancel only the QRST part of the template (from 60 ms before R), keep atrial waves
    start = max(0, r_index - int(0.06 * fs))
    taper = np.ones(t.size)
    taper[:start] = 0.0
    r = np.asarray(r_peaks, dtype=np.int64)
    use = np.ones(r.size, bool) if use is None else np.asarray(use, bool)
    for peak, ok in zip(r, use):
        lo, hi = peak - r_index, peak - r_index + t.size
        a, b = max(lo, 0), min(hi, x.size)
        if a >= b:
            continue
        if ok:
            x[a:b] -= (t * taper)[a - lo : b - lo]
        else:
            x[max(a, peak - int(0.1 * fs)) : b] = 0.0
    f, p = scipy.signal.welch(x, fs=fs, nperseg=min(x.size, int(4 * fs)))
    band = (f >= 3.0) & (f <= 12.0)
    if not band.any() or p[band].sum() <= 0:
        return nan
    fb, pb = f[band], p[band]
    peak_f = float(fb[np.argmax(pb)])
    near = (np.abs(fb - peak_f) <= 0.5) | (np.abs(fb - 2 * peak_f) <= 0.5)
    return {
        "atrial_freq_hz": peak_f,
        "atrial_organisation": float(pb[near].sum() / pb.sum()),
        "atrial_rms_mv": float(np.sqrt(np.mean(x**2))),
    }


def pacing_spikes(
    signal_mv, fs, r_peaks, window_s: tuple[float, float] = (0.3, 0.05), min_spike_mv=0.4
) -> dict:
    """Pacemaker stimulus evidence: narrow spikes just before (or at) the QRS.

    Args:
        signal_mv: (n_leads, n_samples) ECG in mV, only power-line filtered (spikes live in
            the high frequencies that an EMG filter would smear).
        fs: sampling frequency in Hz.
        r_peaks: R-peak sample indices.
        window_s: search window (before, after) each R peak, seconds.
        min_spike_mv: spike residual (signal minus its running median over about 6 ms, at
            least 3 samples: 3 at 500 Hz, 7 at 1000 Hz; max over leads) above which a beat
            counts as paced. Give the record at its own sampling rate: resampling keeps or
            spreads a spike of a millisecond or two by its phase.

    Returns:
        ``{"paced_fraction", "spike_mv"}``: fraction of beats with a spike and the median
        over beats of the largest spike residual; NaN without beats.
    """
    x = np.atleast_2d(np.asarray(signal_mv, dtype=np.float64))
    r = np.asarray(r_peaks, dtype=np.int64).ravel()
    if r.size == 0 or x.shape[-1] < 5:
        return {"paced_fraction": math.nan, "spike_mv": math.nan}
    size = max(3, 2 * int(0.003 * float(fs)) + 1)
    resid = np.abs(x - scipy.ndimage.median_filter(x, size=(1, size), mode="nearest")).max(axis=0)
    # a spike is a lone sample: discount residuals where the neighbours are large as well
    pre, post = int(window_s[0] * fs), int(window_s[1] * fs)
    spikes = []
    for peak in r:
        a, b = max(0, peak - pre), min(x.shape[-1], peak + post)
        spikes.append(float(resid[a:b].max()) if b > a else 0.0)
    spikes_arr = np.asarray(spikes)
    return {
        "paced_fraction": float(np.mean(spikes_arr >= min_spike_mv)),
        "spike_mv": float(np.median(spikes_arr)),
    }
