"""A record longer than one network window is scored from all of its windows (the maximum)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from team_code.classifiers.cwt_googlenet import CWTGoogLeNetClassifier
from team_code.classifiers.deep import record_windows
from team_code.classifiers.parallel_cnn import ParallelCNNClassifier
from team_code.context import IN_MEMORY, Task
from team_code.data.records import STANDARD_LEADS, Record
from team_code.nn.cache import SignalDataset


class SpikeDetector(torch.nn.Module):
    """Logit of every class: how far the input's largest |mV| is above 2 mV."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes

    def forward(self, x):
        peak = x.float().abs().flatten(1).amax(dim=1, keepdim=True)
        return (10.0 * (peak - 2.0)).expand(-1, self.n_classes)


def ecg(name: str, seconds: float, fs: float = 100.0, spike_at_s: float | None = None) -> Record:
    """A 12-lead record of a 1-mV, 1-Hz sine, with a 5-mV spike at ``spike_at_s``."""
    t = np.arange(int(seconds * fs)) / fs
    signal = np.tile(np.sin(2 * np.pi * t), (12, 1)).astype(np.float32)
    if spike_at_s is not None:
        signal[:, int(spike_at_s * fs)] = 5.0
    return Record(name, signal, fs, STANDARD_LEADS)


def detector_model():
    """parallel_cnn's preprocessing (2-s windows at 100 Hz) in front of the spike detector."""
    config = dataclasses.replace(ParallelCNNClassifier.quick_config(), highpass_hz=0.0)
    model = ParallelCNNClassifier(config)
    model._begin(Task(), IN_MEMORY)
    model.network_ = SpikeDetector(len(model.classes_))
    return model


def test_an_abnormality_in_the_second_window_is_found():
    model = detector_model()
    assert model.window_s() == (2.0, 2.0)
    first_only = ecg("FIRST", 4.0, spike_at_s=0.5)
    second_only = ecg("SECOND", 4.0, spike_at_s=3.0)
    clean = ecg("CLEAN", 5.0)
    short = ecg("SHORT", 1.5, spike_at_s=1.0)
    scores = model.predict_proba([first_only, second_only, clean, short])
    assert scores[:, 0] == pytest.approx([1.0, 1.0, 0.0, 1.0], abs=1e-3)
    # the first window alone (what the network was given before) misses the second one's spike
    first_window = model._scores(SignalDataset(model.inputs([second_only])))
    assert first_window[0, 0] < 1e-3


def test_windows_cover_the_record_and_end_at_its_end():
    signal = np.arange(10.0)[None, :]
    windows = record_windows(signal, fs=1.0, window_s=4, hop_s=4)
    assert [w[0].tolist() for w in windows] == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert len(record_windows(signal, 1.0, 10, 10)) == 1  # one window: the record
    overlap = record_windows(signal, 1.0, 6, 4)  # cwt_googlenet: margins overlap
    assert [w[0, 0] for w in overlap] == [0, 4]
    model = CWTGoogLeNetClassifier()
    assert model.window_s() == (14.0, 10.0)


def test_windows_are_scored_in_bounded_chunks(monkeypatch):
    """Memory stays flat in the number of long records: no more than WINDOW_CHUNK_BYTES of
    window inputs are scored at once, and the chunked maxima equal the one-batch ones."""
    from team_code.classifiers import deep

    model = detector_model()
    records = [ecg(f"R{i}", 9.0, spike_at_s=(None if i % 3 else 1.0 + i % 8)) for i in range(7)]
    whole = model.predict_proba(records)
    n_windows = 5  # 9 s in 2-s windows, the last ending at the record's end
    one_input = 12 * 200 * 4  # 12 leads x 2 s at 100 Hz, float32
    sizes = []
    score = model._scores
    monkeypatch.setattr(
        model, "_scores", lambda data, network=None: sizes.append(len(data)) or score(data, network)
    )
    monkeypatch.setattr(deep, "WINDOW_CHUNK_BYTES", 3 * one_input)
    chunked = model.predict_proba(records)
    assert sizes and max(sizes) == 3 and sum(sizes) == n_windows * len(records)
    np.testing.assert_array_equal(chunked, whole)
    assert chunked[:, 0] == pytest.approx([1.0, 0, 0, 1.0, 0, 0, 1.0], abs=1e-3)


def test_held_out_scores_are_the_scores_inference_gives(monkeypatch):
    """The thresholds are chosen on held-out scores read as predict_proba reads them: a long
    record's maximum over its windows, not its cached first window; a record whose windows
    cannot be read keeps its cached input's score."""
    model = detector_model()
    records = [
        ecg("SHORT", 1.5, spike_at_s=1.0),
        ecg("LATE", 6.0, spike_at_s=5.0),  # the spike only in the last window
        ecg("CLEAN", 6.0),
        ecg("BROKEN", 6.0, spike_at_s=5.0),
    ]
    stored = model.cached_inputs(records)
    rows = np.arange(len(records))
    inference = model.predict_proba(records)
    window = model._window_scores
    monkeypatch.setattr(
        model,
        "_window_scores",
        lambda rs, network=None: (
            (_ for _ in ()).throw(ValueError("unreadable window"))
            if any(r.name == "BROKEN" for r in rs)
            else window(rs, network)
        ),
    )
    logged = []
    model.ctx = dataclasses.replace(model.ctx, log=logged.append)
    held = model._held_out_scores(records, stored, rows, model.network_)
    np.testing.assert_allclose(held[:3], inference[:3], atol=1e-6)
    assert held[1, 0] == pytest.approx(1.0, abs=1e-3)  # LATE: found in its last window
    assert held[3, 0] < 1e-3  # BROKEN: its cached first window, without the spike
    assert any("BROKEN" in line and "unreadable window" in line for line in logged)


