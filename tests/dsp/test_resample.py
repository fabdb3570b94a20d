"""The one resampling function."""

from __future__ import annotations

import numpy as np
import pytest

from team_code.dsp.resample import rational_ratio, resample


@pytest.mark.parametrize(
    "fs, fs_out, ratio",
    [(257, 500, (500, 257)), (1000, 500, (1, 2)), (300, 500, (5, 3)), (360, 125, (25, 72))],
)
def test_rational_ratio_is_exact_for_integer_rates(fs, fs_out, ratio):
    assert rational_ratio(fs, fs_out) == ratio


@pytest.mark.parametrize("fs", [257, 300, 360, 500, 1000])
def test_sinusoid_survives_resampling_to_500(fs):
    duration, f = 10, 7.0
    t_in = np.arange(duration * fs) / fs
    x = np.stack([np.sin(2 * np.pi * f * t_in), np.cos(2 * np.pi * f * t_in)]).astype(np.float32)
    y = resample(x, fs, 500)
    assert y.dtype == np.float32 and y.shape == (2, duration * 500)
    t_out = np.arange(y.shape[1]) / 500
    inner = slice(250, -250)  # away from the edges' filter transients
    np.testing.assert_allclose(y[0, inner], np.sin(2 * np.pi * f * t_out)[inner], atol=2e-3)
    np.testing.assert_allclose(y[1, inner], np.cos(2 * np.pi * f * t_out)[inner], atol=2e-3)


def test_anti_aliasing_removes_components_above_the_new_nyquist():
    fs = 1000
    t = np.arange(10 * fs) / fs
    x = np.sin(2 * np.pi * 400 * t)  # above 250 Hz, the Nyquist frequency at 500 Hz
    y = resample(x, fs, 500)
    assert np.abs(y[500:-500]).max() < 0.02


def test_same_rate_is_a_no_op_and_bad_rates_raise():
    x = np.arange(10.0)
    assert resample(x, 500, 500) is x
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 500)


def test_integer_input_becomes_float():
    y = resample(np.arange(100, dtype=np.int16), 100, 50)
    assert y.dtype == np.float64 and y.shape == (50,)


@pytest.mark.parametrize("fs, fs_out", [(500, 250), (257, 500), (360, 500), (1000, 500)])
def test_the_cached_filter_gives_scipys_own_result(fs, fs_out):
    from scipy.signal import resample_poly

    x = np.random.default_rng(0).normal(size=(3, 2001))
    up, down = rational_ratio(fs, fs_out)
    for _ in range(2):  # the second call reads the cached filter, which stays unchanged
        np.testing.assert_array_equal(resample(x, fs, fs_out), resample_poly(x, up, down, axis=-1))


@pytest.mark.parametrize("fs, fs_out", [(500, 500.0001), (1000, 999.9999), (250.0004, 250)])
def test_rates_equal_within_the_ratios_precision_give_a_copy(fs, fs_out):
    """A ratio that rounds to 1/1 gives the input as floats (as ``resample_poly`` does), not a
    filter design error."""
    x = np.random.default_rng(0).normal(size=(2, 300)).astype(np.float32)
    assert rational_ratio(fs, fs_out) == (1, 1)
    y = resample(x, fs, fs_out)
    assert y.dtype == np.float32 and y is not x
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("up, down", [(2, 4), (6, 4), (500, 257), (1000, 3), (3, 1000)])
def test_the_filter_is_scipys_for_any_ratio(up, down):
    """``_fir`` of any (up, down), reduced or not, up above or below down, is the filter
    ``resample_poly`` designs itself, and callers cannot write into the cached array."""
    from scipy.signal import resample_poly

    from team_code.dsp.resample import _fir

    x = np.random.default_rng(1).normal(size=(2, 700))
    got = resample_poly(x, up, down, axis=-1, window=_fir(up, down))
    np.testing.assert_array_equal(got, resample_poly(x, up, down, axis=-1))
    with pytest.raises(ValueError, match="read-only"):
        _fir(up, down)[0] = 1.0
