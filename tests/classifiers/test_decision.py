"""team_code.classifiers.decision: one decision-policy interface (per-class thresholds equal to
the functions they wrap, the joint expected-metric decision, calibration fitted only on the
scores it is given, JSON round trips) and the rules classifier's ``decision_policy`` option."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

from team_code.classifiers import decision
from team_code.classifiers.decision import (
    Calibrator,
    ExpectedMetricPolicy,
    ThresholdPolicy,
    expected_metric_labels,
    make_policy,
    policy_from_json,
)
from team_code.context import Task
from team_code.data.labels import scored_classes


@pytest.fixture(scope="module")
def held_out():
    """Scores, truth and source groups of 150 records over the 2020 classes: the positives'
    scores run higher, with noise."""
    classes = list(scored_classes().codes)
    rng = np.random.default_rng(7)
    truth = rng.random((150, len(classes))) < np.linspace(0.02, 0.3, len(classes))
    scores = np.clip(0.35 * truth + rng.random(truth.shape) * 0.7, 0, 1)
    groups = np.array(["A", "E", "HR", "Q", "S"])[rng.integers(0, 5, len(truth))]
    return scores, truth, groups, Task.of_classes(classes)


@pytest.mark.parametrize(
    ("objective", "min_positives", "vocabulary"), [("vote", 3, False), ("pooled", 8, True)]
)
def test_threshold_policy_equals_the_rules_operating_thresholds(
    held_out, objective, min_positives, vocabulary
):
    from team_code.classifiers.rules import operating_thresholds

    scores, truth, groups, task = held_out
    classes = list(task.classes)
    expected = operating_thresholds(
        truth, scores, classes, min_positives, groups, vocabulary, task.scored, objective, groups
    )
    policy = ThresholdPolicy(objective, min_positives, vocabulary).fit(scores, truth, groups, task)
    np.testing.assert_array_equal(policy.thresholds_, expected)
    np.testing.assert_array_equal(policy.apply(scores), scores >= expected)
    assert (expected != 0.5).any()  # the search moved something: the comparison is not vacuous


def test_threshold_policy_equals_thresholds_py(held_out):
    from team_code.classifiers.thresholds import challenge_thresholds, youden_thresholds

    scores, truth, groups, task = held_out
    start = np.full(len(task.classes), 0.5)
    reference = challenge_thresholds(
        truth, scores, list(task.classes), start=start, scored=task.scored
    )
    fitted = make_policy("challenge").fit(scores, truth, groups, task)
    np.testing.assert_array_equal(fitted.thresholds_, reference)
    fitted = make_policy("youden").fit(scores, truth, groups, task)
    np.testing.assert_array_equal(fitted.thresholds_, youden_thresholds(truth, scores))
    fitted = make_policy("half").fit(scores, truth, groups, task)
    np.testing.assert_array_equal(fitted.apply(scores), scores >= 0.5)


@pytest.mark.parametrize("vote", [None, "net", "majority"])
def test_challenge_policy_with_a_start_min_positives_and_a_vote(held_out, vote):
    """``start``, ``min_positives`` and ``vote`` reach the search as its own arguments; the
    groups are read only with a vote."""
    from team_code.classifiers.thresholds import NEVER, challenge_thresholds

    scores, truth, groups, task = held_out
    start = np.where(np.arange(len(task.classes)) % 3 == 0, NEVER, 0.0)
    reference = challenge_thresholds(
        truth,
        scores,
        list(task.classes),
        start=start,
        min_positives=12,
        scored=task.scored,
        groups=None if vote is None else groups,
        vote=vote or "net",
    )
    policy = make_policy("challenge", start=start, min_positives=12, vote=vote)
    np.testing.assert_array_equal(policy.fit(scores, truth, groups, task).thresholds_, reference)
    assert (reference != start).any() and (reference == start).any()
    restored = policy_from_json(json.loads(json.dumps(policy.to_json())))
    assert restored.options() == policy.options()
    with pytest.raises(ValueError, match="start has 2 thresholds"):
        make_policy("challenge", start=[0.1, 0.2]).fit(scores, truth, groups, task)
    with pytest.raises(ValueError, match="vote must be"):
        make_policy("challenge", vote="most")


def test_policy_names_are_checked_against_the_named_policies():
    assert decision.check_policy_name("youden", decision.SCORE_THRESHOLD_POLICIES) == "youden"
    with pytest.raises(ValueError, match=r"unknown threshold_method 'vote'; known: challenge"):
        decision.check_policy_name("vote", ("challenge", "youden"), "threshold_method")
    with pytest.raises(ValueError, match=r"not names in decision\.NAMED_POLICIES"):
        decision.check_policy_name("f1", ("f1",))


def _exact_expected(p: np.ndarray, outputs: np.ndarray, weights: np.ndarray) -> float:
    """The expected observed challenge score of ``outputs`` by enumerating every label set."""
    value = 0.0
    for labels in itertools.product([False, True], repeat=len(p)):
        labels = np.array(labels)
        probability = np.prod(np.where(labels, p, 1 - p))
        union = max(int((labels | outputs).sum()), 1)
        value += probability * (labels @ weights @ outputs) / union
    return value


PARTIAL = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.5, 1.0]])


@pytest.mark.parametrize(
    ("weights", "p"),
    [
        (PARTIAL, [0.6, 0.3, 0.3]),  # partial credit: both related classes pay together
        (np.eye(3), [0.6, 0.3, 0.3]),  # without it, only the likely class
        (PARTIAL, [0.05, 0.9, 0.2]),
        (np.eye(3), [0.05, 0.45, 0.6]),
    ],
)
def test_joint_decision_picks_the_label_set_with_the_higher_expected_score(weights, p):
    p = np.array(p)
    candidates = [np.array(o, bool) for o in itertools.product([False, True], repeat=3)]
    values = [_exact_expected(p, o, weights) for o in candidates]
    best = candidates[int(np.argmax(values))]
    assert sorted(values)[-1] - sorted(values)[-2] > 0.02  # a clear winner
    chosen = expected_metric_labels(p[None, :], weights, top_k=3, n_samples=20000)[0]
    np.testing.assert_array_equal(chosen, best)


def test_partial_credit_changes_the_joint_decision():
    p = np.array([[0.6, 0.3, 0.3]])
    with_credit = expected_metric_labels(p, PARTIAL, top_k=3, n_samples=20000)[0]
    without = expected_metric_labels(p, np.eye(3), top_k=3, n_samples=20000)[0]
    np.testing.assert_array_equal(with_credit, [True, True, True])
    np.testing.assert_array_equal(without, [True, False, False])
    # per-class thresholds at 0.5 fire the same classes whatever the weights
    np.testing.assert_array_equal(p[0] >= 0.5, [True, False, False])


def test_a_record_is_decided_alone(held_out):
    """A record's labels do not depend on the records applied with it."""
    scores, truth, groups, task = held_out
    policy = make_policy("expected").fit(scores, truth, groups, task)
    together = policy.apply(scores[:20])
    alone = np.array([policy.apply(scores[i : i + 1])[0] for i in range(20)])
    np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_is_monotone_and_tracks_the_frequency(method):
    rng = np.random.default_rng(3)
    s = rng.random((4000, 1))
    y = rng.random((4000, 1)) < s**2  # true probability s^2: the raw score overstates it
    calibrator = Calibrator(method).fit(s, y)
    grid = np.linspace(0, 1, 21)[:, None]
    p = calibrator.transform(grid)[:, 0]
    assert np.all(np.diff(p) >= -1e-12)
    assert np.all((p > 0) & (p < 1))
    middle = calibrator.transform(np.array([[0.5]]))[0, 0]
    assert abs(middle - 0.25) < 0.08  # near s^2, far from the raw 0.5


