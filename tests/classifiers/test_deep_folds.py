"""The deep engines' per-source networks learn nothing from the source they are scored on."""

from __future__ import annotations

import dataclasses

import numpy as np

from team_code.classifiers.deep import DeepClassifier
from team_code.classifiers.parallel_cnn import ParallelCNNClassifier
from team_code.context import RunContext, Task
from team_code.data.records import RecordSet
from team_code.data.synth import generate_dataset


def _two_sources(folder):
    generate_dataset(folder, 8, seed=3, fs=250, duration_s=6, prefix="A")
    generate_dataset(folder, 8, seed=4, fs=250, duration_s=6, prefix="E")
    return [record for record in RecordSet.from_folder(folder)]


def _trained_targets(records, monkeypatch) -> dict[str, np.ndarray]:
    """Each network's training targets (labels and loss weights of its training rows)."""
    seen: dict[str, np.ndarray] = {}
    original = DeepClassifier._train

    def spy(self, stored, truth, targets, train_rows, val_rows, part=None):
        seen[part or "all"] = np.asarray(targets)[train_rows].copy()
        return original(self, stored, truth, targets, train_rows, val_rows, part)

    monkeypatch.setattr(ParallelCNNClassifier, "_train", spy)
    config = dataclasses.replace(
        ParallelCNNClassifier.quick_config(),
        threshold_split="sources",
        label_mask="source",
        source_balance=True,
    )
    ParallelCNNClassifier(config).fit(records, Task(), RunContext(cache_dir="none", progress=False))
    return seen


def test_the_held_out_sources_labels_do_not_reach_its_networks_targets(
    tmp_path, monkeypatch, one_thread
):
    records = _two_sources(tmp_path / "data")
    before = _trained_targets(records, monkeypatch)
    # Source A relabelled: every record carries left axis deviation, which E never has.
    relabelled = [
        dataclasses.replace(r, labels=("39732003",)) if r.name.startswith("A") else r
        for r in records
    ]
    after = _trained_targets(relabelled, monkeypatch)
    assert set(before) == {"source-A", "source-E", "all"}
    # The network scored on A trained on E alone: its targets and weights are the same.
    np.testing.assert_array_equal(before["source-A"], after["source-A"])
    # The network scored on E trained on A, whose labels changed: its targets did too.
    assert not np.array_equal(before["source-E"], after["source-E"], equal_nan=True)
