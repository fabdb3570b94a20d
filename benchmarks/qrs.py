"""Benchmark QRS detectors on MIT-BIH Arrhythmia records and on the QT Database.

Compares ``team_code.dsp.qrs.detect(method="christov2004")`` (on all leads, and on one lead
alone) with wfdb's XQRS and NeuroKit2's default detector, against the reference beat
annotations, with the AAMI match window of 150 ms (``wfdb.processing.compare_annotations``).
Reference beats are the annotations whose symbol is a beat label
(N L R B A a J S V r F e j n E / f Q ?); rhythm, noise and other non-beat annotations
(+ ~ | " ! x [ ] T s ...) are excluded. Paced beats (/, f in records 102, 104, 107) are real
beats and are counted.

``--database mitdb`` (the default): the MIT-BIH records of ``--data``; ``-mlii`` detectors and
the peers read lead MLII. ``--database qtdb``: the QT Database records that carry the source
database's beat labels (``.atr``: 78 of its 105 records, 15 min each at 250 Hz, two leads of
varied names); every detector runs on each lead alone (``-mlii`` and the unsuffixed peers read
the first lead, which is MLII where the record has it; ``-lead1`` the second), and ours also on
both leads together.

Usage::

    python -m benchmarks.qrs [--database mitdb|qtdb] [--data DIR] [--records 100 208 ...]
        [--repeats 3] [--detectors christov2004 christov2004-mlii xqrs neurokit ...]

``--data`` defaults to ``$ECG_KIT_DATA/<database>`` or ``<repo>/../shared/data/<database>``;
``--records`` to the 9 MIT-BIH records here, or every QTDB record with an ``.atr`` file. Times
are seconds per record (median of ``--repeats`` runs for our detector; one run for the
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

BEAT_SYMBOLS = frozenset(
    ["N", "L", "R", "B", "A", "a", "J", "S", "V", "r", "F", "e", "j", "n", "E", "/", "f", "Q", "?"]
)
DEFAULT_RECORDS = ["100", "102", "103", "104", "105", "106", "107", "108", "208"]
TOLERANCE_S = 0.150  # AAMI EC57 match window


def default_data_dir(database: str = "mitdb") -> Path:
    """The database folder: $ECG_KIT_DATA/<database>, else <repo>/../shared/data/<database>."""
    env = os.environ.get("ECG_KIT_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    return root / database


def default_records(database: str, folder: Path) -> list[str]:
    """MIT-BIH: the 9 records here; QTDB: every record with beat labels (``.atr``)."""
    if database == "mitdb":
        return list(DEFAULT_RECORDS)
    names = (folder / "RECORDS").read_text().split() if (folder / "RECORDS").exists() else []
    names = names or sorted(p.stem for p in folder.glob("*.hea"))
    return [r for r in names if (folder / f"{r}.atr").exists()]


def load_mitdb(folder: Path, record: str):
    """Return (signal_mv (n_leads, n_samples), fs, lead names, reference beat samples).

    Any WFDB record with an ``.atr`` beat annotation file (MIT-BIH, QTDB) reads the same way.
    """
    import wfdb

    rec = wfdb.rdrecord(str(folder / record))
    ann = wfdb.rdann(str(folder / record), "atr")
    ref = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS])
    x = np.nan_to_num(rec.p_signal.T.astype(np.float64))
    return x, float(rec.fs), list(rec.sig_name), ref


def _first(leads) -> int:
    """Lead MLII if the record has it, else the first lead."""
    return leads.index("MLII") if "MLII" in leads else 0


def _second(leads) -> int:
    return 1 if len(leads) > 1 else 0


def _christov(signal_mv, fs, leads):
    from team_code.dsp import qrs

    return qrs.detect(signal_mv, fs, method="christov2004")


def _christov_lead(pick):
    def run(signal_mv, fs, leads):
        from team_code.dsp import qrs

        return qrs.detect(signal_mv[pick(leads)], fs, method="christov2004")

    return run


def _xqrs_lead(pick):
    def run(signal_mv, fs, leads):
        import wfdb.processing

        with contextlib.redirect_stdout(io.StringIO()):
            return wfdb.processing.xqrs_detect(signal_mv[pick(leads)], fs=fs, verbose=False)

    return run


def _neurokit_lead(pick):
    def run(signal_mv, fs, leads):
        import neurokit2 as nk

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, info = nk.ecg_peaks(signal_mv[pick(leads)], sampling_rate=int(fs), method="neurokit")
        return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)

    return run


DETECTORS = {
    "christov2004": _christov,  # ours, all leads as the complex lead
    "christov2004-mlii": _christov_lead(_first),  # ours, lead MLII (else the first) alone
    "christov2004-lead1": _christov_lead(_second),  # ours, the second lead alone
    "xqrs": _xqrs_lead(_first),  # wfdb.processing.xqrs_detect on MLII (else the first lead)
    "xqrs-lead1": _xqrs_lead(_second),
    "neurokit": _neurokit_lead(_first),  # neurokit2.ecg_peaks(method="neurokit") on MLII
    "neurokit-lead1": _neurokit_lead(_second),
}
OURS = {"christov2004", "christov2004-mlii", "christov2004-lead1"}
DEFAULT_DETECTORS = {
    "mitdb": ["christov2004", "christov2004-mlii", "xqrs", "neurokit"],
    "qtdb": list(DETECTORS),
}


def score(ref, test, fs):
    """(TP, FP, FN) with the AAMI 150 ms window via wfdb.processing.compare_annotations."""
    import wfdb.processing

    window = int(TOLERANCE_S * fs)
    cmp = wfdb.processing.compare_annotations(np.asarray(ref), np.asarray(test), window)
    return cmp.tp, cmp.fp, cmp.fn


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", choices=["mitdb", "qtdb"], default="mitdb")
    p.add_argument("--data", type=Path, default=None, help="folder with the database's records")
    p.add_argument("--records", nargs="+", default=None)
    p.add_argument("--detectors", nargs="+", default=None, choices=list(DETECTORS))
    p.add_argument("--repeats", type=int, default=3, help="timing runs for our detector")
    return p


def _pct(a, b):
    return 100.0 * a / b if b else float("nan")


def main(args) -> int:
    """Run the benchmark and print one table per detector plus a pooled summary."""
    folder = args.data or default_data_dir(args.database)
    if not folder.is_dir():
        print(f"error: {args.database} folder {folder} not found (use --data)", file=sys.stderr)
        return 2
    records = args.records or default_records(args.database, folder)
    detectors = args.detectors or DEFAULT_DETECTORS[args.database]
    rows = {d: [] for d in detectors}
    for record in records:
        signal_mv, fs, leads, ref = load_mitdb(folder, record)
        for name in detectors:
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
        f"{'record':>8} {'beats':>6} {'TP':>6} {'FP':>5} {'FN':>5} {'Se %':>7} {'+P %':>7} {'s':>7}"
    )
    summary = []
    for name in detectors:
        print(f"\n== {name}")
        print(header)
        for record, nb, tp, fp, fn, sec in rows[name]:
            print(
                f"{record:>8} {nb:>6} {tp:>6} {fp:>5} {fn:>5} "
                f"{_pct(tp, tp + fn):7.2f} {_pct(tp, tp + fp):7.2f} {sec:7.3f}"
            )
        nb, tp, fp, fn = (sum(r[i] for r in rows[name]) for i in (1, 2, 3, 4))
        sec = float(np.median([r[5] for r in rows[name]]))
        print(
            f"{'pooled':>8} {nb:>6} {tp:>6} {fp:>5} {fn:>5} "
            f"{_pct(tp, tp + fn):7.2f} {_pct(tp, tp + fp):7.2f} {sec:7.3f}"
        )
        summary.append((name, tp, fp, fn, sec))
    print(
        f"\n== {args.database}: pooled over {len(records)} records "
        + (" ".join(records) if len(records) <= 12 else f"{records[0]} ... {records[-1]}")
        + " (s = median per record)"
    )
    print(f"{'detector':>18} {'TP':>6} {'FP':>5} {'FN':>5} {'Se %':>7} {'+P %':>7} {'s':>7}")
    for name, tp, fp, fn, sec in summary:
        print(
            f"{name:>18} {tp:>6} {fp:>5} {fn:>5} "
            f"{_pct(tp, tp + fn):7.2f} {_pct(tp, tp + fp):7.2f} {sec:7.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
