"""Per-record reports: one PNG page per record and an HTML index.

``write_report(records, scores, classes, thresholds, out_dir)`` writes ``<record>.png`` for every
record, a thumbnail per record under ``thumbs/``, ``index.html`` (relative links only) and
``report.json`` (which panels of each record were drawn, and why the others were not);
``report_outputs(model, data, outputs, report)`` draws the records a run has classified, from
the model folder and the output files the run wrote (one report per lead set where the folder
holds several). One page shows, clinically laid out:

- the 12 leads in the standard 3 x 4 layout (I aVR V1 V4 / II aVL V2 V5 / III aVF V3 V6, each
  column a consecutive quarter of the first 10 s) plus a 10-s rhythm strip of lead II, on ECG
  paper (25 mm/s, 10 mm/mV; 5 mm/mV when the voltages are large), filtered with
  :func:`team_code.dsp.filters.clean`, with the QRS complexes found by
  :func:`team_code.dsp.qrs.detect` marked and the RR intervals written on the rhythm strip;
- the median (robust average) beat of each lead (:func:`team_code.dsp.features.measure`) in
  the same layout and scale, with the global delineation (P on/off, QRS on/off, T end: the
  earliest onset and latest offset over the leads, as the interval standards define them);
- the QRS and T loops of the synthesised X/Y/Z leads (:mod:`team_code.dsp.vcg`, Kors) in the
  frontal, horizontal and (left) sagittal planes;
- the scalogram mosaic that the ``cwt_googlenet`` engine classifies
  (:func:`team_code.classifiers.cwt_googlenet.record_image`), drawn with the model's settings
  where its evidence gives them;
- the key measurements (HR; PR, P, QRS, QT and QTc, global as above, and the leads-together
  values the rules read; axes) and the rules that fired with their reasons (the rules'
  account in the model's evidence);
- the top scores as horizontal bars with threshold marks, predicted and true labels, and the
  scores of the member engines when given.

What the model shows of how it scored a record comes through one interface,
:meth:`team_code.classifiers.base.Classifier.evidence` (one
:class:`~team_code.classifiers.base.Evidence` per record); the report never names an engine
and never classifies a record: the scores are those given (for ``run_model.py --report``, those
the run wrote).

Every page and the index state the kit's intended use (:data:`INTENDED_USE`).

A panel that cannot be computed for a record (flat signal, too short, missing leads) shows
"not available: <reason>" and is recorded as such in ``report.json``; one record never fails
the report. Matplotlib is used through ``Figure`` + ``FigureCanvasAgg`` (no pyplot, no global
backend switch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import itertools
import json
import math
import os
import re
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from team_code.classifiers.base import Evidence
from team_code.context import say
from team_code.data.outputs import read_output
from team_code.data.records import STANDARD_LEADS, Record, RecordSet, find_records
from team_code.model_folder import (
    LEAD_SET_FOLDER,
    LeadSetModels,
    load_manifest,
    load_model,
    served_lead_sets,
)

__all__ = ["PANELS", "ReportConfig", "render_record", "report_outputs", "write_report"]

#: Panel names, as keys of the status dicts.
PANELS: tuple[str, ...] = ("ecg", "beats", "vcg", "scalogram", "measurements", "rules", "scores")

#: Standard 3 x 4 layout of the 12-lead page (rows top to bottom).
LAYOUT: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
RHYTHM_LEAD = "II"

# ECG paper colours
_MINOR = "#f6d5d5"
_MAJOR = "#eaa0a0"
_TRACE = "#111111"
_QRS_MARK = "#d62728"
_MARKS = {"P": "#1f77b4", "QRS": "#d62728", "T": "#2ca02c"}
_MEMBER_STYLE = (("o", "#1f77b4"), ("s", "#ff7f0e"), ("^", "#2ca02c"), ("D", "#9467bd"))


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """Layout and scale of the report pages."""

    page_in: tuple[float, float] = (16.0, 14.0)  # page size in inches (the layout assumes it)
    dpi: int = 100  # pixels per inch of the PNG
    thumb_px: int = 400  # thumbnail width in pixels
    show_s: float = 10.0  # at most this many seconds of the record are drawn
    row_mv: float = 2.5  # vertical distance between lead rows, mV at 10 mm/mV
    half_gain_mv: float = 4.5  # a displayed lead wider than this (peak-to-peak) halves the gain
    flat_mv: float = 0.02  # a lead below this peak-to-peak is flat (as in features)
    max_rules: int = 8  # fired rules listed at most


# --------------------------------------------------------------------------------------------
# Small helpers


def _table(classes: Sequence[str]):
    """The shipped scoring table of ``classes`` (2020 or 2021), else the 2020 one."""
    from team_code.data.labels import scored_classes, table_for

    try:
        return table_for(classes)
    except KeyError:
        return scored_classes()


def _abbreviation_lookup(classes: Sequence[str]) -> list[str]:
    table = _table(classes)
    out = []
    for code in classes:
        try:
            out.append(table.abbreviation(code))
        except (KeyError, ValueError):
            out.append(str(code))
    return out


def _truth(record: Record, classes: Sequence[str]) -> set[str]:
    """Representative codes of ``classes`` that the record's own labels carry."""
    merged = _table(classes).merge(record.labels)
    return {c for c in classes if c in merged}


def _file_stem(name: str, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).lstrip(".") or "record"
    candidate, k = stem, 1
    while candidate.lower() in used:
        k += 1
        candidate = f"{stem}_{k}"
    used.add(candidate.lower())
    return candidate


def _fmt(x, unit: str = "", digits: int = 0) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(v):
        return "—"
    return f"{v:.{digits}f}{unit}"


def _not_available(ax, reason: str, title: str | None = None, width: int = 60) -> str:
    """Blank an axes with a "not available" message; return the status string."""
    message = f"not available: {reason}"
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9, loc="left", fontweight="bold")
    ax.text(
        0.5,
        0.5,
        "\n".join(textwrap.wrap(message, width)),
        ha="center",
        va="center",
        fontsize=9,
        color="#777777",
        transform=ax.transAxes,
    )
    return message


def _short(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) < 160 else text[:157] + "..."


# --------------------------------------------------------------------------------------------
# Signal preparation (shared by the panels)


@dataclasses.dataclass
class _Prepared:
    """What the panels of one record share."""

    fs: float  # sampling frequency of ``clean_mv``
    clean_mv: dict  # lead -> filtered first ``show_s`` seconds (mV); only leads present
    flat: set  # leads present but flat
    missing: list  # standard leads the record lacks
    r_peaks: np.ndarray | None  # R peaks (samples of ``clean_mv``), None when not detected
    qrs_error: str  # why r_peaks is None
    measurements: object | None  # team_code.dsp.features.Measurements or None
    measure_error: str  # why measurements is None


