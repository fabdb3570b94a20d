"""The morphology separability table's T and Q summaries (no data needed)."""

from __future__ import annotations

import math

import numpy as np

from benchmarks.rules_morphology import _derived


def test_t_and_q_summaries_of_the_rules_leads():
    values = [
        # T flat in I and II, negative in V5; a 40 ms, 0.2 mV Q in II and aVF
        {
            "I_lead_t_mv": 0.05,
            "II_lead_t_mv": 0.0,
            "aVF_lead_t_mv": 0.3,
            "V5_lead_t_mv": -0.2,
            "II_lead_q_ms": 40.0,
            "aVF_lead_q_ms": 36.0,
            "II_q_mv": -0.2,
            "aVF_q_mv": -0.25,
        },
        {},  # nothing measured
    ]

    def column(key):
        return np.array([float(v.get(key, math.nan)) for v in values])

    d = _derived(column)
    assert d["leads with T < 0.1 mV"][0] == 3
    assert d["-lowest T"][0] == 0.2
    assert d["longest Q of two contiguous leads"][0] == 36.0
    assert d["deepest Q of two contiguous leads"][0] == 0.2  # the shallower of the pair
    assert all(math.isnan(d[k][1]) for k in d)


def test_axis_bands_count_labelled_and_unlabelled_records_per_source():
    from benchmarks.rules_morphology import AXIS_BANDS, axis_band_counts

    assert AXIS_BANDS[0][0] == -180.0 and AXIS_BANDS[-1][1] > 180.0
    axis = [-45.0, -30.0, -29.9, 0.0, 29.0, 30.0, 95.0, 180.0, math.nan, -10.0]
    lad = [1, 1, 1, 0, 1, 0, 0, 0, 0, 1]
    src = ["X"] * 9 + ["Y"]
    out = axis_band_counts(axis, np.array(lad, bool), src, ["X", "Y"])
    # bands: [-180,-30) [-30,0) [0,30) [30,90) [90,180] not measured
    assert out[0] == ("X", [1, 2, 1, 0, 0, 0], [0, 0, 1, 1, 2, 1])
    assert out[1] == ("Y", [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0])
