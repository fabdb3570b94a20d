"""The two-lead (I, II) rules read everything those leads determine: the six limb leads and
so the frontal axes, the intervals, the rhythm and the ectopy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from team_code.classifiers.measurements import record_measurements
from team_code.classifiers.rules import RulesClassifier
from team_code.context import Task
from team_code.data import synth
from team_code.data.leads import DERIVED_LIMB_LEADS
from team_code.data.records import Record
from team_code.dsp.features import FeatureConfig

FS = 500
TWO = ("I", "II")


def _angle_deg(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.fixture(scope="module")
def lad_record():
    """Left axis deviation (-55 deg) with two PVCs, 20 s."""
    spec = synth.RecordSpec(axis_deg=-55.0, n_pvc=2, heart_rate_bpm=70.0)
    signal, truth = synth.synthesize(spec, FS, 20, seed=4)
    return Record("T0001", signal, FS, synth.LEADS), truth


@pytest.fixture(scope="module")
def measured(lad_record):
    record, _ = lad_record
    config = FeatureConfig()
    twelve = record_measurements(record, config)
    two = record_measurements(record, config, TWO)
    return twelve, two


def test_axis_from_two_leads_matches_twelve(measured, lad_record):
    twelve, two = (m["values"] for m in measured)
    _, truth = lad_record
    assert _angle_deg(two["qrs_axis_deg"], twelve["qrs_axis_deg"]) <= 15.0
    assert _angle_deg(two["qrs_axis_deg"], truth["axis_deg"]) <= 15.0
    assert -90.0 <= two["qrs_axis_deg"] < -30.0  # left axis deviation
    for axis in ("p_axis_deg", "t_axis_deg"):
        assert math.isfinite(two[axis])
        assert _angle_deg(two[axis], twelve[axis]) <= 15.0


def test_limb_leads_derived_from_i_and_ii(measured):
    twelve, two = measured
    for lead in DERIVED_LIMB_LEADS:
        assert f"lead {lead} missing: derived from I and II" in two["notes"]
        assert two["values"][f"{lead}_qrs_pp_mv"] == pytest.approx(
            twelve["values"][f"{lead}_qrs_pp_mv"], rel=0.15, abs=0.05
        )
    assert math.isfinite(two["values"]["limb_qrs_max_mv"])
    assert math.isnan(two["values"]["V1_r_mv"])  # what I and II cannot carry stays NaN


def test_rhythm_intervals_and_ectopy_from_two_leads(measured):
    twelve, two = (m["values"] for m in measured)
    for key in ("hr_bpm", "rr_irregularity", "zc_per_s", "p_consistency"):
        assert math.isfinite(two[key]), key
    assert two["hr_bpm"] == pytest.approx(twelve["hr_bpm"], rel=0.02)
    for key in ("pr_ms", "qrs_ms", "qt_ms", "qtc_bazett_ms"):
        assert math.isfinite(two[key]), key
        assert abs(two[key] - twelve[key]) <= 30.0, key
    assert two["n_pvc"] == twelve["n_pvc"] == 2
    assert two["p_present"] == 1.0


def test_two_lead_rules_find_the_left_axis(lad_record):
    """The rules of a two-lead task score left axis deviation on the record's I and II."""
    record, _ = lad_record
    task = Task(table="2021", leads=TWO)
    rules = RulesClassifier(RulesClassifier.quick_config()).fit([record], task)
    assert rules._leads() == TWO
    scores = np.asarray(rules.predict_proba([record]))[0]
    lad = list(rules.classes_).index(synth.LAD)
    assert scores[lad] > 0.5
