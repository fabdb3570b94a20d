"""How far inside the learnability tests' bars each deep engine lands, over seeds.

``tests/nn/test_learnability.py`` trains each deep engine at its CPU-preset sizes on planted
synthetic classes (160 training records of seed 101, 100 held-out ones of seed 102) and bars
the ratio of its losses to the prior's and its held-out macro AUROC. A bar set on one seed and
one machine's kernels can fail on another machine; this script measures the spread that the
bars are set from. One row per seed: the last epoch's training loss over the prior's, the best
validation loss over the prior's, the held-out macro AUROC over the planted classes.

Usage::

    python -m benchmarks.learnability --engine cwt_googlenet --seeds 0,1,2 [--threads 1]
        [--set epochs=6] [--json OUT]
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
    parser.add_argument("--engine", default="cwt_googlenet", help="parallel_cnn or cwt_googlenet")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="an engine option on top of the CPU preset's (repeatable), e.g. epochs=6",
    )
    parser.add_argument("--json", type=Path, help="write the rows here")
    return parser


def prior_loss(truth: np.ndarray) -> float:
    """Mean binary cross-entropy of predicting each class's prevalence (records x classes)."""
    p = np.clip(truth.mean(axis=0), 1e-7, 1 - 1e-7)
    return float(np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p))))


def macro_auroc(truth: np.ndarray, scores: np.ndarray) -> float:
    """Mean AUROC over the classes with positives and negatives."""
    from sklearn.metrics import roc_auc_score

    columns = [k for k in range(truth.shape[1]) if 0 < truth[:, k].sum() < len(truth)]
    return float(np.mean([roc_auc_score(truth[:, k], scores[:, k]) for k in columns]))


def main(args: argparse.Namespace) -> int:
    import torch

    from team_code.classifiers import registry
    from team_code.classifiers.base import apply_options
    from team_code.context import IN_MEMORY, Task, record_labels
    from team_code.data.labels import label_matrix, scored_classes
    from team_code.data.records import RecordSet
    from team_code.data.synth import generate_dataset
    from team_code.presets import preset_options

    torch.set_num_threads(args.threads)
    extra = dict(item.split("=", 1) for item in args.options)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_dataset(root / "train", 160, seed=101, prefix="TRN")
        generate_dataset(root / "test", 100, seed=102, prefix="TST")
        train, test = RecordSet.from_folder(root / "train"), RecordSet.from_folder(root / "test")
        classes = scored_classes().codes
        prior = prior_loss(label_matrix(record_labels(train), classes))
        truth = label_matrix(record_labels(test), classes)
        cls = registry.get(args.engine)
        print(f"{args.engine}, CPU preset + {extra or 'nothing'}, {args.threads} thread(s)\n")
        print("| seed | train / prior | best val / prior | held-out AUROC | seconds |")
        print("|---:|---:|---:|---:|---:|")
        for seed in (int(s) for s in args.seeds.split(",")):
            options = {**preset_options("cpu")[args.engine], **extra, "seed": str(seed)}
            if args.engine == "cwt_googlenet":
                options.setdefault("pretrained_weights", "none")
            config = apply_options(cls.Config, options)
            start = time.perf_counter()
            model = cls(config).fit(train, Task.of_classes(classes), IN_MEMORY)
            seconds = time.perf_counter() - start
            history = model.fit_summary_["history"]
            # GoogLeNet's training loss adds its two auxiliary heads' losses, weighted.
            terms = 1.0 + 2 * config.aux_weight if args.engine == "cwt_googlenet" else 1.0
            row = {
                "seed": seed,
                "train_ratio": history[-1]["train_loss"] / terms / prior,
                "val_ratio": min(r["val_loss"] for r in history) / prior,
                "auroc": macro_auroc(truth, model.predict_proba(test)),
                "seconds": seconds,
            }
            rows.append(row)
            print(
                f"| {seed} | {row['train_ratio']:.3f} | {row['val_ratio']:.3f} | "
                f"{row['auroc']:.3f} | {seconds:.0f} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"engine": args.engine, "options": extra, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
