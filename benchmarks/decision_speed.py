#!/usr/bin/env python
"""CPU seconds of one fit of the rules' operating thresholds (the ``vote`` decision policy).

    python benchmarks/decision_speed.py [--records 150 300] [--repeats 5]

Random held-out scores of the 2020 classes (positives scored higher, with noise) in five
source groups, as the rules' decision sees them; one row per record count: the median CPU
seconds of ``ThresholdPolicy("vote", 3).fit`` over the repeats, and a digest of the
thresholds it chose (equal digests: the same decisions). With ``PYTHONPATH`` naming another
checkout of the kit, the same script times that version's decision.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def held_out(n: int, seed: int = 7):
    """Scores, truth, groups and task of ``n`` records."""
    from team_code.context import Task
    from team_code.data.labels import scored_classes

    classes = list(scored_classes().codes)
    rng = np.random.default_rng(seed)
    truth = rng.random((n, len(classes))) < np.linspace(0.02, 0.3, len(classes))
    scores = np.clip(0.35 * truth + rng.random(truth.shape) * 0.7, 0, 1)
    groups = np.array(["A", "E", "HR", "Q", "S"])[rng.integers(0, 5, n)]
    return scores, truth, groups, Task.of_classes(classes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[150, 300])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from team_code.classifiers.decision import ThresholdPolicy

    print("| records | median CPU s | thresholds digest |")
    print("|---:|---:|---:|")
    for n in args.records:
        scores, truth, groups, task = held_out(n)
        seconds = []
        for _ in range(args.repeats):
            start = time.process_time()
            chosen = ThresholdPolicy("vote", 3).fit(scores, truth, groups, task).thresholds_
            seconds.append(time.process_time() - start)
        digest = float(np.sum(chosen * np.arange(1, len(chosen) + 1)))
        print(f"| {n} | {statistics.median(seconds):.3f} | {digest:.6f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
