"""Score wave delineation against cardiologists' boundaries on LUDB and QTDB.

The kit's delineation (``team_code/dsp/delineation.py``, run by ``features.measure`` on the
robust average beat of a record, with global multi-lead boundaries) is compared, on the same
signals, with NeuroKit2's ``ecg_delineate`` (methods ``dwt`` and ``peak``) and, on QTDB, with
the automatic ecgpuwave boundaries shipped in ``.pu0``/``.pu1``. Two tables per database:

1. **Boundaries** (P onset, P offset, QRS onset, QRS offset, T peak, T offset): for every
   boundary the cardiologist marked, the method's boundary of the same beat; ``n`` is the
   number matched within 150 ms, mean and SD of the error (method minus cardiologist, ms),
   sensitivity = matched / marked and positive predictivity = matched / given (see below).
2. **Global intervals per record** (P duration, PR, QRS duration, QT), the way IEC 60601-2-25
   judges interval measurement: per record (QTDB: per analysis window) the method's
   record-level value minus the cardiologists' (the median over the record's annotated beats),
   mean and SD of that difference over records; only records where both have a value count
   (``missing``/``extra`` in the printed table count the others).

Comparing a global delineation with per-lead annotations
--------------------------------------------------------
LUDB's cardiologists marked every lead separately; the kit measures one global boundary per
beat on all leads together, as the 12-lead programs and the CSE study do. The reference beat
is therefore built by the CSE convention: per beat, the **earliest onset and the latest
offset over the 12 leads** (peaks: the median over the leads that mark the wave), and a wave is
present in a beat when any lead marks it. Twelve independent marks spread, so this reference
is wider than any one lead's; ``--ludb-reference median`` builds it from the median over the
leads instead (its rows say database ``LUDB lead-median``), ``--ludb-reference robust`` by the
kit's own global rule (``LUDB robust``: the CSE definition without one lead's outlying mark).
QTDB's ``.q1c`` marks are one set per beat, not tied to a lead; they are taken as they are.

``--ludb-reference per-lead`` (database ``LUDB per-lead``) scores every lead against its own
marks, as lead-by-lead delineators are judged on LUDB: a method that delineates each lead
(``Output.per_lead``; the single-lead peers then run on all 12 leads) is scored with that
lead's boundaries, a global method with its global boundaries on every lead. Counts pool over
leads (``marked`` is the number of lead-beats); a missing wave counts as absent within that
lead's own annotated span; an interval row has one value per lead and record (the median over
the lead's beats against the lead's reference). No combination rule or best-lead rows apply.

The single-lead peers run on each lead (LUDB: the kit's eight independent leads I, II,
V1-V6; QTDB: both leads) at the beats the kit detected (each moved to the lead's maximum
within 50 ms, NeuroKit2's notion of an R peak), so that every method delineates the same
beats; ecgpuwave's ``.pu0``/``.pu1`` come with their own beats. Their per-lead beats become
global ones by the CSE rule (``--combine cse``, the plain method name) and/or by the median
over leads (``--combine median``: ``<method> lead-median``), which spares them the outliers
an earliest/latest rule picks up, and/or by the kit's own rule (``--combine robust``:
``<method> robust``; the earliest onset and latest offset of the leads within 3 scaled MADs
of their median). On QTDB the convention usually behind published single-lead figures
(e.g. Martinez et al. 2004) is also reported as ``<method> best-lead``: for each marked
boundary, the lead whose boundary is closer to the cardiologist's (optimistic
by construction; no interval rows).

The kit's average beat on per-beat annotations
----------------------------------------------
The kit delineates one beat per record, the median beat of the dominant QRS morphology:
every usable lead on its own (``delineation.delineate_leads``) and the global boundaries
from the leads (earliest onset, latest offset, robust to one stray lead; no P wave where the
rhythm has none). ``project`` (the shipped method) maps those boundaries onto every beat of
that morphology (their offsets from the R peak, added to each beat's aligned R peak): a
per-beat score then measures how well one record-level boundary describes every beat, which
includes the beat-to-beat variation the average removes (PR and QT change with RR); beats of
another morphology (PVCs) get no boundaries and count as missed. With ``--ludb-reference
per-lead`` its per-lead boundaries are scored on each lead. ``project-sv`` is the
delineation of the independent leads together (spatial velocity and magnitude curves,
``delineation.delineate``), the anchor of the per-lead step and the window of the kit's
amplitude measures. ``project-beatwise`` runs the per-lead and global delineation on each
single beat window of the same filtered signal (it separates the delineator from the
averaging). The interval table: ``project`` gives the record's ``global_p_ms``,
``global_pr_ms``, ``global_qrs_ms``, ``global_qt_ms`` of ``features.measure``,
``project-sv`` its ``p_ms``, ``pr_ms``, ``qrs_ms``, ``qt_ms``; the other methods the median
of their per-beat intervals over the analysed signal.

The learned delineator
----------------------
``cnn`` is ``team_code.nn.delineator`` (a small 1-D U-Net labelling every sample of each
lead none / P / QRS / T) with the weights given by ``--cnn-weights`` (default: the kit's,
built from the 100 shared LUDB records (``team_code.nn.delineator.BUILD_COMMAND``), so its
LUDB rows are in-sample; its QTDB rows are not). ``cnn-5fold`` scores every LUDB record with
the fold model that never saw it (``--cnn-folds DIR``: ``folds.json`` and the weights
written by ``python -m team_code.nn.delineator folds``); it has QTDB rows where its folds
held QTDB records out too (``folds --qtdb DIR``: every QTDB window scored by the model that
never saw its record), none otherwise. Both
delineate every beat on every lead of the signal; their global boundaries per beat come
from the leads by the kit's rule (``global_from_leads``), their intervals are the median
over beats.

``cnn-together-5fold`` (LUDB only; not run unless named) is one network that reads the
twelve leads at once and labels the union of their waves, the CSE-style global waves
(``python -m team_code.nn.delineator folds --together``; ``--cnn-together-folds DIR``), each
record scored by the fold model that never saw it; it gives global beats only (a per-lead
row scores them on every lead). Compared, not shipped.

The cardiologists' own marks as a method
----------------------------------------
``cardiologists`` (LUDB only; not run unless named) gives each lead the cardiologist's own
marks (``Case.marks``), combined into global beats by ``--combine`` like a single-lead peer's.
It reads the reference, so it is no delineator: its ``cardiologists lead-median`` rows under
the CSE-style reference are what a method that measured the cardiologists' typical lead
exactly would score there (the CSE-style reference minus the lead-median one, record by
record), its ``cardiologists robust`` rows there what a method that measured every lead
exactly and combined the leads by the kit's own rule would score (the share of the CSE-style
reference's spread that one lead's outlying mark makes), and its plain rows against the
CSE-style reference (or its ``lead-median`` rows against the lead-median one) score the
reference against itself: zero error, every mark matched.

Matching, sensitivity and positive predictivity
-----------------------------------------------
Each annotated (reference) beat owns a stretch of signal per wave: for P, from the previous
beat's R peak to its own; for QRS, half-way to each neighbour; for T, from its R peak to the
next beat's (neighbours from all beats of the record: LUDB's annotated beats, QTDB's ``.atr``
labels or, without them, ecgpuwave's QRS marks). A method's wave belongs to the beat whose
stretch holds its peak (or the middle of its boundaries). For each boundary the reference
marks, the closest of the method's boundaries of that beat matches if within 150 ms (a true
positive, its error enters mean/SD); otherwise the mark is missed. Given boundaries that match
nothing are false positives: extra ones in an annotated beat, and any in a beat where the
cardiologists saw no such wave (a P wave in atrial fibrillation) -- on LUDB (whose annotators
marked every wave present, inside the annotated stretch of the record) always, on QTDB only in
records where that wave is marked on some beat (``sel35`` and ``sel37`` mark QRS alone).
Unannotated beats (most of QTDB; LUDB's first and last second) are not scored.

Data
----
LUDB: WFDB records at 500 Hz, digital samples at 1000 units/mV (the header gains are wrong,
see ``../shared/data/README.md``); annotations ``<rec>.i`` ... ``<rec>.v6``. QTDB: 250 Hz
two-lead 15-min records; ``.q1c`` the first cardiologist, ``.pu0``/``.pu1`` ecgpuwave per lead.
The kit analyses at most 30 s, so each QTDB record is cut into 30-s windows around its
annotated beats (the first window starts 1.5 s before the first annotated beat; the next
window starts 1.5 s before the first beat not yet inside one with 1.5 s to spare), and every
method is run on the same windows; a window is one "record" of the interval table.

The printed boundary table also gives ``sd_rec``, the mean over records of the SD within each
record (published QTDB tables may be computed that way); the JSON ``sd_ms`` is the SD of
all matched errors pooled.

Usage::

    python -m benchmarks.delineation [--ludb DIR] [--qtdb DIR] [--records 1 5 sel100 ...]
        [--methods project project-sv project-beatwise neurokit2-dwt neurokit2-peak ecgpuwave
                   cnn cnn-5fold cnn-together-5fold cardiologists] [--cnn-weights FILE]
        [--cnn-folds DIR] [--cnn-together-folds DIR]
        [--combine cse median robust] [--ludb-reference cse|median|robust|per-lead] [--no-best-lead]
        [--agreement A B] [--json FILE]

``--ludb``/``--qtdb`` default to ``$ECG_KIT_DATA/{ludb,qtdb}`` or
``<repo>/../shared/data/{ludb,qtdb}``; ``--skip-ludb``/``--skip-qtdb`` leave one out. JSON rows:
``{"method", "database", "measure", "n", "mean_ms", "sd_ms", "sensitivity", "ppv"}`` with
sensitivity and ppv as fractions (null for the intervals, and for boundaries a method never
gives).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

TOLERANCE_S = 0.150  # a boundary within this of the cardiologist's matches
WAVES = ("P", "QRS", "T")
ON, PEAK, OFF = 0, 1, 2
#: (measure, wave, part) of each scored boundary
BOUNDARIES: tuple[tuple[str, str, int], ...] = (
    ("P onset", "P", ON),
    ("P offset", "P", OFF),
    ("QRS onset", "QRS", ON),
    ("QRS offset", "QRS", OFF),
    ("T peak", "T", PEAK),
    ("T offset", "T", OFF),
)
#: (measure, start boundary, end boundary) of each global interval
INTERVALS: tuple[tuple[str, tuple[str, int], tuple[str, int]], ...] = (
    ("P duration", ("P", ON), ("P", OFF)),
    ("PR interval", ("P", ON), ("QRS", ON)),
    ("QRS duration", ("QRS", ON), ("QRS", OFF)),
    ("QT interval", ("QRS", ON), ("T", OFF)),
)
BOUNDARY_NAMES = frozenset(b[0] for b in BOUNDARIES)
MEASURES: tuple[str, ...] = tuple(b[0] for b in BOUNDARIES) + tuple(i[0] for i in INTERVALS)
#: CSE tolerances (two SD of the referees' own spread, ms), as tabulated by Martinez et al. 2004
CSE_2SD_MS = {
    "P onset": 10.2,
    "P offset": 12.7,
    "QRS onset": 6.5,
    "QRS offset": 11.6,
    "T offset": 30.6,
}
#: IEC 60601-2-25 limits for global intervals on biological ECGs: (|mean| ms, SD ms)
IEC_LIMITS_MS = {
    "P duration": (10.0, 15.0),
    "PR interval": (10.0, 10.0),
    "QRS duration": (10.0, 10.0),
    "QT interval": (25.0, 30.0),
}
#: Beat labels (as in benchmarks/qrs.py); any of them marks a QRS in an annotation stream
BEAT_SYMBOLS = frozenset(
    ["N", "L", "R", "B", "A", "a", "J", "S", "V", "r", "F", "e", "j", "n", "E", "/", "f", "Q", "?"]
)
METHODS = (
    "project",
    "project-sv",
    "project-beatwise",
    "neurokit2-dwt",
    "neurokit2-peak",
    "ecgpuwave",
    "cnn",
    "cnn-5fold",
    "cnn-together-5fold",
    "cardiologists",
)
#: The methods run when ``--methods`` is not given (``cardiologists`` is a reading of the
#: reference, not a delineator; ``cnn-together-5fold`` a variant compared, not shipped).
DEFAULT_METHODS = tuple(m for m in METHODS if m not in ("cardiologists", "cnn-together-5fold"))
#: Where ``cnn-5fold`` finds its fold models by default (``python -m team_code.nn.delineator
#: folds --out``): ``folds.json`` maps each weights file to the records it never saw.
CNN_FOLDS = REPO / "cache" / "delineator_folds"
#: Where ``cnn-together-5fold`` finds its fold models by default (``folds --together --out``)
CNN_TOGETHER_FOLDS = REPO / "cache" / "delineator_together_folds"
#: The learned delineator's settings of this run (``main`` sets them from the options).
CNN = {
    "weights": None,
    "folds": CNN_FOLDS,
    "together_folds": CNN_TOGETHER_FOLDS,
    "models": {},
    "post": None,
}
LUDB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
PEER_LEADS_12 = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")  # as the kit's delineation


# --------------------------------------------------------------------------- beats and waves


@dataclasses.dataclass
class Beat:
    """One beat: its QRS fiducial sample and, per wave present, ``[onset, peak, offset]``."""

    r: float  # QRS fiducial (R peak or the QRS peak mark), in samples
    waves: dict  # "P" / "QRS" / "T" -> np.ndarray([on, peak, off]) (NaN where not given)


def _position(bounds: np.ndarray) -> float:
    """Where a wave is: its peak, else the middle of its boundaries, else any boundary."""
    if math.isfinite(bounds[PEAK]):
        return float(bounds[PEAK])
    ends = bounds[[ON, OFF]]
    ends = ends[np.isfinite(ends)]
    return float(ends.mean()) if ends.size else math.nan


def parse_waves(samples: Sequence, symbols: Sequence[str]) -> list[tuple[str, float, float, float]]:
    """Waves ``(kind, onset, peak, offset)`` of a WFDB wave-boundary annotation stream.

    ``(`` opens a wave, a peak symbol names it (``p`` P, ``t`` T, ``u`` U, a beat label QRS),
    ``)`` closes it; a missing onset or offset is NaN. A second peak of the same kind before
    the offset (a biphasic T in ``.pu``) is ignored: the first peak is kept. Other symbols
    (rhythm, noise) are skipped.
    """
    waves: list[list] = []
    onset = math.nan
    current: int | None = None
    for s, sym in zip(samples, symbols):
        s = float(s)
        if sym == "(":
            onset, current = s, None
        elif sym == ")":
            if current is not None and math.isnan(waves[current][3]):
                waves[current][3] = s
            onset, current = math.nan, None
        elif sym in ("p", "t", "u") or sym in BEAT_SYMBOLS:
            kind = {"p": "P", "t": "T", "u": "U"}.get(sym, "QRS")
            if current is not None and waves[current][0] == kind:
                continue
            waves.append([kind, onset, s, math.nan])
            current, onset = len(waves) - 1, math.nan
    return [tuple(w) for w in waves]


def waves_to_beats(waves, fs: float, max_pr_s: float = 0.6, max_rt_s: float = 1.0) -> list[Beat]:
    """Group waves into beats: each QRS a beat, the P before it and the T after it.

    A P belongs to the first QRS after its position (within ``max_pr_s``), a T to the last QRS
    before it (within ``max_rt_s``); when two compete, the one closer to the QRS wins.
    """
    qrs = [w for w in waves if w[0] == "QRS"]
    beats = []
    for w in qrs:
        b = np.array(w[1:], dtype=np.float64)
        r = _position(b)
        if math.isfinite(r):
            beats.append(Beat(r=r, waves={"QRS": b}))
    beats.sort(key=lambda b: b.r)
    rs = np.array([b.r for b in beats])
    if not rs.size:
        return beats
    for w in waves:
        if w[0] not in ("P", "T"):
            continue
        b = np.array(w[1:], dtype=np.float64)
        pos = _position(b)
        if not math.isfinite(pos):
            continue
        if w[0] == "P":
            k = int(np.searchsorted(rs, pos, side="right"))
            if k >= rs.size or rs[k] - pos > max_pr_s * fs:
                continue
            old = beats[k].waves.get("P")
            if old is None or _position(old) < pos:
                beats[k].waves["P"] = b
        else:
            k = int(np.searchsorted(rs, pos, side="right")) - 1
            if k < 0 or pos - rs[k] > max_rt_s * fs:
                continue
            old = beats[k].waves.get("T")
            if old is None or _position(old) > pos:
                beats[k].waves["T"] = b
    return beats


def _nan_reduce(func, a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(func(a)) if a.size else math.nan


#: How per-lead boundaries make global ones in the benchmark (see :func:`combine_leads`)
COMBINE_RULES = ("cse", "median", "robust")


def combine_leads(
    per_lead: Sequence[Sequence[Beat]], fs: float, rule: str = "cse", max_sep_s: float = 0.1
) -> list[Beat]:
    """Global beats from per-lead beats.

    Beats are taken in the order of their QRS fiducials; a beat joins the latest group where
    its lead is not yet in it and either its fiducial lies within ``max_sep_s`` of the
    group's first or its QRS (both ends) overlaps the group's, earliest onset to latest
    offset (LUDB marks each lead's own R peak, and on one beat those can spread over more
    than 100 ms); otherwise it starts a group (so a second beat of one lead, a double
    detection, makes a beat of its own). ``rule="cse"``: earliest onset and latest offset
    over the leads that have the wave, median peak; ``rule="median"``: the median of each
    boundary; ``rule="robust"``: the kit's own rule (``delineation.global_boundary``: the
    earliest onset and latest offset among the leads within 3 scaled MADs, at least 12 ms, of the
    leads' median, so that one stray lead does not set them). A wave is present when any
    lead has it.
    """
    if rule not in COMBINE_RULES:
        raise ValueError(f"unknown combination rule {rule!r}; known: {', '.join(COMBINE_RULES)}")
    from team_code.dsp.delineation import global_boundary

    items = sorted(
        ((b.r, lead, b) for lead, beats in enumerate(per_lead) for b in beats),
        key=lambda t: (t[0], t[1]),
    )
    groups: list[list[tuple[float, int, Beat]]] = []
    spans: list[list[float]] = []  # each group's QRS, earliest onset to latest offset
    for item in items:
        qrs = item[2].waves.get("QRS")
        on, off = (qrs[ON], qrs[OFF]) if qrs is not None else (math.nan, math.nan)
        bounded = math.isfinite(on) and math.isfinite(off)
        g = groups[-1] if groups else None
        same = False
        if g and all(item[1] != o[1] for o in g):
            span = spans[-1]
            near = item[0] - g[0][0] <= max_sep_s * fs
            overlap = bounded and math.isfinite(span[0]) and on <= span[1] and off >= span[0]
            same = near or overlap
        if same:
            g.append(item)
            if bounded:
                spans[-1] = [np.fmin(spans[-1][0], on), np.fmax(spans[-1][1], off)]
        else:
            groups.append([item])
            spans.append([on, off] if bounded else [math.nan, math.nan])
    out = []
    for g in groups:
        waves = {}
        for kind in WAVES:
            stack = np.array([b.waves[kind] for _, _, b in g if kind in b.waves])
            if not stack.size:
                continue
            if rule == "cse":
                on, off = _nan_reduce(np.min, stack[:, ON]), _nan_reduce(np.max, stack[:, OFF])
            elif rule == "robust":
                on = global_boundary(stack[:, ON], False, fs)
                off = global_boundary(stack[:, OFF], True, fs)
            else:
                on, off = (
                    _nan_reduce(np.median, stack[:, ON]),
                    _nan_reduce(np.median, stack[:, OFF]),
                )
            waves[kind] = np.array([on, _nan_reduce(np.median, stack[:, PEAK]), off])
        out.append(Beat(r=float(np.median([t[0] for t in g])), waves=waves))
    return out


def beat_intervals(beats: Sequence[Beat], fs: float) -> dict[str, float]:
    """Median over beats of each global interval in ms (NaN where no beat has both ends)."""
    out = {}
    for name, (wa, pa), (wb, pb) in INTERVALS:
        vals = [
            (b.waves[wb][pb] - b.waves[wa][pa]) * 1e3 / fs
            for b in beats
            if wa in b.waves and wb in b.waves
        ]
        vals = [v for v in vals if math.isfinite(v)]
        out[name] = float(np.median(vals)) if vals else math.nan
    return out


# --------------------------------------------------------------------------- scoring


@dataclasses.dataclass
class Outcome:
    """Per reference beat, for one boundary: error (ms, NaN unless matched), status, extras."""

    err: np.ndarray  # float, NaN unless matched
    tp: np.ndarray  # bool: matched within tolerance
    fn: np.ndarray  # bool: marked by the reference, not matched
    fp: np.ndarray  # int: given boundaries that match nothing


def score_beats(
    ref: Sequence[Beat],
    det: Sequence[Beat],
    fs: float,
    neighbours: np.ndarray | None = None,
    absent_negative: dict | None = None,
    span: tuple[float, float] | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> dict[str, Outcome]:
    """Match a method's beats to the reference beats of one record (see the module docstring).

    Args:
        ref: reference beats (every one has a QRS).
        det: the method's beats.
        fs: sampling frequency of both, Hz.
        neighbours: QRS samples of all beats of the record (defaults to the reference beats).
        absent_negative: per wave ("P", "T"), whether a wave the reference does not mark in an
            annotated beat is absent (so a given one is a false positive); default True.
        span: (first, last) annotated sample; a missing wave counts as absent only where its
            stretch lies inside (None: everywhere).
        tolerance_s: match window.

    Returns:
        ``{boundary measure: Outcome}`` with one entry per reference beat.
    """
    absent_negative = {"P": True, "T": True, **(absent_negative or {})}
    rs = np.array([b.r for b in ref], dtype=np.float64)
    nb = np.sort(np.asarray(neighbours if neighbours is not None else rs, dtype=np.float64))
    tol = tolerance_s * fs
    rr = float(np.median(np.diff(nb))) if nb.size > 1 else fs
    # the method's waves: position and bounds per kind
    pos = {k: [] for k in WAVES}
    bnd = {k: [] for k in WAVES}
    for b in det:
        for k, w in b.waves.items():
            p = b.r if k == "QRS" else _position(w)
            if math.isfinite(p):
                pos[k].append(p)
                bnd[k].append(w)
    pos = {k: np.array(v, dtype=np.float64) for k, v in pos.items()}
    bnd = {k: np.array(v, dtype=np.float64).reshape(-1, 3) for k, v in bnd.items()}
    n = len(ref)
    out = {
        name: Outcome(np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, int))
        for name, _, _ in BOUNDARIES
    }
    for i, beat in enumerate(ref):
        r = beat.r
        before = nb[nb < r - tol]
        after = nb[nb > r + tol]
        prev = float(before[-1]) if before.size else r - rr
        nxt = float(after[0]) if after.size else r + rr
        stretch = {"P": (prev, r), "QRS": ((prev + r) / 2, (r + nxt) / 2), "T": (r, nxt)}
        for name, kind, part in BOUNDARIES:
            lo, hi = stretch[kind]
            sel = (
                (pos[kind] > lo) & (pos[kind] <= hi)
                if kind == "P"
                else ((pos[kind] >= lo) & (pos[kind] < hi))
            )
            cands = bnd[kind][sel, part]
            cands = cands[np.isfinite(cands)]
            o = out[name]
            wave = beat.waves.get(kind)
            if wave is None:
                inside = span is None or (lo >= span[0] and hi <= span[1])
                if absent_negative.get(kind, True) and inside:
                    o.fp[i] = cands.size
                continue
            rv = wave[part]
            if not math.isfinite(rv):
                continue  # the wave is marked but not this boundary
            if cands.size:
                j = int(np.argmin(np.abs(cands - rv)))
                if abs(cands[j] - rv) <= tol:
                    o.tp[i], o.err[i], o.fp[i] = True, (cands[j] - rv) * 1e3 / fs, cands.size - 1
                    continue
            o.fn[i], o.fp[i] = True, cands.size
    return out


def best_lead(outcomes: Sequence[dict[str, Outcome]]) -> dict[str, Outcome]:
    """Per marked boundary, the lead closest to the reference (the QTDB convention).

    Matched if any lead matches, with the smallest error; false positives those of the chosen
    lead, or, where no lead matches, the fewest any lead gives.
    """
    out = {}
    for name, _, _ in BOUNDARIES:
        err = np.array([o[name].err for o in outcomes])
        tp = np.array([o[name].tp for o in outcomes])
        fn = np.array([o[name].fn for o in outcomes])
        fp = np.array([o[name].fp for o in outcomes])
        any_tp = tp.any(axis=0)
        pick = np.argmin(np.where(tp, np.abs(err), np.inf), axis=0)
        cols = np.arange(err.shape[1])
        out[name] = Outcome(
            err=np.where(any_tp, err[pick, cols], np.nan),
            tp=any_tp,
            fn=fn.any(axis=0) & ~any_tp,
            fp=np.where(any_tp, fp[pick, cols], fp.min(axis=0)),
        )
    return out


@dataclasses.dataclass
class Tally:
    """Pooled results of one method on one database."""

    errors: dict = dataclasses.field(default_factory=lambda: {m: [] for m, _, _ in BOUNDARIES})
    tp: dict = dataclasses.field(default_factory=lambda: {m: 0 for m, _, _ in BOUNDARIES})
    fn: dict = dataclasses.field(default_factory=lambda: {m: 0 for m, _, _ in BOUNDARIES})
    fp: dict = dataclasses.field(default_factory=lambda: {m: 0 for m, _, _ in BOUNDARIES})
    given: dict = dataclasses.field(default_factory=lambda: {m: False for m, _, _ in BOUNDARIES})
    # interval name -> list of (method value, reference value) per record
    intervals: dict = dataclasses.field(default_factory=lambda: {i[0]: [] for i in INTERVALS})
    # the records behind ``intervals``, in the same order
    interval_cases: list = dataclasses.field(default_factory=list)
    # boundary -> SD of the errors within each record with at least two matches
    record_sd: dict = dataclasses.field(default_factory=lambda: {m: [] for m, _, _ in BOUNDARIES})

    def add(self, outcomes: dict[str, Outcome], given: dict[str, bool] | None = None) -> None:
        """Pool one record's outcomes (``given``: which boundaries the method ever outputs)."""
        for name, o in outcomes.items():
            self.errors[name].extend(o.err[o.tp].tolist())
            if o.tp.sum() >= 2:
                self.record_sd[name].append(float(np.std(o.err[o.tp], ddof=1)))
            self.tp[name] += int(o.tp.sum())
            self.fn[name] += int(o.fn.sum())
            self.fp[name] += int(o.fp.sum())
            if given is None or given.get(name, False):
                self.given[name] = True

    def add_intervals(
        self, method: dict[str, float], reference: dict[str, float], case: str
    ) -> None:
        """Pool one record's interval values (``case``: its name)."""
        for name in self.intervals:
            self.intervals[name].append((method.get(name, math.nan), reference[name]))
        self.interval_cases.append(case)

    def interval_errors(self, name: str) -> list[tuple[str, float]]:
        """``(record, method minus reference in ms)`` of interval ``name``, for the records
        where both have it."""
        return [
            (case, a - b)
            for case, (a, b) in zip(self.interval_cases, self.intervals[name], strict=True)
            if math.isfinite(a) and math.isfinite(b)
        ]

    def _by_distance(self, name: str) -> tuple[list, np.ndarray, np.ndarray]:
        """Interval ``name``'s (record, error) pairs, their errors, and their order from the
        furthest from the mean error to the nearest."""
        named = self.interval_errors(name)
        errors = np.array([e for _, e in named], dtype=np.float64)
        mean = errors.mean() if errors.size else 0.0
        return named, errors, np.argsort(-np.abs(errors - mean), kind="stable")

    def worst(self, name: str, k: int) -> tuple[list[tuple[str, float]], float | None]:
        """The ``k`` records whose interval ``name`` lies furthest from the mean error, with
        their errors (method minus reference, ms), and the SD of the errors of the others."""
        named, errors, order = self._by_distance(name)
        if not named:
            return [], None
        rest = errors[order[k:]]
        return [named[i] for i in order[:k]], (
            float(np.std(rest, ddof=1)) if rest.size > 1 else None
        )

    def sd_left_by_worst(self, name: str, k: int) -> float | None:
        """The SD of interval ``name``'s errors with every record but the ``k`` furthest
        (:meth:`worst`) set to the mean of those others: what those ``k`` records alone give
        the SD, however well the method measures the rest."""
        _, errors, order = self._by_distance(name)
        if errors.size < 2:
            return None
        kept = errors.copy()
        if order[k:].size:
            kept[order[k:]] = errors[order[k:]].mean()
        return float(np.std(kept, ddof=1))


