"""Zero-phase ECG filters: power-line, baseline wander and EMG noise removal.

Every public function takes ``(signal_mv, fs, ...)`` where ``signal_mv`` is a 1-D array
(one lead) or a 2-D array shaped ``(n_leads, n_samples)``; filtering runs along the last
axis and the output has the input's shape. Floating inputs keep their dtype (float32 stays
float32, computed in float64 internally); integer inputs come back as float64.

All filters are applied forward and backward (``scipy.signal.sosfiltfilt``), so they have
zero phase: a symmetric wave keeps its peak where it was. Designs are cached per
``(fs, parameters)`` with :func:`functools.lru_cache`, and all cut-offs are given in Hz, so
the same call works from 100 Hz to 10 kHz.

Short signals: ``sosfiltfilt`` extends the signal at both ends (odd reflection) before
filtering, by ``padlen`` samples. We ask for a padding long enough to cover the filter's
transient (a few time constants, in seconds) but cap it at ``n_samples - 1``, which is the
longest padding scipy accepts; signals of fewer than 2 samples are returned unchanged (a
copy). So short records never raise; their edges are simply less well conditioned.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.ndimage
import scipy.signal

__all__ = [
    "fill_nonfinite",
    "remove_powerline",
    "remove_baseline",
    "remove_emg",
    "clean",
    "BASELINE_METHODS",
]

# Power-line notch: -3 dB bandwidth of each notch, in Hz (independent of fs and harmonic).
_NOTCH_BANDWIDTH_HZ = 1.0
# Notches closer than this to Nyquist (in Hz) are skipped: a notch needs room on both sides.
_NOTCH_NYQUIST_MARGIN_HZ = 1.0
# Butterworth orders (each applied twice by sosfiltfilt, so the magnitude is squared).
_HIGHPASS_ORDER = 2
_LOWPASS_ORDER = 4


def fill_nonfinite(signal_mv) -> tuple[np.ndarray, int]:
    """Non-finite samples (a gap in a recording) bridged, lead by lead, by a straight line
    between the finite samples on either side (held flat before the first and after the
    last; a lead with none: 0). Zeros instead would put a step of the lead's level at each
    end of the gap, which the high-pass turns into QRS-like deflections. Returns the
    (n_leads, n) float array and the number of samples filled."""
    x = np.atleast_2d(np.array(signal_mv, dtype=np.float64))
    bad = ~np.isfinite(x)
    for row in np.flatnonzero(bad.any(axis=-1)):
        ok = ~bad[row]
        if ok.any():
            at = np.flatnonzero(ok)
            x[row, bad[row]] = np.interp(np.flatnonzero(bad[row]), at, x[row, at])
        else:
            x[row] = 0.0
    return x, int(bad.sum())


def _as_float(signal_mv) -> tuple[np.ndarray, np.dtype]:
    """Return ``(float64 array, output dtype)`` for a 1-D or 2-D signal; raise on other shapes."""
    arr = np.asarray(signal_mv)
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"signal_mv must be 1-D (n_samples,) or 2-D (n_leads, n_samples); got shape {arr.shape}"
        )
    out_dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.dtype(np.float64)
    return arr.astype(np.float64, copy=False), out_dtype


def _check_fs(fs) -> float:
    """Validate a sampling frequency and return it as float."""
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"fs must be a positive finite sampling frequency in Hz; got {fs}")
    return fs


def _filtfilt(sos: np.ndarray, x: np.ndarray, pad_s: float, fs: float) -> np.ndarray:
    """Zero-phase SOS filtering along the last axis with a padding capped for short signals."""
    n = x.shape[-1]
    if n < 2 or sos.shape[0] == 0:
        return x.copy()
    padlen = int(min(n - 1, max(1, round(pad_s * fs))))
    return scipy.signal.sosfiltfilt(sos, x, axis=-1, padtype="odd", padlen=padlen)


# --------------------------------------------------------------------------- power line


@functools.lru_cache(maxsize=64)
def _notch_design(fs: float, line_hz: tuple[float, ...], harmonics: bool) -> np.ndarray:
    """Cascade of second-order notches at the line frequencies (and harmonics) below Nyquist."""
    nyquist = fs / 2.0
    freqs: list[float] = []
    for base in line_hz:
        k = 1
        while True:
            f = base * k
            if f >= nyquist - _NOTCH_NYQUIST_MARGIN_HZ:
                break
            if all(abs(f - g) > _NOTCH_BANDWIDTH_HZ / 2 for g in freqs):  # 300 Hz = 6x50 = 5x60
                freqs.append(f)
            if not harmonics:
                break
            k += 1
    sections = []
    for f in sorted(freqs):
        b, a = scipy.signal.iirnotch(f, f / _NOTCH_BANDWIDTH_HZ, fs=fs)
        sections.append(scipy.signal.tf2sos(b, a))
    if not sections:
        return np.zeros((0, 6))
    return np.vstack(sections)


def remove_powerline(signal_mv, fs, line_hz=(50.0, 60.0), harmonics: bool = True) -> np.ndarray:
    """Remove power-line interference with zero-phase notches.

    Args:
        signal_mv: ECG in mV, shape (n_samples,) or (n_leads, n_samples).
        fs: sampling frequency in Hz.
        line_hz: mains frequencies to notch, in Hz (a number or a sequence); both 50 and 60 Hz
            by default because the kit sees records from both worlds.
        harmonics: also notch every harmonic below Nyquist (minus 1 Hz); harmonics shared by
            50 and 60 Hz (300, 600 Hz ...) are notched once.

    Returns:
        The filtered signal, same shape. Each notch has a -3 dB bandwidth of 1 Hz; applied
        forward and backward it removes the line component by far more than 30 dB and leaves
        components a few Hz away untouched (< 0.1 % change at 10 Hz). Frequencies at or above
        Nyquist are skipped (e.g. 50 Hz at fs = 100 Hz), so the call is a no-op there.
    """
    fs = _check_fs(fs)
    x, out_dtype = _as_float(signal_mv)
    lines = tuple(float(f) for f in np.atleast_1d(line_hz))
    if any(not np.isfinite(f) or f <= 0 for f in lines):
        raise ValueError(f"line_hz must hold positive frequencies in Hz; got {line_hz!r}")
    sos = _notch_design(fs, lines, bool(harmonics))
    # Notch ringing decays with time constant ~ 1 / (pi * bandwidth); pad a few of them.
    y = _filtfilt(sos, x, pad_s=3.0 / (np.pi * _NOTCH_BANDWIDTH_HZ) * 3, fs=fs)
    return y.astype(out_dtype, copy=False)


# --------------------------------------------------------------------------- baseline


@functools.lru_cache(maxsize=64)
def _highpass_design(fs: float, cutoff_hz: float, order: int) -> np.ndarray:
    return scipy.signal.butter(order, cutoff_hz, btype="highpass", fs=fs, output="sos")


def _baseline_butterworth(x: np.ndarray, fs: float, cutoff_hz: float) -> np.ndarray:
    """Zero-phase Butterworth high-pass (order 2, applied twice)."""
    if cutoff_hz >= fs / 2:
        raise ValueError(f"baseline cutoff_hz={cutoff_hz} must lie below Nyquist ({fs / 2} Hz)")
    sos = _highpass_design(fs, cutoff_hz, _HIGHPASS_ORDER)
    return _filtfilt(sos, x, pad_s=3.0 / cutoff_hz, fs=fs)


def _baseline_median(x: np.ndarray, fs: float, cutoff_hz: float) -> np.ndarray:
    """Two-stage median filter (200 ms then 600 ms windows; de Chazal et al. 2004).

    The baseline estimate is subtracted from the signal; ``cutoff_hz`` is not used by this
    method (its windows are fixed in seconds). A median filter is symmetric, hence zero-phase.
    """
    del cutoff_hz
    n1 = max(1, int(round(0.2 * fs)) | 1)  # odd window lengths, in samples
    n2 = max(1, int(round(0.6 * fs)) | 1)
    size1 = (1,) * (x.ndim - 1) + (n1,)
    size2 = (1,) * (x.ndim - 1) + (n2,)
    base = scipy.ndimage.median_filter(x, size=size1, mode="reflect")
    base = scipy.ndimage.median_filter(base, size=size2, mode="reflect")
    return x - base


# Baseline-removal methods, by name: (x float64, fs, cutoff_hz) -> filtered x.
BASELINE_METHODS = {
    "butterworth": _baseline_butterworth,
    "median2stage": _baseline_median,
}


def remove_baseline(signal_mv, fs, cutoff_hz: float = 0.5, method: str = "butterworth"):
    """Remove baseline wander.

    Args:
        signal_mv: ECG in mV, shape (n_samples,) or (n_leads, n_samples).
        fs: sampling frequency in Hz.
        cutoff_hz: high-pass cut-off (-3 dB of the one-way filter) for ``"butterworth"``.
        method: ``"butterworth"`` (zero-phase order-2 Butterworth high-pass, applied forward
            and backward, so -6 dB at the cut-off and about -32 dB at 0.2 Hz for 0.5 Hz) or
            ``"median2stage"`` (subtract a 200 ms then 600 ms median-filtered baseline, de
            Chazal 2004; slower at high fs).

    Returns:
        The filtered signal, same shape.
    """
    fs = _check_fs(fs)
    try:
        func = BASELINE_METHODS[method]
    except KeyError:
        raise ValueError(
            f"unknown baseline method {method!r}; known: {sorted(BASELINE_METHODS)}"
        ) from None
    if not cutoff_hz > 0:
        raise ValueError(f"cutoff_hz must be positive; got {cutoff_hz}")
    x, out_dtype = _as_float(signal_mv)
    return func(x, fs, float(cutoff_hz)).astype(out_dtype, copy=False)


# --------------------------------------------------------------------------- EMG


@functools.lru_cache(maxsize=64)
def _lowpass_design(fs: float, cutoff_hz: float, order: int) -> np.ndarray:
    return scipy.signal.butter(order, cutoff_hz, btype="lowpass", fs=fs, output="sos")


def remove_emg(signal_mv, fs, cutoff_hz: float = 40.0) -> np.ndarray:
    """Suppress electromyographic (muscle) noise with a zero-phase low-pass.

    Args:
        signal_mv: ECG in mV, shape (n_samples,) or (n_leads, n_samples).
        fs: sampling frequency in Hz.
        cutoff_hz: cut-off in Hz (order-4 Butterworth applied forward and backward, -6 dB
            there); 35-40 Hz as in Christov's and Bortolan's pipelines. When the cut-off is
            at or above 95 % of Nyquist there is nothing to remove and a copy is returned.

    Returns:
        The filtered signal, same shape.
    """
    fs = _check_fs(fs)
    if not cutoff_hz > 0:
        raise ValueError(f"cutoff_hz must be positive; got {cutoff_hz}")
    x, out_dtype = _as_float(signal_mv)
    if cutoff_hz >= 0.95 * fs / 2:
        return x.astype(out_dtype, copy=True)
    sos = _lowpass_design(fs, float(cutoff_hz), _LOWPASS_ORDER)
    y = _filtfilt(sos, x, pad_s=10.0 / cutoff_hz, fs=fs)
    return y.astype(out_dtype, copy=False)


def clean(signal_mv, fs) -> np.ndarray:
    """Standard preprocessing of the kit: power line, then baseline, then EMG.

    Equivalent to ``remove_emg(remove_baseline(remove_powerline(x, fs), fs), fs)`` with the
    defaults (50 and 60 Hz with harmonics; 0.5 Hz Butterworth high-pass; 40 Hz low-pass).
    """
    y = remove_powerline(signal_mv, fs)
    y = remove_baseline(y, fs)
    return remove_emg(y, fs)
