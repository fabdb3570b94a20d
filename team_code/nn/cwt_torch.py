"""The scalogram mosaic of :mod:`team_code.dsp.cwt` computed with torch, on any device.

:func:`team_code.dsp.cwt.ecg_image` does two things: the signal work (filtering, resampling,
R peaks, the average beat: :func:`team_code.dsp.cwt.ecg_components`) and the scalograms (a
CWT per lead of the rhythm and of the beat, magnitudes area-averaged to the tiles, mapped to
pixels). The first is cheap and stays in numpy; the second is most of the cost and is pure
linear algebra, so :class:`TorchMosaic` runs it on the device where the network trains, a
batch at a time, from the components (:func:`mosaic_components`: the rhythm and the beat of
each lead side by side, the beat zero where none was found, which gives the black half that
``ecg_image`` leaves). The filter banks, padding, normalisation, tile edges, area weights and
pixel mapping are the numpy reference's own (its :func:`~team_code.dsp.cwt.filter_bank`
response matrices and :func:`~team_code.dsp.cwt._area_matrix` weights, copied to the device
as buffers), and the arithmetic is float32 FFTs: the mosaic equals ``ecg_image`` within
:data:`TOLERANCE` (max abs pixel error; pixels span [0, 1]; :data:`TOLERANCE_FLOAT16` from
float16 components), which
``tests/nn/test_torch_cwt.py`` checks on synthetic records.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from team_code.dsp import cwt

#: Largest difference of a pixel from :func:`team_code.dsp.cwt.ecg_image` (pixels span
#: [0, 1]) that the mosaic is held to: :data:`TOLERANCE` from float32 components,
#: :data:`TOLERANCE_FLOAT16` from float16 components, as a float16 cache keeps them.
TOLERANCE = 1e-5
TOLERANCE_FLOAT16 = 1e-3

__all__ = ["TOLERANCE", "TOLERANCE_FLOAT16", "TorchMosaic", "beat_samples", "mosaic_components"]


def beat_samples(config: cwt.ScalogramConfig) -> int:
    """Samples of the average beat at ``config.fs_hz`` (its fixed window)."""
    from team_code.dsp.beats import AverageBeatConfig

    beat = AverageBeatConfig()
    return int(round(beat.pre_s * config.fs_hz)) + int(round(beat.post_s * config.fs_hz))


def mosaic_components(
    signal_mv: np.ndarray, fs: float, config: cwt.ScalogramConfig | None = None
) -> np.ndarray:
    """(n_leads, rhythm + beat samples) float32: the rhythm segment and the average beat of each
    lead (:func:`team_code.dsp.cwt.ecg_components`), the beat zero where none was found."""
    config = config or cwt.ScalogramConfig()
    rhythm, beat = cwt.ecg_components(signal_mv, fs, config)
    n_beat = beat_samples(config)
    if beat is not None and beat.shape[-1] != n_beat:
        raise ValueError(f"average beat of {beat.shape[-1]} samples, expected {n_beat}")
    out = np.zeros((rhythm.shape[0], rhythm.shape[1] + n_beat), dtype=np.float32)
    out[:, : rhythm.shape[1]] = rhythm
    if beat is not None:
        out[:, rhythm.shape[1] :] = beat
    return out


class _Scalogram(nn.Module):
    """|CWT| of (batch, leads, n) signals through one numpy filter bank, area-resized to
    (rows, cols) tiles per lead: (batch, leads, rows, cols)."""

    def __init__(self, bank: cwt.FilterBank, rows: np.ndarray, cols: int):
        super().__init__()
        self.n, self.n_pad, self.n_fft, self.padding = (
            bank.n_samples,
            bank.n_pad,
            bank.n_fft,
            bank.padding,
        )
        self.register_buffer("response", torch.tensor(bank.response, dtype=torch.float32), False)
        # per lead row band: its own (height, n_scales) area matrix (tile heights differ by one)
        heights = sorted({int(h) for h in np.diff(rows)})
        self.heights = heights
        for h in heights:
            weights = torch.tensor(cwt._area_matrix(len(bank.scales), h), dtype=torch.float32)
            self.register_buffer(f"rows_{h}", weights, False)
        time = torch.tensor(cwt._area_matrix(self.n, cols), dtype=torch.float32)
        self.register_buffer("cols", time.T.contiguous(), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "reflect" and self.n > 1:
            mirrored = min(self.n_pad, self.n - 1)
            x = F.pad(x, (mirrored, mirrored), mode="reflect")
            zeros = self.n_pad - mirrored
        else:
            zeros = self.n_pad
        if zeros:
            x = F.pad(x, (zeros, zeros))
        spectrum = torch.fft.rfft(x, n=self.n_fft, dim=-1)
        product = spectrum[..., None, :] * self.response  # (batch, leads, scales, freqs)
        full = torch.zeros(*product.shape[:-1], self.n_fft, dtype=product.dtype, device=x.device)
        full[..., : product.shape[-1]] = product  # negative frequencies zero: analytic
        coefficients = torch.fft.ifft(full, dim=-1)[..., self.n_pad : self.n_pad + self.n]
        return coefficients.abs() @ self.cols  # (batch, leads, scales, cols)

    def rows(self, magnitude: torch.Tensor, height: int) -> torch.Tensor:
        return getattr(self, f"rows_{height}") @ magnitude


class TorchMosaic(nn.Module):
    """Components (batch, n_leads, rhythm + beat samples) -> mosaics (batch, H, W) in [0, 1],
    as :func:`team_code.dsp.cwt.ecg_image` (see the module docstring). Buffers only, none
    saved with a model's weights; always computed in float32, also under autocast."""

    def __init__(self, image_size: int, n_leads: int, config: cwt.ScalogramConfig | None = None):
        super().__init__()
        config = config or cwt.ScalogramConfig()
        self.config = config
        height = width = int(image_size)
        self.row_edges = cwt.tile_edges(height, n_leads).tolist()
        self.split = int(round(width * (1.0 - config.beat_fraction)))
        self.height, self.width, self.n_leads = height, width, n_leads
        self.n_rhythm = int(round(config.rhythm_s * config.fs_hz))
        self.n_beat = beat_samples(config)
        parts = [
            (self.n_rhythm, config.rhythm_band_hz, self.split, "reflect"),
            (self.n_beat, config.beat_band_hz, width - self.split, "zero"),
        ]
        self.parts = nn.ModuleList()
        for n, band, cols, padding in parts:
            bank = cwt.filter_bank(
                n,
                config.fs_hz,
                cwt.log_frequencies(band[0], band[1], config.n_scales),
                bandwidth=config.bandwidth,
                center=config.center,
                padding=padding,
            )
            self.parts.append(_Scalogram(bank, np.asarray(self.row_edges), cols))
        self.scale = float(np.log1p(config.max_mv / config.ref_mv))

    def forward(self, components: torch.Tensor) -> torch.Tensor:
        with torch.autocast(components.device.type, enabled=False):
            x = components.float()
            if x.shape[-2:] != (self.n_leads, self.n_rhythm + self.n_beat):
                raise ValueError(
                    f"components of shape {tuple(x.shape[-2:])}, expected "
                    f"({self.n_leads}, {self.n_rhythm + self.n_beat})"
                )
            image = x.new_zeros(x.shape[0], self.height, self.width)
            signals = (x[..., : self.n_rhythm], x[..., self.n_rhythm :])
            lefts = (0, self.split)
            for part, signal, left in zip(self.parts, signals, lefts):
                magnitude = part(signal)  # (batch, leads, scales, cols)
                right = left + magnitude.shape[-1]
                for i in range(self.n_leads):
                    top, bottom = self.row_edges[i], self.row_edges[i + 1]
                    tile = part.rows(magnitude[:, i], bottom - top)
                    pixels = torch.log1p(tile / self.config.ref_mv) / self.scale
                    image[:, top:bottom, left:right] = pixels.clamp(0.0, 1.0)
            return image