def _prepare(record: Record, config: ReportConfig) -> _Prepared:
    from team_code.dsp import features, filters, qrs

    fs = float(record.fs)
    names = list(record.leads)
    missing = [lead for lead in STANDARD_LEADS if lead not in names]
    present = [lead for lead in STANDARD_LEADS if lead in names]
    n_show = min(record.n_samples, int(round(config.show_s * fs)))
    clean_mv: dict = {}
    flat: set = set()
    r_peaks, qrs_error = None, ""
    if present and n_show >= 2:
        raw = np.stack([record.signal[names.index(lead), :n_show] for lead in present])
        raw = np.where(np.isfinite(raw), raw, 0.0).astype(np.float64)
        try:
            cleaned = filters.clean(raw, fs)
        except ValueError as error:  # too short for the filters
            cleaned = raw - np.median(raw, axis=1, keepdims=True)
            qrs_error = f"filters: {_short(error)}"
        clean_mv = dict(zip(present, cleaned))
        flat = {lead for lead in present if np.ptp(clean_mv[lead]) < config.flat_mv}
        usable = [lead for lead in present if lead not in flat]
        if not usable:
            qrs_error = "every lead is flat"
        elif n_show < int(2 * fs):
            qrs_error = f"record too short ({n_show / fs:.1f} s) for QRS detection"
        else:
            try:
                r_peaks = qrs.detect(np.stack([clean_mv[lead] for lead in usable]), fs)
            except ValueError as error:
                qrs_error = _short(error)
    elif not present:
        qrs_error = "none of the 12 standard leads is present"
    else:
        qrs_error = "record too short"
    measurements, measure_error = None, ""
    try:
        measurements = features.measure(record.signal, fs, record.leads)
    except (ValueError, FloatingPointError, IndexError) as error:
        measure_error = _short(error)
    return _Prepared(
        fs=fs,
        clean_mv=clean_mv,
        flat=flat,
        missing=missing,
        r_peaks=r_peaks,
        qrs_error=qrs_error,
        measurements=measurements,
        measure_error=measure_error,
    )


# --------------------------------------------------------------------------------------------
# ECG paper


def _paper(ax, x0: float, x1: float, y0: float, y1: float) -> None:
    """Pink ECG grid: 0.04 s x 0.1 mV small squares, 0.2 s x 0.5 mV large ones (10 mm/mV)."""
    from matplotlib.collections import LineCollection

    def lines(step_x: float, step_y: float):
        xs = np.arange(math.floor(x0 / step_x) * step_x, x1 + 1e-9, step_x)
        ys = np.arange(math.floor(y0 / step_y) * step_y, y1 + 1e-9, step_y)
        segs = [((x, y0), (x, y1)) for x in xs] + [((x0, y), (x1, y)) for y in ys]
        return segs

    ax.add_collection(LineCollection(lines(0.04, 0.1), colors=_MINOR, linewidths=0.35, zorder=0))
    ax.add_collection(LineCollection(lines(0.2, 0.5), colors=_MAJOR, linewidths=0.7, zorder=0))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(0.4)  # 1 mV (10 mm) is 0.4 times as long as 1 s (25 mm)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _calibration(ax, x: float, base: float, gain: float) -> None:
    """1-mV calibration pulse (0.2 s wide) at ``x``."""
    ax.plot(
        [x, x + 0.04, x + 0.04, x + 0.24, x + 0.24, x + 0.28],
        [base, base, base + gain, base + gain, base, base],
        color=_TRACE,
        lw=0.9,
    )


def _gain(clean_mv: dict, config: ReportConfig) -> float:
    widths = [np.percentile(v, 99.8) - np.percentile(v, 0.2) for v in clean_mv.values()]
    return 0.5 if widths and max(widths) > config.half_gain_mv else 1.0


def _draw_ecg(ax, prep: _Prepared, config: ReportConfig) -> str:
    if not prep.clean_mv:
        return _not_available(ax, prep.qrs_error or "no standard lead", "12-lead ECG")
    fs = prep.fs
    n = len(next(iter(prep.clean_mv.values())))
    duration = n / fs
    gain = _gain(prep.clean_mv, config)
    row = config.row_mv
    x0 = 0.35  # signal start (room for the calibration pulse)
    col_s = duration / 4.0
    clip = 0.8 * row
    bases = [-i * row for i in range(4)]
    _paper(ax, 0.0, x0 + duration + 0.15, bases[-1] - 0.62 * row, 0.55 * row)
    peaks = prep.r_peaks if prep.r_peaks is not None else np.zeros(0, int)
    marks_x, marks_y = [], []

    def trace(lead: str, i0: int, i1: int, x_start: float, base: float) -> None:
        label = lead
        if lead in prep.clean_mv:
            y = np.clip(prep.clean_mv[lead][i0:i1] * gain, -clip, clip) + base
            t = x_start + np.arange(i1 - i0) / fs
            ax.plot(t, y, color=_TRACE, lw=0.6)
            if lead in prep.flat:
                label += " (flat)"
        else:
            label += " (missing)"
        ax.text(x_start + 0.04, base + 0.42 * row, label, fontsize=8, fontweight="bold", va="top")
        inside = peaks[(peaks >= i0) & (peaks < i1)]
        marks_x.extend(x_start + (inside - i0) / fs)
        marks_y.extend([base + 0.36 * row] * inside.size)

    for r, leads in enumerate(LAYOUT):
        _calibration(ax, 0.03, bases[r], gain)
        for c, lead in enumerate(leads):
            i0, i1 = int(round(c * col_s * fs)), int(round((c + 1) * col_s * fs))
            trace(lead, i0, i1, x0 + c * col_s, bases[r])
            if c:
                xs = x0 + c * col_s
                ax.plot([xs, xs], [bases[r] - 0.2, bases[r] + 0.2], color=_TRACE, lw=0.9)
    _calibration(ax, 0.03, bases[3], gain)
    trace(RHYTHM_LEAD, 0, n, x0, bases[3])
    ax.scatter(marks_x, marks_y, marker="v", s=9, color=_QRS_MARK, zorder=3, linewidths=0)
    if prep.r_peaks is not None and peaks.size >= 2:  # RR intervals on the rhythm strip
        for a, b in itertools.pairwise(peaks):
            ax.text(
                x0 + (a + b) / 2 / fs,
                bases[3] + 0.5 * row,
                f"{(b - a) * 1e3 / fs:.0f}",
                fontsize=6,
                ha="center",
                va="center",
                color=_QRS_MARK,
            )
    for s in range(int(duration) + 1):  # time scale under the rhythm strip
        ax.text(x0 + s, bases[3] - 0.58 * row, f"{s} s", fontsize=6, ha="center", color="#555")
    qrs_note = (
        f"{peaks.size} QRS detected (▼), RR in ms on lead {RHYTHM_LEAD}"
        if prep.r_peaks is not None
        else f"QRS not detected: {prep.qrs_error}"
    )
    ax.set_title(
        f"12-lead ECG, first {duration:.1f} s, filtered 0.5–40 Hz · 25 mm/s, "
        f"{10 * gain:g} mm/mV · {qrs_note}",
        fontsize=9,
        loc="left",
        fontweight="bold",
    )
    if prep.r_peaks is None:
        return f"partial: QRS not detected ({prep.qrs_error})"
    if prep.missing:
        return "partial: leads missing: " + ", ".join(prep.missing)
    return "ok"


