"""Cross-validation splits users can trust.

- :func:`grouped_kfold`: k folds in which records with identical signals (the same recording
  released under two names, like ``E07509``/``E07510``) always land on the same side, and
  whose label distribution is kept close to the whole set's by a greedy assignment of the
  groups with the rarest labels first;
- :func:`leave_one_source_out`: one fold per Challenge source (record-name prefix), the
  protocol that shows how a model does on a hospital it has not seen;
- :func:`source_groups`: groups for :func:`grouped_kfold` that keep whole sources together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from team_code.data.records import Record, RecordSet
from team_code.runs import file_digest


def _signal_file_digest(path: Path) -> str:
    """The md5 of a signal file's bytes (:func:`team_code.runs.file_digest`: read once per
    process while the file is unchanged, as the hybrid's folds and every rules fit inside them
    ask for the same records' digests); a file that cannot be read gets a digest of its own
    path, shared with no other record."""
    try:
        return file_digest(path, "md5")
    except OSError:
        return f"unreadable:{path}"


def signal_digests(records: Sequence[Record]) -> list[str]:
    """A digest per record's signal: equal digests mean identical recordings.

    For a lazy :class:`RecordSet` the signal files' bytes are hashed (no parsing; each file
    once per process while it is unchanged; a file that cannot be read is a group of its
    own, and reading it is left to whatever reads the record); for in-memory records the
    float32 samples are.
    """
    if isinstance(records, RecordSet):
        return [_signal_file_digest(h.path.parent / h.signal_file) for h in records.headers]
    return [
        hashlib.md5(np.ascontiguousarray(r.signal).tobytes(), usedforsecurity=False).hexdigest()
        for r in records
    ]


def grouped_kfold(
    labels: np.ndarray, groups: Sequence[str], n_folds: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_index, test_index) pairs; every group's records share a fold.

    Groups are taken rarest-label first (ties broken by a seeded shuffle) and each goes to the
    fold that currently holds the fewest positives of that group's rarest label (then the
    fewest records), which spreads rare classes over the folds.
    """
    labels = np.asarray(labels, dtype=bool)
    n = len(labels)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2 (got {n_folds})")
    unique_groups, group_of = np.unique(np.asarray(groups), return_inverse=True)
    if len(unique_groups) < n_folds:
        raise ValueError(f"{len(unique_groups)} distinct recordings cannot fill {n_folds} folds")
    rng = np.random.default_rng(seed)
    group_labels = np.zeros((len(unique_groups), labels.shape[1]), dtype=bool)
    np.logical_or.at(group_labels, group_of, labels)
    counts = labels.sum(axis=0)
    rarity = np.where(group_labels, counts[np.newaxis, :], n + 1).min(axis=1)
    order = np.lexsort((rng.permutation(len(unique_groups)), rarity))
    fold_counts = np.zeros((n_folds, labels.shape[1]))
    fold_sizes = np.zeros(n_folds)
    fold_of_group = np.empty(len(unique_groups), dtype=int)
    group_sizes = np.bincount(group_of)
    for g in order:
        present = np.flatnonzero(group_labels[g])
        if len(present):
            rarest = present[np.argmin(counts[present])]
            key = np.lexsort((fold_sizes, fold_counts[:, rarest]))
        else:
            key = np.argsort(fold_sizes, kind="stable")
        fold = int(key[0])
        fold_of_group[g] = fold
        fold_counts[fold] += group_labels[g]
        fold_sizes[fold] += group_sizes[g]
    fold_of_record = fold_of_group[group_of]
    return [
        (np.flatnonzero(fold_of_record != k), np.flatnonzero(fold_of_record == k))
        for k in range(n_folds)
    ]


def leave_one_source_out(
    sources: Sequence[str], groups: Sequence[str] | None = None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(source, train_index, test_index) for each source; identical signals stay together.

    A recording released under two sources' names is kept out of training when either copy
    is tested.
    """
    sources = np.asarray(sources)
    groups = np.asarray(groups if groups is not None else np.arange(len(sources)).astype(str))
    splits = []
    for source in sorted(set(sources.tolist())):
        test = sources == source
        leaked = np.isin(groups, groups[test])
        splits.append((source, np.flatnonzero(~leaked), np.flatnonzero(test)))
    return splits


def source_groups(sources: Sequence[str], digests: Sequence[str]) -> list[str]:
    """Each record's source as its group, except that a recording released under two
    sources' names (``A0101`` = ``Q0048``) takes the source of its first copy for both.

    Given to :func:`grouped_kfold`, hospitals fall on one side of every split (and identical
    signals still do), so out-of-fold scores are scores on sources the model has not seen.
    """
    first_source: dict[str, str] = {}
    for source, digest in zip(sources, digests, strict=True):
        first_source.setdefault(digest, source)
    return [first_source[digest] for digest in digests]


def take(records: Sequence[Record], index: Sequence[int]) -> Sequence[Record]:
    """The records at ``index``, staying lazy for a :class:`RecordSet`."""
    if isinstance(records, RecordSet):
        return records.subset(list(index))
    return [records[i] for i in index]
