"""benchmarks.long_records measures what it says: windows per record and peak memory."""

from __future__ import annotations

from benchmarks import long_records


def test_one_count_reports_its_windows_and_memory():
    row = long_records.measure(3, seconds=45.0, engine="parallel_cnn")
    assert row["records"] == 3
    assert row["windows_per_record"] == 3  # 20-s windows: 0-20, 20-40, 25-45
    assert row["rss_before_mb"] > 0 and row["rss_after_mb"] > 0


def test_the_table_has_a_row_per_count():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert long_records.main(["--counts", "1,2", "--seconds", "25"]) == 0
    rows = [line.split() for line in out.getvalue().splitlines()[2:]]
    assert [r[:2] for r in rows] == [["1", "2"], ["2", "2"]]  # records, windows each
    assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows)  # peak MB measured
