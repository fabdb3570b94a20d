"""benchmarks/delineation.py: the matcher on boundaries of known truth, and the whole run on a
few real LUDB and QTDB records (skipped without ../shared/data unless ECG_KIT_REQUIRE_DATA=1)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import delineation as bench

FS = 250.0
NAN = math.nan


def _beat(r, p=None, qrs=(-20, 0, 24), t=(60, 110, 150)):
    """A beat at sample ``r``; waves as offsets from it (None: the wave is absent)."""
    waves = {"QRS": np.array(qrs, float) + r}
    if p is not None:
        waves["P"] = np.array(p, float) + r
    if t is not None:
        waves["T"] = np.array(t, float) + r
    return bench.Beat(r=float(r), waves=waves)


def test_parse_waves_reads_onsets_peaks_offsets_and_gaps():
    samples = [10, 20, 30, 40, 50, 60, 90, 100, 110, 120, 200, 250]
    symbols = ["(", "p", ")", "(", "N", ")", "t", "t", ")", "u", "V", ")"]
    waves = bench.parse_waves(samples, symbols)
    assert waves[0] == ("P", 10.0, 20.0, 30.0)
    assert waves[1] == ("QRS", 40.0, 50.0, 60.0)
    kind, on, peak, off = waves[2]  # T without onset, second (biphasic) peak ignored
    assert (kind, peak, off) == ("T", 90.0, 110.0) and math.isnan(on)
    assert waves[3][0] == "U"
    kind, on, peak, off = waves[4]  # a PVC label is a QRS; no onset marked
    assert (kind, peak, off) == ("QRS", 200.0, 250.0) and math.isnan(on)
    beats = bench.waves_to_beats(waves, FS)
    assert [b.r for b in beats] == [50.0, 200.0]
    assert set(beats[0].waves) == {"P", "QRS", "T"} and set(beats[1].waves) == {"QRS"}


def test_matcher_errors_and_counts_on_known_truth():
    # 4 annotated beats 200 samples (800 ms) apart; beat 2 has no P (the reference says so)
    beats_at = [100, 300, 500, 700]
    ref = [_beat(r, p=(-60, -45, -30) if i != 2 else None) for i, r in enumerate(beats_at)]
    det = [
        _beat(100, p=(-56, -45, -30), qrs=(-16, 0, 24)),  # P onset +16 ms, QRS onset +16 ms
        _beat(300, p=None),  # P missed
        _beat(500, p=(-60, -45, -30)),  # a P where the reference has none: false positive
        _beat(700, p=(-60, -45, -30), t=(60, 110, 200)),  # T offset 200 ms late: no match
        _beat(900, p=(-60, -45, -30)),  # a beat nobody annotated: not scored
    ]
    out = bench.score_beats(ref, det, FS)
    p_on = out["P onset"]
    assert p_on.tp.tolist() == [True, False, False, True]
    assert p_on.fn.tolist() == [False, True, False, False]
    assert p_on.fp.tolist() == [0, 0, 1, 0]
    assert np.nanmax(np.abs(p_on.err - np.array([16.0, NAN, NAN, 0.0]))) == 0
    assert out["QRS onset"].err[0] == 16.0 and out["QRS onset"].tp.all()
    t_off = out["T offset"]
    assert t_off.tp.tolist() == [True, True, True, False]
    assert t_off.fn[3] and t_off.fp[3] == 1
    tally = bench.Tally()
    tally.add(out)
    tally.add_intervals({"P duration": 100.0}, bench.beat_intervals(ref, FS), "syn")
    rows = {r["measure"]: r for r in bench.tally_rows(tally, "demo", "SYN")}
    assert rows["P onset"]["n"] == 2 and rows["P onset"]["mean_ms"] == pytest.approx(8.0)
    assert rows["P onset"]["sensitivity"] == pytest.approx(2 / 3)
    assert rows["P onset"]["ppv"] == pytest.approx(2 / 3)
    assert rows["T offset"]["sensitivity"] == pytest.approx(3 / 4)
    assert rows["T offset"]["ppv"] == pytest.approx(3 / 4)
    # reference P duration: 30 samples = 120 ms; the method said 100 ms
    assert rows["P duration"]["n"] == 1 and rows["P duration"]["mean_ms"] == pytest.approx(-20.0)
    assert rows["P duration"]["sensitivity"] is None and rows["P duration"]["ppv"] is None


def test_worst_names_the_records_furthest_from_the_mean_and_the_sd_of_the_others():
    tally = bench.Tally()
    errors = {"r1": 2.0, "r2": -3.0, "r3": 60.0, "r4": 1.0, "r5": -1.0, "r6": -40.0}
    reference = {name: NAN for name, _, _ in bench.INTERVALS}
    for name, e in errors.items():
        tally.add_intervals({"QRS duration": 100.0 + e}, {**reference, "QRS duration": 100.0}, name)
    tally.add_intervals({}, {**reference, "QRS duration": 90.0}, "missed")  # no value: left out
    cases, rest = tally.worst("QRS duration", 2)
    assert [c for c, _ in cases] == ["r3", "r6"] and cases[0][1] == pytest.approx(60.0)
    assert rest == pytest.approx(np.std([2.0, -3.0, 1.0, -1.0], ddof=1))
    assert tally.worst("P duration", 2) == ([], None)
    others = np.mean([2.0, -3.0, 1.0, -1.0])  # the others at their mean: r3 and r6 alone
    assert tally.sd_left_by_worst("QRS duration", 2) == pytest.approx(
        np.std([60.0, -40.0] + [others] * 4, ddof=1)
    )
    assert tally.sd_left_by_worst("QRS duration", 0) == pytest.approx(0.0)
    assert tally.sd_left_by_worst("P duration", 2) is None


def test_worst_refuses_a_negative_count(capsys):
    """``--worst -1`` would list every record but one as the furthest."""
    assert bench.get_parser().parse_args(["--worst", "0"]).worst == 0
    with pytest.raises(SystemExit):
        bench.get_parser().parse_args(["--worst", "-1"])
    assert "--worst: -1 is not a count of records (0 or more)" in capsys.readouterr().err


def test_missing_wave_outside_the_annotated_span_is_not_a_false_positive():
    ref = [_beat(300, p=None), _beat(500, p=(-60, -45, -30))]
    det = [_beat(300, p=(-60, -45, -30)), _beat(500, p=(-60, -45, -30))]
    inside = bench.score_beats(ref, det, FS, span=(0, 1000))
    # beat 300's P stretch starts before an annotated span that begins at 280
    outside = bench.score_beats(ref, det, FS, span=(280, 1000))
    assert inside["P onset"].fp.tolist() == [1, 0]
    assert outside["P onset"].fp.tolist() == [0, 0]
    off = bench.score_beats(ref, det, FS, absent_negative={"P": False})
    assert off["P onset"].fp.tolist() == [0, 0]


def test_combine_leads_cse_and_median():
    a = _beat(100, p=(-60, -45, -30))
    b = _beat(104, p=(-50, -44, -20), qrs=(-30, 0, 20))
    c = _beat(103, p=None, qrs=(-10, 0, 40))
    cse = bench.combine_leads([[a], [b], [c]], FS, "cse")
    med = bench.combine_leads([[a], [b], [c]], FS, "median")
    assert len(cse) == len(med) == 1
    assert cse[0].waves["QRS"][0] == 74.0 and cse[0].waves["QRS"][2] == 143.0  # earliest, latest
    assert med[0].waves["QRS"][0] == 80.0 and med[0].waves["QRS"][2] == 124.0
    assert cse[0].waves["P"].tolist() == [40.0, 57.5, 84.0]  # peak: median over the two leads
    with pytest.raises(ValueError, match="unknown combination"):
        bench.combine_leads([[a]], FS, "mean")


def test_combine_leads_robust_rule_leaves_out_one_leads_outlying_mark():
    """``robust`` is the kit's own global rule: the earliest onset and latest offset of the
    leads within 3 MAD (at least 12 ms) of their median; ``cse`` takes the stray lead's."""
    leads = [[_beat(100, p=(-60 + d, -45, -30 + d), qrs=(-20 + d, 0, 24 + d))] for d in range(5)]
    leads.append([_beat(101, p=(-90, -45, -28), qrs=(-21, 0, 50))])  # one lead's marks stray
    cse = bench.combine_leads(leads, FS, "cse")[0]
    robust = bench.combine_leads(leads, FS, "robust")[0]
    assert cse.waves["P"][0] == 11.0 and cse.waves["QRS"][2] == 151.0  # the stray lead's
    assert robust.waves["P"][0] == 40.0 and robust.waves["QRS"][2] == 128.0  # the others'
    assert robust.waves["QRS"][0] == 80.0  # the stray lead's onset is the others': kept
    assert robust.waves["P"][2] == 74.0


