"""Threshold searches: Youden's J per class, and the challenge-metric coordinate ascent."""

from __future__ import annotations

import numpy as np

from evaluation.metrics import compute_challenge_metric
from team_code.classifiers.thresholds import (
    NEVER,
    challenge_score,
    challenge_thresholds,
    challenge_weights,
    youden_thresholds,
)
from team_code.data.labels import scored_classes


def test_youden_finds_the_separating_threshold():
    labels = np.array([[0], [0], [0], [1], [1]], bool)
    scores = np.array([[0.1], [0.2], [0.3], [0.6], [0.9]])
    assert youden_thresholds(labels, scores)[0] == 0.6
    # A class with one outcome keeps 0.5.
    assert youden_thresholds(np.ones((3, 1), bool), np.full((3, 1), 0.4))[0] == 0.5


def _problem(seed=0, n=300):
    rng = np.random.default_rng(seed)
    classes = list(scored_classes().codes)
    labels = rng.random((n, len(classes))) < np.linspace(0.02, 0.3, len(classes))
    scores = np.clip(labels * 0.3 + rng.random(labels.shape) * 0.7, 0, 1)
    return classes, labels, scores


def test_challenge_search_value_matches_the_scorer_and_beats_youden():
    classes, labels, scores = _problem()
    youden = youden_thresholds(labels, scores)
    searched = challenge_thresholds(labels, scores, classes)
    weights = challenge_weights(classes)
    value = compute_challenge_metric(weights, labels, scores >= searched, classes)
    assert value == challenge_score(labels, scores >= searched, classes)
    assert value > challenge_score(labels, scores >= youden, classes) + 0.01


def test_no_single_class_change_improves_the_search_result():
    """Coordinate-wise optimality, checked by brute force with the scorer itself."""
    classes, labels, scores = _problem(seed=1, n=120)
    searched = challenge_thresholds(labels, scores, classes, n_candidates=11, max_passes=10)
    best = challenge_score(labels, scores >= searched, classes)
    for j in range(len(classes)):
        for t in np.r_[np.quantile(scores[:, j], np.linspace(0, 1, 11)), NEVER]:
            trial = searched.copy()
            trial[j] = t
            assert challenge_score(labels, scores >= trial, classes) <= best + 1e-9


def test_constant_scores_choose_classes_to_predict_for_everyone():
    classes, labels, _ = _problem(seed=2)
    prevalence = np.broadcast_to(labels.mean(axis=0), labels.shape)
    searched = challenge_thresholds(labels, prevalence, classes, start=np.full(len(classes), NEVER))
    predicted = searched <= labels.mean(axis=0)
    assert predicted.any() and not predicted.all()


def test_rare_classes_keep_their_start_thresholds():
    classes, labels, scores = _problem(seed=3)
    counts = labels.sum(axis=0)
    start = np.full(len(classes), 0.5)
    searched = challenge_thresholds(labels, scores, classes, start=start, min_positives=20)
    rare = counts < 20
    assert rare.any() and (~rare).any()
    np.testing.assert_array_equal(searched[rare], 0.5)
    assert (searched[~rare] != 0.5).any()


def test_group_votes_count_the_groups_a_move_helps_and_hurts():
    from team_code.classifiers.thresholds import GroupVotes

    classes, labels, scores = _problem(seed=4, n=90)
    groups = np.repeat(["a", "b", "c"], 30)
    weights = challenge_weights(classes)
    votes = GroupVotes(labels, weights, classes, groups)
    current = scores >= 0.5
    trial = current.copy()
    trial[:, 0] = ~trial[:, 0]
    label_weights = labels @ weights

    def per_record(binary):
        return (binary * label_weights).sum(axis=1) / np.maximum((labels | binary).sum(axis=1), 1)

    net = votes.net(per_record(trial)[:, None], per_record(current))
    changes = [
        challenge_score(labels[groups == g], trial[groups == g], classes)
        - challenge_score(labels[groups == g], current[groups == g], classes)
        for g in "abc"
    ]
    assert net[0] == sum(c > 1e-12 for c in changes) - sum(c < -1e-12 for c in changes)


def test_groups_refuse_a_move_that_pays_on_one_source_only():
    """AF detected well in source a, only false alarms in b and c: pooled it pays, by groups
    not."""
    classes = list(scored_classes().codes)
    nsr = classes.index("426783006")
    af = classes.index("164889003")
    rng = np.random.default_rng(5)
    n = 60
    groups = np.repeat(["a", "b", "c"], [3 * n, n, n])
    labels = np.zeros((len(groups), len(classes)), bool)
    labels[:, af] = rng.random(len(groups)) < 0.3
    labels[:, nsr] = ~labels[:, af]
    scores = np.full(labels.shape, 0.5)
    in_a = groups == "a"
    scores[in_a, af] = np.where(labels[in_a, af], 0.9, 0.1)  # separates in a
    false_alarm = ~labels[~in_a, af] & (rng.random((~in_a).sum()) < 0.2)
    scores[~in_a, af] = np.where(false_alarm, 0.9, 0.1)  # in b and c: false alarms only
    start = np.where(np.arange(len(classes)) == nsr, 0.0, NEVER)
    pooled = challenge_thresholds(labels, scores, classes, start=start)
    assert pooled[af] < NEVER  # pooled, the detections of a outweigh b and c
    voted = challenge_thresholds(labels, scores, classes, start=start, groups=groups)
    assert voted[af] == NEVER  # two sources of three lose: the floor's decision stays
    # The same move where it pays on every source is made.
    honest = np.where(labels, 0.9, 0.1)
    voted = challenge_thresholds(labels, honest, classes, start=start, groups=groups)
    assert voted[af] < NEVER


