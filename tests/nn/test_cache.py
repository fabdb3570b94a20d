"""The preprocessed-signal cache: reuse without reloading, keys, failures, the dataset."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import team_code.data.records as records_module
from team_code.data.records import RecordSet, find_records
from team_code.nn.cache import SignalDataset, cache_key, cached_signals


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
def few_records(challenge_dir, tmp_path):
    """Four real records and one whose signal file is missing (header copied alone)."""
    paths = find_records(challenge_dir)[:4]
    broken = tmp_path / "data" / "BROKEN.hea"
    broken.parent.mkdir()
    broken.write_text(paths[0].read_text().replace(paths[0].stem, "BROKEN"))
    return RecordSet([*paths[:2], broken, *paths[2:]])


def test_second_run_reads_the_cache_not_the_records(few_records, tmp_path, monkeypatch):
    calls = counting(monkeypatch)
    messages = []
    prep = functools.partial(first_lead_head, n=1000)
    settings = {"kind": "test/1", "n": 1000}
    first = cached_signals(few_records, prep, settings, tmp_path / "c", log=messages.append)
    assert calls["n"] == 5  # every record read once
    assert first.failures == [("BROKEN", "signal file BROKEN.mat is missing")]
    assert any("BROKEN" in m for m in messages)
    assert list(first.kept) == [0, 1, 3, 4] and first.array.shape == (4, 1, 1000)
    assert first.array.dtype == np.float16 and first.path.suffix == ".npy"
    expected = np.stack([few_records[i].signal[:1, :1000] for i in first.kept])
    calls["n"] = 0
    second = cached_signals(few_records, prep, settings, tmp_path / "c", log=messages.append)
    assert calls["n"] == 0  # nothing re-read
    assert isinstance(second.array, np.memmap)
    assert second.names == first.names and second.failures == first.failures
    np.testing.assert_allclose(second.array, expected, atol=2e-3, rtol=1e-3)  # float16
    # other settings make another file
    other = cached_signals(
        few_records,
        functools.partial(first_lead_head, n=500),
        {"kind": "test/1", "n": 500},
        tmp_path / "c",
        dtype="float32",
        log=None,
    )
    assert other.path != first.path and other.array.shape == (4, 1, 500)
    assert len(list((tmp_path / "c").glob("*.npy"))) == 2
    assert not list((tmp_path / "c").glob(".*"))  # no temporary files left


def test_key_follows_settings_and_record_list(few_records):
    key = cache_key(few_records, {"a": 1}, "float16")
    assert key == cache_key(few_records, {"a": 1}, "float16")
    assert key != cache_key(few_records, {"a": 2}, "float16")
    assert key != cache_key(few_records, {"a": 1}, "float32")
    assert key != cache_key(few_records.subset([0, 1]), {"a": 1}, "float16")


def test_env_variable_and_in_memory_fallback(few_records, tmp_path, monkeypatch):
    prep = functools.partial(first_lead_head, n=100)
    monkeypatch.delenv("ECG_KIT_CACHE", raising=False)
    memory = cached_signals(few_records, prep, {"kind": "t"}, None, log=None)
    assert memory.path is None and memory.array.shape == (4, 1, 100)
    monkeypatch.setenv("ECG_KIT_CACHE", str(tmp_path / "env"))
    on_disk = cached_signals(few_records, prep, {"kind": "t"}, None, log=None)
    assert on_disk.path.parent == tmp_path / "env"
    np.testing.assert_array_equal(memory.array, on_disk.array)


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
