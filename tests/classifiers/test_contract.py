"""Every registered classifier passes the same contract (timm-style, parametrised over the
registry): ``fit(records, task, ctx)`` on Challenge records (the real ones where they are,
else synthetic ones: ``records_dir``), scores in [0, 1] of the right shape,
thresholds applied by ``predict``, a save/load round trip with identical scores and no pickle,
valid scores for records that are unusual but legal (a flat record, a long record at 257 Hz,
leads in another order), the 2021 table on two leads, nothing of the run saved with the
model; and a family registered from outside trains and runs through the harness.
"""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest

from team_code.classifiers import registry
from team_code.classifiers.base import RUN_OPTIONS, Classifier, Evidence
from team_code.context import RunContext, Task
from team_code.data.labels import scored_classes
from team_code.data.records import STANDARD_LEADS, Record, RecordSet


def _config(name, request):
    """The family's quick options; the beat networks' MIT-BIH records (real data only: the
    ``shared_data`` fixture) where the family trains them."""

    def mitdb():
        return (str(request.getfixturevalue("shared_data") / "mitdb"),)

    config = registry.get(name).quick_config()
    if any(f.name == "beat_data" for f in dataclasses.fields(config)):
        config = dataclasses.replace(config, beat_data=mitdb())
    if any(f.name == "member_options" for f in dataclasses.fields(config)):
        options = {k: dict(v) for k, v in config.member_options.items()}
        if "beats" in options:
            options["beats"]["beat_data"] = mitdb()
        config = dataclasses.replace(config, member_options=options)
    return config


@pytest.fixture(scope="module")
def training_records(records_dir):
    records = RecordSet.from_folder(records_dir)
    # 36 records from every source (real: with NSR, AF, RBBB, PAC and others among them; 38
    # with records 1 and 2).
    step = max(1, len(records) // 36)
    return records.subset(sorted({*range(0, 36 * step, step), 1, 2}))


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
def test_classifier_contract(name, training_records, request, tmp_path):
    classes = scored_classes().codes
    model = registry.create(name, _config(name, request))
    assert model.fit(training_records, Task.of_classes(classes)) is model
    assert model.classes_ == tuple(classes)
    assert model.thresholds_.shape == (len(classes),)

    few = training_records.subset([0, 1, 2, 3])
    scores = model.predict_proba(few)
    assert scores.shape == (4, len(classes))
    assert np.all(np.isfinite(scores)) and scores.min() >= 0 and scores.max() <= 1
    # labels are the family's own decision on its scores: each class at its threshold, or a
    # joint decision policy where the family fitted one (the rules' default)
    np.testing.assert_array_equal(model.predict(few), model.decide(scores))
    # The per-record report's evidence: one Evidence per record from every family, which an
    # ensemble gathers from its members (a family's own feature matrix goes by another name).
    shown = model.evidence(few)
    assert len(shown) == 4 and all(isinstance(e, Evidence) for e in shown)

    model.save(tmp_path / name)
    for path in (tmp_path / name).rglob("*"):
        if path.is_file():
            assert path.suffix in (".json", ".safetensors", ".pt", ".npy"), path
    loaded = type(model).load(tmp_path / name)
    np.testing.assert_allclose(loaded.predict_proba(few), scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(loaded.thresholds_, model.thresholds_)
    np.testing.assert_array_equal(loaded.decide(scores), model.decide(scores))

    flat, long, shuffled, real = _unusual_records(training_records)
    unusual = loaded.predict_proba([flat, long, shuffled])
    assert unusual.shape == (3, len(classes)) and np.all(np.isfinite(unusual))
    assert unusual.min() >= 0 and unusual.max() <= 1
    # Leads are found by name: the same record with its leads in reverse order scores the same.
    np.testing.assert_allclose(unusual[2], loaded.predict_proba([real])[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", registry.available())
def test_loading_never_unpickles(name, training_records, request, tmp_path):
    """A pickle planted in place of every tensor file is refused, not executed."""
    model = registry.create(name, _config(name, request)).fit(training_records, Task())
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


@pytest.mark.parametrize("name", registry.available())
def test_fit_takes_task_and_run_context_and_saves_only_the_model(
    name, training_records, request, tmp_path
):
    """``fit(records, task, ctx)``: the 2021 table on two leads; the run's folders (cache,
    work) are used but never saved with the model, the task is."""
    task = Task("2021", ("I", "II"))
    ctx = RunContext(
        cache_dir=str(tmp_path / "cache"), workdir=str(tmp_path / "work"), progress=False
    )
    model = registry.create(name, _config(name, request)).fit(training_records, task, ctx)
    assert model.classes_ == task.classes and len(model.classes_) == 26
    model.save(tmp_path / "model")
    saved = (tmp_path / "model" / "config.json").read_text()
    assert str(tmp_path / "cache") not in saved and str(tmp_path / "work") not in saved
    config = json.loads(saved)
    assert not set(config["config"]) & set(RUN_OPTIONS), config["config"]
    assert Task.from_json(config["task"]) == task
    loaded = registry.get(name).load(tmp_path / "model")
    assert loaded.task_ == task
    real = training_records[0]
    two_leads = dataclasses.replace(real, signal=real.select_leads(("II", "I")), leads=("II", "I"))
    scores = loaded.predict_proba([two_leads])
    assert scores.shape == (1, 26) and np.all(np.isfinite(scores))


@dataclasses.dataclass(frozen=True)
class _MeanConfig:
    """Options of the toy family below."""

    shrink: float = 0.5  # scores pulled towards 0.5 by this much


class _MeanClassifier(Classifier):
    """A family defined outside the kit: training prevalence as every record's score."""

    Config = _MeanConfig

    def fit(self, records, task, ctx=None):
        self._begin(task, ctx)
        mean = self.label_matrix(records).mean(axis=0)
        self.mean_ = (1 - self.config.shrink) * mean + self.config.shrink * 0.5
        self.thresholds_ = np.full(len(self.classes_), 0.5)
        return self

    def predict_proba(self, records):
        return np.tile(self.mean_, (len(records), 1))

    def _save_state(self, folder):
        (folder / "mean.json").write_text(json.dumps(list(self.mean_)))

    def _load_state(self, folder):
        self.mean_ = np.asarray(json.loads((folder / "mean.json").read_text()))


def test_a_new_family_needs_only_its_module_and_one_registration(records_dir, tmp_path):
    """Registered from outside the kit, a family trains through the harness, alone and as a
    hybrid member with its own options, and runs; nothing else was edited for it."""
    from team_code import harness

    registry.register("mean_test")(_MeanClassifier)
    try:
        data = tmp_path / "data"
        data.mkdir()
        for header in sorted(records_dir.glob("*.hea"))[:24]:
            for path in header.parent.glob(header.stem + ".*"):
                (data / path.name).symlink_to(path)
        options = {
            "mean_test": {"shrink": "0.25"},
            "hybrid": {"members": "rules,mean_test", "n_folds": "2"},
            "rules": {"tune": "false", "decision": "half", "decision_policy": "thresholds"},
        }
        manifest = harness.train(
            data,
            tmp_path / "model",
            ["hybrid", "mean_test"],
            options,
            log=lambda message: None,
            progress=False,
        )
        assert manifest["classifiers"]["hybrid"]["members"] == ["rules", "mean_test"]
        member = harness.load_model(tmp_path / "model", "hybrid.mean_test")
        assert member.config.shrink == 0.25
        result = harness.run(
            tmp_path / "model", data, tmp_path / "out", "mean_test", progress=False
        )
        assert len(result.written) == 24 and not result.failures
    finally:
        registry._REGISTERED.pop("mean_test", None)
