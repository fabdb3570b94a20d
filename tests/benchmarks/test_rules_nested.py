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