def test_combine_leads_keeps_a_beat_whose_lead_peaks_spread_wide():
    """LUDB marks each lead's own R peak: in record 13 they spread over 108 ms on one beat
    (V2 at sample 898, III at 952, at 500 Hz). Leads whose QRS overlap are one beat, however
    far apart their peaks."""
    fs = 500.0
    leads = [[_beat(r, qrs=(-30, 0, 40)), _beat(r + 500, qrs=(-30, 0, 40))] for r in (898, 926)]
    leads.append([_beat(952, qrs=(-60, 0, 30)), _beat(1452, qrs=(-60, 0, 30))])
    beats = bench.combine_leads(leads, fs, "cse")
    assert len(beats) == 2
    assert beats[0].waves["QRS"][0] == 868.0 and beats[0].waves["QRS"][2] == 982.0
    # beats whose QRS do not overlap and whose peaks lie more than 100 ms apart stay apart
    apart = [[_beat(100, qrs=(-20, 0, 20))], [_beat(160, qrs=(5, 10, 20))]]
    assert len(bench.combine_leads(apart, fs, "cse")) == 2


def test_combine_leads_joins_close_peaks_whatever_order_the_leads_come_in():
    """Leads whose peaks lie within 100 ms are one beat even where a lead's QRS misses the
    QRS of the leads sorted before it. The learned delineator gives every lead the beat's
    one R (LUDB record 93: lead I's QRS [328, 353] ends before lead II's [357, 423] starts,
    and V2's [325, 405] overlaps both); ecgpuwave's two leads of QTDB sel52 mark one beat's
    QRS 16 ms apart, their peaks 96 ms apart."""
    qrs = ((328, 353), (357, 423), (325, 405))
    leads = [[_beat(381, qrs=(a - 381, 0, b - 381))] for a, b in qrs]
    beats = bench.combine_leads(leads, 500.0, "cse")
    assert len(beats) == 1
    assert beats[0].waves["QRS"][0] == 325.0 and beats[0].waves["QRS"][2] == 423.0
    pu = [[_beat(137738, qrs=(-14, 0, 16))], [_beat(137762, qrs=(-4, 0, 30))]]
    assert len(bench.combine_leads(pu, 250.0, "cse")) == 1


