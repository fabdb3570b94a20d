#!/usr/bin/env python
"""The deep engines' input side alone: samples per second their training loader delivers.

    python -m benchmarks.loader DATA [--records N] [--items 8192] [--repeats 5] [--json OUT]

For ``parallel_cnn`` (12 x 10,000 samples at 500 Hz) and ``cwt_googlenet`` (224 px mosaics),
at their default (``paper``) sizes: the records' inputs are cached and packed first
(:func:`team_code.nn.cache.cached_inputs`, untimed: a warm cache), then the training loader of
:mod:`team_code.nn.training` (shuffled, the engine's batch size, ``--workers`` loader
processes, as ``fit`` makes it) is read for ``--items`` items (the records' rows repeated),
``--repeats`` times; no model runs. A batch counts once it is a tensor in the host's memory,
in the cache's dtype (float16 by default: the networks convert on their device);
``samples_per_s`` is the median over the repeats. The load average is recorded beside the
figures (others sharing the cores slow them).

Writes ``{"rows": [{"engine", "samples_per_s", "runs", "batch_size", "input_shape",
"dtype", ...}], "loadavg": [...], ...}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ENGINES = ("parallel_cnn", "cwt_googlenet")


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="folder of records")
    parser.add_argument("--records", type=int, default=32, help="records cached (0: all)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated")
    parser.add_argument("--items", type=int, default=8192, help="items read per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (median)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--cache", default="", help="cache folder (default: a temporary one)")
    parser.add_argument(
        "--set", action="append", default=[], help="ENGINE.OPTION=VALUE (e.g. smaller sizes)"
    )
    parser.add_argument("--json", default="", help="write the figures here")
    return parser


def engine(name: str, options: dict, cache: str):
    """The engine at its default config with ``options``, set up for the 2020 task."""
    from team_code.classifiers import registry
    from team_code.context import RunContext, Task

    cls = registry.get(name)
    config = cls.Config()
    fields = {f.name: f.type for f in dataclasses.fields(config)}
    values = {}
    for key, value in options.items():
        if key not in fields:
            raise SystemExit(f"loader: {name} has no option {key!r}")
        values[key] = type(getattr(config, key))(value)
    model = cls(dataclasses.replace(config, **values))
    model._begin(Task(), RunContext(cache_dir=cache, workers=1, progress=False))
    return model


def measure(model, records, items: int, repeats: int, workers: int) -> dict:
    """Samples/s of the engine's training loader over its packed cache (module docstring)."""
    import numpy as np
    import torch

    from team_code.nn.cache import SignalDataset
    from team_code.nn.training import EpochSampler, _loader

    stored = model.cached_inputs(records, progress=False)
    if len(stored) == 0:
        raise SystemExit(f"loader: {model.name} could not preprocess any record")
    rows = np.arange(items) % len(stored)
    targets = np.zeros((items, len(model.classes_)), dtype=np.float32)
    dataset = SignalDataset(stored.items, targets, rows=rows)
    config = dataclasses.replace(model.train_config(), num_workers=workers, device="cpu")
    sampler = EpochSampler(len(dataset), seed=0)
    runs, first = [], None
    for epoch in range(repeats + 1):  # the first pass warms the page cache and the workers
        sampler.set_epoch(epoch)
        loader = _loader(
            dataset, sampler, config.batch_size, config, torch.device("cpu"), None, epoch
        )
        start, n = time.perf_counter(), 0
        for x, _ in loader:
            n += x.shape[0]
            first = x if first is None else first
        seconds = time.perf_counter() - start
        if epoch:
            runs.append(n / seconds)
    return {
        "engine": model.name,
        "samples_per_s": statistics.median(runs),
        "runs": runs,
        "batch_size": config.batch_size,
        "input_shape": list(first.shape[1:]),
        "dtype": str(first.dtype).replace("torch.", ""),
        "records": len(stored),
        "items": items,
        "workers": workers,
    }


def main(args: argparse.Namespace) -> int:
    """Measure every engine, print a table, write the JSON."""
    from team_code.data.records import RecordSet, find_records

    paths = find_records(args.data)
    if args.records:
        paths = paths[: args.records]
    if not paths:
        raise SystemExit(f"loader: no records in {args.data}")
    records = RecordSet(paths)
    options: dict[str, dict] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        name, _, option = key.partition(".")
        options.setdefault(name, {})[option] = value
    cache = args.cache or tempfile.mkdtemp(prefix="loader-")
    rows = []
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        model = engine(name, options.get(name, {}), cache)
        rows.append(measure(model, records, args.items, args.repeats, args.workers))
    report = {
        "data": str(args.data),
        "cores": len(os.sched_getaffinity(0)),
        "loadavg": list(os.getloadavg()),
        "rows": rows,
    }
    print(f"{'engine':<14} {'input':<16} {'dtype':<8} {'batch':>5} {'samples/s':>10}  runs")
    for row in rows:
        shape = "x".join(map(str, row["input_shape"]))
        runs = ", ".join(f"{r:.0f}" for r in row["runs"])
        print(
            f"{row['engine']:<14} {shape:<16} {row['dtype']:<8} {row['batch_size']:>5} "
            f"{row['samples_per_s']:>10.0f}  {runs}"
        )
    load = ", ".join(f"{x:.2f}" for x in report["loadavg"])
    print(f"{report['cores']} cores, load average {load}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
