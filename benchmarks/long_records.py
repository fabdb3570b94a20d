#!/usr/bin/env python
"""Peak host memory of scoring long records from all their windows, against their number.

    python -m benchmarks.long_records [--counts 50,400] [--seconds 60] [--engine parallel_cnn]

For each count N, a fresh Python process builds the engine at its default (``paper``) input
sizes with a trivial network in place of the trained one (the largest |mV| of the window:
memory here is the input side's, not the network's), then scores N synthetic 12-lead records
of ``--seconds`` s at 500 Hz with ``predict_proba`` as ``run_model.py`` and the hybrid's
held-out folds do: every record longer than one window is read from all of its windows. It
prints the windows per record and the process's peak resident memory (``ru_maxrss``) before
and after scoring. Flat in N is the target: window inputs are scored in bounded chunks
(``deep.WINDOW_CHUNK_BYTES``), never all at once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(n_records: int, seconds: float, engine: str) -> dict:
    """One count, in this process: windows per record and peak RSS (MB) before/after."""
    import resource

    import numpy as np
    import torch

    from team_code.classifiers import registry
    from team_code.classifiers.deep import record_windows
    from team_code.context import IN_MEMORY, Task
    from team_code.data.records import STANDARD_LEADS, Record
    from team_code.options import configure

    torch.set_num_threads(1)
    options = {"cwt_googlenet": {"pretrained_weights": "none"}}
    config = configure([engine], {k: v for k, v in options.items() if k == engine}, "paper")
    model = registry.get(engine)(config[engine])
    model._begin(Task(), IN_MEMORY)

    class LargestAmplitude(torch.nn.Module):
        def forward(self, x):
            peak = x.float().abs().flatten(1).amax(1, keepdim=True)
            return peak.expand(-1, len(model.classes_))

    model.network_ = LargestAmplitude()
    rng = np.random.default_rng(0)
    signal = (0.1 * rng.standard_normal((12, int(seconds * 500)))).astype(np.float32)
    records = [Record(f"LONG{i}", signal, 500.0, STANDARD_LEADS) for i in range(n_records)]
    windows = len(record_windows(signal, 500.0, *model.window_s()))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model.predict_proba(records)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "records": n_records,
        "windows_per_record": windows,
        "rss_before_mb": before,
        "rss_after_mb": after,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="50,400")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--engine", default="parallel_cnn", choices=["parallel_cnn", "cwt_googlenet"]
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process's count
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.seconds, args.engine)))
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    print(f"{args.engine}, records of {args.seconds:g} s at 500 Hz, paper sizes, one thread")
    print(f"{'records':>8} {'windows each':>13} {'peak MB before':>15} {'peak MB after':>14}")
    for count in [int(c) for c in args.counts.split(",")]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.long_records",
                "--one",
                str(count),
                "--seconds",
                str(args.seconds),
                "--engine",
                args.engine,
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{row['records']:>8} {row['windows_per_record']:>13} "
            f"{row['rss_before_mb']:>15.0f} {row['rss_after_mb']:>14.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
