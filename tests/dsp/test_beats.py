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


def _bigeminy(fs: float = FS, n_pairs: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Two leads of ventricular bigeminy: a narrow conducted beat (40-ms QRS, upright T) after
    a 1.1-s pause, a wide ectopic one (120 ms, negative, discordant T) 0.65 s after it. The
    ectopic beats are identical; two conducted beats of nine are wider (aberrant), so the
    ectopic beats have more look-alikes. Returns the signal and the R peaks."""
    rr = np.tile([0.65, 1.1], n_pairs)
    r = (0.6 + np.r_[0.0, np.cumsum(rr)[:-1]]) * fs
    x = np.zeros((2, int(r[-1] + 1.2 * fs)))
    t = np.arange(x.shape[1])
    for k, rk in enumerate(r):
        if k % 2 == 0:  # conducted
            width, amp, t_amp = (0.025 if k in (4, 10) else 0.010), 1.0, 0.25
        else:  # ectopic
            width, amp, t_amp = 0.030, -1.2, 0.4
        qrs_wave = amp * np.exp(-0.5 * ((t - rk) / (width * fs)) ** 2)
        t_wave = np.sign(amp) * t_amp * np.exp(-0.5 * ((t - rk - 0.3 * fs) / (0.05 * fs)) ** 2)
        x += np.stack([qrs_wave + t_wave, 0.7 * qrs_wave + 0.5 * t_wave])
    return x, r.astype(int)


def test_in_ventricular_bigeminy_the_conducted_beats_are_dominant():
    """Half the beats ectopic, those more alike than the conducted ones: the morphology of the
    beats that come on time is the dominant one, and the average beat is a conducted beat."""
    x, r = _bigeminy()
    ab = beats.average_beat(x, FS, r)
    conducted = np.arange(r.size) % 2 == 0
    assert not ab.dominant[~conducted].any()
    assert ab.dominant[conducted].sum() >= 7  # the aberrant two may fall out
    assert ab.beat_mv[0, ab.r_index] > 0.5  # an upright narrow QRS, not the ectopic one


def test_a_real_bigeminy_counts_ventricular_ectopics(challenge_dir):
    """A0012 (labelled ventricular ectopics) alternates RR 0.65 / 1.10 s: 9 premature beats of
    another morphology (PVCs), none of the dominant one (PACs); the QRS is the conducted
    beat's. Counting every look-alike, the ectopic beats were dominant: 9 PACs, no PVC, QRS
    154 ms."""
    from team_code.data.records import load_record
    from team_code.dsp import features

    v = features.measure_record(load_record(challenge_dir / "A0012.hea")).values
    assert (v["n_pvc"], v["n_pac"]) == (9, 0)
    assert v["qrs_ms"] < 110


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


def test_beats_that_do_not_repeat_are_told_from_a_heart_s_beats():
    """Repeating beats (sinus, and bigeminy's two morphologies) have look-alikes; windows of
    noise at the same instants do not (alike_fraction)."""
    clean, _ = _record(heart_rate_bpm=70)
    assert beats.average_beat(clean, FS, qrs.detect(clean, FS)).alike_fraction == 1.0
    x, r = _bigeminy()
    assert beats.average_beat(x, FS, r).alike_fraction == 1.0
    rng = np.random.default_rng(0)
    noise = filters.clean(np.cumsum(rng.normal(0, 0.05, (12, 5000)), axis=1), FS)
    ab = beats.average_beat(noise, FS, np.arange(400, 4600, 400))
    assert ab.alike_fraction < 0.5


def test_a_record_whose_beats_do_not_repeat_is_noted(challenge_dir):
    """A0115: motion artefact of several millivolts on the chest leads, below 40 Hz (no lead
    reads noisy), so that 3 of its 48 beats form the 'dominant morphology' and every
    morphology rule reads that average of noise. Its beats do not repeat, and a note says
    that what is read on the average beat is unreliable; a clean record has no such note."""
    from team_code.data.records import load_record
    from team_code.dsp import features

    m = features.measure_record(load_record(challenge_dir / "A0115.hea"))
    assert m.values["alike_fraction"] < 0.5
    assert any("beats do not repeat" in n for n in m.notes)
    m = features.measure_record(load_record(challenge_dir / "A0012.hea"))
    assert m.values["alike_fraction"] >= 0.5 and m.values["n_pvc"] == 9
    assert not any("beats do not repeat" in n for n in m.notes)