def test_a_class_without_positives_gets_a_small_probability():
    s = np.linspace(0, 1, 50)[:, None]
    y = np.zeros_like(s, dtype=bool)
    for method in ("platt", "isotonic"):
        p = Calibrator(method).fit(s, y).transform(s)
        assert np.all(p < 0.1)


@pytest.mark.parametrize("name", ["expected", "expected-isotonic", "vote"])
def test_held_out_labels_never_reach_the_policy_fitted_elsewhere(held_out, name):
    """Out-of-group decisions: shuffling the labels of the held-out group changes neither the
    policy fitted on the other groups nor its decisions on the held-out group."""
    scores, truth, groups, task = held_out
    held = groups == "Q"
    first = decision.out_of_group_labels(name, scores, truth, groups, task)
    shuffled = truth.copy()
    shuffled[held] = np.random.default_rng(1).permutation(truth[held], axis=0)[:, ::-1]
    assert not np.array_equal(shuffled, truth)
    second = decision.out_of_group_labels(name, scores, shuffled, groups, task)
    np.testing.assert_array_equal(first["labels"][held], second["labels"][held])
    assert first["policies"]["Q"].to_json() == second["policies"]["Q"].to_json()
    # the policies that trained on Q's labels are the ones that may change
    assert first["policies"]["A"].to_json() != second["policies"]["A"].to_json() or name == "vote"


