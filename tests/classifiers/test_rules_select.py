"""The rules' choice of their decision variant in training (``decision_select``): each source
decided by every variant fitted without it, the one-standard-error rule over the variants,
the tunings shared, the choice saved with the model."""

from __future__ import annotations

import numpy as np
import pytest

from team_code.classifiers.cv import signal_digests
from team_code.classifiers.hybrid import first_within_one_se
from team_code.classifiers.rules import DECISION_VARIANTS, RulesClassifier
from team_code.context import Task
from tests.classifiers.test_rules import CLASSES, _pr_record, _record_tunings

SELECT = ",".join(DECISION_VARIANTS)


@pytest.fixture(scope="module")
def measured():
    """Twelve PR records of three sources, measured once: (names, values, truth, digests)."""
    pr = {
        "A": (150, 230, 260, 170),
        "E": (160, 240, 250, 155),
        "Q": (165, 235, 245, 150),
    }
    records = [
        _pr_record(f"{source}{i:04d}", seed=4 * k + i, pr_ms=ms)
        for k, (source, values) in enumerate(pr.items())
        for i, ms in enumerate(values)
    ]
    model = RulesClassifier(RulesClassifier.Config())
    model.fit([], Task.of_classes(CLASSES))
    values = model._measured(records)
    truth = model.label_matrix(records)
    return [r.name for r in records], values, truth, signal_digests(records), records


def _fitted(config, names, values, truth, digests, rows):
    model = RulesClassifier(config)
    model.fit([], Task.of_classes(CLASSES))
    return model.fit_values(
        [values[i] for i in rows], truth[rows], [names[i] for i in rows], [digests[i] for i in rows]
    )


@pytest.mark.parametrize("select", ["voting", "half,half", "configured,,bagged"])
def test_decision_select_names_distinct_known_variants(select):
    with pytest.raises(ValueError, match="decision_select"):
        RulesClassifier.Config(decision_select=select)


def test_the_choice_is_each_variant_fitted_without_each_source(measured):
    """The selection equals its definition computed the long way: for every source, each
    variant fitted afresh on the other sources decides it; the first variant within one
    standard error of the best is kept; the model then decides as that variant fitted on all
    the records does."""
    names, values, truth, digests, _ = measured
    config = RulesClassifier.Config(min_positives=2, decision_select=SELECT)
    model = _fitted(config, names, values, truth, digests, np.arange(len(names)))
    sources = np.array([n[0] for n in names])
    outputs = {}
    for name, options in DECISION_VARIANTS.items():
        variant = RulesClassifier.Config(min_positives=2, **options)
        decided = np.zeros(truth.shape, bool)
        for source in sorted(set(sources)):
            test = np.flatnonzero(sources == source)
            other = _fitted(
                variant, names, values, truth, digests, np.flatnonzero(sources != source)
            )
            decided[test] = other.decide(other._scores_from_values([values[i] for i in test]))
        outputs[name] = decided
    chosen, se = first_within_one_se(outputs, truth, CLASSES)
    selection = model.decision_selection_
    assert selection["chosen"] == chosen
    assert selection["groups"] == ["A", "E", "Q"]
    assert selection["se"] == pytest.approx(se)
    assert len({round(v, 9) for v in selection["inner"].values()}) > 1  # the variants differ
    alone = _fitted(
        RulesClassifier.Config(min_positives=2, **DECISION_VARIANTS[chosen]),
        names,
        values,
        truth,
        digests,
        np.arange(len(names)),
    )
    np.testing.assert_array_equal(model.thresholds_, alone.thresholds_)
    assert model.rule_thresholds_ == alone.rule_thresholds_


def test_the_choice_reuses_every_tuning(monkeypatch, measured):
    """Three sources: the rules are tuned once on all the records, once without each source
    and once without each pair of sources (seven tunings), however many variants compete."""
    *_, records = measured
    tuned_on = _record_tunings(monkeypatch)
    config = RulesClassifier.Config(min_positives=2, decision_select=SELECT)
    RulesClassifier(config).fit(records, Task.of_classes(CLASSES))
    left_out = sorted(
        "".join(sorted({n[0] for n in (r.name for r in records)} - {n[0] for n in names}))
        for names in tuned_on
    )
    assert left_out == ["", "A", "AE", "AQ", "E", "EQ", "Q"]


def test_the_choice_is_saved_with_the_model(tmp_path, measured):
    names, values, truth, digests, records = measured
    config = RulesClassifier.Config(min_positives=2, decision_select="half,configured")
    model = _fitted(config, names, values, truth, digests, np.arange(len(names)))
    model.save(tmp_path / "rules")
    loaded = RulesClassifier.load(tmp_path / "rules")
    assert loaded.decision_selection_ == model.decision_selection_
    assert list(loaded.decision_selection_["inner"]) == ["half", "configured"]
    np.testing.assert_array_equal(
        loaded.decide(loaded.predict_proba(records)), model.decide(model.predict_proba(records))
    )


def test_the_one_se_choice_does_not_hang_on_the_order_of_tied_best_variants():
    """B and C tie for the best with different records; the first listed variant F is within
    one standard error of B (its 10 detections are among B's 12) though not of C: F is kept
    whichever of B and C is listed first."""
    task = Task("2020")
    classes = list(task.classes)
    af = classes.index("164889003")
    n = 20
    truth = np.zeros((n, len(classes)), bool)
    truth[:, af] = True

    def found(rows):
        b = np.zeros_like(truth)
        b[list(rows), af] = True
        return b

    variants = {"F": found(range(10)), "B": found(range(12)), "C": found([*range(10, 20), 0, 1])}
    for order in (("F", "B", "C"), ("F", "C", "B")):
        chosen, se = first_within_one_se({k: variants[k] for k in order}, truth, classes)
        assert chosen == "F", order
        assert se[order[1]] == 0.0  # the standard errors are against the first listed best


def test_one_variant_named_is_the_one_that_decides(measured):
    """decision_select=vote alone (the operating thresholds, the default before) decides as
    decision_policy=thresholds does, not as the configured default."""
    names, values, truth, digests, _ = measured
    rows = np.arange(len(names))
    one = _fitted(
        RulesClassifier.Config(min_positives=2, decision_select="vote"),
        names, values, truth, digests, rows,
    )  # fmt: skip
    plain = _fitted(
        RulesClassifier.Config(min_positives=2, decision_policy="thresholds"),
        names, values, truth, digests, rows,
    )  # fmt: skip
    assert one.policy_ is None and RulesClassifier.Config().decision_policy == "expected"
    np.testing.assert_array_equal(one.thresholds_, plain.thresholds_)
