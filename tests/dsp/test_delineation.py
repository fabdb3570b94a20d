"""Delineation on synthetic beats with planted PR and QRS, QTc formulas, real records."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from team_code.data import synth
from team_code.data.records import load_record
from team_code.dsp import delineation, features

NOISE = synth.NoiseSpec(white_mv=0.01, emg_mv=0.01, baseline_mv=0.1, powerline_mv=0.02)


@pytest.mark.parametrize("fs", [257.0, 500.0, 1000.0])
@pytest.mark.parametrize(("pr_ms", "qrs_ms"), [(130, 80), (200, 110), (280, 140)])
def test_planted_pr_qrs_axis_rate(fs, pr_ms, qrs_ms):
    spec = synth.RecordSpec(
        pr_ms=pr_ms, qrs_ms=qrs_ms, axis_deg=pr_ms - 200, heart_rate_bpm=80, noise=NOISE
    )
    x, truth = synth.synthesize(spec, fs, 10, seed=1)
    v = features.measure(x, fs, synth.LEADS).values
    # measured errors on this grid (seed 1): PR -8..-2 ms, QRS 0..+12 ms, axis within 1.1 deg
    assert abs(v["pr_ms"] - pr_ms) <= 16
    assert abs(v["qrs_ms"] - qrs_ms) <= 16
    assert abs(v["qrs_axis_deg"] - spec.axis_deg) <= 5
    assert abs(v["hr_bpm"] - 80) <= 3
    assert v["n_beats"] == len(truth["r_peaks"])


def test_qtc_formulas():
    assert delineation.qtc(400.0, 1.0, "bazett1920") == pytest.approx(400.0)
    assert delineation.qtc(400.0, 0.64, "bazett1920") == pytest.approx(500.0)
    assert delineation.qtc(400.0, 0.512, "fridericia1920") == pytest.approx(500.0)
    assert delineation.qtc(400.0, 0.5, "framingham1992") == pytest.approx(477.0)
    assert math.isnan(delineation.qtc(math.nan, 1.0))
    with pytest.raises(ValueError, match="unknown QTc"):
        delineation.qtc(400.0, 1.0, "hodges")


def test_flat_beat_gives_nan():
    d = delineation.delineate(np.zeros((8, 500)), 500.0, 225, 0.8)
    assert math.isnan(d.qrs_ms) and math.isnan(d.pr_ms) and math.isnan(d.qt_ms)


def test_missing_p_wave_in_af_gives_no_or_inconsistent_p():
    spec = synth.RecordSpec(rhythm="af", heart_rate_bpm=90, rr_cv=0.2, noise=NOISE)
    x, _ = synth.synthesize(spec, 500, 10, seed=2)
    v = features.measure(x, 500, synth.LEADS).values
    assert math.isnan(v["p_consistency"]) or v["p_consistency"] < 0.6


def test_real_sinus_record_intervals_plausible(challenge_dir):
    # A0002: CPSC 2018, labelled sinus rhythm (426783006) only
    v = features.measure_record(load_record(challenge_dir / "A0002.hea")).values
    assert 120 <= v["pr_ms"] <= 220
    assert 60 <= v["qrs_ms"] <= 110
    assert 340 <= v["qtc_bazett_ms"] <= 460
    assert 60 <= v["hr_bpm"] <= 100
    assert -30 <= v["qrs_axis_deg"] <= 90


def test_real_lbbb_record_has_wide_qrs(challenge_dir):
    # the first record labelled LBBB only; LBBB records measured QRS 128-168 ms but one (86 ms)
    import csv

    with open(challenge_dir / "MANIFEST.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["dx_snomed"] == "164909002"]
    assert rows, "no LBBB-only record in the manifest"
    v = features.measure_record(load_record(challenge_dir / f"{rows[0]['record']}.hea")).values
    assert v["qrs_ms"] >= 120


def _planted_ms(truth, key, fs):
    """Median planted boundary ``key`` relative to the R peak of the sinus beats, ms."""
    r = np.asarray(truth["r_peaks"], float)
    keep = np.asarray(truth["beat_types"]) == "N"
    b = np.asarray(truth[key], float)
    n = min(r.size, b.size)
    return float(np.median((b[:n] - r[:n])[keep[:n]])) * 1e3 / fs


@pytest.mark.parametrize(("pr_ms", "qrs_ms"), [(160, 90), (220, 130)])
def test_per_lead_boundaries_on_planted_record(pr_ms, qrs_ms):
    fs = 500.0
    spec = synth.RecordSpec(pr_ms=pr_ms, qrs_ms=qrs_ms, heart_rate_bpm=70, noise=NOISE)
    x, truth = synth.synthesize(spec, fs, 10, seed=3)
    m = features.measure(x, fs, synth.LEADS)
    ld = m.leads
    assert ld is not None and ld.points.shape == (12, len(delineation.LEAD_POINTS))
    assert m.lead_names == tuple(synth.LEADS)
    on_ms = _planted_ms(truth, "qrs_onsets", fs)
    off_ms = _planted_ms(truth, "qrs_offsets", fs)
    rel = (ld.points - ld.r_index) * 1e3 / fs
    col = {name: i for i, name in enumerate(delineation.LEAD_POINTS)}
    big = np.asarray(truth["qrs_p2p_mv"]) >= 0.3  # leads where the QRS is clearly visible
    # every lead: the order of the waves holds
    order = ["p_on", "p_peak", "p_off", "qrs_on", "qrs_off", "t_peak", "t_end"]
    assert np.all(np.diff(ld.points[:, [col[c] for c in order]], axis=1) > 0)
    # lead-wise QRS onset/offset: a lead's visible QRS starts no earlier than the planted
    # dipole's (less 12 ms) and ends no later (plus 8 ms); the median over the visible leads
    # is within 20 ms of the planted onset and 35 ms of the offset (measured on this grid:
    # median onsets +8 / -6 ms, offsets +2 / -10 ms; each lead stays within 12 ms of the
    # leads-together boundary)
    assert np.all(rel[big, col["qrs_on"]] >= on_ms - 12)
    assert np.all(rel[big, col["qrs_off"]] <= off_ms + 8)
    assert abs(np.median(rel[big, col["qrs_on"]]) - on_ms) <= 20
    assert abs(np.median(rel[big, col["qrs_off"]]) - off_ms) <= 35
    # global boundaries from the leads: QRS duration and PR close to the planted values,
    # the QRS no narrower than that of the leads together
    v = m.values
    assert abs(v["global_qrs_ms"] - qrs_ms) <= 16 and abs(v["global_pr_ms"] - pr_ms) <= 20
    assert v["global_qrs_ms"] >= v["qrs_ms"] and v["global_qt_ms"] >= v["qt_ms"] - 20
    # the global onset is no later than the median lead's, the offset no earlier
    assert ld.global_.qrs_on <= np.median(ld.points[:, col["qrs_on"]])
    assert ld.global_.qrs_off >= np.median(ld.points[:, col["qrs_off"]])
    assert v["p_present"] == 1.0 and np.isfinite(v["V1_lead_qrs_ms"])
    assert np.isfinite(v["qrs_lead_median_ms"]) and v["qrs_lead_median_ms"] <= v["qrs_ms"]


def test_no_p_wave_on_any_lead_in_synthetic_af():
    spec = synth.RecordSpec(rhythm="af", heart_rate_bpm=90, rr_cv=0.2, noise=NOISE)
    x, _ = synth.synthesize(spec, 500, 10, seed=2)
    m = features.measure(x, 500, synth.LEADS)
    assert m.values["p_present"] == 0.0
    assert np.all(np.isnan(m.leads.points[:, :3]))  # p_on, p_peak, p_off on every lead
    assert math.isnan(m.values["global_pr_ms"]) and math.isnan(m.values["global_p_ms"])
    assert math.isnan(m.leads.global_.p_on) and np.all(np.isnan(m.leads.p_mv))
    assert np.isfinite(m.values["global_qrs_ms"]) and np.isfinite(m.values["global_qt_ms"])
    assert "no P waves" in " ".join(m.notes)


def test_p_waves_present_reads_the_rhythm_evidence():
    sinus = {
        "p_consistency": 0.95,
        "paced_fraction": 0.0,
        "rr_irregularity": 0.02,
        "atrial_organisation": 0.3,
    }
    assert features.p_waves_present(sinus)
    assert not features.p_waves_present({**sinus, "paced_fraction": 1.0})
    assert not features.p_waves_present({**sinus, "p_consistency": math.nan})
    assert not features.p_waves_present({**sinus, "rr_irregularity": 0.25, "p_consistency": 0.8})
    assert features.p_waves_present({**sinus, "rr_irregularity": 0.25})  # irregular, clear P
    assert not features.p_waves_present({**sinus, "atrial_organisation": 0.9})


def test_global_rules_and_one_stray_lead():
    g = delineation.Delineation(500.0, 200, 100.0, 120.0, 140.0, 190.0, 226.0, 330.0, 380.0, 0.1)
    pts = np.full((8, len(delineation.LEAD_POINTS)), np.nan)
    pts[:, 3] = [180, 181, 182, 183, 184, 185, 186, 160]  # QRS onsets; the last lead strays
    pts[:, 5] = [226, 227, 228, 229, 230, 231, 232, 233]  # QRS offsets
    rules = {}
    for rule in delineation.GLOBAL_RULES:
        cfg = delineation.LeadDelineationConfig(global_rule=rule)
        rules[rule] = delineation.global_from_leads(pts, g, cfg)
    assert rules["earliest"].qrs_on == 160 and rules["earliest"].qrs_off == 233
    assert rules["second"].qrs_on == 180 and rules["second"].qrs_off == 232
    assert rules["mad"].qrs_on == 180 and rules["mad"].qrs_off == 233
    assert rules["median"].qrs_on == 182.5 and rules["median"].qrs_off == 229.5
    # the QRS is never narrower than the global (spatial-velocity) one
    wide = dataclasses.replace(g, qrs_on=170.0, qrs_off=240.0)
    assert delineation.global_from_leads(pts, wide).qrs_on == 170.0
    assert delineation.global_from_leads(pts, wide).qrs_off == 240.0
    assert rules["mad"].p_on == g.p_on  # no per-lead P: the global P stays
    # one boundary at a time, as the benchmark combines a cardiologist's marks
    assert delineation.global_boundary(pts[:, 3], False, 500.0) == 180.0
    assert delineation.global_boundary(pts[:, 5], True, 500.0) == 233.0
    earliest = delineation.LeadDelineationConfig(global_rule="earliest")
    assert delineation.global_boundary(pts[:, 3], False, 500.0, earliest) == 160.0
    assert math.isnan(delineation.global_boundary([np.nan, np.nan], True, 500.0))
    for rule in delineation.GLOBAL_RULES:  # one lead's value, as a scalar too
        cfg = delineation.LeadDelineationConfig(global_rule=rule)
        assert delineation.global_boundary(181.0, False, 500.0, cfg) == 181.0
    with pytest.raises(ValueError, match="unknown global rule"):
        delineation.LeadDelineationConfig(global_rule="latest")
    with pytest.raises(ValueError, match="unknown per-lead delineation method"):
        delineation.delineate_leads(np.zeros((2, 500)), 500.0, 225, method="magic")


def test_flat_beat_gives_nan_on_every_lead():
    ld = delineation.delineate_leads(np.zeros((12, 500)), 500.0, 225, 0.8)
    assert np.all(np.isnan(ld.points)) and math.isnan(ld.global_.qrs_ms)


def test_lead_q_and_t_measures_read_each_lead():
    spec = synth.RecordSpec(heart_rate_bpm=70, noise=NOISE)
    x, _ = synth.synthesize(spec, 500.0, 10, seed=4)
    m = features.measure(x, 500.0, synth.LEADS)
    v = m.values
    col = delineation.LEAD_POINTS.index("qrs_on")
    for k, lead in enumerate(m.lead_names):
        # q_ms counts from the leads-together onset: the lead's lateness is measured from it
        # (a lead starting before it counts 0)
        late_ms = max(0.0, (m.leads.points[k, col] - m.delineation.qrs_on) * 1e3 / m.fs)
        # the Q wave counted from the lead's own onset: q_ms less the lead's lateness
        want = max(0.0, v[f"{lead}_q_ms"] - late_ms) if v[f"{lead}_q_ms"] > 0 else 0.0
        assert v[f"{lead}_lead_q_ms"] == pytest.approx(want)
        # the T amplitude at the lead's own peak is at least as large as at the global peak
        assert abs(v[f"{lead}_lead_t_mv"]) >= abs(v[f"{lead}_t_mv"]) - 0.02
        assert np.sign(v[f"{lead}_lead_t_mv"]) == np.sign(v[f"{lead}_t_mv"]) or (
            abs(v[f"{lead}_t_mv"]) < 0.05
        )


def test_a_real_leads_q_wave_is_counted_from_its_own_onset(challenge_dir):
    """A0003, lead III: its QRS starts with the leads-together onset, 6 samples after the
    global one, and its Q wave recrosses zero 18 samples (36 ms) later. Counting the lead's
    lateness from the global onset read the Q as 24 ms, under the 30-ms limit of abnormal Q
    waves."""
    m = features.measure_record(load_record(challenge_dir / "A0003.hea"))
    k = m.lead_names.index("III")
    lead_on = m.leads.points[k, delineation.LEAD_POINTS.index("qrs_on")]
    assert lead_on == m.delineation.qrs_on > m.leads.global_.qrs_on
    assert m.values["III_lead_q_ms"] == pytest.approx(36.0)


def _beat_with_t(fs: float, t_end_ms: float) -> tuple[np.ndarray, int]:
    """Two leads, 1.1 s: a 80-ms triangular QRS at 450 ms and a raised-cosine T wave from
    R + 200 ms to R + ``t_end_ms`` (0.3 mV in lead 0, -0.2 mV in lead 1)."""
    n, r = int(1.1 * fs), int(0.45 * fs)
    t = (np.arange(n) - r) * 1e3 / fs
    qrs = np.clip(1.0 - np.abs(t) / 40.0, 0.0, None)
    on = (t >= 200) & (t <= t_end_ms)
    bump = np.where(on, 0.5 - 0.5 * np.cos(2 * np.pi * (t - 200) / (t_end_ms - 200)), 0.0)
    return np.stack([qrs + 0.3 * bump, 0.8 * qrs - 0.2 * bump]), r


@pytest.mark.parametrize("t_end_ms", [380.0, 440.0])
def test_lead_t_end_methods_on_a_known_t_wave(t_end_ms):
    fs = 500.0
    beat, r = _beat_with_t(fs, t_end_ms)
    col = delineation.LEAD_POINTS.index("t_end")
    ends = {}
    for method in ("lepeschkin1952", "vazquez2011"):
        cfg = delineation.LeadDelineationConfig(t_end_method=method, t_max_dev_ms=math.inf)
        ld = delineation.delineate_leads(beat, fs, r, 1.0, config=cfg)
        ends[method] = (ld.points[:, col] - r) * 1e3 / fs
        assert np.sign(ld.t_mv).tolist() == [1.0, -1.0]  # each lead's own T polarity
    # a raised cosine ends in a slow tail: the tangent meets the baseline early (measured
    # -15 and -21 ms), the trapezium area lands closer to the true end (-2 and -4 ms)
    trapezium, tangent = ends["vazquez2011"], ends["lepeschkin1952"]
    assert np.all(np.abs(trapezium - t_end_ms) <= 8)
    assert np.all(np.abs(trapezium - t_end_ms) < np.abs(tangent - t_end_ms))
    with pytest.raises(ValueError, match="unknown t_end_method"):
        delineation.LeadDelineationConfig(t_end_method="threshold")


def test_lead_median_is_the_typical_lead_beside_the_global_boundaries():
    g = delineation.Delineation(500.0, 200, 100.0, 120.0, 140.0, 160.0, 236.0, 330.0, 380.0, 0.1)
    pts = np.full((8, len(delineation.LEAD_POINTS)), np.nan)
    pts[:, 3] = [180, 181, 182, 183, 184, 185, 186, 160]  # QRS onsets
    pts[:, 5] = [226, 227, 228, 229, 230, 231, 232, 233]  # QRS offsets
    pts[:3, 8] = [370, 380, 390]  # T ends on three leads only
    ld = delineation.LeadDelineation(500.0, 200, pts, np.zeros(8), np.zeros(8), g)
    m = ld.lead_median()
    assert (m.qrs_on, m.qrs_off, m.t_end) == (182.5, 229.5, 380.0)
    assert math.isnan(m.p_on) and math.isnan(m.p_off)  # no lead has a P wave
    assert (m.r_index, m.p_peak, m.t_peak, m.p_mv) == (g.r_index, g.p_peak, g.t_peak, g.p_mv)
    assert m.qrs_ms == pytest.approx(94.0) and g.qrs_ms == pytest.approx(152.0)


def test_global_rules_match_numpys_medians_on_random_leads():
    rng = np.random.default_rng(1)
    cfg = delineation.LeadDelineationConfig()
    for _ in range(200):
        v = rng.normal(200.0, rng.uniform(1, 30), size=int(rng.integers(1, 13))).round()
        v[rng.random(v.size) < 0.2] = np.nan
        ok = v[np.isfinite(v)]
        for latest in (False, True):
            got = delineation._mad_extreme(v, latest, 500.0, cfg.outlier_ms)
            if not ok.size:
                assert math.isnan(got)
                continue
            med = np.median(ok)
            dev = np.abs(ok - med)
            keep = ok[dev <= max(3.0 * 1.4826 * np.median(dev), cfg.outlier_ms * 0.5)]
            assert got == (keep.max() if latest else keep.min())
        if ok.size:
            assert delineation.nanmedian(v) == np.median(ok)
        else:
            assert math.isnan(delineation.nanmedian(v))


def test_nanmedian_gives_numpys_values():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 500, size=(40, 12, 9)).astype(float)
    a[rng.random(a.shape) < 0.3] = np.nan
    a[3, :, 2] = np.nan  # an all-NaN slice
    for axis in (0, 1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's all-NaN slice
            expected = np.nanmedian(a, axis=axis)
        np.testing.assert_array_equal(delineation.nanmedian(a, axis), expected)
    assert delineation.nanmedian(np.zeros((3, 0)), 1).shape == (3,)
    assert np.isnan(delineation.nanmedian(np.zeros((3, 0)), 1)).all()


@pytest.mark.parametrize("skew", [0.3, 0.5, 0.7])
def test_a_qs_complex_is_a_q_wave(skew):
    """A lead whose QRS is one negative deflection of 1 mV over 80 ms (a QS complex, no R
    wave), its trough early, central or late, has a Q wave 1 mV deep lasting the whole QRS.
    With its largest value at the QRS onset, the QS read as an S wave and no Q."""
    fs = 500.0
    n, r = int(1.1 * fs), int(0.45 * fs)
    on, off = r - 20, r + 20
    k = np.arange(on, off + 1)
    u = (k - on) / (off - on)
    phase = np.where(u < skew, 0.5 * u / skew, 0.5 + 0.5 * (u - skew) / (1 - skew))
    y = np.zeros(n)
    y[k] = -np.sin(np.pi * phase)
    beat = np.tile(y, (12, 1))
    nan = math.nan
    d = delineation.Delineation(fs, r, nan, nan, nan, float(on), float(off), nan, nan, nan)
    m = features._lead_measures(beat, fs, d)
    assert m["V2_q_mv"] == pytest.approx(-1.0, abs=0.01)
    assert m["V2_q_ms"] == pytest.approx(80.0, abs=4.0)
