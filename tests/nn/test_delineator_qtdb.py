"""QTDB's cardiologist marks as training data of the learned delineator (``qtdb_labels``,
``load_qtdb``, ``folds --qtdb``) and the benchmark's out-of-fold QTDB rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from team_code.nn import delineator as d

IGN, NONE, P, QRS, T = d.IGNORE, d.NONE, d.P, d.QRS, d.T


def _beat(r: int, p=True, t_onset=False, u=False):
    """``.q1c``-style marks of one beat with its QRS peak at ``r`` (samples at 250 Hz)."""
    marks = []
    if p:
        marks += [(r - 50, "("), (r - 40, "p"), (r - 30, ")")]
    marks += [(r - 10, "("), (r, "N"), (r + 12, ")")]
    if t_onset:
        marks += [(r + 40, "(")]
    marks += [(r + 70, "t"), (r + 95, ")")]
    if u:
        marks += [(r + 110, "("), (r + 120, "u"), (r + 130, ")")]
    return marks


def _labels(beats, n=3000):
    marks = sorted(m for b in beats for m in b)
    return d.qtdb_labels([s for s, _ in marks], [sym for _, sym in marks], n)


def test_waves_are_labelled_and_a_t_wave_without_onset_from_its_peak():
    lab = _labels([_beat(300), _beat(500, u=True), _beat(700, t_onset=True)])
    assert (lab[:250] == IGN).all() and (lab[796:] == IGN).all()  # outside the run
    assert (lab[250:271] == P).all() and (lab[290:313] == QRS).all()
    assert (lab[313:370] == IGN).all()  # QRS offset to the T peak: T onset unknown
    assert (lab[370:396] == T).all() and (lab[396:400] == NONE).all()
    assert (lab[610:630] == NONE).all()  # a U wave is none
    assert (lab[713:740] == NONE).all() and (lab[740:796] == T).all()  # T with its onset


def test_a_gap_of_unmarked_beats_splits_the_runs():
    lab = _labels([_beat(300), _beat(500), _beat(700), _beat(1700), _beat(1900)])
    assert (lab[796:1650] == IGN).all()  # beats the cardiologist did not mark
    assert (lab[1650:1671] == P).all() and lab[1700] == QRS


def test_unmarked_beats_between_marked_ones_split_the_runs():
    # every other beat marked (as the cardiologist did in sel213's bigeminy): the marked RR
    # is the median, so only the record's own beat list can show the beats between them
    marked = [300, 600, 900, 1200]
    beats = [300, 450, 600, 750, 900, 1050, 1200]
    lab = _labels([_beat(r) for r in marked])
    assert (lab[440:460] == NONE).all()  # without the beat list: a QRS labelled none
    marks = sorted(m for r in marked for m in _beat(r))
    lab = d.qtdb_labels([s for s, _ in marks], [sym for _, sym in marks], 3000, beats=beats)
    for r in (450, 750, 1050):
        assert (lab[r - 50 : r + 50] == IGN).all()
    for r in marked:  # each marked beat keeps its own waves
        assert (lab[r - 50 : r - 29] == P).all() and (lab[r - 10 : r + 13] == QRS).all()
    # beats on (or near) the marked QRS peaks split nothing
    same = d.qtdb_labels(
        [s for s, _ in marks], [sym for _, sym in marks], 3000, beats=[s + 5 for s in marked]
    )
    np.testing.assert_array_equal(same, _labels([_beat(r) for r in marked]))


def test_a_record_without_p_marks_ignores_where_p_would_be():
    lab = _labels([_beat(300, p=False), _beat(500, p=False), _beat(700, p=False)])
    assert (lab[396:490] == IGN).all()  # T offset to the next QRS onset: P unknown
    assert (lab[490:513] == QRS).all() and not (lab == P).any()


def test_fewer_than_two_beats_label_nothing():
    assert (_labels([_beat(300)]) == IGN).all()


def test_load_qtdb_rows_carry_the_cardiologists_marks(qtdb_dir):
    import wfdb

    folder = qtdb_dir
    x, y = d.load_qtdb(folder, ["sel100"])
    assert x.shape == y.shape and x.shape[1] == d.QTDB_WINDOW and x.shape[0] % 2 == 0
    assert x.dtype == np.float32 and np.isfinite(x).all()
    assert (y[0::2] == y[1::2]).all()  # one mark set for both leads
    ann = wfdb.rdann(str(folder / "sel100"), "q1c")
    peaks = [s for s, sym in zip(ann.sample, ann.symbol) if sym == "N"]
    lab = d.qtdb_labels(ann.sample, ann.symbol, 225000)
    assert all(lab[s] == QRS for s in peaks)
    # every labelled sample of the record is in some row (windows cover the runs)
    assert (y != IGN).sum() >= 2 * (lab != IGN).sum()
    two, _ = d.load_qtdb(folder, ["sel100"], input_channels=2)
    assert two.shape == (x.shape[0], 2, x.shape[1])
    with pytest.raises(FileNotFoundError, match="QTDB record nosuch: no cardiologist marks"):
        d.load_qtdb(folder, ["nosuch"])


def test_unmarked_beats_of_a_real_record_are_not_labelled(qtdb_dir):
    import wfdb

    folder = qtdb_dir
    # sel213: the cardiologist marked every other beat of a bigeminy over most of the record
    atr = wfdb.rdann(str(folder / "sel213"), "atr")
    q1c = wfdb.rdann(str(folder / "sel213"), "q1c")
    marked = np.array([s for s, sym in zip(q1c.sample, q1c.symbol) if sym not in "()ptu"])
    beats = [s for s, sym in zip(atr.sample, atr.symbol) if sym in "NVFA"]
    hidden = [s for s in beats if np.abs(marked - s).min() > 40]
    x, lab = d.read_qtdb(folder, "sel213")
    assert x.shape == (2, lab.size) and len(hidden) > 100
    inside = [s for s in hidden if marked[0] < s < marked[-1]]
    assert all(lab[s - 10 : s + 10].tolist() == [IGN] * 20 for s in inside)
    assert all(lab[s] == QRS for s in marked)


def test_folds_hold_out_qtdb_records_as_ludb_ones(qtdb_dir, ludb_dir, tmp_path, one_thread):
    qtdb, ludb = qtdb_dir, ludb_dir
    qdir = tmp_path / "qtdb"
    qdir.mkdir()
    for rec in ("sel100", "sel102", "sel103", "sel104"):
        for ext in ("hea", "dat", "q1c"):
            (qdir / f"{rec}.{ext}").symlink_to(qtdb / f"{rec}.{ext}")
    out = tmp_path / "folds"
    args = ["folds", "--ludb", str(ludb), "--qtdb", str(qdir), "--out", str(out)]
    assert d.main([*args, "--records", "1", "5", "--k", "2", "--epochs", "1"]) == 0
    index = json.loads((out / "folds.json").read_text())
    held = [set(v) for v in index.values()]
    assert set.union(*held) == {"1", "5", "sel100", "sel102", "sel103", "sel104"}
    assert not held[0] & held[1]
    from safetensors import safe_open

    for name, names in index.items():
        with safe_open(str(out / name), "pt") as f:
            facts = json.loads(f.metadata()["facts"])
        assert facts["qtdb_records"] and not set(facts["qtdb_records"]) & set(names)
        assert not set(facts["records"]) & set(names)


def test_benchmark_scores_qtdb_windows_with_the_fold_that_never_saw_them(tmp_path, monkeypatch):
    from benchmarks import delineation as bench

    folder = tmp_path / "qtdb"
    folder.mkdir()
    (folder / "RECORDS").write_text("sel100\nsel102\n")
    monkeypatch.setitem(bench.CNN, "folds", tmp_path)
    assert not bench._cnn_folds_hold(folder)  # no fold models built
    (tmp_path / "folds.json").write_text('{"fold0.safetensors": ["1", "2"]}')
    assert not bench._cnn_folds_hold(folder)  # LUDB-only folds: no QTDB rows
    (tmp_path / "folds.json").write_text('{"fold0.safetensors": ["1", "sel102"]}')
    assert bench._cnn_folds_hold(folder)
    assert bench._cnn_fold_weights("sel102") == tmp_path / "fold0.safetensors"
    seen = []
    monkeypatch.setattr(bench, "_cnn_fold_weights", lambda r: seen.append(r))
    case = bench.Case(
        name="sel102@12s",
        x=np.zeros((2, 10)),
        fs=250.0,
        leads=["II", "V5"],
        ref=[],
        neighbours=np.array([]),
        absent_negative={},
        span=None,
        peer_rows=[0, 1],
    )
    assert bench.run_cnn(case, out_of_fold=True) is None and seen == ["sel102"]
