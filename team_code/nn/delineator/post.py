"""Post-processing of the learned delineator's per-sample labels into per-lead beats
(:func:`segments_to_beats`), without torch.

First a gap of up to 40 ms labelled ``none`` inside a P wave is filled (:func:`close_gaps`;
``PostConfig.close_ms``), so that a P wave the network splits keeps its onset; a beat is a
stretch where at least a quorum of the leads label QRS; each lead's QRS run is the one
overlapping the beat, its P the last P run between the previous beat and this one, its T the
first T run between this beat and the next. A P wave found on fewer than the quorum of leads
is no P wave (no lead and no global boundary has one). Every beat becomes a
:class:`team_code.dsp.delineation.LeadDelineation` (the structure ``delineate_leads``
returns; points in samples of the input record), whose global boundaries come from
:func:`team_code.dsp.delineation.global_from_leads` (earliest onset and latest offset among
the leads within 3 scaled MADs, 3 x 1.4826 x the median absolute deviation, of their
median), anchored on the leads' median. Then each lead's P onset and offset, QRS onset and
offset and T end move a quarter of the way to the usable leads' median on that beat
(``PostConfig.lead_shrink``, chosen by a nested loop on LUDB's folds; the T onset, the global
boundaries, peaks and amplitudes stay as the leads' own give them; an onset is never moved
past its wave's peak, nor an offset). A lead that does not count towards the quorums (flat
or noise-only) is not delineated. Where the labels are coarser than the input (``scale`` >
1), onsets move (scale - 1) / 2 input samples earlier and offsets as much later: the place,
on the input's samples, that a wave's first and last labelled samples stand for. Sub-sample
onsets and offsets from the logits (``PostConfig.subsample``, :func:`subsample_edges`) were
compared and not shipped.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from team_code.dsp import delineation as dl
from team_code.nn.delineator.inputs import CLASSES, NONE, QRS, P, T


@dataclasses.dataclass(frozen=True)
class PostConfig:
    """Post-processing of the label runs, in physical units."""

    min_ms: tuple[float, float, float] = (20.0, 20.0, 40.0)  # shortest P, QRS, T run kept
    quorum: float = 0.3  # a beat needs this fraction of the usable leads labelling QRS
    p_quorum: float = 0.5  # a beat's P wave needs this fraction of the usable leads
    record_p: float = 0.5  # a record with a P wave on fewer of its beats has none on any
    global_rule: str = "mad"  # global boundaries from the leads (dl.GLOBAL_RULES)
    close_ms: tuple[float, float] = (40.0, 0.0)  # a gap of "none" inside a P (a T) wave
    # at most this long is filled
    subsample: bool = False  # onsets and offsets where the class margin crosses zero (where
    # the logits are given to segments_to_beats)
    lead_shrink: float = 0.25  # each lead's onsets and offsets moved this fraction of the
    # way to the usable leads' median (the global boundaries come from the leads' own; 0: off;
    # a boundary no usable lead has stays as the leads give it)

    def __post_init__(self):
        if not 0.0 <= self.lead_shrink < 1.0:
            raise ValueError(f"PostConfig: lead_shrink must lie in [0, 1); got {self.lead_shrink}")


def close_gaps(labels: np.ndarray, classes: Sequence[int], max_gap: int) -> np.ndarray:
    """``labels`` (n_rows, n) with every run of ``none`` at most ``max_gap`` samples long
    that has the same class of ``classes`` on both sides relabelled as that class."""
    out = np.array(labels, copy=True)
    if max_gap < 1:
        return out
    row, a, b = _runs(out, NONE, 1)
    inner = (a > 0) & (b < out.shape[1] - 1) & (b - a + 1 <= max_gap)
    row, a, b = row[inner], a[inner], b[inner]
    before, after = out[row, a - 1], out[row, b + 1]
    fill = (before == after) & np.isin(before, classes)
    row, a, length, cls = row[fill], a[fill], (b - a + 1)[fill], before[fill]
    first = np.repeat(np.cumsum(length) - length, length)
    cols = np.repeat(a, length) + np.arange(int(length.sum())) - first
    out[np.repeat(row, length), cols] = np.repeat(cls, length)
    return out


def subsample_edges(
    logits: np.ndarray, row: np.ndarray, at: np.ndarray, cls: np.ndarray, onset: bool
) -> np.ndarray:
    """Onsets (``onset``) or offsets at sub-sample precision: for a run of class ``cls``
    on lead ``row`` that starts (ends) at sample ``at``, the point where the class's margin
    over the best other class crosses zero, linearly interpolated between the last sample
    outside the run and the first inside (the last inside and the first after), moved by
    half a sample so that a crossing midway between them gives ``at`` back. ``logits``:
    (n_leads, len(CLASSES), n); points outside the record's edges stay as they are."""
    at = np.asarray(at, dtype=np.int64)
    n = logits.shape[-1]
    out = at.astype(np.float64)
    nb = at + (-1 if onset else 1)
    ok = (nb >= 0) & (nb < n)
    if not ok.any():
        return out
    r, a, b, c = row[ok], at[ok], nb[ok], cls[ok]

    def margin(t):
        v = logits[r, :, t].astype(np.float64)
        own = v[np.arange(c.size), c]
        v[np.arange(c.size), c] = -np.inf
        return own - v.max(axis=1)

    inside, outside = margin(a), margin(b)
    span = inside - outside
    frac = np.clip(np.where(span > 0, inside / np.where(span > 0, span, 1.0), 0.5), 0.0, 1.0)
    # frac: distance from the inside sample to the crossing, in samples
    out[ok] = np.where(onset, a - frac + 0.5, a + frac - 0.5)
    return out


