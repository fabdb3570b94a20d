#!/usr/bin/env python
"""One engine alone, leave one source out, beside the prevalence floor trained the same way.

    python -m benchmarks.engine_loso [--classifier parallel_cnn] [--preset cpu]
        [--set OPTION=VALUE ...] [--data DIR ...]

For each source of the shared records (record-name prefixes: A, E, HR, LU, Q, S), the engine
and ``prevalence`` are trained on the other sources and classify the held-out one with their
own thresholds; the table gives the challenge metric per held-out source and pooled over
all of them, and the engine's pooled gain over the floor with a paired bootstrap 95% interval
(the same records resampled for both, 1,000 draws: the spread of the records, not of the
training, which ``--set seed=N`` shows), then the engine's held-out macro AUROC (pooled over
the sources, classes with 5+ positives; 0.5 is chance), its AUROC per class, and the mean
AUROC within each held-out source (over the pairs of a source and a class with 2+ positives
and 2+ negatives there): a network that ranks the records of each unseen hospital well but
whose scores sit at another level in each shows a within-source AUROC well above the pooled
one. ``--set`` options (without the engine's
name) win over the preset's. Deep engines run on one thread and keep their preprocessed
inputs in memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from team_code.classifiers import registry
from team_code.classifiers.base import apply_options, record_labels
from team_code.classifiers.cv import leave_one_source_out, signal_digests
from team_code.classifiers.thresholds import challenge_score
from team_code.context import IN_MEMORY, Task
from team_code.data.labels import label_matrix, scored_classes
from team_code.data.records import RecordSet, find_records, record_source
from team_code.presets import preset_options

REPO = Path(__file__).resolve().parents[1]

DEFAULT_DATA = [
    REPO.parent / "shared" / "data" / "challenge",
    REPO.parent / "shared" / "data" / "ludb_challenge",
]


def engine_config(name: str, preset: str, options: list[str]):
    """The engine's config: the preset's options, then ``options`` (``OPTION=VALUE``)."""
    cls = registry.get(name)
    values = dict(preset_options(preset).get(name, {}))
    for item in options:
        key, _, value = item.partition("=")
        values[key.strip()] = value.strip()
    return cls, apply_options(cls.Config, values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", default="parallel_cnn")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="OPT=V")
    parser.add_argument("--data", type=Path, action="append", default=None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    records = RecordSet([p for folder in args.data or DEFAULT_DATA for p in find_records(folder)])
    sources = np.array([record_source(n) for n in records.names])
    classes = scored_classes().codes
    truth = label_matrix(record_labels(records), classes)
    methods = {"prevalence": engine_config("prevalence", args.preset, [])}
    methods[args.classifier] = engine_config(args.classifier, args.preset, args.options)
    outputs = {m: np.zeros_like(truth) for m in methods}
    scores = np.zeros(truth.shape)
    rows = []
    # a recording released under two sources' names never trains while its twin is tested
    for source, train_index, held in leave_one_source_out(sources, signal_digests(records)):
        train = RecordSet([records.paths[i] for i in train_index])
        test = RecordSet([records.paths[i] for i in held])
        row = {"source": source, "n": len(held)}
        for method, (cls, config) in methods.items():
            start = time.perf_counter()
            model = cls(config).fit(train, Task(), IN_MEMORY)
            proba = model.predict_proba(test)
            outputs[method][held] = model.decide(proba)  # as model.predict(test)
            if method == args.classifier:
                scores[held] = proba
            row[method] = challenge_score(truth[held], outputs[method][held], classes)
            print(
                f"{source}: {method} {row[method]:.3f} ({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
            )
        rows.append(row)
    rows.append(
        {
            "source": "pooled",
            "n": len(truth),
            **{m: challenge_score(truth, outputs[m], classes) for m in methods},
        }
    )
    print(f"\n{'source':<8} {'records':>7} " + " ".join(f"{m:>14}" for m in methods))
    for row in rows:
        print(f"{row['source']:<8} {row['n']:>7} " + " ".join(f"{row[m]:>14.3f}" for m in methods))
    print_gain(truth, outputs[args.classifier], outputs["prevalence"], classes)
    print_auroc(truth, scores, classes, sources)
    return 0


def print_gain(truth, engine, floor, classes, n_boot: int = 1000) -> None:
    """The engine's pooled challenge metric less the floor's, with a paired bootstrap 95%
    interval over the records."""
    from evaluation.metrics import bootstrap_ci, paired_bootstrap_gain
    from team_code.classifiers.thresholds import challenge_weights

    gain = challenge_score(truth, engine, classes) - challenge_score(truth, floor, classes)
    draws = paired_bootstrap_gain(
        challenge_weights(classes), truth, engine, floor, list(classes), n_boot
    )
    low, high = bootstrap_ci(draws)
    interval = f"paired bootstrap 95% [{low:+.3f}, {high:+.3f}]"
    print(f"\ngain over the floor, pooled: {gain:+.3f} ({interval})")


def print_auroc(
    truth: np.ndarray, scores: np.ndarray, classes, sources: np.ndarray, min_positives: int = 5
) -> None:
    """Held-out AUROC per class with ``min_positives`` positives (and negatives), their mean,
    and the mean AUROC within each source."""
    from sklearn.metrics import roc_auc_score

    abbreviations = dict(zip(classes, scored_classes().abbreviations, strict=True))
    kept = [
        j
        for j in range(truth.shape[1])
        if min_positives <= truth[:, j].sum() <= len(truth) - min_positives
    ]
    per_class = {classes[j]: roc_auc_score(truth[:, j], scores[:, j]) for j in kept}
    mean = np.mean(list(per_class.values()))
    print(f"\nheld-out macro AUROC over {len(kept)} classes: {mean:.3f}")
    print(
        "  "
        + ", ".join(
            f"{abbreviations[c]} {a:.2f} ({int(truth[:, classes.index(c)].sum())})"
            for c, a in per_class.items()
        )
    )

    within = [
        roc_auc_score(truth[rows, j], scores[rows, j])
        for j in kept
        for rows in (sources == s for s in np.unique(sources))
        if 2 <= truth[rows, j].sum() <= rows.sum() - 2
    ]
    print(f"mean AUROC within a held-out source over {len(within)} pairs: {np.mean(within):.3f}")


if __name__ == "__main__":
    sys.exit(main())