def test_best_lead_takes_the_closer_lead():
    ref = [_beat(100), _beat(300)]
    lead0 = [_beat(100, qrs=(-16, 0, 24)), _beat(300, qrs=(-20, 0, 24))]
    lead1 = [_beat(100, qrs=(-22, 0, 24)), _beat(300, qrs=(-40, 0, 24))]
    per = [bench.score_beats(ref, lead, FS) for lead in (lead0, lead1)]
    best = bench.best_lead(per)["QRS onset"]
    assert best.err.tolist() == [-8.0, 0.0] and best.tp.all()


def test_qtdb_windows_cover_every_annotated_beat():
    r = np.array([1000, 1200, 1400, 30000, 30200, 100000], float)
    wins = bench.qtdb_windows(r, 225000, FS)
    covered = [k for _, _, i, j in wins for k in range(i, j)]
    assert covered == list(range(r.size))
    for start, end, i, j in wins:
        assert end - start == 30 * FS
        assert all(start + 1.5 * FS <= x <= end - 1.5 * FS for x in r[i:j])


def _check_rows(rows, database, methods):
    keys = {"method", "database", "measure", "n", "mean_ms", "sd_ms", "sensitivity", "ppv"}
    assert rows and all(set(r) == keys for r in rows)
    mine = [r for r in rows if r["database"] == database]
    assert {r["method"] for r in mine} >= set(methods)
    assert {r["measure"] for r in mine} == set(bench.MEASURES)
    for r in mine:
        if r["measure"] in bench.IEC_LIMITS_MS:
            assert r["sensitivity"] is None and r["ppv"] is None
        elif r["sensitivity"] is not None:
            assert 0 <= r["sensitivity"] <= 1 and 0 <= r["ppv"] <= 1
    return {(r["method"], r["measure"]): r for r in mine}


def test_runs_on_real_ludb_and_qtdb_records(ludb_dir, qtdb_dir, tmp_path):
    ludb, qtdb = ludb_dir, qtdb_dir
    out = tmp_path / "rows.json"
    argv = [
        *("--ludb", str(ludb), "--qtdb", str(qtdb), "--records", "1", "5", "sel100"),
        *("--methods", "project", "project-sv", "project-beatwise", "ecgpuwave"),
        *("--json", str(out), "--quiet"),
    ]
    args = bench.get_parser().parse_args(argv)
    assert bench.main(args) == 0
    rows = json.loads(out.read_text())
    lu = _check_rows(rows, "LUDB", ["project", "project-sv", "project-beatwise"])
    qt = _check_rows(rows, "QTDB", ["project", "project-sv", "project-beatwise", "ecgpuwave"])
    for table in (lu, qt):
        for m in ("project", "project-sv", "project-beatwise"):
            row = table[(m, "QRS onset")]
            assert row["n"] > 5 and abs(row["mean_ms"]) < 40 and row["sd_ms"] < 40
            assert row["sensitivity"] > 0.8 and row["ppv"] > 0.8
            assert table[(m, "QT interval")]["n"] >= 1
    # ecgpuwave on sel100 (a clean sinus record): QRS onset within a few samples
    assert abs(qt[("ecgpuwave", "QRS onset")]["mean_ms"]) < 25
    assert qt[("ecgpuwave best-lead", "QRS onset")]["sd_ms"] < 20


