"""benchmarks/scale.py: the figures of a tiny run, and the linear projection from two runs."""

from __future__ import annotations

import json

import pytest

from benchmarks import scale


def test_a_tiny_run_writes_the_figures(tmp_path):
    out = tmp_path / "scale.json"
    assert (
        scale.main(
            scale.get_parser().parse_args(
                [
                    "--records",
                    "8",
                    "--folds",
                    "2",
                    "--seconds",
                    "3",
                    "--work",
                    str(tmp_path / "w"),
                    "--json",
                    str(out),
                ]
            )
        )
        == 0
    )
    figures = json.loads(out.read_text())
    assert figures["records"] == 8 and figures["folds"] == 2
    for key in ("cache_bytes", "model_bytes", "peak_rss_bytes", "work_bytes", "data_bytes"):
        assert figures[key] > 0, key
    kinds = figures["cache_kinds"]
    assert sorted(k.rsplit("-", 1)[0] for k in kinds) == [
        "cwt_googlenet-image-2",
        "parallel_cnn-1",
        "rules-measurements-1",
    ]
    assert all(k["entries"] == 8 for k in kinds.values())  # one entry per record, not per fold
    parallel = next(v for k, v in kinds.items() if k.startswith("parallel_cnn"))
    assert parallel["first_record_bytes"] == 12 * 10000 * 2  # the full-size input's row
    # one record's entries: the first record's; measurement entries vary a little in size
    assert 0.9 <= figures["cache_ratio"] <= 1.2
    seconds, cpu = figures["seconds"], figures["cpu_seconds"]
    for stage in ("generate records", "rules: fit (all folds + refit)", "hybrid: fusion", "save"):
        assert seconds[stage] > 0 and cpu[stage] > 0, stage
    assert figures["calls"]["rules: fit (all folds + refit)"] == 3  # 2 folds and the refit
    assert seconds["training (total)"] >= seconds["parallel_cnn: fit (all folds + refit)"]


def _run(n, cache, peak, fit_s):
    return {
        "records": n,
        "cache_bytes": cache,
        "cache_kinds": {
            "cwt_googlenet-image-2-x": {"entries": n, "bytes": 0, "first_record_bytes": 2176}
        },
        "model_bytes": 1000,
        "work_bytes": 0,
        "peak_rss_bytes": peak,
        "seconds": {"fit": fit_s},
        "cpu_seconds": {"fit": fit_s / 2},
    }


def test_projection_is_the_line_through_two_runs():
    rows = scale.project(_run(2000, 4e8, 1.2e9, 50.0), _run(1000, 2e8, 1.0e9, 30.0))
    cache = rows["cache bytes"]
    assert cache["per_record"] == pytest.approx(2e5)
    assert cache["43101"] == pytest.approx(2e5 * 43101)
    assert rows["peak RSS bytes"]["per_record"] == pytest.approx(2e5)
    assert rows["peak RSS bytes"]["88000"] == pytest.approx(0.8e9 + 2e5 * 88000)
    assert rows["wall s: fit"]["43101"] == pytest.approx(10.0 + 0.02 * 43101)
    assert rows["CPU s: fit"]["per_record"] == pytest.approx(0.01)
    assert rows["model bytes"]["per_record"] == 0
    # the cwt entries re-sized to 224 px
    extra = scale.CWT_ENTRY_AT_224 - 2176
    assert rows["cache bytes at 224 px"]["per_record"] == pytest.approx(2e5 + extra)
    with pytest.raises(ValueError, match="different record counts"):
        scale.project(_run(1000, 1, 1, 1.0), _run(1000, 1, 1, 1.0))
