"""QRS detection.

``detect(signal_mv, fs, method="christov2004")`` returns the sample indices of the R peaks
(sorted, unique, int64) of a single lead ``(n_samples,)`` or of several leads
``(n_leads, n_samples)`` analysed together. Methods are registered by name in ``METHODS``;
an unknown name raises ``ValueError`` listing the known ones.

``christov2004``: Christov I. I., "Real time electrocardiogram QRS detection using combined
adaptive threshold", BioMedical Engineering OnLine 3:28 (2004), algorithm 1, run offline:

1. Preprocessing with moving averages (centred, so no delay): one period of the power line
   (20 ms for 50 Hz, then 16.7 ms for 60 Hz: the kit meets both), then 28 ms against EMG
   (then our high-pass, see below).
2. Complex lead ``Y(i) = 1/L * sum_j |X_j(i+1) - X_j(i-1)|`` over the L leads, smoothed by a
   40 ms moving average.
3. Combined adaptive threshold ``MFR = M + F + R``; a QRS is detected where ``Y >= MFR``
   outside the 200 ms refractory period after the previous detection:

   - M, steep-slope threshold: starts at 0.6 max(Y) over the first 5 s and fills a buffer of
     5 values. After each detection, 0.6 max(Y) over the 200 ms that follow it enters the
     buffer (limited to 1.1x the last value when it exceeds 1.5x it); M is the buffer mean,
     falls linearly from 200 ms to 1200 ms after the detection to 60 % of it, then stays.
   - F, integrating threshold (raises the threshold under EMG noise): the paper's recursion
     ``F += (max Y over the latest 50 ms - max Y over the earliest 50 ms of 350 ms) / 150``
     telescopes to the mean, over the last 300 ms, of the 50 ms running maximum of Y (150
     is 300 ms at the paper's 500 Hz); we compute that form directly, for any fs.
   - R, beat-expectation threshold (catches a small beat after large ones): with Rm the
     mean of the last 5 RR intervals, R = 0 until 2/3 Rm after the detection, then falls 1.4
     times slower than M does between 200 and 1200 ms, and stops falling at Rm.

4. R-peak location: within -60 ms .. +100 ms of each detection (with our
   ``peak_on_y_max``, of Y's maximum after it; see below), the sample of largest
   absolute deviation from a local baseline (median over +-300 ms) of the power-line-averaged
   signal, in the lead where that deviation is largest. Peaks closer than the refractory
   period are merged (the larger deviation wins).

Our additions to the paper's algorithm 1 (each a field of :class:`Christov2004Config`; the
benchmark numbers in benchmarks/qrs.py are measured with all of them on):

- ``highpass_ms=100``: before the derivative, each lead minus its centred 100 ms moving
  average, a zero-phase high-pass with its -3 dB point near 4.4 Hz (Pan-Tompkins' band-pass
  starts at 5 Hz). The paper's Y is a plain derivative, which passes the large slow waves of
  motion artefacts, baseline steps and tall P/T waves; those crossed MFR just before a true
  QRS, so the beat was both mislocated and missed. On the 9 MIT-BIH records of the
  benchmark (both leads) this cut false detections from 101 to 53 and misses from 85 to 58
  (105: 37 -> 19 FP, 33 -> 12 FN; 108: 37 -> 18 FP). Wide slow PVCs lose some slope: 208
  misses 8 more of them (15 -> 23 FN). 80-150 ms all gave +P >= 99.70 % and Se >= 99.65 %.
- ``peak_on_y_max=True``: the R peak is searched around the maximum of Y within the 200 ms
  after the threshold crossing (the span whose maximum the paper feeds into M, i.e. where it
  takes the QRS to be) rather than around the crossing. A crossing on a wave up to 200 ms
  ahead of the QRS (a tall P wave, an artefact) was otherwise placed on that wave, more
  than 150 ms from the R: one false and one missed beat. With the high-pass on, this took
  the benchmark from 53 to 43 false and from 58 to 49 missed detections (108: 18 -> 12 FP).
  Together the two took lead MLII alone from Se 98.94 % / +P 98.59 % to 99.71 % / 99.62 %.
- ``lead_weighting="snr"``: each lead's smoothed |derivative| is divided by its noise floor
  (running median over 30 s) before averaging, so one noisy lead does not swamp the complex
  lead (``"mean"`` is the paper's plain average). On MIT-BIH 103 (noise in V1) this cut
  false detections from 59 to 11.
- search-back (Pan-Tompkins style): when nothing is detected for 1.66 x Rm, the sample of
  the refractory-to-now stretch where Y is largest relative to the threshold is taken as a
  beat if Y reaches half the threshold there; beats before the first detection are searched
  the same way. This recovers small premature ventricular beats (MIT-BIH 106: 49 -> 0 FN).
- M's start value is 0.6 x the median of the 1-s maxima of Y over the first 5 s rather
  than of the 5-s maximum, so one large ectopic beat at the start does not blind the
  detector for several beats.

Every window and period is defined in ms or s in :class:`Christov2004Config` and converted
to samples once from ``fs``. F is precomputed for the whole record and the threshold logic
advances beat by beat with vectorised segments, so a 30-min record takes a fraction of a
second and a 10-s 12-lead 500 Hz record a few milliseconds.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable

import numpy as np
import scipy.ndimage

__all__ = ["detect", "METHODS", "Christov2004Config", "christov2004", "locate_r_peaks"]


@dataclasses.dataclass(frozen=True)
class Christov2004Config:
    """Parameters of the Christov (2004) detector, in physical units."""

    line_periods_ms: tuple[float, ...] = (20.0, 1000.0 / 60.0)  # MA over one mains period each
    emg_ma_ms: float = 28.0  # MA against electromyographic noise
    highpass_ms: float = 100.0  # subtract a centred MA this long before Y (~4.4 Hz; 0: off)
    complex_ma_ms: float = 40.0  # MA of the complex lead
    init_s: float = 5.0  # M starts at m_fraction * max(Y) over this first interval
    m_fraction: float = 0.6  # fraction of the QRS maximum of Y that feeds the M buffer
    m_buffer: int = 5  # number of M values averaged
    m_jump_ratio: float = 1.5  # a new M value above this x the last one ...
    m_jump_clip: float = 1.1  # ... is replaced by this x the last one
    refractory_ms: float = 200.0  # no detection this long after a detection
    m_decay_end_ms: float = 1200.0  # M falls linearly from refractory end until this time ...
    m_decay_floor: float = 0.6  # ... down to this fraction of the buffer mean
    f_window_ms: float = 350.0  # integrating threshold: span of the window ...
    f_max_ms: float = 50.0  # ... and of the running maximum at each of its ends
    f_weight: float = 1.0  # weight of F in the combined threshold (1.0 = paper at any fs)
    rr_buffer: int = 5  # number of RR intervals averaged into Rm
    r_start_fraction: float = 2.0 / 3.0  # R starts falling at this fraction of Rm
    r_slowdown: float = 1.4  # R falls this many times slower than M
    lead_weighting: str = "snr"  # "mean": paper's 1/L sum; "snr": each lead / its noise floor
    noise_window_s: float = 30.0  # span of the running median that measures a lead's noise floor
    searchback_rr: float = 1.66  # no detection for this x Rm: search back (0 disables) ...
    searchback_fraction: float = 0.5  # ... for the largest Y above this x the threshold
    lost_decay: float = 1.0  # search-back found nothing: M buffer scaled by this (1.0: off)
    peak_on_y_max: bool = True  # R search around Y's maximum in the refractory period after
    # the crossing (the span whose maximum feeds M); False: around the crossing itself
    peak_pre_ms: float = 60.0  # R-peak search window before that point ...
    peak_post_ms: float = 100.0  # ... and after it
    peak_baseline_ms: float = 300.0  # half-width of the median window giving the baseline


def _samples(ms: float, fs: float) -> int:
    """Convert a duration in ms to a number of samples (at least 1)."""
    return max(1, int(round(ms * 1e-3 * fs)))


def _moving_average(x: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average of n samples along the last axis (edges: nearest value)."""
    if n <= 1:
        return x
    return scipy.ndimage.uniform_filter1d(x, size=n, axis=-1, mode="nearest")


