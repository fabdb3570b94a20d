"""The one reader of the Challenge scoring tables, for the scorer and the kit alike.

Two layouts of ``weights.csv`` exist:

- 2020: 27 classes, one code per header cell; three pairs of codes are equivalent, which the
  table shows only as an off-diagonal weight of exactly 1 (CRBBB 713427006 / RBBB 59118001,
  PAC 284470004 / SVPB 63593006, PVC 427172004 / VPB 17338001): 24 scored classes.
- 2021: 26 header cells, equivalent codes share one cell written ``a|b``
  (``733534002|164909002`` for CLBBB/LBBB): 26 scored classes.

``load_scoring_table`` reads both into one :class:`ScoringTable`: a group of equivalent codes is
one class whose representative is the first code of the group in header order. The mapping
tables ``dx_mapping_scored.csv`` name the code column ``SNOMED CT Code`` (2020) or
``SNOMEDCTCode`` (2021); ``load_abbreviations`` reads both.

The project ships each year's tables (BSD-2, ``LICENSE.tables``): 2020 beside this module,
2021 in ``2021/``. Nothing here imports from ``team_code``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: SNOMED CT code of sinus rhythm, the "inactive" reference class of the challenge metric.
NORMAL_CLASS = "426783006"

#: The Challenges whose scoring the project reproduces.
TASKS = ("2020", "2021")

_HERE = Path(__file__).resolve().parent

#: Folder of each task's shipped tables (weights.csv, dx_mapping_scored.csv, ...).
TABLE_DIRS = {"2020": _HERE, "2021": _HERE / "2021"}

#: Column names of the SNOMED CT code in dx_mapping_*.csv (2020, 2021).
_CODE_COLUMNS = ("SNOMED CT Code", "SNOMEDCTCode")


@dataclass(frozen=True)
class ScoringTable:
    """Scored classes and weights with equivalent classes merged."""

    # representative SNOMED CT code of each scored class, in weights.csv order
    classes: tuple[str, ...]
    # (n_classes, n_classes) float64 reward matrix, rows = labels, columns = outputs
    weights: np.ndarray
    # every scored code (representatives and their equivalents) -> column index in `classes`
    code_to_index: dict[str, int]
    # groups of equivalent codes, representative first (only groups with two or more codes)
    equivalents: tuple[tuple[str, ...], ...] = field(default=())
    # every scored code in header order (27 in 2020, 30 in 2021)
    all_codes: tuple[str, ...] = field(default=())
    # each class as the table writes it: its codes joined by "|" ("733534002|164909002")
    names: tuple[str, ...] = field(default=())
    # "2021" when a header cell holds "a|b" codes, else "2020"
    layout: str = "2020"

    def group(self, index: int) -> tuple[str, ...]:
        """Every code of class ``index``, representative first."""
        return tuple(self.names[index].split("|"))


def task_weights_path(task: str = "2020") -> Path:
    """The shipped ``weights.csv`` of a task (``"2020"`` or ``"2021"``)."""
    if task not in TABLE_DIRS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return TABLE_DIRS[task] / "weights.csv"


def default_weights_path() -> Path:
    """Return the path of the shipped 2020 ``weights.csv`` (next to this module)."""
    return task_weights_path("2020")


def _to_float(text: str) -> float:
    """Parse a number like Python's ``float``; anything else gives NaN."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _union_find_groups(values: np.ndarray) -> dict[int, list[int]]:
    """Group header cells linked by an off-diagonal weight of exactly 1, in header order."""
    n = values.shape[0]
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if values[i, j] == 1.0 or values[j, i] == 1.0:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return groups


