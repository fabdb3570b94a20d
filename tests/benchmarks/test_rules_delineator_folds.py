"""benchmarks/rules.py --delineator-folds: every LUDB record measured by the learned
delineator's fold model that never saw it, the other records by the kit's weights."""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch

from benchmarks import rules as bench
from team_code.classifiers.measurements import record_measurements
from team_code.data.records import RecordSet
from team_code.dsp.features import FeatureConfig
from team_code.nn import delineator


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k]))
        for k in a
    )


def test_ludb_names_map_to_their_records():
    assert bench.ludb_record("LU0008") == "8"
    assert bench.ludb_record("LU0120") == "120"
    assert bench.ludb_record("A0008") is None and bench.ludb_record("LUX") is None


def test_the_fold_model_that_never_saw_a_ludb_record_measures_it(
    shared_data, delineator_weights, tmp_path
):
    torch.manual_seed(0)
    fold = tmp_path / "folds"
    delineator.save(
        delineator.SegmentNet(delineator.NetConfig(widths=(4, 4, 8, 8))), fold / "f0.st"
    )
    (fold / "folds.json").write_text(json.dumps({"f0.st": ["8", "9"]}))
    held, digest = bench.delineator_fold_models(fold)
    assert held == {"8": fold / "f0.st", "9": fold / "f0.st"}
    records = RecordSet(
        [shared_data / "ludb_challenge" / "LU0008.hea", shared_data / "challenge" / "A0002.hea"]
    )
    values = bench.measure_all(records, None, {"delineator": "cnn"}, fold)
    config = FeatureConfig(delineator="cnn")
    fold_model = functools.partial(
        delineator.delineate_record, model=delineator.load(fold / "f0.st")
    )
    lu = record_measurements(records[0], config, learned=fold_model)["values"]
    kit = record_measurements(records[0], config)["values"]
    assert _same(values["LU0008"], lu) and not _same(lu, kit)  # the fold model, not the kit's
    assert _same(values["A0002"], record_measurements(records[1], config)["values"])
    # the cache key follows the fold models' weights
    delineator.save(
        delineator.SegmentNet(delineator.NetConfig(widths=(4, 4, 8, 8))), fold / "f0.st"
    )
    assert bench.delineator_fold_models(fold)[1] != digest
    with pytest.raises(SystemExit, match=r"needs --set rules\.delineator=cnn"):
        bench.measure_all(records, None, {}, fold)
    with pytest.raises(SystemExit, match=r"folds\.json not found"):
        bench.delineator_fold_models(tmp_path)


def test_ludb_records_measured_by_the_kits_own_weights_are_called_in_sample(
    shared_data, delineator_weights, capsys
):
    """The kit's delineator weights were trained on the shared LUDB records: measuring those
    with them (no --delineator-folds) says so on stderr."""
    records = RecordSet([shared_data / "ludb_challenge" / "LU0008.hea"])
    bench.measure_all(records, None, {"delineator": "cnn"})
    assert "in-sample for the delineator" in capsys.readouterr().err
    bench.measure_all(
        RecordSet([shared_data / "challenge" / "A0002.hea"]), None, {"delineator": "cnn"}
    )
    assert "in-sample" not in capsys.readouterr().err
