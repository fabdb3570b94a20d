"""The learned delineator (team_code.nn.delineator): network shapes, post-processing of a
known segment mask, LUDB labels, seeded training, the built weights on a synthetic record
and, with the shared data, on LUDB records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from team_code.dsp import delineation as dl
from team_code.nn import delineator as d

COL = {name: i for i, name in enumerate(dl.LEAD_POINTS)}


def test_network_output_shapes(one_thread):
    net = d.SegmentNet(d.NetConfig(widths=(4, 8, 8), kernel=5))
    out = net(torch.zeros(3, 1, 512))
    assert out.shape == (3, len(d.CLASSES), 512)
    labels = d.predict_labels(net.eval(), np.zeros((2, 501), np.float32))  # padded inside
    assert labels.shape == (2, 501)
    assert labels.dtype.kind == "i" and labels.min() >= 0 and labels.max() < len(d.CLASSES)


def test_fused_network_gives_the_same_logits(one_thread):
    torch.manual_seed(0)
    net = d.SegmentNet(d.NetConfig(widths=(4, 8), kernel=3))
    for m in net.modules():  # batch norms with non-trivial statistics
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 1, 64)
    with torch.no_grad():
        before = net.eval()(x)
        after = net.fuse()(x)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "config",
    [
        d.NetConfig(widths=(4, 8, 8), kernel=5),
        d.NetConfig(widths=(4, 8, 8), kernel=3, first_convs=2, dilation=2),
        d.NetConfig(widths=(4, 8), kernel=5, input_channels=2),
    ],
)
def test_inference_runs_the_channels_last_twin_with_the_same_logits(config, one_thread):
    from team_code.nn.delineator import inference

    torch.manual_seed(0)
    net = d.SegmentNet(config)
    for m in net.modules():  # batch norms with non-trivial statistics
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    net.eval().fuse()
    x = np.random.default_rng(1).normal(size=(3, config.input_channels, 1001)).astype(np.float32)
    for n in (1001, 640):  # traced once, run on other lengths (padded inside)
        got = d.predict_logits(net, x[..., :n])
        with torch.no_grad():
            pad = (-n) % config.multiple
            want = net(torch.nn.functional.pad(torch.from_numpy(x[..., :n]), (0, pad)))[..., :n]
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)
    runner = inference._runner(net, torch.zeros(1, config.input_channels, 64))
    assert isinstance(runner, torch.jit.ScriptModule)  # the frozen twin, not the eager net
    assert inference._runner(net.train(), torch.zeros(1, config.input_channels, 64)) is net
    with pytest.raises(ValueError, match="fused"):
        inference.ChannelsLast(d.SegmentNet(config))


def test_the_twin_traced_on_one_short_lead_serves_longer_records(one_thread):
    """The traced twin's sizes follow its input: traced on one short lead, it gives the
    network's logits for 12 leads of a length that is no multiple of the traced one."""
    torch.manual_seed(0)
    net = d.SegmentNet(d.NetConfig(widths=(4, 8, 8, 8), kernel=3)).eval().fuse()
    rng = np.random.default_rng(2)
    for leads, n in [(1, 9), (12, 1001), (1, 4999), (5, 2)]:
        x = rng.normal(size=(leads, n)).astype(np.float32)
        with torch.no_grad():
            pad = torch.nn.functional.pad(torch.from_numpy(x)[:, None], (0, (-n) % 8))
            want = net(pad)[..., :n].numpy()
        np.testing.assert_allclose(d.predict_logits(net, x), want, atol=1e-5, rtol=1e-5)


def test_an_eager_runner_does_not_keep_its_model_alive(one_thread):
    """An unfused network runs eagerly; the cache of runners holds it only weakly."""
    import gc
    import weakref

    net = d.SegmentNet(d.NetConfig(widths=(4, 8))).eval()  # not fused: no twin
    d.predict_logits(net, np.zeros((1, 64), np.float32))
    gone = weakref.ref(net)
    del net
    gc.collect()
    assert gone() is None


def test_concurrent_first_calls_build_one_frozen_twin(one_thread, monkeypatch):
    """Threads that call a new network at once trace it once, and all get the frozen twin
    (concurrent traces fail torch's trace check, which left the network eager for good)."""
    import threading
    import time

    from team_code.nn.delineator import inference

    traced, active, most = [], [0], [0]
    trace = torch.jit.trace

    def slow_trace(*args, **kwargs):
        active[0] += 1
        most[0] = max(most[0], active[0])
        time.sleep(0.05)
        try:
            out = trace(*args, **kwargs)
            traced.append(out)
            return out
        finally:
            active[0] -= 1

    monkeypatch.setattr(torch.jit, "trace", slow_trace)
    net = d.SegmentNet(d.NetConfig(widths=(4, 8, 8))).eval().fuse()
    x = np.random.default_rng(0).normal(size=(2, 64)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)[:, None]).numpy()
    start, got = threading.Barrier(4), []

    def work():
        start.wait()
        got.append(d.predict_logits(net, x))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1 and len(traced) == 1
    assert isinstance(inference._runner(net, torch.from_numpy(x)[:, None]), torch.jit.ScriptModule)
    for logits in got:
        np.testing.assert_allclose(logits, want, atol=1e-5, rtol=1e-5)


