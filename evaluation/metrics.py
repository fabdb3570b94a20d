"""Scoring for the PhysioNet/CinC Challenges 2020 and 2021, reimplemented from their definitions.

Pure, vectorised functions on arrays plus the readers they need:

- the scoring tables come from :mod:`evaluation.tables` (re-exported here: ``load_weights``,
  ``load_scoring_table``, ``ScoringTable``, ``NORMAL_CLASS`` ...), one reader for both years.
- ``read_header_labels`` / ``read_output_file`` parse one label header / one output CSV the way
  the official scorer of the task does; ``load_label_matrix`` / ``load_output_matrices`` turn
  many of them into arrays.
- ``compute_*`` functions and ``evaluate_arrays`` score label and output arrays of shape
  ``(n_records, n_classes)``.

The metrics are the same in both years (AUROC, AUPRC, accuracy, F-measure, challenge metric;
2020 adds F-beta and G-beta). The years differ in how files are read (``task``):

- 2020 (``evaluate_12ECG_score.py``): the first ``#Dx`` line of a header; in an output file,
  blank lines and ``#`` lines are skipped and the next three lines are read, rows of different
  lengths make the file malformed; a binary output is positive when it reads '1', 'True',
  'true', 'T' or 't'; a non-number score is 0, NaN is left out of the mean of equivalent
  columns (then 0), infinities are kept.
- 2021 (``evaluate_model.py``): every ``#Dx`` line of a header; an output file is read by
  position (line 1 the record, lines 2-4 the classes, labels and scores); an output column may
  name several codes ``a|b`` and counts for every class it shares a code with; a binary output
  is positive when it reads 'True', 'true', 'T', 't' or any number equal to 1 ('1.0'); a score
  that is not a finite number is 0 before equivalent columns are averaged.

Nothing here imports from ``team_code``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evaluation.tables import (  # noqa: F401  (re-exported: the scorer's one table reader)
    NORMAL_CLASS,
    TASKS,
    ScoringTable,
    class_abbreviations,
    default_weights_path,
    load_abbreviations,
    load_scoring_table,
    load_task_table,
    load_weights,
    task_weights_path,
)

#: Record-name prefixes of the 2020/2021 sources (CPSC, CPSC-Extra, INCART, PTB, PTB-XL,
#: Georgia, Chapman-Shaoxing/Ningbo) and LUDB in Challenge form (``LU0001``); a record
#: belongs to its longest prefix followed by a digit (:func:`record_source`).
SOURCE_PREFIXES = ("A", "Q", "I", "S", "HR", "E", "JS", "LU")

#: Strings the official scorers read as a positive binary output (2021 also: numbers equal to 1).
TRUE_STRINGS = frozenset(("1", "True", "true", "T", "t"))

#: The overall scores each year's scorer reports, in the order of its scores.csv.
SCORE_COLUMNS = {
    "2020": (
        "AUROC",
        "AUPRC",
        "Accuracy",
        "F-measure",
        "Fbeta-measure",
        "Gbeta-measure",
        "Challenge metric",
    ),
    "2021": ("AUROC", "AUPRC", "Accuracy", "F-measure", "Challenge metric"),
}


def check_task(task: str) -> str:
    """Return ``task`` if it is a known Challenge year, else raise ``ValueError``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return task


class MalformedOutputError(ValueError):
    """An output file that cannot be parsed (too few lines, ragged rows, unreadable)."""


