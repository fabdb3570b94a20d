"""The hybrid's fusion machinery, on members that are cheap to train."""

from __future__ import annotations

import numpy as np

from team_code.classifiers.hybrid import HybridClassifier, HybridConfig, _Selector, _Stacker
from team_code.data.labels import scored_classes
from team_code.data.records import RecordSet


def test_stacker_learns_which_member_to_trust():
    rng = np.random.default_rng(0)
    n, c = 400, 3
    truth = rng.random((n, c)) < 0.3
    good = np.clip(truth + rng.normal(0, 0.3, (n, c)), 0.01, 0.99)
    noise = rng.random((n, c))
    scores = np.stack([noise, good], axis=1)  # member 1 is informative
    evidence = np.zeros((n, 0))
    stacked = _Stacker(1.0).fit(scores[:300], evidence[:300], truth[:300])
    fused = stacked.predict(scores[300:], evidence[300:])
    assert (stacked.coef_[:, 1] > 5 * np.abs(stacked.coef_[:, 0])).all()
    selector = _Selector().fit(scores[:300], evidence[:300], truth[:300])
    assert selector.choice_.tolist() == [1, 1, 1]
    assert _Selector(per_class=False).fit(scores, evidence, truth).choice_.tolist() == [1, 1, 1]
    np.testing.assert_array_equal(selector.predict(scores[300:], evidence), good[300:])
    # Fused scores rank the held-out truth well.
    for j in range(c):
        pos, neg = fused[truth[300:, j], j], fused[~truth[300:, j], j]
        assert (pos[:, None] > neg[None, :]).mean() > 0.9


def test_stacker_handles_a_class_with_one_outcome():
    truth = np.zeros((20, 2), bool)
    truth[:10, 0] = True
    scores = np.random.default_rng(1).random((20, 1, 2))
    fused = _Stacker(1.0).fit(scores, np.zeros((20, 0)), truth).predict(scores, np.zeros((20, 0)))
    assert np.all((fused[:, 1] > 0) & (fused[:, 1] < 0.1))


def test_hybrid_of_prevalence_round_trip(challenge_dir, tmp_path):
    records = RecordSet.from_folder(challenge_dir)
    config = HybridConfig(members=("prevalence",), n_folds=3)
    model = HybridClassifier(config).fit(records, scored_classes().codes)
    assert set(model.fusion_scores_) == {"stacking", "selection", "single"}
    assert model.fusion_ == max(model.fusion_scores_, key=model.fusion_scores_.get)
    model.save(tmp_path / "h")
    loaded = HybridClassifier.load(tmp_path / "h")
    few = records.subset([0, 1, 2])
    np.testing.assert_allclose(loaded.predict_proba(few), model.predict_proba(few))
    assert loaded.summary()["members"] == ["prevalence"]


def test_selection_trusts_per_class_choices_only_with_enough_positives():
    rng = np.random.default_rng(2)
    n = 200
    truth = np.zeros((n, 2), bool)
    truth[:60, 0] = True  # a common class
    truth[:3, 1] = True  # a rare class
    good = np.clip(truth + rng.normal(0, 0.3, truth.shape), 0, 1)
    lucky = good.copy()
    lucky[:, 1] = np.where(truth[:, 1], 1.0, good[:, 1] * 0.5)  # perfect on the 3 rare ones
    scores = np.stack([good, lucky], axis=1)
    scores[:, 1, 0] = rng.random(n)  # member 1 is noise on the common class
    selector = _Selector(per_class=True, min_positives=5).fit(scores, np.zeros((n, 0)), truth)
    assert selector.choice_[0] == 0  # chosen by its own AP
    assert selector.choice_[1] == 0  # too few positives: the best member overall
    assert _Selector(min_positives=3).fit(scores, np.zeros((n, 0)), truth).choice_[1] == 1
