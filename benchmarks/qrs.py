"""Benchmark QRS detectors on MIT-BIH Arrhythmia records.

Compares ``team_code.dsp.qrs.detect(method="christov2004")`` (on both leads and on lead MLII
alone) with wfdb's XQRS and NeuroKit2's default detector, against the reference beat
annotations, with the AAMI match window of 150 ms (``wfdb.processing.compare_annotations``).
Reference beats are the annotations whose symbol is a beat label
(N L R B A a J S V r F e j n E / f Q ?); rhythm, noise and other non-beat annotations
(+ ~ | " ! x [ ] ...) are excluded. Paced beats (/, f in records 102, 104, 107) are real
beats and are counted.

Usage::

    python benchmarks/qrs.py [--data DIR] [--records 100 208 ...] [--repeats 3]
        [--detectors christov2004 christov2004-mlii xqrs neurokit]

``--data`` defaults to ``$ECG_KIT_DATA/mitdb`` or ``<repo>/../shared/data/mitdb``. Times are
seconds per 30-min record (median of ``--repeats`` runs for our detector; one run for the
others, which are slower).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BEAT_SYMBOLS = frozenset(
    ["N", "L", "R", "B", "A", "a", "J", "S", "V", "r", "F", "e", "j", "n", "E", "/", "f", "Q", "?"]
)
DEFAULT_RECORDS = ["100", "102", "103", "104", "105", "106", "107", "108", "208"]
TOLERANCE_S = 0.150  # AAMI EC57 match window


def default_data_dir() -> Path:
    """The mitdb folder: $ECG_KIT_DATA/mitdb, else <repo>/../shared/data/mitdb."""
    env = os.environ.get("ECG_KIT_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    return root / "mitdb"


def load_mitdb(folder: Path, record: str):
    """Return (signal_mv (n_leads, n_samples), fs, lead names, reference beat samples)."""
    import wfdb

    rec = wfdb.rdrecord(str(folder / record))
    ann = wfdb.rdann(str(folder / record), "atr")
    ref = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS])
    return rec.p_signal.T.astype(np.float64), float(rec.fs), list(rec.sig_name), ref


def _christov(signal_mv, fs, leads):
    from team_code.dsp import qrs

    return qrs.detect(signal_mv, fs, method="christov2004")


def _christov_mlii(signal_mv, fs, leads):
    from team_code.dsp import qrs

    i = leads.index("MLII") if "MLII" in leads else 0
    return qrs.detect(signal_mv[i], fs, method="christov2004")


def _xqrs(signal_mv, fs, leads):
    import wfdb.processing

    i = leads.index("MLII") if "MLII" in leads else 0
    with contextlib.redirect_stdout(io.StringIO()):
        return wfdb.processing.xqrs_detect(signal_mv[i], fs=fs, verbose=False)


def _neurokit(signal_mv, fs, leads):
    import neurokit2 as nk

    i = leads.index("MLII") if "MLII" in leads else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, info = nk.ecg_peaks(signal_mv[i], sampling_rate=int(fs), method="neurokit")
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


DETECTORS = {
    "christov2004": _christov,  # ours, both leads as the complex lead
    "christov2004-mlii": _christov_mlii,  # ours, lead MLII alone
    "xqrs": _xqrs,  # wfdb.processing.xqrs_detect on MLII
    "neurokit": _neurokit,  # neurokit2.ecg_peaks(method="neurokit") on MLII
}
OURS = {"christov2004", "christov2004-mlii"}


def score(ref, test, fs):
    """(TP, FP, FN) with the AAMI 150 ms window via wfdb.processing.compare_annotations."""
    import wfdb.processing

    window = int(TOLERANCE_S * fs)
    cmp = wfdb.processing.compare_annotations(np.asarray(ref), np.asarray(test), window)
    return cmp.tp, cmp.fp, cmp.fn


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="folder with mitdb records")
    p.add_argument("--records", nargs="+", default=DEFAULT_RECORDS)
    p.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    p.add_argument("--repeats", type=int, default=3, help="timing runs for our detector")
    return p


def _pct(a, b):
    return 100.0 * a / b if b else float("nan")


def main(args) -> int:
    """Run the benchmark and print one table per detector plus a pooled summary."""
    folder = args.data or default_data_dir()
    if not folder.is_dir():
        print(f"error: MIT-BIH folder {folder} not found (use --data)", file=sys.stderr)
        return 2
    rows = {d: [] for d in args.detectors}
    for record in args.records:
        signal_mv, fs, leads, ref = load_mitdb(folder, record)
        for name in args.detectors:
            func = DETECTORS[name]
            repeats = max(1, args.repeats) if name in OURS else 1
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                peaks = func(signal_mv, fs, leads)
                times.append(time.perf_counter() - t0)
            tp, fp, fn = score(ref, peaks, fs)
            rows[name].append((record, len(ref), tp, fp, fn, float(np.median(times))))
    header = (
        f"{'record':>7} {'beats':>6} {'TP':>6} {'FP':>5} {'FN':>5} {'Se %':>7} {'+P %':>7} {'s':>7}"
    )
    summary = []
    for name in args.detectors:
        print(f"\n== {name}")
        print(header)
        for record, nb, tp, fp, fn, sec in rows[name]:
            print(
                f"{record:>7} {nb:>6} {tp:>6} {fp:>5} {fn:>5} "
                f"{_pct(tp, tp + fn):7.2f} {_pct(tp, tp + fp):7.2f} {sec:7.3f}"
            )
        nb, tp, fp, fn = (sum(r[i] for r in rows[name]) for i in (1, 2, 3, 4))
        sec = float(np.median([r[5] for r in rows[name]]))
        print(
            f"{'pooled':>7} {nb:>6} {tp:>6} {fp:>5} {fn:>5} "
            f"{_pct(tp, tp + fn):7.2f} {_pct(tp, tp + fp):7.2f} {sec:7.3f}"
        )
        summary.append((name, tp, fp, fn, sec))
    print("\n== pooled over records " + " ".join(args.records) + " (s = median per record)")
    print(f"{'detector':>18} {'TP':>6} {'FP':>5} {'FN':>5} {'Se %':>7} {'+P %':>7} {'s':>7}")
    for name, tp, fp, fn, sec in summary:
        print(
            f"{name:>18} {tp:>6} {fp:>5} {fn:>5} "
            f"{_pct(tp, tp + fn):7.2f} {_pct(tp, tp + fp):7.2f} {sec:7.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
