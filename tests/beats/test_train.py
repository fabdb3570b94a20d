"""Protocols, metrics, resampling, and a tiny training run on real MIT-BIH beats."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from team_code.beats import extract, mitdb, models
from team_code.beats import train as bt


def test_hybrid_resample_balances():
    y = np.array([0] * 100 + [1] * 7 + [3] * 30)
    idx = bt.hybrid_resample(y, 40, np.random.default_rng(0), n_classes=5)
    counts = np.bincount(y[idx], minlength=5)
    assert counts.tolist() == [40, 40, 0, 40, 0]
    # minority class keeps every one of its beats
    assert set(np.flatnonzero(y == 1)) <= set(idx)
    # majority class subsampled without repeats
    majority = idx[y[idx] == 0]
    assert np.unique(majority).size == 40


def test_beat_metrics_known_confusion():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2])
    m = bt.beat_metrics(y_true, y_pred, ("N", "S", "V"))
    assert m["confusion"].tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["sensitivity"].tolist() == pytest.approx([0.75, 0.5, 1.0])
    assert m["ppv"].tolist() == pytest.approx([0.75, 0.5, 1.0])
    assert m["f1"][1] == pytest.approx(0.5)
    assert m["majority_rate"] == pytest.approx(4 / 7)
    text = bt.format_metrics(m)
    assert "accuracy 71.4 %" in text


def _toy_beats(records, groups):
    n = len(records)
    return extract.BeatSet(
        x=np.zeros((n, 4), np.float32),
        y=np.array([i % 2 for i in range(n)]),
        record=np.array(records),
        group=np.array(groups),
        sample=np.arange(n),
        method="kachuee2018",
    )


def test_inter_patient_split_uses_records():
    beats = _toy_beats(["106", "100", "107", "208", "103"], ["a"] * 5)
    train, test = bt.split_inter_patient(beats)
    assert beats.record[train].tolist() == ["106", "208"]
    assert beats.record[test].tolist() == ["100", "103"]


def test_grouped_folds_keep_groups_together():
    groups = np.array([f"g{i // 3}" for i in range(30)])
    y = np.array([int(i // 3 < 4) for i in range(30)])
    folds = bt.grouped_folds(groups, y, 5, seed=0)
    for g in np.unique(groups):
        assert np.unique(folds[groups == g]).size == 1
    # the 4 positive groups go to 4 different folds
    assert np.unique(folds[y == 1]).size == 4


def test_random_crop_stretch_keeps_length():
    torch.manual_seed(0)
    beat = torch.linspace(0, 1, 180)
    out = bt.random_crop_stretch(beat, 0.9)
    assert out.shape == (180,)
    # a crop of a ramp stretched back is still an increasing ramp inside [0, 1]
    assert torch.all(out[1:] >= out[:-1]) and out.min() >= 0 and out.max() <= 1


def test_tiny_training_run_learns(shared_data):
    """Record 208 (N, V, F beats): 4 short epochs beat the majority rate on held-out beats."""
    torch.set_num_threads(1)
    record = mitdb.read_record(shared_data / "mitdb", "208")
    config = dataclasses.replace(extract.Kachuee2018Config(), r_source="annotations")
    beats = extract.extract(record, "kachuee2018", config)
    train_idx, test_idx = bt.split_intra_patient(beats, 0.2, seed=0)
    test_idx = np.random.default_rng(0).choice(test_idx, 400, replace=False)
    model = models.build("kachuee2018")
    cfg = bt.BeatTrainConfig(epochs=4, batch_size=32, max_beats=900, seed=0, device="cpu")
    result = bt.train_beat_model(model, beats.subset(train_idx), cfg, 5)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    probs = bt.predict_proba(model, beats.x[test_idx], "cpu")
    assert probs.shape == (400, 5)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    metrics = bt.beat_metrics(beats.y[test_idx], probs.argmax(axis=1))
    # majority (N) rate of this piece: about 0.54
    assert metrics["accuracy"] > metrics["majority_rate"] + 0.15
