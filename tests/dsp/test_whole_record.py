"""Rhythm and ectopy are read over the whole record; the average beat keeps its window.

Synthetic records of 60 s: 30 s of regular sinus rhythm, then 30 s with PVCs or atrial
fibrillation. Read over the first 30 s only (``max_duration_s=30``, the former default) the
planted rhythm is missed; read over the whole record it is found, and the rules score it.
"""

from __future__ import annotations

import numpy as np
import pytest

from team_code.classifiers.rulebook import default_thresholds, evaluate_rules
from team_code.classifiers.rules import RulesClassifier
from team_code.context import Task
from team_code.data import synth
from team_code.data.records import Record, load_record
from team_code.data.writer import write_record
from team_code.dsp.features import FeatureConfig, measure

FS = 500
FIRST_30_S = FeatureConfig(max_duration_s=30.0)


def _sinus_then(spec: synth.RecordSpec, seed: int = 2) -> np.ndarray:
    """30 s of regular sinus rhythm at 60 bpm, then 30 s of ``spec``."""
    first, _ = synth.synthesize(synth.RecordSpec(heart_rate_bpm=60.0), FS, 30, seed=1)
    second, truth = synth.synthesize(spec, FS, 30, seed=seed)
    return np.concatenate([first, second], axis=1), truth


@pytest.fixture(scope="module")
def pvc_late():
    return _sinus_then(synth.RecordSpec(heart_rate_bpm=60.0, n_pvc=6))


@pytest.fixture(scope="module")
def af_late():
    return _sinus_then(synth.RecordSpec(rhythm="af", heart_rate_bpm=110.0, rr_cv=0.25), seed=3)


def test_pvcs_after_30_s_are_counted(pvc_late):
    signal, truth = pvc_late
    assert len(truth["pvc_indices"]) == 6
    first = measure(signal, FS, synth.LEADS, FIRST_30_S).values
    whole = measure(signal, FS, synth.LEADS).values
    assert first["n_pvc"] == 0  # the former 30-s window never sees them
    assert whole["n_pvc"] == 6
    assert whole["n_beats"] >= 58
    assert whole["duration_s"] == pytest.approx(60.0)


def test_af_after_30_s_is_found(af_late):
    signal, _ = af_late
    first = measure(signal, FS, synth.LEADS, FIRST_30_S).values
    whole = measure(signal, FS, synth.LEADS).values
    assert first["rr_irregularity"] < 0.06 and first["p_present"] == 1.0
    assert whole["rr_irregularity"] > 0.08  # the AF rule's published limit
    assert whole["p_present"] == 0.0
    score = {
        name: evaluate_rules(values, default_thresholds(), [synth.AF])[synth.AF]["score"]
        for name, values in (("first", first), ("whole", whole))
    }
    assert score["first"] < 0.2 and score["whole"] > 0.5


def test_morphology_from_the_first_30_s(pvc_late):
    """The average beat (and so the intervals and axis) comes from the first 30 s: the
    same as the first 30 s measured on their own."""
    signal, _ = pvc_late
    whole = measure(signal, FS, synth.LEADS)
    alone = measure(signal[:, : 30 * FS], FS, synth.LEADS)
    assert any("average beat from the first 30 s" in note for note in whole.notes)
    # the filters run over the whole record: the window's edges differ by microvolts
    np.testing.assert_allclose(whole.beat.beat_mv, alone.beat.beat_mv, atol=0.01)
    for key in ("qrs_ms", "pr_ms", "qt_ms"):
        assert abs(whole.values[key] - alone.values[key]) <= 4.0
    assert whole.values["qrs_axis_deg"] == pytest.approx(alone.values["qrs_axis_deg"], abs=1.0)


def test_cap_bounds_what_is_read(pvc_late):
    signal, _ = pvc_late
    m = measure(signal, FS, synth.LEADS, FeatureConfig(max_duration_s=45.0))
    assert m.values["duration_s"] == pytest.approx(45.0)
    assert any("rhythm read over the first 45 s of 60.0 s" in note for note in m.notes)


def test_rules_read_a_long_record_file_whole(pvc_late, tmp_path):
    """A 60-s record written in Challenge form and read back: the rules' measurements (the
    classifier's default configuration) count the PVCs of its second half."""
    signal, _ = pvc_late
    write_record(tmp_path, "L0001", signal, FS, synth.LEADS, dx=[synth.PVC])
    record = load_record(tmp_path / "L0001")
    assert isinstance(record, Record) and record.signal.shape[1] == 60 * FS
    rules = RulesClassifier()
    rules.task_ = Task()
    values = rules.measure(record)["values"]
    assert values["n_pvc"] == 6