def _global_delineation(m):
    """The boundaries the beat panel marks: the global ones of the interval standards (from
    the leads, ``m.leads.global_``), else the leads-together ones where no lead was
    delineated on its own."""
    if m.leads is not None and math.isfinite(m.leads.global_.qrs_on):
        return m.leads.global_
    return m.delineation


def _draw_beats(ax, prep: _Prepared, config: ReportConfig) -> tuple[str, np.ndarray | None]:
    """Median beats in the standard layout; returns (status, beat referred to PR level)."""
    title = "Median beats with global delineation"
    m = prep.measurements
    if m is None:
        return _not_available(ax, prep.measure_error, title), None
    if m.beat is None:
        reason = m.notes[-1] if m.notes else "no average beat"
        return _not_available(ax, reason, title), None
    ab, fs = m.beat, m.fs
    d = _global_delineation(m)
    beat = ab.beat_mv
    if d is not None and math.isfinite(d.qrs_on):
        on = int(d.qrs_on)
        n20, n4 = max(1, round(0.02 * fs)), max(1, round(0.004 * fs))
        beat = beat - beat[:, max(0, on - n20) : max(1, on - n4 + 1)].mean(axis=-1)[:, None]
    gain = _gain({"_": beat.ravel()}, config) if beat.size else 1.0
    row = config.row_mv
    width = beat.shape[1] / fs
    gap = 0.12
    bases = [-i * row for i in range(3)]
    _paper(ax, -0.02, 4 * (width + gap), bases[-1] - 0.55 * row, 0.55 * row)
    marks = {"P": [], "QRS": [], "T": []}
    points = []
    if d is not None:
        points = [("P", d.p_on), ("P", d.p_off), ("QRS", d.qrs_on), ("QRS", d.qrs_off)]
        points.append(("T", d.t_end))
    t = np.arange(beat.shape[1]) / fs
    for r, leads in enumerate(LAYOUT):
        for c, lead in enumerate(leads):
            x_start = c * (width + gap)
            i = STANDARD_LEADS.index(lead)
            label = lead
            if lead in prep.missing:
                label += " (missing)"
            elif lead in prep.flat:
                label += " (flat)"
            else:
                y = np.clip(beat[i] * gain, -0.8 * row, 0.8 * row) + bases[r]
                ax.plot(x_start + t, y, color=_TRACE, lw=0.7)
            ax.text(x_start + 0.03, bases[r] + 0.42 * row, label, fontsize=8, fontweight="bold")
            for kind, p in points if label == lead else ():
                if math.isfinite(p):
                    x = x_start + p / fs
                    marks[kind].append(((x, bases[r] - 0.4 * row), (x, bases[r] + 0.4 * row)))
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    handles = []
    names = {"P": "P on/off", "QRS": "QRS on/off", "T": "T end"}
    for kind, segs in marks.items():
        if segs:
            ax.add_collection(
                LineCollection(segs, colors=_MARKS[kind], linewidths=0.8, linestyles="--")
            )
            handles.append(Line2D([], [], color=_MARKS[kind], ls="--", lw=1, label=names[kind]))
    if handles:
        ax.legend(
            handles=handles,
            fontsize=7,
            loc="upper right",
            bbox_to_anchor=(1.0, 1.13),
            ncol=len(handles),
            frameon=False,
        )
    # No P marks where the rhythm has no P waves (fibrillation, flutter, pacing) is no gap.
    no_p = m.values.get("p_present") == 0
    missing = [names[k] for k in marks if not marks[k] and not (k == "P" and no_p)]
    ax.set_title(
        f"{title} ({ab.n_kept} beats averaged, {10 * gain:g} mm/mV)",
        fontsize=9,
        loc="left",
        fontweight="bold",
    )
    status = "ok" if not missing else "partial: no " + ", ".join(missing)
    if prep.missing:
        status = "partial: leads missing: " + ", ".join(prep.missing)
    return status, beat


