"""The scored Challenge classes, their abbreviations and equivalences.

Everything comes from the Challenge's published tables that the project ships in
``evaluation/`` (2020: ``weights.csv`` and ``dx_mapping_scored.csv``; 2021: ``evaluation/2021/``),
read by the scorer's own reader (``evaluation.tables.load_scoring_table``), so the kit and the
scorer cannot disagree about a table. A test checks the copies against the official ones.
Equivalent codes form one class whose representative is the code listed first in the weights
header: in 2020 the pairs with an off-diagonal weight of exactly 1 (713427006 for CRBBB/RBBB,
284470004 for PAC/SVPB, 427172004 for PVC/VPB), in 2021 the ``a|b`` header cells (also
733534002 for CLBBB/LBBB). Classifiers predict the representatives (24 classes in 2020, 26 in
2021).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from evaluation.tables import (
    NORMAL_CLASS,  # noqa: F401  (sinus rhythm, the "inactive" class; one definition)
    TABLE_DIRS,
    class_abbreviations,
    load_abbreviations,
    load_scoring_table,
)

#: The folder holding the project's copy of the Challenge 2020 scoring tables.
TABLES_DIR = TABLE_DIRS["2020"]


@dataclass(frozen=True)
class ScoredClasses:
    """The scored classes after merging equivalents, and how raw codes map onto them."""

    codes: tuple[str, ...]  # representative SNOMED codes, in weights-table order (24 in 2020)
    abbreviations: tuple[str, ...]  # one abbreviation per representative, e.g. "CRBBB|RBBB"
    all_codes: tuple[str, ...]  # every scored code in the table (27 in 2020, 30 in 2021)
    representative: dict[str, str]  # scored code -> its representative
    weights: np.ndarray  # (len(codes), len(codes)) challenge-metric weights

    def index(self, code: str) -> int:
        """Column of a code (any scored code, equivalents included)."""
        return self.codes.index(self.representative[code])

    def merge(self, codes: Iterable[str]) -> set[str]:
        """Map raw #Dx codes onto representatives; unscored codes are dropped."""
        return {self.representative[c] for c in codes if c in self.representative}

    def abbreviation(self, code: str) -> str:
        """The abbreviation of a representative or scored code."""
        return self.abbreviations[self.index(code)]


def scored_classes(weights_path: str | os.PathLike | None = None) -> ScoredClasses:
    """Load the scored classes from a ``weights.csv`` of either year (the shipped 2020 copy by
    default); abbreviations come from the ``dx_mapping_scored.csv`` beside it. One object per
    table file: the same table asked for twice is the same object."""
    path = Path(weights_path) if weights_path else TABLES_DIR / "weights.csv"
    return _scored_classes(path.resolve())


@lru_cache(maxsize=8)
def _scored_classes(path: Path) -> ScoredClasses:
    table = load_scoring_table(path)
    abbreviations = class_abbreviations(
        table, load_abbreviations(path.parent / "dx_mapping_scored.csv")
    )
    return ScoredClasses(
        codes=table.classes,
        abbreviations=abbreviations,
        all_codes=table.all_codes,
        representative={code: table.classes[j] for code, j in table.code_to_index.items()},
        weights=table.weights,
    )


def _shipped_tables() -> list[ScoredClasses]:
    """The shipped scoring tables, 2020 first."""
    from evaluation.tables import TASKS

    return [scored_classes(TABLE_DIRS[task] / "weights.csv") for task in TASKS]


def table_for(classes: Sequence[str]) -> ScoredClasses:
    """The shipped table whose scored classes include all of ``classes`` (2020 first, then
    2021): for code that is handed classes without their table. A task knows its table
    (``Task.scored``) and passes it."""
    wanted = set(classes)
    for table in _shipped_tables():
        if wanted <= set(table.codes):
            return table
    raise KeyError(f"no shipped scoring table has all of the classes {sorted(wanted)}")


def label_matrix(
    labels: Sequence[Iterable[str]],
    classes: Sequence[str] | None = None,
    scored: ScoredClasses | None = None,
) -> np.ndarray:
    """A bool (n_records, n_classes) matrix of merged labels.

    ``labels`` holds each record's raw #Dx codes; ``classes`` are representative codes of
    ``scored`` (a table's classes: the 2020 table's 24 by default; a task passes its own).
    Without ``scored``, the table is the shipped one that holds ``classes``
    (:func:`table_for`: 2020, else 2021), or 2020 without ``classes``. Equivalent codes are
    OR-ed into their representative; unscored codes ignored. A class that is not a
    representative code of the table (an equivalent such as 59118001, whose labels go to
    713427006; an unscored code) would get a column no label sets: a ``ValueError`` names it.
    """
    if classes is not None:
        classes = list(classes)
    if scored is None:
        scored = _default_table(classes)
    if classes is None:
        classes = list(scored.codes)
    _check_representatives(classes, scored)
    column = {code: j for j, code in enumerate(classes)}
    matrix = np.zeros((len(labels), len(classes)), dtype=bool)
    for i, codes in enumerate(labels):
        for code in scored.merge(codes):
            j = column.get(code)
            if j is not None:
                matrix[i, j] = True
    return matrix


def _default_table(classes: Sequence[str] | None) -> ScoredClasses:
    """The table :func:`label_matrix` merges with when none is given: the shipped table that
    holds all of ``classes``; where none does, the one holding most of them (2020 first), for
    :func:`_check_representatives` to name the rest."""
    if classes is None:
        return scored_classes()
    # a table that holds them all holds the most; ties go to the first (2020), as table_for's
    return max(_shipped_tables(), key=lambda table: len(set(classes) & set(table.codes)))


def _check_representatives(classes: Sequence[str], scored: ScoredClasses) -> None:
    """Refuse classes that are not representative codes of ``scored``, naming each (and the
    representative its labels go to, where it is an equivalent code)."""
    codes = set(scored.codes)
    bad = [code for code in classes if code not in codes]
    if not bad:
        return
    names = []
    for code in bad:
        if code in scored.representative:
            names.append(f"{code} (an equivalent of {scored.representative[code]}, its class)")
        else:
            names.append(f"{code} (not a scored code of the table)")
    raise ValueError(
        f"label_matrix: class(es) {', '.join(names)} are not representative codes of the "
        f"scoring table of {len(scored.codes)} classes: no label could set their columns; "
        "give the representative codes (the table's classes)"
    )
