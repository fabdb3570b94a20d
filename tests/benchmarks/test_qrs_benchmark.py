"""benchmarks/qrs.py on the QT Database: which records it reads and one real record scored."""

from __future__ import annotations

import os

import pytest

from benchmarks import qrs as bench


def _qtdb(shared_data):
    """The QTDB folder, or skip (fail under ECG_KIT_REQUIRE_DATA=1, as tests/conftest.py does)."""
    folder = shared_data / "qtdb"
    if not folder.is_dir():
        if os.environ.get("ECG_KIT_REQUIRE_DATA") == "1":
            pytest.fail(f"real data not found at {folder}; ECG_KIT_REQUIRE_DATA=1 forbids skipping")
        pytest.skip(f"real data not found at {folder}")
    return folder


def test_qtdb_records_are_those_with_beat_labels(shared_data):
    folder = _qtdb(shared_data)
    records = bench.default_records("qtdb", folder)
    assert len(records) == 78
    assert all((folder / f"{r}.atr").exists() for r in records)
    assert "sel30" not in records  # a sudden-death record: no .atr
    assert bench.default_records("mitdb", folder) == bench.DEFAULT_RECORDS


def test_qtdb_record_scored_on_both_leads_and_each_alone(shared_data, capsys):
    folder = _qtdb(shared_data)
    x, fs, leads, ref = bench.load_mitdb(folder, "sel100")
    assert fs == 250 and x.shape[0] == 2 and leads == ["MLII", "V5"] and ref.size == 1134
    for name in ("christov2004", "christov2004-mlii", "christov2004-lead1"):
        tp, fp, fn = bench.score(ref, bench.DETECTORS[name](x, fs, leads), fs)
        assert tp >= 1130 and fp <= 3 and fn <= 4, name
    argv = "--database qtdb --records sel100 --detectors christov2004-mlii --repeats 1"
    args = bench.get_parser().parse_args(argv.split())
    assert bench.main(args) == 0
    assert "qtdb: pooled over 1 records sel100" in capsys.readouterr().out
