"""Every registered classifier passes the same contract (timm-style, parametrised over the
registry): fit on real records, scores in [0, 1] of the right shape, thresholds applied by
``predict``, a save/load round trip with identical scores and no pickle, and valid scores for
records that are unusual but legal (a flat record, a long record at 257 Hz, leads in another
order).
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from team_code.classifiers import registry
from team_code.data.labels import scored_classes
from team_code.data.records import STANDARD_LEADS, Record, RecordSet


def _config(name, shared_data):
    cls = registry.get(name)
    config = cls.quick_config()
    if any(f.name == "beat_data" for f in dataclasses.fields(config)):
        config = dataclasses.replace(config, beat_data=(str(shared_data / "mitdb"),))
    if any(f.name == "member_options" for f in dataclasses.fields(config)):
        options = {k: dict(v) for k, v in config.member_options.items()}
        if "beats" in options:
            options["beats"]["beat_data"] = (str(shared_data / "mitdb"),)
        config = dataclasses.replace(config, member_options=options)
    return config


@pytest.fixture(scope="module")
def training_records(challenge_dir):
    records = RecordSet.from_folder(challenge_dir)
    # 36 records from every source, with NSR, AF, RBBB, PAC and others among them.
    return records.subset(sorted({*range(0, 216, 6), 1, 2}))


def _unusual_records(training_records):
    real = training_records[0]
    rng = np.random.default_rng(0)
    flat = Record("FLAT", np.zeros((12, 5000), np.float32), 500.0, STANDARD_LEADS)
    n_long = 257 * 60 * 3  # three minutes at 257 Hz
    long_signal = np.tile(real.signal[:, : real.signal.shape[1]], (1, 40))[:, :n_long]
    long = Record(
        "LONG",
        (long_signal + rng.normal(0, 0.01, long_signal.shape)).astype(np.float32),
        257.0,
        STANDARD_LEADS,
    )
    order = list(reversed(range(12)))
    shuffled = dataclasses.replace(
        real,
        name=real.name + "R",
        signal=real.signal[order],
        leads=tuple(real.leads[i] for i in order),
    )
    return flat, long, shuffled, real


@pytest.mark.parametrize("name", registry.available())
def test_classifier_contract(name, training_records, shared_data, tmp_path):
    classes = scored_classes().codes
    model = registry.create(name, _config(name, shared_data))
    assert model.fit(training_records, classes) is model
    assert model.classes_ == tuple(classes)
    assert model.thresholds_.shape == (len(classes),)

    few = training_records.subset([0, 1, 2, 3])
    scores = model.predict_proba(few)
    assert scores.shape == (4, len(classes))
    assert np.all(np.isfinite(scores)) and scores.min() >= 0 and scores.max() <= 1
    np.testing.assert_array_equal(model.predict(few), scores >= model.thresholds_)

    model.save(tmp_path / name)
    for path in (tmp_path / name).rglob("*"):
        if path.is_file():
            assert path.suffix in (".json", ".safetensors", ".pt", ".npy"), path
    loaded = type(model).load(tmp_path / name)
    np.testing.assert_allclose(loaded.predict_proba(few), scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(loaded.thresholds_, model.thresholds_)

    flat, long, shuffled, real = _unusual_records(training_records)
    unusual = loaded.predict_proba([flat, long, shuffled])
    assert unusual.shape == (3, len(classes)) and np.all(np.isfinite(unusual))
    assert unusual.min() >= 0 and unusual.max() <= 1
    # Leads are found by name: the same record with its leads in reverse order scores the same.
    np.testing.assert_allclose(unusual[2], loaded.predict_proba([real])[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", registry.available())
def test_loading_never_unpickles(name, training_records, shared_data, tmp_path):
    """A pickle planted in place of every tensor file is refused, not executed."""
    model = registry.create(name, _config(name, shared_data)).fit(
        training_records, scored_classes().codes
    )
    model.save(tmp_path / name)
    marker = tmp_path / "executed"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    planted = 0
    for path in (tmp_path / name).rglob("*"):
        if path.suffix in (".pt", ".safetensors", ".npy"):
            path.write_bytes(pickle.dumps(Exploit()))
            planted += 1
    if planted:
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do; execution will not
            type(model).load(tmp_path / name)
    else:  # JSON-only models: nothing to plant
        type(model).load(tmp_path / name)
    assert not marker.exists()
