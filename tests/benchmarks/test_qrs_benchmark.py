"""benchmarks/qrs.py on the QT Database: which records it reads and one real record scored."""

from __future__ import annotations

from benchmarks import qrs as bench


def test_qtdb_records_are_those_with_beat_labels(qtdb_dir):
    folder = qtdb_dir
    records = bench.default_records("qtdb", folder)
    assert len(records) == 78
    assert all((folder / f"{r}.atr").exists() for r in records)
    assert "sel30" not in records  # a sudden-death record: no .atr
    assert bench.default_records("mitdb", folder) == bench.DEFAULT_RECORDS


def test_qtdb_record_scored_on_both_leads_and_each_alone(qtdb_dir, capsys):
    folder = qtdb_dir
    x, fs, leads, ref = bench.load_mitdb(folder, "sel100")
    assert fs == 250 and x.shape[0] == 2 and leads == ["MLII", "V5"] and ref.size == 1134
    for name in ("christov2004", "christov2004-mlii", "christov2004-lead1"):
        tp, fp, fn = bench.score(ref, bench.DETECTORS[name](x, fs, leads), fs)
        assert tp >= 1130 and fp <= 3 and fn <= 4, name
    argv = "--database qtdb --records sel100 --detectors christov2004-mlii --repeats 1"
    args = bench.get_parser().parse_args(argv.split())
    assert bench.main(args) == 0
    assert "qtdb: pooled over 1 records sel100" in capsys.readouterr().out
