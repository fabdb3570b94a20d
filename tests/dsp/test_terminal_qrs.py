"""The terminal QRS of V1/V2 (r' of right bundle branch block) and the QRS width that reads it.

Synthetic beats with a known r'/R' shape test the measures; two real Challenge records
labelled complete RBBB, whose common QRS offset falls on V1's terminal R', test the chain.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from team_code.classifiers.rulebook import evaluate_rules
from team_code.data.records import load_record
from team_code.dsp.features import (
    RPRIME_DIP_MV,
    TERMINAL_END_FRACTION,
    measure_record,
    rprime_mv,
    terminal_end,
)

FS = 500.0
T_MS = np.arange(-200, 400, 2.0)  # one beat, ms from the R peak, 500 Hz


def _wave(amp: float, centre_ms: float, width_ms: float) -> np.ndarray:
    return amp * np.exp(-0.5 * ((T_MS - centre_ms) / width_ms) ** 2)


def _k(ms: float) -> int:
    return int(np.argmin(np.abs(T_MS - ms)))


def test_rprime_of_rsr_prime_is_the_second_positive_wave():
    rsr = _wave(0.2, -30, 6) + _wave(-0.4, -5, 7) + _wave(0.8, 30, 12)
    assert rprime_mv(rsr[_k(-60) : _k(80)]) == pytest.approx(0.8, abs=0.01)


def test_rprime_of_rsr_prime_smaller_than_r():
    rsr = _wave(1.0, 0, 8) + _wave(-0.5, 25, 6) + _wave(0.3, 50, 8)
    assert rprime_mv(rsr[_k(-40) : _k(90)]) == pytest.approx(0.3, abs=0.01)


def test_notched_r_counts_as_r_prime():
    m_shape = _wave(0.6, -10, 9) + _wave(0.7, 20, 9)  # dip between the humps > 0.05 mV
    w = m_shape[_k(-50) : _k(60)]
    dip = w[_k(-10) - _k(-50) : _k(20) - _k(-50)].min()
    assert 0.6 - dip >= RPRIME_DIP_MV
    assert rprime_mv(w) == pytest.approx(0.7, abs=0.02)


@pytest.mark.parametrize(
    "shape",
    [
        _wave(0.3, -20, 6) + _wave(-1.2, 10, 10),  # rS (normal V1): no r'
        _wave(-0.2, -25, 5) + _wave(1.0, 0, 8),  # qR: one positive wave
        _wave(1.0, 0, 8) + _wave(0.03, 40, 5),  # a ripple smaller than the dip limit
        _wave(0.03, -30, 4) + _wave(-0.8, 0, 8) + _wave(0.3, 35, 8),  # QS + r': no initial r
    ],
)
def test_no_r_prime(shape):
    assert rprime_mv(shape[_k(-60) : _k(80)]) == 0.0


def test_terminal_end_follows_an_r_prime_the_offset_cut():
    """The common offset at the R' peak (+60 ms): the deflection ends where V1 is back within
    TERMINAL_END_FRACTION of its peak-to-peak of the baseline."""
    v1 = _wave(0.15, -30, 6) + _wave(-0.3, -5, 7) + _wave(0.9, 60, 20)
    on, off = _k(-45), _k(60)
    end = terminal_end(v1, on, off, FS)
    pp = v1[on : off + 1].max() - v1[on : off + 1].min()
    # analytic: 0.9 exp(-x^2 / 2 s^2) = f pp  ->  x = s sqrt(2 ln(0.9 / (f pp)))
    expected = 60 + 20 * math.sqrt(2 * math.log(0.9 / (TERMINAL_END_FRACTION * pp)))
    assert T_MS[end] == pytest.approx(expected, abs=4)
    assert T_MS[end] - T_MS[on] > 140


def test_terminal_end_keeps_a_closed_offset():
    v2 = _wave(0.4, -20, 6) + _wave(-1.5, 10, 10)  # rS, back at the baseline by +45 ms
    on, off = _k(-40), _k(45)
    assert terminal_end(v2, on, off, FS) == off


def test_rbbb_rules_read_the_terminal_width():
    """CRBBB needs QRS >= 120 ms: a record whose common QRS reads 84 ms but whose V1 R' ends
    at 130 ms is complete RBBB; the same record with a closed V1 is not."""
    values = {
        "qrs_ms": 84.0,
        "qrs_terminal_ms": 130.0,
        "V1_term_mv": 0.4,
        "V1_rprime_mv": 0.9,
        "V2_rprime_mv": 0.0,
        "I_term_mv": -0.15,
        "V6_term_mv": -0.2,
    }
    crbbb, irbbb = "713427006", "713426002"
    wide = evaluate_rules(values, codes=[crbbb, irbbb])
    assert wide[crbbb]["score"] > 0.75
    assert wide[irbbb]["score"] < 0.2
    closed = evaluate_rules(dict(values, qrs_terminal_ms=84.0), codes=[crbbb])
    assert closed[crbbb]["score"] < 0.1


def test_v2_r_prime_gives_the_rbbb_shape():
    """rsr' in V1 *or V2* (AHA/ACCF/HRS part III)."""
    values = {
        "qrs_ms": 112.0,
        "qrs_terminal_ms": 114.0,
        "V1_term_mv": -0.2,
        "V1_rprime_mv": 0.0,
        "V2_rprime_mv": 0.5,
        "I_term_mv": -0.15,
        "V6_term_mv": -0.2,
    }
    irbbb = "713426002"
    assert evaluate_rules(values, codes=[irbbb])[irbbb]["score"] > 0.4
    assert evaluate_rules(dict(values, V2_rprime_mv=0.0), codes=[irbbb])[irbbb]["score"] < 0.05


@pytest.mark.parametrize("name", ["A0142", "Q0077"])
def test_real_rbbb_terminal_r_prime(challenge_dir, name):
    """Labelled complete RBBB: the common QRS offset falls on V1's broad terminal R'
    (qrs_ms reads under 100 ms); the terminal width follows R' to its end (>= 115 ms) and
    the r' is read."""
    values = measure_record(load_record(challenge_dir / name)).values
    assert values["qrs_ms"] < 100
    assert values["qrs_terminal_ms"] >= 115
    assert values["V1_rprime_mv"] > 0.5


def test_real_normal_record_keeps_its_width(challenge_dir):
    """Sinus rhythm with a normal rS in V1: nothing to extend, no r'."""
    values = measure_record(load_record(challenge_dir / "A0002")).values
    assert values["qrs_terminal_ms"] == values["qrs_ms"]
    assert values["V1_rprime_mv"] == 0.0
