"""The hybrid's fusion machinery, on members that are cheap to train."""

from __future__ import annotations

import numpy as np
import pytest

from team_code import harness
from team_code.classifiers.cv import signal_digests
from team_code.classifiers.hybrid import HybridClassifier, HybridConfig, _Selector, _Stacker
from team_code.classifiers.thresholds import NEVER
from team_code.context import Task
from team_code.data.labels import NORMAL_CLASS, scored_classes
from team_code.data.records import RecordSet


def test_stacker_learns_which_member_to_trust():
    rng = np.random.default_rng(0)
    n, c = 400, 3
    truth = rng.random((n, c)) < 0.3
    good = np.clip(truth + rng.normal(0, 0.3, (n, c)), 0.01, 0.99)
    noise = rng.random((n, c))
    scores = np.stack([noise, good], axis=1)  # member 1 is informative
    evidence = np.zeros((n, 0))
    own = np.full((2, c), 0.5)
    stacked = _Stacker(1.0).fit(scores[:300], own, evidence[:300], truth[:300])
    fused = stacked.predict(scores[300:], own, evidence[300:])
    assert (stacked.coef_[:, 1] > 5 * np.abs(stacked.coef_[:, 0])).all()
    selector = _Selector().fit(scores[:300], own, evidence[:300], truth[:300])
    assert selector.choice_.tolist() == [1, 1, 1]
    single = _Selector(per_class=False).fit(scores, own, evidence, truth)
    assert single.choice_.tolist() == [1, 1, 1]
    np.testing.assert_array_equal(selector.predict(scores[300:], own, evidence), good[300:])
    # Fused scores rank the held-out truth well.
    for j in range(c):
        pos, neg = fused[truth[300:, j], j], fused[~truth[300:, j], j]
        assert (pos[:, None] > neg[None, :]).mean() > 0.9


def test_stacker_margins_are_centred_on_each_members_own_threshold():
    rng = np.random.default_rng(3)
    truth = rng.random((300, 1)) < 0.4
    # Member 0 decides at 0.9: positives score about 0.95, negatives about 0.6.
    scores = np.where(truth, 0.95, 0.6)[:, np.newaxis, :] + rng.normal(0, 0.01, (300, 1, 1))
    own = np.array([[0.9]])
    stacked = _Stacker(1.0).fit(scores, own, np.zeros((300, 0)), truth)
    margin = stacked.features(np.full((1, 1, 1), 0.9), own, np.zeros((1, 0)), 0)
    np.testing.assert_allclose(margin, 0.0, atol=1e-9)
    fused = stacked.predict(scores, own, np.zeros((300, 0)))
    assert ((fused >= 0.5) == truth).mean() > 0.99


def test_stacker_leaves_rare_classes_to_the_best_member_and_unseen_ones_out():
    rng = np.random.default_rng(1)
    truth = np.zeros((40, 3), bool)
    truth[:20, 0] = True  # frequent: regressed
    truth[:2, 1] = True  # two positives: not regressed, the best member's scores
    # class 2 has no positive at all: a constant at its smoothed rate, never predicted
    good = np.clip(truth + rng.normal(0, 0.2, truth.shape), 0.01, 0.99)
    scores = np.stack([rng.random((40, 3)), good], axis=1)  # member 1 is the best
    own = np.array([[0.5, 0.5, 0.5], [0.5, 0.3, 0.7]])
    stacked = _Stacker(1.0, min_positives=5).fit(scores, own, np.zeros((40, 0)), truth)
    assert stacked.fallback_.tolist() == [-1, 1, -2]
    fused = stacked.predict(scores, own, np.zeros((40, 0)))
    np.testing.assert_array_equal(fused[:, 1], good[:, 1])
    np.testing.assert_allclose(fused[:, 2], 0.5 / 41)
    np.testing.assert_array_equal(stacked.start_thresholds(own), [0.5, 0.3, 0.5])


def test_hybrid_of_prevalence_round_trip(records_dir, tmp_path):
    records = RecordSet.from_folder(records_dir)
    config = HybridConfig(members=("prevalence",), n_folds=3)
    model = HybridClassifier(config).fit(records, Task())
    assert set(model.fusion_scores_) == {
        f"{f}/{t}" for f in ("single", "selection", "stacking") for t in ("own", "searched")
    }
    best = max(model.fusion_scores_.values())
    chosen = f"{model.fusion_}/{model.thresholding_}"
    assert model.fusion_scores_[chosen] == best
    # Ties go to the simplest candidate (dicts keep the order candidates were scored in).
    assert chosen == next(k for k, v in model.fusion_scores_.items() if v == best)
    model.save(tmp_path / "h")
    loaded = HybridClassifier.load(tmp_path / "h")
    few = records.subset([0, 1, 2])
    np.testing.assert_allclose(loaded.predict_proba(few), model.predict_proba(few))
    assert loaded.summary()["members"] == ["prevalence"]
    (tmp_path / "h" / "fuser.safetensors").unlink()  # as saved before fusers had a file
    with pytest.raises(ValueError, match="earlier version"):
        HybridClassifier.load(tmp_path / "h")


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
    own = np.array([[0.5, 0.4], [0.6, 0.7]])
    selector = _Selector(min_positives=5).fit(scores, own, np.zeros((n, 0)), truth)
    assert selector.choice_[0] == 0  # chosen by its own AP
    assert selector.choice_[1] == 0  # too few positives: the best member overall
    np.testing.assert_array_equal(selector.start_thresholds(own), [0.5, 0.4])
    selector = _Selector(min_positives=3).fit(scores, own, np.zeros((n, 0)), truth)
    assert selector.choice_[1] == 1
    np.testing.assert_array_equal(selector.start_thresholds(own), [0.5, 0.7])


