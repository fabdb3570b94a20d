"""The CWT filter bank against direct convolution and PyWavelets, and the scalogram mosaic."""

from __future__ import annotations

import numpy as np
import pytest
import pywt

from team_code.dsp import cwt

B, C = 1.5, 1.0  # cmor1.5-1.0, the module's default wavelet


def direct_cwt(x: np.ndarray, scale: float, normalisation: str) -> np.ndarray:
    """Per-scale time-domain convolution with the sampled analytic Morlet (the definition)."""
    half = int(np.ceil(8 * np.sqrt(B / 2) * scale))  # 8 sd of the Gaussian envelope
    t = np.arange(-half, half + 1) / scale
    psi = (np.pi * B) ** -0.5 * np.exp(-(t**2) / B) * np.exp(2j * np.pi * C * t)
    weight = 2.0 / scale if normalisation == "l1" else 1.0 / np.sqrt(scale)
    return np.convolve(x, weight * psi)[half : half + x.size]


@pytest.mark.parametrize("normalisation", ["l1", "l2"])
def test_filter_bank_equals_direct_convolution(normalisation):
    rng = np.random.default_rng(0)
    fs = 250.0
    x = rng.standard_normal(1500)
    freqs = cwt.log_frequencies(0.7, 60.0, 9)
    coefficients = cwt.cwt(x, fs, freqs, normalisation=normalisation, padding="zero")
    assert coefficients.shape == (9, 1500) and np.iscomplexobj(coefficients)
    for k, scale in enumerate(cwt.scales_from_frequencies(freqs, fs)):
        expected = direct_cwt(x, scale, normalisation)
        error = np.abs(coefficients[k] - expected).max() / np.abs(expected).max()
        assert error < 1e-5, (scale, error)  # measured: below 1e-7 at every scale


def test_filter_bank_agrees_with_pywt_cwt():
    """pywt.cwt integrates and differentiates a sampled wavelet (a half-sample box filter and a
    "zipper" at large scales), so it agrees to about 1 % in magnitude, not to rounding."""
    rng = np.random.default_rng(1)
    fs = 100.0
    x = rng.standard_normal(3000)
    freqs = np.array([8.0, 5.0, 3.0, 2.0, 1.0, 0.6])
    scales = cwt.scales_from_frequencies(freqs, fs)
    ours = np.abs(cwt.cwt(x, fs, freqs, normalisation="l2", padding="zero"))[:, 500:-500]
    theirs, pywt_freqs = pywt.cwt(x, scales, f"cmor{B}-{C}", 1 / fs, method="fft", precision=14)
    theirs = np.abs(theirs)[:, 500:-500]
    np.testing.assert_allclose(pywt_freqs, freqs)  # same scale <-> frequency convention
    for k, scale in enumerate(scales):
        ratio = np.median(ours[k] / theirs[k])
        correlation = np.corrcoef(ours[k], theirs[k])[0, 1]
        # measured: ratios 1.010, 1.004, 1.001, 1.000, 1.000, 0.997; r >= 0.9986 up to scale 50
        # and 0.997, 0.986 at scales 100 and 167
        assert abs(ratio - 1) < 0.015, (scale, ratio)
        assert correlation > (0.998 if scale <= 50 else 0.98), (scale, correlation)


@pytest.mark.parametrize(("fs", "f0", "amplitude"), [(250.0, 7.0, 1.5), (500.0, 17.0, 0.3)])
def test_sinusoid_peaks_at_its_frequency_with_its_amplitude(fs, f0, amplitude):
    t = np.arange(int(8 * fs)) / fs
    x = amplitude * np.sin(2 * np.pi * f0 * t + 0.3)
    freqs = cwt.log_frequencies(1.0, 40.0, 80)
    magnitude = cwt.scalogram(x, fs, freqs)[:, int(2 * fs) : int(6 * fs)].mean(axis=1)
    best = int(np.argmax(magnitude))
    assert best == int(np.argmin(np.abs(np.log(freqs / f0))))  # the grid frequency nearest f0
    assert abs(freqs[best] / f0 - 1) < 0.03
    # l1 normalisation: a sinusoid's amplitude in mV reads off the scalogram
    assert magnitude[best] == pytest.approx(amplitude, rel=0.01)


