"""Evaluation plots: per-class F-measure and AUROC bars, ROC curves per class, an HTML index.

``write_plots(labels, binary, scores, classes, abbreviations, out_dir)`` writes

- ``f_measure.png`` and ``auroc.png``: one bar per class, classes ordered by prevalence (most
  positives first), the number of positive records in each tick label, the macro mean as a
  line; classes without positive records are marked "n/a";
- ``roc.png``: small multiples, one ROC curve per class with its AUROC (and the operating
  point of the binary outputs) in the title;
- ``index.html`` linking the three pictures (relative links).

Every number comes from :mod:`evaluation.metrics` (``compute_f_measure``, ``compute_auc``,
``auc_curve_points``), so the curves use the scorer's own threshold definition (every distinct
score, ties entering together) and the areas are the ones ``evaluate.py`` prints. Matplotlib
is used through ``Figure`` + ``FigureCanvasAgg`` (no pyplot, no global backend switch). Like
the rest of ``evaluation/``, nothing here imports from ``team_code``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from evaluation import metrics

__all__ = ["roc_points", "class_order", "write_plots"]


def roc_points(labels_k, scores_k) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr)`` of one class from :func:`metrics.auc_curve_points`.

    The first point is (0, 0), one point follows per distinct score (highest first), the last
    is (1, 1). The trapezoidal area under these points is the AUROC of
    :func:`metrics.compute_auc`. Raises ValueError when the class has no positives or no
    negatives (the curve is undefined).
    """
    s = np.nan_to_num(np.asarray(scores_k, dtype=np.float64), nan=0.0)
    tp, fp = metrics.auc_curve_points(labels_k, s)
    if tp[-1] == 0 or fp[-1] == 0:
        raise ValueError(f"ROC undefined: {int(tp[-1])} positives and {int(fp[-1])} negatives")
    return fp / fp[-1], tp / tp[-1]


def class_order(n_positives) -> np.ndarray:
    """Column indices ordered by prevalence, most positives first (ties keep column order)."""
    return np.argsort(-np.asarray(n_positives), kind="stable")


def _abbreviations(classes: Sequence[str], abbreviations) -> list[str]:
    if abbreviations is None:
        return [str(c) for c in classes]
    if isinstance(abbreviations, Mapping):
        return [str(abbreviations.get(c, c) or c) for c in classes]
    names = [str(a) for a in abbreviations]
    if len(names) != len(classes):
        raise ValueError(
            f"abbreviations: {len(names)} names for {len(classes)} classes (give one per class "
            "or a code -> abbreviation mapping)"
        )
    return names


