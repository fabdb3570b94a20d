"""The learned delineator's boundary options on inputs whose answer is known: gap filling
inside P and T waves, sub-sample onsets and offsets from the logits, and the loss weights
near marked boundaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from team_code.dsp import delineation as dl
from team_code.nn import delineator as d

COL = {name: i for i, name in enumerate(dl.LEAD_POINTS)}


def test_close_gaps_fills_short_gaps_inside_one_wave_only():
    lab = np.zeros((1, 40), np.int64)
    lab[0, 2:6] = d.P  # P, gap of 3, P: filled
    lab[0, 9:12] = d.P
    lab[0, 14:18] = d.T  # P, gap of 2, T: two waves, left
    lab[0, 24:26] = d.T  # T, gap of 6, T: too long, left
    lab[0, 30:32] = d.QRS  # QRS, gap of 2, QRS: not a class asked for
    lab[0, 34:36] = d.QRS
    out = d.close_gaps(lab, (d.P, d.T), 5)
    expected = lab.copy()
    expected[0, 6:9] = d.P
    np.testing.assert_array_equal(out, expected)
    assert (lab[0, 6:9] == d.NONE).all()  # the input is left as it was
    np.testing.assert_array_equal(d.close_gaps(lab, (d.P, d.T), 6)[0, 18:24], [d.T] * 6)
    np.testing.assert_array_equal(d.close_gaps(lab, (d.P, d.T), 0), lab)
    edge = np.array([[0, 0, d.P, d.P, 0, 0]])  # gaps that touch the record's ends stay
    np.testing.assert_array_equal(d.close_gaps(edge, (d.P,), 5), edge)


def _beats(n: int, beats: list[int], split: bool) -> np.ndarray:
    """Per beat at ``r``: P [r-60, r-41], QRS [r-10, r+14], T [r+70, r+119]; where ``split``,
    4-sample gaps at r-52 (in P) and r+90 (in T)."""
    lab = np.zeros(n, np.int64)
    for r in beats:
        lab[r - 60 : r - 40] = d.P
        lab[r - 10 : r + 15] = d.QRS
        lab[r + 70 : r + 120] = d.T
        if split:
            lab[r - 52 : r - 48] = d.NONE
            lab[r + 90 : r + 94] = d.NONE
    return lab


def test_split_p_and_t_waves_are_whole_when_gaps_are_closed():
    n, beats = 1000, [150, 400, 650]
    labels = np.stack([_beats(n, beats, split=True)] * 3)
    sig = np.zeros((3, n))
    split = d.segments_to_beats(labels, sig, 250.0, d.PostConfig(close_ms=(0.0, 0.0)))
    closed = d.segments_to_beats(labels, sig, 250.0, d.PostConfig(close_ms=(20.0, 0.0)))
    default = d.segments_to_beats(labels, sig, 250.0)  # fills gaps of up to 40 ms in P
    both = d.segments_to_beats(labels, sig, 250.0, d.PostConfig(close_ms=(20.0, 20.0)))
    for ld, two, r in zip(default, both, beats):
        assert ld.points[0, COL["p_on"]] == r - 60
        assert ld.points[0, COL["t_end"]] == r + 89  # T's gaps left: its first piece
        assert two.points[0, COL["t_end"]] == r + 119
    for a, b, r in zip(split, closed, beats):
        assert a.points[0, COL["p_on"]] == r - 48  # the last piece alone
        assert b.points[0, COL["p_on"]] == r - 60  # the whole wave
        assert b.points[0, COL["p_off"]] == r - 41
        assert b.points[0, COL["qrs_on"]] == r - 10


def _ramp_logits(n: int, cls: int, on: float, off: float) -> np.ndarray:
    """One lead's logits: ``cls`` leads the other classes (all 0) by a margin that rises
    through zero at ``on`` and falls through zero at ``off`` (slopes 2 and 3 per sample)."""
    t = np.arange(n, dtype=np.float64)
    logits = np.zeros((1, len(d.CLASSES), n), np.float32)
    logits[0, cls] = np.minimum(2.0 * (t - on), 3.0 * (off - t))
    return logits


def test_subsample_edges_find_the_zero_crossing():
    logits = _ramp_logits(60, d.QRS, on=10.3, off=30.6)
    labels = logits.argmax(axis=1)
    assert labels[0, 10] == d.NONE and labels[0, 11] == d.QRS  # the run starts at 11
    assert labels[0, 30] == d.QRS and labels[0, 31] == d.NONE  # ... and ends at 30
    row, cls = np.array([0]), np.array([d.QRS])
    onset = d.subsample_edges(logits, row, np.array([11]), cls, onset=True)
    offset = d.subsample_edges(logits, row, np.array([30]), cls, onset=False)
    # crossing plus half a sample: a crossing midway between two samples gives the run's end
    assert onset[0] == pytest.approx(10.3 + 0.5)
    assert offset[0] == pytest.approx(30.6 - 0.5)
    mid = d.subsample_edges(_ramp_logits(60, d.QRS, 10.5, 30.5), row, np.array([11]), cls, True)
    assert mid[0] == pytest.approx(11.0)
    # at the record's edge there is no sample outside the run: the point stays
    edge = d.subsample_edges(logits, row, np.array([0]), cls, onset=True)
    assert edge[0] == 0.0


def test_segments_to_beats_with_subsample_points():
    n, r = 400, 200
    t = np.arange(n, dtype=np.float64)
    logits = np.zeros((2, len(d.CLASSES), n), np.float32)
    for cls, on, off in ((d.P, r - 60.25, r - 40.75), (d.QRS, r - 10.3, r + 14.2)):
        logits[:, cls] = np.minimum(t - on, off - t)
    logits[:, d.T] = np.minimum(t - (r + 69.6), (r + 119.4) - t)
    labels = logits.argmax(axis=1)
    sig = np.zeros((2, n))
    cfg = d.PostConfig(subsample=True, record_p=0.0)
    (ld,) = d.segments_to_beats(labels, sig, 250.0, cfg, scale=2.0, logits=logits)
    p = ld.points[0]
    expected = {
        "p_on": r - 60.25 + 0.5,
        "p_off": r - 40.75 - 0.5,
        "qrs_on": r - 10.3 + 0.5,
        "qrs_off": r + 14.2 - 0.5,
        "t_on": r + 69.6 + 0.5,
        "t_end": r + 119.4 - 0.5,
    }
    for name, v in expected.items():
        assert p[COL[name]] == pytest.approx(2 * v), name
    # whole samples without the logits, or without the option
    (plain,) = d.segments_to_beats(labels, sig, 250.0, cfg, scale=2.0)
    assert plain.points[0, COL["qrs_on"]] == 2 * (r - 10)
    off = d.PostConfig(subsample=False, record_p=0.0)
    (plain,) = d.segments_to_beats(labels, sig, 250.0, off, scale=2.0, logits=logits)
    assert plain.points[0, COL["qrs_on"]] == 2 * (r - 10)
    with pytest.raises(ValueError, match="logits"):
        d.segments_to_beats(labels, sig, 250.0, cfg, logits=logits[:, :, :-1])


def test_edge_weights_mark_the_samples_beside_each_boundary():
    i = d.IGNORE
    lab = np.array([[i, 0, 0, 0, 1, 1, 1, 1, 0, 0, i, i]])
    np.testing.assert_array_equal(
        d.edge_weights(lab, 3.0, 1)[0], [1, 1, 1, 4, 4, 1, 1, 4, 4, 1, 1, 1]
    )
    np.testing.assert_array_equal(
        d.edge_weights(lab, 3.0, 2)[0], [1, 1, 4, 4, 4, 4, 4, 4, 4, 4, 1, 1]
    )
    np.testing.assert_array_equal(d.edge_weights(lab, 0.0, 2), np.ones_like(lab))


def test_training_with_edge_weights_is_seeded_and_differs(one_thread):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 256)).astype(np.float32)
    y = (np.abs(x) > 1).astype(np.int64) * d.QRS
    y[:, :20] = d.IGNORE
    net = d.NetConfig(widths=(4, 8), kernel=3)
    cfg = d.TrainConfig(epochs=2, batch=4, crop=128, seed=3, edge_weight=3.0)
    a, b = d.train(x, y, net, cfg), d.train(x, y, net, cfg)
    plain = d.train(x, y, net, d.TrainConfig(epochs=2, batch=4, crop=128, seed=3))
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k
    assert not all(
        torch.equal(va, vp) for va, vp in zip(a.state_dict().values(), plain.state_dict().values())
    )


def test_dilated_bottleneck_keeps_shapes_and_fuses(one_thread):
    torch.manual_seed(0)
    net = d.SegmentNet(d.NetConfig(widths=(4, 8, 8), kernel=5, dilation=4))
    convs = [m for m in net.down[-1].modules() if isinstance(m, torch.nn.Conv1d)]
    assert [c.dilation[0] for c in convs] == [1, 4]
    assert [c.dilation[0] for c in net.down[0].modules() if isinstance(c, torch.nn.Conv1d)] == [1]
    x = torch.randn(2, 1, 256)
    with torch.no_grad():
        before = net.eval()(x)
        after = net.fuse()(x)
    assert before.shape == (2, len(d.CLASSES), 256)
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="NetConfig"):
        d.NetConfig(dilation=0)


def test_input_low_pass_is_the_weights_own(tmp_path, one_thread):
    fs = 500.0
    t = np.arange(5000) / fs
    x = np.stack([np.sin(2 * np.pi * 80.0 * t), np.sin(2 * np.pi * 10.0 * t)])
    z40, _ = d.prepare(x, fs)  # default: 40 Hz low-pass
    z0, y0 = d.prepare(x, fs, lowpass_hz=0.0)  # the resampling's anti-aliasing alone
    mid = slice(500, 2000)
    assert np.ptp(z0[0, mid]) > 10 * np.ptp(z40[0, mid])  # 80 Hz kept only without it
    assert np.ptp(y0[0, mid]) > 1.5
    np.testing.assert_allclose(z0[1, mid], z40[1, mid], atol=0.05)  # 10 Hz in both
    net = d.NetConfig(widths=(4, 8), kernel=3, lowpass_hz=0.0)
    path = tmp_path / "w.safetensors"
    d.save(d.SegmentNet(net).eval(), path)
    assert d.load(path).config.lowpass_hz == 0.0


def test_lead_shrink_moves_each_leads_boundaries_toward_the_median_only():
    n, beats = 1000, [150, 400, 650]
    leads = []
    for shift in (0, 4, 8, -8):  # lead 3's waves start 8 samples early, lead 2's 8 late
        lab = _beats(n, beats, split=False)
        leads.append(np.roll(lab, shift))
    labels = np.stack(leads)
    sig = np.zeros((4, n))
    own = d.segments_to_beats(labels, sig, 250.0, d.PostConfig(lead_shrink=0.0))
    shrunk = d.segments_to_beats(labels, sig, 250.0)  # the kit's 0.25
    assert d.PostConfig().lead_shrink == 0.25
    bounds = [COL[c] for c in ("p_on", "p_off", "qrs_on", "qrs_off", "t_end")]
    peaks = [COL[c] for c in ("p_peak", "qrs_peak", "t_peak")]
    for a, b in zip(own, shrunk):
        med = np.median(a.points[:, bounds], axis=0)
        expected = a.points[:, bounds] + 0.25 * (med - a.points[:, bounds])
        np.testing.assert_allclose(b.points[:, bounds], expected)
        np.testing.assert_array_equal(b.points[:, peaks], a.points[:, peaks])
        assert b.global_ == a.global_  # the global boundaries come from the leads' own
        np.testing.assert_allclose(
            np.median(b.points[:, bounds], axis=0), med
        )  # the typical lead is unchanged
    with pytest.raises(ValueError, match="lead_shrink must lie in"):
        d.PostConfig(lead_shrink=1.5)


def test_lead_shrink_keeps_a_boundary_no_usable_lead_has():
    # only lead 2 (not usable: it does not vote) finds T waves: the usable leads' median has
    # no T end to pull toward, so lead 2's own T end stays (it was erased to NaN)
    n, beats = 1000, [150, 400, 650]
    no_t = _beats(n, beats, split=False)
    no_t[no_t == d.T] = d.NONE
    labels = np.stack([no_t, no_t, np.roll(_beats(n, beats, split=False), 4)])
    usable = np.array([True, True, False])
    sig = np.zeros((3, n))
    own = d.segments_to_beats(labels, sig, 250.0, d.PostConfig(lead_shrink=0.0), usable=usable)
    shrunk = d.segments_to_beats(labels, sig, 250.0, usable=usable)
    assert len(own) == len(shrunk) == len(beats)
    for a, b, r in zip(own, shrunk, beats):
        assert b.points[2, COL["t_end"]] == a.points[2, COL["t_end"]] == r + 123
        assert np.isnan(b.points[:2, COL["t_end"]]).all()
        # the boundaries the usable leads do have still move toward their median
        assert a.points[2, COL["qrs_on"]] == r - 6
        assert b.points[2, COL["qrs_on"]] == r - 7  # a quarter of the way to r - 10