def test_filter_bank_is_cached_per_length_rate_and_frequencies():
    freqs = cwt.log_frequencies(1.0, 40.0, 16)
    bank = cwt.filter_bank(2500, 250.0, freqs)
    assert cwt.filter_bank(2500, 250.0, list(freqs)) is bank
    assert cwt.filter_bank(2501, 250.0, freqs) is not bank
    assert bank.response.shape == (16, bank.n_fft // 2 + 1)
    assert bank.n_fft >= 2500 + 2 * bank.n_pad
    with pytest.raises(ValueError, match="filter bank is for 2500 samples"):
        bank.transform(np.zeros(100))
    with pytest.raises(ValueError, match="fs/2"):
        cwt.filter_bank(100, 50.0, [30.0])


def test_reflect_padding_handles_signals_shorter_than_the_padding():
    x = np.sin(2 * np.pi * 5 * np.arange(40) / 100.0)
    out = cwt.scalogram(x, 100.0, [1.0, 5.0])  # 1 Hz wavelet: padding far beyond 40 samples
    assert out.shape == (2, 40) and np.all(np.isfinite(out))


def test_area_resize_averages_blocks_and_preserves_the_mean():
    image = np.arange(16, dtype=float).reshape(4, 4)
    np.testing.assert_allclose(cwt.area_resize(image, (2, 2)), [[2.5, 4.5], [10.5, 12.5]])
    rng = np.random.default_rng(2)
    big = rng.random((56, 2500))
    small = cwt.area_resize(big, (28, 112))  # fractional overlaps along time
    assert small.shape == (28, 112)
    assert small.mean() == pytest.approx(big.mean(), rel=1e-12)
    np.testing.assert_allclose(cwt.area_resize(np.full((7, 9), 3.0), (3, 4)), 3.0)
    np.testing.assert_allclose(cwt.area_resize(image, (4, 4)), image)


def synthetic_beats(fs: float, seconds: float, lead: int, n_leads: int = 8) -> np.ndarray:
    """Gaussian QRS-like pulses (1 mV, 1 per second) in one lead, the other leads flat."""
    t = np.arange(int(seconds * fs)) / fs
    signal = np.zeros((n_leads, t.size))
    for r in np.arange(0.5, seconds, 1.0):
        signal[lead] += np.exp(-0.5 * ((t - r) / 0.012) ** 2)
    return signal


def test_ecg_image_draws_each_lead_in_its_row_with_rhythm_left_and_beat_right():
    fs, lead = 500.0, 3  # V2: the fourth row of tiles
    image = cwt.ecg_image(synthetic_beats(fs, 12.0, lead), fs, (64, 64))
    assert image.shape == (64, 64) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    rows = cwt.tile_edges(64, 8)
    for i in range(8):
        tile_rows = image[rows[i] : rows[i + 1]]
        if i == lead:
            # measured 0.43 and 0.69: 10 s squeezed into 32 px averages the pulses down
            assert tile_rows[:, :32].max() > 0.3  # rhythm scalogram
            assert tile_rows[:, 32:].max() > 0.5  # average-beat scalogram
        else:
            assert tile_rows.max() < 1e-6  # flat leads stay black
    # the rhythm half shows 12 s cut to the centred 10 s: ten pulses, so brightness varies
    rhythm_top = image[rows[lead], :32]
    assert rhythm_top.max() > 2 * rhythm_top.min()


def test_flat_record_gives_a_black_image():
    image = cwt.ecg_image(np.zeros((8, 3000)), 500.0, (32, 32))  # flat: no R peak, no beat
    assert image.max() == 0.0
    with pytest.raises(ValueError, match="non-finite"):
        cwt.ecg_image(np.full((8, 100), np.nan), 500.0, (32, 32))


def test_ecg_image_of_a_real_record(challenge_dir):
    from team_code.data.records import load_record

    record = load_record(challenge_dir / "A0002.hea")  # sinus rhythm, 10 s at 500 Hz
    image = cwt.ecg_image(record.select_leads(cwt.ECG_IMAGE_LEADS), record.fs, (224, 224))
    assert image.shape == (224, 224)
    rows = cwt.tile_edges(224, 8)
    for i in range(8):
        assert image[rows[i] : rows[i + 1], :112].max() > 0.3  # every lead has a rhythm tile
        assert image[rows[i] : rows[i + 1], 112:].max() > 0.3  # and an average beat
