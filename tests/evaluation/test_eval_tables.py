"""The shipped scoring tables and their loader."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import metrics

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