def _draw_vcg(axes, prep: _Prepared, beat: np.ndarray | None, title_at) -> str:
    """QRS and T loops in three planes; ``title_at(text)`` writes the panel title."""
    from team_code.dsp import vcg

    title = "VCG loops (Kors X/Y/Z)"
    m = prep.measurements
    need = [lead for lead in vcg.INPUT_LEADS if lead in prep.missing or lead in prep.flat]
    reason = ""
    if need:
        reason = "needs leads " + ", ".join(need) + " (missing or flat)"
    elif m is None or beat is None:
        reason = "no median beat"
    elif m.delineation is None or not (
        math.isfinite(m.delineation.qrs_on) and math.isfinite(m.delineation.qrs_off)
    ):
        reason = "QRS not delineated"
    if reason:
        title_at(title)
        for ax in axes:
            ax.set_axis_off()
        return _not_available(axes[1], reason, width=45)
    d, fs = m.delineation, m.fs
    xyz = vcg.to_xyz(beat, STANDARD_LEADS, "kors1990")
    q = xyz[:, int(d.qrs_on) : int(d.qrs_off) + 1]
    tl = None
    if math.isfinite(d.t_end) and d.t_end > d.qrs_off + 2:
        tl = xyz[:, int(d.qrs_off) : int(d.t_end) + 1]
    loops = [q] + ([tl] if tl is not None else [])
    lim = 1.15 * max(float(np.abs(loop).max()) for loop in loops) or 1.0
    # (horizontal component, vertical component, invert vertical, labels)
    planes = (
        ("frontal", 0, 1, True, "X (left →)", "Y (foot ↓)"),
        ("horizontal", 0, 2, False, "X (left →)", "Z (back ↑, front ↓)"),
        ("left sagittal", 2, 1, True, "Z (front ←, back →)", "Y (foot ↓)"),
    )
    desc = vcg.loop_descriptors(xyz, fs, d.qrs_on, d.qrs_off, d.t_end)
    for ax, (name, h, v, invert, xl, yl) in zip(axes, planes):
        ax.axhline(0, color="#bbbbbb", lw=0.5)
        ax.axvline(0, color="#bbbbbb", lw=0.5)
        ax.plot(q[h], q[v], color=_MARKS["QRS"], lw=1.1, label="QRS")
        k = q.shape[1]
        for frac in (0.3, 0.6):  # direction of inscription
            i = int(frac * (k - 2))
            if k >= 4:
                ax.annotate(
                    "",
                    xy=(q[h, i + 1], q[v, i + 1]),
                    xytext=(q[h, i], q[v, i]),
                    arrowprops={"arrowstyle": "-|>", "color": _MARKS["QRS"], "lw": 0.8},
                )
        if tl is not None:
            ax.plot(tl[h], tl[v], color=_MARKS["T"], lw=1.1, label="T")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        if invert:
            ax.invert_yaxis()
        ax.set_aspect("equal")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(xl, fontsize=7, labelpad=1)
        ax.set_ylabel(yl, fontsize=7, labelpad=1)
        ax.tick_params(labelsize=6, length=2, pad=1)
    axes[0].legend(fontsize=7, loc="lower left", frameon=False, handlelength=1.2)
    angle = desc.get("qrst_angle_deg", math.nan)
    title_at(
        f"{title}, mV · QRS max {_fmt(desc.get('qrs_max_mv'), ' mV', 2)}, "
        f"spatial QRS–T angle {_fmt(angle, '°')}"
    )
    return "ok" if tl is not None else "partial: no T loop (T end not found)"


def _draw_scalogram(ax, record: Record, cwt_config) -> str:
    from team_code.classifiers import cwt_googlenet
    from team_code.data.records import RecordError
    from team_code.dsp import cwt

    cfg = cwt_config or cwt_googlenet.CWTGoogLeNetConfig()
    title = "cwt_googlenet input (scalograms)"
    try:
        image = cwt_googlenet.record_image(
            record, cfg.image_size, cwt_googlenet.scalogram_config(cfg)
        )
    except (RecordError, ValueError) as error:
        reason = _short(error)
        return _not_available(ax, reason.removeprefix(f"record {record.name}: "), title, 40)
    size = image.shape[0]
    ax.imshow(
        image,
        cmap="jet" if cfg.color == "jet" else "gray",
        vmin=0,
        vmax=1,
        interpolation="nearest",
        aspect="equal",
    )
    edges = cwt.tile_edges(size, len(cwt.ECG_IMAGE_LEADS))
    ax.set_yticks((edges[:-1] + edges[1:]) / 2 - 0.5, list(cwt.ECG_IMAGE_LEADS))
    split = image.shape[1] / 2
    ax.set_xticks(
        [split / 2, 1.5 * split],
        [f"rhythm {cfg.rhythm_s:g} s", "average beat"],
    )
    ax.axvline(split - 0.5, color="white", lw=0.8)
    for e in edges[1:-1]:
        ax.axhline(e - 0.5, color="white", lw=0.3, alpha=0.6)
    ax.tick_params(labelsize=7, length=0, pad=2)
    ax.set_title(title, fontsize=9, loc="left", fontweight="bold")
    ax.text(
        0.0,
        -0.1,
        f"{size}×{size} px, |CWT| log-scaled; frequency rises upwards\nin each tile "
        f"({cfg.rhythm_band_hz[0]:g}–{cfg.rhythm_band_hz[1]:g} Hz | "
        f"{cfg.beat_band_hz[0]:g}–{cfg.beat_band_hz[1]:g} Hz)",
        fontsize=6.5,
        transform=ax.transAxes,
        color="#444",
        va="top",
    )
    if not np.any(image):
        ax.text(
            0.5,
            0.5,
            "blank image: flat signal",
            color="white",
            ha="center",
            transform=ax.transAxes,
            fontsize=9,
        )
        return "partial: blank image (flat signal)"
    return "ok"


def _measurement_lines(prep: _Prepared) -> list[str]:
    """The record's key measurements. Intervals are the global ones of the interval
    standards (the earliest onset and the latest offset of a wave over the leads,
    ``global_*``); the leads-together values the rules read (``qrs_ms`` ...) follow on a line
    of their own, since they name a typical lead and read shorter."""
    from team_code.dsp import delineation

    v = prep.measurements.values
    rr = v.get("rr_median_s", math.nan)
    qt = v.get("global_qt_ms", math.nan)
    fridericia = delineation.qtc(qt, rr, "fridericia1920")
    lines = [
        f"HR        {_fmt(v.get('hr_bpm'), ' bpm')}   (RR {_fmt(rr, ' s', 2)},"
        f" SDNN {_fmt(v.get('sdnn_ms'), ' ms')})",
        "Intervals, global (first onset to last offset over the leads):",
        f"PR        {_fmt(v.get('global_pr_ms'), ' ms')}   P {_fmt(v.get('global_p_ms'), ' ms')}"
        f"   QRS {_fmt(v.get('global_qrs_ms'), ' ms')}   QT {_fmt(qt, ' ms')}",
        f"QTc       {_fmt(v.get('global_qtc_bazett_ms'), ' ms')} Bazett, "
        f"{_fmt(fridericia, ' ms')} Fridericia",
        f"Rules read (leads together): PR {_fmt(v.get('pr_ms'), '')}, P {_fmt(v.get('p_ms'), '')},"
        f" QRS {_fmt(v.get('qrs_ms'), '')}, QT {_fmt(v.get('qt_ms'), '')} ms",
        f"Axis      P {_fmt(v.get('p_axis_deg'), '°')}  QRS {_fmt(v.get('qrs_axis_deg'), '°')}"
        f"  T {_fmt(v.get('t_axis_deg'), '°')}",
        f"Beats     {v.get('n_beats', '—')} detected, "
        f"{prep.measurements.beat.n_kept if prep.measurements.beat else 0} averaged, "
        f"{v.get('n_pvc', '—')} PVC, {v.get('n_pac', '—')} PAC",
    ]
    return lines


