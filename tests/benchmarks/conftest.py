"""Fixtures of the benchmark tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def three_sources(tmp_path_factory):
    """Synthetic records of three sources (A, E, Q: the record_source prefixes), 12 each, with
    the rules' measurements: ``(records, values, sources, digests, truth, task, root)``. The
    nested benchmarks (rules variants, decision policies) are tested on them."""
    from benchmarks.rules import measure_all
    from team_code.classifiers.cv import signal_digests
    from team_code.context import Task
    from team_code.data.labels import label_matrix, scored_classes
    from team_code.data.records import RecordSet, record_source
    from team_code.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("three_sources")
    for k, prefix in enumerate(("A", "E", "Q")):
        generate_dataset(root / prefix, 12, seed=500 + k, prefix=prefix, duration_s=6)
    records = RecordSet([p for f in ("A", "E", "Q") for p in sorted((root / f).glob("*.hea"))])
    classes = list(scored_classes().codes)
    truth = label_matrix(records.labels, classes)
    sources = [record_source(n) for n in records.names]
    values = measure_all(records, None)
    task = Task.of_classes(classes)
    return records, values, sources, signal_digests(records), truth, task, root