def agreement(a: Tally, b: Tally, name: str) -> dict | None:
    """How two methods' errors of interval ``name`` go together over the records both
    measure: their number, the correlation of the two errors, and the mean and SD of their
    average (the error of a method that averaged the two intervals). None below 3 records."""
    ea, eb = dict(a.interval_errors(name)), dict(b.interval_errors(name))
    both = [k for k in ea if k in eb]
    if len(both) < 3:
        return None
    x, y = np.array([ea[k] for k in both]), np.array([eb[k] for k in both])
    mean = (x + y) / 2
    return {
        "n": len(both),
        "r": float(np.corrcoef(x, y)[0, 1]),
        "mean_ms": float(mean.mean()),
        "sd_ms": float(np.std(mean, ddof=1)),
    }


def bootstrap_sd(groups, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the SD of the values of ``groups`` (a sequence of arrays, one
    per record), resampling whole groups: a record's values are drawn together; NaN without
    two values."""
    arrays = [np.asarray(g, dtype=float).ravel() for g in groups]
    if not arrays:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    sds = []
    for _ in range(n_boot):
        drawn = np.concatenate([arrays[i] for i in rng.integers(0, len(arrays), len(arrays))])
        if drawn.size > 1:
            sds.append(float(np.std(drawn, ddof=1)))
    if not sds:
        return math.nan, math.nan
    lo, hi = np.percentile(sds, [2.5, 97.5])
    return float(lo), float(hi)


def _stats(values) -> tuple[float | None, float | None]:
    v = np.asarray(values, dtype=np.float64)
    if not v.size:
        return None, None
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None)


def tally_rows(tally: Tally, method: str, database: str) -> list[dict]:
    """The JSON rows of one method on one database (boundaries, then intervals)."""
    rows = []
    for name, _, _ in BOUNDARIES:
        tp, fn, fp = tally.tp[name], tally.fn[name], tally.fp[name]
        mean, sd = _stats(tally.errors[name])
        given = tally.given[name]
        rows.append(
            {
                "method": method,
                "database": database,
                "measure": name,
                "n": tp,
                "mean_ms": mean,
                "sd_ms": sd,
                "sensitivity": tp / (tp + fn) if given and tp + fn else None,
                "ppv": tp / (tp + fp) if given and tp + fp else None,
            }
        )
    needs = {
        name: (
            f"{a} {'onset' if pa == ON else 'offset'}",
            f"{b} {'onset' if pb == ON else 'offset'}",
        )
        for name, (a, pa), (b, pb) in INTERVALS
    }
    for name in tally.intervals:
        if not tally.intervals[name] or not all(tally.given[k] for k in needs[name]):
            continue  # best-lead rows, or a method that never gives one of the two ends
        errors = [e for _, e in tally.interval_errors(name)]
        mean, sd = _stats(errors)
        rows.append(
            {
                "method": method,
                "database": database,
                "measure": name,
                "n": len(errors),
                "mean_ms": mean,
                "sd_ms": sd,
                "sensitivity": None,
                "ppv": None,
            }
        )
    return rows


# --------------------------------------------------------------------------- methods


@dataclasses.dataclass
class Output:
    """What a method found in one analysed signal (samples of that signal)."""

    beats: list  # global beats
    intervals: dict  # record-level interval values, ms
    leads: list | None = None  # per-lead beats, for single-lead methods
    given: dict | None = None  # which boundaries the method outputs at all
    # row of the signal -> that lead's beats, for methods that delineate every lead
    per_lead: dict | None = None


def _kit_signal(x: np.ndarray, fs: float, leads: Sequence[str]):
    """The kit's filtered signal at its analysis rate, and the delineation rows of it."""
    from team_code.data.records import STANDARD_LEADS
    from team_code.dsp import filters
    from team_code.dsp.features import DELINEATION_LEADS, FeatureConfig
    from team_code.dsp.resample import resample

    fa = FeatureConfig().fs_analysis
    y = np.nan_to_num(np.asarray(x, dtype=np.float64))
    if fs != fa:
        y = resample(y, fs, fa)
    yf = filters.remove_emg(filters.remove_baseline(filters.remove_powerline(y, fa), fa), fa)
    flat = np.ptp(yf, axis=1) < FeatureConfig().flat_mv
    rows = [i for i, lead in enumerate(leads) if lead in DELINEATION_LEADS and not flat[i]]
    if not rows:
        rows = [i for i, lead in enumerate(leads) if lead in STANDARD_LEADS and not flat[i]]
    return yf, fa, rows


def _to_beat(d, r_native: float, scale: float) -> Beat:
    """A Beat in native samples from a Delineation whose R peak lies at ``r_native``."""

    def at(v: float) -> float:
        return r_native + (v - d.r_index) * scale if math.isfinite(v) else math.nan

    waves = {}
    if math.isfinite(d.qrs_on):
        waves["QRS"] = np.array([at(d.qrs_on), math.nan, at(d.qrs_off)])
    if math.isfinite(d.p_on) or math.isfinite(d.p_peak):
        waves["P"] = np.array([at(d.p_on), at(d.p_peak), at(d.p_off)])
    if math.isfinite(d.t_peak) or math.isfinite(d.t_end):
        waves["T"] = np.array([math.nan, at(d.t_peak), at(d.t_end)])
    return Beat(r=r_native, waves=waves)


def _lead_to_beat(points: np.ndarray, r_index: int, r_native: float, scale: float) -> Beat:
    """A Beat in native samples from one row of ``LeadDelineation.points``."""
    from team_code.dsp.delineation import LEAD_POINTS

    at = {
        name: r_native + (v - r_index) * scale if math.isfinite(v) else math.nan
        for name, v in zip(LEAD_POINTS, points)
    }
    waves = {}
    for kind, pre in (("P", "p"), ("QRS", "qrs"), ("T", "t")):
        w = np.array(
            [at[f"{pre}_on"], at[f"{pre}_peak"], at[f"{pre}_off" if pre != "t" else "t_end"]]
        )
        if kind == "QRS" or np.isfinite(w).any():
            waves[kind] = w
    return Beat(r=r_native, waves=waves)


def kit_measure(x: np.ndarray, fs: float, leads: Sequence[str]):
    """``features.measure`` of a case (shared by ``project``, ``project-beatwise`` and the
    peers, which delineate the beats the kit detected)."""
    from team_code.dsp import features

    return features.measure(x, fs, leads)


def kit_r_peaks(m, fs: float) -> np.ndarray:
    """Every beat the kit detected (aligned R peaks), in native samples."""
    if m.beat is None:
        return np.zeros(0)
    return m.beat.r_peaks * (fs / m.fs)


def _per_lead_beats(lead_names, points, r_index, rs, scale, leads) -> dict:
    """Row of the case's signal -> Beats of that lead's points, mapped onto the R peaks
    ``rs`` (analysis samples)."""
    out = {}
    for k, name in enumerate(lead_names):
        if name in leads:
            out[list(leads).index(name)] = [
                _lead_to_beat(points[k], r_index, r * scale, scale) for r in rs
            ]
    return out


def run_project(
    x: np.ndarray,
    fs: float,
    leads: Sequence[str],
    beatwise: bool = False,
    m=None,
    together: bool = False,
) -> Output:
    """The kit: ``features.measure`` and its average-beat delineation (see the docstring).

    ``m``: the case's measurement if already made. ``together``: the delineation of the
    independent leads together (``project-sv``) instead of the global boundaries from the
    per-lead delineation.
    """
    from team_code.dsp import beats as kit_beats
    from team_code.dsp import delineation

    m = m if m is not None else kit_measure(x, fs, leads)
    v = m.values
    pre = "" if together else "global_"
    intervals = {
        "P duration": v.get(f"{pre}p_ms", math.nan),
        "PR interval": v.get(f"{pre}pr_ms", math.nan),
        "QRS duration": v.get(f"{pre}qrs_ms", math.nan),
        "QT interval": v.get(f"{pre}qt_ms", math.nan),
    }
    ab = m.beat
    if ab is None or m.delineation is None or m.leads is None:
        return Output(beats=[], intervals=intervals if not beatwise else {})
    d = m.delineation if together else m.leads.global_
    scale = fs / m.fs  # analysis samples -> native samples
    if not beatwise:
        dom = ab.r_peaks[ab.dominant]
        out = [_to_beat(d, r * scale, scale) for r in dom]
        per_lead = None
        if not together:
            per_lead = _per_lead_beats(m.lead_names, m.leads.points, ab.r_index, dom, scale, leads)
        return Output(beats=out, intervals=intervals, per_lead=per_lead)
    # beat by beat: every usable lead of each beat window, the anchor on the delineation leads
    from team_code.dsp.features import DELINEATION_LEADS

    yf, fa, _ = _kit_signal(x, fs, leads)
    use = [i for i, lead in enumerate(leads) if lead in m.lead_names]
    names = [leads[i] for i in use]
    anchor = [k for k, n in enumerate(names) if n in DELINEATION_LEADS] or list(range(len(use)))
    cfg = kit_beats.AverageBeatConfig()
    segs, inside = kit_beats.segment(yf[use], fa, ab.r_peaks, cfg.pre_s, cfg.post_s)
    n_pre = int(round(cfg.pre_s * fa))
    rr = v.get("rr_median_s", math.nan)
    p_present = bool(v.get("p_present", 1.0))
    lead_cfg = delineation.LeadDelineationConfig()
    out = []
    per_lead: dict = {}
    for seg, r in zip(segs, ab.r_peaks[inside]):
        ld = delineation.delineate_leads(
            seg, fa, n_pre, rr, config=lead_cfg, p_present=p_present, anchor_rows=anchor
        )
        out.append(_to_beat(ld.global_, r * scale, scale))
        for row, beats in _per_lead_beats(names, ld.points, n_pre, [r], scale, leads).items():
            per_lead.setdefault(row, []).extend(beats)
    return Output(beats=out, intervals=beat_intervals(out, fs), per_lead=per_lead)


def _cnn_model(path):
    """The learned delineator saved at ``path`` (None: the kit's weights), loaded once."""
    from team_code.nn import delineator

    key = str(path)
    if key not in CNN["models"]:
        CNN["models"][key] = delineator.load(path)
    return CNN["models"][key]


def _cnn_fold_index(folder: Path | None = None, options: str = "") -> dict[str, list[str]]:
    """``folds.json`` of the fold models in ``folder`` (default: the ``cnn-5fold`` ones,
    ``CNN["folds"]``): each weights file and the records it never saw. ``options``: the
    training options of these models (``--together``), named in the error where the index
    is missing."""
    folder = Path(folder if folder is not None else CNN["folds"])
    index = folder / "folds.json"
    if not index.is_file():
        raise FileNotFoundError(
            f"{index} not found; train the fold models with "
            f"python -m team_code.nn.delineator folds --ludb DIR --out {folder}"
            + (f" {options}" if options else "")
        )
    return json.loads(index.read_text())


def _cnn_folds_hold(folder: Path) -> bool:
    """Whether the ``cnn-5fold`` models held out any record of ``folder`` (False where they
    are not built)."""
    try:
        held = {r for names in _cnn_fold_index().values() for r in names}
    except FileNotFoundError:
        return False
    return any(r in held for r in _records(folder))


def _cnn_fold_weights(record: str, folder: Path | None = None, options: str = ""):
    """The fold model in ``folder`` (default: ``cnn-5fold``'s, ``CNN["folds"]``) that did
    not see ``record`` (None where no fold holds it out); ``options`` as for
    :func:`_cnn_fold_index`."""
    folder = Path(folder if folder is not None else CNN["folds"])
    for name, held in _cnn_fold_index(folder, options).items():
        if record in held:
            return folder / name
    return None


def run_cnn(case: Case, out_of_fold: bool) -> Output | None:
    """The learned delineator (``team_code.nn.delineator``) on every lead and beat of a case:
    per-lead beats of every lead, global beats by the kit's rule from the leads, intervals
    the median over beats. ``out_of_fold``: the fold model that never saw the record (None
    for a case no fold holds out, e.g. a QTDB window); else ``CNN["weights"]``."""
    from team_code.nn import delineator

    record = case.name.partition("@")[0]  # a QTDB window is named RECORD@STARTs
    path = _cnn_fold_weights(record) if out_of_fold else CNN["weights"]
    if out_of_fold and path is None:
        return None
    lds = delineator.delineate_record(case.x, case.fs, _cnn_model(path), CNN["post"])
    beats = [_to_beat(ld.global_, ld.r_index, 1.0) for ld in lds]
    per_lead = {
        row: [_lead_to_beat(ld.points[row], ld.r_index, ld.r_index, 1.0) for ld in lds]
        for row in range(case.x.shape[0])
    }
    return Output(beats=beats, intervals=beat_intervals(beats, case.fs), per_lead=per_lead)


def run_cnn_together(case: Case) -> Output | None:
    """``cnn-together-5fold``: the twelve-lead network's global beats (one per beat its
    labels give), each LUDB record by the fold model that never saw it (None for a record no
    fold holds out, or a signal without the twelve leads)."""
    from team_code.data.records import canonical_lead
    from team_code.nn import delineator

    path = _cnn_fold_weights(case.name, CNN["together_folds"], "--together")
    order = [canonical_lead(lead) for lead in LUDB_LEADS]
    if path is None or not set(order) <= set(case.leads):
        return None
    x = case.x[[case.leads.index(lead) for lead in order]]
    lds = delineator.delineate_together(x, case.fs, _cnn_model(path), CNN["post"])
    beats = [_to_beat(ld.global_, ld.r_index, 1.0) for ld in lds]
    return Output(beats=beats, intervals=beat_intervals(beats, case.fs))


_NK_KEYS = {
    "P": ("ECG_P_Onsets", "ECG_P_Peaks", "ECG_P_Offsets"),
    "QRS": ("ECG_R_Onsets", None, "ECG_R_Offsets"),
    "T": ("ECG_T_Onsets", "ECG_T_Peaks", "ECG_T_Offsets"),
}


def _neurokit_lead(sig: np.ndarray, fs: float, method: str, beats: np.ndarray) -> list[Beat]:
    """NeuroKit2 on one lead: ``ecg_clean``, then ``ecg_delineate(method)`` at the given beats.

    Each beat is moved to this lead's largest cleaned sample within 50 ms (NeuroKit's R peak
    is a maximum of the lead); the delineation is then NeuroKit's alone.
    """
    import neurokit2 as nk

    sr = int(round(fs))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        clean = np.asarray(nk.ecg_clean(sig, sampling_rate=sr), dtype=np.float64)
        half = max(1, int(round(0.05 * fs)))
        rp = []
        for r in np.asarray(beats, dtype=np.float64):
            lo, hi = max(0, int(r) - half), min(clean.size, int(r) + half + 1)
            if hi - lo > 1:
                rp.append(lo + int(np.argmax(clean[lo:hi])))
        rp = np.unique(np.asarray(rp, dtype=np.int64))
        if rp.size < 3:
            return []
        try:
            _, waves = nk.ecg_delineate(clean, rp, sampling_rate=sr, method=method)
        except Exception:  # a peer failing on a record gives it no beats there
            return []
    cols = {}
    for kind, keys in _NK_KEYS.items():
        arr = []
        for key in keys:
            vals = np.asarray(waves.get(key, []) if key else [], dtype=np.float64)
            # ecg_delineate drops values <= 0, which can only be those of the first beats:
            # pad at the front to keep one value per R peak
            col = np.full(rp.size, np.nan)
            if vals.size:
                col[rp.size - min(vals.size, rp.size) :] = vals[-rp.size :]
            arr.append(col)
        cols[kind] = np.stack(arr, axis=1)
    out = []
    for i, r in enumerate(rp):
        waves_i = {}
        for kind, arr in cols.items():
            w = arr[i].copy()
            if kind == "QRS" or np.isfinite(w).any():
                waves_i[kind] = w
        out.append(Beat(r=float(r), waves=waves_i))
    return out


def run_neurokit(x, fs, method: str, rule: str, use: Sequence[int], beats: np.ndarray) -> Output:
    """NeuroKit2 ``ecg_delineate`` on each lead in ``use`` at the given beats (native
    samples), combined across leads by ``rule``."""
    per_lead = [_neurokit_lead(np.nan_to_num(x[i]), fs, method, beats) for i in use]
    beats = combine_leads(per_lead, fs, rule)
    given = {name: True for name, _, _ in BOUNDARIES}
    if method == "peak":  # neurokit2 0.2.13: P peak/onset, Q, S, T peak/offset only
        given.update({"P offset": False, "QRS onset": False, "QRS offset": False})
    return Output(beats=beats, intervals=beat_intervals(beats, fs), leads=per_lead, given=given)


# --------------------------------------------------------------------------- databases


def default_dir(name: str) -> Path:
    """$ECG_KIT_DATA/<name>, else <repo>/../shared/data/<name>."""
    env = os.environ.get("ECG_KIT_DATA")
    return (Path(env) if env else REPO.parent / "shared" / "data") / name


def _records(folder: Path, wanted: Sequence[str] | None = None) -> list[str]:
    """The folder's records (``RECORDS``, else its headers), or those of ``wanted`` it holds."""
    if wanted:
        return [r for r in wanted if (folder / f"{r}.hea").exists()]
    f = folder / "RECORDS"
    if f.exists():
        return [r for r in f.read_text().split() if r]
    return sorted(p.stem for p in folder.glob("*.hea"))


@dataclasses.dataclass
class Case:
    """One analysed signal with its reference: a LUDB record or a QTDB window."""

    name: str
    x: np.ndarray  # (n_leads, n_samples) mV
    fs: float
    leads: list  # canonical names the kit reads
    ref: list  # reference Beats (global)
    neighbours: np.ndarray  # QRS samples of all beats
    absent_negative: dict
    span: tuple | None
    peer_rows: list  # rows of x the single-lead peers run on
    pu: list | None = None  # ecgpuwave per-lead beats (QTDB), in this signal's samples
    # per-lead reference (LUDB ``per-lead``): (row of x, that lead's beats, its annotated span)
    ref_leads: list | None = None
    # LUDB: each lead's marked beats, in ``LUDB_LEADS`` order (the ``cardiologists`` method)
    marks: list | None = None


LUDB_REFERENCES = ("cse", "median", "robust", "per-lead")


def load_ludb(folder: Path, record: str, reference: str = "cse") -> Case:
    """A LUDB record at 1000 units/mV with its global reference beats.

    ``reference="cse"``: earliest onset / latest offset over the 12 leads' annotations;
    ``"median"``: the median over the leads that mark the wave; ``"robust"``: the kit's own
    global rule on the marks (the earliest onset and latest offset of the leads within 3
    scaled MADs, at least 12 ms, of their median: the CSE definition robust to one lead's
    outlying mark);
    ``"per-lead"``: each lead's
    own marks (``Case.ref_leads``; ``Case.ref`` is then the CSE reference, which only gives
    the beats' positions).
    """
    if reference not in LUDB_REFERENCES:
        raise ValueError(
            f"unknown LUDB reference {reference!r}; known: {', '.join(LUDB_REFERENCES)}"
        )
    import wfdb

    from team_code.data.records import canonical_lead

    rec = wfdb.rdrecord(str(folder / record), physical=False)
    x = rec.d_signal.T.astype(np.float64) / 1000.0
    fs = float(rec.fs)
    leads = [canonical_lead(n) for n in rec.sig_name]
    per_lead = []
    spans = []
    for ext in LUDB_LEADS:
        ann = wfdb.rdann(str(folder / record), ext)
        per_lead.append(waves_to_beats(parse_waves(ann.sample, ann.symbol), fs))
        spans.append((float(ann.sample.min()), float(ann.sample.max())))
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    ref = combine_leads(per_lead, fs, "cse" if reference == "per-lead" else reference)
    ref = [b for b in ref if "QRS" in b.waves]
    ref_leads = None
    if reference == "per-lead":
        ref_leads = [
            (leads.index(canonical_lead(ext)), beats, span)
            for ext, beats, span in zip(LUDB_LEADS, per_lead, spans)
        ]
        rows = [leads.index(canonical_lead(ext)) for ext in LUDB_LEADS]
    else:
        rows = [leads.index(lead) for lead in PEER_LEADS_12 if lead in leads]
    return Case(
        name=record,
        x=x,
        fs=fs,
        leads=leads,
        ref=ref,
        neighbours=np.array([b.r for b in ref]),
        absent_negative={"P": True, "T": True},
        span=(lo, hi),
        peer_rows=rows,
        ref_leads=ref_leads,
        marks=per_lead,
    )


def qtdb_windows(r: np.ndarray, n_samples: int, fs: float, length_s=30.0, margin_s=1.5):
    """``(start, end, first, stop)``: windows covering the annotated beats ``r[first:stop]``."""
    r = np.sort(np.asarray(r, dtype=np.float64))
    n_len, n_margin = int(round(length_s * fs)), int(round(margin_s * fs))
    out = []
    i = 0
    while i < r.size:
        start = max(0, int(r[i]) - n_margin)
        end = min(n_samples, start + n_len)
        start = max(0, end - n_len)
        j = i
        while j < r.size and r[j] + n_margin <= end:
            j += 1
        j = max(j, i + 1)
        out.append((start, end, i, j))
        i = j
    return out


def _shift(beats: Sequence[Beat], offset: float, lo: float, hi: float) -> list[Beat]:
    return [
        Beat(r=b.r - offset, waves={k: w - offset for k, w in b.waves.items()})
        for b in beats
        if lo <= b.r < hi
    ]


def load_qtdb(folder: Path, record: str, length_s: float = 30.0) -> list[Case]:
    """The 30-s windows of a QTDB record with the ``.q1c`` reference (see the docstring)."""
    import wfdb

    path = str(folder / record)
    rec = wfdb.rdrecord(path)
    x = np.nan_to_num(rec.p_signal.T.astype(np.float64))
    fs = float(rec.fs)
    q1c = wfdb.rdann(path, "q1c")
    ref = waves_to_beats(parse_waves(q1c.sample, q1c.symbol), fs)
    pu = []
    for ext in ("pu0", "pu1"):
        try:
            a = wfdb.rdann(path, ext)
            pu.append(waves_to_beats(parse_waves(a.sample, a.symbol), fs))
        except FileNotFoundError:
            pu.append([])
    if (folder / f"{record}.atr").exists():
        atr = wfdb.rdann(path, "atr")
        nb = np.array([s for s, sym in zip(atr.sample, atr.symbol) if sym in BEAT_SYMBOLS])
    else:
        nb = np.array([b.r for b in combine_leads(pu, fs)])
    nb = np.sort(np.concatenate([nb.astype(np.float64), [b.r for b in ref]]))
    absent = {k: any(k in b.waves for b in ref) for k in ("P", "T")}
    leads = ["II", "V5"][: x.shape[0]]  # the kit reads two leads by any standard names
    cases = []
    rr = np.array([b.r for b in ref])
    for start, end, i, j in qtdb_windows(rr, x.shape[1], fs, length_s):
        cases.append(
            Case(
                name=f"{record}@{start / fs:.0f}s",
                x=x[:, start:end],
                fs=fs,
                leads=leads,
                ref=_shift(ref[i:j], start, -math.inf, math.inf),
                neighbours=nb - start,
                absent_negative=absent,
                span=None,
                peer_rows=list(range(x.shape[0])),
                pu=[_shift(p, start, start, end) for p in pu],
            )
        )
    return cases


# --------------------------------------------------------------------------- running


def run_case(case: Case, methods: Sequence[str], rule: str, m=None) -> dict[str, Output]:
    """Every method on one case (``m``: the kit's measurement of it, if already made)."""
    out = {}
    for name in methods:
        if name in ("project", "project-sv", "project-beatwise", "neurokit2-dwt", "neurokit2-peak"):
            m = m if m is not None else kit_measure(case.x, case.fs, case.leads)
        if name == "project":
            out[name] = run_project(case.x, case.fs, case.leads, m=m)
        elif name == "project-sv":
            out[name] = run_project(case.x, case.fs, case.leads, m=m, together=True)
        elif name == "project-beatwise":
            out[name] = run_project(case.x, case.fs, case.leads, beatwise=True, m=m)
        elif name in ("neurokit2-dwt", "neurokit2-peak"):
            out[name] = run_neurokit(
                case.x, case.fs, name.split("-")[1], rule, case.peer_rows, kit_r_peaks(m, case.fs)
            )
        elif name in ("cnn", "cnn-5fold"):
            res = run_cnn(case, name == "cnn-5fold")
            if res is not None:
                out[name] = res
        elif name == "cnn-together-5fold":
            res = run_cnn_together(case)
            if res is not None:
                out[name] = res
        elif name == "cardiologists":
            if case.marks is None:
                continue
            beats = combine_leads(case.marks, case.fs, rule)
            out[name] = Output(beats, beat_intervals(beats, case.fs), leads=case.marks)
        elif name == "ecgpuwave":
            if case.pu is None:
                continue
            beats = combine_leads(case.pu, case.fs, rule)
            out[name] = Output(beats, beat_intervals(beats, case.fs), leads=case.pu)
        else:
            raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return out


RULE_SUFFIX = {"cse": "", "median": " lead-median", "robust": " robust"}
#: Methods that do not need the kit's measurement of a case
NOT_THE_KITS = ("ecgpuwave", "cnn", "cnn-5fold", "cnn-together-5fold", "cardiologists")


def evaluate(
    cases_iter, methods: Sequence[str], rules: Sequence[str], best: bool, progress=None
) -> tuple[dict[str, Tally], dict]:
    """Run and score every case; returns per-method tallies and run facts.

    Single-lead methods are run once per case and their leads combined by each rule in
    ``rules`` (method names get ``RULE_SUFFIX``); ``best`` adds their best-lead rows. A
    method that delineates every lead (``Output.per_lead``) keeps its own global beats under
    its name and gains a row per other rule (``cnn-5fold lead-median``: the median of each
    boundary over all leads, the measurement that matches LUDB's lead-median reference).
    """
    tallies: dict[str, Tally] = {}
    facts = {"cases": 0, "beats": 0, "seconds": {}}
    for case in cases_iter:
        facts["cases"] += 1
        facts["beats"] += len(case.ref)
        ref_iv = beat_intervals(case.ref, case.fs)
        kw = dict(
            fs=case.fs,
            neighbours=case.neighbours,
            absent_negative=case.absent_negative,
            span=case.span,
        )
        kit = None
        if any(m not in NOT_THE_KITS for m in methods):  # the kit's beats
            t0 = time.perf_counter()
            kit = kit_measure(case.x, case.fs, case.leads)
            facts["seconds"]["measure"] = facts["seconds"].get("measure", 0.0) + (
                time.perf_counter() - t0
            )
        for m in methods:
            t0 = time.perf_counter()
            res = run_case(case, [m], rules[0], kit).get(m)
            facts["seconds"][m] = facts["seconds"].get(m, 0.0) + time.perf_counter() - t0
            if res is None:
                continue
            if case.ref_leads is not None:
                score_per_lead(tallies.setdefault(m, Tally()), case, res)
                continue
            variants = [(m, res.beats, res.intervals)]
            if res.leads is None and res.per_lead:  # every lead delineated: its own global
                for rule in rules:  # beats stay, other rules combine its leads
                    if rule != "cse":
                        beats = combine_leads(list(res.per_lead.values()), case.fs, rule)
                        name = m + RULE_SUFFIX[rule]
                        variants.append((name, beats, beat_intervals(beats, case.fs)))
            if res.leads is not None:
                variants = []
                for rule in rules:
                    beats = combine_leads(res.leads, case.fs, rule)
                    variants.append((m + RULE_SUFFIX[rule], beats, beat_intervals(beats, case.fs)))
            for name, beats, intervals in variants:
                tally = tallies.setdefault(name, Tally())
                tally.add(score_beats(case.ref, beats, **kw), res.given)
                tally.add_intervals(intervals, ref_iv, case.name)
            if best and res.leads is not None:
                per = [score_beats(case.ref, lead, **kw) for lead in res.leads]
                tallies.setdefault(f"{m} best-lead", Tally()).add(best_lead(per), res.given)
        if progress:
            progress(case.name)
    return tallies, facts


def lead_beats(case: Case, res: Output) -> dict:
    """Row of the signal -> the beats a method gives on that lead: its own per-lead beats
    where it has them (``per_lead``, or ``leads`` run on ``case.peer_rows``), else its
    global beats."""
    own = dict(res.per_lead or {})
    if res.leads is not None:
        own.update(zip(case.peer_rows, res.leads))
    return {row: own.get(row, res.beats) for row, _, _ in case.ref_leads}


def score_per_lead(tally: Tally, case: Case, res: Output) -> None:
    """Score one case lead by lead: each lead's beats against that lead's own marks, pooled
    into ``tally``; the intervals of each lead (the median over its beats) against the lead's
    reference, one pair per lead."""
    det = lead_beats(case, res)
    for row, ref, span in case.ref_leads:
        ref = [b for b in ref if "QRS" in b.waves]
        if not ref:
            continue
        out = score_beats(
            ref,
            det[row],
            fs=case.fs,
            neighbours=case.neighbours,
            absent_negative=case.absent_negative,
            span=span,
        )
        tally.add(out, res.given)
        tally.add_intervals(
            beat_intervals(det[row], case.fs), beat_intervals(ref, case.fs), f"{case.name}:{row}"
        )


def ludb_cases(folder: Path, records: Sequence[str] | None = None, reference: str = "cse"):
    """LUDB cases, one per record (``reference``: see :func:`load_ludb`)."""
    for r in _records(folder, records):
        yield load_ludb(folder, r, reference)


def qtdb_cases(folder: Path, records: Sequence[str] | None = None):
    """QTDB cases, one per 30-s window around annotated beats."""
    for r in _records(folder, records):
        if not (folder / f"{r}.q1c").exists():
            continue
        yield from load_qtdb(folder, r)


def _fmt(v, spec=".1f", width=7) -> str:
    return (
        f"{'-':>{width}}"
        if v is None or (isinstance(v, float) and math.isnan(v))
        else (f"{v:>{width}{spec}}")
    )


def print_tables(
    rows: list[dict],
    tallies: dict[str, Tally],
    database: str,
    facts: dict,
    worst: int = 0,
    sd_ci: int = 0,
) -> None:
    """The boundary and interval tables of one database; with ``worst``, each interval row's
    ``worst`` records furthest from the mean error and the SD without them; with ``sd_ci``,
    each interval row's 95 % interval of the SD over ``sd_ci`` record resamples."""
    sec = facts["seconds"]
    print(
        f"\n== {database}: {facts['cases']} analysed signals, {facts['beats']} annotated beats; "
        "boundaries, method minus cardiologists, matched within 150 ms"
    )
    print(
        f"{'method':<26} {'boundary':<11} {'marked':>6} {'n':>6} {'mean':>7} {'sd':>7} "
        f"{'sd_rec':>7} {'Se %':>6} {'+P %':>6} {'2sCSE':>6}"
    )
    for r in rows:
        if r["database"] != database or r["measure"] not in BOUNDARY_NAMES:
            continue
        t = tallies[r["method"]]
        marked = t.tp[r["measure"]] + t.fn[r["measure"]]
        se = None if r["sensitivity"] is None else 100 * r["sensitivity"]
        pp = None if r["ppv"] is None else 100 * r["ppv"]
        sd_rec = float(np.mean(t.record_sd[r["measure"]])) if t.record_sd[r["measure"]] else None
        print(
            f"{r['method']:<26} {r['measure']:<11} {marked:>6} {r['n']:>6} {_fmt(r['mean_ms'])} "
            f"{_fmt(r['sd_ms'])} {_fmt(sd_rec)} {_fmt(se, '.1f', 6)} {_fmt(pp, '.1f', 6)} "
            f"{_fmt(CSE_2SD_MS.get(r['measure']), '.1f', 6)}"
        )
    print(f"\n== {database}: global intervals per analysed signal, method minus cardiologists (ms)")
    print(
        f"{'method':<26} {'interval':<13} {'n':>4} {'mean':>7} {'sd':>7} {'IEC |m|/sd':>11} "
        f"{'missing':>7} {'extra':>6}"
    )
    for r in rows:
        if r["database"] != database or r["measure"] not in IEC_LIMITS_MS:
            continue
        pairs = tallies[r["method"]].intervals[r["measure"]]
        missing = sum(1 for a, b in pairs if math.isfinite(b) and not math.isfinite(a))
        extra = sum(1 for a, b in pairs if math.isfinite(a) and not math.isfinite(b))
        lim = IEC_LIMITS_MS[r["measure"]]
        ok = (
            r["mean_ms"] is not None
            and r["sd_ms"] is not None
            and abs(r["mean_ms"]) <= lim[0]
            and r["sd_ms"] <= lim[1]
        )
        print(
            f"{r['method']:<26} {r['measure']:<13} {r['n']:>4} {_fmt(r['mean_ms'])} "
            f"{_fmt(r['sd_ms'])} {f'{lim[0]:g}/{lim[1]:g}':>8} {'ok' if ok else 'no':>2} "
            f"{missing:>7} {extra:>6}"
        )
        if sd_ci:
            errors = tallies[r["method"]].interval_errors(r["measure"])
            lo, hi = bootstrap_sd([[e] for _, e in errors], sd_ci)
            print(f"{'':<26} {'':<13} sd 95 % interval over records [{lo:.1f}, {hi:.1f}]")
        if worst:
            tally = tallies[r["method"]]
            cases, rest = tally.worst(r["measure"], worst)
            listed = ", ".join(f"{c} {e:+.0f}" for c, e in cases)
            alone = _fmt(tally.sd_left_by_worst(r["measure"], worst)).strip()
            print(
                f"{'':<26} {'':<13} furthest: {listed}; sd of the others {_fmt(rest).strip()}; "
                f"sd these alone leave {alone}"
            )
    print(
        "seconds per analysed signal: "
        + ", ".join(f"{m} {s / max(1, facts['cases']):.3f}" for m, s in sec.items())
    )


def print_agreement(tallies: dict[str, Tally], a: str, b: str, database: str) -> None:
    """Per interval, how the errors of methods ``a`` and ``b`` go together (:func:`agreement`)."""
    missing = [m for m in (a, b) if m not in tallies]
    if missing:
        print(f"\n{database}: no rows of {', '.join(missing)} to compare")
        return
    print(f"\n== {database}: {a} and {b}, interval errors record by record")
    print(f"{'interval':<14}{'n':>5}{'r':>7}{'average: mean':>15}{'sd':>7}")
    for name, _, _ in INTERVALS:
        g = agreement(tallies[a], tallies[b], name)
        if g is not None:
            print(f"{name:<14}{g['n']:>5}{g['r']:>7.2f}{g['mean_ms']:>15.1f}{g['sd_ms']:>7.1f}")


def _count(text: str) -> int:
    """A count of records (0 or more) given on the command line."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a count of records (0 or more)")
    return value


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ludb", type=Path, default=None, help="folder in LUDB layout")
    p.add_argument("--qtdb", type=Path, default=None, help="folder in QTDB layout")
    p.add_argument("--skip-ludb", action="store_true")
    p.add_argument("--skip-qtdb", action="store_true")
    p.add_argument(
        "--records", nargs="+", default=None, help="record names (each database runs those it has)"
    )
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=list(METHODS))
    p.add_argument(
        "--combine",
        nargs="+",
        choices=list(RULE_SUFFIX),
        default=["cse"],
        help="how single-lead peers' per-lead boundaries become global ones "
        "(several: one row set each; 'median' rows are named '<method> lead-median', "
        "'robust' rows, the kit's own rule, '<method> robust')",
    )
    p.add_argument(
        "--ludb-reference",
        choices=list(LUDB_REFERENCES),
        default="cse",
        help="LUDB's reference from its per-lead marks: earliest onset / latest offset "
        "(cse), the median over leads (median; rows then say database 'LUDB lead-median'), "
        "the kit's own rule robust to one lead's outlying mark (robust; 'LUDB robust'), or "
        "each lead against its own marks (per-lead; database 'LUDB per-lead': a method's "
        "per-lead boundaries where it gives them, else its global ones on every lead)",
    )
    p.add_argument(
        "--no-best-lead",
        action="store_true",
        help="leave out the best-lead rows of the single-lead peers on QTDB",
    )
    p.add_argument(
        "--cnn-weights",
        type=Path,
        default=None,
        help="weights of the 'cnn' method (default: the kit's built delineator)",
    )
    p.add_argument(
        "--cnn-folds",
        type=Path,
        default=CNN_FOLDS,
        help="folder of the 'cnn-5fold' models and their folds.json",
    )
    p.add_argument(
        "--cnn-together-folds",
        type=Path,
        default=CNN_TOGETHER_FOLDS,
        help="folder of the 'cnn-together-5fold' models and their folds.json",
    )
    p.add_argument(
        "--cnn-lead-shrink",
        type=float,
        default=None,
        help="'cnn' and 'cnn-5fold': PostConfig.lead_shrink (default: the kit's setting)",
    )
    p.add_argument(
        "--worst",
        type=_count,
        default=0,
        metavar="N",
        help="under each interval row, the N records furthest from the mean error and the SD "
        "of the others",
    )
    p.add_argument(
        "--sd-ci",
        type=_count,
        default=0,
        metavar="N",
        help="under each interval row, a 95 %% interval of its SD over N record resamples",
    )
    p.add_argument(
        "--agreement",
        nargs=2,
        metavar=("A", "B"),
        default=None,
        help="after the tables: per interval, the correlation of the records' errors of rows A "
        "and B and the error of their average",
    )
    p.add_argument("--json", type=Path, default=None, help="write the rows here")
    p.add_argument("--quiet", action="store_true", help="no per-record progress")
    return p


def main(args) -> int:
    """Run the benchmark on the databases asked for; print tables, optionally write JSON."""
    rows: list[dict] = []
    todo: list[tuple[str, Path, Callable]] = []
    post = None
    if args.cnn_lead_shrink is not None:
        from team_code.nn.delineator import PostConfig

        post = PostConfig(lead_shrink=args.cnn_lead_shrink)
    CNN.update(
        weights=args.cnn_weights,
        folds=args.cnn_folds,
        together_folds=args.cnn_together_folds,
        post=post,
    )
    if not args.skip_ludb:
        ref = args.ludb_reference

        def cases_ludb(folder, records):
            return ludb_cases(folder, records, ref)

        label = {
            "cse": "LUDB",
            "median": "LUDB lead-median",
            "robust": "LUDB robust",
            "per-lead": "LUDB per-lead",
        }[ref]
        todo.append((label, args.ludb or default_dir("ludb"), cases_ludb))
    if not args.skip_qtdb:
        todo.append(("QTDB", args.qtdb or default_dir("qtdb"), qtdb_cases))
    for database, folder, cases in todo:
        if not folder.is_dir():
            print(f"error: {database} folder {folder} not found", file=sys.stderr)
            return 2
        methods = [m for m in args.methods if m != "ecgpuwave" or database == "QTDB"]
        if database == "QTDB" and not _cnn_folds_hold(folder):
            methods = [m for m in methods if m != "cnn-5fold"]
        if database == "QTDB":  # two leads: the twelve-lead network has nothing to read
            methods = [m for m in methods if m != "cnn-together-5fold"]
        progress = None if args.quiet else (lambda n: print(f"  {n}", file=sys.stderr))
        tallies, facts = evaluate(
            cases(folder, args.records),
            methods,
            args.combine,
            best=database == "QTDB" and not args.no_best_lead,
            progress=progress,
        )
        db_rows = [row for m, t in tallies.items() for row in tally_rows(t, m, database)]
        print_tables(db_rows, tallies, database, facts, args.worst, args.sd_ci)
        if args.agreement:
            print_agreement(tallies, *args.agreement, database)
        rows.extend(db_rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"\nwrote {len(rows)} rows to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
