"""AF read on 10-s windows: a paroxysm that a long record's median dilutes is found in the
record's most irregular window (``afw_*``), which only the AF rule reads; a record shorter
than two windows keeps its whole-record values. Synthetic records, and with the shared data
the CPSC 2021 paroxysmal-AF records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from team_code.classifiers.rulebook import default_thresholds, evaluate_rules
from team_code.data import synth
from team_code.dsp.features import AF_WINDOW_KEYS, FeatureConfig, measure, whole_record_af

FS = 500
SINUS = "426783006"


def _af_score(values: dict, code: str = synth.AF) -> float:
    return evaluate_rules(values, default_thresholds(), [code])[code]["score"]


@pytest.fixture(scope="module")
def paroxysm():
    """60 s of regular sinus rhythm at 60 bpm, 20 s of AF at 110/min, 40 s of sinus."""
    parts = [
        synth.synthesize(synth.RecordSpec(heart_rate_bpm=60.0), FS, 60, seed=1)[0],
        synth.synthesize(
            synth.RecordSpec(rhythm="af", heart_rate_bpm=110.0, rr_cv=0.25), FS, 20, seed=3
        )[0],
        synth.synthesize(synth.RecordSpec(heart_rate_bpm=60.0), FS, 40, seed=4)[0],
    ]
    return np.concatenate(parts, axis=1)


def test_a_paroxysm_in_a_long_record_is_read_in_its_window(paroxysm):
    v = measure(paroxysm, FS, synth.LEADS).values
    assert v["rr_irregularity"] < 0.08  # the whole record's median: diluted below the limit
    assert v["afw_rr_irregularity"] > 0.15
    assert v["afw_p_consistency"] < v["p_consistency"]
    assert _af_score(v) > 0.5
    # the whole record still reads as sinus rhythm to the sinus rule (its AF: whole record)
    assert _af_score(v, SINUS) > 0.5
    # without the window the AF rule misses it
    assert _af_score(whole_record_af(v)) < 0.2


@pytest.mark.parametrize("seconds", [10, 19])
def test_a_record_under_two_windows_keeps_its_whole_record_values(seconds):
    x, _ = synth.synthesize(
        synth.RecordSpec(rhythm="af", heart_rate_bpm=100.0, rr_cv=0.2), FS, seconds, seed=5
    )
    v = measure(x, FS, synth.LEADS).values
    for key, whole in AF_WINDOW_KEYS.items():
        assert v[key] == v[whole] or (math.isnan(v[key]) and math.isnan(v[whole])), key


def test_regular_sinus_rhythm_stays_regular_in_every_window():
    x, _ = synth.synthesize(synth.RecordSpec(heart_rate_bpm=70.0), FS, 60, seed=6)
    v = measure(x, FS, synth.LEADS).values
    assert v["afw_rr_irregularity"] < 0.05
    assert _af_score(v) < 0.1


def test_cpsc2021_paroxysms_are_found_and_ectopy_is_not_af(shared_data):
    """Two-lead CPSC 2021 records (I, II): paroxysmal AF records 101_6 (AF 41 % of 112 s)
    and 92_19 (16 % of 362 s), found only in their window; non-AF record 35_6, whose
    irregular rhythm (no AF marked) the whole-record reading took for AF."""
    wfdb = pytest.importorskip("wfdb")
    folder = shared_data / "cpsc2021"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    scores = {}
    for name in ("data_101_6", "data_92_19", "data_35_6"):
        rec = wfdb.rdrecord(str(folder / name))
        v = measure(rec.p_signal.T, rec.fs, ["I", "II"]).values
        scores[name] = (_af_score(whole_record_af(v)), _af_score(v))
    assert scores["data_101_6"][0] < 0.5 < scores["data_101_6"][1]
    assert scores["data_92_19"][0] < 0.5 < scores["data_92_19"][1]
    assert scores["data_35_6"][0] > 0.5 > scores["data_35_6"][1]


@pytest.mark.parametrize("kind", ["white noise", "bursts", "motion"])
def test_a_noisy_stretch_is_not_read_as_af(kind):
    """10 s of noise in a 120-s sinus record: its false detections are unlike the dominant
    QRS, so the window is not read (read, it named AF at 0.93-1.00)."""
    x, _ = synth.synthesize(synth.RecordSpec(heart_rate_bpm=70.0), FS, 120, seed=7)
    rng = np.random.default_rng(0)
    a, b = 50 * FS, 60 * FS
    if kind == "white noise":
        x[:, a:b] += rng.normal(size=(12, b - a))  # 1 mV SD
    elif kind == "bursts":
        for k in range(a, b, 700):
            x[:, k : k + 150] += 2.0 * rng.normal(size=(12, 1)) * np.hanning(150)
    else:  # 1.3-Hz motion of up to 1.5 mV
        t = np.arange(b - a) / FS
        x[:, a:b] += 1.5 * np.sin(2 * np.pi * 1.3 * t)[None] * rng.normal(size=(12, 1))
    v = measure(x, FS, synth.LEADS).values
    assert v["afw_rr_irregularity"] < 0.08
    assert _af_score(v) < 0.1
    unguarded = measure(x, FS, synth.LEADS, FeatureConfig(af_window_dominant=0.0)).values
    assert unguarded["afw_rr_irregularity"] > v["afw_rr_irregularity"]  # the noise's window