def _oof_inputs(own_threshold: float, seed: int = 4):
    """Out-of-fold inputs of one member on two frequent classes: positives score about 0.7,
    negatives about 0.3; the member's own thresholds are ``own_threshold``."""
    from team_code.classifiers.cv import grouped_kfold

    rng = np.random.default_rng(seed)
    classes = [scored_classes().codes[0], NORMAL_CLASS]
    n = 240
    truth = rng.random((n, 2)) < 0.3
    scores = np.clip(np.where(truth, 0.7, 0.3) + rng.normal(0, 0.05, truth.shape), 0, 1)
    folds = grouped_kfold(truth, [str(i) for i in range(n)], 3)
    oof_own = np.full((n, 1, 2), own_threshold)
    return classes, truth, folds, scores[:, np.newaxis, :], oof_own, np.zeros((n, 0))


def test_fusion_searches_thresholds_when_the_members_own_ones_are_wrong():
    classes, truth, folds, oof, oof_own, evidence = _oof_inputs(own_threshold=0.9)
    # (stacking would recalibrate the scores instead: the test is about thresholds)
    model = HybridClassifier(HybridConfig(members=("prevalence",), n_folds=3, fusion="single"))
    model.classes_ = tuple(classes)
    model._fuse(["m"], truth, folds, oof, oof_own, evidence, oof_own[0])
    assert set(model.fusion_scores_) == {"single/own", "single/searched"}
    assert model.fusion_scores_["single/own"] < 0.5  # nothing predicted above 0.9
    assert model.thresholding_ == "searched"
    assert model.fusion_scores_["single/searched"] > 0.95
    assert ((model.thresholds_ > 0.35) & (model.thresholds_ < 0.65)).all()


def test_fusion_keeps_the_members_own_thresholds_when_search_does_not_pay():
    classes, truth, folds, oof, oof_own, evidence = _oof_inputs(own_threshold=0.5)
    model = HybridClassifier(HybridConfig(members=("prevalence",), n_folds=3))
    model.classes_ = tuple(classes)
    model._fuse(["m"], truth, folds, oof, oof_own, evidence, oof_own[0])
    # The own thresholds already separate the classes: the simplest candidate is kept.
    assert model.fusion_scores_["single/own"] == 1.0
    assert (model.fusion_, model.thresholding_) == ("single", "own")
    np.testing.assert_array_equal(model.thresholds_, [0.5, 0.5])
    assert model.member_scores_ == {"m": 1.0}


def test_source_groups_keep_hospitals_and_identical_signals_together():
    from team_code.classifiers.cv import source_groups

    sources = ["A", "A", "E", "Q", "Q", "HR"]
    digests = ["x", "y", "z", "y", "w", "v"]  # A's second record is Q's first
    assert source_groups(sources, digests) == ["A", "A", "E", "A", "Q", "HR"]


def test_hybrid_source_folds_hold_out_whole_sources(challenge_dir):
    records = RecordSet.from_folder(challenge_dir)
    model = HybridClassifier(HybridConfig(members=("prevalence",), n_folds=3, fold_groups="source"))
    groups = model._fold_groups(records)
    sources = [harness.record_source(n) for n in records.names]
    assert len(set(groups)) >= 3
    moved = [(s, g) for g, s in zip(groups, sources, strict=True) if g != s]
    assert moved == [("Q", "A")]  # Q0048 is A0101's signal
    # Too few sources for the folds: back to identical-signal groups, with a message.
    few = records.subset([i for i, s in enumerate(sources) if s in ("E", "HR")])
    model = HybridClassifier(HybridConfig(members=("prevalence",), n_folds=3, fold_groups="source"))
    assert model._fold_groups(few) == signal_digests(few)


def test_a_simpler_candidate_wins_unless_the_better_one_is_clearly_better():
    from team_code.classifiers.hybrid import _simplest_within_tolerance

    rng = np.random.default_rng(5)
    simple = rng.normal(0.002, 0.01, 200)
    swing = np.tile([0.01, -0.01], 100)
    noisy_gain = simple + swing + 0.0002  # 0.04 better in total, SE about 0.14
    clear_gain = simple + 0.001  # 0.2 better on every record alike: SE 0
    assert _simplest_within_tolerance({"a": simple, "b": noisy_gain}, 1.0) == "a"
    assert _simplest_within_tolerance({"a": simple, "b": noisy_gain}, 0.0) == "b"
    assert _simplest_within_tolerance({"a": simple, "b": clear_gain}, 1.0) == "b"


