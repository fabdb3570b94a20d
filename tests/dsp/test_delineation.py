"""Delineation on synthetic beats with planted PR and QRS, QTc formulas, real records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from team_code.data import synth
from team_code.data.records import load_record
from team_code.dsp import delineation, features

NOISE = synth.NoiseSpec(white_mv=0.01, emg_mv=0.01, baseline_mv=0.1, powerline_mv=0.02)


@pytest.mark.parametrize("fs", [257.0, 500.0, 1000.0])
@pytest.mark.parametrize(("pr_ms", "qrs_ms"), [(130, 80), (200, 110), (280, 140)])
def test_planted_pr_qrs_axis_rate(fs, pr_ms, qrs_ms):
    spec = synth.RecordSpec(
        pr_ms=pr_ms, qrs_ms=qrs_ms, axis_deg=pr_ms - 200, heart_rate_bpm=80, noise=NOISE
    )
    x, truth = synth.synthesize(spec, fs, 10, seed=1)
    v = features.measure(x, fs, synth.LEADS).values
    # measured errors on this grid (seed 1): PR -8..-2 ms, QRS 0..+12 ms, axis within 1.1 deg
    assert abs(v["pr_ms"] - pr_ms) <= 16
    assert abs(v["qrs_ms"] - qrs_ms) <= 16
    assert abs(v["qrs_axis_deg"] - spec.axis_deg) <= 5
    assert abs(v["hr_bpm"] - 80) <= 3
    assert v["n_beats"] == len(truth["r_peaks"])


def test_qtc_formulas():
    assert delineation.qtc(400.0, 1.0, "bazett1920") == pytest.approx(400.0)
    assert delineation.qtc(400.0, 0.64, "bazett1920") == pytest.approx(500.0)
    assert delineation.qtc(400.0, 0.512, "fridericia1920") == pytest.approx(500.0)
    assert delineation.qtc(400.0, 0.5, "framingham1992") == pytest.approx(477.0)
    assert math.isnan(delineation.qtc(math.nan, 1.0))
    with pytest.raises(ValueError, match="unknown QTc"):
        delineation.qtc(400.0, 1.0, "hodges")


def test_flat_beat_gives_nan():
    d = delineation.delineate(np.zeros((8, 500)), 500.0, 225, 0.8)
    assert math.isnan(d.qrs_ms) and math.isnan(d.pr_ms) and math.isnan(d.qt_ms)


def test_missing_p_wave_in_af_gives_no_or_inconsistent_p():
    spec = synth.RecordSpec(rhythm="af", heart_rate_bpm=90, rr_cv=0.2, noise=NOISE)
    x, _ = synth.synthesize(spec, 500, 10, seed=2)
    v = features.measure(x, 500, synth.LEADS).values
    assert math.isnan(v["p_consistency"]) or v["p_consistency"] < 0.6


def test_real_sinus_record_intervals_plausible(challenge_dir):
    # A0002: CPSC 2018, labelled sinus rhythm (426783006) only
    v = features.measure_record(load_record(challenge_dir / "A0002.hea")).values
    assert 120 <= v["pr_ms"] <= 220
    assert 60 <= v["qrs_ms"] <= 110
    assert 340 <= v["qtc_bazett_ms"] <= 460
    assert 60 <= v["hr_bpm"] <= 100
    assert -30 <= v["qrs_axis_deg"] <= 90


def test_real_lbbb_record_has_wide_qrs(challenge_dir):
    # the first record labelled LBBB only; LBBB records measured QRS 128-168 ms but one (86 ms)
    import csv

    with open(challenge_dir / "MANIFEST.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["dx_snomed"] == "164909002"]
    assert rows, "no LBBB-only record in the manifest"
    v = features.measure_record(load_record(challenge_dir / f"{rows[0]['record']}.hea")).values
    assert v["qrs_ms"] >= 120