def test_majority_vote_needs_more_than_half_of_the_groups():
    from team_code.classifiers.thresholds import GroupVotes

    classes, labels, _ = _problem(seed=6, n=120)
    groups = np.repeat(["a", "b", "c", "d"], 30)
    votes = GroupVotes(labels, challenge_weights(classes), classes, groups)
    current = np.zeros(120)
    # candidate 0: a and b gain, c loses, d unchanged; candidate 1: a, b and c gain
    observed = np.zeros((120, 2))
    observed[:30] = observed[30:60] = 1.0
    observed[60:90, 0], observed[60:90, 1] = -1.0, 1.0
    np.testing.assert_array_equal(votes.passes(observed, current, "net"), [True, True])
    np.testing.assert_array_equal(votes.passes(observed, current, "majority"), [False, True])


def test_lowest_keeps_the_search_at_or_above_it():
    """Scores that separate only below 0.2: the search goes there, unless ``lowest`` forbids
    it; then a class keeps its start or a candidate at or above the bound (or "never")."""
    classes, labels, scores = _problem(seed=3)
    low = np.clip(scores * 0.2, 0, 1)  # every score under 0.2
    free = challenge_thresholds(labels, low, classes, start=np.full(len(classes), 0.5))
    assert (free < 0.2).any()
    bounded = challenge_thresholds(
        labels, low, classes, start=np.full(len(classes), 0.5), lowest=0.2
    )
    assert np.all(bounded >= 0.2)


def test_the_rules_scores_carry_their_lowest_operating_level():
    from team_code.classifiers.base import Classifier
    from team_code.classifiers.decision import ThresholdPolicy, policy_from_json
    from team_code.classifiers.rules import OPERATING_LEVELS, RulesClassifier

    assert RulesClassifier.lowest_decision == min(OPERATING_LEVELS) == 0.2
    assert Classifier.lowest_decision is None
    saved = {"kind": "thresholds", "options": ThresholdPolicy("challenge", lowest=0.2).options()}
    assert policy_from_json(saved | {"state": {"thresholds": [0.5]}}).lowest == 0.2


def _table_with_unreadable_cells(folder) -> tuple[list[str], object]:
    """A custom weights.csv with two cells that are not numbers (the table reader, like the
    official 2021 ``load_table``, reads them as NaN; the scorer's ``nansum`` gives the pair
    nothing)."""
    classes = ["426783006", "164889003", "426177001", "427084000", "284470004"]
    rows = [",".join(["", *classes])]
    for i, code in enumerate(classes):
        cells = ["1.0" if i == j else "0.1" for j in range(len(classes))]
        if i == 1:
            cells[2] = "NaN"
        if i == 2:
            cells[1] = "n/a"
        rows.append(",".join([code, *cells]))
    (folder / "weights.csv").write_text("\n".join(rows) + "\n")
    return classes, scored_classes(folder / "weights.csv")


def test_a_weight_that_is_not_a_number_counts_as_zero_as_in_the_scorer(tmp_path):
    """NaN weights are read as 0 where the kit builds its weight matrix: the threshold search
    moves as it does on the table with 0 in those cells, and the expected-metric policy labels
    records (a NaN weight made every candidate's expectation NaN: nothing labelled)."""
    from team_code.classifiers.decision import (
        ExpectedMetricPolicy,
        expected_metric_labels,
        expected_observed,
    )
    from team_code.context import Task

    classes, table = _table_with_unreadable_cells(tmp_path)
    assert np.isnan(table.weights).sum() == 2
    zeroed = np.nan_to_num(table.weights, nan=0.0)
    np.testing.assert_array_equal(challenge_weights(classes, table), zeroed)

    rng = np.random.default_rng(0)
    truth = rng.random((400, 5)) < [0.4, 0.2, 0.2, 0.2, 0.2]
    scores = 1 / (1 + np.exp(-(2 * (truth * 2 - 1) + rng.normal(0, 1, (400, 5)))))
    start = np.full(5, 0.5)
    searched = challenge_thresholds(truth, scores, classes, start=start, scored=table)
    zero_table = type(table)(
        table.codes, table.abbreviations, table.all_codes, table.representative, zeroed
    )
    expected = challenge_thresholds(truth, scores, classes, start=start, scored=zero_table)
    np.testing.assert_array_equal(searched, expected)
    assert not np.array_equal(searched, start)
    assert challenge_score(truth, scores >= searched, classes, table) > challenge_score(
        truth, scores >= start, classes, table
    )

    p = np.array([0.9, 0.8, 0.7, 0.1, 0.1])
    candidates = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)
    values = expected_observed(p, candidates, table.weights, 500)
    np.testing.assert_array_equal(values, expected_observed(p, candidates, zeroed, 500))
    assert np.isfinite(values).all()
    labels = expected_metric_labels(p[None], table.weights, 5, 500)
    np.testing.assert_array_equal(labels, expected_metric_labels(p[None], zeroed, 5, 500))
    assert labels.any()

    task = Task(str(tmp_path / "weights.csv"))
    policy = ExpectedMetricPolicy(n_samples=300).fit(scores, truth, None, task)
    assert np.isfinite(policy.weights_).all()
    assert policy.apply(scores).sum(axis=1).min() >= 1  # every record gets a label set
