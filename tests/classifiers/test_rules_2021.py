"""The rules serve the 2021 table: classes found by equivalence, the LBBB rule under
CLBBB|LBBB, and the new BBB and PRWP rules, on constructed measurements and synthetic records.

The measurement dicts below are written by hand in the units of
:func:`team_code.dsp.features.measure` (the synthetic generator plants no bundle branch block
or R progression): a bundle-branch shape is the handful of per-lead values its rule reads.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation.tables import TABLE_DIRS
from team_code.classifiers.rules import (
    RulesClassifier,
    evaluate_rules,
    rule_for_class,
)
from team_code.context import Task
from team_code.data import synth
from team_code.data.labels import label_matrix, scored_classes, table_for
from team_code.data.records import Record

S2020 = scored_classes()
S2021 = scored_classes(TABLE_DIRS["2021"] / "weights.csv")
CLBBB, LBBB, BBB, PRWP = "733534002", "164909002", "6374002", "365413008"
CRBBB, NSIVCB = "713427006", "698252002"

RBBB_SHAPE = {  # rsR' in V1 with a positive end of QRS, slurred terminal S in I and V6
    "V1_term_mv": 0.3,
    "V1_rprime_mv": 0.5,
    "I_term_mv": -0.15,
    "V6_term_mv": -0.15,
    "V1_qrs_area_mvms": 10.0,
    "I_q_mv": -0.1,
    "V6_q_mv": -0.1,
}
LBBB_SHAPE = {  # QS in V1, upright end of QRS in I and V6, no q in I and V6
    "V1_term_mv": -0.3,
    "V1_rprime_mv": 0.0,
    "I_term_mv": 0.25,
    "V6_term_mv": 0.25,
    "V1_qrs_area_mvms": -50.0,
    "I_q_mv": 0.0,
    "V6_q_mv": 0.0,
}
NEITHER_SHAPE = {  # negative end of QRS everywhere, q in I and V6: no bundle-branch pattern
    "V1_term_mv": -0.2,
    "V1_rprime_mv": 0.0,
    "I_term_mv": 0.0,
    "V6_term_mv": 0.0,
    "V1_qrs_area_mvms": 5.0,
    "I_q_mv": -0.2,
    "V6_q_mv": -0.2,
}


def _score(values: dict, code: str, scored=S2021) -> float:
    return evaluate_rules(values, codes=[code], scored=scored)[code]["score"]


def test_every_class_of_both_tables_finds_its_rule_through_its_equivalents():
    for scored in (S2020, S2021):
        missing = [
            a for c, a in zip(scored.codes, scored.abbreviations) if not rule_for_class(c, scored)
        ]
        assert not missing, missing
    # 2020: each rule is keyed by the class's own representative
    assert all(rule_for_class(c, S2020).code == c for c in S2020.codes)
    # 2021: CLBBB|LBBB is served by the LBBB rule under either code of the class
    assert (
        rule_for_class(CLBBB, S2021) is rule_for_class(LBBB, S2021) is rule_for_class(LBBB, S2020)
    )
    assert rule_for_class(CLBBB, S2020) is None  # 733534002 is not scored in 2020
    assert table_for(S2020.codes) is S2020 and table_for(S2021.codes) is S2021


@pytest.mark.parametrize("qrs_ms", [100.0, 125.0, 150.0])
def test_lbbb_rule_scores_the_2021_class_exactly_as_the_2020_one(qrs_ms):
    values = dict(LBBB_SHAPE, qrs_ms=qrs_ms)
    in_2020 = evaluate_rules(values, codes=[LBBB], scored=S2020)[LBBB]
    in_2021 = evaluate_rules(values, codes=[CLBBB], scored=S2021)[CLBBB]
    assert in_2021 == in_2020  # same score, same terms
    assert (in_2021["score"] >= 0.5) == (qrs_ms >= 120)
    # without a table given, the classes choose it
    assert evaluate_rules(values, codes=[CLBBB])[CLBBB]["score"] == in_2020["score"]


@pytest.mark.parametrize(
    ("shape", "qrs_ms", "bbb", "crbbb", "lbbb"),
    [
        (RBBB_SHAPE, 140.0, True, True, False),
        (LBBB_SHAPE, 150.0, True, False, True),
        (RBBB_SHAPE, 95.0, False, False, False),  # right-bundle shape, narrow QRS
        (LBBB_SHAPE, 95.0, False, False, False),
        (NEITHER_SHAPE, 140.0, False, False, False),  # wide without either shape: NSIVCB
    ],
    ids=["RBBB", "LBBB", "narrow RBBB shape", "narrow LBBB shape", "wide, neither"],
)
def test_bbb_is_a_wide_qrs_with_either_bundle_branch_shape(shape, qrs_ms, bbb, crbbb, lbbb):
    values = dict(shape, qrs_ms=qrs_ms)
    fired = {code: _score(values, code) >= 0.5 for code in (BBB, CRBBB, CLBBB, NSIVCB)}
    assert fired[BBB] == bbb and fired[CRBBB] == crbbb and fired[CLBBB] == lbbb
    # the parent concept holds wherever either complete block does, and never with NSIVCB
    assert fired[BBB] == (fired[CRBBB] or fired[CLBBB])
    assert not (fired[BBB] and fired[NSIVCB])
    assert fired[NSIVCB] == (qrs_ms > 120 and shape is NEITHER_SHAPE)


def _r(v1, v2, v3, v4) -> dict:
    return {"V1_r_mv": v1, "V2_r_mv": v2, "V3_r_mv": v3, "V4_r_mv": v4}


@pytest.mark.parametrize(
    ("r", "fires"),
    [
        (_r(0.05, 0.1, 0.15, 0.9), True),  # small R in V1-V3
        (_r(0.0, 0.0, 0.0, 0.2), True),  # QS V1-V3
        (_r(0.3, 0.8, 0.5, 1.2), True),  # R in V3 above 3 mm but falling from V2 (reversed)
        (_r(0.2, 0.6, 1.0, 0.6), True),  # falling from V3 to V4
        (_r(0.2, 0.5, 0.9, 1.4), False),  # normal progression
        (_r(0.6, 0.4, 0.8, 1.2), False),  # a tall R (or R') in V1 alone is no reversal here
    ],
)
def test_prwp_fires_on_small_or_reversed_r_progression(r, fires):
    result = evaluate_rules(r, codes=[PRWP], scored=S2021)[PRWP]
    assert (result["score"] >= 0.5) == fires, result["terms"]
    if fires:
        assert any(t["role"] == "for" for t in result["terms"])
    else:
        assert all(t["role"] == "against" for t in result["terms"])


def test_prwp_without_v3_is_not_measurable():
    result = evaluate_rules(_r(0.1, 0.2, np.nan, 0.9), codes=[PRWP], scored=S2021)[PRWP]
    assert result["score"] == 0.0
    assert "V3_r_mv" in result["missing"] and "V2_r_mv - V3_r_mv" in result["missing"]


def test_label_matrix_merges_with_the_table_it_is_given():
    labels = [(LBBB,), (CLBBB,), ("426783006",)]
    merged = label_matrix(labels, [CLBBB], scored=S2021)
    np.testing.assert_array_equal(merged[:, 0], [True, True, False])
    np.testing.assert_array_equal(label_matrix(labels, [LBBB])[:, 0], [True, False, False])


NOISE = synth.NoiseSpec(white_mv=0.01, emg_mv=0.01, baseline_mv=0.05, powerline_mv=0.01)


def _record(name, seed, extra=(), **kw) -> Record:
    spec = synth.RecordSpec(noise=NOISE, **kw)
    x, _ = synth.synthesize(spec, 500, 10, seed=seed)
    labels = spec.labels() + tuple(extra)
    return Record(name, x, 500.0, synth.LEADS, 60, "Male", labels)


def test_fit_for_the_2021_classes_scores_all_26_and_survives_save_load(tmp_path):
    records = [
        _record("A0001", 0, heart_rate_bpm=75),
        _record("A0002", 1, (LBBB,), qrs_ms=150),  # the 2020 code of CLBBB|LBBB
        _record("E0001", 2, (BBB,), qrs_ms=140, pr_ms=240),
        _record("E0002", 3, (PRWP,), heart_rate_bpm=50),
        _record("HR0001", 4, (CLBBB,), qrs_ms=150, axis_deg=-50),
        _record("HR0002", 5, rhythm="af", heart_rate_bpm=95, rr_cv=0.2),
    ]
    model = RulesClassifier(RulesClassifier.Config(tune=True, min_positives=2)).fit(
        records, Task("2021")
    )
    scores = model.predict_proba(records)
    assert scores.shape == (len(records), 26)
    assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))
    assert model.thresholds_.shape == (26,)
    # every 2021 class has a rule, and the LBBB rule was tuned for CLBBB|LBBB from both codes
    assert len(model.summary()["rules"]) == 26
    assert CLBBB in model.tuning_ and LBBB in model.rule_thresholds_
    out = model.explain(records[1])
    json.dumps(out, allow_nan=False)
    by_code = {r["code"]: r for r in out["rules"]}
    assert len(by_code) == 26
    assert by_code[CLBBB]["abbreviation"] == "CLBBB|LBBB" and by_code[CLBBB]["rule"] == LBBB
    assert by_code[BBB]["abbreviation"] == "BBB" and by_code[PRWP]["abbreviation"] == "PRWP"
    model.save(tmp_path)
    loaded = RulesClassifier.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(records[:2]), scores[:2])


def test_challenge_decision_weighs_with_the_2021_table():
    records = [_record("A0001", 0), _record("A0002", 1, (BBB,), qrs_ms=150)]
    config = RulesClassifier.Config(tune=False, decision="challenge")
    model = RulesClassifier(config).fit(records, Task("2021"))
    assert model.thresholds_.shape == (26,) and model.task_.scored is S2021


def test_fit_for_the_2020_classes_reads_the_2020_table():
    model = RulesClassifier(RulesClassifier.quick_config()).fit([], Task("2020"))
    assert model.task_.scored is S2020
    out = model.explain(_record("A0001", 0))
    assert [r["abbreviation"] for r in out["rules"]] == list(S2020.abbreviations)
    assert all(r["rule"] == r["code"] for r in out["rules"])
