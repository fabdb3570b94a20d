"""Caches that do not multiply: a hybrid's folds and refit share one entry per record, the
rules measure each record once per training, and train() removes or keeps MODEL/.cache."""

from __future__ import annotations

import dataclasses

import pytest

import team_code.classifiers.measurements as measurements
import team_code.classifiers.parallel_cnn as parallel_cnn
import train_model
from team_code import harness
from team_code.classifiers.hybrid import HybridClassifier, HybridConfig
from team_code.context import RunContext, Task
from team_code.data.records import RecordSet
from team_code.data.synth import generate_dataset
from team_code.nn.packed import packed_entries
from team_code.record_cache import folder_bytes

N_RECORDS = 12


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return RecordSet(generate_dataset(folder, N_RECORDS, seed=5, duration_s=3))


def count_calls(monkeypatch, module, name):
    calls = {"n": 0}
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def hybrid_config(cache, n_folds):
    # One window covers the 3-s records (3 s at 100 Hz): a longer record is scored from all of
    # its windows, computed at prediction time, which is not the cache this test counts.
    quick = {**dataclasses.asdict(parallel_cnn.ParallelCNNClassifier.quick_config()), "length": 300}
    options = {
        "rules": {"tune": True, "decision": "half", "decision_policy": "thresholds"},
        "parallel_cnn": quick,
    }
    return HybridConfig(members=("rules", "parallel_cnn"), n_folds=n_folds, member_options=options)


def cached(cache):
    """A run context with ``cache`` as its per-record cache and one measuring process."""
    return RunContext(cache_dir=str(cache), workers=1, progress=False)


def kinds(cache):
    """Cache folder name prefix -> (entries, bytes, one entry's bytes)."""
    out = {}
    for folder in cache.iterdir():
        entries = [p for p in folder.iterdir() if p.name not in ("settings.json", "failures.json")]
        kind = folder.name.rsplit("-", 1)[0]
        out[kind] = (len(entries), folder_bytes(folder), entries[0].stat().st_size)
    return out


def test_a_hybrid_measures_and_preprocesses_each_record_once(records, tmp_path, monkeypatch):
    measured = count_calls(monkeypatch, measurements, "measure_record")
    preprocessed = count_calls(monkeypatch, parallel_cnn, "preprocess_signal")
    cache = tmp_path / "cache3"
    model = HybridClassifier(hybrid_config(cache, 3)).fit(records, Task(), cached(cache))
    # 3 folds (training part and held-out part) and the refit read every record 4 times
    assert measured["n"] == N_RECORDS
    assert preprocessed["n"] == N_RECORDS
    found = kinds(cache)
    assert set(found) == {"rules-measurements-1", "parallel_cnn-1"}
    assert found["rules-measurements-1"][0] == N_RECORDS  # one JSON entry per record
    # the network inputs: one packed array holding each record's entry once (float16 12 x 300)
    (folder,) = [f for f in cache.iterdir() if f.name.startswith("parallel_cnn-1")]
    assert len(packed_entries(folder)) == N_RECORDS
    one = 12 * 300 * 2
    assert N_RECORDS * one <= folder_bytes(folder) <= 1.2 * N_RECORDS * one
    # the saved members keep no training cache: a loaded model computes in memory
    model.save(tmp_path / "model")
    loaded = HybridClassifier.load(tmp_path / "model")
    before = folder_bytes(cache)
    loaded.predict_proba(records.subset([0, 1]))
    assert folder_bytes(cache) == before


@pytest.mark.slow
def test_the_cache_does_not_depend_on_the_number_of_folds(records, tmp_path):
    sizes = []
    for n_folds in (2, 4):
        cache = tmp_path / f"cache{n_folds}"
        HybridClassifier(hybrid_config(cache, n_folds)).fit(records, Task(), cached(cache))
        sizes.append(folder_bytes(cache))
    assert sizes[0] == sizes[1] > 0


def same_values(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (a[k] != a[k] and b[k] != b[k])
        for k in a  # NaN == NaN
    )


def test_cached_measurements_equal_direct_ones(records, tmp_path, monkeypatch):
    from team_code.dsp.features import FeatureConfig

    config = FeatureConfig()
    subset = records.subset(range(4))
    direct = [measurements.record_measurements(subset[i], config) for i in range(4)]
    parallel = measurements.measure_all(subset, config, tmp_path, workers=2)  # 2 processes
    calls = count_calls(monkeypatch, measurements, "measure_record")
    again = measurements.measure_all(subset, config, tmp_path, workers=1)
    assert calls["n"] == 0  # read from the cache
    for d, p, a in zip(direct, parallel, again):
        assert same_values(d["values"], p["values"]) and same_values(d["values"], a["values"])
        assert d["notes"] == a["notes"]
    # another feature setting is another cache entry
    measurements.measure_all(subset, FeatureConfig(max_duration_s=1.0), tmp_path, workers=1)
    assert calls["n"] == 4


def train_rules(data, model, **kwargs):
    messages = []
    options = {"rules": {"decision": "half", "decision_policy": "thresholds"}}
    harness.train(data, model, ["rules"], options, log=messages.append, workers=1, **kwargs)
    return messages


def test_train_removes_the_model_cache_unless_kept(records, tmp_path, monkeypatch):
    monkeypatch.delenv("ECG_KIT_CACHE", raising=False)
    data = records.paths[0].parent
    kept = tmp_path / "kept"
    messages = train_rules(data, kept, cache="keep")
    folders = list((kept / ".cache").iterdir())
    assert [f.name.rsplit("-", 1)[0] for f in folders] == ["rules-measurements-1"]
    assert len(list(folders[0].glob("*.json"))) == N_RECORDS + 1  # entries + settings.json
    assert any(m.startswith("cache: ") and m.endswith(", kept") for m in messages)
    removed = tmp_path / "removed"
    messages = train_rules(data, removed)  # the default
    assert (removed / "manifest.json").is_file() and not (removed / ".cache").exists()
    assert any("removed" in m for m in messages)
    # a $ECG_KIT_CACHE folder is the user's: kept
    monkeypatch.setenv("ECG_KIT_CACHE", str(tmp_path / "mine"))
    train_rules(data, tmp_path / "env")
    assert len(list((tmp_path / "mine").rglob("*.json"))) == N_RECORDS + 1
    with pytest.raises(ValueError, match="cache must be one of"):
        train_rules(data, tmp_path / "bad", cache="sometimes")


def test_train_model_cache_option():
    parser = train_model.get_parser()
    assert parser.parse_args(["d", "m"]).cache == "remove"
    assert parser.parse_args(["d", "m", "--cache", "keep"]).cache == "keep"
    with pytest.raises(SystemExit):
        parser.parse_args(["d", "m", "--cache", "bound"])
