#!/usr/bin/env python
"""Seconds per record of the hybrid's inference at the engines' default (paper) sizes.

    python -m benchmarks.inference [--data DIR] [--records 30] [--threads 2] [--beat-data DIR]
        [--preset paper|cpu]

The hybrid and its members are fitted briefly on a few records (one epoch: inference time
does not depend on how well the weights are trained, only on the networks' sizes: the ``paper``
preset's by default, parallel_cnn 12 x 10,000 samples, GoogLeNet at 224 px; ``--preset cpu``
gives the sizes a training without a GPU uses), then each 10-s
record is classified alone, as ``run_model.py`` would, and the median over records is printed
for the hybrid and each member: wall-clock seconds, and the process's CPU seconds (with one
thread, the CPU time is the record's cost even while other work shares the machine). For the
deep members a second row (``NAME network``) times the network alone on the record's input,
prepared beforehand: what the papers' network sizes cost whatever the input side does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from team_code.classifiers.hybrid import HybridClassifier
from team_code.context import IN_MEMORY, Task
from team_code.data.records import RecordSet
from team_code.options import configure
from team_code.presets import PRESETS

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "challenge")
    parser.add_argument("--records", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beat-data", default="")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="paper",
        help="the engines' sizes: paper (default, as trained on a GPU) or cpu (as trained "
        "without one)",
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    records = RecordSet.from_folder(args.data)
    ten_s = [i for i, h in enumerate(records.headers) if h.n_samples == 10 * h.fs]
    fit_set = records.subset(ten_s[: 2 * args.records : 2])
    test_set = [records[i] for i in ten_s[1 : 2 * args.records : 2]]
    members = ("rules", "parallel_cnn", "cwt_googlenet") + (("beats",) if args.beat_data else ())
    options = {
        "hybrid": {"members": ",".join(members), "n_folds": "2", "early_drop_folds": "0"},
        "rules": {"tune": "false"},
        "parallel_cnn": {"epochs": "1"},
        "cwt_googlenet": {"epochs": "1", "pretrained_weights": "none"},
    }
    if args.beat_data:
        options["beats"] = {"beat_data": args.beat_data, "epochs": "1", "max_beats": "2000"}
    config = configure(["hybrid"], options, args.preset)["hybrid"]
    model = HybridClassifier(config).fit(fit_set, Task(), IN_MEMORY)
    model.predict_proba(test_set[:1])  # warm-up: lazy imports, filter banks
    seconds = {name: [] for name in [*model.members_, "hybrid"]}
    cpu = {name: [] for name in seconds}

    def timed(name, model_, record) -> None:
        tic, cpu_tic = time.perf_counter(), time.process_time()
        model_.predict_proba([record])
        seconds[name].append(time.perf_counter() - tic)
        cpu[name].append(time.process_time() - cpu_tic)

    from team_code.classifiers.deep import DeepClassifier
    from team_code.nn.cache import SignalDataset

    deep = {name: m for name, m in model.members_.items() if isinstance(m, DeepClassifier)}
    for name in deep:
        seconds[f"{name} network"], cpu[f"{name} network"] = [], []

    class NetworkOnly:
        """A member's network on an input prepared before the clock starts."""

        def __init__(self, member, record):
            self.member = member
            self.inputs = np.stack([member.inputs([record])[0]])

        def predict_proba(self, records_):
            return self.member._scores(SignalDataset(self.inputs))

    for record in test_set:
        for name, member in model.members_.items():
            timed(name, member, record)
        timed("hybrid", model, record)
        for name, member in deep.items():
            timed(f"{name} network", NetworkOnly(member, record), record)
    print(
        f"{len(test_set)} ten-second 12-lead records, one at a time, {args.threads} threads, "
        f"preset {args.preset}"
    )
    print(f"{'model':<22} {'median s':>9} {'max s':>7} {'median CPU s':>13}")
    for name, values in seconds.items():
        print(
            f"{name:<22} {statistics.median(values):9.3f} {max(values):7.3f} "
            f"{statistics.median(cpu[name]):13.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
