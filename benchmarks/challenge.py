#!/usr/bin/env python
"""The kit on the shared Challenge records, under two protocols, with bootstrap intervals.

    python benchmarks/challenge.py [--data DIR] [--protocols kfold,loso] [--folds 5]
        [--members rules,parallel_cnn,cwt_googlenet] [--beat-data DIR] [--set NAME.OPT=V ...]

For every outer split the hybrid is trained on the training part (which trains its members on
inner folds for its out-of-fold fusion, then refits them on the whole training part); the
test part is then scored by the hybrid, by each of its members (their own thresholds), and by
``prevalence`` trained on the same training part. Predictions of all outer test parts are
pooled, and each method gets the challenge metric and macro F-measure with bootstrap 95%
intervals, the per-class F-measure, and the median inference seconds per record.

Protocols:
- ``kfold``: k folds grouped so that identical signals stay on one side (cv.grouped_kfold);
- ``loso``: leave one source out (A = CPSC, E = Georgia, HR = PTB-XL, Q = CPSC-Extra,
  S = PTB): the score on hospitals the models have not seen.

With 231 records many classes have fewer than five positives: the tables print the counts,
and the intervals are wide. Use ``--json FILE`` to keep every number.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evaluation import metrics  # noqa: E402
from team_code.classifiers import registry  # noqa: E402
from team_code.classifiers.cv import (  # noqa: E402
    grouped_kfold,
    leave_one_source_out,
    signal_digests,
    take,
)
from team_code.classifiers.hybrid import HybridClassifier  # noqa: E402
from team_code.data.labels import label_matrix, scored_classes  # noqa: E402
from team_code.data.records import RecordSet  # noqa: E402
from team_code.harness import build_config, parse_options, record_source  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "challenge")
    parser.add_argument("--protocols", default="kfold,loso")
    parser.add_argument("--folds", type=int, default=5, help="outer folds of the kfold protocol")
    parser.add_argument("--inner-folds", type=int, default=3, help="the hybrid's own folds")
    parser.add_argument("--members", default="rules,parallel_cnn,cwt_googlenet")
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
    methods = ["prevalence", *hybrid_config.members, "hybrid"]
    scores = {m: np.full((n, c), np.nan) for m in methods}
    binary = {m: np.zeros((n, c), bool) for m in methods}
    seconds = {m: [] for m in methods}
    tested = np.zeros(n, bool)
    for label, train_index, test_index in splits:
        start = time.perf_counter()
        print(f"[{name}] {label}: train {len(train_index)}, test {len(test_index)}", flush=True)
        train = take(records, train_index)
        prevalence = registry.create("prevalence").fit(train, classes)
        hybrid = HybridClassifier(hybrid_config).fit(train, classes)
        fitted = {"prevalence": prevalence, **hybrid.members_, "hybrid": hybrid}
        loaded = [records[i] for i in test_index]  # read once; timing excludes file reading
        for method, model in fitted.items():
            tic = time.perf_counter()
            proba = model.predict_proba(loaded)
            seconds[method].append((time.perf_counter() - tic) / len(loaded))
            scores[method][test_index] = proba
            binary[method][test_index] = proba >= model.thresholds_
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
    return results, int(tested.sum())


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


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    records = RecordSet.from_folder(args.data)
    classes = scored_classes().codes
    truth = label_matrix(records.labels, classes)
    digests = signal_digests(records)
    options = parse_options(args.options)
    members = tuple(m for m in args.members.split(",") if m)
    if args.beat_data:
        options.setdefault("beats", {})["beat_data"] = args.beat_data
        members = (*members, "beats")
    hybrid_config = build_config(HybridClassifier, options.pop("hybrid", {}))
    hybrid_config = dataclasses.replace(
        hybrid_config, members=members, n_folds=args.inner_folds, member_options=options
    )
    print(f"{len(records)} records from {args.data}; members {', '.join(members)}")
    report = {}
    for protocol in args.protocols.split(","):
        if protocol == "kfold":
            folds = grouped_kfold(truth, digests, args.folds, args.seed)
            splits = [(f"fold {k + 1}", tr, te) for k, (tr, te) in enumerate(folds)]
        elif protocol == "loso":
            sources = [record_source(n) for n in records.names]
            splits = [
                (f"source {s}", tr, te) for s, tr, te in leave_one_source_out(sources, digests)
            ]
        else:
            raise SystemExit(f"unknown protocol {protocol!r} (kfold, loso)")
        results, n_tested = run_protocol(
            protocol, splits, records, truth, classes, args, hybrid_config
        )
        print_tables(protocol, results, n_tested, truth, classes)
        report[protocol] = results
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
