"""The per-record cache: one entry per record shared by every subset, keys, failures, size."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import torch

import team_code.data.records as records_module
from team_code.data.records import RecordSet, find_records
from team_code.data.synth import generate_dataset
from team_code.nn.cache import ComputedRows, SignalDataset, cached_inputs
from team_code.record_cache import (
    JSON_FORMAT,
    default_cache_dir,
    folder_bytes,
    per_record,
    settings_digest,
)


def first_lead_head(record, n):
    """Lead I's first n samples, shape (1, n)."""
    return record.signal[:1, :n]


def counting(monkeypatch):
    calls = {"n": 0}
    original = records_module.load_record

    def wrapped(path):
        calls["n"] += 1
        return original(path)

    monkeypatch.setattr(records_module, "load_record", wrapped)
    return calls


@pytest.fixture
def few_records(records_dir, tmp_path):
    """Four records and one whose signal file is missing (header copied alone)."""
    paths = find_records(records_dir)[:4]
    broken = tmp_path / "data" / "BROKEN.hea"
    broken.parent.mkdir()
    broken.write_text(paths[0].read_text().replace(paths[0].stem, "BROKEN"))
    return RecordSet([*paths[:2], broken, *paths[2:]])


@pytest.fixture
def synthetic(tmp_path):
    """Six synthetic records written to disk (their files can be changed)."""
    return RecordSet(generate_dataset(tmp_path / "syn", 6, seed=3, duration_s=2))


def test_second_run_reads_the_cache_not_the_records(few_records, tmp_path, monkeypatch):
    calls = counting(monkeypatch)
    messages = []
    prep = functools.partial(first_lead_head, n=1000)
    settings = {"kind": "test/1", "n": 1000}
    first = cached_inputs(
        few_records, prep, settings, tmp_path / "c", log=messages.append, packed=False
    )
    assert calls["n"] == 5  # every record read once
    assert first.failures == [("BROKEN", "signal file BROKEN.mat is missing")]
    assert any("BROKEN" in m for m in messages)
    assert list(first.kept) == [0, 1, 3, 4] and len(first.items) == 4
    assert first.items[0].shape == (1, 1000) and first.items[0].dtype == np.float16
    assert first.folder.parent == tmp_path / "c" and first.folder.name.startswith("test-1-")
    expected = np.stack([few_records[i].signal[:1, :1000] for i in first.kept])
    calls["n"] = 0
    second = cached_inputs(
        few_records, prep, settings, tmp_path / "c", log=messages.append, packed=False
    )
    assert calls["n"] == 0  # nothing re-read, the failure not retried
    assert second.failures == first.failures and list(second.kept) == list(first.kept)
    stack = np.stack([second.items[i] for i in range(len(second))])
    np.testing.assert_allclose(stack, expected, atol=2e-3, rtol=1e-3)  # float16
    # other settings (or dtype) make another folder
    other = cached_inputs(
        few_records,
        functools.partial(first_lead_head, n=500),
        {"kind": "test/1", "n": 500},
        tmp_path / "c",
        dtype="float32",
        log=None,
        packed=False,
    )
    assert other.folder != first.folder and other.items[0].shape == (1, 500)
    assert other.items[0].dtype == np.float32
    assert len(list((tmp_path / "c").rglob("*.npy"))) == 8  # 4 records x 2 settings
    assert not list((tmp_path / "c").rglob(".*.tmp"))  # no temporary files left


def test_subsets_share_one_entry_per_record(synthetic, tmp_path, monkeypatch):
    """Folds are subsets: a record in two of them is computed once, and the cache holds one
    entry per record whatever the number of subsets asked."""
    calls = counting(monkeypatch)
    prep = functools.partial(first_lead_head, n=300)
    settings = {"kind": "test/1"}
    n = len(synthetic)
    folds = [[0, 1, 2, 3], [2, 3, 4, 5], [0, 1, 4, 5], list(range(n))]
    seen = {}
    for fold in folds:
        got = cached_inputs(
            synthetic.subset(fold), prep, settings, tmp_path / "c", log=None, packed=False
        )
        for position, i in enumerate(fold):
            row = np.asarray(got.items[position])
            if i in seen:
                np.testing.assert_array_equal(row, seen[i])
            seen[i] = row
    assert calls["n"] == n  # each record loaded once over four overlapping subsets
    entries = list((tmp_path / "c").rglob("*.npy"))
    assert len(entries) == n
    one_entry = entries[0].stat().st_size
    assert one_entry == 300 * 2 + 128  # float16 samples and the .npy header
    # the whole folder: n entries plus settings.json
    assert n * one_entry <= folder_bytes(tmp_path / "c") <= 1.2 * n * one_entry


