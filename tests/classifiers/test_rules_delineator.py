"""The rules' measurements from the learned delineator (``FeatureConfig.delineator="cnn"``,
``--set rules.delineator=cnn``): opt-in, the default unchanged, a bad value refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from team_code.classifiers.measurements import measurement_key, record_measurements
from team_code.classifiers.rules import RulesClassifier
from team_code.data import synth
from team_code.data.records import Record, load_record
from team_code.dsp.features import LEARNED_INTERVALS, FeatureConfig, measure_record
from team_code.harness import build_config

CNN = FeatureConfig(delineator="cnn")


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _changed(a: dict, b: dict) -> set[str]:
    assert a.keys() == b.keys()
    return {k for k in a if not _same(a[k], b[k])}


def _never(x, fs):
    raise AssertionError("the learned delineator ran with the option unset")


@pytest.fixture(scope="module")
def record(challenge_dir):
    """A0002: a 10-s sinus rhythm record at 500 Hz with the 12 standard leads in order."""
    return load_record(str(challenge_dir / "A0002"))


def test_a_bad_delineator_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match=r"unknown delineator 'unet'; known: wavelet, cnn"):
        FeatureConfig(delineator="unet")
    with pytest.raises(ValueError, match=r"rules: delineator must be one of wavelet, cnn"):
        build_config(RulesClassifier, {"delineator": "unet"})


def test_cnn_without_the_learned_delineator_names_the_record():
    signal, _ = synth.synthesize(synth.RecordSpec(), 500, 10, seed=0)
    rec = Record(signal=signal, fs=500.0, leads=synth.LEADS, name="X0001")
    with pytest.raises(ValueError, match=r"record X0001: delineator='cnn' needs the learned"):
        measure_record(rec, CNN)


def test_the_rules_option_reaches_the_measurements_and_their_cache_key(delineator_weights):
    config = build_config(RulesClassifier, {"delineator": "cnn"})
    assert RulesClassifier(config)._feature_config() == CNN
    assert RulesClassifier(RulesClassifier.Config())._feature_config().delineator == "wavelet"
    wavelet_key, wavelet_code = measurement_key(FeatureConfig())
    cnn_key, cnn_code = measurement_key(CNN)
    assert "delineator_weights" not in wavelet_key
    assert wavelet_code == (
        "team_code.dsp",
        "team_code.data.leads",
        "team_code.classifiers.measurements",
    )
    assert cnn_key["delineator_weights"] and "team_code.nn.delineator" in cnn_code


def test_the_default_never_runs_the_learned_delineator(record):
    default = measure_record(record).values
    passed = measure_record(record, FeatureConfig(), learned=_never).values
    assert not _changed(default, passed)


def test_cnn_takes_the_networks_intervals_and_changes_nothing_else(
    record, delineator_weights, one_thread
):
    from team_code.nn.delineator import delineate_record

    default = measure_record(record).values
    measured = record_measurements(record, CNN)
    cnn = {k: v for k, v in measured["values"].items() if k != "sex"}
    # only the intervals and the leads' T amplitudes change (and the RBBB rules' width,
    # qrs_ms lengthened to V1/V2's terminal deflection, which follows qrs_ms)
    changed = _changed(default, cnn)
    lead_t = {k for k in default if k.endswith("_lead_t_mv")}
    assert changed <= set(LEARNED_INTERVALS) | lead_t | {"qrs_terminal_ms"}
    assert {"qrs_ms", "qt_ms", "global_qt_ms"} <= changed
    # ... to the medians over the record's beats of the network's global boundaries, and
    # of its typical lead (each boundary's median over the leads) for the lead-median values
    found = delineate_record(record.signal.astype(np.float64), record.fs)
    assert len(found) >= 10
    for name in ("p_ms", "pr_ms", "qrs_ms", "qt_ms"):
        expected = float(np.nanmedian([getattr(b.global_, name) for b in found]))
        assert cnn[name] == pytest.approx(expected), name
        assert cnn[f"global_{name}"] == cnn[name]
    for name in ("qrs", "qt"):
        typical = float(np.nanmedian([getattr(b.lead_median(), f"{name}_ms") for b in found]))
        assert cnn[f"{name}_lead_median_ms"] == pytest.approx(typical), name
        assert cnn[f"{name}_lead_median_ms"] < cnn[f"{name}_ms"]
    rr_s = default["rr_median_s"]
    assert cnn["qtc_bazett_ms"] == pytest.approx(cnn["qt_ms"] / math.sqrt(rr_s))
    v1 = float(np.nanmedian([b.t_mv[6] for b in found]))
    assert cnn["V1_lead_t_mv"] == pytest.approx(v1)
    assert any("learned delineator" in note for note in measured["notes"])


def test_the_rules_benchmark_keys_its_measurement_cache_by_the_delineator(delineator_weights):
    from benchmarks.rules import _measurement_key as benchmark_key

    assert benchmark_key() == benchmark_key({}) == benchmark_key({"delineator": "wavelet"})
    assert benchmark_key({"delineator": "cnn"}) != benchmark_key()
    assert benchmark_key({"morphology_s": "10"}) != benchmark_key()  # every measurement option


def test_a_model_refuses_delineator_weights_it_was_not_trained_with(tmp_path, monkeypatch):
    """With rules.delineator=cnn the model reads the delineator's weights at run time, from
    outside its folder: it keeps their SHA-256 and is refused (exit 2 at load) when they
    changed or are gone, instead of silently measuring with another network."""
    from team_code.context import Task
    from team_code.nn.delineator import WEIGHTS_ENV

    weights = tmp_path / "delineator.safetensors"
    weights.write_bytes(b"the network it was trained with")
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    # fits unmeasured
    options = {
        "delineator": "cnn",
        "tune": "false",
        "decision": "half",
        "decision_policy": "thresholds",
    }
    signal, _ = synth.synthesize(synth.RecordSpec(), 500, 10, seed=0)
    records = [Record(signal=signal, fs=500.0, leads=synth.LEADS, name="X0001")]
    model = RulesClassifier(build_config(RulesClassifier, options)).fit(records, Task())
    model.save(tmp_path / "model")
    assert RulesClassifier.load(tmp_path / "model").delineator_weights_ == model.delineator_weights_
    weights.write_bytes(b"a network trained again")
    with pytest.raises(ValueError, match="not those the model was trained with"):
        RulesClassifier.load(tmp_path / "model")
    weights.unlink()
    with pytest.raises(ValueError, match="delineator weights not found"):
        RulesClassifier.load(tmp_path / "model")
