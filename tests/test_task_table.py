"""A custom scoring table is checked where its Task is built: the challenge metric needs sinus
rhythm (426783006), its "inactive" reference class, among the table's classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from team_code.context import Task
from team_code.data.labels import NORMAL_CLASS


def _table(folder: Path, header: list[str]) -> Path:
    """A ``weights.csv`` whose columns are ``header`` (``a|b`` for equivalent codes), 1 on the
    diagonal and 0.5 elsewhere, with its ``dx_mapping_scored.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [",".join(["", *header])]
    for i, group in enumerate(header):
        rows.append(",".join([group, *("1.0" if i == j else "0.5" for j in range(len(header)))]))
    (folder / "weights.csv").write_text("\n".join(rows) + "\n")
    codes = [code for group in header for code in group.split("|")]
    mapping = ["Dx,SNOMED CT Code,Abbreviation", *(f"class {c},{c},C{c}" for c in codes)]
    (folder / "dx_mapping_scored.csv").write_text("\n".join(mapping) + "\n")
    return folder / "weights.csv"


def test_a_table_without_sinus_rhythm_is_refused_naming_the_file_and_the_class(tmp_path):
    path = _table(tmp_path / "no-nsr", ["164889003", "426177001", "427084000"])
    with pytest.raises(ValueError) as caught:
        Task(str(path))
    message = str(caught.value)
    assert str(path) in message and NORMAL_CLASS in message and "inactive" in message


def test_sinus_rhythm_second_in_its_group_is_refused_saying_where_it_must_stand(tmp_path):
    path = _table(tmp_path / "nsr-second", ["164889003", f"426177001|{NORMAL_CLASS}"])
    with pytest.raises(ValueError, match="first code of its group") as caught:
        Task(str(path))
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("header", [[NORMAL_CLASS, "164889003"], [f"{NORMAL_CLASS}|1", "2"]])
def test_a_table_with_sinus_rhythm_is_taken(tmp_path, header):
    task = Task(str(_table(tmp_path / "t", header)))
    assert NORMAL_CLASS in task.scored.codes


@pytest.mark.parametrize("table", ["2020", "2021"])
def test_the_shipped_tables_are_taken(table):
    assert NORMAL_CLASS in Task(table).scored.codes
