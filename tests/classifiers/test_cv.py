"""Cross-validation splits: groups never straddle folds; rare classes are spread."""

from __future__ import annotations

import numpy as np
import pytest

from team_code.classifiers.cv import grouped_kfold, leave_one_source_out, signal_digests, take
from team_code.data.labels import label_matrix
from team_code.data.records import RecordSet


def test_grouped_kfold_keeps_groups_together_and_partitions():
    rng = np.random.default_rng(0)
    labels = rng.random((60, 4)) < [0.5, 0.2, 0.05, 0.1]
    groups = [f"g{i // 2}" for i in range(60)]  # pairs of identical recordings
    folds = grouped_kfold(labels, groups, 5, seed=1)
    tests = np.concatenate([t for _, t in folds])
    assert sorted(tests.tolist()) == list(range(60))
    for train, test in folds:
        assert not set(train) & set(test)
        assert not {groups[i] for i in train} & {groups[i] for i in test}


def test_grouped_kfold_spreads_a_rare_class():
    labels = np.zeros((50, 2), bool)
    labels[:5, 1] = True  # five positives of a rare class
    folds = grouped_kfold(labels, [str(i) for i in range(50)], 5)
    assert [int(labels[t, 1].sum()) for _, t in folds] == [1, 1, 1, 1, 1]


def test_grouped_kfold_refuses_too_few_groups():
    with pytest.raises(ValueError, match="cannot fill"):
        grouped_kfold(np.zeros((4, 1), bool), ["a", "a", "b", "b"], 3)


def test_real_identical_signals_are_found_and_kept_together(challenge_dir):
    records = RecordSet.from_folder(challenge_dir)
    digests = signal_digests(records)
    by_name = dict(zip(records.names, digests))
    # Identical recordings under two names (MANIFEST identical_signal_group; A0101 = Q0048 too).
    assert by_name["E07509"] == by_name["E07510"]
    assert by_name["A0101"] == by_name["Q0048"]
    assert len(set(digests)) == 229
    labels = label_matrix(records.labels)
    for train, test in grouped_kfold(labels, digests, 5):
        assert not {digests[i] for i in train} & {digests[i] for i in test}
    sources = [n[:2] if n.startswith("HR") else n[0] for n in records.names]
    splits = leave_one_source_out(sources, digests)
    assert [s for s, _, _ in splits] == ["A", "E", "HR", "Q", "S"]
    a_train = splits[0][1]
    assert "Q0048" not in {records.names[i] for i in a_train}  # the copy of A0101 stays out
    assert [r.name for r in take(records, [0, 2])] == [records.names[0], records.names[2]]


def test_a_signal_file_is_hashed_once_while_unchanged_and_an_unreadable_one_is_its_own_group(
    tmp_path,
):
    """Every rules fit inside the hybrid's folds asks for the same records' digests: a file
    is read once while its size and time are unchanged, again once it changes; a missing
    signal file is a group of its own and leaves the other records' digests as they were
    (reading the record is left to what reads it, which names the record)."""
    import os

    from team_code.data.synth import generate_dataset

    generate_dataset(tmp_path, 3, seed=3, prefix="A", duration_s=2)
    records = RecordSet.from_folder(tmp_path)
    first = signal_digests(records)
    assert len(set(first)) == 3
    mat = tmp_path / f"{records.names[0]}.mat"
    reads = []
    original = type(mat).open

    def counting(self, mode="r", *args, **kwargs):
        if mode.startswith("r"):  # reads only: the test's own write below is not one
            reads.append(self.name)
        return original(self, mode, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(mat), "open", counting)
        assert signal_digests(records) == first and reads == []  # memoised
        data = bytearray(mat.read_bytes())
        reads.clear()
        data[-1] ^= 0xFF
        mat.write_bytes(bytes(data))
        stat = mat.stat()
        os.utime(mat, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        changed = signal_digests(records)
    assert reads == [mat.name] and changed[0] != first[0] and changed[1:] == first[1:]
    mat.unlink()
    missing = signal_digests(records)
    assert missing[0] == f"unreadable:{mat}" and missing[1:] == first[1:]
