"""benchmarks/rules.py --protocols nested: the choice among rules variants is made without the
held-out source, and every split's choice is reported."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import rules as bench


@pytest.fixture(scope="module")
def three_sources(tmp_path_factory):
    """Synthetic records of three sources (A, E, Q: the record_source prefixes)."""
    from team_code.classifiers.cv import signal_digests
    from team_code.data.labels import label_matrix, scored_classes
    from team_code.data.records import RecordSet, record_source
    from team_code.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("nested")
    for k, prefix in enumerate(("A", "E", "Q")):
        generate_dataset(root / prefix, 14, seed=300 + k, prefix=prefix, duration_s=6)
    records = RecordSet([p for f in ("A", "E", "Q") for p in sorted((root / f).glob("*.hea"))])
    classes = list(scored_classes().codes)
    truth = label_matrix(records.labels, classes)
    sources = [record_source(n) for n in records.names]
    values = bench.measure_all(records, None)
    return records, values, sources, signal_digests(records), truth, classes


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
    records, values, sources, digests, truth, classes = three_sources
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
