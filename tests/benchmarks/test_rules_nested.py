"""benchmarks/rules.py --protocols nested: the choice among rules variants is made without the
held-out source, and every split's choice is reported (records: conftest's three_sources)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import rules as bench


def test_variants_parse_and_default():
    assert bench.parse_variants([]) == bench.NESTED_VARIANTS
    parsed = bench.parse_variants(["a=decision=half", "b=", "c=decision_objective=pooled,n_grid=5"])
    assert parsed == {
        "a": {"decision": "half"},
        "b": {},
        "c": {"decision_objective": "pooled", "n_grid": "5"},
    }
    with pytest.raises(SystemExit):
        bench.parse_variants(["nameless"])
    with pytest.raises(SystemExit):
        bench.parse_variants(["x=decision"])


def test_the_held_out_source_takes_no_part_in_the_choice(three_sources):
    records, values, sources, digests, truth, task, _ = three_sources
    classes = list(task.classes)
    variants = {"shipped": {}, "half": {"decision": "half", "tune": "false"}}
    first = bench.nested_loso(records, values, sources, digests, truth, classes, variants, {})
    assert set(first["chosen"]) == {"A", "E", "Q"}
    for split in first["chosen"].values():
        assert split["chosen"] in variants
        assert set(split["inner"]) == set(variants)
        assert split["chosen"] == max(split["inner"], key=split["inner"].get)

    # Scramble the labels of source Q: what its split chose (and the inner scores it chose
    # by) cannot change; the other splits, which train on Q, may.
    q = np.flatnonzero(np.array(sources) == "Q")
    scrambled = truth.copy()
    scrambled[q] = np.random.default_rng(0).permutation(truth[q], axis=1)
    assert not np.array_equal(scrambled, truth)
    second = bench.nested_loso(records, values, sources, digests, scrambled, classes, variants, {})
    assert second["chosen"]["Q"] == first["chosen"]["Q"]
    assert second["chosen"]["Q"]["inner"] == pytest.approx(first["chosen"]["Q"]["inner"])
    np.testing.assert_array_equal(second["binary"][q], first["binary"][q])


def test_runs_of_different_code_combine_into_one_nested_choice(three_sources, tmp_path):
    """Each held-out source takes its decisions from the run whose chosen variant scored best
    on that split's inner loop; the variants of every run are counted."""
    records, values, sources, digests, truth, task, _ = three_sources
    classes = list(task.classes)
    names = list(records.names)
    runs = {
        "shipped": {"shipped": {}},
        "half": {"half": {"decision": "half", "tune": "false"}, "none": {"tune": "false"}},
    }
    nested = {}
    for run, variants in runs.items():
        nested[run] = bench.nested_loso(
            records, values, sources, digests, truth, classes, variants, {}
        )
        bench.save_nested(tmp_path / f"{run}.npz", names, truth, classes, nested[run], variants)
    combined = bench.combine_nested([tmp_path / "shipped.npz", tmp_path / "half.npz"], n_boot=20)
    assert combined["variants"] == 3
    sources = np.array(sources)
    for source, pick in combined["picks"].items():
        inner = {
            r: n["chosen"][source]["inner"][n["chosen"][source]["chosen"]]
            for r, n in nested.items()
        }
        best = "shipped" if inner["shipped"] >= inner["half"] else "half"
        assert pick["run"].endswith(f"{best}.npz")
        assert pick["inner"] == pytest.approx(inner[best])
        assert pick["variant"] == nested[best]["chosen"][source]["chosen"]
        rows = sources == source
        np.testing.assert_array_equal(combined["binary"][rows], nested[best]["binary"][rows])
    assert {r["source"] for r in combined["by_source"]["rows"]} == {*combined["picks"], "pooled"}

    other = dict(np.load(tmp_path / "half.npz"))
    other["truth"] = ~other["truth"]
    np.savez_compressed(tmp_path / "other.npz", **other)
    with pytest.raises(SystemExit, match="truth differ"):
        bench.combine_nested([tmp_path / "shipped.npz", tmp_path / "other.npz"], n_boot=20)