def _figure(width_in: float, height_in: float, dpi: int = 100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _bars(path: Path, values, n_pos, names, order, metric: str, macro: float, chance=None):
    """One bar chart of a per-class metric in ``order``; n/a for classes without positives."""
    fig = _figure(max(8.0, 0.5 * len(order) + 2.0), 4.2)
    ax = fig.add_axes((0.07, 0.2, 0.91, 0.7))
    x = np.arange(len(order))
    v = np.asarray(values, dtype=np.float64)[order]
    pos = np.asarray(n_pos)[order]
    ok = (pos > 0) & np.isfinite(v)
    ax.bar(x[ok], v[ok], width=0.7, color="#3b6ea5", zorder=2)
    for xi, vi, has, fine in zip(x, v, pos > 0, ok):
        if fine:
            ax.text(xi, vi + 0.015, f"{vi:.2f}", ha="center", va="bottom", fontsize=7)
        else:
            reason = "n/a" if not has else "n/a*"
            ax.text(xi, 0.03, reason, ha="center", va="bottom", fontsize=7.5, color="#888888")
    if math.isfinite(macro):
        ax.axhline(macro, color="#c0392b", lw=1, ls="--", zorder=3)
        ax.text(
            len(order) - 0.5,
            macro + 0.015,
            f"macro {macro:.3f}",
            color="#c0392b",
            ha="right",
            va="bottom",
            fontsize=8,
        )
    if chance is not None:
        ax.axhline(chance, color="#888888", lw=0.8, ls=":", zorder=1)
    ax.set_xticks(x, [f"{names[j]}\n({int(n_pos[j])})" for j in order], fontsize=7.5)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel(metric)
    ax.grid(axis="y", color="#e3e3e3", lw=0.6, zorder=0)
    ax.set_title(
        f"Per-class {metric} (classes by prevalence; positive records in brackets)",
        fontsize=10,
        loc="left",
    )
    fig.text(
        0.07,
        0.035,
        "n/a: no positive records for the class"
        + ("; n/a*: metric undefined" if np.any((pos > 0) & ~np.isfinite(v)) else ""),
        fontsize=7.5,
        color="#666666",
    )
    fig.savefig(path, format="png")
    return path


def _rocs(path: Path, labels, binary, scores, auroc, n_pos, names, order) -> Path:
    n = len(order)
    cols = min(6, max(1, n))
    rows = max(1, math.ceil(n / cols))
    fig = _figure(2.35 * cols, 2.45 * rows + 0.4)
    fig.suptitle(
        "ROC per class (thresholds at every distinct score; dot: the binary outputs)",
        fontsize=10,
        x=0.01,
        ha="left",
    )
    gs = fig.add_gridspec(
        rows, cols, left=0.05, right=0.99, bottom=0.05, top=0.92, hspace=0.55, wspace=0.35
    )
    n_rec = labels.shape[0]
    for k, j in enumerate(order):
        ax = fig.add_subplot(gs[k // cols, k % cols])
        y = labels[:, j]
        title = f"{names[j]} ({int(n_pos[j])}/{n_rec})"
        try:
            fpr, tpr = roc_points(y, scores[:, j])
        except ValueError as error:
            ax.set_title(title, fontsize=8)
            ax.text(
                0.5,
                0.5,
                "n/a\n" + str(error).removeprefix("ROC undefined: "),
                ha="center",
                va="center",
                fontsize=7,
                color="#888888",
                transform=ax.transAxes,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.plot([0, 1], [0, 1], color="#aaaaaa", lw=0.7, ls=":")
        ax.plot(fpr, tpr, color="#3b6ea5", lw=1.2)
        b = binary[:, j]
        ax.plot([np.mean(b[~y])], [np.mean(b[y])], "o", color="#c0392b", ms=4)
        ax.set_title(f"{title} AUROC {auroc[j]:.3f}", fontsize=8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6, length=2, pad=1)
        if k % cols == 0:
            ax.set_ylabel("TPR", fontsize=7, labelpad=1)
        if k // cols == rows - 1 or k + cols >= n:
            ax.set_xlabel("FPR", fontsize=7, labelpad=1)
    fig.savefig(path, format="png")
    return path


def write_plots(labels, binary, scores, classes, abbreviations, out_dir) -> list[Path]:
    """Write the evaluation pictures and their index (see the module docstring).

    Args:
        labels: bool (n_records, n_classes) truth.
        binary: bool (n_records, n_classes) binary outputs.
        scores: float (n_records, n_classes) scores.
        classes: the class codes of the columns.
        abbreviations: a code -> abbreviation mapping (``metrics.load_abbreviations()``), one
            name per class, or None (codes are shown).
        out_dir: output folder (created).

    Returns:
        The paths written: ``f_measure.png``, ``auroc.png``, ``roc.png``, ``index.html``.

    Raises:
        ValueError: when the arrays and ``classes`` disagree in shape.
    """
    classes = [str(c) for c in classes]
    labels = np.asarray(labels).astype(bool)
    binary = np.asarray(binary).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[1] != len(classes):
        raise ValueError(f"labels must be (n_records, {len(classes)}); got {labels.shape}")
    for name, array in (("binary", binary), ("scores", scores)):
        if array.shape != labels.shape:
            raise ValueError(
                f"{name} must have the shape of labels {labels.shape}; got {array.shape}"
            )
    names = _abbreviations(classes, abbreviations)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_pos = labels.sum(axis=0)
    order = class_order(n_pos)
    macro_f, f_k = metrics.compute_f_measure(labels, binary)
    macro_auroc, _, auroc_k, _ = metrics.compute_auc(labels, scores)
    paths = [
        _bars(out / "f_measure.png", f_k, n_pos, names, order, "F-measure", macro_f),
        _bars(out / "auroc.png", auroc_k, n_pos, names, order, "AUROC", macro_auroc, 0.5),
        _rocs(out / "roc.png", labels, binary, scores, auroc_k, n_pos, names, order),
    ]
    rows = "".join(
        f"<tr><td>{html.escape(names[j])}</td><td>{html.escape(classes[j])}</td>"
        f"<td>{int(n_pos[j])}</td><td>{_num(f_k[j])}</td><td>{_num(auroc_k[j])}</td></tr>"
        for j in order
    )
    figures = "".join(
        f"<h2>{html.escape(p.stem)}</h2><p><a href='{html.escape(p.name, quote=True)}'>"
        f"<img src='{html.escape(p.name, quote=True)}' style='max-width:100%'></a></p>"
        for p in paths
    )
    index = out / "index.html"
    index.write_text(
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>Evaluation plots"
        "</title><style>body{font-family:sans-serif;margin:1em}td,th{padding:2px 8px;"
        "text-align:right}</style></head><body><h1>Evaluation plots</h1>"
        f"<p>{labels.shape[0]} records, {len(classes)} classes; macro F-measure "
        f"{_num(macro_f)}, macro AUROC {_num(macro_auroc)}.</p>{figures}"
        "<h2>Per class</h2><table><tr><th>class</th><th>code</th><th>positives</th>"
        f"<th>F-measure</th><th>AUROC</th></tr>{rows}</table></body></html>\n",
        encoding="utf-8",
    )
    return [*paths, index]


def _num(x: float) -> str:
    return "n/a" if not math.isfinite(float(x)) else f"{float(x):.3f}"