def test_a_fit_chooses_its_thresholds_on_window_scores(monkeypatch):
    """fit() scores its validation records through _held_out_scores."""
    model = ParallelCNNClassifier(ParallelCNNClassifier.quick_config())
    seen = []
    held_out = model._held_out_scores

    def spy(records, stored, rows, network):
        scores = held_out(records, stored, rows, network)
        seen.append((len(rows), scores.shape))
        return scores

    monkeypatch.setattr(model, "_held_out_scores", spy)
    records = [
        dataclasses.replace(
            ecg(f"R{i}", 2.0 + 4.0 * (i % 2), spike_at_s=1.0 if i % 3 else None),
            labels=("426783006",) if i % 3 else ("164889003",),
        )
        for i in range(16)
    ]
    model.fit(records, Task(), IN_MEMORY)
    assert seen and seen[-1][0] == model.fit_summary_["n_val"] > 0
    assert seen[-1][1] == (model.fit_summary_["n_val"], len(model.classes_))


def test_long_records_of_a_record_set_are_read_one_at_a_time(tmp_path, monkeypatch):
    """Scoring the long records of a lazy RecordSet (a training's held-out rows, the hybrid's
    folds) holds one or two of them in memory at a time, not all of them."""
    import weakref

    from team_code.data import records as records_module
    from team_code.data.records import RecordSet
    from team_code.data.writer import write_record

    for i in range(6):
        record = ecg(f"L{i}", 6.0, spike_at_s=5.0 if i % 2 else None)
        write_record(tmp_path, record.name, record.signal, record.fs, record.leads)
    records = RecordSet.from_folder(tmp_path)
    live: list[weakref.ref] = []  # the records read so far (Record is not hashable)
    most = [0]
    load = records_module.load_record

    def tracked(path):
        record = load(path)
        live.append(weakref.ref(record))
        most[0] = max(most[0], sum(ref() is not None for ref in live))
        return record

    monkeypatch.setattr(records_module, "load_record", tracked)
    model = detector_model()
    scores = model.predict_proba(records)
    assert scores[:, 0] == pytest.approx([0, 1, 0, 1, 0, 1], abs=1e-3)
    assert most[0] <= 2
    stored = model.cached_inputs(records)
    most[0] = 0
    held = model._held_out_scores(records, stored, np.arange(len(stored)), model.network_)
    np.testing.assert_allclose(held, scores, atol=1e-6)
    assert most[0] <= 2


def test_held_out_rows_are_positions_among_the_preprocessed_records():
    """``rows`` index the records that preprocessing kept: with a record left out before them,
    row 0 is the second record, not the first."""
    model = detector_model()
    missing_v6 = ecg("NO_V6", 6.0, spike_at_s=5.0)
    missing_v6 = dataclasses.replace(
        missing_v6, signal=missing_v6.signal[:11], leads=STANDARD_LEADS[:11]
    )
    records = [missing_v6, ecg("LATE", 6.0, spike_at_s=5.0), ecg("CLEAN", 6.0)]
    stored = model.cached_inputs(records)
    assert list(stored.kept) == [1, 2]
    held = model._held_out_scores(records, stored, np.array([1, 0]), model.network_)
    assert held[:, 0] == pytest.approx([0.0, 1.0], abs=1e-3)  # CLEAN, then LATE


def test_a_held_out_record_that_can_no_longer_be_read_keeps_its_cached_score(tmp_path):
    """A record of a lazy RecordSet whose signal file breaks after its input was cached costs
    the training nothing: it keeps its cached input's score (logged), the others their
    windows' maximum."""
    from team_code.data.records import RecordSet
    from team_code.data.writer import write_record

    for i in range(3):
        record = ecg(f"L{i}", 6.0, spike_at_s=5.0)
        write_record(tmp_path, record.name, record.signal, record.fs, record.leads)
    records = RecordSet.from_folder(tmp_path)
    model = detector_model()
    logged = []
    model.ctx = dataclasses.replace(model.ctx, log=logged.append)
    stored = model.cached_inputs(records)
    (tmp_path / "L1.mat").write_bytes(b"")  # broken after the inputs were cached
    held = model._held_out_scores(records, stored, np.arange(3), model.network_)
    assert held[:, 0] == pytest.approx([1.0, 0.0, 1.0], abs=1e-3)  # L1: its first window
    assert any("L1" in line and "scored from one window" in line for line in logged)
