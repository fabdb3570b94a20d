"""The learned delineator's global boundaries between the leads' median and the kit's rule,
against LUDB's CSE-style reference.

Every LUDB record is delineated by the ``cnn-5fold`` model that never saw it
(``benchmarks/delineation.py``). On each beat, each global onset and offset (P, QRS, T) is
moved to ``median + w * (rule - median)``: ``rule`` is the kit's global boundary
(``global_from_leads``: the earliest onset or latest offset among the leads within 3 MAD of
their median), ``median`` the median of that boundary over the leads whose QRS overlaps the
beat's. ``w = 1`` is the kit's rule, ``w = 0`` its typical lead. For each ``w`` it prints the
interval rows against the CSE-style reference (earliest onset, latest offset of the
cardiologists' twelve leads): mean ± SD of the records' errors in ms, and how many records.

A look at one family on all records, not a choice: nothing here is shipped, and a ``w``
picked from this table would be in-sample. Usage::

    python -m benchmarks.delineation_blend [--ludb DIR] [--cnn-folds DIR] [--weights 0 0.5 1]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import delineation as bench

#: The boundaries moved: (wave, part) for each wave's onset and offset.
PARTS = tuple((wave, part) for wave in bench.WAVES for part in (bench.ON, bench.OFF))


def overlapping(beat: bench.Beat, per_lead: dict) -> list[bench.Beat]:
    """Each lead's beat whose QRS overlaps ``beat``'s (at most one per lead, the first)."""
    qrs = beat.waves.get("QRS")
    if qrs is None:
        return []
    out = []
    for beats in per_lead.values():
        for b in beats:
            q = b.waves.get("QRS")
            if q is not None and q[bench.ON] <= qrs[bench.OFF] and q[bench.OFF] >= qrs[bench.ON]:
                out.append(b)
                break
    return out


def blend(beat: bench.Beat, leads: Sequence[bench.Beat], w: float) -> bench.Beat:
    """``beat`` with every onset and offset moved to ``median + w * (own - median)``, the
    median taken over ``leads``' finite values of that boundary (kept where none has one)."""
    waves = {k: v.copy() for k, v in beat.waves.items()}
    for wave, part in PARTS:
        if wave not in waves or not math.isfinite(waves[wave][part]):
            continue
        values = [b.waves[wave][part] for b in leads if wave in b.waves]
        values = [v for v in values if math.isfinite(v)]
        if values:
            median = float(np.median(values))
            waves[wave][part] = median + w * (waves[wave][part] - median)
    return bench.Beat(r=beat.r, waves=waves)


def errors(cases: Sequence, weights: Sequence[float]) -> dict[float, dict[str, list[float]]]:
    """Per ``w``, per interval: the records' errors (method minus reference, ms)."""
    out = {w: {name: [] for name, _, _ in bench.INTERVALS} for w in weights}
    for case, res in cases:
        reference = bench.beat_intervals(case.ref, case.fs)
        pairs = [(b, overlapping(b, res.per_lead)) for b in res.beats]
        for w in weights:
            mine = bench.beat_intervals([blend(b, leads, w) for b, leads in pairs], case.fs)
            for name in out[w]:
                if math.isfinite(mine[name]) and math.isfinite(reference[name]):
                    out[w][name].append(mine[name] - reference[name])
    return out


def table(result: dict[float, dict[str, list[float]]]) -> str:
    """The printed rows: one per ``w``, mean ± SD (n) per interval."""
    names = [name for name, _, _ in bench.INTERVALS]
    lines = ["w      " + "".join(f"{n:>22}" for n in names)]
    for w, by_name in result.items():
        cells = []
        for name in names:
            e = np.asarray(by_name[name], dtype=float)
            sd = float(np.std(e, ddof=1)) if e.size > 1 else math.nan
            cells.append(f"{e.mean():+.1f} ± {sd:.1f} ({e.size})" if e.size else "-")
        lines.append(f"{w:<7g}" + "".join(f"{c:>22}" for c in cells))
    limits = ["{:g} / {:g}".format(*bench.IEC_LIMITS_MS[n]) for n in names]
    lines.append("IEC    " + "".join(f"{c:>22}" for c in limits))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ludb", type=Path, default=None, help="folder in LUDB layout")
    p.add_argument("--cnn-folds", type=Path, default=bench.CNN_FOLDS)
    p.add_argument("--records", nargs="+", default=None)
    p.add_argument("--weights", nargs="+", type=float, default=[0.0, 0.5, 1.0, 1.25, 1.5, 2.0])
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    bench.CNN.update(folds=args.cnn_folds)
    folder = args.ludb or bench.default_dir("ludb")
    cases = []
    for case in bench.ludb_cases(folder, args.records):
        res = bench.run_cnn(case, out_of_fold=True)
        if res is not None:
            cases.append((case, res))
    print(f"LUDB, CSE-style reference, {len(cases)} records (cnn-5fold, {args.cnn_folds})")
    print(table(errors(cases, args.weights)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
