#!/usr/bin/env python
"""Score Challenge 2020 or 2021 outputs against label headers.

    python evaluation/evaluate.py LABELS OUTPUTS [scores.csv] [class_scores.csv]
    python evaluation/evaluate.py LABELS OUTPUTS [...] --task 2021
    python -m evaluation.evaluate LABELS OUTPUTS [...] [--bootstrap N --seed S]
        [--by-source FILE] [--strict] [--weights PATH]

LABELS holds WFDB headers ``<record>.hea`` (only the ``#Dx`` lines are read), OUTPUTS one
``<record>.csv`` per header. ``--task`` picks the Challenge year: its shipped scoring table
(2020: 24 classes, 2021: 26) and how its official scorer reads the files (see
``evaluation/metrics.py``). ``--weights`` replaces the table; a table with ``a|b`` header
cells is scored as 2021 unless ``--task`` says otherwise. Prints the overall and per-class
scores; writes ``scores.csv`` (2020: AUROC, AUPRC, Accuracy, F-measure, Fbeta-measure,
Gbeta-measure, Challenge metric; 2021: the same without Fbeta and Gbeta) and
``class_scores.csv`` (per-class AUROC, AUPRC, F-measure; 2021 names a class by all its codes,
``733534002|164909002``) at full precision.

Exit codes: 0 success, 1 data error (missing output file, malformed output with --strict,
no headers, bad weights table), 2 usage error.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (``python evaluation/evaluate.py``): Python puts this folder, not the
    # repository root, on the import path. The root goes first only when the `evaluation`
    # package found is not the one beside this file (uninstalled, or another install), so a
    # checkout's script scores with that checkout's code, as train_model.py and run_model.py do.
    import importlib.util

    _found = importlib.util.find_spec("evaluation")
    _here = Path(__file__).resolve().parent
    if _found is None or _found.origin is None or Path(_found.origin).resolve().parent != _here:
        sys.path.insert(0, str(_here.parent))

from evaluation import metrics

#: The 2020 scores.csv columns (``metrics.SCORE_COLUMNS`` has each year's).
SCORE_COLUMNS = metrics.SCORE_COLUMNS["2020"]


def get_parser(prog: str = "evaluate.py") -> argparse.ArgumentParser:
    """Return the command-line parser (``prog`` names the command in usage lines)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Score PhysioNet/CinC Challenge 2020 or 2021 outputs (official semantics).",
    )
    p.add_argument("labels", type=Path, help="folder of WFDB headers <record>.hea with #Dx lines")
    p.add_argument("outputs", type=Path, help="folder with one <record>.csv per header")
    p.add_argument("scores_csv", type=Path, nargs="?", help="write overall scores here")
    p.add_argument("class_scores_csv", type=Path, nargs="?", help="write per-class scores here")
    p.add_argument(
        "--task",
        choices=metrics.TASKS,
        default=None,
        help="Challenge year: its scoring table and file reading (default 2020, or 2021 for a "
        "--weights table with a|b classes)",
    )
    p.add_argument(
        "--weights", type=Path, default=None, help="weights.csv (default: the task's table)"
    )
    p.add_argument(
        "--normal-class",
        default=metrics.NORMAL_CLASS,
        help="SNOMED CT code of the inactive reference class (default: %(default)s)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="a malformed output file is an error instead of an all-negative record",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="N bootstrap resamples of the records for a 95%% CI of the challenge metric",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    p.add_argument(
        "--by-source",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the per-source breakdown (record-name prefixes) to this CSV",
    )
    p.add_argument(
        "--plots",
        type=Path,
        metavar="DIR",
        help="draw per-class F-measure and AUROC bars and ROC curves (PNG + index.html) in DIR",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but warnings and errors")
    return p


def _fmt(x: float, digits: int = 4) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _write_scores(path: Path, result: metrics.EvaluationResult) -> None:
    values = result.overall()
    path.write_text(
        ",".join(values) + "\n" + ",".join(repr(float(v)) for v in values.values()) + "\n",
        encoding="utf-8",
    )


def _write_class_scores(path: Path, result: metrics.EvaluationResult, names: list[str]) -> None:
    rows = [
        "Classes," + ",".join(names),
        "AUROC," + ",".join(repr(float(x)) for x in result.auroc_classes),
        "AUPRC," + ",".join(repr(float(x)) for x in result.auprc_classes),
        "F-measure," + ",".join(repr(float(x)) for x in result.f_measure_classes),
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _write_by_source(path: Path, rows: list[dict]) -> None:
    lines = ["Source,Records,Challenge metric,F-measure"]
    for r in rows:
        lines.append(
            f"{r['source']},{r['records']},{float(r['challenge_metric'])!r},"
            f"{float(r['f_measure'])!r}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _print_report(result, abbreviations, by_source, ci, n_boot, seed, malformed) -> None:
    print(f"Records: {result.n_records}   malformed outputs: {len(malformed)}")
    print()
    width = max(len(k) for k in result.overall())
    for key, value in result.overall().items():
        print(f"{key:<{width}}  {_fmt(value)}")
    if ci is not None:
        print(
            f"{'':<{width}}  95% CI [{_fmt(ci[0])}, {_fmt(ci[1])}] "
            f"(bootstrap {n_boot} resamples, seed {seed})"
        )
    print()
    print(f"{'Class':<10} {'Abbr':<11} {'Pos':>6} {'AUROC':>7} {'AUPRC':>7} {'F1':>7}")
    for j, code in enumerate(result.classes):
        print(
            f"{code:<10} {abbreviations.get(code, ''):<11} {int(result.n_positives[j]):>6} "
            f"{_fmt(result.auroc_classes[j], 3):>7} {_fmt(result.auprc_classes[j], 3):>7} "
            f"{_fmt(result.f_measure_classes[j], 3):>7}"
        )
    print()
    print(f"{'Source':<7} {'Records':>8} {'Challenge':>10} {'F1':>7}")
    for r in by_source:
        print(
            f"{r['source']:<7} {r['records']:>8} {_fmt(r['challenge_metric']):>10} "
            f"{_fmt(r['f_measure']):>7}"
        )


def main(argv: list[str] | None = None, prog: str = "evaluate.py") -> int:
    """Run the scorer; returns the process exit code (``ecg-kit evaluate`` passes its name)."""
    args = get_parser(prog).parse_args(argv)

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 1

    if args.bootstrap < 0:
        return fail(f"--bootstrap must be >= 0, got {args.bootstrap}")
    try:
        table = metrics.load_task_table(args.task or "2020", args.weights)
    except (OSError, ValueError) as exc:
        return fail(f"cannot load weights: {exc}")
    task = args.task or table.layout
    classes, weights = list(table.classes), table.weights
    if args.normal_class not in classes:
        return fail(f"normal class {args.normal_class} is not a scored class of the weights")

    def warn(message: str) -> None:
        print(f"warning: malformed output, scored as all-negative: {message}", file=sys.stderr)

    try:
        records, labels, binary, scores, malformed = metrics.load_folders(
            args.labels, args.outputs, table, strict=args.strict, on_malformed=warn, task=task
        )
    except metrics.MalformedOutputError as exc:
        return fail(f"malformed output file (--strict): {exc}")
    except OSError as exc:  # missing outputs, missing folders, unreadable headers
        return fail(str(exc))

    result = metrics.evaluate_arrays(
        labels, binary, scores, classes, weights, args.normal_class, task=task
    )
    by_source = metrics.per_source_scores(
        records, labels, binary, classes, weights, args.normal_class
    )
    ci = None
    if args.bootstrap:
        values = metrics.bootstrap_challenge_metric(
            weights, labels, binary, classes, args.normal_class, args.bootstrap, args.seed
        )
        ci = metrics.bootstrap_ci(values)

    mapping = (args.weights or metrics.task_weights_path(task)).parent / "dx_mapping_scored.csv"
    abbreviations = dict(
        zip(classes, metrics.class_abbreviations(table, metrics.load_abbreviations(mapping)))
    )
    if not args.quiet:
        print(f"Task: Challenge {task}, {len(classes)} scored classes")
        _print_report(
            result,
            abbreviations,
            by_source,
            ci,
            args.bootstrap,
            args.seed,
            malformed,
        )
    try:
        if args.scores_csv is not None:
            _write_scores(args.scores_csv, result)
        if args.class_scores_csv is not None:
            names = list(table.names) if task == "2021" else list(result.classes)
            _write_class_scores(args.class_scores_csv, result, names)
        if args.by_source is not None:
            _write_by_source(args.by_source, by_source)
        if args.plots is not None:
            from evaluation.plots import write_plots

            write_plots(labels, binary, scores, classes, abbreviations, args.plots)
    except OSError as exc:
        return fail(f"cannot write results: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