@pytest.mark.parametrize("fusion", ["single", "selection"])
def test_the_hybrid_ships_its_members_own_thresholds_and_reproduces_their_score(
    records_dir, fusion
):
    # Prevalence's thresholds are "never" in some folds and just below the prevalence in
    # others (LAnFB, VPB, SA on these records): an average of them is a threshold no model
    # used. The hybrid of one member with its own thresholds must be that member.
    records = RecordSet.from_folder(records_dir)
    config = HybridConfig(members=("prevalence",), n_folds=3, fusion=fusion, thresholding="own")
    model = HybridClassifier(config).fit(records, Task())
    member = model.members_["prevalence"]
    assert model.fusion_scores_[f"{fusion}/own"] == model.member_scores_["prevalence"]
    np.testing.assert_array_equal(model.thresholds_, np.clip(member.thresholds_, 0, NEVER))
    np.testing.assert_array_equal(model.predict(records), member.predict(records))


def test_a_member_without_a_score_hands_the_class_to_the_next_on_its_own_terms():
    from team_code.classifiers.hybrid import _pick

    # Member 0 decides at 0.8, member 1 at 0.2; member 0 could not process record 1.
    scores = np.array([[[0.9], [0.1]], [[np.nan], [0.3]], [[np.nan], [0.1]], [[np.nan], [np.nan]]])
    own = np.array([[0.8], [0.2]])
    fused = _pick(scores, own, ranking=np.array([[0, 1]]))[:, 0]
    assert fused[0] == 0.9  # member 0's own score where it has one
    assert fused[1] >= 0.8 > fused[2]  # member 1's decisions, on member 0's threshold
    assert np.isnan(fused[3])  # nobody could: no score


@pytest.fixture
def failing_member():
    """A registered member that cannot process records whose name ends in ``_bad``."""
    from team_code.classifiers import registry
    from team_code.classifiers.prevalence import PrevalenceClassifier

    @registry.register("fails_on_bad")
    class FailsOnBad(PrevalenceClassifier):
        def predict_proba(self, records):
            for record in records:
                if record.name.endswith("_bad"):
                    raise ValueError(f"record {record.name}: cannot be processed")
            return super().predict_proba(records) * 0.5

    yield "fails_on_bad"
    del registry._REGISTERED["fails_on_bad"]


def test_a_record_one_member_cannot_process_is_left_out_of_its_part_only(
    records_dir, failing_member, capsys
):
    import dataclasses

    every = RecordSet.from_folder(records_dir)
    records = [every[i] for i in range(0, len(every), 3)]
    records[5] = dataclasses.replace(records[5], name=records[5].name + "_bad")
    config = HybridConfig(members=("prevalence", failing_member), n_folds=3)
    model = HybridClassifier(config).fit(records, Task())
    log = capsys.readouterr().err
    assert f"fails_on_bad cannot process record {records[5].name}" in log
    assert log.count("cannot process") == 1  # out of fold; the fit went on
    scores = model.predict_proba(records[3:8])
    assert np.isfinite(scores).all()
    assert f"cannot process record {records[5].name}" in capsys.readouterr().err
    members = model.member_predictions(records[3:8])
    assert np.isnan(members[failing_member][2]).all()
    assert np.isfinite(np.delete(members[failing_member], 2, axis=0)).all()


@pytest.mark.parametrize("member", ["m", "rules"])
def test_searched_thresholds_stay_at_or_above_the_members_lowest_decision(member):
    """Scores that separate only under 0.2: a search over an unknown member's scores goes
    there; over the rules' graded scores it stays at or above their lowest operating level."""
    classes, truth, folds, oof, oof_own, evidence = _oof_inputs(own_threshold=0.9)
    oof = oof * 0.2
    model = HybridClassifier(HybridConfig(members=("prevalence",), n_folds=3, fusion="single"))
    model.classes_ = tuple(classes)
    model._fuse([member], truth, folds, oof, oof_own, evidence, oof_own[0])
    if member == "rules":
        assert (model.thresholds_ >= 0.2).all()
    else:
        assert model.thresholding_ == "searched" and (model.thresholds_ < 0.2).all()


def test_a_members_decision_policy_the_hybrid_does_not_read_is_said():
    """The hybrid decides on the rules' scores with their operating thresholds: a
    ``rules.decision_policy`` it would silently ignore is named in a warning."""
    from team_code.context import RunContext

    said = []
    config = HybridConfig(
        members=("rules", "prevalence"), member_options={"rules": {"decision_policy": "expected"}}
    )
    hybrid = HybridClassifier(config)
    hybrid.ctx = RunContext(log=said.append)
    assert hybrid._usable_members() == ["rules", "prevalence"]
    assert any("rules.decision_policy=expected is not read by the hybrid" in m for m in said)
    said.clear()
    plain = HybridClassifier(HybridConfig(members=("rules",)))
    plain.ctx = RunContext(log=said.append)
    plain._usable_members()
    assert not any("decision_policy" in m for m in said)
