"""Continuous wavelet transform scalograms of the ECG, computed with a precomputed filter bank.

The wavelet is the analytic Morlet: the complex Morlet of PyWavelets (``cmor{B}-{C}``,
``psi(t) = (pi B)^-1/2 exp(-t^2 / B) exp(2j pi C t)``, Fourier transform
``exp(-pi^2 B (f - C)^2)``) with its (negligible, below 4e-7 for B=1.5, C=1) negative-frequency
tail set to zero. At scale ``s`` it is centred on ``C fs / s`` Hz.

Filter bank
    The CWT of a signal of ``n`` samples at scale ``s`` is the inverse FFT of the signal's
    spectrum times the wavelet's spectrum stretched by ``s``. :func:`filter_bank` computes
    those stretched spectra once per ``(n, fs, frequencies, wavelet, normalisation, padding)``
    (cached) as a (n_scales, n_fft // 2 + 1) matrix, so a record costs one forward FFT per
    lead and one inverse FFT per lead and scale, with no wavelet sampled or convolved per
    record. Every record of the same length and rate shares the bank (the rhythm segment and
    the average beat have fixed lengths after resampling, so training uses exactly two banks).

Normalisation
    ``"l1"`` (default, as MATLAB's ``cwt``): the analytic wavelet's spectrum peaks at 2, so a
    sinusoid of amplitude ``A`` mV gives ``|W| = A`` mV at the matching scale, whatever the
    scale: pixel values mean the same thing in every row. ``"l2"``: ``sqrt(s)`` weighting, the
    normalisation of ``pywt.cwt`` (energy-preserving). Either way the coefficients equal a
    direct convolution with the sampled wavelet to ~1e-7; they agree with
    ``pywt.cwt(x, scales, "cmorB-C")`` in magnitude to about 1 % only, because PyWavelets
    integrates, resamples and differences the wavelet (a half-sample shift, a one-sample box
    filter, and a "zipper" at large scales).

The ECG picture (:func:`ecg_image`)
    Two components of each of the 8 independent leads (I, II, V1-V6; the other four limb leads
    are linear combinations of I and II): 10 s of the filtered ECG (``filters.clean``,
    resampled to ``fs_hz``, the centred 10 s; shorter records zero-padded at the end) and the
    robust average beat of :func:`team_code.dsp.beats.average_beat` (R peaks from
    :func:`team_code.dsp.qrs.detect`). The 16 scalograms become **one single-channel image per
    record, tiled as an 8 x 2 grid**: one row of tiles per lead (I, II, V1 ... V6 from top to
    bottom), the rhythm scalogram on the left half and the average-beat scalogram on the right
    half; within a tile, frequency rises from the bottom row to the top and time runs left to
    right. Why this layout:

    - one image per record keeps the cost of one GoogLeNet forward pass per record (8 or 16
      images per record would cost 8-16 times more on 43,000 records), and a 3-channel image
      lets the ImageNet ``conv1`` be used as trained (a 16-channel input would have to invent
      its first layer);
    - rows of leads share the time axis, so the network's early, translation-equivariant
      filters see the same kind of structure in every tile and its later layers can compare
      leads (axis, R progression across V1-V6) vertically and rhythm with morphology
      horizontally;
    - at 224 x 224 a tile is 28 (scales) x 112 (time) pixels: 11 px/s for the rhythm (an RR
      interval of 0.8 s spans 9 px, enough for irregularity and pauses) and ~100 px/s for the
      1.1-s average beat (a 100-ms QRS spans 10 px), with 28 log-spaced frequencies, which the
      Morlet's ~18 % relative bandwidth (B=1.5) does not resolve any finer anyway;
    - the amplitude scale is physical (see below), not normalised per image, so low QRS voltage
      and lead-to-lead amplitude ratios survive.

    The channel dimension is added by the network side (grey replicated to RGB, or the jet
    colour map of MATLAB's scalogram examples); the cache stores the grey mosaic only.

Pixel values
    ``log1p(|W| / ref_mv) / log1p(max_mv / ref_mv)`` clipped to [0, 1]: a compressive,
    fixed mapping from millivolts (0.02 mV -> 0.15, 0.2 mV -> 0.52, 1 mV -> 0.85, 2 mV -> 1
    with the defaults), the same for every record.

Resizing
    Scalograms are computed at ``n_scales`` log-spaced frequencies and every sample of the
    segment, then reduced to the tile's pixels by area averaging (:func:`area_resize`: each
    output pixel is the overlap-weighted mean of the input cells it covers, as PIL's BOX and
    OpenCV's INTER_AREA filters), which never aliases when shrinking.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.fft

from team_code.dsp import beats, filters, qrs
from team_code.dsp.resample import resample

__all__ = [
    "FilterBank",
    "filter_bank",
    "cwt",
    "scalogram",
    "scales_from_frequencies",
    "log_frequencies",
    "area_resize",
    "ScalogramConfig",
    "ECG_IMAGE_LEADS",
    "ecg_components",
    "ecg_image",
    "tile_edges",
]

#: The 8 independent leads drawn in the image, top to bottom.
ECG_IMAGE_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

_NORMALISATIONS = ("l1", "l2")
_PADDINGS = ("reflect", "zero")


def scales_from_frequencies(freqs_hz, fs: float, center: float = 1.0) -> np.ndarray:
    """Scales (samples) at which a Morlet of centre frequency ``center`` peaks at ``freqs_hz``."""
    freqs_hz = np.asarray(freqs_hz, dtype=float)
    if np.any(freqs_hz <= 0) or np.any(freqs_hz >= fs / 2):
        raise ValueError(f"frequencies must lie in (0, fs/2 = {fs / 2} Hz); got {freqs_hz}")
    return center * fs / freqs_hz


def log_frequencies(f_min_hz: float, f_max_hz: float, n: int) -> np.ndarray:
    """``n`` log-spaced frequencies from ``f_max_hz`` down to ``f_min_hz`` (image row order)."""
    if not 0 < f_min_hz < f_max_hz or n < 1:
        raise ValueError(f"need 0 < f_min < f_max and n >= 1; got {f_min_hz}, {f_max_hz}, {n}")
    return np.geomspace(f_max_hz, f_min_hz, n)


@dataclasses.dataclass(frozen=True)
class FilterBank:
    """Stretched wavelet spectra for one signal length, rate and set of frequencies."""

    n_samples: int  # length of the signals it transforms
    fs: float  # sampling frequency in Hz
    freqs_hz: np.ndarray  # centre frequency of each scale, Hz
    scales: np.ndarray  # scales in samples
    n_pad: int  # samples padded before and after the signal
    n_fft: int  # FFT length (>= n_samples + 2 n_pad, a fast size)
    padding: str  # "reflect" or "zero"
    response: np.ndarray  # (n_scales, n_fft // 2 + 1) wavelet spectra at non-negative freqs

    def transform(self, signal: np.ndarray) -> np.ndarray:
        """Complex CWT of ``signal`` (..., n_samples) -> (..., n_scales, n_samples)."""
        x = np.asarray(signal, dtype=np.float64)
        if x.shape[-1] != self.n_samples:
            raise ValueError(
                f"filter bank is for {self.n_samples} samples; signal has {x.shape[-1]}"
            )
        width = [(0, 0)] * (x.ndim - 1)
        if self.padding == "reflect" and self.n_samples > 1:
            mirrored = min(self.n_pad, self.n_samples - 1)  # np.pad cannot mirror further
            x = np.pad(x, [*width, (mirrored, mirrored)], mode="reflect")
            zeros = self.n_pad - mirrored  # short signals: zeros beyond the mirror image
        else:
            zeros = self.n_pad
        if zeros:
            x = np.pad(x, [*width, (zeros, zeros)])
        spectrum = scipy.fft.rfft(x, n=self.n_fft, axis=-1)
        product = spectrum[..., None, :] * self.response
        # ifft with n=n_fft zero-fills the negative frequencies: the analytic signal.
        coefficients = scipy.fft.ifft(product, n=self.n_fft, axis=-1)
        return coefficients[..., self.n_pad : self.n_pad + self.n_samples]


@functools.lru_cache(maxsize=32)
def _cached_bank(
    n_samples: int,
    fs: float,
    freqs_hz: tuple[float, ...],
    bandwidth: float,
    center: float,
    normalisation: str,
    padding: str,
    pad_sigmas: float,
) -> FilterBank:
    freqs = np.asarray(freqs_hz, dtype=float)
    scales = scales_from_frequencies(freqs, fs, center)
    # The wavelet's Gaussian envelope exp(-t^2/B) has sd sqrt(B/2) samples at scale 1.
    sigma_max = float(np.sqrt(bandwidth / 2.0) * scales.max())
    n_pad = int(np.ceil(pad_sigmas * sigma_max))
    n_fft = scipy.fft.next_fast_len(n_samples + 2 * n_pad, real=True)
    f = np.arange(n_fft // 2 + 1) / n_fft  # cycles per sample, non-negative only
    stretched = scales[:, None] * f[None, :]
    response = np.exp(-(np.pi**2) * bandwidth * (stretched - center) ** 2)
    if normalisation == "l1":
        response *= 2.0
    else:
        response *= np.sqrt(scales)[:, None]
    response[:, 0] = 0.0  # analytic: no DC
    response.setflags(write=False)
    freqs.setflags(write=False)
    scales.setflags(write=False)
    return FilterBank(n_samples, fs, freqs, scales, n_pad, n_fft, padding, response)


def filter_bank(
    n_samples: int,
    fs: float,
    freqs_hz,
    bandwidth: float = 1.5,
    center: float = 1.0,
    normalisation: str = "l1",
    padding: str = "reflect",
    pad_sigmas: float = 3.0,
) -> FilterBank:
    """The (cached) analytic-Morlet filter bank for signals of ``n_samples`` at ``fs`` Hz.

    Args:
        n_samples: signal length the bank transforms.
        fs: sampling frequency in Hz.
        freqs_hz: centre frequency of each scale in Hz (each in (0, fs/2)).
        bandwidth: Morlet bandwidth parameter B of ``cmorB-C`` (time envelope exp(-t^2/B)).
        center: Morlet centre frequency C of ``cmorB-C`` (cycles per unit scale).
        normalisation: ``"l1"`` (sinusoid amplitude preserved) or ``"l2"`` (as ``pywt.cwt``).
        padding: signal extension before the FFT, ``"reflect"`` or ``"zero"``.
        pad_sigmas: padding length in standard deviations of the widest wavelet's envelope.
    """
    if normalisation not in _NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {_NORMALISATIONS}; got {normalisation!r}")
    if padding not in _PADDINGS:
        raise ValueError(f"padding must be one of {_PADDINGS}; got {padding!r}")
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be positive; got {n_samples}")
    if bandwidth <= 0 or center <= 0:
        raise ValueError(f"bandwidth and center must be positive; got {bandwidth}, {center}")
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"fs must be a positive finite sampling frequency in Hz; got {fs}")
    freqs = tuple(float(f) for f in np.atleast_1d(np.asarray(freqs_hz, dtype=float)))
    return _cached_bank(
        int(n_samples),
        fs,
        freqs,
        float(bandwidth),
        float(center),
        normalisation,
        padding,
        float(pad_sigmas),
    )


def cwt(signal, fs: float, freqs_hz, **bank_options) -> np.ndarray:
    """Complex analytic-Morlet CWT along the last axis: (..., n) -> (..., n_scales, n).

    ``bank_options`` are those of :func:`filter_bank` (bandwidth, center, normalisation,
    padding, pad_sigmas).
    """
    x = np.asarray(signal, dtype=np.float64)
    bank = filter_bank(x.shape[-1], fs, freqs_hz, **bank_options)
    return bank.transform(x)


def scalogram(signal, fs: float, freqs_hz, **bank_options) -> np.ndarray:
    """Magnitude of :func:`cwt`: (..., n) -> (..., n_scales, n), in the signal's units (l1)."""
    return np.abs(cwt(signal, fs, freqs_hz, **bank_options))