def _draw_measurements(ax, prep: _Prepared) -> str:
    """Key measurements of the record (global, on the median beat) and the chain's notes."""
    ax.set_axis_off()
    ax.set_title("Measurements (median beat)", fontsize=9, loc="left", fontweight="bold")
    if prep.measurements is None:
        return _not_available(ax, prep.measure_error, width=40)
    values = prep.measurements.values
    if not math.isfinite(values.get("hr_bpm", math.nan)) and prep.measurements.beat is None:
        notes = prep.measurements.notes
        return _not_available(ax, notes[-1] if notes else "nothing measurable", width=40)
    status = "ok"
    lines = _measurement_lines(prep)
    notes = [n for n in prep.measurements.notes if "flat" not in n and "missing" not in n]
    flat_missing = sorted(prep.flat, key=STANDARD_LEADS.index) + prep.missing
    if flat_missing:
        notes.insert(0, "leads flat or missing: " + ", ".join(flat_missing))
    if notes:
        lines.append("")
    for note in notes[:4]:
        lines += textwrap.wrap("note: " + note, 62, subsequent_indent="      ")
    if not math.isfinite(prep.measurements.values.get("qrs_ms", math.nan)):
        status = "partial: intervals not measurable"
    ax.text(
        0,
        1.0,
        "\n".join(lines),
        fontsize=7.5,
        family="monospace",
        va="top",
        transform=ax.transAxes,
        linespacing=1.4,
    )
    return status


def _term_text(t: dict) -> str:
    """``measure value op threshold unit``, the published threshold beside a tuned one."""
    unit = f" {t['unit']}" if t.get("unit") else ""
    threshold = float(t["threshold"])
    text = f"{t['measure']} {float(t['value']):.3g} {t['op']} {threshold:.3g}{unit}"
    published = t.get("published")
    if published is not None and not math.isclose(float(published), threshold, abs_tol=1e-9):
        text += f" (tuned; published {float(published):.3g})"
    return text


def rule_lines(rule: dict, width: int) -> list[str]:
    """A rule's verdict as lines: class, score against its operating threshold and the
    criterion text; then the measured terms that count for the diagnosis and, marked as
    such, those that count against it (a met condition inside a "not"); then the
    measurements that were missing. Every term is listed: none is cut off."""
    name = str(rule.get("abbreviation", rule.get("code", "?")))
    threshold = float(rule.get("threshold", 0.5))
    limit = "silent" if threshold > 1.0 else f"≥ {threshold:.2f}"
    head = f"{name} {float(rule.get('score', 0.0)):.2f} ({limit}): {rule.get('criterion', '')}"
    lines = textwrap.wrap(head, width, subsequent_indent="   ")
    groups: dict[str, list[str]] = {"for": [], "against": []}
    for t in rule.get("terms", []):
        if t.get("value") is None:
            continue
        role = "against" if t.get("role") == "against" else "for"
        text = _term_text(t)
        if text not in groups[role]:
            groups[role].append(text)
    if not any(groups.values()) and rule.get("why"):
        groups["for"] = [str(rule["why"]).removeprefix("fired: ")]
    decided = ["for", "against"] if rule.get("label", True) else ["against", "for"]
    for role in decided:
        if groups[role]:
            lines += textwrap.wrap(
                f"{role}: " + "; ".join(groups[role]),
                width,
                initial_indent="   ",
                subsequent_indent="     ",
            )
    if rule.get("missing"):
        lines += textwrap.wrap(
            "not measurable (scored 0): " + ", ".join(rule["missing"]),
            width,
            initial_indent="   ",
            subsequent_indent="     ",
        )
    return lines


def _draw_rules(ax, explanation: dict | None, explain_error: str, config: ReportConfig) -> str:
    """The rules that fired, each with every term that decided it (see :func:`rule_lines`);
    rules that do not fit are counted, never cut in the middle."""
    ax.set_axis_off()
    ax.set_title(
        "Rules fired: score (≥ operating threshold): criterion; terms for and against "
        "(value op threshold)",
        fontsize=9,
        loc="left",
        fontweight="bold",
    )
    if explanation is None:
        return _not_available(ax, explain_error or "no rules explanation given", width=70)
    rules = [r for r in explanation.get("rules", []) if r.get("label")]
    rules.sort(key=lambda r: -float(r.get("score", 0.0)))
    max_lines = 19
    lines: list[str] = []
    shown = 0
    for r in rules[: config.max_rules]:
        block = rule_lines(r, 104)
        if shown and len(lines) + len(block) > max_lines - 1:
            break
        lines += block
        shown += 1
    if shown < len(rules):
        lines.append(f"... and {len(rules) - shown} more rules fired")
    if not rules:
        lines.append("no rule fired")
        others = sorted(explanation.get("rules", []), key=lambda r: -float(r.get("score", 0)))
        if others:
            best = others[0]
            lines.append(
                f"highest: {best.get('abbreviation')} {float(best.get('score', 0)):.2f} < "
                f"{float(best.get('threshold', math.nan)):.2f}"
            )
    ax.text(
        0,
        1.0,
        "\n".join(lines),
        fontsize=7,
        va="top",
        transform=ax.transAxes,
        linespacing=1.3,
        family="monospace",
    )
    return "ok"


def _draw_scores(
    ax, scores_row, thresholds, abbreviations, truth_idx, members, top_k, labels_row
) -> str:
    s = np.asarray(scores_row, dtype=np.float64)
    th = np.asarray(thresholds, dtype=np.float64)
    named = np.asarray(labels_row, dtype=bool)
    ranked = by_score(s)  # the top_k classes, and every named one, in the page's order
    order = [j for rank, j in enumerate(ranked) if rank < top_k or named[j]]
    ys = np.arange(len(order))[::-1]
    vals = np.nan_to_num(s[order], nan=0.0)
    pred = named[order]
    ax.barh(ys, vals, height=0.6, color=np.where(pred, "#c0392b", "#9aa5b1"), zorder=2)
    ax.scatter(
        th[order], ys, marker="|", s=260, color="black", zorder=4, linewidths=1.6, label="threshold"
    )
    for y, v in zip(ys, vals):
        ax.text(1.02, y, f"{v:.2f}", fontsize=7.5, va="center", transform=ax.get_yaxis_transform())
    for m, (name, row) in enumerate(members.items()):
        marker, color = _MEMBER_STYLE[m % len(_MEMBER_STYLE)]
        r = np.asarray(row, dtype=np.float64)
        ax.scatter(
            r[order],
            ys + 0.3 - 0.6 * (m + 1) / (len(members) + 1),
            marker=marker,
            s=16,
            color=color,
            edgecolors="white",
            linewidths=0.4,
            zorder=5,
            label=name,
        )
    labels = [abbreviations[j] + (" ✓" if j in truth_idx else "") for j in order]
    ax.set_yticks(ys, labels)
    for tick, j in zip(ax.get_yticklabels(), order):
        if named[j]:
            tick.set_fontweight("bold")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.tick_params(labelsize=7)
    ax.grid(axis="x", color="#dddddd", lw=0.5, zorder=0)
    ax.legend(
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncol=1 + len(members),
        frameon=False,
        handletextpad=0.3,
        columnspacing=1.0,
    )
    ax.set_title(
        "Top scores (red: predicted, | threshold, ✓ true label)",
        fontsize=9,
        loc="left",
        fontweight="bold",
    )
    return "ok"