@pytest.mark.parametrize("name", list(decision.NAMED_POLICIES))
def test_json_round_trip(held_out, name):
    scores, truth, groups, task = held_out
    policy = make_policy(name).fit(scores, truth, groups, task)
    restored = policy_from_json(json.loads(json.dumps(policy.to_json())))
    assert type(restored) is type(policy)
    np.testing.assert_array_equal(restored.apply(scores), policy.apply(scores))


def test_bad_names_and_inputs_are_refused(held_out):
    scores, truth, groups, task = held_out
    with pytest.raises(ValueError, match=r"unknown decision policy 'nope'.*expected"):
        make_policy("nope")
    with pytest.raises(ValueError, match="threshold method"):
        ThresholdPolicy("median")
    with pytest.raises(ValueError, match="calibration"):
        ExpectedMetricPolicy("beta")
    with pytest.raises(ValueError, match="kind"):
        policy_from_json({"kind": "nope", "state": {}})
    with pytest.raises(ValueError, match=r"truth .* and scores .* differ"):
        make_policy("expected").fit(scores, truth[:, :3], groups, task)
    bad = scores.copy()
    bad[4, 2] = np.nan
    with pytest.raises(ValueError, match="record 4, class 2 is not finite"):
        make_policy("expected").fit(bad, truth, groups, task)


def test_rules_decision_policy_option(records_dir, tmp_path):
    """rules.decision_policy=expected (the default): fitted on the held-out scores the
    operating thresholds use, applied by predict and decide, saved and loaded with the model;
    "thresholds" labels at the same operating thresholds."""
    from team_code.classifiers.rules import RulesClassifier
    from team_code.data.records import RecordSet, find_records

    records = list(RecordSet(find_records(records_dir)))[:24]
    names = [f"{'AE'[i % 2]}{i:04d}" for i in range(len(records))]  # two sources
    records = [dataclasses.replace(r, name=n) for r, n in zip(records, names, strict=True)]
    task = Task.of_classes(list(scored_classes().codes))
    at_thresholds = RulesClassifier(RulesClassifier.Config(decision_policy="thresholds"))
    at_thresholds.fit(records, task)
    assert at_thresholds.policy_ is None
    expected = RulesClassifier().fit(records, task)
    assert RulesClassifier.Config().decision_policy == "expected"
    assert isinstance(expected.policy_, ExpectedMetricPolicy)
    np.testing.assert_array_equal(at_thresholds.thresholds_, expected.thresholds_)
    scores = expected.predict_proba(records)
    np.testing.assert_array_equal(expected.predict(records), expected.policy_.apply(scores))
    expected.save(tmp_path / "m")
    loaded = RulesClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.decide(scores), expected.decide(scores))
    account = loaded.explain(records[0])
    fired = {r["code"] for r in account["rules"] if r["label"]}
    decided = loaded.decide(scores[:1])[0]
    assert fired == {c for c, d in zip(loaded.classes_, decided, strict=True) if d} & {
        r["code"] for r in account["rules"]
    }
    with pytest.raises(ValueError, match="decision_policy must be"):
        RulesClassifier.Config(decision_policy="nope")