def _mask(n: int, beats: list[int], p: bool = True) -> np.ndarray:
    """Labels with, per beat at ``r``: P [r-60, r-41], QRS [r-10, r+14], T [r+70, r+119]."""
    lab = np.zeros(n, np.int64)
    for r in beats:
        if p:
            lab[r - 60 : r - 40] = d.P
        lab[r - 10 : r + 15] = d.QRS
        lab[r + 70 : r + 120] = d.T
    return lab


def test_post_processing_gives_the_mask_boundaries():
    n, beats = 1000, [150, 400, 650]
    labels = np.stack([_mask(n, beats)] * 3)
    labels[2, 395:400] = d.P  # a 5-sample run (20 ms at 250 Hz) is kept ...
    labels[1, 640:641] = d.QRS  # ... a 1-sample one is dropped: lead 1's QRS starts at 640
    sig = np.zeros((3, n))
    for r in beats:
        sig[:, r] = 1.0  # the R peak
        sig[:, r - 50] = 0.1  # the P peak
        sig[:, r + 90] = -0.3  # the T peak (inverted)
    out = d.segments_to_beats(labels, sig, 250.0, scale=2.0)  # points in 500-Hz samples
    assert [ld.r_index for ld in out] == [2 * r for r in beats]
    for ld, r in zip(out, beats):
        assert ld.fs == 500.0
        p = ld.points[0]
        expected = {
            "p_on": r - 60,
            "p_peak": r - 50,
            "p_off": r - 41,
            "qrs_on": r - 10,
            "qrs_peak": r,
            "qrs_off": r + 14,
            "t_on": r + 70,
            "t_peak": r + 90,
            "t_end": r + 119,
        }
        # an onset or offset on 500-Hz samples: half a sample before the first labelled
        # sample's, after the last's (the input samples a label sample stands for)
        for name, v in expected.items():
            half = 0.0 if "peak" in name else (-0.5 if name.endswith("on") else 0.5)
            assert p[COL[name]] == 2 * v + half, name
        assert ld.t_mv[0] == pytest.approx(-0.3)
        assert ld.p_mv[0] == pytest.approx(0.1)
    # the short run dropped: lead 1 keeps its QRS boundaries on the third beat
    assert out[2].points[1, COL["qrs_on"]] == 2 * 640 - 0.5
    # global boundaries: earliest onset, latest offset of the leads
    g = out[1].global_
    assert g.qrs_on == 2 * 390 - 0.5 and g.qrs_off == 2 * 414 + 0.5 and g.t_end == 2 * 519 + 0.5
    assert g.p_on == 2 * 340 - 0.5


def test_post_processing_gives_no_p_wave_below_the_quorums():
    n, beats = 800, [200, 500]
    labels = np.stack([_mask(n, beats, p=(i < 2)) for i in range(6)])  # P on 2 leads of 6
    out = d.segments_to_beats(labels, np.zeros((6, n)), 250.0)
    assert len(out) == 2
    for ld in out:
        assert np.isnan(ld.points[:, 0:3]).all() and np.isnan(ld.p_mv).all()
        assert math.isnan(ld.global_.p_on) and math.isnan(ld.global_.p_off)
        assert np.isfinite(ld.points[:, COL["qrs_on"]]).all()
    labels = np.stack([_mask(n, beats, p=(i < 3)) for i in range(6)])  # 3 of 6: the quorum
    out = d.segments_to_beats(labels, np.zeros((6, n)), 250.0, d.PostConfig(p_quorum=0.5))
    assert np.isfinite(out[0].points[:3, 0]).all() and math.isfinite(out[0].global_.p_on)
    assert np.isnan(out[0].points[3:, 0]).all()
    # P waves on one beat of three: none in the record (record_p 0.5), one with record_p 0
    n, beats = 1000, [150, 400, 650]
    labels = np.stack([_mask(n, beats, p=False)] * 4)
    labels[:, 90:110] = d.P
    sig = np.zeros((4, n))

    def with_p(record_p: float) -> list[bool]:
        cfg = d.PostConfig(p_quorum=0.5, record_p=record_p)
        return [math.isfinite(ld.global_.p_on) for ld in d.segments_to_beats(labels, sig, 250, cfg)]

    assert with_p(0.5) == [False, False, False]
    assert with_p(0.0) == [True, False, False]


