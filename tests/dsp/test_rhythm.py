"""Rhythm measurements: RR statistics, premature beats, the AF zero-crossing detector, pacing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from team_code.data import synth
from team_code.dsp import filters, qrs, rhythm


def test_rr_statistics_planted():
    fs = 250.0
    r = np.cumsum([0, 250, 250, 250, 200, 300]) + 100  # RR 1, 1, 1, 0.8, 1.2 s
    s = rhythm.rr_statistics(r, fs)
    assert s["n_beats"] == 6
    assert s["hr_bpm"] == pytest.approx(60.0)
    assert s["rr_range_s"] == pytest.approx(0.4)
    assert s["rr_irregularity"] == pytest.approx(0.1)  # median of |dRR| (0, 0, .2, .4) over 1 s
    assert s["rmssd_ms"] == pytest.approx(math.sqrt((0 + 0 + 0.2**2 + 0.4**2) / 4) * 1e3)
    empty = rhythm.rr_statistics([5], fs)
    assert empty["n_beats"] == 1 and math.isnan(empty["hr_bpm"])


@pytest.mark.parametrize("n_rr", [16, 17, 18])
def test_the_rate_of_an_alternating_rhythm_counts_every_beat(n_rr):
    """Bigeminy, RR 0.65 / 1.10 s: 68.6 beats a minute whatever the count of intervals (with
    an odd count the median RR is the more frequent of the two: 92/min here, and 55.5/min,
    bradycardia, where the long intervals are one more)."""
    fs = 500.0
    rr = np.resize([0.65, 1.10], n_rr)
    s = rhythm.rr_statistics(np.r_[0.0, np.cumsum(rr)] * fs, fs)
    assert s["hr_bpm"] == pytest.approx(60.0 / 0.875, abs=2.0)


def test_a_missed_beat_does_not_move_the_rate():
    """Twelve intervals of 0.8 s and one of 1.6 s (a beat the detector missed): 75/min."""
    fs = 500.0
    rr = np.r_[np.full(6, 0.8), 1.6, np.full(6, 0.8)]
    s = rhythm.rr_statistics(np.r_[0.0, np.cumsum(rr)] * fs, fs)
    assert s["hr_bpm"] == pytest.approx(75.0)


def test_premature_beats():
    r = np.cumsum([0, 100, 100, 100, 70, 130, 100, 100, 100])
    premature = rhythm.premature_beats(r, 100.0)
    assert np.flatnonzero(premature).tolist() == [4]


def _synthetic(rhythm_name: str, seed: int):
    noise = synth.NoiseSpec(white_mv=0.01, emg_mv=0.005)
    spec = synth.RecordSpec(
        rhythm=rhythm_name,
        heart_rate_bpm=80,
        rr_cv=0.15 if rhythm_name == "af" else 0.03,
        noise=noise,
    )
    x, truth = synth.synthesize(spec, 500, 10, seed=seed)
    return filters.clean(x.astype(float), 500), truth


def test_zero_crossings_separate_synthetic_af_from_sinus():
    af = [
        rhythm.derivative_zero_crossings(x[1], 500, t["r_peaks"])
        for x, t in (_synthetic("af", s) for s in range(3))
    ]
    sr = [
        rhythm.derivative_zero_crossings(x[1], 500, t["r_peaks"])
        for x, t in (_synthetic("sinus", s) for s in range(3))
    ]
    assert min(af) > max(sr)
    with pytest.raises(ValueError, match="unknown zero-crossing"):
        rhythm.derivative_zero_crossings(np.zeros(100), 500, [10, 60], method="other")


def test_zero_crossings_on_real_paroxysmal_af(shared_data):
    """CPSC 2021 data_101_6: (AFIB/(N episodes; AF windows count more turning points."""
    wfdb = pytest.importorskip("wfdb")
    path = str(shared_data / "cpsc2021" / "data_101_6")
    rec, ann = wfdb.rdrecord(path), wfdb.rdann(path, "atr")
    fs = float(rec.fs)
    x = filters.clean(rec.p_signal.T, fs)
    af = np.zeros(x.shape[1], bool)
    marks = [(s, n) for s, n in zip(ann.sample, ann.aux_note) if n.startswith("(")]
    for (s, n), (e, _) in zip(marks, [*marks[1:], (x.shape[1], "")]):
        af[s:e] = n.startswith("(AF")
    r = qrs.detect(x, fs)
    win = int(10 * fs)
    zc_af, zc_n = [], []
    for a in range(0, x.shape[1] - win + 1, win // 2):
        frac = af[a : a + win].mean()
        rr = r[(r >= a) & (r < a + win)] - a
        zc = rhythm.derivative_zero_crossings(x[1, a : a + win], fs, rr)
        if frac == 1:
            zc_af.append(zc)
        elif frac == 0:
            zc_n.append(zc)
    assert len(zc_af) >= 3 and len(zc_n) >= 3
    assert np.median(zc_af) > np.median(zc_n) + 1.0


def test_atrial_activity_finds_f_wave_frequency():
    x, t = _synthetic("af", 0)
    from team_code.dsp import beats

    ab = beats.average_beat(x, 500, t["r_peaks"])
    out = rhythm.atrial_activity(x[6], 500, ab.r_peaks, ab.beat_mv[6], ab.r_index, ab.dominant)
    assert 3.0 <= out["atrial_freq_hz"] <= 9.0  # planted f waves: 6 Hz mean, wandering
    assert 0 < out["atrial_organisation"] <= 1


def test_pacing_spikes_found_before_qrs():
    x, t = _synthetic("sinus", 1)
    raw = x.copy()
    for r in t["r_peaks"]:
        if r - 40 >= 0:
            raw[:, r - 40] += 2.0  # a 2 mV one-sample stimulus 80 ms before each R
    paced = rhythm.pacing_spikes(raw, 500, t["r_peaks"])
    plain = rhythm.pacing_spikes(x, 500, t["r_peaks"])
    assert paced["paced_fraction"] >= 0.9
    assert plain["paced_fraction"] == 0.0


@pytest.mark.parametrize("fs", [257.0, 500.0, 1000.0])
def test_pacing_spikes_are_found_at_the_records_own_rate(fs):
    """The same one-sample, 2-mV stimulus 40 ms before every QRS is found in every beat at
    257, 500 and 1000 Hz: resampled to 500 Hz first, about half the spikes were lost at 257 Hz
    (spread over two samples) and at 1000 Hz (kept by their phase)."""
    from team_code.dsp import features

    x, truth = synth.synthesize(synth.RecordSpec(heart_rate_bpm=70), fs, 10, seed=1)
    x = x.astype(float)
    for onset in truth["qrs_onsets"]:
        k = int(onset - round(0.04 * fs))
        if k >= 0:
            x[:, k] += 2.0
    v = features.measure(x, fs, synth.LEADS).values
    assert v["paced_fraction"] >= 0.9