def test_platt_converges_on_graded_scores_massed_at_zero_and_one():
    """Rule scores sit mostly at 0 and 1: the logistic fit must still find the frequencies
    (an undamped Newton step overshoots here and sends every probability to 0 or 1)."""
    s = np.r_[np.zeros(280), np.full(20, 0.5), np.ones(30)][:, None]
    y = np.r_[np.arange(280) < 3, np.arange(20) < 5, np.arange(30) < 20][:, None]
    p = Calibrator("platt").fit(s, y).transform(np.array([[0.0], [0.5], [1.0]]))[:, 0]
    assert np.all(np.diff(p) > 0)
    assert p[0] < 0.05 and 0.45 < p[2] < 0.85


# -- bagged thresholds ------------------------------------------------------------------------


def test_most_chosen_takes_the_mode_and_breaks_ties_as_documented():
    choices = np.array([[0.5, 0.2, 0.8], [0.5, 0.35, 0.2], [0.2, 0.35, 0.8], [0.2, 0.2, 0.2]])
    preferred = np.array([0.2, 0.5, 0.8])
    # column 0: 0.5 and 0.2 tied, the preferred 0.2 among them; column 1: 0.2 and 0.35 tied,
    # the preferred 0.5 not among them, so the highest; column 2: 0.8 and 0.2 tied, 0.8 preferred
    assert decision._most_chosen(choices, preferred).tolist() == [0.2, 0.35, 0.8]
    assert decision._most_chosen(choices[:3], preferred).tolist() == [0.5, 0.35, 0.8]


def test_bagged_thresholds_are_the_majority_of_the_resamples_choices(held_out, monkeypatch):
    """With ``bagging`` the policy fits the records and B resamples drawn within each group,
    and each class takes the threshold most of the B + 1 fits chose: checked against the fits
    themselves, recorded as the policy makes them."""
    from team_code.classifiers import rules

    scores, truth, groups, task = held_out
    fits: list[tuple[np.ndarray, np.ndarray]] = []
    original = rules.operating_thresholds

    def recorded(truth_, scores_, *args, **kwargs):
        out = original(truth_, scores_, *args, **kwargs)
        fits.append((np.asarray(scores_), out))
        return out

    monkeypatch.setattr(rules, "operating_thresholds", recorded)
    plain = ThresholdPolicy("vote", 3).fit(scores, truth, groups, task).thresholds_
    fits.clear()
    bagged = ThresholdPolicy("vote", 3, bagging=6, seed=2).fit(scores, truth, groups, task)
    assert len(fits) == 7
    np.testing.assert_array_equal(fits[0][1], plain)  # the records as given come first
    for resample, _ in fits[1:]:  # each resample keeps every group's size
        assert resample.shape == scores.shape
        assert not np.array_equal(resample, scores)
    choices = np.array([t for _, t in fits])
    np.testing.assert_array_equal(bagged.thresholds_, decision._most_chosen(choices, plain))
    again = ThresholdPolicy("vote", 3, bagging=6, seed=2).fit(scores, truth, groups, task)
    np.testing.assert_array_equal(again.thresholds_, bagged.thresholds_)  # seeded
    restored = policy_from_json(json.loads(json.dumps(bagged.to_json())))
    assert restored.bagging == 6 and restored.seed == 2
    np.testing.assert_array_equal(restored.apply(scores), bagged.apply(scores))