def load_scoring_table(path: str | os.PathLike | None = None) -> ScoringTable:
    """Read a Challenge ``weights.csv`` (2020 or 2021 layout) and merge equivalent classes.

    Two codes are equivalent when they share a header cell written ``a|b`` (2021), or when
    their off-diagonal weight is exactly 1 (2020). The representative of a group is the code
    listed first in the header; its row and column are kept. Raises ``ValueError`` naming the
    file when the table is empty, not square, has ragged rows, row names that differ from the
    column names, a code listed twice, or equivalent classes with different weights.
    """
    path = Path(path) if path is not None else default_weights_path()
    text = path.read_text(encoding="utf-8", errors="replace")
    table = [[cell.strip() for cell in line.split(",")] for line in text.splitlines()]
    table = [row for row in table if any(row)]
    if len(table) < 2:
        raise ValueError(f"weights table {path} is empty")
    header = table[0][1:]
    body = table[1:]
    if any(len(row) != len(header) + 1 for row in body):
        raise ValueError(f"weights table {path} has rows of different lengths")
    cell_codes = [[c.strip() for c in cell.split("|") if c.strip()] for cell in header]
    row_codes = [[c.strip() for c in row[0].split("|") if c.strip()] for row in body]
    if row_codes != cell_codes:
        raise ValueError(f"weights table {path}: row names differ from column names")
    if any(not codes for codes in cell_codes):
        raise ValueError(f"weights table {path}: a class has no code")
    values = np.array([[_to_float(x) for x in row[1:]] for row in body], dtype=np.float64)

    groups = _union_find_groups(values)
    kept = sorted(groups)  # first-listed cell of each group, in header order
    code_to_index: dict[str, int] = {}
    classes: list[str] = []
    names: list[str] = []
    equivalents: list[tuple[str, ...]] = []
    for new_index, root in enumerate(kept):
        members = groups[root]
        for m in members[1:]:
            if not (
                np.array_equal(values[m, :], values[root, :], equal_nan=True)
                and np.array_equal(values[:, m], values[:, root], equal_nan=True)
            ):
                raise ValueError(
                    f"weights table {path}: equivalent classes {header[root]} and {header[m]} "
                    "have different weights"
                )
        codes = [code for m in members for code in cell_codes[m]]
        classes.append(codes[0])
        names.append("|".join(codes))
        if len(codes) > 1:
            equivalents.append(tuple(codes))
        for code in codes:
            if code in code_to_index and code_to_index[code] != new_index:
                raise ValueError(f"weights table {path}: code {code} appears twice")
            code_to_index[code] = new_index
    weights = values[np.ix_(kept, kept)].copy()
    return ScoringTable(
        classes=tuple(classes),
        weights=weights,
        code_to_index=code_to_index,
        equivalents=tuple(equivalents),
        all_codes=tuple(code for codes in cell_codes for code in codes),
        names=tuple(names),
        layout="2021" if any(len(codes) > 1 for codes in cell_codes) else "2020",
    )


def load_task_table(task: str = "2020", path: str | os.PathLike | None = None) -> ScoringTable:
    """The table at ``path``, else the task's shipped one."""
    return load_scoring_table(path if path is not None else task_weights_path(task))


def load_weights(path: str | os.PathLike | None = None) -> tuple[list[str], np.ndarray]:
    """Return ``(classes, weights)`` of ``weights.csv`` with equivalent classes merged."""
    table = load_scoring_table(path)
    return list(table.classes), table.weights


def load_abbreviations(path: str | os.PathLike | None = None) -> dict[str, str]:
    """Map SNOMED CT codes to abbreviations from a ``dx_mapping_*.csv`` (empty if absent).

    Reads both years' layouts (code column ``SNOMED CT Code`` or ``SNOMEDCTCode``).
    """
    path = Path(path) if path is not None else _HERE / "dx_mapping_scored.csv"
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines:
        return {}
    head = [h.strip() for h in lines[0].split(",")]
    i_code = next((head.index(c) for c in _CODE_COLUMNS if c in head), None)
    if i_code is None or "Abbreviation" not in head:
        return {}
    i_abbr = head.index("Abbreviation")
    out = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) > max(i_code, i_abbr):
            out[cells[i_code]] = cells[i_abbr]
    return out


def class_abbreviations(table: ScoringTable, abbreviations: dict[str, str]) -> tuple[str, ...]:
    """One abbreviation per class, its codes' joined by ``|`` (``CRBBB|RBBB``).

    A code missing from ``abbreviations`` stands for itself.
    """
    return tuple(
        "|".join(abbreviations.get(code, code) for code in table.group(j))
        for j in range(len(table.classes))
    )
