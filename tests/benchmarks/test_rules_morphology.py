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
