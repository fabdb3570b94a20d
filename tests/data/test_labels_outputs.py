"""Scored classes from the shipped weights table, and the output-file module."""

from __future__ import annotations

import numpy as np
import pytest

from team_code.data.labels import NORMAL_CLASS, TABLES_DIR, label_matrix, scored_classes
from team_code.data.outputs import format_output, read_output, validate_output, write_output


def test_shipped_weights_equal_the_official_table(shared_data):
    official = shared_data / "scoring" / "2020"
    for name in ("weights.csv", "dx_mapping_scored.csv"):
        assert (TABLES_DIR / name).read_bytes() == (official / name).read_bytes(), name


def test_scored_classes_and_equivalents():
    scored = scored_classes()
    assert len(scored.all_codes) == 27 and len(scored.codes) == 24
    assert scored.representative["59118001"] == "713427006"  # RBBB -> CRBBB
    assert scored.representative["63593006"] == "284470004"  # SVPB -> PAC
    assert scored.representative["17338001"] == "427172004"  # VPB -> PVC
    assert scored.abbreviation("59118001") == "CRBBB|RBBB"
    assert scored.abbreviation(NORMAL_CLASS) == "NSR"
    assert scored.weights.shape == (24, 24)
    np.testing.assert_array_equal(np.diag(scored.weights), 1.0)
    np.testing.assert_array_equal(scored.weights, scored.weights.T)


def test_label_matrix_merges_equivalents_and_ignores_unscored():
    scored = scored_classes()
    truth = label_matrix([("59118001", "713427006"), ("17338001",), ("55930002",), ()])
    assert truth.shape == (4, 24)
    assert truth[0].sum() == 1 and truth[0, scored.index("713427006")]
    assert truth[1, scored.index("427172004")]
    assert not truth[2].any() and not truth[3].any()
    sub = label_matrix([("164889003", "426783006")], ["426783006", "164889003"])
    assert sub.tolist() == [[True, True]]


def test_output_round_trip(tmp_path):
    classes = ["164889003", "426783006"]
    path = write_output(tmp_path / "A1.csv", "A1", classes, [1, 0], [0.75, 0.125])
    assert path.read_text() == "#A1\n164889003,426783006\n1,0\n0.75,0.125\n"
    assert validate_output(path, "A1") == []
    out = read_output(path)
    assert out.record == "A1" and out.classes == tuple(classes)
    assert out.labels.tolist() == [1, 0] and out.scores.tolist() == [0.75, 0.125]
    # Full precision survives the round trip.
    value = 1 / 3
    write_output(path, "A1", classes, [0, 0], [value, 0.0])
    assert read_output(path).scores[0] == value


@pytest.mark.parametrize(
    "text, problem",
    [
        ("#A\n1,2\n0,1\n", "expected 4"),
        ("A\n1,2\n0,1\n0.1,0.2\n", "'#<record>'"),
        ("#A\n1,2\n0,1,1\n0.1,0.2\n", "different lengths"),
        ("#A\n1,2\n0,2\n0.1,0.2\n", "0 or 1"),
        ("#A\n1,2\n0,1\n0.1,x\n", "not a number"),
        ("#A\n1,2\n0,1\n0.1,1.5\n", "outside [0, 1]"),
        ("#A\n1,1\n0,1\n0.1,0.5\n", "listed twice"),
    ],
)
def test_validator_names_the_problem(tmp_path, text, problem):
    path = tmp_path / "A.csv"
    path.write_text(text)
    problems = validate_output(path)
    assert any(problem in p for p in problems), problems
    with pytest.raises(ValueError, match="output file"):
        read_output(path)


def test_validator_checks_record_name(tmp_path):
    path = write_output(tmp_path / "A.csv", "A", ["1"], [0], [0.5])
    assert "expected 'B'" in validate_output(path, "B")[0]


def test_format_rejects_ragged_rows():
    with pytest.raises(ValueError, match="differ in length"):
        format_output("A", ["1", "2"], [0], [0.1, 0.2])


def test_scored_classes_of_the_2021_table():
    scored = scored_classes(TABLES_DIR / "2021" / "weights.csv")
    assert len(scored.codes) == 26 and len(scored.all_codes) == 30
    assert scored.representative["164909002"] == "733534002"  # LBBB -> CLBBB
    assert scored.representative["59118001"] == "713427006"
    assert scored.abbreviation("164909002") == "CLBBB|LBBB"
    assert scored.abbreviation("6374002") == "BBB" and scored.abbreviation("365413008") == "PRWP"
    assert scored.merge(["164909002", "733534002", "6374002", "55930002"]) == {
        "733534002",
        "6374002",
    }
    assert scored.weights.shape == (26, 26)
    # the same table the scorer reads
    from evaluation import tables

    table = tables.load_task_table("2021")
    assert scored.codes == table.classes
    np.testing.assert_array_equal(scored.weights, table.weights)


def test_label_matrix_defaults_to_the_table_that_holds_the_classes():
    """Without ``scored``, the classes' own table merges the labels: 2021 classes are merged by
    the 2021 table (CLBBB, BBB and PRWP filled, LBBB merged into CLBBB), not by the 2020 one."""
    from team_code.data.labels import table_for

    s2021 = scored_classes(TABLES_DIR / "2021" / "weights.csv")
    classes = list(s2021.codes)
    assert table_for(classes) is s2021
    labels = [
        ("164909002",),
        ("733534002",),
        ("6374002",),
        ("365413008",),
        ("59118001", "713427006"),
        ("63593006",),
    ]
    default = label_matrix(labels, classes)
    np.testing.assert_array_equal(default, label_matrix(labels, classes, s2021))
    assert default.sum(axis=1).tolist() == [1, 1, 1, 1, 1, 1]
    assert default[0, classes.index("733534002")]  # LBBB -> CLBBB in 2021
    # 2020 classes (and no classes at all) still default to the 2020 table
    assert label_matrix([("164909002",)], ["164909002"]).tolist() == [[True]]
    assert label_matrix([("164909002",)]).shape == (1, 24)


@pytest.mark.parametrize(
    ("classes", "scored", "code"),
    [
        (["426783006", "59118001"], None, "59118001"),  # RBBB: 713427006 represents it
        (["426783006", "164909002"], "2021", "164909002"),  # LBBB: CLBBB in 2021
        (["426783006", "17338001"], None, "17338001"),  # VEB: not a representative code
        (["426783006", "55930002"], None, "55930002"),  # unscored
    ],
)
def test_label_matrix_refuses_a_class_that_is_not_a_representative(classes, scored, code):
    """A class that is not a representative code of the table would get a column no label can
    ever set: refused, naming the code."""
    table = None if scored is None else scored_classes(TABLES_DIR / scored / "weights.csv")
    with pytest.raises(ValueError, match=code):
        label_matrix([("59118001",), ("713427006",)], classes, table)
