"""benchmarks/loader.py: the input side's samples/s, on a few synthetic records."""

from __future__ import annotations

import json

from benchmarks import loader
from team_code.data.synth import generate_dataset


def test_the_loader_benchmark_writes_a_row_per_engine(tmp_path):
    data = tmp_path / "data"
    generate_dataset(data, 4, seed=1, duration_s=12)
    out = tmp_path / "loader.json"
    args = ["--items", "64", "--repeats", "2", "--cache", str(tmp_path / "c"), "--json", str(out)]
    assert loader.main(loader.get_parser().parse_args([str(data), *args])) == 0
    report = json.loads(out.read_text())
    rows = {row["engine"]: row for row in report["rows"]}
    assert set(rows) == set(loader.ENGINES)
    # the default (paper) sizes, as cached: float16
    assert rows["parallel_cnn"]["input_shape"] == [12, 10000]
    assert rows["cwt_googlenet"]["input_shape"] == [224, 224]
    for row in rows.values():
        assert row["dtype"] == "float16" and row["records"] == 4 and len(row["runs"]) == 2
        assert row["samples_per_s"] > 0 and row["batch_size"] == 32
    assert len(report["loadavg"]) == 3
    # the inputs were packed: one array per engine's cache folder
    assert len(list((tmp_path / "c").rglob("packed-*.pack"))) == 2
