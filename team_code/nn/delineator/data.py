"""The learned delineator's training data from cardiologists' marks, without torch: LUDB's
per-lead waves (:func:`ludb_labels`, :func:`load_ludb`) and QTDB's ``.q1c`` marks
(:func:`qtdb_labels`, :func:`read_qtdb`, :func:`load_qtdb`), the records of a folder and
their folds (:func:`fold_split`).

A lead's annotated span only is labelled (:data:`~team_code.nn.delineator.inputs.IGNORE`
elsewhere: the loss ignores the rest of the 10 s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from team_code.nn.delineator.inputs import FS, IGNORE, NONE, QRS, P, T, prepare

LUDB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")


# --------------------------------------------------------------------------- training data


#: LUDB's wave symbols (any other symbol is not a wave)
_LUDB_KINDS = {"p": P, "N": QRS, "t": T}


def _annotated_waves(
    samples, symbols, kinds: dict[str, int], other: int | None = None
) -> list[tuple[int, float, float, float]]:
    """``(class, onset, peak, offset)`` of each wave of a WFDB wave annotation (``(`` the
    onset, the wave's symbol at its peak, ``)`` the offset; a missing onset or offset is
    NaN). ``kinds`` maps wave symbols to classes; any other symbol is a wave of class
    ``other``, or no wave where ``other`` is None (LUDB: ``_LUDB_KINDS``; QTDB's ``.q1c``:
    ``_QTDB_NOT_QRS``, every other symbol a beat's QRS)."""
    out: list[list] = []
    onset = math.nan
    open_wave: list | None = None
    for s, sym in zip(samples, symbols):
        if sym == "(":
            onset, open_wave = float(s), None
        elif sym == ")":
            if open_wave is not None:
                open_wave[3] = float(s)
            open_wave = None
        elif (cls := kinds.get(sym, other)) is not None:
            open_wave = [cls, onset, float(s), math.nan]
            out.append(open_wave)
            onset = math.nan
    return [tuple(w) for w in out]


def ludb_labels(samples, symbols, n: int, factor: int = 2) -> np.ndarray:
    """Per-sample class of one LUDB lead at ``1 / factor`` of its rate (500 -> 250 Hz):
    the waves' ``[onset, offset]`` get their class, the rest of the annotated span (first to
    last mark) ``none``, samples outside it :data:`IGNORE`; a wave without onset or offset
    makes the stretch from the span's edge to its known end :data:`IGNORE`."""
    lab = np.full(n, IGNORE, np.int64)
    samples = np.asarray(samples)
    if not samples.size:
        return lab[::factor].copy()
    lo, hi = int(samples.min()), int(samples.max())
    lab[lo : hi + 1] = NONE
    for cls, on, _, off in _annotated_waves(samples, symbols, _LUDB_KINDS):
        if math.isfinite(on) and math.isfinite(off):
            lab[int(on) : int(off) + 1] = cls
        elif math.isfinite(off):
            lab[lo : int(off) + 1] = IGNORE
        elif math.isfinite(on):
            lab[int(on) : hi + 1] = IGNORE
    return lab[::factor].copy()


def load_ludb(
    folder: str | Path,
    records: Sequence[str],
    lowpass_hz: float = 40.0,
    input_channels: int = 1,
    second: str = "wide",
) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)`` of every lead of ``records``: (n_records * 12, n) normalised
    leads at :data:`FS` ((n_records * 12, 2, n) with two input channels, the second
    ``second``; :func:`prepare`) and
    their per-sample labels (:func:`ludb_labels`). Digital samples at 1000 units/mV (LUDB's
    header gains are wrong)."""
    import wfdb

    folder = Path(folder)
    xs, ys = [], []
    for rec in records:
        path = folder / str(rec)
        if not path.with_suffix(".hea").is_file():
            raise FileNotFoundError(f"LUDB record {rec}: no header {path}.hea")
        r = wfdb.rdrecord(str(path), physical=False)
        if r.fs != 500:
            raise ValueError(f"LUDB record {rec}: sampling rate {r.fs} Hz, expected 500")
        names = [s.lower() for s in r.sig_name]
        x = r.d_signal.T.astype(np.float64) / 1000.0
        z, _ = prepare(x, r.fs, lowpass_hz, input_channels, second)
        for lead in LUDB_LEADS:
            if lead not in names:
                raise ValueError(f"LUDB record {rec}: lead {lead} missing ({names})")
            ann = wfdb.rdann(str(path), lead)
            lab = ludb_labels(ann.sample, ann.symbol, x.shape[1])
            m = min(lab.size, z.shape[-1])
            xs.append(z[names.index(lead), ..., :m])
            ys.append(lab[:m])
    m = min(v.shape[-1] for v in xs)
    return np.stack([v[..., :m] for v in xs]), np.stack([v[:m] for v in ys])


#: Leads read together: a sample of the global labels is marked where at least this many of
#: the twelve leads are (:func:`global_labels`)
GLOBAL_MIN_LEADS = 6


def global_labels(lead_labels: np.ndarray, min_leads: int = GLOBAL_MIN_LEADS) -> np.ndarray:
    """The global waves of one record from its leads' labels (n_leads, n), as the
    earliest-onset, latest-offset (CSE-style) reference takes them: per sample the union over
    the leads of each wave, QRS over P over T where two leads' waves overlap, ``none``
    elsewhere; :data:`IGNORE` where fewer than ``min_leads`` leads are annotated."""
    lab = np.atleast_2d(lead_labels)
    marked = (lab != IGNORE).sum(axis=0) >= min_leads
    out = np.full(lab.shape[1], IGNORE, np.int64)
    out[marked] = NONE
    for cls in (T, P, QRS):
        out[marked & (lab == cls).any(axis=0)] = cls
    return out


def load_ludb_together(
    folder: str | Path, records: Sequence[str], lowpass_hz: float = 40.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)`` of ``records`` for a network that reads the twelve leads
    together: (n_records, 12, n) normalised leads in :data:`LUDB_LEADS` order (each as
    :func:`load_ludb` prepares it) and their :func:`global_labels` (n_records, n)."""
    x, y = load_ludb(folder, records, lowpass_hz)
    k = len(LUDB_LEADS)
    x = x.reshape(len(records), k, x.shape[-1])
    y = y.reshape(len(records), k, y.shape[-1])
    return x, np.stack([global_labels(r) for r in y])


#: ``.q1c`` symbols of a wave that is not a QRS complex (any other wave symbol is a beat's QRS)
_QTDB_NOT_QRS = {"p": P, "t": T, "u": NONE}
QTDB_WINDOW = 2500  #: samples per QTDB training row at :data:`FS` (10 s, as a LUDB lead)
#: a listed beat this close (s) to a marked QRS peak is that beat (``.atr`` marks lie up to
#: ~50 ms from ``.q1c``'s peaks)
QTDB_SAME_BEAT_S = 0.16
#: ``.atr`` symbols of a beat (the benchmark's ``BEAT_SYMBOLS``); ``.pu`` marks each QRS "N"
_QTDB_BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


def _qtdb_beats(path: Path) -> np.ndarray | None:
    """Samples of every beat of a QTDB record: its source database's ``.atr`` beat labels,
    else ecgpuwave's ``.pu`` QRS marks, else None."""
    import wfdb

    for ext, symbols in (("atr", _QTDB_BEAT_SYMBOLS), ("pu", {"N"})):
        if path.with_suffix(f".{ext}").is_file():
            ann = wfdb.rdann(str(path), ext)
            return np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in symbols])
    return None


