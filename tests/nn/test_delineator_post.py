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
    for name, v in expected.items():  # on the input's samples: half a sample out (scale 2)
        assert p[COL[name]] == pytest.approx(2 * v + (-0.5 if "on" in name else 0.5)), name
    # whole samples without the logits, or without the option
    (plain,) = d.segments_to_beats(labels, sig, 250.0, cfg, scale=2.0)
    assert plain.points[0, COL["qrs_on"]] == 2 * (r - 10) - 0.5
    off = d.PostConfig(subsample=False, record_p=0.0)
    (plain,) = d.segments_to_beats(labels, sig, 250.0, off, scale=2.0, logits=logits)
    assert plain.points[0, COL["qrs_on"]] == 2 * (r - 10) - 0.5
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


def _tents(labels: np.ndarray) -> np.ndarray:
    """A signal with a tent over every run of one class (peak in the run's middle)."""
    sig = np.zeros(labels.shape)
    for row, lab in enumerate(labels):
        edges = np.flatnonzero(np.diff(lab) != 0) + 1
        for a, b in zip(np.r_[0, edges], np.r_[edges, lab.size]):
            if lab[a] != d.NONE:
                t = np.arange(a, b)
                sig[row, a:b] = np.minimum(t - a, b - 1 - t) * 0.01
    return sig


def test_lead_shrink_moves_each_leads_boundaries_toward_the_median_only():
    n, beats = 1000, [150, 400, 650]
    leads = []
    for shift in (0, 4, 8, -8):  # lead 3's waves start 8 samples early, lead 2's 8 late
        lab = _beats(n, beats, split=False)
        leads.append(np.roll(lab, shift))
    labels = np.stack(leads)
    sig = _tents(labels)  # each wave's peak in its middle, away from its boundaries
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


def test_a_lead_that_does_not_vote_is_not_delineated_and_moves_no_global_boundary():
    """A flat or noise-only lead (not usable: its normalisation magnifies noise into waves)
    gets no points, and the global boundaries and the leads' median are those of the usable
    leads alone: here its early P and QRS would have set the global onsets."""
    n, beats = 1000, [150, 400, 650]
    lab = _beats(n, beats, split=False)
    labels = np.stack([lab, np.roll(lab, 2), np.roll(lab, -20)])
    sig = np.zeros((3, n))
    usable = np.array([True, True, False])
    got = d.segments_to_beats(labels, sig, 250.0, usable=usable)
    alone = d.segments_to_beats(labels[:2], sig[:2], 250.0)
    assert len(got) == len(alone) == len(beats)
    for a, b in zip(got, alone):
        assert np.isnan(a.points[2]).all()
        assert np.isnan(a.t_mv[2]) and np.isnan(a.p_mv[2])
        assert a.global_ == b.global_
        np.testing.assert_array_equal(a.points[:2], b.points)


def test_a_shrunk_boundary_never_passes_its_own_wave_s_peak():
    """A lead whose P wave lies far before the others': its onset, pulled a quarter of the way
    toward the leads' median, would pass its own P peak; it is held at the peak."""
    n, r = 600, 300
    lab = _beats(n, [r], split=False)
    early = lab.copy()
    early[r - 60 : r - 40] = d.NONE
    early[r - 120 : r - 112] = d.P  # a short P 60 samples early
    labels = np.stack([lab, lab, lab, early])
    sig = np.zeros((4, n))
    sig[3, r - 118] = 0.2  # lead 3's P peak, 2 samples after its onset
    sig[:3, r - 50] = 0.2
    (own,) = d.segments_to_beats(labels, sig, 250.0, d.PostConfig(lead_shrink=0.0))
    (shrunk,) = d.segments_to_beats(labels, sig, 250.0)
    assert own.points[3, COL["p_on"]] == r - 120 and own.points[3, COL["p_peak"]] == r - 118
    # a quarter of the way from r - 120 to the median's r - 60 would be r - 105: past the peak
    assert shrunk.points[3, COL["p_on"]] == r - 118
    for pts in shrunk.points:
        for on, peak, off in (("p_on", "p_peak", "p_off"), ("qrs_on", "qrs_peak", "qrs_off")):
            assert pts[COL[on]] <= pts[COL[peak]] <= pts[COL[off]]


def test_whole_label_samples_stand_for_the_input_samples_they_cover():
    """Labels at 250 Hz of waves marked on 500 Hz samples (a label sample is in a wave where
    the input sample it falls on is): over onsets and offsets of either parity, the points
    on the input's samples are right on average (each within half a sample), where reading
    the first and last labelled samples alone was 1 ms late at onsets and early at offsets."""
    n_in, r = 1200, 600
    errors = {"qrs_on": [], "qrs_off": []}
    for on in range(r - 24, r - 16):
        for off in range(r + 20, r + 28):
            inside = (np.arange(0, n_in, 2) >= on) & (np.arange(0, n_in, 2) <= off)
            labels = np.where(inside, d.QRS, d.NONE)[None, :].repeat(2, axis=0)
            (ld,) = d.segments_to_beats(labels, np.zeros((2, n_in // 2)), 250.0, scale=2.0)
            errors["qrs_on"].append(ld.points[0, COL["qrs_on"]] - on)
            errors["qrs_off"].append(ld.points[0, COL["qrs_off"]] - off)
    for name, e in errors.items():
        assert abs(np.mean(e)) < 1e-9, name
        assert np.max(np.abs(e)) == 0.5, name