def complex_lead(x_mv: np.ndarray, fs: float, config: Christov2004Config) -> np.ndarray:
    """Christov's preprocessing and complex lead Y (mV per 2 samples), shape (n_samples,).

    Args:
        x_mv: power-line-averaged leads, shape (n_leads, n_samples).
        fs: sampling frequency in Hz.
        config: detector parameters.
    """
    x = _moving_average(x_mv, _samples(config.emg_ma_ms, fs))
    if config.highpass_ms > 0:
        x = x - _moving_average(x, _samples(config.highpass_ms, fs))
    d = np.zeros(x.shape)
    if x.shape[-1] >= 3:
        d[:, 1:-1] = np.abs(x[:, 2:] - x[:, :-2])
        d[:, 0], d[:, -1] = d[:, 1], d[:, -2]
    d = _moving_average(d, _samples(config.complex_ma_ms, fs))
    if config.lead_weighting == "mean" or d.shape[0] == 1:
        return d.mean(axis=0)
    if config.lead_weighting != "snr":
        raise ValueError(f"unknown lead_weighting {config.lead_weighting!r}; known: mean, snr")
    return (d / _noise_floor(d, fs, config)).mean(axis=0)


def _noise_floor(d: np.ndarray, fs: float, config: Christov2004Config) -> np.ndarray:
    """Running median of each lead's |derivative| over noise_window_s, (n_leads, n_samples).

    Computed on 50 ms block medians and interpolated back; floored at 10 % of the lead's
    overall median so that a flat stretch does not blow the weight up.
    """
    n = d.shape[-1]
    block = _samples(50.0, fs)
    n_blocks = n // block
    if n_blocks < 3:
        return np.maximum(np.median(d, axis=-1, keepdims=True), 1e-12)
    med = np.median(d[:, : n_blocks * block].reshape(d.shape[0], n_blocks, block), axis=-1)
    k = max(1, int(round(config.noise_window_s / 0.05)))
    if n_blocks <= k:  # the whole signal fits in one window: one floor per lead
        return np.maximum(np.median(med, axis=-1, keepdims=True), 1e-12)
    med = scipy.ndimage.median_filter(med, size=(1, k), mode="nearest")
    floor = 0.1 * np.median(med, axis=-1, keepdims=True)
    med = np.maximum(med, np.maximum(floor, 1e-12))
    centers = (np.arange(n_blocks) + 0.5) * block
    t = np.arange(n)
    return np.stack([np.interp(t, centers, m) for m in med])


