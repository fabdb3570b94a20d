"""The shipped scoring tables and their loader."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import metrics, tables

# The three equivalent pairs of Challenge 2020, representative (listed first in the header) first.
EQUIVALENT_2020 = (
    ("713427006", "59118001"),
    ("284470004", "63593006"),
    ("427172004", "17338001"),
)


def test_weights_csv_is_the_official_table(shared_data):
    ours = (metrics.default_weights_path()).read_bytes()
    official = (shared_data / "scoring" / "2020" / "weights.csv").read_bytes()
    assert ours == official


def test_load_weights_merges_the_three_equivalent_pairs():
    classes, weights = metrics.load_weights()
    assert len(classes) == 24
    assert weights.shape == (24, 24)
    assert np.allclose(np.diag(weights), 1.0)
    assert np.allclose(weights, weights.T)
    off_diagonal = weights[~np.eye(24, dtype=bool)]
    assert np.all(off_diagonal < 1.0)  # no equivalent pair is left
    table = metrics.load_scoring_table()
    assert table.equivalents == EQUIVALENT_2020
    for rep, other in EQUIVALENT_2020:
        assert rep in classes and other not in classes
        assert table.code_to_index[other] == table.code_to_index[rep] == classes.index(rep)
    assert metrics.NORMAL_CLASS in classes
    # first row of the official table: IAVB vs AF weighs 0.3, IAVB vs NSR 0.45
    assert classes[0] == "270492004"
    assert weights[0, classes.index("164889003")] == pytest.approx(0.3)
    assert weights[0, classes.index("426783006")] == pytest.approx(0.45)


def test_load_weights_from_another_path(tmp_path):
    text = ",a,b,c,n\na,1,1,0.2,0.5\nb,1,1,0.2,0.5\nc,0.2,0.2,1,0.4\nn,0.5,0.5,0.4,1\n"
    path = tmp_path / "w.csv"
    path.write_text(text)
    table = metrics.load_scoring_table(path)
    assert table.classes == ("a", "c", "n")
    assert table.code_to_index == {"a": 0, "b": 0, "c": 1, "n": 2}
    assert np.array_equal(table.weights, [[1, 0.2, 0.5], [0.2, 1, 0.4], [0.5, 0.4, 1]])


def test_equivalent_classes_with_different_weights_are_rejected(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text(",a,b,n\na,1,1,0.5\nb,1,1,0.3\nn,0.5,0.3,1\n")
    with pytest.raises(ValueError, match="different weights"):
        metrics.load_scoring_table(path)


def test_ragged_table_is_rejected(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text(",a,n\na,1,0.5\nn,0.5\n")
    with pytest.raises(ValueError, match="different lengths"):
        metrics.load_scoring_table(path)


def test_2021_table_with_pipe_headers(shared_data):
    table = metrics.load_scoring_table(shared_data / "scoring" / "2021" / "weights.csv")
    assert len(table.classes) == 26
    assert table.code_to_index["59118001"] == table.code_to_index["713427006"]
    assert table.code_to_index["164909002"] == table.code_to_index["733534002"]


def test_abbreviations_of_scored_classes():
    abbr = metrics.load_abbreviations()
    assert abbr["426783006"] == "NSR"
    assert abbr["164889003"] == "AF"
    classes, _ = metrics.load_weights()
    assert all(c in abbr for c in classes)


# The equivalent groups of Challenge 2021 (a|b header cells), representative first.
EQUIVALENT_2021 = (
    ("733534002", "164909002"),
    ("713427006", "59118001"),
    ("284470004", "63593006"),
    ("427172004", "17338001"),
)


def test_shipped_2021_tables_are_the_official_ones(shared_data):
    official = shared_data / "scoring" / "2021"
    for name in ("weights.csv", "dx_mapping_scored.csv", "dx_mapping_unscored.csv"):
        ours = tables.TABLE_DIRS["2021"] / name
        assert ours.read_bytes() == (official / name).read_bytes(), name


def test_2021_table_splits_pipe_cells_into_equivalent_codes():
    table = tables.load_task_table("2021")
    assert table.layout == "2021"
    assert len(table.classes) == 26 and len(table.all_codes) == 30
    assert table.equivalents == EQUIVALENT_2021
    assert "733534002|164909002" in table.names
    for group in EQUIVALENT_2021:
        j = table.classes.index(group[0])
        assert all(table.code_to_index[code] == j for code in group)
        assert table.group(j) == group
        assert group[1] not in table.classes
    for new in ("6374002", "365413008"):  # BBB and PRWP, scored from 2021 on
        assert new in table.classes
    assert tables.NORMAL_CLASS in table.classes
    assert np.array_equal(np.diag(table.weights), np.ones(26))
    assert np.array_equal(table.weights, table.weights.T)
    # first row of the official table: AF vs AFL 0.5, AF vs BBB 0.475
    assert table.classes[:3] == ("164889003", "164890007", "6374002")
    assert table.weights[0, 1] == 0.5 and table.weights[0, 2] == 0.475


def test_2020_table_names_and_layout():
    table = tables.load_task_table("2020")
    assert table.layout == "2020" and len(table.all_codes) == 27
    assert table.names[table.classes.index("713427006")] == "713427006|59118001"
    assert table.all_codes[:2] == ("270492004", "164889003")  # header order


def test_abbreviations_of_both_years():
    for task, n in (("2020", 24), ("2021", 26)):
        table = tables.load_task_table(task)
        mapping = tables.load_abbreviations(tables.TABLE_DIRS[task] / "dx_mapping_scored.csv")
        abbr = tables.class_abbreviations(table, mapping)
        assert len(abbr) == n and abbr[table.classes.index(tables.NORMAL_CLASS)] == "NSR"
        assert abbr[table.classes.index("713427006")] == "CRBBB|RBBB"
    assert abbr[table.classes.index("733534002")] == "CLBBB|LBBB"  # 2021's SNOMEDCTCode column
    assert abbr[table.classes.index("365413008")] == "PRWP"


def test_pipe_cells_and_weight_one_pairs_together(tmp_path):
    # 2021 cells a|b and a 2020-style pair c ~ d (weight 1) in one table.
    path = tmp_path / "w.csv"
    path.write_text(
        ",a|b,c,d,n\na|b,1,0.2,0.2,0.5\nc,0.2,1,1,0.4\nd,0.2,1,1,0.4\nn,0.5,0.4,0.4,1\n"
    )
    table = tables.load_scoring_table(path)
    assert table.classes == ("a", "c", "n")
    assert table.names == ("a|b", "c|d", "n")
    assert table.equivalents == (("a", "b"), ("c", "d"))
    assert table.code_to_index == {"a": 0, "b": 0, "c": 1, "d": 1, "n": 2}
    assert table.layout == "2021"
    assert np.array_equal(table.weights, [[1, 0.2, 0.5], [0.2, 1, 0.4], [0.5, 0.4, 1]])


@pytest.mark.parametrize(
    "text, problem",
    [
        (",a|b,n\na,1,0.5\nn,0.5,1\n", "row names differ"),
        (",a,,n\na,1,0,0\n,0,1,0\nn,0,0,1\n", "no code"),
        (",a|n,n\na|n,1,0.5\nn,0.5,1\n", "appears twice"),
        ("", "empty"),
    ],
)
def test_bad_tables_are_refused_with_the_file_named(tmp_path, text, problem):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem) as info:
        tables.load_scoring_table(path)
    assert "bad.csv" in str(info.value)


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="2020, 2021"):
        tables.task_weights_path("2019")


def test_the_kit_names_the_scorers_tasks():
    """The kit's task table names are the scorer's TASKS, one list; each names its shipped
    weights.csv."""
    from team_code import context

    assert not hasattr(context, "TASK_TABLES")
    assert context.TASKS is tables.TASKS
    for task in tables.TASKS:
        assert context.Task(task).weights_path == tables.task_weights_path(task)
    with pytest.raises(ValueError, match=r"neither 2020 nor 2021 nor a weights\.csv"):
        context.Task("2019")
