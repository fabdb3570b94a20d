"""Time the learned delineator (``team_code.nn.delineator``) per 12-lead 10-s record on one
core: preprocessing (resampling to 250 Hz, filters, normalisation), the network, the
post-processing, and the whole ``delineate_record`` (wall time, and the thread's CPU time in
``cpu``, which leaves out waiting for a busy core); the median of several runs per record,
then the median over records.

Usage::

    python -m benchmarks.delineator_speed [--ludb DIR] [--records 1 5 7] [--runs 11]
        [--weights FILE]

Records: LUDB's (500 Hz) where the folder exists, else synthetic records
(``team_code.data.synth``). One torch thread; set ``OMP_NUM_THREADS=1`` too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _records(args) -> list[tuple[str, np.ndarray, float]]:
    folder = args.ludb or REPO.parent / "shared" / "data" / "ludb"
    if folder.is_dir():
        import wfdb

        out = []
        for rec in args.records:
            r = wfdb.rdrecord(str(folder / rec), physical=False)
            out.append((f"LUDB {rec}", r.d_signal.T.astype(np.float64) / 1000.0, float(r.fs)))
        return out
    from team_code.data.synth import RecordSpec, synthesize

    return [
        (f"synthetic {k}", synthesize(RecordSpec(), fs=500, duration_s=10, seed=k)[0], 500.0)
        for k in range(len(args.records))
    ]


def _median_ms(func, runs: int, clock=time.perf_counter) -> float:
    func()  # warm-up
    times = []
    for _ in range(runs):
        t0 = clock()
        func()
        times.append(clock() - t0)
    return 1e3 * float(np.median(times))


def main(argv=None) -> int:
    """Print the timing table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ludb", type=Path, default=None)
    p.add_argument("--records", nargs="+", default=["1", "5", "7", "13", "22"])
    p.add_argument("--runs", type=int, default=11)
    p.add_argument(
        "--weights", type=Path, default=None, help="default: the kit's (delineator.weights_path)"
    )
    args = p.parse_args(argv)

    import torch

    from team_code.nn import delineator as d

    torch.set_num_threads(1)
    model = d.load(args.weights)
    params = sum(v.numel() for v in model.parameters())
    path = args.weights or d.weights_path()
    print(
        f"delineator {path.name}: {params} parameters, {path.stat().st_size} bytes, "
        f"{model.config.input_channels} input channel(s); "
        f"torch threads {torch.get_num_threads()}; median of {args.runs} runs"
    )
    print(
        f"{'record':<14} {'leads':>5} {'prepare':>8} {'network':>8} {'post':>8} {'total':>8} "
        f"{'cpu':>8}"
    )
    rows = []
    net = model.config

    def prepare(x, fs):  # the preprocessing the weights were trained with
        return d.prepare(x, fs, net.lowpass_hz, net.input_channels, net.second_channel)

    for name, x, fs in _records(args):
        z, y = prepare(x, fs)
        labels = d.predict_labels(model, z)
        row = (
            _median_ms(lambda x=x, fs=fs: prepare(x, fs), args.runs),
            _median_ms(lambda z=z: d.predict_labels(model, z), args.runs),
            _median_ms(
                lambda labels=labels, y=y, fs=fs: d.segments_to_beats(
                    labels, y, d.FS, scale=fs / d.FS
                ),
                args.runs,
            ),
            _median_ms(lambda x=x, fs=fs: d.delineate_record(x, fs, model), args.runs),
            _median_ms(
                lambda x=x, fs=fs: d.delineate_record(x, fs, model), args.runs, time.thread_time
            ),
        )
        rows.append(row)
        print(f"{name:<14} {x.shape[0]:>5} " + " ".join(f"{v:>8.1f}" for v in row))
    med = np.median(np.array(rows), axis=0)
    print(f"{'median (ms)':<14} {'':>5} " + " ".join(f"{v:>8.1f}" for v in med))
    return 0


if __name__ == "__main__":
    sys.exit(main())
