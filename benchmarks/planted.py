"""The default hybrid against the rules-only hybrid on a class only a network can see.

Synthetic 12-lead records (``team_code.data.synth``: 400 training records of seed 201, 80
unseen ones of seed 202) in which every other record carries a planted pattern labelled
sinus arrhythmia (:func:`team_code.data.synth.plant_pattern`: a 3 Hz, 0.6 mV wave for 1.5 s
on V1-V3) that no clinical rule reads. Two hybrids train on the same records:

- ``rules-only``: ``hybrid.members=rules`` (the global choice over the rules alone);
- ``default``: the kit's default hybrid (every engine a candidate, chosen per class), its deep
  engines at the preset's sizes (``--preset cpu`` by default), ``--set`` on top.

One row per hybrid: the planted class's F1 and the challenge metric on the unseen records,
the hybrid's own nested validation figure beside its floor, what serves the planted class,
the engines shipped and the training seconds; then the default's gain over the rules-only
hybrid on the unseen records with a paired bootstrap 95% interval (the same resamples of
records for both). One source: the folds group by record.

Usage::

    python -m benchmarks.planted [--preset cpu] [--set NAME.OPT=V ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", help="option preset (team_code.presets)")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="N.O=V")
    parser.add_argument("--train", type=int, default=400, help="training records (seed 201)")
    parser.add_argument("--test", type=int, default=80, help="unseen records (seed 202)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--json", type=Path, help="write the rows here")
    return parser


def _f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(2 * (truth & predicted).sum() / max(truth.sum() + predicted.sum(), 1))


def run(args) -> list[dict]:
    from team_code.classifiers.hybrid import HybridClassifier
    from team_code.classifiers.thresholds import challenge_score
    from team_code.context import RunContext, Task
    from team_code.data.records import RecordSet
    from team_code.data.synth import PLANTED_CLASS, generate_dataset, plant_pattern
    from team_code.harness import parse_options
    from team_code.options import configure

    tmp = Path(tempfile.mkdtemp(prefix="planted-"))
    generate_dataset(tmp / "train", args.train, seed=201, prefix="TRN")
    generate_dataset(tmp / "test", args.test, seed=202, prefix="TST")
    train = plant_pattern(list(RecordSet.from_folder(tmp / "train")), 0)
    test = plant_pattern(list(RecordSet.from_folder(tmp / "test")), 1)
    ctx = RunContext(cache_dir=str(tmp / "cache"), progress=False)
    options = parse_options(args.options)
    setups = {
        "rules-only": {  # the deep engines' options do not apply to it
            **{name: values for name, values in options.items() if name in ("rules", "hybrid")},
            "hybrid": {**options.get("hybrid", {}), "members": "rules"},
        },
        "default": options,
    }
    rows = []
    for name, setup in setups.items():
        config = configure(["hybrid"], setup, args.preset)["hybrid"]
        print(f"[{name}] training on {len(train)} records", flush=True)
        start = time.perf_counter()
        model = HybridClassifier(config).fit(train, Task(), ctx)
        seconds = time.perf_counter() - start
        j = model.classes_.index(PLANTED_CLASS)
        truth = model.label_matrix(test)
        predicted = model.predict(test)
        rows.append(
            {
                "hybrid": name,
                "planted_f1": _f1(truth[:, j], predicted[:, j]),
                "challenge_metric": challenge_score(
                    truth, predicted, model.classes_, model.task_.scored
                ),
                "validation": model.validation_["challenge_metric"],
                "floor": model.validation_["prevalence"],
                "planted_served_by": model.choice_[j],
                "shipped": list(model.members_),
                "train_s": seconds,
                "unseen_records": len(test),
                "_truth": truth,
                "_predicted": predicted,
                "_classes": (list(model.classes_), model.task_.scored),
            }
        )
    return rows


def paired_gain_interval(rows: list[dict], n_boot: int) -> tuple[float, float]:
    """95% interval of the second row's challenge metric minus the first's over records
    resampled with replacement, both rows scored on the same resamples."""
    from evaluation.metrics import bootstrap_ci, paired_bootstrap_gain
    from team_code.classifiers.thresholds import challenge_weights

    first, second = rows[:2]
    classes, scored = second["_classes"]
    if list(first["_classes"][0]) != list(classes):
        raise ValueError("the two hybrids score different classes")
    draws = paired_bootstrap_gain(
        challenge_weights(classes, scored),
        second["_truth"],
        second["_predicted"],
        first["_predicted"],
        list(classes),
        n_boot,
    )
    return bootstrap_ci(draws)


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    rows = run(args)
    print(
        "\n| hybrid | planted-class F1 (unseen) | challenge metric (unseen) | validation (floor) "
        "| planted class served by | shipped | training |"
    )
    print("|---|---:|---:|---|---|---|---:|")
    for r in rows:
        print(
            f"| {r['hybrid']} | {r['planted_f1']:.3f} | {r['challenge_metric']:.3f} | "
            f"{r['validation']:.3f} ({r['floor']:.3f}) | {r['planted_served_by']} | "
            f"{', '.join(r['shipped'])} | {r['train_s']:.0f} s |"
        )
    gain = rows[1]["challenge_metric"] - rows[0]["challenge_metric"]
    low, high = paired_gain_interval(rows, args.n_boot)
    print(
        f"\ndefault minus rules-only on {rows[0]['unseen_records']} unseen records: {gain:+.3f} "
        f"[{low:+.3f}, {high:+.3f}] (paired bootstrap, {args.n_boot} resamples)"
    )
    if args.json:
        public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        args.json.write_text(
            json.dumps({"rows": public, "gain": gain, "gain_interval": [low, high]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
