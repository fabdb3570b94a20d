"""Challenge output files: written, read and validated by this one module.

An output file holds four lines, comma-separated, the same classes in the same order::

    #A0001
    270492004,164889003,...
    0,1,...
    0.12,0.91,...
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from team_code.fileio import atomic_write_text


@dataclass(frozen=True)
class Output:
    """The content of one output file."""

    record: str  # record name from the first line
    classes: tuple[str, ...]  # SNOMED codes
    labels: np.ndarray  # int 0/1 per class
    scores: np.ndarray  # float in [0, 1] per class


def format_output(record: str, classes: Sequence[str], labels, scores) -> str:
    """The text of an output file; scores are written with full float precision."""
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=float).ravel()
    if not (len(classes) == len(labels) == len(scores)):
        raise ValueError(
            f"output for {record}: {len(classes)} classes, {len(labels)} labels and "
            f"{len(scores)} scores differ in length"
        )
    lines = [
        f"#{record}",
        ",".join(classes),
        ",".join(str(int(v)) for v in labels),
        ",".join(repr(float(v)) for v in scores),
    ]
    return "\n".join(lines) + "\n"


def write_output(path: str | os.PathLike, record: str, classes, labels, scores) -> Path:
    """Write one output file atomically (temporary file, then rename)."""
    path = Path(path)
    atomic_write_text(path, format_output(record, classes, labels, scores))
    return path


def read_output(path: str | os.PathLike) -> Output:
    """Read an output file; raise ValueError naming the file when it is malformed."""
    path = Path(path)
    problems = validate_output(path)
    if problems:
        raise ValueError(f"output file {path}: " + "; ".join(problems))
    lines = path.read_text().splitlines()
    return Output(
        record=lines[0][1:].strip(),
        classes=tuple(c.strip() for c in lines[1].split(",")),
        labels=np.array([int(v) for v in lines[2].split(",")]),
        scores=np.array([float(v) for v in lines[3].split(",")]),
    )


def validate_output(path: str | os.PathLike, record: str | None = None) -> list[str]:
    """Every problem with an output file (an empty list when it is valid)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        return [f"cannot be read ({error})"]
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 4:
        return [f"has {len(lines)} non-empty lines; expected 4"]
    problems = []
    if not lines[0].startswith("#"):
        problems.append("first line does not start with '#<record>'")
    elif record is not None and lines[0][1:].strip() != record:
        problems.append(f"first line names {lines[0][1:].strip()!r}, expected {record!r}")
    rows = [[v.strip() for v in line.split(",")] for line in lines[1:]]
    if len({len(r) for r in rows}) != 1:
        problems.append(f"rows have different lengths {[len(r) for r in rows]}")
        return problems
    classes, labels, scores = rows
    if any(not c for c in classes):
        problems.append("empty class code")
    if len(set(classes)) != len(classes):
        problems.append("a class is listed twice")
    if any(v not in ("0", "1") for v in labels):
        problems.append("labels must be 0 or 1")
    for v in scores:
        try:
            value = float(v)
        except ValueError:
            problems.append(f"score {v!r} is not a number")
            break
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            problems.append(f"score {v!r} is outside [0, 1]")
            break
    return problems
