"""Nested choice of a learned-delineator post-processing setting on LUDB's per-lead marks.

The ``cnn-5fold`` models of ``benchmarks/delineation.py`` delineate every LUDB record with
the model that never saw it. A post-processing setting is then chosen on those out-of-fold
predictions; choosing it on all records and reporting the same records would be in-sample.
Here the choice is nested in the same folds: for each fold, the setting with the smallest
objective on the other folds' records is applied to the fold's records, and the held-out
folds' errors are pooled into the nested row. The objective is the per-lead targets' sum of
``SD / target`` over P onset and offset (15 ms), QRS onset and offset (10 ms) and T offset
(25 ms).

The setting is ``PostConfig.lead_shrink`` (each lead's onsets and offsets moved that fraction
of the way to the leads' median; the global boundaries are unchanged). Usage::

    python -m benchmarks.delineator_nested [--ludb DIR] [--cnn-folds DIR] [--shrink 0 0.25 ...]

It prints, per setting, the per-lead rows on all records (in-sample for the choice), the
setting each fold chose, the nested rows, and a 95 % bootstrap interval of each nested SD
over records (``--bootstrap N``). One torch thread.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import delineation as bench

#: The per-lead SD targets of the objective (ms).
TARGETS = {
    "P onset": 15.0,
    "P offset": 15.0,
    "QRS onset": 10.0,
    "QRS offset": 10.0,
    "T offset": 25.0,
}
SHRINKS = (0.0, 0.25, 0.5, 0.75)


def merge(tallies: Sequence[bench.Tally]) -> bench.Tally:
    """One tally pooling the boundary outcomes of ``tallies``."""
    out = bench.Tally()
    for t in tallies:
        for name in out.errors:
            out.errors[name].extend(t.errors[name])
            out.record_sd[name].extend(t.record_sd[name])
            out.tp[name] += t.tp[name]
            out.fn[name] += t.fn[name]
            out.fp[name] += t.fp[name]
            out.given[name] = out.given[name] or t.given[name]
    return out


def objective(tally: bench.Tally) -> float:
    """Sum over the per-lead targets of the errors' SD divided by the target."""
    return float(
        sum(np.std(tally.errors[name], ddof=1) / target for name, target in TARGETS.items())
    )


def record_tallies(ludb: Path, records: Sequence[str], shrink: float) -> dict[str, bench.Tally]:
    """Each record's per-lead tally of ``cnn-5fold`` with ``lead_shrink=shrink``."""
    from team_code.nn.delineator import PostConfig

    bench.CNN["post"] = PostConfig(lead_shrink=shrink)
    out = {}
    for rec in records:
        case = bench.load_ludb(ludb, rec, "per-lead")
        tallies, _ = bench.evaluate([case], ["cnn-5fold"], ["cse"], best=False)
        out[rec] = tallies.get("cnn-5fold", bench.Tally())
    return out


def nested_records(per: dict[float, dict[str, bench.Tally]], folds: Sequence[Sequence[str]]):
    """``(each held-out record's tally under its fold's setting, the setting each fold
    chose)``: each fold takes the setting with the smallest objective on the other folds'
    records."""
    held_out, chosen = [], []
    for fold in folds:
        others = [r for f in folds if f is not fold for r in f]
        scores = {w: objective(merge([t[r] for r in others])) for w, t in per.items()}
        best = min(scores, key=lambda w: (scores[w], w))  # ties: the smaller shrink
        chosen.append(best)
        held_out.extend(per[best][r] for r in fold)
    return held_out, chosen


def sd_intervals(
    tallies: Sequence[bench.Tally], n_boot: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95 % bootstrap interval of each boundary's error SD, resampling records (each record's
    matched errors drawn together: a record's beats and leads are not independent)."""
    return {
        name: bench.bootstrap_sd([t.errors[name] for t in tallies], n_boot, seed)
        for name in TARGETS
    }


def _row(label: str, tally: bench.Tally) -> str:
    cells = []
    for name in TARGETS:
        e = np.asarray(tally.errors[name])
        tp, fn, fp = tally.tp[name], tally.fn[name], tally.fp[name]
        f1 = 200 * tp / (2 * tp + fn + fp) if tp else float("nan")
        cells.append(f"{e.mean():+.1f} ± {np.std(e, ddof=1):.1f} ({f1:.2f})")
    return f"| {label} | " + " | ".join(cells) + f" | {objective(tally):.3f} |"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ludb", type=Path, default=None, help="LUDB folder")
    p.add_argument("--cnn-folds", type=Path, default=bench.CNN_FOLDS)
    p.add_argument("--shrink", type=float, nargs="+", default=list(SHRINKS))
    p.add_argument("--records", nargs="+", default=None, help="LUDB records (default: the folds')")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="record resamples of the nested row's SD intervals (0: none)",
    )
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    ludb = args.ludb or bench.default_dir("ludb")
    bench.CNN.update(folds=args.cnn_folds)
    index = bench._cnn_fold_index(args.cnn_folds)
    records = set(args.records or bench._records(ludb))
    folds = [[r for r in held if r in records] for held in index.values()]
    folds = [f for f in folds if f]
    if len(folds) < 2:
        print(
            "error: the fold models hold out fewer than two folds of these records", file=sys.stderr
        )
        return 2
    every = [r for f in folds for r in f]
    per = {w: record_tallies(ludb, every, w) for w in args.shrink}
    print(
        f"LUDB per lead, {len(every)} records in {len(folds)} folds (cnn-5fold, {args.cnn_folds})"
    )
    print("mean ± SD ms (F1 %) per boundary; objective: sum of SD / target\n")
    print("| setting | P onset | P offset | QRS onset | QRS offset | T offset | objective |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for w, t in per.items():
        print(_row(f"lead_shrink {w:g}, all records (in-sample for the choice)", merge(t.values())))
    held_out, chosen = nested_records(per, folds)
    print(_row("nested choice", merge(held_out)))
    print("\nchosen per fold: " + ", ".join(f"{w:g}" for w in chosen))
    if args.bootstrap:
        ci = sd_intervals(held_out, args.bootstrap)
        print(
            f"nested SD, 95 % interval over {args.bootstrap} record resamples: "
            + "; ".join(
                f"{name} [{lo:.1f}, {hi:.1f}] (target {TARGETS[name]:g})"
                for name, (lo, hi) in ci.items()
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