def qtdb_labels(
    samples, symbols, n: int, max_rr: float = 1.5, beats: Sequence[float] | None = None
) -> np.ndarray:
    """Per-sample class of a QTDB record (``.q1c``, one mark set for both leads, at
    :data:`FS`), :data:`IGNORE` outside its annotated runs. A run is a stretch of annotated
    beats whose QRS peaks lie at most ``max_rr`` times the median RR apart (a longer gap holds
    beats the cardiologist did not mark) and, where ``beats`` (the samples of every beat of
    the record: the source database's ``.atr`` or ecgpuwave's ``.pu``) is given, with no beat
    between two of them farther than :data:`QTDB_SAME_BEAT_S` from both (in sel213 the
    cardiologist marked every other beat of a bigeminy, so that the median RR is twice the
    rhythm's and the RR rule alone keeps the unmarked beats inside the run, as ``none``);
    inside a run, every sample between the first and the last mark is ``none`` unless a wave
    covers it. A wave without an onset (most T waves) is
    labelled from its peak on, the stretch from the previous mark to its peak ignored; one
    without an offset up to its peak, the stretch to the next mark ignored. In a record whose
    cardiologist marked no P wave at all, the stretch before each QRS onset back to the
    previous mark is ignored (the benchmark does not count a P wave found there as false)."""
    lab = np.full(n, IGNORE, np.int64)
    waves = [w for w in _annotated_waves(samples, symbols, _QTDB_NOT_QRS, QRS) if 0 <= w[2] < n]
    marks = np.sort(np.asarray(samples, dtype=np.float64))
    qrs = [w for w in waves if w[0] == QRS]
    if len(qrs) < 2:
        return lab
    peaks = np.array([w[2] for w in qrs])
    rr = np.diff(peaks)
    cut = rr > max_rr * np.median(rr)
    if beats is not None:  # a beat between two marked ones: they are not consecutive
        b = np.asarray(beats, dtype=np.float64)
        b = b[(b > peaks[0]) & (b < peaks[-1])]
        gap = np.searchsorted(peaks, b) - 1  # peaks[gap] < b <= peaks[gap + 1]
        apart = np.minimum(b - peaks[gap], peaks[gap + 1] - b) > QTDB_SAME_BEAT_S * FS
        cut[gap[apart]] = True
    cuts = np.flatnonzero(cut)
    bounds = np.split(np.arange(peaks.size), cuts + 1)
    p_marked = any(w[0] == P for w in waves)

    def prev_mark(x: float) -> int:
        i = np.searchsorted(marks, x, side="left") - 1
        return int(marks[i]) if i >= 0 else 0

    def next_mark(x: float) -> int:
        i = np.searchsorted(marks, x, side="right")
        return int(marks[i]) if i < marks.size else n - 1

    # each wave's beat: a QRS its own, a P wave the next QRS's, a T or U wave the previous's
    owner = []
    for cls, _, peak, _ in waves:
        i = int(np.searchsorted(peaks, peak, side="left"))
        owner.append(i if cls in (QRS, P) else i - 1)
    for run in bounds:
        mine = set(run.tolist())
        inside = [w for w, o in zip(waves, owner) if o in mine and abs(w[2] - peaks[o]) < FS]
        ends = [v for w in inside for v in (w[1], w[2], w[3]) if math.isfinite(v)]
        lab[int(min(ends)) : int(max(ends)) + 1] = NONE
        for cls, on, peak, off in inside:
            a = int(on) if math.isfinite(on) else int(peak)
            b = int(off) if math.isfinite(off) else int(peak)
            if not math.isfinite(on):
                lab[prev_mark(peak) + 1 : int(peak)] = IGNORE
            if not math.isfinite(off):
                lab[int(peak) + 1 : next_mark(peak)] = IGNORE
            lab[a : b + 1] = cls
            if cls == QRS and not p_marked:
                lab[prev_mark(a) + 1 : a] = IGNORE
    return lab


