"""Resampling to a model's rate: the one function every model uses."""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
from scipy.signal import firwin, resample_poly


def rational_ratio(fs_in: float, fs_out: float, max_denominator: int = 1000) -> tuple[int, int]:
    """(up, down) with up/down == fs_out/fs_in, exactly for integer rates (257 -> 500: 500/257)."""
    if fs_in <= 0 or fs_out <= 0:
        raise ValueError(f"sampling frequencies must be positive (got {fs_in} and {fs_out})")
    ratio = Fraction(fs_out).limit_denominator(10**9) / Fraction(fs_in).limit_denominator(10**9)
    ratio = ratio.limit_denominator(max_denominator)
    return ratio.numerator, ratio.denominator


def resample(signal: np.ndarray, fs: float, fs_out: float, axis: int = -1) -> np.ndarray:
    """Resample ``signal`` from ``fs`` to ``fs_out`` Hz along ``axis`` (polyphase, anti-aliased).

    The output has ``ceil(n * up / down)`` samples, the same dtype class (float32 stays
    float32), and the same time origin: sample ``k`` of the output is at ``k / fs_out`` s.
    Equal rates return the input unchanged (no copy); rates whose ratio rounds to 1/1
    (500 and 500.0001 Hz) return a copy.
    """
    signal = np.asarray(signal)
    if fs == fs_out:
        return signal
    up, down = rational_ratio(fs, fs_out)
    dtype = signal.dtype if np.issubdtype(signal.dtype, np.floating) else np.float64
    if up == down:  # rates equal within the ratio's precision: a copy, as resample_poly gives
        return signal.astype(dtype, copy=True)
    out = resample_poly(
        signal.astype(np.float64, copy=False), up, down, axis=axis, window=_fir(up, down)
    )
    return out.astype(dtype, copy=False)


@functools.lru_cache(maxsize=32)
def _fir(up: int, down: int) -> np.ndarray:
    """The anti-aliasing filter ``resample_poly`` designs for ``up / down`` (its default
    Kaiser window, beta 5), designed once per ratio instead of on every call; read-only
    (``resample_poly`` copies a window it is given)."""
    g = np.gcd(up, down)
    rate = max(up, down) // g
    h = firwin(2 * 10 * rate + 1, 1.0 / rate, window=("kaiser", 5.0))
    h.flags.writeable = False
    return h