@pytest.mark.parametrize("given", ["groups", "sources"])
def test_bagging_resamples_within_each_source(held_out, monkeypatch, given):
    """Each resample keeps every group's size and the records' groups and sources together,
    whether the groups come as ``groups`` or (as ``operating_thresholds`` reads them then)
    as ``sources`` alone."""
    from collections import Counter

    from team_code.classifiers import rules

    scores, truth, groups, task = held_out
    seen: list[tuple[list, list]] = []
    original = rules.operating_thresholds

    def recorded(truth_, scores_, classes, min_positives, sources_, *args, **kwargs):
        seen.append((list(sources_), list(args[-1]) if args[-1] is not None else None))
        return original(truth_, scores_, classes, min_positives, sources_, *args, **kwargs)

    monkeypatch.setattr(rules, "operating_thresholds", recorded)
    policy = ThresholdPolicy("vote", 3, bagging=5, seed=1)
    if given == "groups":
        policy.fit(scores, truth, groups, task, sources=np.char.add(groups, "-src"))
    else:
        policy.fit(scores, truth, None, task, sources=groups)
    assert len(seen) == 6
    sizes = Counter(seen[0][0])
    for sources_, groups_ in seen[1:]:
        assert Counter(sources_) == sizes
        if given == "groups":  # each record's group and source drawn together
            assert [f"{g}-src" for g in groups_] == sources_


def test_bagging_is_checked():
    with pytest.raises(ValueError, match="bagging"):
        ThresholdPolicy("vote", bagging=-1)
    with pytest.raises(ValueError, match="bagging applies to the vote and pooled"):
        ThresholdPolicy("challenge", bagging=5)
    from team_code.classifiers.rules import RulesClassifier

    with pytest.raises(ValueError, match="decision_bagging"):
        RulesClassifier.Config(decision_bagging=-2)


def test_record_metric_equals_the_scorer_on_any_subset(held_out):
    """``RecordMetric`` (per-record contributions summed) gives the project scorer's challenge
    metric on every subset and trial output, within rounding."""
    from team_code.classifiers.thresholds import RecordMetric, challenge_score

    scores, truth, _groups, task = held_out
    metric = RecordMetric(truth, task.classes, task.scored)
    rng = np.random.default_rng(5)
    for _ in range(40):
        binary = scores >= rng.uniform(0.2, 0.9, scores.shape[1])
        rows = rng.random(len(truth)) < rng.uniform(0.1, 1.0)
        expected = challenge_score(truth[rows], binary[rows], task.classes, task.scored)
        assert metric.score(metric.observed(binary), rows) == pytest.approx(expected, abs=1e-12)
    # a subset whose records all carry sinus rhythm alone scores 0, as the scorer has it
    normal = np.zeros_like(truth)
    normal[:, metric.normal] = True
    sinus = RecordMetric(normal, task.classes, task.scored)
    assert sinus.score(sinus.observed(normal), np.ones(len(normal), bool)) == 0.0


def test_ties_are_checked_saved_and_reach_the_vote(held_out):
    from team_code.classifiers.rules import operating_thresholds
    from team_code.classifiers.thresholds import NEVER

    with pytest.raises(ValueError, match="ties must be one of"):
        ThresholdPolicy("vote", ties="never")
    with pytest.raises(ValueError, match="ties apply to the vote and pooled"):
        ThresholdPolicy("challenge", ties="keep")
    scores, truth, groups, task = held_out
    scores = scores.copy()
    scores[:, 0] = 0.1  # class 0 reaches no level: no held-out source moves with it
    keep = ThresholdPolicy("vote", 3, ties="keep").fit(scores, truth, groups, task)
    silence = ThresholdPolicy("vote", 3).fit(scores, truth, groups, task)
    assert keep.thresholds_[0] == 0.5 and silence.thresholds_[0] == NEVER
    classes = list(task.classes)
    for ties, policy in (("keep", keep), ("silence", silence)):
        direct = operating_thresholds(
            truth, scores, classes, 3, groups, False, task.scored, "vote", groups, ties=ties
        )
        np.testing.assert_array_equal(policy.thresholds_, direct)
    restored = policy_from_json(json.loads(json.dumps(keep.to_json())))
    assert restored.ties == "keep"
    np.testing.assert_array_equal(restored.thresholds_, keep.thresholds_)


