"""Scoring with the Challenge 2021 table and file reading (``evaluate.py --task 2021``).

The expected values below are computed by hand from the definitions (the 2021 weights quoted
from the official table): they do not come from running any scorer.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation import evaluate, metrics, tables

REPO = Path(__file__).resolve().parents[2]
CLBBB, LBBB = "733534002", "164909002"  # one 2021 class, written "733534002|164909002"
NSR, BBB = metrics.NORMAL_CLASS, "6374002"

# Labels: R1 LBBB (2021 header dialect), R2 NSR, R3 NSR and BBB on two Dx lines, R4 unscored.
HEADERS = {
    "R1": f"R1 12 500 5000\n# Age: 60\n# Dx: {LBBB}\n",
    "R2": f"R2 12 500 5000\n#Dx: {NSR}\n",
    "R3": f"R3 12 500 5000\n#Dx: {NSR}\n#Dx: {BBB}\n",
    "R4": "R4 12 500 5000\n#Dx: 55930002\n",
}
# Outputs, 2021 style: an a|b column, a number equal to 1 as a positive, equivalent columns
# averaged, a NaN score, and R4 with only three lines (malformed: all-negative).
OUTPUTS = {
    "R1": f"#R1\n{CLBBB}|{LBBB},{NSR}\n1.0,0\n0.8,0.3\n",
    "R2": f"#R2\n{NSR},{CLBBB},{LBBB}\n1,0,T\n0.9,0.2,0.4\n",
    "R3": f"#R3\n{NSR},{BBB}\n t,0\n0.6,nan\n",
    "R4": f"#R4\n{NSR}\n0\n",
}


def _write(tmp_path: Path) -> tuple[Path, Path]:
    labels, outputs = tmp_path / "labels", tmp_path / "outputs"
    labels.mkdir()
    outputs.mkdir()
    for name, text in HEADERS.items():
        (labels / f"{name}.hea").write_text(text)
        (outputs / f"{name}.csv").write_text(OUTPUTS[name])
    return labels, outputs


def _hand_computed() -> dict[str, float]:
    """The 2021 scores of the folder above, worked out from the definitions."""
    w = 0.275  # the 2021 weight of NSR vs CLBBB|LBBB and of NSR vs BBB (both directions)
    # binary: R1 {CLBBB}, R2 {NSR, CLBBB}, R3 {NSR}, R4 {}; labels R1 {CLBBB}, R2 {NSR},
    # R3 {NSR, BBB}, R4 {}. Each record adds 1/|labels or outputs| per (label, output) pair.
    observed = 1 + (1 + w) / 2 + (1 + w) / 2
    correct = 1 + 1 + (1 + w + w + 1) / 2
    inactive = w / 2 + 1 + (1 + w) / 2 + 0
    return {
        "AUROC": (1 + 1 + 0.5) / 3,  # CLBBB and NSR ranked perfectly; BBB all tied at 0
        "AUPRC": (1 + 1 + 0.25) / 3,  # tied BBB: one step of recall at precision 1/4
        "Accuracy": 2 / 4,  # R1 and R4 right
        "F-measure": (2 / 3 + 1 + 0) / 3,  # CLBBB 2TP/(2TP+FP+FN) = 2/3, NSR 1, BBB 0
        "Challenge metric": (observed - inactive) / (correct - inactive),  # = 1/3
    }


def test_2021_scores_equal_the_hand_computed_values(tmp_path, capsys):
    labels, outputs = _write(tmp_path)
    scores_csv, classes_csv = tmp_path / "scores.csv", tmp_path / "class_scores.csv"
    rc = evaluate.main(
        [str(labels), str(outputs), str(scores_csv), str(classes_csv), "--task", "2021"]
    )
    assert rc == 0
    assert "R4.csv" in capsys.readouterr().err  # the malformed file is named
    head, values = scores_csv.read_text().splitlines()
    got = dict(zip(head.split(","), map(float, values.split(","))))
    expected = _hand_computed()
    assert list(got) == list(metrics.SCORE_COLUMNS["2021"])  # no F-beta, no G-beta
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert expected["Challenge metric"] == pytest.approx(1 / 3)

    rows = [line.split(",") for line in classes_csv.read_text().splitlines()]
    names = rows[0][1:]
    assert len(names) == 26 and f"{CLBBB}|{LBBB}" in names
    per_class = {row[0]: dict(zip(names, map(float, row[1:]))) for row in rows[1:]}
    assert per_class["F-measure"][f"{CLBBB}|{LBBB}"] == pytest.approx(2 / 3)
    assert per_class["AUPRC"][BBB] == pytest.approx(0.25)
    assert math.isnan(per_class["AUROC"]["164889003"])  # AF: no positives


def test_a_2021_table_given_by_path_is_scored_as_2021(tmp_path):
    labels, outputs = _write(tmp_path)
    weights = tables.task_weights_path("2021")
    result = metrics.evaluate_folders(labels, outputs, task="2021")
    scores_csv = tmp_path / "scores.csv"
    assert (
        evaluate.main([str(labels), str(outputs), str(scores_csv), "--weights", str(weights)]) == 0
    )
    values = [float(x) for x in scores_csv.read_text().splitlines()[1].split(",")]
    assert values == [float(v) for v in result.overall().values()]
    assert values[-1] == pytest.approx(1 / 3)


def test_the_2020_reading_of_the_same_files_differs_where_the_years_differ(tmp_path):
    labels, outputs = _write(tmp_path)
    weights = tables.task_weights_path("2021")
    r2020 = metrics.evaluate_folders(labels, outputs, weights, task="2020")
    r2021 = metrics.evaluate_folders(labels, outputs, weights, task="2021")
    j = r2021.classes.index(CLBBB)
    # 2020 reads the first Dx line only (no BBB for R3) and "1.0" or "a|b" as nothing (R1).
    assert r2021.n_positives[r2021.classes.index(BBB)] == 1
    assert r2020.n_positives[r2020.classes.index(BBB)] == 0
    assert r2021.f_measure_classes[j] == pytest.approx(2 / 3)
    assert r2020.f_measure_classes[j] == pytest.approx(0.0)  # R1 missed, R2 a false positive
    assert len(r2020.overall()) == 7 and len(r2021.overall()) == 5


def test_strict_refuses_the_malformed_2021_output(tmp_path, capsys):
    labels, outputs = _write(tmp_path)
    assert evaluate.main([str(labels), str(outputs), "--task", "2021", "--strict"]) == 1
    assert "R4.csv" in capsys.readouterr().err


def test_task_2021_runs_as_a_script_from_another_folder(tmp_path):
    labels, outputs = _write(tmp_path)
    (outputs / "R4.csv").write_text(f"#R4\n{NSR}\n0\n0.1\n")  # well formed now
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "evaluation" / "evaluate.py"),
            *(str(labels), str(outputs), "scores.csv"),
            *("--task", "2021", "--quiet"),
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    head, values = (elsewhere / "scores.csv").read_text().splitlines()
    assert head == "AUROC,AUPRC,Accuracy,F-measure,Challenge metric"
    assert float(values.split(",")[2]) == 0.5  # R1 and R4 right, R2 and R3 wrong


# --------------------------------------------------------------------------------------------
# The 2021 readers, piece by piece


def test_2021_header_labels_come_from_every_dx_line():
    text = HEADERS["R3"]
    assert metrics.parse_header_labels(text) == [NSR]
    assert metrics.parse_header_labels(text, all_lines=True) == [NSR, BBB]
    assert metrics.parse_header_labels("R 1 500\n#Age: 3\n", all_lines=True) is None


def test_2021_output_lines_are_read_by_position():
    codes, binary, scores = metrics.parse_output_text_2021("#A\nx,y,z\n1.0, 1e0 ,2\n1,inf,abc\n")
    assert codes == ["x", "y", "z"]
    assert binary == [True, True, False]  # numbers equal to 1 are positive, 2 is not
    assert scores == [1.0, 0.0, 0.0]  # infinities and non-numbers read as 0
    # The first line is the record line whatever it holds: a file without it shifts.
    codes, binary, scores = metrics.parse_output_text_2021("x,y\n1,0\n0.5,0.5\n0.1,0.2\n")
    assert codes == ["1", "0"] and binary == [False, False] and scores == [0.1, 0.2]
    with pytest.raises(metrics.MalformedOutputError, match="expected 4 lines"):
        metrics.parse_output_text_2021("#A\nx,y\n1,0\n")


def test_2021_columns_map_onto_every_class_they_share_a_code_with():
    table = tables.load_task_table("2021")
    c, n, b = (table.classes.index(x) for x in (CLBBB, NSR, BBB))
    row = ([f"{LBBB}|{CLBBB}", f"{NSR}|{BBB}", "55930002", LBBB], [True, False, True, False])
    row += ([0.5, 0.25, 0.9, 0.1],)
    index, binary, scores = metrics.resolve_output_row(row, table, "2021")
    assert index == [c, n, b, c]
    assert binary == [True, False, False, False] and scores == [0.5, 0.25, 0.25, 0.1]
    binary_m, scores_m = metrics.output_matrices_from_rows([row], table, "2021")
    assert binary_m[0, c] and not binary_m[0, n] and not binary_m[0, b]
    assert scores_m[0, c] == pytest.approx(0.3) and scores_m[0, b] == 0.25
    # 2020 matches whole codes only: the a|b columns count for nothing.
    index_2020, _, _ = metrics.resolve_output_row(row, table, "2020")
    assert index_2020 == [c]


def test_a_ragged_2021_row_is_malformed_only_where_a_scored_column_lacks_a_value():
    table = tables.load_task_table("2021")
    harmless = ([NSR, "55930002"], [True], [0.5])  # the unscored column has no label: fine
    assert metrics.resolve_output_row(harmless, table, "2021")[0] == [table.classes.index(NSR)]
    harmful = (["55930002", NSR], [True, True], [0.5])
    with pytest.raises(metrics.MalformedOutputError, match=f"{NSR} .column 2. has no score"):
        metrics.resolve_output_row(harmful, table, "2021")


def test_2021_arrays_read_infinite_scores_as_zero():
    labels = np.array([[True, False], [False, True]])
    binary = labels.copy()
    scores = np.array([[np.inf, 0.5], [0.2, 0.7]])
    classes, weights = ["a", NSR], np.eye(2)
    r2020 = metrics.evaluate_arrays(labels, binary, scores, classes, weights, task="2020")
    r2021 = metrics.evaluate_arrays(labels, binary, scores, classes, weights, task="2021")
    assert r2020.auroc_classes[0] == 1.0  # inf ranks first
    assert r2021.auroc_classes[0] == 0.0  # 0 ranks below the negative's 0.2
