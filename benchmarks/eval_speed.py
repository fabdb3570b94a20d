#!/usr/bin/env python
"""Speed of the scorer on 20,000 synthetic records (24 scored classes after merging).

    python -m benchmarks.eval_speed [--records 20000] [--repeats 3] [--seed 0]

Writes random label headers and output files into a temporary folder, then times reading
(pairing files, parsing every header and output), scoring (all overall and per-class metrics,
per-source breakdown) and the whole CLI run, and prints the median of the repeats.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from evaluation import evaluate, metrics


def write_synthetic(folder: Path, n: int, seed: int) -> tuple[Path, Path]:
    """Write ``n`` headers and outputs with random labels and scores; returns both folders."""
    rng = np.random.default_rng(seed)
    table = metrics.load_scoring_table()
    codes = sorted(table.code_to_index)  # all 27 codes, equivalents included
    out_codes = list(table.classes)
    labels_dir, outputs_dir = folder / "labels", folder / "outputs"
    labels_dir.mkdir()
    outputs_dir.mkdir()
    prefixes = metrics.SOURCE_PREFIXES
    class_line = ",".join(out_codes)
    for i in range(n):
        name = f"{prefixes[i % len(prefixes)]}{i:05d}"
        k = int(rng.integers(1, 4))
        dx = ",".join(rng.choice(codes, size=k, replace=False))
        (labels_dir / f"{name}.hea").write_text(
            f"{name} 12 500 5000\n{name}.mat 16+24 1000/mV 16 0 28 -1716 0 I\n"
            f"#Age: 60\n#Sex: Female\n#Dx: {dx}\n#Rx: Unknown\n"
        )
        s = rng.random(len(out_codes))
        (outputs_dir / f"{name}.csv").write_text(
            f"#{name}\n{class_line}\n"
            + ",".join("1" if x > 0.7 else "0" for x in s)
            + "\n"
            + ",".join(f"{x:.4f}" for x in s)
            + "\n"
        )
    return labels_dir, outputs_dir


def time_once(labels_dir: Path, outputs_dir: Path, tmp: Path) -> tuple[float, float, float]:
    """Seconds to read, to score, and for the whole CLI (writing both CSVs)."""
    t0 = time.perf_counter()
    table = metrics.load_scoring_table()
    records, headers, outputs, _ = metrics.find_record_files(labels_dir, outputs_dir)
    labels = metrics.load_label_matrix(headers, table)
    binary, scores, _ = metrics.load_output_matrices(outputs, table)
    t1 = time.perf_counter()
    classes, weights = list(table.classes), table.weights
    metrics.evaluate_arrays(labels, binary, scores, classes, weights)
    metrics.per_source_scores(records, labels, binary, classes, weights)
    t2 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = evaluate.main(
            [str(labels_dir), str(outputs_dir), str(tmp / "s.csv"), str(tmp / "c.csv")]
        )
    t3 = time.perf_counter()
    if rc != 0:
        raise RuntimeError(f"CLI exited with {rc}")
    return t1 - t0, t2 - t1, t3 - t2


def main(argv=None) -> int:
    """Generate the data, time the repeats, print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        labels_dir, outputs_dir = write_synthetic(tmp, args.records, args.seed)
        gen_s = time.perf_counter() - t0
        runs = [time_once(labels_dir, outputs_dir, tmp) for _ in range(args.repeats)]
    read_s = statistics.median(r[0] for r in runs)
    score_s = statistics.median(r[1] for r in runs)
    cli_s = statistics.median(r[2] for r in runs)
    total_s = statistics.median(r[0] + r[1] for r in runs)
    print(
        f"{args.records} records x 24 classes, median of {args.repeats} (generation {gen_s:.1f} s)"
    )
    print(f"{'step':<28} {'seconds':>8}")
    print(f"{'read headers + outputs':<28} {read_s:>8.3f}")
    print(f"{'score (all metrics)':<28} {score_s:>8.3f}")
    print(f"{'total (read + score)':<28} {total_s:>8.3f}")
    print(f"{'whole CLI incl. CSV writing':<28} {cli_s:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