#: What the kit is for, stated on every page and on the index.
INTENDED_USE = (
    "For research and PhysioNet/CinC Challenge entries only: not a medical device, "
    "not for diagnosis or patient care."
)


def _header(fig, record: Record, abbreviations, truth_idx, pred_idx, top_note: str) -> None:
    age = "?" if record.age is None else f"{record.age:g} y"
    sex = record.sex or "sex ?"
    truth = ", ".join(abbreviations[j] for j in sorted(truth_idx)) or "—"
    pred = ", ".join(abbreviations[j] for j in pred_idx) or "none"
    fig.text(0.012, 0.985, record.name, fontsize=15, fontweight="bold", va="top")
    fig.text(
        0.11,
        0.983,
        f"{age}, {sex} · {record.fs:g} Hz, {record.duration_s:.1f} s, {len(record.leads)} leads"
        f"     true: {truth}     predicted: {pred}{top_note}",
        fontsize=11,
        va="top",
    )
    fig.text(0.012, 0.002, INTENDED_USE, fontsize=8, color="#555555", ha="left", va="bottom")


def predicted_labels(scores, thresholds) -> np.ndarray:
    """The label sets of ``scores`` ((n, c) or (c,)) as thresholds give them: each class at
    or above its threshold (a NaN score never). A model with its own decision policy (the
    rules' ``decision_policy``) may name others: :func:`report_outputs` shows the labels the
    run wrote."""
    s = np.asarray(scores, dtype=np.float64)
    return np.where(np.isfinite(s), s, -np.inf) >= np.asarray(thresholds, dtype=np.float64)


def by_score(scores_row, named=None) -> list[int]:
    """Class indices from the highest score to the lowest (a NaN score last, ties in class
    order); only those ``named`` (a bool per class) where it is given: the order in which the
    page and the index list a record's classes."""
    s = np.asarray(scores_row, dtype=np.float64)
    order = np.argsort(-np.where(np.isfinite(s), s, -np.inf), kind="stable")
    return [int(j) for j in order if named is None or named[j]]


# --------------------------------------------------------------------------------------------
# One page


