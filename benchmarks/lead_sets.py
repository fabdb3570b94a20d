"""Leave one source out for each lead set: what a reduced-lead model loses against twelve.

For each lead set (``--leads``, default the 2021 Challenge's 12, 6, 4, 3 and 2) and the chosen
scoring table (``--task``, default 2021), every classifier of ``--classifiers`` (default
``rules``) and the prevalence floor are trained on five of the six shared sources (A, E, HR,
Q, S from ``challenge/``, LU from ``ludb_challenge/``) for the task on that lead set and score
the sixth; the held-out records are the full twelve-lead records, of which each model reads
only its leads. Printed per lead set: the challenge metric of the task's table per held-out
source and pooled over the six, with a bootstrap 95% interval over records for the pooled
figure, and the pooled figure's change against twelve leads.

Usage::

    python -m benchmarks.lead_sets [--task 2021] [--leads 12,6,4,3,2] [--classifiers rules]
        [--preset cpu] [--set NAME.OPTION=VALUE ...] [--cache DIR] [--json FILE]

``--cache DIR`` keeps the per-record caches (the rules' measurements per lead set, network
inputs) between runs; without it they live in a temporary folder for the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.challenge import default_folders, load_pool, ordered_sources
from team_code.classifiers import registry
from team_code.classifiers.cv import leave_one_source_out, signal_digests
from team_code.classifiers.thresholds import challenge_score
from team_code.context import RunContext, Task
from team_code.data.leads import LEAD_SETS, parse_lead_sets
from team_code.data.records import record_source
from team_code.harness import configure, parse_options


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        default=None,
        help="record folders (default: the shared challenge/ and ludb_challenge/, in "
        "$ECG_KIT_DATA or ../shared/data)",
    )
    parser.add_argument("--task", default="2021", help="scoring table: 2020, 2021 or a file")
    parser.add_argument("--leads", default="12,6,4,3,2", help="lead sets, by size")
    parser.add_argument("--classifiers", default="rules")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--set", dest="options", action="append", default=[])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="per-record cache folder to keep")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    parser.add_argument(
        "--predictions",
        type=Path,
        help="write each lead set's held-out decisions here (.npz: sources, names, and per "
        "lead set <lead set>/truth, <lead set>/classes and <lead set>/<method> matrices)",
    )
    return parser


def bootstrap_interval(truth, binary, classes, scored, n_boot: int, seed: int):
    """95% interval of the challenge metric over records resampled with replacement."""
    from evaluation.metrics import bootstrap_challenge_metric, bootstrap_ci
    from team_code.classifiers.thresholds import challenge_weights
    from team_code.data.labels import NORMAL_CLASS

    weights = challenge_weights(classes, scored)
    values = bootstrap_challenge_metric(
        weights, truth, binary, list(classes), NORMAL_CLASS, n_boot, seed=seed
    )
    return bootstrap_ci(values)


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    records = load_pool(args.data or default_folders())
    sources = np.array([record_source(n) for n in records.names])
    order = ordered_sources(sources)
    names = [n.strip() for n in args.classifiers.split(",") if n.strip()]
    configs = configure(["prevalence", *names], parse_options(args.options), args.preset)
    cache = str(args.cache) if args.cache else tempfile.mkdtemp(prefix="lead-sets-")
    ctx = RunContext(cache_dir=cache, progress=False, log=lambda message: None)
    lead_sets = parse_lead_sets(args.leads)
    # a recording released under two sources' names never trains while its twin is tested
    splits = leave_one_source_out(sources, signal_digests(records))
    figures: dict = {"task": args.task, "records": len(records), "lead_sets": {}}
    saved: dict[str, np.ndarray] = {"sources": sources, "names": np.asarray(records.names)}
    for leads in lead_sets:
        task = Task(args.task, leads)
        classes, scored = task.classes, task.scored
        truth = task.truth(records)
        outputs = {m: np.zeros_like(truth) for m in ["prevalence", *names]}
        start = time.perf_counter()
        for _, train_index, held in splits:
            train = records.subset(train_index)
            test = records.subset(held)
            for method in outputs:
                model = registry.get(method)(configs[method]).fit(train, task, ctx)
                outputs[method][held] = model.predict(test)
        saved[f"{task.lead_set}/truth"] = truth
        saved[f"{task.lead_set}/classes"] = np.asarray(classes)
        saved.update({f"{task.lead_set}/{m}": binary for m, binary in outputs.items()})
        rows = {}
        for method, binary in outputs.items():
            per_source = {
                s: challenge_score(truth[sources == s], binary[sources == s], classes, scored)
                for s in order
            }
            pooled = challenge_score(truth, binary, classes, scored)
            low, high = bootstrap_interval(
                truth, binary, classes, scored, args.bootstrap, args.seed
            )
            rows[method] = {"by_source": per_source, "pooled": pooled, "interval": [low, high]}
        name = task.lead_set
        figures["lead_sets"][name] = {
            "leads": list(leads),
            "seconds": time.perf_counter() - start,
            "methods": rows,
        }
        print(f"\n{args.task} table, {name} leads ({', '.join(leads)}): leave one source out")
        print(f"{'method':<12} " + " ".join(f"{s:>7}" for s in order) + "   pooled [95% CI]")
        counts = " ".join(f"{int((sources == s).sum()):>7}" for s in order)
        print(f"{'records':<12} {counts}   {len(records)}")
        for method, row in rows.items():
            cells = " ".join(f"{row['by_source'][s]:>7.3f}" for s in order)
            low, high = row["interval"]
            print(f"{method:<12} {cells}   {row['pooled']:.3f} [{low:.3f}, {high:.3f}]")
    twelve = LEAD_SETS["12"]
    if any(tuple(leads) == twelve for leads in lead_sets) and len(lead_sets) > 1:
        print(f"\npooled {args.task} metric against twelve leads")
        base = figures["lead_sets"]["12"]["methods"]
        for name, entry in figures["lead_sets"].items():
            changes = ", ".join(
                f"{m} {row['pooled']:.3f} ({row['pooled'] - base[m]['pooled']:+.3f})"
                for m, row in entry["methods"].items()
            )
            print(f"  {name:>3} leads: {changes}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    if args.predictions:
        np.savez_compressed(args.predictions, **saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