def test_the_cardiologists_marks_score_their_own_reference_exactly(ludb_dir, tmp_path):
    """``cardiologists`` against the reference built from the same marks: every mark matched,
    zero error, nothing extra (records 13, 83 and 106 have beats whose leads' R peaks spread over
    more than 100 ms); its lead-median rows read the gap between the two references."""
    out = tmp_path / "rows.json"
    argv = [
        *("--ludb", str(ludb_dir), "--skip-qtdb", "--records", "13", "83", "106"),
        *("--methods", "cardiologists", "--combine", "cse", "median", "robust"),
        *("--json", str(out), "--quiet"),
    ]
    assert bench.main(bench.get_parser().parse_args(argv)) == 0
    rows = _check_rows(json.loads(out.read_text()), "LUDB", ["cardiologists"])
    for measure in bench.MEASURES:
        row = rows[("cardiologists", measure)]
        assert row["mean_ms"] == 0.0 and row["sd_ms"] == 0.0, measure
        if measure not in bench.IEC_LIMITS_MS:
            assert row["sensitivity"] == 1.0 and row["ppv"] == 1.0, measure
    # the typical lead starts later and ends earlier than the earliest / latest marks
    assert rows[("cardiologists lead-median", "QRS duration")]["mean_ms"] < -10
    assert rows[("cardiologists lead-median", "QRS onset")]["mean_ms"] > 0
    assert "cardiologists" not in bench.get_parser().parse_args([]).methods
    # without one lead's outlying marks the global QRS is no wider than the CSE-style one
    robust = rows[("cardiologists robust", "QRS duration")]["mean_ms"]
    assert rows[("cardiologists lead-median", "QRS duration")]["mean_ms"] < robust <= 0
    # the robust reference is that rule on the marks, not the CSE one: in record 46 one lead's
    # QRS mark reaches past the others' on 6 of the 8 beats
    robust, cse = bench.load_ludb(ludb_dir, "46", "robust"), bench.load_ludb(ludb_dir, "46")
    beats = bench.combine_leads(robust.marks, robust.fs, "robust")
    ends = [b.waves["QRS"].tolist() for b in robust.ref]
    assert ends == [b.waves["QRS"].tolist() for b in beats if "QRS" in b.waves]
    assert ends != [b.waves["QRS"].tolist() for b in cse.ref]
    assert all(
        r[0] >= c.waves["QRS"][0] and r[2] <= c.waves["QRS"][2] for r, c in zip(ends, cse.ref)
    )


def test_neurokit_peer_runs_on_one_qtdb_window(qtdb_dir):
    qtdb = qtdb_dir
    case = bench.load_qtdb(qtdb, "sel100")[0]
    n = int(12 * case.fs)  # the first 12 s of the window keep the test short
    case.x = case.x[:, :n]
    case.ref = [b for b in case.ref if b.r < n - 1.5 * case.fs]
    tallies, _ = bench.evaluate([case], ["neurokit2-dwt"], ["cse", "median"], best=True)
    assert set(tallies) == {"neurokit2-dwt", "neurokit2-dwt lead-median", "neurokit2-dwt best-lead"}
    rows = {r["measure"]: r for r in bench.tally_rows(tallies["neurokit2-dwt best-lead"], "x", "Q")}
    assert rows["P onset"]["n"] >= 8 and abs(rows["P onset"]["mean_ms"]) < 40
    assert "QT interval" not in rows  # best-lead rows carry no record-level intervals


def _case(ref_leads, peer_rows=(0, 1)):
    beats = [b for _, lead, _ in ref_leads for b in lead]
    return bench.Case(
        name="syn",
        x=np.zeros((2, 1000)),
        fs=FS,
        leads=["I", "II"],
        ref=beats,
        neighbours=np.array(sorted({b.r for b in beats})),
        absent_negative={"P": True, "T": True},
        span=(0, 1000),
        peer_rows=list(peer_rows),
        ref_leads=ref_leads,
    )


