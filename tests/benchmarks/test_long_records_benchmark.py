"""benchmarks.long_records measures what it says: windows per record and peak memory."""

from __future__ import annotations

from benchmarks import long_records


def test_one_count_reports_its_windows_and_memory():
    row = long_records.measure(3, seconds=45.0, engine="parallel_cnn")
    assert row["records"] == 3
    assert row["windows_per_record"] == 3  # 20-s windows: 0-20, 20-40, 25-45
    assert 0 < row["rss_before_mb"] <= row["rss_after_mb"]