def test_expected_vocabulary_calibrates_on_the_sources_that_use_a_label_and_weighs_their_share():
    from team_code.classifiers.decision import _platt

    classes = list(scored_classes().codes)
    task = Task.of_classes(classes)
    rng = np.random.default_rng(3)
    sources = np.repeat(["A", "B", "C", "D"], 30)
    truth = np.zeros((120, len(classes)), bool)
    truth[:, 0] = rng.random(120) < 0.3  # every source gives class 0
    truth[:60, 1] = rng.random(60) < 0.4  # A and B give class 1; C and D never do
    scores = np.clip(0.5 * truth + 0.5 * rng.random(truth.shape), 0, 1)
    scores[60:, 1] = 0.9  # C and D score class 1 high, yet never give it
    policy = make_policy("expected-vocabulary").fit(scores, truth, sources, task, sources)
    assert policy.share_[0] == 1.0 and policy.share_[1] == 0.5
    assert policy.share_[2:].max() == 0.0  # no source gives the others: never labelled
    a, b = _platt(scores[:60, 1], truth[:60, 1])  # class 1 calibrated on A and B alone
    x = np.full((1, len(classes)), 0.7)
    p = policy.probabilities(x)[0]
    assert p[1] == pytest.approx(0.5 / (1 + np.exp(-(a * 0.7 + b))))
    assert not policy.apply(np.ones((3, len(classes))))[:, 2:].any()
    restored = policy_from_json(json.loads(json.dumps(policy.to_json())))
    np.testing.assert_array_equal(restored.probabilities(x), policy.probabilities(x))
    # without the option, every record calibrates every class and nothing is scaled
    plain = make_policy("expected").fit(scores, truth, sources, task, sources)
    a_all, b_all = _platt(scores[:, 1], truth[:, 1])
    assert plain.probabilities(x)[0, 1] == pytest.approx(1 / (1 + np.exp(-(a_all * 0.7 + b_all))))


def test_expected_vocabulary_names_sources_of_the_wrong_length():
    classes = list(scored_classes().codes)
    task = Task.of_classes(classes)
    scores = np.random.default_rng(0).random((10, len(classes)))
    truth = scores > 0.8
    policy = make_policy("expected-vocabulary")
    for sources in (["A"] * 9, ["A"] * 11):
        with pytest.raises(ValueError, match=f"{len(sources)} sources for 10 records"):
            policy.fit(scores, truth, None, task, sources)
    with pytest.raises(ValueError, match="9 groups for 10 records"):
        policy.fit(scores, truth, ["A"] * 9, task)


def test_the_vote_names_groups_or_sources_of_the_wrong_length(held_out):
    scores, truth, groups, task = held_out
    n = len(scores)
    for method in ("vote", "pooled"):
        with pytest.raises(ValueError, match=f"{n - 1} groups for {n} records"):
            ThresholdPolicy(method).fit(scores, truth, groups[:-1], task)
        with pytest.raises(ValueError, match=f"{n + 1} sources for {n} records"):
            ThresholdPolicy(method).fit(scores, truth, groups, task, [*groups, "A"])
    # a method that does not read the groups is not stopped by them
    ThresholdPolicy("challenge").fit(scores, truth, groups[:-1], task)