def read_qtdb(folder: str | Path, record: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, labels)`` of one QTDB record: its leads (n_leads, n) in mV at :data:`FS` and
    :func:`qtdb_labels` of its ``.q1c`` marks, split at the beats its ``.atr`` (else ``.pu``)
    lists. A record without ``.q1c`` marks is refused."""
    import wfdb

    path = Path(folder) / str(record)
    if not path.with_suffix(".q1c").is_file():
        raise FileNotFoundError(f"QTDB record {record}: no cardiologist marks {path}.q1c")
    r = wfdb.rdrecord(str(path))
    if r.fs != FS:
        raise ValueError(f"QTDB record {record}: sampling rate {r.fs} Hz, expected {FS:g}")
    x = np.nan_to_num(r.p_signal.T.astype(np.float64))
    ann = wfdb.rdann(str(path), "q1c")
    return x, qtdb_labels(ann.sample, ann.symbol, x.shape[1], beats=_qtdb_beats(path))


def load_qtdb(
    folder: str | Path,
    records: Sequence[str],
    lowpass_hz: float = 40.0,
    input_channels: int = 1,
    length: int = QTDB_WINDOW,
    second: str = "wide",
) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)`` of QTDB ``records`` in rows of ``length`` samples, as
    :func:`load_ludb` gives LUDB leads: each annotated run (:func:`qtdb_labels`) is cut into
    windows of ``length`` samples from 1 s before its first mark, each window of each lead
    prepared on its own (:func:`prepare`: a 10-s window is normalised as a 10-s record is),
    both leads taking the record's labels (:func:`read_qtdb`). Records without ``.q1c`` marks
    are refused."""
    xs, ys = [], []
    for rec in records:
        x, lab = read_qtdb(folder, rec)
        labelled = np.flatnonzero(lab != IGNORE)
        if not labelled.size or x.shape[1] < length:
            continue
        start, last = int(labelled[0]) - int(FS), int(labelled[-1])
        while start <= last:
            a = min(max(0, start), x.shape[1] - length)
            seg = lab[a : a + length]
            if (seg != IGNORE).any():
                z, _ = prepare(x[:, a : a + length], FS, lowpass_hz, input_channels, second)
                for lead in range(x.shape[0]):
                    xs.append(z[lead])
                    ys.append(seg.copy())
            nxt = np.flatnonzero(lab[a + length :] != IGNORE)
            start = a + length + int(nxt[0]) - int(FS) if nxt.size else last + 1
            start = max(start, a + 1)
    if not xs:
        shape = (0, input_channels, length) if input_channels == 2 else (0, length)
        return np.zeros(shape, np.float32), np.zeros((0, length), np.int64)
    return np.stack(xs), np.stack(ys)


def fold_split(records: Sequence[str], k: int = 5, seed: int = 0) -> list[list[str]]:
    """``k`` folds of ``records`` by a seeded permutation (``numpy``), each in name order."""
    if not 2 <= k <= len(records):
        raise ValueError(f"need 2 <= k <= {len(records)} records; got k={k}")
    perm = np.random.default_rng(seed).permutation(len(records))
    return [sorted((records[j] for j in perm[f::k]), key=_natural) for f in range(k)]


def _natural(name: str):
    return (0, int(name)) if str(name).isdigit() else (1, str(name))


def _folder_records(folder: Path, wanted: Sequence[str] | None) -> list[str]:
    """``wanted``, else the folder's records (its ``RECORDS``, else its headers) in natural
    order: LUDB's and QTDB's folders alike."""
    if wanted:
        return list(wanted)
    f = folder / "RECORDS"
    names = f.read_text().split() if f.exists() else [p.stem for p in folder.glob("*.hea")]
    return sorted(names, key=_natural)
