"""The torch scalogram mosaic equals the numpy reference (team_code.dsp.cwt.ecg_image)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from team_code.data.synth import LEADS, RecordSpec, synthesize
from team_code.dsp import cwt
from team_code.nn.cwt_torch import (
    TOLERANCE,
    TOLERANCE_FLOAT16,
    TorchMosaic,
    beat_samples,
    mosaic_components,
)


def synthetic_signals():
    """Eight-lead synthetic ECGs (10 s, 14 s at another rate) and a flat one (no beat)."""
    out = []
    for seed, (seconds, fs) in enumerate([(10.0, 500.0), (14.0, 257.0)]):
        signal, _ = synthesize(RecordSpec(), fs=fs, duration_s=seconds, seed=seed)
        out.append((signal[[LEADS.index(lead) for lead in cwt.ECG_IMAGE_LEADS]], fs))
    out.append((np.zeros((8, 2500), dtype=np.float32), 250.0))  # no beat: black
    return out


@pytest.mark.parametrize("image_size,n_scales", [(224, 56), (64, 20)])
def test_the_torch_mosaic_equals_the_numpy_reference(image_size, n_scales):
    config = cwt.ScalogramConfig(n_scales=n_scales)
    mosaic = TorchMosaic(image_size, 8, config)
    signals = synthetic_signals()
    components = np.stack([mosaic_components(s, fs, config) for s, fs in signals])
    assert components.shape[-1] == int(config.rhythm_s * config.fs_hz) + beat_samples(config)
    got = mosaic(torch.from_numpy(components)).numpy()
    for (signal, fs), image in zip(signals, got):
        reference = cwt.ecg_image(signal, fs, (image_size, image_size), config)
        error = np.abs(image - reference).max()  # pixels span [0, 1]
        assert error < TOLERANCE, error
    assert all(reference.max() > 0.5 for reference in got[:2])  # the pictures are not blank
    assert np.all(got[-1] == 0)  # no signal, no beat: black, as the reference


def test_float16_components_and_autocast_stay_within_tolerance():
    config = cwt.ScalogramConfig()
    mosaic = TorchMosaic(224, 8, config)
    signal, fs = synthetic_signals()[0]
    components = torch.from_numpy(mosaic_components(signal, fs, config))[None]
    reference = cwt.ecg_image(signal, fs, (224, 224), config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = mosaic(components.half())
    assert got.dtype == torch.float32
    assert np.abs(got[0].numpy() - reference).max() < TOLERANCE_FLOAT16  # the cache's rounding
    with pytest.raises(ValueError, match="components of shape"):
        mosaic(components[..., :-1])