@functools.lru_cache(maxsize=64)
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: output cell i averages input cells over [i, i+1) * n_in / n_out."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    weights = overlap / overlap.sum(axis=1, keepdims=True)
    weights.setflags(write=False)
    return weights


def area_resize(image, shape: tuple[int, int]) -> np.ndarray:
    """Resize the last two axes to ``shape`` by area averaging (box filter, fractional overlaps).

    Shrinking averages the covered cells (never aliases); enlarging repeats cells (nearest),
    so a constant image stays constant and the mean is preserved when sizes divide.
    """
    x = np.asarray(image, dtype=np.float64)
    rows, cols = int(shape[0]), int(shape[1])
    if rows < 1 or cols < 1:
        raise ValueError(f"target shape must be positive; got {shape}")
    return _area_matrix(x.shape[-2], rows) @ x @ _area_matrix(x.shape[-1], cols).T


@dataclasses.dataclass(frozen=True)
class ScalogramConfig:
    """How a record becomes its scalogram mosaic."""

    fs_hz: float = 250.0  # rate the filtered ECG is resampled to before the CWT
    rhythm_s: float = 10.0  # length of the rhythm segment (centred; zero-padded if shorter)
    margin_s: float = 2.0  # extra signal filtered on each side of the segment (transients)
    rhythm_band_hz: tuple[float, float] = (0.7, 40.0)  # lowest, highest rhythm frequency
    beat_band_hz: tuple[float, float] = (2.0, 40.0)  # lowest, highest average-beat frequency
    n_scales: int = 56  # scales computed per scalogram before area-resizing to the tile
    bandwidth: float = 1.5  # Morlet bandwidth parameter B (cmorB-C)
    center: float = 1.0  # Morlet centre frequency C (cmorB-C)
    ref_mv: float = 0.02  # amplitude mapped by log1p(|W|/ref_mv) (the knee of the curve)
    max_mv: float = 2.0  # amplitude mapped to 1 (brighter pixels clip)
    beat_fraction: float = 0.5  # share of the image width given to the average beat


