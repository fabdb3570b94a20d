#!/usr/bin/env python
"""How fast the reader loads records: ``python -m benchmarks.records [--data DIR] [--repeats 5]``.

Prints records per second and megabytes of signal files per second for header parsing alone
and for whole records (header, MATLAB file, conversion to mV), median of the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from team_code.data.records import find_records, load_record, read_header

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "challenge")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    paths = find_records(args.data)
    megabytes = sum(p.with_suffix(".mat").stat().st_size for p in paths) / 1e6
    rows = []
    for label, read in (("headers only", read_header), ("whole records", load_record)):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for path in paths:
                read(path)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        rows.append((label, median, len(paths) / median, megabytes / median))
    print(f"{len(paths)} records, {megabytes:.1f} MB of signal files, {args.data}")
    print(f"{'what':<14} {'median s':>9} {'records/s':>10} {'MB/s':>7}")
    for label, median, rate, mb_rate in rows:
        print(f"{label:<14} {median:9.3f} {rate:10.0f} {mb_rate:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
