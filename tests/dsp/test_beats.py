"""Average beat: alignment, dominant morphology (PVCs left out), window bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from team_code.data import synth
from team_code.dsp import beats, filters, qrs

FS = 500.0


def _record(**kw):
    spec = synth.RecordSpec(**kw)
    x, truth = synth.synthesize(spec, FS, 10, seed=3)
    return filters.clean(x.astype(float), FS), truth


def test_segment_shapes_and_inside_mask():
    x = np.arange(1000.0)[None, :].repeat(2, axis=0)
    out, inside = beats.segment(x, 100.0, [5, 500, 995], pre_s=0.1, post_s=0.2)
    assert inside.tolist() == [False, True, False]
    assert out.shape == (1, 2, 30)
    assert out[0, 0, 0] == 490 and out[0, 0, -1] == 519


def test_pvcs_are_left_out_of_the_average():
    x, truth = _record(n_pvc=2, heart_rate_bpm=90)
    r = qrs.detect(x, FS)
    ab = beats.average_beat(x, FS, r)
    assert ab is not None
    pvc = np.isin(
        np.arange(ab.r_peaks.size),
        [np.argmin(np.abs(ab.r_peaks - p)) for p in truth["pvc_indices"]],
    )
    assert truth["pvc_indices"].size == 2
    assert not ab.dominant[pvc].any()  # both planted PVCs are another morphology
    assert ab.dominant[~pvc].all()  # every sinus beat is dominant
    assert not ab.kept[pvc].any()


def test_average_beat_matches_a_clean_sinus_beat():
    clean, _ = _record(heart_rate_bpm=70)
    noise = synth.NoiseSpec(white_mv=0.03, emg_mv=0.02)
    x_noisy, truth = synth.synthesize(
        synth.RecordSpec(heart_rate_bpm=70, noise=noise), FS, 10, seed=3
    )
    x = filters.clean(x_noisy.astype(float), FS)
    ab = beats.average_beat(x, FS, qrs.detect(x, FS))
    ref = beats.average_beat(clean, FS, qrs.detect(clean, FS))
    # the median of ~10 noisy beats is close to the noise-free average beat
    corr = beats.qrs_correlation(ab.beat_mv[None], ref.beat_mv)[0]
    assert corr > 0.97
    # aligned R peaks sit on the planted main QRS peaks (within 10 ms)
    r_true = truth["r_peaks"]
    err = np.abs(ab.r_peaks[:, None] - r_true[None, :]).min(axis=1)
    assert np.median(err) <= 0.01 * FS


def test_no_full_window_gives_none_and_bad_fs_raises():
    x = np.zeros((2, 300))
    assert beats.average_beat(x, FS, [150]) is None
    with pytest.raises(ValueError, match="fs"):
        beats.average_beat(x, 0.0, [150])