def _runs(labels: np.ndarray, cls: int, min_len: int) -> tuple[np.ndarray, ...]:
    """``(row, start, end)`` (end inclusive) of the runs of ``cls`` in each row of ``labels``
    (n_rows, n), at least ``min_len`` long, ordered by row, then start."""
    hit = np.zeros((labels.shape[0], labels.shape[1] + 2), np.int8)
    hit[:, 1:-1] = labels == cls
    step = np.diff(hit, axis=1)
    row, start = np.nonzero(step == 1)
    end = np.nonzero(step == -1)[1] - 1
    keep = end - start + 1 >= min_len
    return row[keep], start[keep], end[keep]


def _peaks(sig: np.ndarray, row, start, end, detrend: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sample and signed size of the largest deflection of each stretch ``sig[row,
    start..end]`` (measured from the chord between its ends where ``detrend``)."""
    if not row.size:
        return np.zeros(0, np.int64), np.zeros(0)
    length = end - start + 1
    k = np.arange(int(length.max()))
    v = sig[row[:, None], np.minimum(start[:, None] + k, end[:, None])]
    if detrend:
        y0, y1 = sig[row, start], sig[row, end]
        frac = k[None, :] / np.maximum(length - 1, 1)[:, None]
        v = v - (y0[:, None] + (y1 - y0)[:, None] * frac)
    v = np.where(k[None, :] < length[:, None], v, 0.0)
    j = np.argmax(np.abs(v), axis=1)
    return start + j, v[np.arange(j.size), j]


def _pick(row, beat, n_beats: int, last: bool) -> np.ndarray:
    """Index of the last (or first) entry of each ``(row, beat)`` pair, entries given in
    row-then-time order."""
    key = row * n_beats + beat
    if last:
        _, first = np.unique(key[::-1], return_index=True)
        return key.size - 1 - first
    return np.unique(key, return_index=True)[1]


def _place(sig, pts, amps, runs, beat, ok, last: bool, cols: tuple[int, int, int]) -> None:
    """Write into ``pts[beat, lead, cols]`` the onset, peak and offset of the last (or first)
    of the ``runs`` (lead, start, end) where ``ok`` for each lead and beat, and its signed
    size (from the chord between its ends) into ``amps[beat, lead]``."""
    row, a, b, beat = runs[0][ok], runs[1][ok], runs[2][ok], beat[ok]
    k = _pick(row, beat, pts.shape[0], last)
    row, a, b, beat = row[k], a[k], b[k], beat[k]
    pk, amps[beat, row] = _peaks(sig, row, a, b, detrend=True)
    pts[beat, row, cols[0]], pts[beat, row, cols[1]], pts[beat, row, cols[2]] = a, pk, b


#: (point, class, is an onset) of every boundary :func:`_refine_edges` moves
_EDGES = (
    ("p_on", P, True),
    ("p_off", P, False),
    ("qrs_on", QRS, True),
    ("qrs_off", QRS, False),
    ("t_on", T, True),
    ("t_end", T, False),
)


def _refine_edges(pts: np.ndarray, logits: np.ndarray, col: dict[str, int]) -> None:
    """Every onset and offset of ``pts`` (n_beats, n_leads, points; in label samples) moved
    to its sub-sample place (:func:`subsample_edges`), in place."""
    for name, cls, onset in _EDGES:
        v = pts[:, :, col[name]]
        beat, lead = np.nonzero(np.isfinite(v))
        at = v[beat, lead].astype(np.int64)
        cls_arr = np.full(at.size, cls)
        v[beat, lead] = subsample_edges(logits, lead, at, cls_arr, onset)


_BOUNDARY_COLS = [dl.LEAD_POINTS.index(c) for c in dl.BOUNDARY_POINTS]
#: Each wave's onset, peak and offset.
_WAVES = (
    ("p_on", "p_peak", "p_off"),
    ("qrs_on", "qrs_peak", "qrs_off"),
    ("t_on", "t_peak", "t_end"),
)


def _keep_order(points: np.ndarray, col: dict[str, int]) -> None:
    """No onset after its own wave's peak and no offset before it (in place; ``points``:
    (n_leads, points)): an onset or offset moved towards the leads' median past a peak that
    stays where the lead has it is held at that peak."""
    for on, peak, off in _WAVES:
        p = points[:, col[peak]]
        for name, later in ((on, False), (off, True)):
            v = points[:, col[name]]
            both = np.isfinite(v) & np.isfinite(p)
            v[both] = np.maximum(v[both], p[both]) if later else np.minimum(v[both], p[both])


def segments_to_beats(
    labels: np.ndarray,
    signal_mv: np.ndarray,
    fs: float,
    config: PostConfig | None = None,
    scale: float = 1.0,
    usable: np.ndarray | None = None,
    logits: np.ndarray | None = None,
) -> list[dl.LeadDelineation]:
    """Per-beat, per-lead points from per-sample labels (see the module docstring).

    A beat is a stretch where at least ``config.quorum`` of the usable leads label QRS; a
    lead's QRS in it spans the lead's QRS runs that overlap it (a run belongs to the first
    beat it overlaps); its P is the last P run after the previous beat and before the lead's
    QRS onset (or the beat's, where the lead has no QRS); its T the first T run after the
    lead's QRS offset and before the next beat. Peaks: the largest deflection of a QRS run,
    of a P or T run from the chord between its ends.

    Args:
        labels: (n_leads, n) class indices at ``fs`` Hz.
        signal_mv: (n_leads, n) the filtered leads in mV (peaks and amplitudes).
        fs: the labels' sampling rate.
        config: post-processing settings.
        scale: points are returned multiplied by this (input samples per label sample).
        usable: (n_leads,) leads that count towards the quorums (default all).
        logits: (n_leads, len(CLASSES), n) the network's logits behind ``labels``; with
            ``config.subsample``, onsets and offsets come from them
            (:func:`subsample_edges`); without them, whole samples.

    Returns:
        One :class:`~team_code.dsp.delineation.LeadDelineation` per beat, in time order;
        ``fs`` is ``fs * scale``, points and ``r_index`` in those samples.
    """
    cfg = config or PostConfig()
    labels = np.atleast_2d(labels)
    if logits is not None and np.shape(logits) != (labels.shape[0], len(CLASSES), labels.shape[1]):
        raise ValueError(f"logits {np.shape(logits)} do not match labels {labels.shape}")
    for cls, ms in zip((P, T), cfg.close_ms):
        labels = close_gaps(labels, (cls,), int(round(ms * 1e-3 * fs)))
    sig = np.atleast_2d(np.asarray(signal_mv, dtype=np.float64))
    n_leads, n = labels.shape
    usable = np.ones(n_leads, bool) if usable is None else np.asarray(usable, bool)
    n_usable = max(1, int(usable.sum()))
    need = max(1, int(math.ceil(cfg.quorum * n_usable)))
    need_p = max(1, int(math.ceil(cfg.p_quorum * n_usable)))
    min_len = {c: max(1, int(round(ms * 1e-3 * fs))) for c, ms in zip((P, QRS, T), cfg.min_ms)}
    ql, qa, qb = _runs(labels, QRS, min_len[QRS])
    cover = np.zeros((n_leads, n + 1), np.int32)
    np.add.at(cover, (ql, qa), 1)
    np.add.at(cover, (ql, qb + 1), -1)
    count = np.cumsum(cover[usable], axis=1)[:, :n].sum(axis=0)
    _, bs, be = _runs((count >= need)[None, :], True, 1)
    nb = bs.size
    if not nb:
        return []
    col = {name: i for i, name in enumerate(dl.LEAD_POINTS)}
    pts = np.full((nb, n_leads, len(dl.LEAD_POINTS)), np.nan)
    t_mv = np.full((nb, n_leads), np.nan)
    p_mv = np.full((nb, n_leads), np.nan)
    # QRS: the runs overlapping each beat, merged
    j = np.searchsorted(be, qa)
    ok = (j < nb) & (bs[np.minimum(j, nb - 1)] <= qb)
    q_on = np.full((n_leads, nb), n)
    q_off = np.full((n_leads, nb), -1)
    np.minimum.at(q_on, (ql[ok], j[ok]), qa[ok])
    np.maximum.at(q_off, (ql[ok], j[ok]), qb[ok])
    li, bj = np.nonzero(q_off >= 0)
    pk, _ = _peaks(sig, li, q_on[li, bj], q_off[li, bj], detrend=False)
    pts[bj, li, col["qrs_on"]] = q_on[li, bj]
    pts[bj, li, col["qrs_peak"]] = pk
    pts[bj, li, col["qrs_off"]] = q_off[li, bj]
    on_eff = np.where(q_off >= 0, q_on, bs[None, :])
    off_eff = np.where(q_off >= 0, q_off, be[None, :])
    # P: the last run after the previous beat, before the lead's QRS onset
    prev_end = np.concatenate([[-1], be[:-1]])
    runs = _runs(labels, P, min_len[P])
    j = np.minimum(np.searchsorted(be, runs[2]), nb - 1)
    ok = (runs[1] > prev_end[j]) & (runs[2] < on_eff[runs[0], j])
    _place(sig, pts, p_mv, runs, j, ok, last=True, cols=(col["p_on"], col["p_peak"], col["p_off"]))
    # T: the first run after the lead's QRS offset, before the next beat
    next_start = np.concatenate([bs[1:], [n]])
    runs = _runs(labels, T, min_len[T])
    j = np.maximum(np.searchsorted(bs, runs[1], side="right") - 1, 0)
    ok = (runs[1] > off_eff[runs[0], j]) & (runs[1] < next_start[j])
    _place(sig, pts, t_mv, runs, j, ok, last=False, cols=(col["t_on"], col["t_peak"], col["t_end"]))
    # no P wave on a beat with too few leads showing one, nor in a record with too few beats
    no_p = np.isfinite(pts[:, usable, col["p_on"]]).sum(axis=1) < need_p
    if (~no_p).sum() < cfg.record_p * nb:
        no_p[:] = True
    pts[no_p, :, 0:3] = np.nan
    p_mv[no_p] = np.nan
    if cfg.subsample and logits is not None:
        _refine_edges(pts, np.asarray(logits), col)
    r = dl.nanmedian(pts[:, usable, col["qrs_peak"]], axis=1)
    r = np.where(np.isfinite(r), r, (bs + be) / 2.0)
    # a lead that does not vote is not delineated: a flat or noise-only lead, which its
    # normalisation magnifies, would otherwise give waves of noise and move the global ones
    pts[:, ~usable, :] = np.nan
    t_mv[:, ~usable] = np.nan
    p_mv[:, ~usable] = np.nan
    pts *= scale
    if scale > 1:
        # a wave's first and last labelled samples stand for ``scale`` input samples each:
        # the onset of marks on the input's own samples lies half of the rest earlier, the
        # offset as much later (an onset read on whole label samples is otherwise late by
        # (scale - 1) / 2 input samples, an offset as early: 1 ms each at 500 Hz)
        half = (scale - 1.0) / 2.0
        for name, _, onset in _EDGES:
            pts[:, :, col[name]] += -half if onset else half
    med = dl.nanmedian(pts[:, usable, :], axis=1)
    p_amp = dl.nanmedian(np.abs(p_mv[:, usable]), axis=1)
    lead_cfg = dl.LeadDelineationConfig(global_rule=cfg.global_rule)
    out_fs = fs * scale
    out = []
    for b in range(nb):
        r_index = int(round(r[b] * scale))
        anchor = dl.Delineation(
            out_fs,
            r_index,
            *(float(med[b, col[c]]) for c in ("p_on", "p_peak", "p_off", "qrs_on", "qrs_off")),
            *(float(med[b, col[c]]) for c in ("t_peak", "t_end")),
            float(p_amp[b]),
        )
        glob = dl.global_from_leads(pts[b], anchor, lead_cfg)
        own = pts[b]
        if cfg.lead_shrink > 0:
            own = own.copy()
            for c in _BOUNDARY_COLS:
                if math.isfinite(med[b, c]):  # else no usable lead has it: the leads' own stay
                    own[:, c] += cfg.lead_shrink * (med[b, c] - own[:, c])
            _keep_order(own, col)
        out.append(dl.LeadDelineation(out_fs, r_index, own, t_mv[b], p_mv[b], glob))
    return out
