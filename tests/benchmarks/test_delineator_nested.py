"""The nested choice of a delineator post-processing setting (benchmarks.delineator_nested):
each fold is scored with the setting chosen on the other folds' records alone."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import delineation as bench
from benchmarks import delineator_nested as dn


def _tally(sd: float, n: int = 50, seed: int = 0) -> bench.Tally:
    t = bench.Tally()
    rng = np.random.default_rng(seed)
    for name in dn.TARGETS:
        e = rng.normal(size=n)
        t.errors[name] = list(sd * (e - e.mean()) / e.std(ddof=1))
        t.tp[name] = n
    return t


def test_objective_sums_sd_over_target():
    assert dn.objective(_tally(5.0)) == pytest.approx(5 * (2 / 15 + 2 / 10 + 1 / 25))


def test_merge_pools_outcomes():
    a, b = _tally(5.0, 20), _tally(5.0, 30, seed=1)
    b.fn["P onset"], b.fp["T offset"] = 3, 2
    m = dn.merge([a, b])
    assert len(m.errors["QRS onset"]) == 50 and m.tp["QRS onset"] == 50
    assert m.fn["P onset"] == 3 and m.fp["T offset"] == 2


def test_each_fold_is_scored_by_the_setting_the_other_folds_chose():
    folds = [["1", "2"], ["3", "4"], ["5", "6"]]
    # setting 0.5 is better on records 1-4, setting 0 on 5-6 (by far): a fold's own records
    # never decide its setting
    per = {
        0.0: {r: _tally(10.0 if r in "1234" else 1.0, seed=int(r)) for r in "123456"},
        0.5: {r: _tally(6.0 if r in "1234" else 30.0, seed=int(r)) for r in "123456"},
    }
    held_out, chosen = dn.nested_records(per, folds)
    pooled = dn.merge(held_out)
    # folds 1 and 2 see records 5-6 (setting 0 wins there overall); fold 3 sees only 1-4
    assert chosen == [0.0, 0.0, 0.5]
    expected = dn.merge([per[0.0]["1"], per[0.0]["2"], per[0.0]["3"], per[0.0]["4"]])
    expected = dn.merge([expected, per[0.5]["5"], per[0.5]["6"]])
    assert pooled.errors == expected.errors


def test_fewer_than_two_folds_are_refused(tmp_path, capsys):
    (tmp_path / "folds.json").write_text('{"fold0.safetensors": ["1"]}')
    ludb = tmp_path / "ludb"
    ludb.mkdir()
    (ludb / "RECORDS").write_text("1\n")
    assert dn.main(["--ludb", str(ludb), "--cnn-folds", str(tmp_path)]) == 2
    assert "fewer than two folds" in capsys.readouterr().err


def test_sd_intervals_resample_records_and_cover_the_sd():
    spread = np.random.default_rng(5).uniform(3.0, 7.0, 40)  # records differ in their SD
    tallies = [_tally(sd, n=20, seed=s) for s, sd in enumerate(spread)]
    pooled = float(np.std(np.concatenate([t.errors["QRS onset"] for t in tallies]), ddof=1))
    ci = dn.sd_intervals(tallies, n_boot=300, seed=1)
    assert set(ci) == set(dn.TARGETS)
    lo, hi = ci["QRS onset"]
    assert lo < pooled < hi and hi - lo < 2.0
    assert dn.sd_intervals(tallies, n_boot=300, seed=1) == ci  # seeded
    # one record far off widens the interval: records, not errors, are drawn
    wild = [*tallies[:39], _tally(60.0, n=20, seed=99)]
    lo_w, hi_w = dn.sd_intervals(wild, n_boot=300, seed=1)["QRS onset"]
    assert hi_w - lo_w > 2 * (hi - lo)
