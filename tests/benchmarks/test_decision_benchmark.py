"""benchmarks/decision.py: decision policies compared by nested leave one source out on rule
scores computed once per training set; the held-out source takes no part in its choice."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import decision as bench

POLICIES = ("vote", "half", "expected")


def _bank(three_sources, truth=None, path=None):
    records, values, sources, _, own_truth, task, _ = three_sources
    truth = own_truth if truth is None else truth
    return bench.ScoreBank(
        [values[n] for n in records.names], records.names, truth, sources, task, path, "k"
    )


def test_policies_are_declared_and_known():
    from team_code.classifiers.decision import NAMED_POLICIES

    assert len(bench.POLICIES) == len(set(bench.POLICIES)) == 7
    assert set(bench.POLICIES) <= set(NAMED_POLICIES)


def test_policies_on_the_bank_equal_the_rules_classifier(three_sources):
    """The policies fitted on the bank's out-of-source scores reproduce the rules
    classifier's decisions on each held-out source: the vote its operating thresholds,
    ``expected`` its default."""
    records, values, _sources, digests, _truth, task, _ = three_sources
    result = bench.nested_policies(_bank(three_sources), digests, ("vote", "expected"))
    at_thresholds = bench.shipped_rules(
        values, records, digests, task, decision_policy="thresholds"
    )
    np.testing.assert_array_equal(result["labels"]["vote"], at_thresholds)
    shipped = bench.shipped_rules(values, records, digests, task)
    np.testing.assert_array_equal(result["labels"]["expected"], shipped)


def test_the_held_out_source_takes_no_part_in_its_choice(three_sources, tmp_path):
    _records, _values, sources, digests, truth, _task, _ = three_sources
    path = tmp_path / "scores.npz"
    bank = _bank(three_sources, path=path)
    first = bench.nested_policies(bank, digests, POLICIES)
    assert set(first["chosen"]) == {"A", "E", "Q"}
    for split in first["chosen"].values():
        assert split["chosen"] == max(POLICIES, key=lambda n: split["inner"][n])
    assert path.exists() and bank.new == 0
    # a second bank reads every score from the file: nothing is tuned again
    again = _bank(three_sources, path=path)
    assert again.stored.keys() == bank.stored.keys()

    # Scramble source Q's labels: its split's choice, inner scores and outputs cannot change.
    q = np.flatnonzero(np.array(sources) == "Q")
    scrambled = truth.copy()
    scrambled[q] = np.random.default_rng(0).permutation(truth[q], axis=1)
    assert not np.array_equal(scrambled, truth)
    second = bench.nested_policies(_bank(three_sources, scrambled), digests, POLICIES)
    assert second["chosen"]["Q"]["chosen"] == first["chosen"]["Q"]["chosen"]
    assert second["chosen"]["Q"]["inner"] == pytest.approx(first["chosen"]["Q"]["inner"])
    np.testing.assert_array_equal(second["nested"][q], first["nested"][q])
    for name in POLICIES:
        np.testing.assert_array_equal(second["labels"][name][q], first["labels"][name][q])


def test_a_recording_under_two_sources_is_scored_by_rules_tuned_without_its_copy(three_sources):
    """A Q record whose signal is an A record's (A0101 = Q0048 in the shared data) is held out
    with A's records where the training records are scored source by source, as
    RulesClassifier groups them: never by rules tuned on its own copy."""
    records, values, sources, digests, truth, task, _ = three_sources
    a, q = sources.index("A"), sources.index("Q")
    twins = list(digests)
    twins[q] = twins[a]
    bank = bench.ScoreBank(
        [values[n] for n in records.names], records.names, truth, sources, task, None, "k", twins
    )
    train = np.arange(len(sources))
    scores, groups = bench.out_of_source(bank, train)
    assert groups[q] == "A" and groups[a] == "A"
    without_a = train[np.array(groups) != "A"]
    assert a not in without_a and q not in without_a
    np.testing.assert_array_equal(scores[q], bank.scores(without_a)[q])


def test_reliability_table_bins_and_errors(three_sources):
    _records, _values, _sources, digests, truth, task, _ = three_sources
    probabilities = bench.held_out_probabilities(_bank(three_sources), digests)
    assert set(probabilities) == {"raw", "platt", "isotonic"}
    for p in probabilities.values():
        assert p.shape == truth.shape and np.all((p >= 0) & (p <= 1))
    table = bench.reliability(probabilities, truth, list(task.classes), min_positives=3)
    assert table
    for row in table.values():
        for kind in probabilities:
            counted = sum(b["n"] for b in row[kind]["bins"] if b is not None)
            assert counted == len(truth)
            assert 0 <= row[kind]["ece"] <= 1 and 0 <= row[kind]["brier"] <= 1


def test_main_prints_every_row(three_sources, tmp_path, capsys, monkeypatch):
    _, _, _, _, _, _, root = three_sources
    data = tmp_path / "data"
    (data / "challenge").mkdir(parents=True)
    (data / "ludb_challenge").mkdir()
    for path in root.glob("*/*"):  # source Q in the second folder: neither folder is empty
        folder = "ludb_challenge" if path.parent.name == "Q" else "challenge"
        (data / folder / path.name).symlink_to(path)
    monkeypatch.setattr(bench, "POLICIES", ("vote", "expected"))
    args = bench.get_parser().parse_args(
        ["--data", str(data), "--bootstrap", "20", "--json", str(tmp_path / "out.json")]
    )
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    for row in ("| prevalence |", "| shipped rules |", "| policy vote |", "| nested choice (2"):
        assert row in out
    assert "Reliability on held-out sources" in out
    assert (tmp_path / "out.json").exists()


def test_policies_option_defaults_to_the_declared_ones_and_refuses_unknown_names(tmp_path):
    assert bench.get_parser().parse_args([]).policies == list(bench.POLICIES)
    args = bench.get_parser().parse_args(["--data", str(tmp_path), "--policies", "vote", "nope"])
    with pytest.raises(ValueError, match="unknown --policies 'nope'"):
        bench.main(args)  # refused before any record is read


def test_policies_option_refuses_a_name_given_twice(tmp_path):
    """A repeated name would be scored twice per inner split, and the inner metric would then
    compare twice the records' outputs with their labels."""
    args = bench.get_parser().parse_args(
        ["--data", str(tmp_path), "--policies", "vote", "half", "vote"]
    )
    with pytest.raises(ValueError, match="--policies names 'vote' twice"):
        bench.main(args)  # refused before any record is read
