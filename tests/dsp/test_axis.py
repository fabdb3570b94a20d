"""The frontal axis is the angle of the mean vector, not of the raw (I, aVF) pair."""

from __future__ import annotations

import math

import pytest

from team_code.dsp import features


@pytest.mark.parametrize("angle", [-90.0, -45.0, -30.0, 0.0, 30.0, 60.0, 90.0, 120.0, 179.0])
def test_axis_of_a_dipole_is_its_angle(angle):
    """Einthoven's triangle: lead I reads E cos(a), aVF = (II + III) / 2 reads
    sqrt(3)/2 E sin(a). A dipole at -30 deg (the left-axis cut) must read -30, not -26.6."""
    e = 1.7
    ii = e * math.cos(math.radians(angle - 60.0))
    iii = e * math.cos(math.radians(angle - 120.0))
    values = {
        "I_qrs_area_mvms": e * math.cos(math.radians(angle)),
        "aVF_qrs_area_mvms": (ii + iii) / 2,
    }
    assert features._axis(values, "qrs_area_mvms") == pytest.approx(angle, abs=1e-9)


def test_axis_is_nan_without_a_vector():
    assert math.isnan(features._axis({"I_t_mv": 0.0, "aVF_t_mv": 0.0}, "t_mv"))
    assert math.isnan(features._axis({"I_t_mv": 0.3}, "t_mv"))
