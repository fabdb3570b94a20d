"""The twelve-lead variant of the learned delineator (compared, not shipped): the union of
the leads' labels, the network that reads the leads together, its augmentation, its
post-processing to global beats, its command line and the benchmark's
``cnn-together-5fold``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from team_code.nn import delineator as d
from team_code.nn.delineator import inference
from team_code.nn.delineator.training import _augment


def test_global_labels_are_the_union_of_the_leads_waves():
    n = 40
    lab = np.full((12, n), d.NONE, np.int64)
    lab[0, 5:10] = d.P  # P: 5-9 on one lead, 7-12 on another -> 5-12
    lab[1, 7:13] = d.P
    lab[2, 12:20] = d.QRS  # QRS starts at 12 on one lead: it wins over the P there
    lab[3, 14:22] = d.QRS
    lab[4, 21:30] = d.T  # T from 21; the QRS keeps 21
    lab[:, 35:] = d.IGNORE  # no lead annotated
    lab[:7, 33:35] = d.IGNORE  # 5 of 12 leads annotated: fewer than 6
    g = d.global_labels(lab)
    assert (g[:5] == d.NONE).all()
    assert (g[5:12] == d.P).all()
    assert (g[12:22] == d.QRS).all()
    assert (g[22:30] == d.T).all()
    assert (g[30:33] == d.NONE).all()
    assert (g[33:] == d.IGNORE).all()
    assert d.global_labels(lab, min_leads=5)[33] == d.NONE


def test_a_network_of_twelve_leads_round_trips_and_reads_twelve_rows(tmp_path, one_thread):
    with pytest.raises(ValueError, match="leads 12 with input_channels 2"):
        d.NetConfig(leads=12, input_channels=2)
    with pytest.raises(ValueError, match="leads 0"):
        d.NetConfig(leads=0)
    torch.manual_seed(0)
    net = d.SegmentNet(d.NetConfig(widths=(4, 8), kernel=3, leads=12))
    assert net.down[0][0].in_channels == 12
    path = tmp_path / "w.safetensors"
    d.save(net.eval(), path)
    loaded = d.load(path)
    assert loaded.config.leads == 12
    z = np.random.default_rng(0).normal(size=(12, 301)).astype(np.float32)
    logits = d.predict_logits(loaded, z)
    assert logits.shape == (1, len(d.CLASSES), 301)
    with torch.no_grad():
        eager = net(torch.from_numpy(np.pad(z, ((0, 0), (0, 1))))[None])[..., :301].numpy()
    np.testing.assert_allclose(logits, eager, atol=1e-4)
    with pytest.raises(ValueError, match=r"reads 12 leads together.*\(11, 301\)"):
        d.predict_logits(loaded, z[:11])
    with pytest.raises(ValueError, match="delineate_together"):
        d.delineate_together(np.zeros((11, 5000)), 500.0, loaded)


def test_leads_read_together_are_augmented_each_on_its_own():
    cfg = d.TrainConfig(wander=0.0, noise=0.0)
    xb = np.ones((4, 12, 64), np.float32)
    same = _augment(xb, np.random.default_rng(0), cfg)
    assert np.allclose(same, same[:, :1])  # one gain per row
    own = _augment(xb, np.random.default_rng(0), cfg, independent=True)
    assert (np.ptp(own[:, :, 0], axis=1) > 0.05).all()  # a gain per lead
    lost = _augment(xb, np.random.default_rng(0), d.TrainConfig(lead_dropout=1.0), independent=True)
    assert not lost.any()
    with pytest.raises(ValueError, match="lead_dropout needs leads read together"):
        d.train(
            np.zeros((2, 256), np.float32),
            np.zeros((2, 256), np.int64),
            d.NetConfig(widths=(4, 8), kernel=3),
            d.TrainConfig(epochs=1, lead_dropout=0.1),
        )


def test_delineate_together_gives_the_global_labels_boundaries(monkeypatch):
    """The network's one row of labels, as logits, becomes global beats in the record's
    samples (500 Hz here, the network's 250 Hz inside)."""
    n, beats = 1250, [300, 700, 1100]
    lab = np.zeros(n, np.int64)
    for r in beats:
        lab[r - 60 : r - 40] = d.P
        lab[r - 10 : r + 15] = d.QRS
        lab[r + 70 : r + 120] = d.T
    logits = np.eye(len(d.CLASSES), dtype=np.float32)[lab].T[None]  # (1, 4, n)
    monkeypatch.setattr(inference, "predict_logits", lambda model, z: logits)
    net = d.SegmentNet(d.NetConfig(widths=(4, 8), kernel=3, leads=12)).eval()
    out = d.delineate_together(np.zeros((12, 2 * n)), 500.0, net)
    assert len(out) == len(beats)
    for ld, r in zip(out, beats):
        assert 2 * (r - 10) <= ld.r_index <= 2 * (r + 14)  # the R peak inside the QRS
        g = ld.global_
        # half a 500-Hz sample before the first labelled sample, after the last
        assert (g.p_on, g.p_off) == (2 * (r - 60) - 0.5, 2 * (r - 41) + 0.5)
        assert (g.qrs_on, g.qrs_off) == (2 * (r - 10) - 0.5, 2 * (r + 14) + 0.5)
        assert g.t_end == 2 * (r + 119) + 0.5


def test_the_command_line_trains_folds_together_and_the_benchmark_reads_them(
    ludb_dir, tmp_path, one_thread
):
    from benchmarks import delineation as bench

    out = tmp_path / "together"
    common = ["--ludb", str(ludb_dir), "--records", "1", "5", "7", "--epochs", "1"]
    assert d.main(["folds", *common, "--out", str(out), "--together", "--k", "3",
                   "--widths", "4", "8", "--kernel", "3", "--batch", "2",
                   "--lead-dropout", "0.1"]) == 0  # fmt: skip
    index = json.loads((out / "folds.json").read_text())
    assert sorted(r for held in index.values() for r in held) == ["1", "5", "7"]
    model = d.load(out / "fold0.safetensors")
    assert model.config.leads == 12 and model.config.widths == (4, 8)
    assert d.main(["train", *common, "--out", str(tmp_path / "x"), "--lead-dropout", "0.1"]) == 2
    assert d.main(["train", *common, "--out", str(tmp_path / "x"), "--together",
                   "--qtdb", str(tmp_path)]) == 2  # fmt: skip

    saved = dict(bench.CNN)
    bench.CNN.update(together_folds=out, models={})
    try:
        held = index["fold1.safetensors"][0]
        assert bench._cnn_fold_weights(held, out) == out / "fold1.safetensors"
        case = bench.load_ludb(ludb_dir, held)
        res = bench.run_case(case, ["cnn-together-5fold"], "cse")["cnn-together-5fold"]
        assert res.per_lead is None and set(res.intervals) == {
            name for name, _, _ in bench.INTERVALS
        }
        assert str(out / "fold1.safetensors") in bench.CNN["models"]  # the model that never saw it
        other = bench.load_ludb(ludb_dir, "8")  # no fold holds it out: no row
        assert bench.run_case(other, ["cnn-together-5fold"], "cse") == {}
    finally:
        bench.CNN.clear()
        bench.CNN.update(saved)


def test_agreement_of_two_methods_interval_errors():
    from benchmarks import delineation as bench

    a, b = bench.Tally(), bench.Tally()
    ref = {name: 100.0 for name, _, _ in bench.INTERVALS}
    for case, ea, eb in (("1", 1, 8), ("5", 2, 6), ("7", 3, 4), ("8", 4, 2), ("9", 5, None)):
        a.add_intervals({k: v + ea for k, v in ref.items()}, ref, case)
        if eb is not None:  # method b has no value on record 9: left out of the pairing
            b.add_intervals({k: v + eb for k, v in ref.items()}, ref, case)
    g = bench.agreement(a, b, "QT interval")
    assert g["n"] == 4 and g["r"] == pytest.approx(-1.0)
    assert g["mean_ms"] == pytest.approx(3.75)  # (4.5, 4, 3.5, 3)
    assert g["sd_ms"] == pytest.approx(np.std([4.5, 4, 3.5, 3], ddof=1))
    assert bench.agreement(a, bench.Tally(), "QT interval") is None


def test_missing_together_models_are_named_with_the_training_that_builds_them(
    tmp_path, monkeypatch
):
    """The error names ``folds --together``: without it the command it gives trains one-lead
    models, which ``delineate_together`` then refuses."""
    from benchmarks import delineation as bench

    monkeypatch.setitem(bench.CNN, "together_folds", tmp_path)
    case = bench.Case(
        name="1",
        x=np.zeros((12, 5000)),
        fs=500.0,
        leads=["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"],
        ref=[],
        neighbours=np.array([]),
        absent_negative={},
        span=None,
        peer_rows=list(range(12)),
    )
    with pytest.raises(FileNotFoundError, match=rf"folds --ludb DIR --out {tmp_path} --together"):
        bench.run_cnn_together(case)