def test_ludb_labels_mark_only_the_annotated_span():
    samples = [100, 110, 130, 200, 210, 240, 300, 350, 400]  # P, QRS, T at 500 Hz
    symbols = ["(", "p", ")", "(", "N", ")", "(", "t", ")"]
    lab = d.ludb_labels(samples, symbols, 1000)
    assert lab.shape == (500,)
    assert (lab[:50] == d.IGNORE).all() and (lab[201:] == d.IGNORE).all()
    assert (lab[50:66] == d.P).all() and lab[66] == d.NONE
    assert (lab[100:121] == d.QRS).all() and (lab[150:201] == d.T).all()
    # a wave without its onset: ignored from the span's start to its offset
    lab = d.ludb_labels([110, 130, 200, 210, 240], ["p", ")", "(", "N", ")"], 1000)
    assert (lab[55:66] == d.IGNORE).all() and (lab[100:121] == d.QRS).all()


def test_training_is_seeded_and_weights_round_trip(tmp_path, one_thread):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 256)).astype(np.float32)
    y = (np.abs(x) > 1).astype(np.int64) * d.QRS
    y[:, :20] = d.IGNORE
    net = d.NetConfig(widths=(4, 8), kernel=3)
    cfg = d.TrainConfig(epochs=2, batch=4, crop=128, seed=3)
    a, b = d.train(x, y, net, cfg), d.train(x, y, net, cfg)
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), ka
    path = tmp_path / "w.safetensors"
    d.save(a, path, {"records": ["x"]})
    loaded = d.load(path)
    assert loaded.config == net
    labels = d.predict_labels(loaded, x)  # through the traced, frozen network
    with torch.no_grad():
        eager = a.eval()(torch.from_numpy(x)[:, None, :]).argmax(dim=1).numpy()
    np.testing.assert_array_equal(labels, eager)


def test_bad_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.safetensors"):
        d.load(tmp_path / "nowhere.safetensors")
    with pytest.raises(ValueError, match="n_samples"):
        d.delineate_record(np.zeros((12, 4)), 500.0)
    with pytest.raises(FileNotFoundError, match="record 999"):
        d.load_ludb(tmp_path, ["999"])


def test_missing_weights_name_the_build_command(tmp_path, monkeypatch):
    monkeypatch.setenv(d.WEIGHTS_ENV, str(tmp_path / "none.safetensors"))
    with pytest.raises(FileNotFoundError, match=r"none.safetensors.*python -m team_code.nn"):
        d.delineate_record(np.zeros((12, 5000)), 500.0)


def test_built_weights_find_qrs_on_every_synthetic_beat(delineator_weights, one_thread):
    from team_code.data.synth import RecordSpec, synthesize

    assert d.weights_path() == delineator_weights
    assert delineator_weights.stat().st_size < 1_000_000
    x, truth = synthesize(RecordSpec(heart_rate_bpm=72.0), fs=500, duration_s=10, seed=1)
    out = d.delineate_record(x, 500.0)
    r_found = np.array([ld.r_index for ld in out])
    inner = [r for r in truth["r_peaks"] if 100 < r < x.shape[1] - 100]
    assert len(inner) >= 8
    for r in inner:  # every beat's QRS is found, on every lead, within 40 ms of its peak
        k = int(np.argmin(np.abs(r_found - r)))
        assert abs(r_found[k] - r) <= 20, (r, r_found)
        assert np.isfinite(out[k].points[:, COL["qrs_on"]]).all()
    assert len(out) <= len(truth["r_peaks"]) + 1  # nothing else taken for a QRS


def test_built_weights_on_ludb_records(ludb_dir, delineator_weights, one_thread):
    """QRS F1 of the built model lead by lead on a few LUDB records. These records were in
    its training set (it is trained on all 100 shared LUDB records): the test checks the
    loading, the network and the post-processing path, not generalisation (the benchmark's
    ``cnn-5fold`` rows do that)."""
    from benchmarks import delineation as bench

    ludb = ludb_dir
    tally = bench.Tally()
    for rec in ("1", "5", "7"):
        case = bench.load_ludb(ludb, rec, "per-lead")
        bench.score_per_lead(tally, case, bench.run_cnn(case, out_of_fold=False))
    for name in ("QRS onset", "QRS offset"):
        tp, fn, fp = tally.tp[name], tally.fn[name], tally.fp[name]
        f1 = 2 * tp / (2 * tp + fn + fp)
        assert f1 >= 0.98, (name, tp, fn, fp)
        assert abs(float(np.mean(tally.errors[name]))) < 15.0


def test_benchmark_names_the_missing_fold_models(tmp_path):
    from benchmarks import delineation as bench

    saved = dict(bench.CNN)
    bench.CNN["folds"] = tmp_path
    try:
        with pytest.raises(FileNotFoundError, match=r"team_code\.nn\.delineator folds"):
            bench._cnn_fold_weights("1")
        (tmp_path / "folds.json").write_text('{"fold0.safetensors": ["1", "2"]}')
        assert bench._cnn_fold_weights("2") == tmp_path / "fold0.safetensors"
        assert bench._cnn_fold_weights("3") is None  # not held out: no out-of-fold row
    finally:
        bench.CNN.clear()
        bench.CNN.update(saved)
