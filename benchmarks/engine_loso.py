#!/usr/bin/env python
"""One engine alone, leave one source out, beside the prevalence floor trained the same way.

    python benchmarks/engine_loso.py [--classifier parallel_cnn] [--preset cpu]
        [--set OPTION=VALUE ...] [--data DIR ...]

For each source of the shared records (record-name prefixes: A, E, HR, LU, Q, S), the engine
and ``prevalence`` are trained on the other sources and classify the held-out one with their
own thresholds; the table gives the challenge metric per held-out source and pooled over
all of them. ``--set`` options (without the engine's name) win over the preset's. Deep
engines run on one thread and keep their preprocessed inputs in memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from team_code.classifiers import registry  # noqa: E402
from team_code.classifiers.base import apply_options, record_labels  # noqa: E402
from team_code.classifiers.thresholds import challenge_score  # noqa: E402
from team_code.context import IN_MEMORY, Task  # noqa: E402
from team_code.data.labels import label_matrix, scored_classes  # noqa: E402
from team_code.data.records import RecordSet, find_records, record_source  # noqa: E402
from team_code.presets import preset_options  # noqa: E402

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
    rows = []
    for source in np.unique(sources):
        train = RecordSet([records.paths[i] for i in np.flatnonzero(sources != source)])
        held = np.flatnonzero(sources == source)
        test = RecordSet([records.paths[i] for i in held])
        row = {"source": source, "n": len(held)}
        for method, (cls, config) in methods.items():
            start = time.perf_counter()
            outputs[method][held] = cls(config).fit(train, Task(), IN_MEMORY).predict(test)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