def tile_edges(n_pixels: int, n_tiles: int) -> np.ndarray:
    """Integer pixel boundaries of ``n_tiles`` near-equal tiles (``n_tiles + 1`` values)."""
    return np.round(np.linspace(0, n_pixels, n_tiles + 1)).astype(int)


def _to_pixels(magnitude_mv: np.ndarray, config: ScalogramConfig) -> np.ndarray:
    scale = np.log1p(config.max_mv / config.ref_mv)
    return np.clip(np.log1p(magnitude_mv / config.ref_mv) / scale, 0.0, 1.0)


def ecg_components(
    signal_mv, fs: float, config: ScalogramConfig | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The two signals drawn per lead: (rhythm (n_leads, rhythm_s * fs_hz), beat or None).

    ``signal_mv`` is raw ECG (n_leads, n_samples) in mV, usually the 8 leads of
    :data:`ECG_IMAGE_LEADS`. Only its centred ``rhythm_s + 2 margin_s`` seconds are analysed
    (a 60-s record costs what a 14-s one does): filtered with ``filters.clean`` at its own
    rate, resampled to ``config.fs_hz``, then cut to the centred ``rhythm_s`` (zero-padded at
    the end if shorter). The beat is the robust average beat of that filtered segment at
    ``fs_hz`` (None when no R peak with a full window is found).
    """
    config = config or ScalogramConfig()
    x = np.atleast_2d(np.asarray(signal_mv, dtype=np.float64))
    n_keep = int(round((config.rhythm_s + 2 * config.margin_s) * fs))
    if x.shape[-1] > n_keep:  # long record: only the centred segment (+ margins) is analysed
        start = (x.shape[-1] - n_keep) // 2
        x = x[:, start : start + n_keep]
    if not np.all(np.isfinite(x)):
        raise ValueError("signal_mv contains non-finite samples")
    x = resample(filters.clean(x, fs), fs, config.fs_hz, axis=-1)
    n_rhythm = int(round(config.rhythm_s * config.fs_hz))
    if x.shape[-1] >= n_rhythm:
        start = (x.shape[-1] - n_rhythm) // 2
        rhythm = x[:, start : start + n_rhythm]
    else:
        rhythm = np.zeros((x.shape[0], n_rhythm))
        rhythm[:, : x.shape[-1]] = x
    beat = None
    if x.shape[-1] >= 2 and np.any(x):
        r_peaks = qrs.detect(x, config.fs_hz)
        average = beats.average_beat(x, config.fs_hz, r_peaks) if r_peaks.size else None
        if average is not None:
            beat = average.beat_mv
    return rhythm, beat


def ecg_image(
    signal_mv, fs: float, image_shape: tuple[int, int], config: ScalogramConfig | None = None
) -> np.ndarray:
    """The record's scalogram mosaic, float32 (height, width) in [0, 1] (see module docstring).

    Rows of tiles follow the leads of ``signal_mv`` (8 for :data:`ECG_IMAGE_LEADS`); the left
    ``1 - beat_fraction`` of the width holds the rhythm scalograms, the right part the
    average-beat scalograms (left black when no beat is found).
    """
    config = config or ScalogramConfig()
    height, width = int(image_shape[0]), int(image_shape[1])
    rhythm, beat = ecg_components(signal_mv, fs, config)
    n_leads = rhythm.shape[0]
    if height < n_leads or width < 2:
        raise ValueError(f"image {image_shape} too small for {n_leads} lead rows and 2 columns")
    rows = tile_edges(height, n_leads)
    split = int(round(width * (1.0 - config.beat_fraction)))
    image = np.zeros((height, width), dtype=np.float32)
    parts = [(rhythm, config.rhythm_band_hz, 0, split, "reflect")]
    if beat is not None:
        parts.append((beat, config.beat_band_hz, split, width, "zero"))
    for signal, band, left, right, padding in parts:
        if right <= left:
            continue
        freqs = log_frequencies(band[0], band[1], config.n_scales)
        magnitude = scalogram(
            signal,
            config.fs_hz,
            freqs,
            bandwidth=config.bandwidth,
            center=config.center,
            padding=padding,
        )
        for i in range(n_leads):
            top, bottom = rows[i], rows[i + 1]
            tile = area_resize(magnitude[i], (bottom - top, right - left))
            image[top:bottom, left:right] = _to_pixels(tile, config)
    return image