def render_record(
    record: Record,
    scores_row,
    classes: Sequence[str],
    thresholds,
    path: str | Path,
    *,
    explanation: dict | None = None,
    explain_error: str = "",
    member_rows: Mapping[str, np.ndarray] | None = None,
    top_k: int = 5,
    abbreviations: Sequence[str] | None = None,
    cwt_config=None,
    config: ReportConfig | None = None,
    thumb_path: str | Path | None = None,
    labels_row: np.ndarray | None = None,
) -> dict:
    """Draw one record's page to ``path`` (PNG); return ``{panel: status}`` for :data:`PANELS`.

    A status is ``"ok"``, ``"partial: <what is missing>"`` or ``"not available: <reason>"``.
    ``explanation`` is the rules' explanation dict (``RulesClassifier.explain``), or None with
    ``explain_error`` saying why; ``member_rows`` maps engine names to their score rows;
    ``cwt_config`` is the ``CWTGoogLeNetConfig`` whose mosaic is shown (default config when
    None). ``thumb_path`` also writes a ``config.thumb_px``-wide thumbnail. ``labels_row``
    is the record's label set as the run wrote it (default: :func:`predicted_labels`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    config = config or ReportConfig()
    abbreviations = list(abbreviations or _abbreviation_lookup(classes))
    s = np.asarray(scores_row, dtype=np.float64)
    th = np.asarray(thresholds, dtype=np.float64)
    truth_idx = {classes.index(c) for c in _truth(record, classes)}
    named = predicted_labels(s, th) if labels_row is None else np.asarray(labels_row, dtype=bool)
    pred_idx = by_score(s, named)
    status: dict[str, str] = {}

    fig = Figure(figsize=config.page_in, dpi=config.dpi)
    FigureCanvasAgg(fig)
    page_w, page_h = config.page_in

    def axes(left: float, bottom: float, width: float, height: float, anchor: str = "C"):
        """Axes placed in inches from the bottom-left corner of the page."""
        ax = fig.add_axes((left / page_w, bottom / page_h, width / page_w, height / page_h))
        ax.set_anchor(anchor)
        return ax

    _header(fig, record, abbreviations, truth_idx, pred_idx, "")
    ax_ecg = axes(0.15, 6.85, 15.7, 6.45, "N")
    ax_beats = axes(0.15, 3.35, 4.6, 3.0, "W")
    ax_vcg = [axes(5.45 + 2.45 * i, 3.75, 2.05, 2.05) for i in range(3)]
    ax_scal = axes(12.85, 3.55, 2.8, 2.8, "E")
    ax_meas = axes(0.15, 0.15, 3.9, 2.75)
    ax_rules = axes(4.25, 0.15, 6.1, 2.75)
    ax_scores = axes(11.65, 0.45, 3.85, 2.35)

    def guarded(name: str, ax, draw) -> object:
        try:
            return draw()
        except Exception as error:  # one panel's failure must not lose the record's page
            ax.clear()
            status[name] = _not_available(ax, f"{type(error).__name__}: {_short(error)}")
            return None

    try:
        prep = _prepare(record, config)
    except Exception as error:  # nothing to draw from
        prep = _Prepared(record.fs, {}, set(), [], None, _short(error), None, _short(error))
    result = guarded("ecg", ax_ecg, lambda: _draw_ecg(ax_ecg, prep, config))
    if result is not None:
        status["ecg"] = result
    beat = None
    result = guarded("beats", ax_beats, lambda: _draw_beats(ax_beats, prep, config))
    if result is not None:
        status["beats"], beat = result

    def vcg_title(text: str) -> None:
        fig.text(5.45 / page_w, 6.42 / page_h, text, fontsize=9, fontweight="bold")

    def vcg_panel():
        try:
            return _draw_vcg(ax_vcg, prep, beat, vcg_title)
        except Exception:
            for ax in ax_vcg[1:]:
                ax.clear()
                ax.set_axis_off()
            raise

    result = guarded("vcg", ax_vcg[0], vcg_panel)
    if result is not None:
        status["vcg"] = result
    result = guarded("scalogram", ax_scal, lambda: _draw_scalogram(ax_scal, record, cwt_config))
    if result is not None:
        status["scalogram"] = result
    result = guarded("measurements", ax_meas, lambda: _draw_measurements(ax_meas, prep))
    if result is not None:
        status["measurements"] = result
    result = guarded(
        "rules", ax_rules, lambda: _draw_rules(ax_rules, explanation, explain_error, config)
    )
    if result is not None:
        status["rules"] = result
    result = guarded(
        "scores",
        ax_scores,
        lambda: _draw_scores(
            ax_scores, s, th, abbreviations, truth_idx, dict(member_rows or {}), top_k, named
        ),
    )
    if result is not None:
        status["scores"] = result

    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    image = Image.fromarray(np.ascontiguousarray(rgb))
    path = Path(path)
    image.save(path, format="PNG", compress_level=3)
    if thumb_path is not None:
        w = config.thumb_px
        h = max(1, round(image.height * w / image.width))
        image.resize((w, h), Image.Resampling.BOX).save(thumb_path, format="PNG")
    return {name: status.get(name, "not available: not drawn") for name in PANELS}


# --------------------------------------------------------------------------------------------
# The whole report


def _index_html(rows: list[dict], title: str) -> str:
    head = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border-bottom:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}"
        ".na{color:#999;font-size:85%}.pred{font-weight:bold;color:#b03020}"
        "img{border:1px solid #ccc}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{len(rows)} records. Click a thumbnail for the page."
        f"</p><p class='use'>{html.escape(INTENDED_USE)}</p>"
        "<table><tr><th></th><th>record</th><th>true</th><th>predicted</th>"
        "<th>top scores</th><th>panels not available</th></tr>\n"
    )
    body = []
    for r in rows:
        name = html.escape(r["record"])
        if r.get("file"):
            href = html.escape(r["file"], quote=True)
            thumb = html.escape(r["thumb"], quote=True)
            link = f"<a href='{href}'><img src='{thumb}' width='240' alt='{name}'></a>"
            name_cell = f"<a href='{href}'>{name}</a>"
        else:
            link, name_cell = "", name
        skipped = [
            f"{html.escape(p)}: {html.escape(s.removeprefix('not available: '))}"
            for p, s in r.get("panels", {}).items()
            if s.startswith("not available")
        ]
        if r.get("error"):
            skipped.insert(0, "record: " + html.escape(r["error"]))
        body.append(
            f"<tr><td>{link}</td><td>{name_cell}</td><td>{html.escape(r.get('true', ''))}</td>"
            f"<td class='pred'>{html.escape(r.get('predicted', ''))}</td>"
            f"<td>{html.escape(r.get('top', ''))}</td>"
            f"<td class='na'>{'<br>'.join(skipped)}</td></tr>"
        )
    return head + "\n".join(body) + "\n</table></body></html>\n"


def write_report(
    records: Sequence[Record],
    scores,
    classes: Sequence[str],
    thresholds,
    out_dir: str | Path,
    *,
    evidence: Callable[[Record], Evidence] | None = None,
    member_scores: Mapping[str, np.ndarray] | None = None,
    top_k: int = 5,
    config: ReportConfig | None = None,
    log: Callable[[str], None] | None = None,
    labels=None,
) -> Path:
    """Write one PNG page per record, thumbnails, ``index.html`` and ``report.json``.

    Args:
        records: the records (a list or a lazy :class:`~team_code.data.records.RecordSet`;
            an unreadable record is listed in the index with its error).
        scores: (n_records, n_classes) scores in [0, 1] (the fused score for a hybrid).
        classes: the class codes of the score columns.
        thresholds: (n_classes,) decision thresholds, drawn beside the scores (the labels
            shown are ``labels``, by default each score at or above its threshold).
        out_dir: output folder (created).
        evidence: optional ``record -> Evidence`` (a model's :meth:`Classifier.evidence` of
            one record): the rules' account (fired rules and why), member scores drawn
            beside the score, the scalogram settings (the default ``CWTGoogLeNetConfig``
            without them). A record whose evidence fails keeps its page, those panels blank.
        member_scores: optional engine name -> (n_records, n_classes) scores, drawn beside the
            score (with the evidence's member scores).
        top_k: classes with the highest scores shown (predicted classes are always shown).
        config: page layout (:class:`ReportConfig`).
        log: optional progress callback (one line per record).
        labels: optional (n_records, n_classes) label sets as the run wrote them (default:
            :func:`predicted_labels` of each record's scores).

    Returns:
        The path of ``index.html``. ``report.json`` beside it lists, per record, the PNG, the
        status of every panel (``"ok"``, ``"partial: ..."``, ``"not available: ..."``) and
        the seconds it took.

    Raises:
        ValueError: when the shapes of scores, classes, thresholds and members disagree.
    """

    classes = [str(c) for c in classes]
    scores = np.asarray(scores, dtype=np.float64)
    n = len(records)
    if scores.shape != (n, len(classes)):
        raise ValueError(
            f"scores must be (n_records, n_classes) = ({n}, {len(classes)}); got {scores.shape}"
        )
    thresholds = np.asarray(thresholds, dtype=np.float64).ravel()
    if thresholds.shape != (len(classes),):
        raise ValueError(f"thresholds must have {len(classes)} values; got {thresholds.shape}")
    labels = (
        predicted_labels(scores, thresholds) if labels is None else np.asarray(labels, dtype=bool)
    )
    if labels.shape != scores.shape:
        raise ValueError(f"labels must be shaped like scores {scores.shape}; got {labels.shape}")
    members = {str(k): np.asarray(v, dtype=np.float64) for k, v in (member_scores or {}).items()}
    for name, value in members.items():
        if value.shape != scores.shape:
            raise ValueError(
                f"member_scores[{name!r}] must be shaped like scores {scores.shape}; "
                f"got {value.shape}"
            )
    out = Path(out_dir)
    (out / "thumbs").mkdir(parents=True, exist_ok=True)
    with _one_blas_thread():
        rows = _write_pages(
            records,
            scores,
            labels,
            classes,
            thresholds,
            out,
            evidence,
            members,
            top_k,
            config,
            log,
        )
    index = out / "index.html"
    index.write_text(_index_html(rows, f"ECG report: {n} records"), encoding="utf-8")
    (out / "report.json").write_text(
        json.dumps({"classes": classes, "records": rows}, indent=1), encoding="utf-8"
    )
    return index


def _one_blas_thread():
    """Limit BLAS to one thread while drawing (its tiny matrix products thrash when shared)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _write_pages(
    records, scores, labels, classes, thresholds, out, evidence, members, top_k, config, log
) -> list[dict]:
    """Render every record's page; one row per record for the index."""
    from team_code.data.records import RecordError

    n = len(records)
    abbreviations = _abbreviation_lookup(classes)
    names = list(getattr(records, "names", [])) or [None] * n
    used: set[str] = {"index", "report"}
    rows: list[dict] = []
    for i in range(n):
        start = time.perf_counter()
        try:
            record = records[i]
        except RecordError as error:
            rows.append({"record": str(names[i] or f"#{i}"), "error": _short(error)})
            continue
        stem = _file_stem(record.name, used)
        shown, explain_error = _evidence_of(record, evidence, scores.shape[1])
        row_scores = scores[i]
        panels = render_record(
            record,
            row_scores,
            classes,
            thresholds,
            out / f"{stem}.png",
            explanation=shown.rules,
            explain_error=explain_error,
            member_rows={**{k: v[i] for k, v in members.items()}, **shown.members},
            top_k=top_k,
            abbreviations=abbreviations,
            cwt_config=shown.scalogram,
            config=config,
            thumb_path=out / "thumbs" / f"{stem}.png",
            labels_row=labels[i],
        )
        top = by_score(row_scores)[:3]
        truth = _truth(record, classes)
        rows.append(
            {
                "record": record.name,
                "file": f"{stem}.png",
                "thumb": f"thumbs/{stem}.png",
                "true": ", ".join(abbreviations[classes.index(c)] for c in classes if c in truth),
                "predicted": ", ".join(abbreviations[j] for j in by_score(row_scores, labels[i])),
                "top": ", ".join(f"{abbreviations[j]} {row_scores[j]:.2f}" for j in top),
                "panels": panels,
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
        if log is not None:
            log(f"report {record.name}: {rows[-1]['seconds']:.2f} s")
    return rows


def _evidence_of(record: Record, evidence, n_classes: int) -> tuple[Evidence, str]:
    """The evidence of ``record`` (nothing without ``evidence``) and, where its rules panel
    stays blank, why: a failed evidence call only blanks the panels it feeds. Member scores
    not shaped (n_classes,) are left out."""
    if evidence is None:
        return Evidence(), ""
    try:
        shown = evidence(record)
    except Exception as error:  # a failed evidence call only blanks its panels
        return Evidence(), f"evidence failed: {type(error).__name__}: {_short(error)}"
    members = {
        name: np.asarray(row, dtype=np.float64)
        for name, row in shown.members.items()
        if np.shape(row) == (n_classes,)
    }
    shown = dataclasses.replace(shown, members=members)
    return shown, "" if shown.rules is not None else "the model has no rules engine"


# --------------------------------------------------------------------------------------------
# The report of a run: a model folder, its records and the outputs the run wrote


def report_outputs(
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    report_dir: str | os.PathLike,
    records: Sequence[str] | None = None,
    classifier: str | None = None,
    log: Callable[[str], None] = say,
) -> Path:
    """Draw per-record reports of records already classified by
    :func:`team_code.inference.run`.

    Scores and labels are read back from the output files, so the pictures show what was
    written; nothing is classified again. What the model shows of how it scored a record
    (the rules' account, its members' scores where they come without classifying, the
    scalogram settings) comes from :meth:`Classifier.evidence`.
    """
    model = load_model(model_dir, classifier)
    paths = {p.stem: p for p in find_records(data_dir)}
    names = [n for n in (records if records is not None else paths) if n in paths]
    if isinstance(model, LeadSetModels):
        return _lead_set_report(model, model_dir, paths, names, output_dir, report_dir, log)
    return _model_report(model, paths, names, output_dir, report_dir, log)


def _lead_set_report(model, model_dir, paths, names, output_dir, report_dir, log) -> Path:
    """One report per lead set (``REPORT/leads-<set>/``) of the records its model served,
    and an index saying which model served which records."""
    manifest = load_manifest(model_dir)
    served = served_lead_sets(manifest, [paths[n] for n in names], set(names))
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for name, member in model.models.items():
        group = [n for n in names if served.get(n) == name]
        if not group:
            continue
        folder = LEAD_SET_FOLDER.format(name.replace(",", "-"))
        _model_report(member, paths, group, output_dir, report_dir / folder, log)
        leads = ", ".join(model.leads[name])
        items.append(
            f'<li><a href="{folder}/index.html">{len(group)} records served by the '
            f"{html.escape(name)}-lead model</a> ({html.escape(leads)})</li>"
        )
    index = report_dir / "index.html"
    index.write_text(
        "<!doctype html><meta charset='utf-8'><title>ECG report by lead set</title>"
        f"<h1>ECG report: {len(names)} records</h1>"
        "<p>Each record is classified by the model of the largest trained lead set whose "
        f"leads it has.</p><ul>{''.join(items)}</ul>",
        encoding="utf-8",
    )
    return index


def _model_report(model, paths, names, output_dir, report_dir, log) -> Path:
    """The report of the records ``names`` served by one model, from their output files (each
    must list the model's classes in the model's order)."""
    outputs = [read_output(Path(output_dir) / f"{name}.csv") for name in names]
    for name, output in zip(names, outputs):
        if list(output.classes) != list(model.classes_):
            raise ValueError(
                f"output file {Path(output_dir) / f'{name}.csv'} lists other classes than the "
                f"model's ({len(output.classes)} against {len(model.classes_)}, or another "
                "order): it was not written by this model"
            )
    chosen = RecordSet([paths[n] for n in names])
    scores = np.array([o.scores for o in outputs]).reshape(len(outputs), len(model.classes_))
    labels = np.array([o.labels for o in outputs]).reshape(scores.shape).astype(bool)
    return write_report(
        chosen,
        scores,
        list(model.classes_),
        model.thresholds_,
        report_dir,
        evidence=lambda record: model.evidence([record])[0],
        log=log,
        labels=labels,
    )
