"""Filters: planted sinusoids, drift and pulses with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from team_code.dsp import filters

FS_LIST = [257.0, 360.0, 500.0, 1000.0]


def _amplitude(x: np.ndarray, fs: float, f_hz: float) -> float:
    """Amplitude of the f_hz component by projection on sin/cos over the central part."""
    n = x.size
    sl = slice(n // 4, 3 * n // 4)
    t = np.arange(n)[sl] / fs
    c = np.cos(2 * np.pi * f_hz * t)
    s = np.sin(2 * np.pi * f_hz * t)
    return float(np.hypot(2 * np.mean(x[sl] * c), 2 * np.mean(x[sl] * s)))


def _ecg_like(fs: float, seconds: float = 10.0) -> np.ndarray:
    """Sum of narrow Gaussian 'beats' once a second (a broadband ECG-like waveform)."""
    t = np.arange(int(seconds * fs)) / fs
    x = np.zeros_like(t)
    for r in np.arange(0.5, seconds, 1.0):
        x += np.exp(-0.5 * ((t - r) / 0.012) ** 2)
    return x


@pytest.mark.parametrize("fs", FS_LIST)
@pytest.mark.parametrize("line_hz", [50.0, 60.0])
def test_powerline_removed_and_10hz_kept(fs, line_hz):
    t = np.arange(int(20 * fs)) / fs
    ten = 0.3 * np.sin(2 * np.pi * 10.0 * t)
    line = 0.5 * np.sin(2 * np.pi * line_hz * t + 0.3)
    y = filters.remove_powerline(ten + line, fs)
    residual_line = _amplitude(y, fs, line_hz)
    assert 20 * np.log10(residual_line / 0.5) < -30.0
    assert abs(_amplitude(y, fs, 10.0) / 0.3 - 1.0) < 0.01


@pytest.mark.parametrize("fs", FS_LIST)
def test_powerline_on_ecg_like_signal(fs):
    ecg = _ecg_like(fs, 20.0)
    t = np.arange(ecg.size) / fs
    y = filters.remove_powerline(ecg + 0.2 * np.sin(2 * np.pi * 50 * t), fs)
    err = y - ecg
    core = slice(int(2 * fs), -int(2 * fs))
    # line gone: the difference to the clean signal is far below the 0.2 mV interference
    assert np.sqrt(np.mean(err[core] ** 2)) < 0.2 * 10 ** (-30 / 20) + 0.01


@pytest.mark.parametrize("fs", FS_LIST)
@pytest.mark.parametrize("method", ["butterworth", "median2stage"])
def test_baseline_drift_removed(fs, method):
    t = np.arange(int(20 * fs)) / fs
    ten = 0.3 * np.sin(2 * np.pi * 10.0 * t)
    drift = 1.0 * np.sin(2 * np.pi * 0.2 * t)
    y = filters.remove_baseline(ten + drift, fs, method=method)
    assert _amplitude(y, fs, 0.2) < 0.05  # 1 mV drift down to < 50 uV (> 26 dB)
    if method == "butterworth":
        assert abs(_amplitude(y, fs, 10.0) / 0.3 - 1.0) < 0.01


@pytest.mark.parametrize("fs", FS_LIST)
def test_emg_lowpass(fs):
    t = np.arange(int(20 * fs)) / fs
    ten = 0.3 * np.sin(2 * np.pi * 10.0 * t)
    emg = 0.2 * np.sin(2 * np.pi * 100.0 * t) if fs / 2 > 100 else 0.0 * t
    y = filters.remove_emg(ten + emg, fs)
    assert abs(_amplitude(y, fs, 10.0) / 0.3 - 1.0) < 0.01
    if fs / 2 > 100:
        assert _amplitude(y, fs, 100.0) < 0.2 * 10 ** (-30 / 20)


@pytest.mark.parametrize("fs", FS_LIST)
@pytest.mark.parametrize(
    "func", [filters.remove_powerline, filters.remove_baseline, filters.remove_emg, filters.clean]
)
def test_zero_phase_symmetric_pulse_keeps_its_peak(fs, func):
    n = int(6 * fs)
    t = np.arange(n) / fs
    centre = n // 2
    pulse = np.exp(-0.5 * ((t - t[centre]) / 0.02) ** 2)
    y = func(pulse, fs)
    assert int(np.argmax(y)) == centre


def test_shapes_dtypes_and_leads_independent():
    fs = 500.0
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5000)).astype(np.float32)
    y = filters.clean(x, fs)
    assert y.shape == x.shape and y.dtype == np.float32
    y1 = filters.clean(x[1], fs)
    np.testing.assert_allclose(y[1], y1, rtol=1e-5, atol=1e-5)
    assert filters.clean(np.arange(100), fs).dtype == np.float64


@pytest.mark.parametrize("n", [0, 1, 2, 5, 40])
def test_short_signals_do_not_crash(n):
    x = np.linspace(0.0, 1.0, n)
    for func in (
        filters.remove_powerline,
        filters.remove_baseline,
        filters.remove_emg,
        filters.clean,
    ):
        y = func(x, 360.0)
        assert y.shape == x.shape and np.all(np.isfinite(y))


def test_extreme_sampling_rates():
    for fs in (100.0, 10_000.0):
        x = _ecg_like(fs, 3.0)
        y = filters.clean(x, fs)
        assert y.shape == x.shape and np.all(np.isfinite(y))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown baseline method"):
        filters.remove_baseline(np.zeros(100), 360, method="nope")
    with pytest.raises(ValueError, match="fs"):
        filters.clean(np.zeros(100), 0)
    with pytest.raises(ValueError, match="1-D"):
        filters.clean(np.zeros((2, 2, 2)), 360)


def test_non_finite_samples_are_bridged_lead_by_lead():
    x = np.array(
        [
            [1.0, np.nan, np.nan, 4.0, 5.0],
            [np.nan, 2.0, np.inf, 2.0, np.nan],
            [np.nan] * 5,
        ]
    )
    y, n = filters.fill_nonfinite(x)
    assert n == 10
    np.testing.assert_array_equal(y[0], [1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(y[1], [2.0, 2.0, 2.0, 2.0, 2.0])  # held flat at the ends
    np.testing.assert_array_equal(y[2], 0.0)
    assert np.isnan(x[0, 1])  # the input is left as it was


def test_a_gap_in_a_lead_off_its_zero_leaves_no_step_after_the_high_pass():
    """Zeros in a gap of a lead sitting at 0.8 mV are two 0.8-mV steps, which the high-pass
    turns into deflections a QRS detector takes for beats; bridged, the gap is quiet."""
    from team_code.nn.delineator.inputs import prepare

    fs = 500.0
    t = np.arange(5000) / fs
    x = (0.8 + 0.05 * np.sin(2 * np.pi * 1.2 * t))[None, :].repeat(2, axis=0)
    x[:, 1050:1170] = np.nan
    _, bridged = prepare(x, fs, 0.0)
    _, zeroed = prepare(np.nan_to_num(x), fs, 0.0)
    gap = slice(1000 // 2, 1220 // 2)  # prepare works at 250 Hz
    assert np.abs(bridged[:, gap]).max() < 0.1
    assert np.abs(zeroed[:, gap]).max() > 0.3