def _integrating_threshold(y: np.ndarray, fs: float, config: Christov2004Config) -> np.ndarray:
    """F(i): mean over the last (350 - 50) ms of the causal 50 ms running maximum of Y."""
    n_max = _samples(config.f_max_ms, fs)
    n_mean = max(1, _samples(config.f_window_ms, fs) - n_max)
    # causal running max over y[i - n_max + 1 .. i]
    run_max = scipy.ndimage.maximum_filter1d(y, size=n_max, origin=(n_max - 1) // 2, mode="nearest")
    # causal running mean over run_max[i - n_mean + 1 .. i]; the first samples average what exists
    c = np.concatenate(([0.0], np.cumsum(run_max)))
    i = np.arange(1, y.size + 1)
    lo = np.maximum(0, i - n_mean)
    return config.f_weight * (c[i] - c[lo]) / (i - lo)


def _threshold_detect(y: np.ndarray, fs: float, config: Christov2004Config) -> np.ndarray:
    """Run the combined adaptive threshold M + F + R over Y; return detection indices.

    Between two detections M and R are known functions of the time since the last
    detection, so the loop advances beat by beat and compares Y with the threshold over
    whole segments at once (doubling their length while nothing is found).
    """
    n = y.size
    f = _integrating_threshold(y, fs, config)
    n_ref = _samples(config.refractory_ms, fs)
    n_dec = max(n_ref + 1, _samples(config.m_decay_end_ms, fs))
    n_init = _samples(config.init_s * 1e3, fs)
    m_slope = (1.0 - config.m_decay_floor) / (n_dec - n_ref)  # fraction of mean(MM) per sample

    # Paper: M starts at 0.6 max(Y) over the first 5 s. One ectopic or artefact there would
    # hold M too high for several beats, so we take the median of the 1-s maxima instead.
    n_sec = _samples(1e3, fs)
    head = y[: max(n_init, n_sec)]
    n_blk = max(1, head.size // n_sec)
    blocks = head[: n_blk * n_sec].reshape(n_blk, -1) if head.size >= n_sec else head[None, :]
    m0 = config.m_fraction * float(np.median(blocks.max(axis=1)))
    if not m0 > 0:
        # A flat start (a lead off, an amplifier settling) gives no maxima there: a threshold
        # of 0 would fire at every refractory end. Start from the record's own 1-s maxima.
        n_all = max(1, n // n_sec)
        whole = y[: n_all * n_sec].reshape(n_all, -1) if n >= n_sec else y[None, :]
        maxima = whole.max(axis=1)
        # the seconds that hold signal: not the flat ones, nor their rounding residue
        live = maxima[maxima > 0.01 * maxima.max()] if maxima.max() > 0 else maxima
        m0 = config.m_fraction * float(np.median(live))
    mm = deque([m0] * config.m_buffer, maxlen=config.m_buffer)
    rr: deque[int] = deque(maxlen=config.rr_buffer)
    detections: list[int] = []
    new_ms: list[float] = []  # M value entered into the buffer at each detection
    last = -1

    def threshold(start: int, stop: int) -> np.ndarray:
        """M + F + R over samples [start, stop) given the state after the last detection."""
        # before the first detection, the start of the signal stands for the last detection
        t = np.arange(start - max(last, 0), stop - max(last, 0), dtype=np.float64)
        m_mean = float(np.mean(mm))
        thr = m_mean * (1.0 - m_slope * np.clip(t - n_ref, 0.0, n_dec - n_ref)) + f[start:stop]
        if rr:
            rm = float(np.mean(rr))
            r_start = config.r_start_fraction * rm
            r_drop = m_mean * m_slope / config.r_slowdown  # per sample
            thr -= r_drop * np.clip(t - r_start, 0.0, max(0.0, rm - r_start))
        return thr

    pos = 0
    chunk0 = max(n_dec, 2 * n_ref)
    while pos < n:
        found = -1
        chunk = chunk0
        start = pos
        sb_end = -1
        if last >= 0 and rr and config.searchback_rr > 0:
            sb_end = min(n, last + int(config.searchback_rr * float(np.mean(rr))))
        while start < n:
            stop = min(n, start + chunk)
            if start < sb_end:
                stop = min(stop, sb_end)
            # strictly above: where the signal and the threshold are both 0 (a flat stretch of
            # a record that never rose) nothing is a beat
            hits = np.flatnonzero(y[start:stop] > threshold(start, stop))
            if hits.size:
                found = start + int(hits[0])
                break
            if stop == sb_end:  # overdue: search back from the refractory end for a missed beat
                lo = last + n_ref
                ratio = y[lo:sb_end] / np.maximum(threshold(lo, sb_end), 1e-300)
                k = int(np.argmax(ratio)) if ratio.size else 0
                if ratio.size and ratio[k] >= config.searchback_fraction:
                    found = lo + k
                    break
                # nothing: the beats have shrunk (or stopped); lower M and retry one Rm later
                for j in range(len(mm)):
                    mm[j] *= config.lost_decay
                sb_end = min(n, sb_end + int(float(np.mean(rr))))
            start = stop
            chunk *= 2
        if found < 0:
            break
        new_m = config.m_fraction * float(np.max(y[found : found + n_ref]))
        if new_m > config.m_jump_ratio * mm[-1]:
            new_m = config.m_jump_clip * mm[-1]
        mm.append(new_m)
        if last >= 0:
            rr.append(found - last)
        detections.append(found)
        new_ms.append(new_m)
        last = found
        pos = found + n_ref
    # Offline addition: beats before the first detection (missed while M still held its
    # start-up value) are searched back like overdue beats, against the M of the first beats.
    if detections and config.searchback_rr > 0:
        m_ref = float(np.mean(new_ms[: config.m_buffer]))
        while detections[0] > n_ref:
            hi = detections[0] - n_ref
            ratio = y[:hi] / np.maximum(m_ref + f[:hi], 1e-300)
            k = int(np.argmax(ratio))
            if ratio[k] < config.searchback_fraction:
                break
            detections.insert(0, k)
    return np.asarray(detections, dtype=np.int64)


def locate_r_peaks(
    signal_mv,
    fs,
    detections,
    pre_ms: float = 60.0,
    post_ms: float = 150.0,
    baseline_ms: float = 300.0,
    min_distance_ms: float = 200.0,
) -> np.ndarray:
    """Move QRS detections onto the R wave.

    For each detection, the sample within ``[d - pre_ms, d + post_ms]`` where the signal
    deviates most (in absolute value) from a local baseline (the median over
    ``d +- baseline_ms``), taken in the lead where that deviation is largest. Peaks closer than
    ``min_distance_ms`` are merged, keeping the larger deviation.

    Args:
        signal_mv: 1-D or (n_leads, n_samples) ECG in mV (ideally power-line filtered).
        fs: sampling frequency in Hz.
        detections: sample indices near each QRS.

    Returns:
        Sorted unique int64 sample indices.
    """
    x = np.atleast_2d(np.asarray(signal_mv, dtype=np.float64))
    n = x.shape[-1]
    det = np.asarray(detections, dtype=np.int64).ravel()
    det = det[(det >= 0) & (det < n)]
    if det.size == 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    n_pre, n_post = _samples(pre_ms, fs), _samples(post_ms, fs)
    n_base = _samples(baseline_ms, fs)
    base_idx = np.clip(det[:, None] + np.arange(-n_base, n_base + 1)[None, :], 0, n - 1)
    base = np.median(x[:, base_idx], axis=-1)  # (n_leads, n_det)
    off = np.arange(-n_pre, n_post + 1)
    win_idx = np.clip(det[:, None] + off[None, :], 0, n - 1)  # (n_det, n_win)
    dev = np.abs(x[:, win_idx] - base[:, :, None])  # (n_leads, n_det, n_win)
    best_lead = np.argmax(dev.max(axis=-1), axis=0)  # (n_det,)
    dev_best = dev[best_lead, np.arange(det.size)]  # (n_det, n_win)
    arg = np.argmax(dev_best, axis=-1)
    peaks = win_idx[np.arange(det.size), arg]
    heights = dev_best[np.arange(det.size), arg]
    order = np.argsort(peaks, kind="stable")
    peaks, heights = peaks[order], heights[order]
    n_min = _samples(min_distance_ms, fs)
    kept_p: list[int] = []
    kept_h: list[float] = []
    for p, h in zip(peaks.tolist(), heights.tolist()):
        if kept_p and p - kept_p[-1] < n_min:
            if h > kept_h[-1]:
                kept_p[-1], kept_h[-1] = p, h
            continue
        kept_p.append(p)
        kept_h.append(h)
    return np.asarray(kept_p, dtype=np.int64)


def christov2004(
    signal_mv: np.ndarray, fs: float, config: Christov2004Config | None = None
) -> np.ndarray:
    """Christov (2004) combined-adaptive-threshold detector; see the module docstring.

    Args:
        signal_mv: float array (n_leads, n_samples) in mV, finite.
        fs: sampling frequency in Hz.
        config: parameters; defaults to :class:`Christov2004Config()`.

    Returns:
        Sorted unique int64 R-peak sample indices.
    """
    config = config or Christov2004Config()
    x = signal_mv
    for period_ms in config.line_periods_ms:
        x = _moving_average(x, _samples(period_ms, fs))
    y = complex_lead(x, fs, config)
    if not np.max(y, initial=0.0) > 0:
        return np.zeros(0, dtype=np.int64)
    det = _threshold_detect(y, fs, config)
    if config.peak_on_y_max and det.size:
        # the QRS is where Y peaks in the window that the paper measures it in (M's update)
        idx = np.minimum(det[:, None] + np.arange(_samples(config.refractory_ms, fs)), y.size - 1)
        det = idx[np.arange(det.size), np.argmax(y[idx], axis=1)]
    return locate_r_peaks(
        x,
        fs,
        det,
        pre_ms=config.peak_pre_ms,
        post_ms=config.peak_post_ms,
        baseline_ms=config.peak_baseline_ms,
        min_distance_ms=config.refractory_ms,
    )


# Detection methods by name: f(signal_mv (n_leads, n_samples) float64, fs, **kwargs) -> indices.
METHODS: dict[str, Callable[..., np.ndarray]] = {
    "christov2004": christov2004,
}


def detect(signal_mv, fs, method: str = "christov2004", **kwargs) -> np.ndarray:
    """Detect QRS complexes and return R-peak sample indices.

    Args:
        signal_mv: ECG in mV, shape (n_samples,) for one lead or (n_leads, n_samples) for
            several leads analysed together (Christov's complex lead combines them).
        fs: sampling frequency in Hz.
        method: a name in ``METHODS`` (default ``"christov2004"``).
        **kwargs: passed to the method (e.g. ``config=Christov2004Config(...)``).

    Returns:
        Sorted, unique int64 sample indices pointing at the R waves; empty for empty or flat
        input.

    Raises:
        ValueError: unknown method, bad shape, non-positive fs or non-finite samples.
    """
    try:
        func = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown QRS method {method!r}; known: {sorted(METHODS)}") from None
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"fs must be a positive finite sampling frequency in Hz; got {fs}")
    x = np.asarray(signal_mv, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(
            f"signal_mv must be 1-D (n_samples,) or 2-D (n_leads, n_samples); got shape {x.shape}"
        )
    if x.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.all(np.isfinite(x)):
        raise ValueError("signal_mv holds NaN or infinite samples; fill or drop them first")
    return np.unique(np.asarray(func(x, fs, **kwargs), dtype=np.int64))