def test_bagging_keeps_a_rare_class_to_half_or_silence_in_every_resample(monkeypatch):
    """A class with fewer than ``min_positives`` positives in the records as given chooses
    between 0.5 and silence only, in every resample too: a resample that duplicates its
    positives does not search graded levels for it (nor may the most-chosen rule adopt one)."""
    from team_code.classifiers import rules
    from team_code.classifiers.thresholds import NEVER

    classes = list(scored_classes().codes)
    task = Task.of_classes(classes)
    j, nsr = classes.index("164889003"), classes.index("426783006")  # AF: 2 positives
    n = 60
    truth = np.zeros((n, len(classes)), bool)
    truth[:, nsr] = True
    truth[:2, j], truth[:2, nsr] = True, False
    scores = np.zeros(truth.shape)
    scores[:, nsr] = 0.9
    scores[:2, nsr] = 0.1
    scores[:2, j] = 0.4  # reached by the graded levels 0.35 and 0.2, not by 0.5
    groups = np.array(["A"] * n)
    fits: list[tuple[int, float]] = []
    original = rules.operating_thresholds

    def recorded(truth_, *args, **kwargs):
        out = original(truth_, *args, **kwargs)
        fits.append((int(np.asarray(truth_)[:, j].sum()), float(out[j])))
        return out

    monkeypatch.setattr(rules, "operating_thresholds", recorded)
    for method in ("pooled", "vote"):
        for seed in (23, 25, 27):
            fits.clear()
            policy = ThresholdPolicy(method, bagging=15, seed=seed)
            chosen = policy.fit(scores, truth, groups, task, groups).thresholds_[j]
            assert chosen in (0.5, NEVER), (method, seed, chosen)
            assert {t for _, t in fits} <= {0.5, NEVER}, (method, seed, fits)
            assert max(p for p, _ in fits) >= 3  # a resample had enough positives to search
    # a class with enough positives as given still searches the graded levels in resamples
    truth[2:4, j], truth[2:4, nsr] = True, False
    scores[2:4, j], scores[2:4, nsr] = 0.4, 0.1
    policy = ThresholdPolicy("pooled", bagging=5, seed=0).fit(scores, truth, groups, task)
    assert policy.thresholds_[j] in (0.2, 0.35)


@pytest.mark.parametrize("name", ["expected", "expected-isotonic", "expected-raw"])
def test_expected_policy_refuses_to_fit_on_no_records(held_out, name):
    """Fitted on no records, Platt gave every class 0.5 (every record took six classes) and
    isotonic gave nothing: an empty fit is refused with a clear message."""
    scores, truth, groups, task = held_out
    with pytest.raises(ValueError, match="no records"):
        make_policy(name).fit(scores[:0], truth[:0], groups[:0], task)


@pytest.mark.parametrize("name", ["expected", "vote", "half"])
def test_out_of_group_labels_needs_another_group(held_out, name):
    """With a single group there are no other groups' records to fit on: a clear error."""
    scores, truth, _, task = held_out
    with pytest.raises(ValueError, match="at least two groups"):
        decision.out_of_group_labels(name, scores[:5], truth[:5], ["A"] * 5, task)


@pytest.mark.parametrize(
    "lowest", [float("nan"), [float("nan")] * 24, [0.2, float("nan")] * 12, 0.2, None]
)
def test_lowest_with_nan_saves_as_null_and_reads_back(held_out, tmp_path, lowest):
    """``lowest`` NaN (no bound) is written as null in the strict JSON the model is saved in,
    and read back as NaN: the restored policy searches and decides alike."""
    from team_code.fileio import load_json, save_json

    scores, truth, groups, task = held_out
    policy = ThresholdPolicy("challenge", lowest=lowest).fit(scores, truth, groups, task)
    save_json(tmp_path / "policy.json", policy.to_json())
    saved = load_json(tmp_path / "policy.json")
    if lowest is not None and np.isnan(lowest).any():
        assert None in np.ravel(np.asarray(saved["options"]["lowest"], dtype=object)).tolist()
    restored = policy_from_json(saved)
    if lowest is None:
        assert restored.lowest is None
    else:
        np.testing.assert_array_equal(np.asarray(restored.lowest, float), np.asarray(lowest, float))
    np.testing.assert_array_equal(restored.thresholds_, policy.thresholds_)
    refit = ThresholdPolicy(**restored.options()).fit(scores, truth, groups, task)
    np.testing.assert_array_equal(refit.thresholds_, policy.thresholds_)
