"""Where the rhythm has no P waves, no P interval is measured (first-degree AV block and long
PR read the PR interval)."""

from __future__ import annotations

import math

import pytest

from team_code.data.records import load_record
from team_code.dsp import features


@pytest.mark.parametrize(
    ("folder", "name"),
    [("challenge", "A0003"), ("ludb_challenge", "LU0104"), ("ludb_challenge", "LU0044")],
)
def test_no_p_interval_without_p_waves(shared_data, folder, name):
    """A0003 and LU0044 are atrial fibrillation, LU0104 paced: the leads-together
    delineation still finds a P-like wave there, and its PR (228 ms in LU0104, 354 ms in
    LU0044) named first-degree AV block until P absence blanked it."""
    m = features.measure_record(load_record(shared_data / folder / f"{name}.hea"))
    v = m.values
    assert v["p_present"] == 0
    for key in ("p_ms", "pr_ms", "global_p_ms", "global_pr_ms"):
        assert math.isnan(v[key]), key
    assert math.isfinite(v["qrs_ms"]) and math.isfinite(v["qt_ms"])


def test_p_intervals_stay_with_p_waves(shared_data):
    v = features.measure_record(load_record(shared_data / "challenge" / "A0002.hea")).values
    assert v["p_present"] == 1 and 100 < v["pr_ms"] < 250 and 60 < v["p_ms"] < 160
