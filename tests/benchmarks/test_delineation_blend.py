"""The global-boundary blend of benchmarks/delineation_blend.py on beats of known boundaries."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from benchmarks import delineation as bench
from benchmarks import delineation_blend as blend

FS = 500.0


def _beat(r, **offsets):
    """A beat at sample ``r``; each wave's (onset, peak, offset) from ``r`` (None: absent)."""
    waves = {"P": (-80, -60, -40), "QRS": (-20, 0, 30), "T": (100, 150, 200), **offsets}
    arrays = {k: np.array(v, float) + r for k, v in waves.items() if v is not None}
    return bench.Beat(r=float(r), waves=arrays)


def test_blend_moves_each_boundary_from_the_leads_median():
    leads = [_beat(1000, QRS=(-20, 0, 30)), _beat(1000, QRS=(-10, 0, 20)), _beat(1002)]
    rule = _beat(1000, QRS=(-30, 0, 40))  # the rule's extreme onset and offset
    same = blend.blend(rule, leads, 1.0)
    assert all(np.array_equal(same.waves[k], rule.waves[k]) for k in rule.waves)
    typical = blend.blend(rule, leads, 0.0)
    assert typical.waves["QRS"][bench.ON] == 982.0  # the median of 980, 990 and 982
    half = blend.blend(rule, leads, 0.5)
    assert half.waves["QRS"][bench.OFF] == 0.5 * (1030.0 + 1040.0)
    assert half.waves["QRS"][bench.PEAK] == rule.waves["QRS"][bench.PEAK]  # peaks stay
    # a boundary no lead gives stays the rule's; a wave the rule lacks stays absent
    no_p = blend.blend(_beat(1000, P=None), [_beat(1000, P=None)], 0.0)
    assert "P" not in no_p.waves
    nan_t = _beat(1000)
    nan_t.waves["T"][bench.OFF] = math.nan
    kept = blend.blend(_beat(1000, T=(100, 150, 260)), [nan_t], 0.0)
    assert kept.waves["T"][bench.OFF] == 1260.0


def test_overlapping_takes_each_leads_beat_of_that_qrs():
    per_lead = {0: [_beat(500), _beat(1000)], 1: [_beat(1010)], 2: [_beat(1400)]}
    found = blend.overlapping(_beat(1000), per_lead)
    assert sorted(b.r for b in found) == [1000.0, 1010.0]
    assert blend.overlapping(bench.Beat(r=1000.0, waves={}), per_lead) == []


def test_weight_one_gives_the_methods_own_intervals():
    leads = {row: [_beat(1000 + 400 * k + row) for k in range(3)] for row in range(4)}
    beats = [_beat(1000 + 400 * k, QRS=(-30, 0, 40)) for k in range(3)]
    res = SimpleNamespace(beats=beats, per_lead=leads)
    case = SimpleNamespace(ref=[_beat(1000 + 400 * k) for k in range(3)], fs=FS)
    out = blend.errors([(case, res)], [0.0, 1.0])
    # the rule's QRS is 70 samples = 140 ms long, the reference's 50 = 100 ms
    assert out[1.0]["QRS duration"] == [40.0]
    assert out[0.0]["QRS duration"] == [0.0]  # the leads' median is the reference's shape
    text = blend.table(out)
    assert "+40.0 ± nan (1)" in text and text.splitlines()[-1].startswith("IEC")
