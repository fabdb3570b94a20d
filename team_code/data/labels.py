"""The scored Challenge 2020 classes, their abbreviations and equivalences.

Everything comes from the Challenge's published tables that the project ships in
``evaluation/`` (``weights.csv`` and ``dx_mapping_scored.csv``); a test checks the copy against
the official one. Two codes are equivalent when their off-diagonal weight is exactly 1; the
representative of a pair is the code listed first in the weights header (713427006 for
CRBBB/RBBB, 284470004 for PAC/SVPB, 427172004 for PVC/VPB), as in the 2020 scorer.
Classifiers predict the representatives (24 classes).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

#: The folder holding the project's copy of the Challenge scoring tables.
TABLES_DIR = Path(__file__).resolve().parents[2] / "evaluation"

#: Sinus rhythm, the "inactive" reference class of the challenge metric.
NORMAL_CLASS = "426783006"


@dataclass(frozen=True)
class ScoredClasses:
    """The scored classes after merging equivalents, and how raw codes map onto them."""

    codes: tuple[str, ...]  # representative SNOMED codes, in weights-table order (24 in 2020)
    abbreviations: tuple[str, ...]  # one abbreviation per representative, e.g. "CRBBB|RBBB"
    all_codes: tuple[str, ...]  # every scored code in the table (27 in 2020)
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


def _read_table(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    cols = [c.strip() for c in rows[0][1:]]
    names = [r[0].strip() for r in rows[1:]]
    values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    return names, cols, values


@lru_cache(maxsize=4)
def scored_classes(weights_path: str | os.PathLike | None = None) -> ScoredClasses:
    """Load the scored classes from ``weights.csv`` (the shipped copy by default)."""
    path = Path(weights_path) if weights_path else TABLES_DIR / "weights.csv"
    rows, cols, values = _read_table(path)
    if rows != cols:
        raise ValueError(f"{path}: the weights table's rows and columns differ")
    representative: dict[str, str] = {}
    for j, code in enumerate(cols):
        first = next(k for k in range(len(cols)) if values[j, k] == 1.0 or k == j)
        representative[code] = cols[first]
    codes = tuple(c for c in cols if representative[c] == c)
    keep = [cols.index(c) for c in codes]
    abbrev_of = _abbreviations(path.parent / "dx_mapping_scored.csv")
    abbreviations = tuple(
        "|".join(abbrev_of.get(c, c) for c in cols if representative[c] == rep) for rep in codes
    )
    return ScoredClasses(
        codes=codes,
        abbreviations=abbreviations,
        all_codes=tuple(cols),
        representative=representative,
        weights=values[np.ix_(keep, keep)],
    )


def _abbreviations(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        return {
            row["SNOMED CT Code"].strip(): row["Abbreviation"] for row in csv.DictReader(handle)
        }


def label_matrix(
    labels: Sequence[Iterable[str]], classes: Sequence[str] | None = None
) -> np.ndarray:
    """A bool (n_records, n_classes) matrix of merged labels.

    ``labels`` holds each record's raw #Dx codes; ``classes`` are representative codes (all 24
    by default). Equivalent codes are OR-ed into their representative; unscored codes ignored.
    """
    scored = scored_classes()
    classes = list(classes) if classes is not None else list(scored.codes)
    column = {code: j for j, code in enumerate(classes)}
    matrix = np.zeros((len(labels), len(classes)), dtype=bool)
    for i, codes in enumerate(labels):
        for code in scored.merge(codes):
            j = column.get(code)
            if j is not None:
                matrix[i, j] = True
    return matrix