def test_a_changed_record_file_or_setting_gets_a_new_entry(synthetic, tmp_path, monkeypatch):
    prep = functools.partial(first_lead_head, n=200)
    first = cached_inputs(synthetic, prep, {"kind": "t"}, tmp_path, log=None, packed=False)
    header = synthetic.paths[2]
    signal_file = header.with_suffix(".mat")
    data = bytearray(signal_file.read_bytes())
    data[-2:] = b"\x10\x27"  # the last sample of the last lead changes
    signal_file.write_bytes(bytes(data))
    stat = signal_file.stat()
    os.utime(signal_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    calls = counting(monkeypatch)
    again = cached_inputs(
        RecordSet(synthetic.paths), prep, {"kind": "t"}, tmp_path, log=None, packed=False
    )
    assert calls["n"] == 1  # only the changed record is read again
    assert again.folder == first.folder and len(list(first.folder.glob("*.npy"))) == 7
    other = cached_inputs(synthetic, prep, {"kind": "t", "x": 1}, tmp_path, log=None)
    assert other.folder != first.folder and calls["n"] == 1 + len(synthetic)


def test_code_is_part_of_the_key():
    assert settings_digest({"a": 1}) == settings_digest({"a": 1})
    assert settings_digest({"a": 1}) != settings_digest({"a": 2})
    assert settings_digest({"a": 1}) != settings_digest({"a": 1}, code=("team_code.dsp.qrs",))
    with pytest.raises(ValueError, match="no module"):
        settings_digest({}, code=("team_code.no_such_module",))


def test_the_reader_and_the_kit_version_are_part_of_every_key(monkeypatch, tmp_path):
    """Every cached value is computed from a record the reader made: a changed reader (its
    lead names, units, refusals) or kit version makes new folders, also for settings that name
    no code, so a record read 1000 times too small by an old reader is never reused."""
    import team_code
    from team_code import record_cache

    before = settings_digest({"a": 1}, code=("team_code.dsp.qrs",))
    monkeypatch.setattr(team_code, "__version__", "0.0.0-other")
    assert settings_digest({"a": 1}, code=("team_code.dsp.qrs",)) != before
    monkeypatch.undo()
    reader = record_cache._source_files("team_code.data.records")[0]
    changed = tmp_path / reader.name
    changed.write_text(reader.read_text() + "\n# a change\n")
    original = record_cache._source_files

    def with_changed_reader(module):
        return [changed] if module == "team_code.data.records" else original(module)

    monkeypatch.setattr(record_cache, "_source_files", with_changed_reader)
    assert settings_digest({"a": 1}, code=("team_code.dsp.qrs",)) != before


def test_every_engine_keys_its_inputs_by_its_own_preprocessing_code():
    from team_code.classifiers.cwt_googlenet import IMAGE_CODE
    from team_code.classifiers.parallel_cnn import PREPROCESS_CODE

    assert {"team_code.classifiers.deep", "team_code.classifiers.parallel_cnn"} <= set(
        PREPROCESS_CODE
    )
    assert {"team_code.classifiers.cwt_googlenet", "team_code.nn.cwt_torch"} <= set(IMAGE_CODE)


def test_json_entries_keep_nan_and_numpy_numbers(synthetic, tmp_path):
    def mean_and_nan(record):
        return {"mean": float(record.signal.mean()), "gap": float("nan"), "n": np.int64(3)}

    memory = per_record(synthetic, mean_and_nan, {"kind": "j"}, "none", log=None)
    assert memory.folder is None and memory.items[0]["n"] == 3
    stored = per_record(synthetic, mean_and_nan, {"kind": "j"}, tmp_path, fmt=JSON_FORMAT)
    assert [v["mean"] for v in stored.items] == [v["mean"] for v in memory.items]
    assert all(np.isnan(v["gap"]) for v in stored.items)


def test_worker_processes_fill_the_same_cache(synthetic, tmp_path):
    prep = functools.partial(first_lead_head, n=100)
    one = cached_inputs(synthetic, prep, {"kind": "w"}, tmp_path / "a", log=None)
    two = cached_inputs(synthetic, prep, {"kind": "w"}, tmp_path / "b", num_workers=2, log=None)
    assert len(two) == len(synthetic) and not two.failures
    for i in range(len(synthetic)):
        np.testing.assert_array_equal(one.items[i], two.items[i])


def test_env_variable_and_in_memory_fallback(few_records, tmp_path, monkeypatch):
    prep = functools.partial(first_lead_head, n=100)
    monkeypatch.delenv("ECG_KIT_CACHE", raising=False)
    assert default_cache_dir("auto") is None and default_cache_dir("none") is None
    memory = cached_inputs(few_records, prep, {"kind": "t"}, None, log=None)
    assert memory.folder is None and len(memory.items) == 4
    assert memory.items[0].dtype == np.float16
    monkeypatch.setenv("ECG_KIT_CACHE", str(tmp_path / "env"))
    on_disk = cached_inputs(few_records, prep, {"kind": "t"}, None, log=None)
    assert on_disk.folder.parent == tmp_path / "env"
    assert default_cache_dir("none") is None  # "none" wins over the environment
    for i in range(4):
        np.testing.assert_array_equal(memory.items[i], on_disk.items[i])


def test_non_finite_inputs_are_left_out(synthetic, tmp_path):
    def spoiled(record):
        signal = record.signal[:1, :10].copy()
        if record.name.endswith("2"):
            signal[0, 0] = np.nan
        return signal

    got = cached_inputs(synthetic, spoiled, {"kind": "nan"}, tmp_path, log=None)
    assert got.failures == [(synthetic.names[1], "preprocessed signal is not finite")]
    with pytest.raises(records_module.RecordError, match=synthetic.names[1]):
        got.raise_failures("cannot preprocess it")


def test_signal_dataset_items():
    array = np.arange(24, dtype=np.float16).reshape(4, 2, 3)
    targets = np.array([[1, 0], [0, 1]], dtype=bool)
    data = SignalDataset(array, targets, rows=[3, 1], transform=lambda x: x * 2)
    x, y = data[0]
    assert x.dtype == torch.float32 and torch.equal(x, torch.tensor(array[3] * 2.0))
    assert torch.equal(y, torch.tensor([1.0, 0.0]))
    assert len(data) == 2 and SignalDataset(array)[1].shape == (2, 3)
    with pytest.raises(ValueError, match="targets"):
        SignalDataset(array, targets)
    rows = ComputedRows([array[0], array[1]], lambda a: a + 1)
    assert len(rows) == 2 and np.array_equal(SignalDataset(rows)[1].numpy(), array[1] + 1)
