#!/usr/bin/env python
"""The kit on the shared records of six sources, under two protocols, with bootstrap intervals.

    python -m benchmarks.challenge [--data DIR ...] [--protocols loso,kfold] [--folds 5]
        [--members auto|rules,parallel_cnn,...] [--preset cpu] [--beat-data DIR]
        [--set NAME.OPT=V ...] [--json FILE]

``--data`` (repeatable) defaults to ``../shared/data/challenge`` and
``../shared/data/ludb_challenge``: 331 records of six sources, A = CPSC, E = Georgia,
HR = PTB-XL, Q = CPSC-Extra, S = PTB and LU = LUDB (Lobachevsky University), a hospital none
of the Challenge sources comes from.

For every outer split the hybrid is trained on the training part (which trains its members on
inner folds for its out-of-fold fusion, then refits them on the whole training part); the
test part is then scored by the hybrid, by each of its members (their own thresholds), and by
``prevalence`` trained on the same training part. Predictions of all outer test parts are
pooled, and each method gets the challenge metric and macro F-measure with bootstrap 95%
intervals, the per-class F-measure, and the median inference seconds per record; then, per
source, the challenge metric of every method beside ``prevalence`` (the floor), and per class
and source the predicted / labelled / both counts and the F-measure.

Protocols:
- ``loso`` (the one that decides design choices): leave one source out, train on the other
  five, score the sixth: the score on a hospital the models have not seen;
- ``kfold``: k folds grouped so that identical signals stay on one side (cv.grouped_kfold).

The deep engines take the options of ``--preset`` (``cpu`` by default: sized for a 2-core
CPU, :mod:`team_code.presets`); ``--set`` wins over the preset. Many classes have fewer than
five positives: the tables print the counts, and the intervals are wide.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from evaluation import metrics
from team_code.classifiers import registry
from team_code.classifiers.cv import (
    grouped_kfold,
    leave_one_source_out,
    signal_digests,
    take,
)
from team_code.classifiers.hybrid import HybridClassifier
from team_code.context import Task
from team_code.data.labels import label_matrix, scored_classes
from team_code.data.records import RecordSet, find_records, record_source
from team_code.harness import parse_options
from team_code.options import configure

REPO = Path(__file__).resolve().parents[1]

#: The shared record folders of the six sources (``--data`` defaults).
DEFAULT_FOLDERS = ("challenge", "ludb_challenge")
#: Sources in table order; others follow alphabetically.
SOURCE_ORDER = ("A", "E", "HR", "Q", "S", "LU")
#: Classes whose per-source counts every table shows (issue 12's list), then any class with
#: 8 or more positives.
NAMED_CLASSES = ("Brady", "SB", "QAb", "TAb", "LPR", "LQT", "NSR", "LAD", "IRBBB", "LAnFB", "IAVB")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        help="a folder of records (repeatable); default: the shared challenge/ and "
        "ludb_challenge/ folders",
    )
    parser.add_argument("--protocols", default="loso,kfold")
    parser.add_argument("--folds", type=int, default=5, help="outer folds of the kfold protocol")
    parser.add_argument(
        "--inner-folds", type=int, default=None, help="the hybrid's own folds (preset's)"
    )
    parser.add_argument(
        "--members", default="auto", help="the hybrid's candidates (auto: every engine)"
    )
    parser.add_argument("--preset", default="cpu", help="option preset (team_code.presets)")
    parser.add_argument("--beat-data", default="", help="MIT-BIH folder: adds the beats member")
    parser.add_argument("--set", dest="options", action="append", default=[])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every number here")
    return parser


def _bootstrap(labels, binary, classes, weights, n_boot, seed):
    cm = metrics.bootstrap_challenge_metric(
        weights, labels, binary, classes, n_boot=n_boot, seed=seed
    )
    rng = np.random.default_rng(seed + 1)
    f = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, len(labels), len(labels))
        f[b] = metrics.compute_f_measure(labels[idx], binary[idx])[0]
    return metrics.bootstrap_ci(cm), metrics.bootstrap_ci(f)


def run_protocol(name, splits, records, truth, classes, args, hybrid_config):
    n, c = truth.shape
    # With members=auto, the engines each split keeps differ: the hybrid and the floor only.
    named = () if tuple(hybrid_config.members) == ("auto",) else hybrid_config.members
    methods = ["prevalence", *named, "hybrid"]
    scores = {m: np.full((n, c), np.nan) for m in methods}
    binary = {m: np.zeros((n, c), bool) for m in methods}
    seconds = {m: [] for m in methods}
    tested = np.zeros(n, bool)
    for label, train_index, test_index in splits:
        start = time.perf_counter()
        print(f"[{name}] {label}: train {len(train_index)}, test {len(test_index)}", flush=True)
        train = take(records, train_index)
        prevalence = registry.create("prevalence").fit(train, Task.of_classes(classes))
        hybrid = HybridClassifier(hybrid_config).fit(train, Task.of_classes(classes))
        fitted = {"prevalence": prevalence, **hybrid.members_, "hybrid": hybrid}
        fitted = {method: fitted[method] for method in methods}
        if not named:
            print(f"[{name}] {label}: hybrid keeps {', '.join(hybrid.members_)}", flush=True)
        loaded = [records[i] for i in test_index]  # read once; timing excludes file reading
        for method, model in fitted.items():
            tic = time.perf_counter()
            proba = model.predict_proba(loaded)
            seconds[method].append((time.perf_counter() - tic) / len(loaded))
            scores[method][test_index] = proba
            binary[method][test_index] = model.decide(proba)
        tested[test_index] = True
        print(f"[{name}] {label}: {time.perf_counter() - start:.0f} s", flush=True)
    weights = scored_classes().weights
    results = {}
    for method in methods:
        result = metrics.evaluate_arrays(
            truth[tested], binary[method][tested], scores[method][tested], classes, weights
        )
        ci_cm, ci_f = _bootstrap(
            truth[tested], binary[method][tested], classes, weights, args.bootstrap, args.seed
        )
        results[method] = {
            "challenge": result.challenge_metric,
            "challenge_ci": ci_cm,
            "f_measure": result.f_measure,
            "f_measure_ci": ci_f,
            "auroc": result.auroc,
            "f_classes": result.f_measure_classes.tolist(),
            "seconds_per_record": float(np.median(seconds[method])),
        }
    return results, int(tested.sum()), {m: binary[m] for m in methods}


def print_tables(protocol, results, n_tested, truth, classes):
    abbreviations = [scored_classes().abbreviation(c) for c in classes]
    print(f"\n## {protocol}: {n_tested} records scored (pooled test parts)\n")
    print(
        f"{'method':<14} {'challenge':>9} {'95% CI':>17} {'macro F':>8} {'95% CI':>17} "
        f"{'AUROC':>6} {'s/record':>9}"
    )
    for method, r in results.items():
        lo, hi = r["challenge_ci"]
        flo, fhi = r["f_measure_ci"]
        print(
            f"{method:<14} {r['challenge']:9.3f} [{lo:6.3f}, {hi:6.3f}]  {r['f_measure']:8.3f} "
            f"[{flo:6.3f}, {fhi:6.3f}] {r['auroc']:6.3f} {r['seconds_per_record']:9.4f}"
        )
    print(f"\nper-class F-measure ({protocol}; n = positives)\n")
    methods = list(results)
    print(f"{'class':<11} {'n':>3} " + " ".join(f"{m[:12]:>12}" for m in methods))
    counts = truth.sum(axis=0)
    for j, abbreviation in enumerate(abbreviations):
        if counts[j] == 0:
            continue
        cells = " ".join(f"{results[m]['f_classes'][j]:12.3f}" for m in methods)
        print(f"{abbreviation:<11} {counts[j]:3d} {cells}")


def load_pool(folders) -> RecordSet:
    """The records of several folders as one lazy set, sorted by folder then name. A folder
    that holds no record (missing, empty, or a typo among several) is an error that names
    it: a benchmark over sources would otherwise print its tables without that source."""
    folders = [Path(f) for f in folders]
    if not folders:
        raise FileNotFoundError("no record folder given")
    found = {folder: find_records(folder) for folder in folders}
    empty = [str(folder) for folder, paths in found.items() if not paths]
    if empty:
        raise FileNotFoundError(f"no records (.hea headers) in {', '.join(empty)}")
    return RecordSet([path for paths in found.values() for path in paths])


def default_folders() -> list[Path]:
    """The shared folders of the six sources (``$ECG_KIT_DATA`` or ``../shared/data``)."""
    import os

    root = Path(os.environ.get("ECG_KIT_DATA", REPO.parent / "shared" / "data"))
    return [root / name for name in DEFAULT_FOLDERS]


def ordered_sources(sources) -> list[str]:
    """The sources present, in table order."""
    present = set(sources)
    return [s for s in SOURCE_ORDER if s in present] + sorted(present - set(SOURCE_ORDER))


def _f(y: np.ndarray, p: np.ndarray) -> float:
    tp = int((y & p).sum())
    denom = 2 * tp + int((~y & p).sum()) + int((y & ~p).sum())
    return 2 * tp / denom if denom else float("nan")


def source_report(
    names, truth, binary: dict, classes, n_boot: int = 1000, seed: int = 0, scored=None
) -> dict:
    """Per source and pooled: challenge metric of each method (``prevalence`` is the floor)
    with bootstrap intervals; per class and source: predicted, labelled, both, F-measure.

    Args:
        names: record names (their prefixes give the sources).
        truth: (n, c) labels; binary: method -> (n, c) outputs, for the same records.
        scored: the scoring table's classes (``Task.scored``; default the 2020 table).
    """
    scored = scored_classes() if scored is None else scored
    weights = scored.weights
    sources = np.array([record_source(n) for n in names])
    order = ordered_sources(sources.tolist())
    rows = []
    for source in [*order, "pooled"]:
        mask = np.ones(len(names), bool) if source == "pooled" else sources == source
        row = {"source": source, "records": int(mask.sum()), "methods": {}}
        for method, b in binary.items():
            cm = metrics.compute_challenge_metric(weights, truth[mask], b[mask], list(classes))
            ci = metrics.bootstrap_ci(
                metrics.bootstrap_challenge_metric(
                    weights, truth[mask], b[mask], list(classes), n_boot=n_boot, seed=seed
                )
            )
            row["methods"][method] = {"challenge": cm, "challenge_ci": ci}
        rows.append(row)
    abbreviations = [scored.abbreviation(c) for c in classes]
    counts = truth.sum(axis=0)
    shown = [a for a in NAMED_CLASSES if a in abbreviations] + [
        a for j, a in enumerate(abbreviations) if counts[j] >= 8 and a not in NAMED_CLASSES
    ]
    per_class = {}
    for method, b in binary.items():
        per_class[method] = {}
        for a in shown:
            j = abbreviations.index(a)
            cells = {}
            for source in [*order, "pooled"]:
                mask = np.ones(len(names), bool) if source == "pooled" else sources == source
                y, p = truth[mask, j], b[mask, j]
                cells[source] = {
                    "predicted": int(p.sum()),
                    "labelled": int(y.sum()),
                    "both": int((y & p).sum()),
                    "f": _f(y, p),
                }
            per_class[method][a] = cells
    return {"sources": order, "rows": rows, "per_class": per_class}


def print_source_report(protocol: str, report: dict, methods=None) -> None:
    """Markdown tables of :func:`source_report`."""
    rows = report["rows"]
    methods = methods or list(rows[0]["methods"])
    print(f"\n### {protocol}: challenge metric per source [bootstrap 95% CI]\n")
    print("| source | records | " + " | ".join(methods) + " |")
    print("|---|---:|" + "---|" * len(methods))
    for row in rows:
        cells = []
        floor = row["methods"].get("prevalence", {}).get("challenge", float("nan"))
        for m in methods:
            r = row["methods"][m]
            lo, hi = r["challenge_ci"]
            mark = "" if m == "prevalence" or not r["challenge"] < floor else " (below floor)"
            cells.append(f"{r['challenge']:.3f} [{lo:.3f}, {hi:.3f}]{mark}")
        name = "**pooled**" if row["source"] == "pooled" else row["source"]
        print(f"| {name} | {row['records']} | " + " | ".join(cells) + " |")
    for m in methods:
        if m == "prevalence":
            continue
        print(
            f"\n{protocol}, {m}: per class and source, predicted / labelled / both (F-measure;"
            " - where nothing is predicted or labelled)\n"
        )
        sources = [*report["sources"], "pooled"]
        print("| class | " + " | ".join(sources) + " |")
        print("|---|" + "---|" * len(sources))
        for a, cells in report["per_class"][m].items():
            out = []
            for source in sources:
                c = cells[source]
                f = "-" if np.isnan(c["f"]) else f"{c['f']:.2f}"
                out.append(f"{c['predicted']}/{c['labelled']}/{c['both']} ({f})")
            print(f"| {a.replace('|', chr(92) + '|')} | " + " | ".join(out) + " |")


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    folders = args.data or default_folders()
    records = load_pool(folders)
    classes = scored_classes().codes
    truth = label_matrix(records.labels, classes)
    digests = signal_digests(records)
    members = tuple(m for m in args.members.split(",") if m)
    options = parse_options(args.options)
    if args.beat_data:
        options.setdefault("beats", {})["beat_data"] = args.beat_data
        if members != ("auto",):
            members = (*members, "beats")
    hybrid_options = options.setdefault("hybrid", {})
    hybrid_options["members"] = ",".join(members)
    if args.inner_folds is not None:
        hybrid_options["n_folds"] = str(args.inner_folds)
    # As train_model.py composes them: the preset under the user's options, for every member.
    hybrid_config = configure(["hybrid"], options, args.preset)["hybrid"]
    sources = [record_source(n) for n in records.names]
    counts = {s: sources.count(s) for s in ordered_sources(sources)}
    print(
        f"{len(records)} records from {', '.join(str(f) for f in folders)} "
        f"({', '.join(f'{s} {n}' for s, n in counts.items())}); members {', '.join(members)}; "
        f"preset {args.preset}; hybrid {hybrid_config.n_folds} inner folds"
    )
    report = {}
    for protocol in args.protocols.split(","):
        if protocol == "kfold":
            folds = grouped_kfold(truth, digests, args.folds, args.seed)
            splits = [(f"fold {k + 1}", tr, te) for k, (tr, te) in enumerate(folds)]
        elif protocol == "loso":
            splits = [
                (f"source {s}", tr, te) for s, tr, te in leave_one_source_out(sources, digests)
            ]
        else:
            raise SystemExit(f"unknown protocol {protocol!r} (kfold, loso)")
        results, n_tested, binary = run_protocol(
            protocol, splits, records, truth, classes, args, hybrid_config
        )
        print_tables(protocol, results, n_tested, truth, classes)
        by_source = source_report(
            records.names, truth, binary, classes, n_boot=args.bootstrap, seed=args.seed
        )
        print_source_report(protocol, by_source)
        report[protocol] = {"pooled": results, "by_source": by_source}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
