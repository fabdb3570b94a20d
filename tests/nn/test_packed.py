"""Packed caches: one memory-mapped array per cache folder, rebuilt when a record changes, and
batches read in one indexing operation."""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from team_code.data.records import RecordSet
from team_code.data.synth import generate_dataset
from team_code.nn.cache import SignalDataset, cached_inputs
from team_code.nn.packed import INDEX_FILE, PackedRows, pack, packed_entries, record_of_entry
from team_code.nn.training import TrainConfig, _loader, predict
from team_code.record_cache import folder_bytes


def head(record, n):
    """Lead I's first n samples, shape (1, n)."""
    return record.signal[:1, :n]


def all_leads_head(record, n):
    """Every lead's first n samples."""
    return record.signal[:, :n]


class Counted:
    """A preprocessing that counts the records it is given."""

    def __init__(self, function):
        self.function, self.n = function, 0

    def __call__(self, record):
        self.n += 1
        return self.function(record)


def synthetic(tmp_path, n=6):
    return RecordSet(generate_dataset(tmp_path / "syn", n, seed=3, duration_s=2))


def test_folds_share_one_pack_that_holds_each_value_once(tmp_path):
    records = synthetic(tmp_path)
    expected = [r.signal[:1, :300] for r in records]
    prep = Counted(functools.partial(head, n=300))
    n = len(records)
    seen = {}
    for fold in ([0, 1, 2, 3], [2, 3, 4, 5], [0, 1, 4, 5], list(range(n))):
        got = cached_inputs(records.subset(fold), prep, {"kind": "p"}, tmp_path / "c", log=None)
        assert isinstance(got.items, PackedRows) and isinstance(got.items.array, np.memmap)
        for position, i in enumerate(fold):
            row = np.asarray(got.items[position])
            assert row.shape == (1, 300) and row.dtype == np.float16
            if i in seen:
                np.testing.assert_array_equal(row, seen[i])
            seen[i] = row
            np.testing.assert_allclose(row, expected[i], atol=2e-3, rtol=1e-3)
    assert prep.n == n  # each record preprocessed once
    folder = got.folder
    assert not list(folder.glob("*.npy"))  # the values live in the pack alone
    packs = list(folder.glob("packed-*.pack"))
    assert len(packs) == 1
    assert {record_of_entry(e) for e in packed_entries(folder)} == set(records.names)
    assert np.load(packs[0], mmap_mode="r").shape == (n, 1, 300)
    # n values of 600 bytes once, plus the .npy header and the small JSON files
    assert n * 600 <= folder_bytes(tmp_path / "c") <= n * 600 + 4096


def test_a_changed_record_rebuilds_the_pack_and_reads_that_record_alone(tmp_path):
    records = synthetic(tmp_path)
    prep = Counted(functools.partial(all_leads_head, n=200))
    first = cached_inputs(records, prep, {"kind": "t"}, tmp_path / "c", log=None)
    before = np.asarray(first.items.take(np.arange(len(records)))).copy()
    signal_file = records.paths[2].with_suffix(".mat")
    data = bytearray(signal_file.read_bytes())
    data[60:62] = b"\x10\x27"  # a sample of lead I changes
    signal_file.write_bytes(bytes(data))
    stat = signal_file.stat()
    os.utime(signal_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    prep.n = 0
    again = cached_inputs(RecordSet(records.paths), prep, {"kind": "t"}, tmp_path / "c", log=None)
    assert prep.n == 1  # only the changed record is read again
    after = again.items.take(np.arange(len(records)))
    changed = [i for i in range(len(records)) if not np.array_equal(before[i], after[i])]
    assert changed == [2]
    # the pack holds the new version only; the old one is gone with the old pack file
    assert len(packed_entries(again.folder)) == len(records)
    assert len(list(again.folder.glob("packed-*.pack"))) == 1
    # unchanged request: the pack is read as it is
    prep.n = 0
    index = (again.folder / INDEX_FILE).read_text()
    cached_inputs(RecordSet(records.paths), prep, {"kind": "t"}, tmp_path / "c", log=None)
    assert prep.n == 0 and (again.folder / INDEX_FILE).read_text() == index


def test_a_batch_is_one_indexing_operation(tmp_path):
    array = np.arange(5 * 2 * 3, dtype=np.float16).reshape(5, 2, 3)
    path = tmp_path / "a.npy"
    np.save(path, array)
    reads = []

    class Counted(np.ndarray):
        def __getitem__(self, index):
            reads.append(index)
            return super().__getitem__(index)

    rows = PackedRows(np.load(path, mmap_mode="r").view(Counted), rows=[4, 0, 2, 3])
    targets = np.eye(3, dtype=np.float32)
    data = SignalDataset(rows, targets, rows=[3, 0, 2])
    x, y = data[[0, 2, 1]]  # items 0, 2, 1: rows[3], rows[2], rows[0] -> pack rows 3, 2, 4
    assert len(reads) == 1  # one fancy index, not three reads
    assert x.dtype == torch.float16 and x.shape == (3, 2, 3)
    np.testing.assert_array_equal(x.numpy(), array[[3, 2, 4]])
    np.testing.assert_array_equal(y.numpy(), targets[[0, 2, 1]])
    reads.clear()
    np.testing.assert_array_equal(rows.take([2, 3]), array[[2, 3]])  # consecutive: a slice
    assert isinstance(reads[0], slice)
    # one item as before: float32
    assert data[0][0].dtype == torch.float32 and torch.equal(data[0][0], x[0].float())


def test_the_loaders_yield_whole_batches_equal_to_item_by_item(tmp_path):
    array = np.random.default_rng(0).normal(size=(10, 3, 4)).astype(np.float16)
    rows = pack_folder(tmp_path, array)
    targets = np.random.default_rng(1).random((10, 2)).astype(np.float32)
    data = SignalDataset(rows, targets)
    config = TrainConfig(batch_size=4, seed=3)
    from team_code.nn.training import EpochSampler

    sampler = EpochSampler(len(data), seed=3)
    sampler.set_epoch(1)
    order = list(sampler)
    batches = list(_loader(data, sampler, 4, config, torch.device("cpu"), None, 1))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    x = torch.cat([b[0] for b in batches])
    np.testing.assert_array_equal(x.numpy(), array[order])
    np.testing.assert_array_equal(torch.cat([b[1] for b in batches]).numpy(), targets[order])

    class Sum(torch.nn.Module):
        def forward(self, x):
            return x.float().sum(dim=(1, 2))[:, None]

    out = predict(Sum(), SignalDataset(rows), TrainConfig(batch_size=2))
    np.testing.assert_allclose(out[:, 0], array.astype(np.float32).sum(axis=(1, 2)), rtol=1e-6)


def pack_folder(tmp_path, array):
    """The rows of ``array`` written as cache entries and packed."""
    folder = tmp_path / "pack"
    folder.mkdir()
    names = []
    for i, row in enumerate(array):
        names.append(f"R{i}-0123456789abcdef.npy")
        np.save(folder / names[-1], row)
    return pack(folder, names)