def test_per_lead_reference_scores_each_lead_against_its_own_marks():
    # lead I marks QRS onset 20 samples before R, lead II 10 samples before
    lead0 = [_beat(300, qrs=(-20, 0, 24)), _beat(500, qrs=(-20, 0, 24))]
    lead1 = [_beat(300, qrs=(-10, 0, 24)), _beat(500, qrs=(-10, 0, 24))]
    case = _case([(0, lead0, (0, 1000)), (1, lead1, (0, 1000))])
    # a global method (onset 16 before R) is scored on both leads with the same boundaries
    glob = bench.Output(
        beats=[_beat(300, qrs=(-16, 0, 24)), _beat(500, qrs=(-16, 0, 24))], intervals={}
    )
    tally = bench.Tally()
    bench.score_per_lead(tally, case, glob)
    rows = {r["measure"]: r for r in bench.tally_rows(tally, "g", "SYN")}
    assert rows["QRS onset"]["n"] == 4  # 2 beats x 2 leads
    assert sorted(tally.errors["QRS onset"]) == [-24.0, -24.0, 16.0, 16.0]
    assert rows["QRS onset"]["mean_ms"] == pytest.approx(-4.0)
    # QRS duration per lead: method 160 ms against 176 (lead I) and 136 (lead II)
    assert rows["QRS duration"]["n"] == 2 and rows["QRS duration"]["mean_ms"] == pytest.approx(4.0)
    # a per-lead method is scored with each lead's own boundaries
    own = bench.Output(
        beats=glob.beats,
        intervals={},
        per_lead={
            0: [_beat(300, qrs=(-20, 0, 24)), _beat(500, qrs=(-20, 0, 24))],
            1: [_beat(300, qrs=(-11, 0, 24)), _beat(500, qrs=(-11, 0, 24))],
        },
    )
    tally = bench.Tally()
    bench.score_per_lead(tally, case, own)
    assert sorted(tally.errors["QRS onset"]) == [-4.0, -4.0, 0.0, 0.0]
    # a P wave on a lead whose marks have none is a false positive of that lead only
    lead1_no_p = [_beat(300, qrs=(-10, 0, 24)), _beat(500, qrs=(-10, 0, 24))]
    lead0_p = [_beat(300, p=(-60, -45, -30)), _beat(500, p=(-60, -45, -30))]
    case = _case([(0, lead0_p, (0, 1000)), (1, lead1_no_p, (0, 1000))])
    with_p = bench.Output(
        beats=[_beat(300, p=(-60, -45, -30)), _beat(500, p=(-60, -45, -30))], intervals={}
    )
    tally = bench.Tally()
    bench.score_per_lead(tally, case, with_p)
    rows = {r["measure"]: r for r in bench.tally_rows(tally, "g", "SYN")}
    assert rows["P onset"]["sensitivity"] == 1.0 and rows["P onset"]["ppv"] == pytest.approx(0.5)


def test_per_lead_mode_on_real_ludb_records(ludb_dir, tmp_path):
    ludb = ludb_dir
    case = bench.load_ludb(ludb, "1", "per-lead")
    assert len(case.ref_leads) == 12 and case.peer_rows == list(range(12))
    assert {row for row, _, _ in case.ref_leads} == set(range(12))
    with pytest.raises(ValueError, match="unknown LUDB reference"):
        bench.load_ludb(ludb, "1", "mean")
    out = tmp_path / "rows.json"
    argv = [
        *("--ludb", str(ludb), "--skip-qtdb", "--records", "1", "5", "--quiet"),
        *("--ludb-reference", "per-lead", "--methods", "project", "--json", str(out)),
    ]
    assert bench.main(bench.get_parser().parse_args(argv)) == 0
    rows = json.loads(out.read_text())
    table = _check_rows(rows, "LUDB per-lead", ["project"])
    row = table[("project", "QRS onset")]
    # 2 records x 12 leads x their annotated beats
    assert row["n"] > 100 and abs(row["mean_ms"]) < 20 and row["sensitivity"] > 0.95
    assert table[("project", "QRS duration")]["n"] == 24


def test_bootstrap_sd_interval_of_record_errors():
    errors = np.random.default_rng(2).normal(0.0, 10.0, 100)
    lo, hi = bench.bootstrap_sd([[e] for e in errors], n_boot=400)
    assert lo < np.std(errors, ddof=1) < hi and hi - lo < 6.0
    assert bench.bootstrap_sd([[e] for e in errors], n_boot=400) == (lo, hi)  # seeded
    assert all(math.isnan(v) for v in bench.bootstrap_sd([], n_boot=10))
    with pytest.raises(SystemExit):
        bench.get_parser().parse_args(["--sd-ci", "-5"])