@dataclass
class EvaluationResult:
    """All overall and per-class scores of one evaluation."""

    classes: list[str]  # scored classes (representative codes), column order of the arrays
    auroc: float  # macro AUROC (nanmean over classes)
    auprc: float  # macro AUPRC (nanmean over classes)
    accuracy: float  # fraction of records whose whole binary label vector is right
    f_measure: float  # macro F1 (nanmean over classes)
    f_beta_measure: float  # macro F-beta (beta=2, per-record normalised confusion matrices)
    g_beta_measure: float  # macro G-beta (beta=2, per-record normalised confusion matrices)
    challenge_metric: float  # normalised challenge score; 0.0 when correct == inactive
    auroc_classes: np.ndarray  # per-class AUROC, NaN for classes without positives/negatives
    auprc_classes: np.ndarray  # per-class AUPRC, NaN for classes without positives
    f_measure_classes: np.ndarray  # per-class F1, NaN when 2TP+FP+FN == 0
    n_records: int = 0  # number of records scored
    n_positives: np.ndarray | None = None  # per-class number of positive labels
    task: str = "2020"  # the Challenge year whose scores overall() reports

    def as_dict(self) -> dict:
        """Return the result as a plain dict (arrays converted to lists)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, np.ndarray):
                out[key] = value.tolist()
        return out

    def overall(self) -> dict[str, float]:
        """The task's overall scores keyed by their scores.csv column names (7 in 2020, 5 in
        2021, which reports no F-beta or G-beta)."""
        values = {
            "AUROC": self.auroc,
            "AUPRC": self.auprc,
            "Accuracy": self.accuracy,
            "F-measure": self.f_measure,
            "Fbeta-measure": self.f_beta_measure,
            "Gbeta-measure": self.g_beta_measure,
            "Challenge metric": self.challenge_metric,
        }
        return {key: values[key] for key in SCORE_COLUMNS[self.task]}


# --------------------------------------------------------------------------------------------
# File readers
# --------------------------------------------------------------------------------------------


def parse_header_labels(text: str, all_lines: bool = False) -> list[str] | None:
    """Return the codes of the first ``#Dx:`` / ``# Dx:`` line of a header text.

    With ``all_lines`` (the 2021 scorer) the codes of every Dx line are returned. Codes are
    stripped; empty codes and duplicates are dropped (first occurrence kept). Returns ``None``
    when the text has no Dx line.
    """
    found = False
    codes: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            continue
        body = stripped[1:].lstrip()
        if not body.startswith("Dx"):
            continue
        rest = body[2:].lstrip()
        if not rest.startswith(":"):
            continue
        found = True
        for code in rest[1:].split(","):
            code = code.strip()
            if code and code not in codes:
                codes.append(code)
        if not all_lines:
            break
    return codes if found else None


def read_header_labels(path: str | os.PathLike, all_lines: bool = False) -> list[str]:
    """Read the SNOMED CT codes of a WFDB header's ``#Dx`` line (non-UTF-8 bytes tolerated).

    ``all_lines`` reads every Dx line (2021). A header without a Dx line gives an empty list.
    """
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    codes = parse_header_labels(text, all_lines)
    return [] if codes is None else codes


def _parse_binary(cells: list[str]) -> list[bool]:
    return [c in TRUE_STRINGS for c in cells]


def _parse_scores(cells: list[str]) -> list[float]:
    try:
        return [float(c) for c in cells]
    except ValueError:
        out = []
        for c in cells:
            try:
                out.append(float(c))
            except ValueError:
                out.append(0.0)  # the official scorer reads a non-number as 0 (not NaN)
        return out


def _finite_or_none(cell: str) -> float | None:
    """The number a cell holds if it is finite (Python's ``float`` syntax), else ``None``."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_binary_2021(cells: list[str]) -> list[bool]:
    return [c in TRUE_STRINGS or _finite_or_none(c) == 1.0 for c in cells]


def _parse_scores_2021(cells: list[str]) -> list[float]:
    return [value if (value := _finite_or_none(c)) is not None else 0.0 for c in cells]


def _lines(text: str) -> list[str]:
    """The lines of a text as Python's text mode yields them (newline characters removed)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def parse_output_text(text: str) -> tuple[list[str], list[bool], list[float]]:
    """Parse the text of an output CSV into ``(codes, binary, scores)`` (2020).

    Like the official scorer: blank lines and lines starting with ``#`` are skipped; the next
    three lines are the class codes, the binary labels ('1', 'True', 'true', 'T', 't' are
    positive) and the scores (a non-number reads as 0; 'nan' stays NaN). Every remaining line
    must have the same number of comma-separated fields. Raises ``MalformedOutputError``.
    """
    lines = [line for line in _lines(text) if line.strip() and not line.strip().startswith("#")]
    if len(lines) < 3:
        raise MalformedOutputError(f"expected 3 data lines, found {len(lines)}")
    rows = [[cell.strip() for cell in line.split(",")] for line in lines]
    lengths = {len(row) for row in rows}
    if len(lengths) != 1:
        raise MalformedOutputError(f"rows have different numbers of fields {sorted(lengths)}")
    return rows[0], _parse_binary(rows[1]), _parse_scores(rows[2])


def parse_output_text_2021(text: str) -> tuple[list[str], list[bool], list[float]]:
    """Parse the text of an output CSV into ``(codes, binary, scores)`` (2021).

    Like the official 2021 scorer, lines are read by position: the first is the record line
    (whatever it holds), the next three the class codes, the binary labels ('True', 'true',
    'T', 't' or a number equal to 1 are positive) and the scores (anything but a finite number
    reads as 0). Rows may differ in length: a scored column without a label or a score is
    caught later (:func:`resolve_output_row`). Raises ``MalformedOutputError`` for fewer than
    four lines.
    """
    lines = _lines(text)
    if len(lines) < 4:
        raise MalformedOutputError(
            f"expected 4 lines (#record, classes, labels, scores), found {len(lines)}"
        )
    codes, binary, scores = ([cell.strip() for cell in line.split(",")] for line in lines[1:4])
    return codes, _parse_binary_2021(binary), _parse_scores_2021(scores)


_OUTPUT_PARSERS = {"2020": parse_output_text, "2021": parse_output_text_2021}


def read_output_file(
    path: str | os.PathLike, task: str = "2020"
) -> tuple[list[str], list[bool], list[float]]:
    """Read one output CSV the way the task's scorer does; raises ``MalformedOutputError``
    (naming the file) if unusable."""
    parse = _OUTPUT_PARSERS[check_task(task)]
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise MalformedOutputError(f"{path}: cannot read ({exc})") from exc
    try:
        return parse(text)
    except MalformedOutputError as exc:
        raise MalformedOutputError(f"{path}: {exc}") from None


def find_record_files(
    label_dir: str | os.PathLike, output_dir: str | os.PathLike
) -> tuple[list[str], list[Path], list[Path], list[str]]:
    """Pair label headers with output files by header stem.

    Returns ``(records, header_paths, output_paths, missing)``: records sorted by header file
    name, and the records whose ``<record>.csv`` is missing from ``output_dir``.
    Raises ``FileNotFoundError`` when a folder does not exist or holds no headers.
    """
    label_dir, output_dir = Path(label_dir), Path(output_dir)
    if not label_dir.is_dir():
        raise FileNotFoundError(f"label folder {label_dir} does not exist")
    if not output_dir.is_dir():
        raise FileNotFoundError(f"output folder {output_dir} does not exist")
    with os.scandir(label_dir) as it:
        headers = sorted(
            e.name
            for e in it
            if e.name.lower().endswith(".hea") and not e.name.startswith(".") and e.is_file()
        )
    if not headers:
        raise FileNotFoundError(f"no .hea files in {label_dir}")
    with os.scandir(output_dir) as it:
        outputs = {e.name for e in it if e.name.endswith(".csv") and e.is_file()}
    records, header_paths, output_paths, missing = [], [], [], []
    for name in headers:
        record = name[:-4]
        records.append(record)
        header_paths.append(label_dir / name)
        output_paths.append(output_dir / f"{record}.csv")
        if f"{record}.csv" not in outputs:
            missing.append(record)
    return records, header_paths, output_paths, missing


def label_matrix_from_codes(codes_per_record: list[list[str]], table: ScoringTable) -> np.ndarray:
    """One-hot ``(n, c)`` bool labels; equivalent codes OR-ed, unscored codes ignored."""
    labels = np.zeros((len(codes_per_record), len(table.classes)), dtype=bool)
    lookup = table.code_to_index
    for i, codes in enumerate(codes_per_record):
        for code in codes:
            j = lookup.get(code)
            if j is not None:
                labels[i, j] = True
    return labels


def load_label_matrix(
    header_paths: list[str | os.PathLike], table: ScoringTable | None = None, task: str = "2020"
) -> np.ndarray:
    """Read the ``#Dx`` lines of many headers into an ``(n, c)`` bool label matrix.

    2020 reads the first Dx line of each header, 2021 every Dx line.
    """
    table = table if table is not None else load_scoring_table()
    all_lines = check_task(task) == "2021"
    return label_matrix_from_codes([read_header_labels(p, all_lines) for p in header_paths], table)


OutputRow = tuple[list[str], list[bool], list[float]]


def resolve_output_row(
    row: OutputRow, table: ScoringTable, task: str = "2020"
) -> tuple[list[int], list[bool], list[float]]:
    """Map a parsed output row onto the table's classes: ``(class index, binary, score)`` of
    every scored column, unscored columns dropped.

    2020 matches a column's code exactly; 2021 splits it at ``|`` and counts the column once for
    every class it shares a code with. Raises ``MalformedOutputError`` when a scored column has
    no label or score (2021 rows may be ragged).
    """
    codes, binary, scores = row
    lookup = table.code_to_index
    index: list[int] = []
    out_binary: list[bool] = []
    out_score: list[float] = []
    split = check_task(task) == "2021"
    for k, code in enumerate(codes):
        if split:
            classes = dict.fromkeys(lookup[c] for c in code.split("|") if c in lookup)
        else:
            classes = (lookup[code],) if code in lookup else ()
        if not classes:
            continue
        if k >= len(binary) or k >= len(scores):
            raise MalformedOutputError(
                f"scored class {code} (column {k + 1}) has no "
                f"{'label' if k >= len(binary) else 'score'}"
            )
        for j in classes:
            index.append(j)
            out_binary.append(binary[k])
            out_score.append(scores[k])
    return index, out_binary, out_score


def _merge_columns(
    resolved: list[tuple[list[int], list[bool], list[float]] | None], n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(binary, scores)`` arrays from resolved rows (``None``: an all-negative record).

    Columns of one class are merged: binary OR-ed, scores averaged ignoring NaN; a class whose
    scores are all NaN, and any NaN left, becomes 0.
    """
    n, c = len(resolved), n_classes
    flat_index: list[int] = []
    flat_binary: list[bool] = []
    flat_score: list[float] = []
    for i, row in enumerate(resolved):
        if row is None:
            continue
        base = i * c
        flat_index.extend(base + j for j in row[0])
        flat_binary.extend(row[1])
        flat_score.extend(row[2])
    index = np.asarray(flat_index, dtype=np.int64)
    binary_flat = np.asarray(flat_binary, dtype=bool)
    score_flat = np.asarray(flat_score, dtype=np.float64)
    binary = np.bincount(index[binary_flat], minlength=n * c) > 0
    finite = ~np.isnan(score_flat)
    sums = np.bincount(index[finite], weights=score_flat[finite], minlength=n * c)
    counts = np.bincount(index[finite], minlength=n * c)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    scores[np.isnan(scores)] = 0.0  # e.g. inf + -inf
    return binary.reshape(n, c), scores.reshape(n, c)


def output_matrices_from_rows(
    rows: list[OutputRow | None], table: ScoringTable, task: str = "2020"
) -> tuple[np.ndarray, np.ndarray]:
    """Turn parsed output rows into ``(binary (n, c) bool, scores (n, c) float64)``.

    A ``None`` row is an all-negative record. Columns whose codes map to the same scored class
    (equivalent codes, or a code listed twice) are merged: binary OR-ed, scores averaged while
    ignoring NaN; a class whose scores are all NaN, and any NaN left, becomes 0. (The 2021
    parser has already turned every non-finite score into 0.)
    """
    resolved = [None if row is None else resolve_output_row(row, table, task) for row in rows]
    return _merge_columns(resolved, len(table.classes))


def load_output_matrices(
    output_paths: list[str | os.PathLike],
    table: ScoringTable | None = None,
    strict: bool = False,
    on_malformed=None,
    task: str = "2020",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read many output CSVs into ``(binary, scores, malformed)``.

    A malformed file scores as all-negative; its message is appended to ``malformed`` and
    passed to ``on_malformed(message)`` if given. With ``strict=True`` the first malformed file
    raises ``MalformedOutputError`` instead.
    """
    table = table if table is not None else load_scoring_table()
    resolved: list[tuple[list[int], list[bool], list[float]] | None] = []
    malformed: list[str] = []
    for path in output_paths:
        try:
            row = read_output_file(path, task)
            try:
                resolved.append(resolve_output_row(row, table, task))
            except MalformedOutputError as exc:
                raise MalformedOutputError(f"{path}: {exc}") from None
        except MalformedOutputError as exc:
            if strict:
                raise
            malformed.append(str(exc))
            if on_malformed is not None:
                on_malformed(str(exc))
            resolved.append(None)
    binary, scores = _merge_columns(resolved, len(table.classes))
    return binary, scores, malformed


class MissingOutputError(FileNotFoundError):
    """Label records without an output file; ``records`` lists them."""

    def __init__(self, message: str, records: list[str]):
        super().__init__(message)
        self.records = records


def load_folders(
    label_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    table: ScoringTable | None = None,
    strict: bool = False,
    on_malformed=None,
    task: str = "2020",
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Read a label folder and an output folder into ``(records, labels, binary, scores,
    malformed)``, as the task's scorer reads them.

    Raises ``MissingOutputError`` naming the records without ``<record>.csv``, and
    ``MalformedOutputError`` for the first malformed file when ``strict``.
    """
    table = table if table is not None else load_scoring_table()
    records, headers, outputs, missing = find_record_files(label_dir, output_dir)
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise MissingOutputError(
            f"{len(missing)} record(s) have no output file in {output_dir}: {shown} "
            f"(expected e.g. {missing[0]}.csv)",
            missing,
        )
    labels = load_label_matrix(headers, table, task)
    binary, scores, malformed = load_output_matrices(outputs, table, strict, on_malformed, task)
    return records, labels, binary, scores, malformed


def evaluate_folders(
    label_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    weights_path: str | os.PathLike | None = None,
    normal_class: str = NORMAL_CLASS,
    strict: bool = False,
    task: str = "2020",
) -> EvaluationResult:
    """Score an output folder against a label folder (what the CLI prints), in one call.

    ``weights_path`` defaults to the task's shipped table.
    """
    table = load_task_table(task, weights_path)
    _, labels, binary, scores, _ = load_folders(label_dir, output_dir, table, strict, task=task)
    return evaluate_arrays(
        labels, binary, scores, table.classes, table.weights, normal_class, task=task
    )


# --------------------------------------------------------------------------------------------
# Metrics on arrays
# --------------------------------------------------------------------------------------------


def _check_arrays(labels, outputs, name="outputs") -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    outputs = np.asarray(outputs)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D (n_records, n_classes), got shape {labels.shape}")
    if outputs.shape != labels.shape:
        raise ValueError(f"{name} shape {outputs.shape} differs from labels {labels.shape}")
    return labels.astype(bool), outputs


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    if not np.any(~np.isnan(values)):
        return math.nan
    return float(np.nanmean(values))


def compute_accuracy(labels, binary) -> float:
    """Fraction of records whose binary output vector equals the label vector."""
    labels, binary = _check_arrays(labels, binary)
    if labels.shape[0] == 0:
        return math.nan
    return float(np.mean(np.all(labels == binary.astype(bool), axis=1)))


def _per_norm_sum(matrix: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Column sums of ``matrix[i] / norm[i]`` for integer ``norm``, deterministically.

    Records are grouped by their (small, integer) normaliser; each group's column counts are
    exact integers, so the result does not depend on record order or memory layout.
    """
    out = np.zeros(matrix.shape[1])
    for m in np.unique(norm):
        out += np.count_nonzero(matrix[norm == m], axis=0) / float(m)
    return out


def confusion_counts(labels, binary, per_label_norm: bool = False) -> tuple[np.ndarray, ...]:
    """Per-class ``(tp, fp, fn, tn)``.

    With ``per_label_norm`` each record counts ``1 / max(number of positive labels, 1)``
    (the normalisation of the 2020 F-beta and G-beta measures) instead of 1.
    """
    labels, binary = _check_arrays(labels, binary)
    binary = binary.astype(bool)
    parts = (labels & binary, ~labels & binary, labels & ~binary, ~labels & ~binary)
    if not per_label_norm:
        return tuple(np.count_nonzero(p, axis=0).astype(np.float64) for p in parts)
    norm = np.maximum(labels.sum(axis=1), 1)
    return tuple(_per_norm_sum(p, norm) for p in parts)


def compute_f_measure(labels, binary) -> tuple[float, np.ndarray]:
    """Macro and per-class F1 = 2TP / (2TP + FP + FN); NaN classes are left out of the mean."""
    tp, fp, fn, _ = confusion_counts(labels, binary)
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), np.nan)
    return _nanmean(f), f


def compute_beta_measures(labels, binary, beta: float = 2.0) -> tuple[float, float]:
    """Macro F-beta and G-beta of the 2020 unofficial phase.

    Each record contributes ``1 / max(number of positive labels, 1)`` to the per-class
    confusion matrices. F-beta = (1+b^2)TP / ((1+b^2)TP + FP + b^2 FN),
    G-beta = TP / (TP + FP + b FN); NaN classes are left out of the means.
    """
    tp, fp, fn, _ = confusion_counts(labels, binary, per_label_norm=True)
    b2 = beta**2
    f_den = (1 + b2) * tp + fp + b2 * fn
    g_den = tp + fp + beta * fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f_beta = np.where(f_den != 0, (1 + b2) * tp / np.where(f_den != 0, f_den, 1), np.nan)
        g_beta = np.where(g_den != 0, tp / np.where(g_den != 0, g_den, 1), np.nan)
    return _nanmean(f_beta), _nanmean(g_beta)


def auc_curve_points(labels_k, scores_k) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative ``(tp, fp)`` at each distinct score, highest first, with (0, 0) prepended.

    Equivalent to the official threshold loop: the point for threshold ``t`` counts every
    record whose score is ``>= t``, so tied scores enter together.
    """
    y = np.asarray(labels_k, dtype=bool)
    s = np.asarray(scores_k, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    y_sorted = y[order]
    tp = np.cumsum(y_sorted, dtype=np.int64)
    fp = np.cumsum(~y_sorted, dtype=np.int64)
    ends = np.ones(len(s_sorted), dtype=bool)
    ends[:-1] = s_sorted[1:] != s_sorted[:-1]
    tp_e = np.concatenate(([0], tp[ends]))
    fp_e = np.concatenate(([0], fp[ends]))
    return tp_e, fp_e


def compute_auc(labels, scores) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Macro and per-class AUROC and AUPRC as the 2020 scorer computes them.

    Thresholds are the distinct scores in descending order; AUROC is the trapezoidal area under
    TNR against TPR, AUPRC the sum of TPR steps times PPV. A class without positives gives NaN
    for both; a class without negatives gives NaN AUROC. Means ignore NaN classes.
    """
    labels, scores = _check_arrays(labels, scores, "scores")
    scores = np.nan_to_num(
        np.asarray(scores, dtype=np.float64), nan=0.0, posinf=np.inf, neginf=-np.inf
    )
    n, c = labels.shape
    auroc = np.full(c, np.nan)
    auprc = np.full(c, np.nan)
    if n == 0:
        return math.nan, math.nan, auroc, auprc
    for k in range(c):
        tp, fp = auc_curve_points(labels[:, k], scores[:, k])
        n_pos, n_neg = tp[-1], fp[-1]
        if n_pos == 0:
            continue  # TPR undefined: both NaN
        tpr = tp / n_pos
        dtpr = np.diff(tpr)
        with np.errstate(invalid="ignore", divide="ignore"):
            ppv = tp[1:] / (tp[1:] + fp[1:])
        auprc[k] = float(np.sum(dtpr * ppv))
        if n_neg > 0:
            tnr = (n_neg - fp) / n_neg
            auroc[k] = float(np.sum(0.5 * dtpr * (tnr[1:] + tnr[:-1])))
    return _nanmean(auroc), _nanmean(auprc), auroc, auprc


def compute_modified_confusion_matrix(labels, outputs) -> np.ndarray:
    """Multi-label confusion matrix ``A[j, k]`` (rows labels, columns outputs).

    Each record adds ``1 / max(|labels OR outputs|, 1)`` for every (positive label j, positive
    output k) pair. Computed as one exact integer matrix product per normaliser value, so the
    result is deterministic (independent of record order and BLAS).
    """
    labels, outputs = _check_arrays(labels, outputs)
    outputs = outputs.astype(bool)
    c = labels.shape[1]
    norm = np.maximum(np.count_nonzero(labels | outputs, axis=1), 1)
    a = np.zeros((c, c))
    for m in np.unique(norm):
        rows = norm == m
        counts = labels[rows].T.astype(np.int64) @ outputs[rows].astype(np.int64)
        a += counts / float(m)
    return a


def _normal_index(classes, normal_class) -> int:
    try:
        return list(classes).index(normal_class)
    except ValueError:
        raise ValueError(f"normal class {normal_class} is not one of the scored classes") from None


def challenge_scores(weights, labels, binary, normal_index: int) -> tuple[float, float, float]:
    """Return ``(observed, correct, inactive)`` unnormalised challenge scores."""
    labels, binary = _check_arrays(labels, binary)
    weights = np.asarray(weights, dtype=np.float64)
    observed = np.nansum(weights * compute_modified_confusion_matrix(labels, binary))
    correct = np.nansum(weights * compute_modified_confusion_matrix(labels, labels))
    inactive_out = np.zeros_like(labels)
    inactive_out[:, normal_index] = True
    inactive = np.nansum(weights * compute_modified_confusion_matrix(labels, inactive_out))
    return float(observed), float(correct), float(inactive)


def compute_challenge_metric(
    weights, labels, binary, classes, normal_class: str = NORMAL_CLASS
) -> float:
    """Normalised challenge metric (observed - inactive) / (correct - inactive).

    "inactive" outputs only the normal class, "correct" outputs the labels. 0.0 when
    correct == inactive (every record labelled sinus rhythm only), as the official 2020 scorer.
    """
    observed, correct, inactive = challenge_scores(
        weights, labels, binary, _normal_index(classes, normal_class)
    )
    if correct == inactive:
        return 0.0
    return (observed - inactive) / (correct - inactive)


def record_challenge_contributions(
    weights, labels, binary, normal_index: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-record ``(observed, correct, inactive)`` contributions to the challenge scores.

    Their column sums equal ``challenge_scores`` (up to rounding); used for the bootstrap and
    the per-source breakdown.
    """
    labels, binary = _check_arrays(labels, binary)
    binary = binary.astype(bool)
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0)
    lw = labels.astype(np.float64) @ w  # (n, c): sum over true j of W[j, k]
    inactive_out = np.zeros_like(labels)
    inactive_out[:, normal_index] = True
    return tuple(record_observed(lw, labels, out) for out in (binary, labels, inactive_out))


def record_observed(label_weights, labels, binary) -> np.ndarray:
    """Each record's contribution to the observed challenge score of the outputs ``binary``
    (n, c bool): ``label_weights`` (``labels @ W``, NaN weights read as 0) summed over its
    outputs, over the size of the union of its labels and outputs (at least 1)."""
    norm = np.maximum(np.sum(labels | binary, axis=1), 1)
    return np.sum(label_weights * binary, axis=1) / norm


def evaluate_arrays(
    labels,
    binary,
    scores,
    classes,
    weights,
    normal_class: str = NORMAL_CLASS,
    task: str = "2020",
) -> EvaluationResult:
    """Compute every score of the task from arrays.

    ``labels`` and ``binary`` are ``(n, c)`` bool-like, ``scores`` ``(n, c)`` float (NaN read as
    0; infinities too in 2021), ``classes`` the c class codes (equivalents already merged),
    ``weights`` ``(c, c)``. F-beta and G-beta are computed for both years; only 2020 reports
    them (``EvaluationResult.overall``).
    """
    labels, binary = _check_arrays(labels, binary)
    binary = binary.astype(bool)
    _, scores = _check_arrays(labels, scores, "scores")
    infinity = 0.0 if check_task(task) == "2021" else np.inf
    scores = np.nan_to_num(
        np.asarray(scores, dtype=np.float64), nan=0.0, posinf=infinity, neginf=-infinity
    )
    classes = [str(x) for x in classes]
    weights = np.asarray(weights, dtype=np.float64)
    if len(classes) != labels.shape[1] or weights.shape != (len(classes), len(classes)):
        raise ValueError(
            f"{len(classes)} classes and weights {weights.shape} do not fit arrays with "
            f"{labels.shape[1]} columns"
        )
    auroc, auprc, auroc_k, auprc_k = compute_auc(labels, scores)
    f_measure, f_k = compute_f_measure(labels, binary)
    f_beta, g_beta = compute_beta_measures(labels, binary, beta=2)
    return EvaluationResult(
        classes=classes,
        auroc=auroc,
        auprc=auprc,
        accuracy=compute_accuracy(labels, binary),
        f_measure=f_measure,
        f_beta_measure=f_beta,
        g_beta_measure=g_beta,
        challenge_metric=compute_challenge_metric(weights, labels, binary, classes, normal_class),
        auroc_classes=auroc_k,
        auprc_classes=auprc_k,
        f_measure_classes=f_k,
        n_records=int(labels.shape[0]),
        n_positives=labels.sum(axis=0).astype(np.int64),
        task=task,
    )


# --------------------------------------------------------------------------------------------
# Beyond the official scorer
# --------------------------------------------------------------------------------------------


def bootstrap_challenge_metric(
    weights,
    labels,
    binary,
    classes,
    normal_class: str = NORMAL_CLASS,
    n_boot: int = 1000,
    seed: int | None = 0,
    chunk: int = 64,
) -> np.ndarray:
    """Challenge metric of ``n_boot`` bootstrap resamples of the records (with replacement).

    Resamples where correct == inactive give 0.0, as the metric itself. Returns ``n_boot`` values.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    obs, cor, ina = record_challenge_contributions(
        weights, labels, binary, _normal_index(classes, normal_class)
    )
    contrib = np.stack([obs, cor, ina], axis=1)  # (n, 3)
    n = contrib.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        sums = contrib[idx].sum(axis=1)  # (b, 3)
        den = sums[:, 1] - sums[:, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:stop] = np.where(den != 0, (sums[:, 0] - sums[:, 2]) / den, 0.0)
    return out


def paired_bootstrap_gain(
    weights, labels, binary, baseline, classes, n_boot: int = 1000, seed: int | None = 0
) -> np.ndarray:
    """Bootstrap draws of the challenge metric of ``binary`` less that of ``baseline``, both
    scored on the same ``n_boot`` resamples of the records (the same seed and records draw
    the same resamples)."""
    draws = [
        bootstrap_challenge_metric(weights, labels, b, classes, NORMAL_CLASS, n_boot, seed=seed)
        for b in (binary, baseline)
    ]
    return draws[0] - draws[1]


def bootstrap_ci(values, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap values (NaN values ignored)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


def record_source(record: str, prefixes=SOURCE_PREFIXES) -> str:
    """The source of a record name, for the scorer and the kit alike: the longest of
    ``prefixes`` that the name starts with followed by a digit (``HR00001`` -> ``HR``,
    ``LU0001`` -> ``LU``), else ``"other"`` (``SYN00001``, ``LUX``)."""
    best = ""
    for p in prefixes:
        number = record[len(p) : len(p) + 1]
        if record.startswith(p) and number.isascii() and number.isdigit() and len(p) > len(best):
            best = p
    return best or "other"


def per_source_scores(
    records,
    labels,
    binary,
    classes,
    weights,
    normal_class: str = NORMAL_CLASS,
    prefixes=SOURCE_PREFIXES,
) -> list[dict]:
    """Challenge metric, macro F-measure and record count of each record source.

    Returns one dict per source present (``source``, ``records``, ``challenge_metric``,
    ``f_measure``), in the order of ``prefixes`` then ``"other"``.
    """
    labels, binary = _check_arrays(labels, binary)
    sources = np.array([record_source(r, prefixes) for r in records])
    out = []
    for src in [*prefixes, "other"]:
        mask = sources == src
        if not mask.any():
            continue
        out.append(
            {
                "source": src,
                "records": int(mask.sum()),
                "challenge_metric": compute_challenge_metric(
                    weights, labels[mask], binary[mask], classes, normal_class
                ),
                "f_measure": compute_f_measure(labels[mask], binary[mask])[0],
            }
        )
    return out
