"""The per-record measurement bundle: from a raw 12-lead signal to named measurements.

``measure(signal_mv, fs, leads)`` (or ``measure_record(record)``) runs the whole signal chain
once and returns :class:`Measurements`: a flat dict of JSON-able numbers (NaN where a
measurement could not be made), notes on what went wrong, and the intermediate objects (the
average beat and its delineation) for plots.

Chain (all windows in seconds or ms; see :class:`FeatureConfig`):

1. the 12 standard leads in standard order (a missing lead becomes a flat row and a note);
   at most the first ``max_duration_s`` seconds (by default the whole of any Challenge
   record; the cap bounds the cost of Holter-length records); resampled to ``fs_analysis``
   Hz; non-finite samples bridged by straight lines (noted;
   :func:`team_code.dsp.filters.fill_nonfinite`);
2. power-line notch (kept for the pacemaker-spike search), then baseline and EMG filters
   (:func:`team_code.dsp.filters.clean`);
3. flat leads (peak-to-peak below ``flat_mv``) are left out of everything (their measures are
   NaN); very noisy leads (high-frequency residual above ``noisy_ratio`` of the signal) are
   left out of QRS detection only;
4. QRS detection (:func:`team_code.dsp.qrs.detect`, Christov 2004) on the usable leads;
   RR statistics and premature beats (:mod:`team_code.dsp.rhythm`). Rhythm and ectopy are
   read over the whole analysed record: RR statistics, the beats' morphology (dominant or
   not, :func:`team_code.dsp.beats.average_beat` over every beat), the premature atrial and
   ventricular beat counts, the AF evidence and pacing spikes; a record of at least two
   10-s windows also gets the AF evidence of its most irregular window (``afw_*``, which
   the AF rule reads: a paroxysm that the record's median would dilute). Where under
   ``min_alike_fraction`` of the beats have a look-alike (``alike_fraction``: QRS correlation
   at the average beat's same-morphology level with another beat) the beats do not repeat:
   noise, whose "average beat" is a few noisy beats; a note says that what is read on it is
   unreliable (the measurements are still made: the rules read them as they are);
5. the robust average beat of the first ``morphology_s`` seconds (the morphology window:
   one average beat whose cost does not grow with the record; beats of a longer record add
   little to a median beat and would let a late change of morphology blur it), its
   delineation on
   the independent leads I, II, V1-V6 together (:mod:`team_code.dsp.delineation`; the
   intervals ``p_ms``, ``pr_ms``, ``qrs_ms``, ``qt_ms`` and the window of the amplitude
   measures), then every usable lead delineated on its own around it
   (:func:`~team_code.dsp.delineation.delineate_leads`, ``lead_method``) and the global
   boundaries remade from the leads as the interval standards define them (earliest onset,
   latest offset, robust to one stray lead; ``global_rule``): ``global_p_ms``,
   ``global_pr_ms``, ``global_qrs_ms``, ``global_qt_ms``, ``global_qtc_bazett_ms``. Where
   the rhythm has no P waves (paced beats, atrial fibrillation: irregular RR with
   inconsistent P segments, flutter: organised atrial activity, or P segments that disagree
   across beats; see :func:`p_waves_present`) no P wave is given on any lead nor globally,
   and the leads-together P intervals (``p_ms``, ``pr_ms``) are NaN as well (the P
   amplitudes, ``p_mv`` and ``<lead>_p_mv``, stay: the rhythm rules weigh them as evidence);
6. per-lead amplitudes on the average beat, the frontal QRS/P/T axes, QTc (Bazett,
   Fridericia), X/Y/Z loops (:mod:`team_code.dsp.vcg`, Kors), AF evidence (derivative zero
   crossings in lead II, atrial frequency after QRST cancellation in V1, P-wave consistency
   across beats), pacemaker spikes, premature atrial/ventricular beat counts.

Per-lead keys are ``<lead>_<measure>`` with measures ``r_mv``, ``s_mv``, ``q_mv``, ``q_ms``,
``rprime_mv``, ``qrs_area_mvms``, ``qrs_pp_mv``, ``term_mv`` (mean of the last 40 ms of the
QRS), ``st_mv`` (J + 60 ms), ``t_mv`` (signed T amplitude at the T peak), ``p_mv`` (signed P
amplitude at the P peak), ``qrs_end_ms`` (QRS onset to the end of the lead's terminal
deflection: the common QRS offset, or later where the lead is still far from its baseline
there, :func:`terminal_end`); amplitudes are referred to the PR-segment level. ``rprime_mv``
is the r' or R' of rsr', rsR', rSR' or a notched R, read up to the lead's terminal end
(:func:`rprime_mv`). ``qrs_terminal_ms`` is ``qrs_ms`` lengthened to the latest terminal end
of V1 and V2 (:data:`TERMINAL_LEADS`; of I where neither was recorded): the width the right
bundle branch block rules read, where the common offset falls on V1's broad terminal R'. The
per-lead
delineation adds ``<lead>_<measure>`` for ``LEAD_BOUNDARY_MEASURES``: ``lead_qrs_ms`` (the
lead's own QRS duration), ``lead_qt_ms`` (its QRS onset to its T end), ``lead_t_mv`` and
``lead_p_mv`` (signed amplitudes at the lead's own T and P peaks), ``lead_q_ms`` (the Q
wave's duration from the lead's own QRS onset: ``q_ms`` counts from the global onset, which
precedes a lead whose QRS starts later). ``p_present`` is 1 where
the rhythm has P waves, else 0; ``qrs_lead_median_ms`` and ``qt_lead_median_ms`` are the
median over leads of the lead durations (a typical lead, beside the global ``qrs_ms`` and
``qt_ms``).

``FeatureConfig.delineator`` chooses where the intervals come from: ``"wavelet"`` (the
default, the chain above) or ``"cnn"``, the learned per-lead delineator
(:func:`team_code.nn.delineator.delineate_record`, passed in as ``learned=`` since this
package never imports torch) run on the usable leads of the morphology window. With
``"cnn"``, ``p_ms``, ``pr_ms``, ``qrs_ms``, ``qt_ms``, their ``global_`` twins and the QTc
values are the median over the window's dominant beats of the network's global boundaries
(a wave found on fewer than half of those beats: NaN; P intervals NaN where the rhythm has
no P waves), ``qrs_lead_median_ms`` and ``qt_lead_median_ms`` those of its typical lead
(each boundary the median over the leads: ``LeadDelineation.lead_median``), and
``<lead>_lead_t_mv`` its median signed T size (from the chord between the T wave's ends)
where the network finds a T wave on at least half of the beats of that lead (elsewhere the
wavelet reading stays). Where the network finds no beat the wavelet values stay (noted).
Every other measurement, and the ``delineation`` and ``leads`` objects, stay the wavelet chain's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from team_code.data.leads import DERIVED_LIMB_LEADS, limb_from_i_ii
from team_code.data.records import STANDARD_LEADS, Record
from team_code.dsp import beats, delineation, filters, qrs, rhythm, vcg
from team_code.dsp.resample import resample

__all__ = [
    "FeatureConfig",
    "Measurements",
    "measure",
    "measure_record",
    "LEAD_MEASURES",
    "LEAD_BOUNDARY_MEASURES",
    "p_waves_present",
    "DELINEATORS",
    "LearnedDelineator",
    "TERMINAL_LEADS",
    "rprime_mv",
    "terminal_end",
]

#: Where the intervals come from (``FeatureConfig.delineator``): the wavelet delineation of
#: the average beat, or the learned delineator on the morphology window (see the docstring).
DELINEATORS: tuple[str, ...] = ("wavelet", "cnn")

#: A learned delineator: ``(signal_mv (n_leads, n), fs) -> [LeadDelineation per beat]``, points
#: in samples of ``signal_mv`` (:func:`team_code.nn.delineator.delineate_record`).
LearnedDelineator = Callable[[np.ndarray, float], list]

#: The measurements ``delineator="cnn"`` takes from the learned delineator, besides
#: ``<lead>_lead_t_mv``.
LEARNED_INTERVALS: tuple[str, ...] = (
    "p_ms",
    "pr_ms",
    "qrs_ms",
    "qt_ms",
    "qtc_bazett_ms",
    "qtc_fridericia_ms",
    "global_p_ms",
    "global_pr_ms",
    "global_qrs_ms",
    "global_qt_ms",
    "global_qtc_bazett_ms",
    "qrs_lead_median_ms",
    "qt_lead_median_ms",
)

#: Measures computed for every lead of the average beat.
LEAD_MEASURES: tuple[str, ...] = (
    "r_mv",
    "s_mv",
    "q_mv",
    "q_ms",
    "rprime_mv",
    "qrs_area_mvms",
    "qrs_pp_mv",
    "term_mv",
    "st_mv",
    "t_mv",
    "p_mv",
    "qrs_end_ms",
)

#: Leads whose terminal QRS deflection sets ``qrs_terminal_ms`` (the r' of right bundle
#: branch block is read in V1 and V2: AHA/ACCF/HRS part III, Surawicz 2009).
TERMINAL_LEADS: tuple[str, ...] = ("V1", "V2")

#: Where none of :data:`TERMINAL_LEADS` was measured (the limb leads alone, as in the 2021
#: task's I and II): the lead whose terminal deflection sets ``qrs_terminal_ms`` instead (the
#: broad terminal S in I of right bundle branch block; Surawicz 2009).
TERMINAL_LIMB_LEADS: tuple[str, ...] = ("I",)

#: Measures of each lead's own delineation (see the module docstring).
LEAD_BOUNDARY_MEASURES: tuple[str, ...] = (
    "lead_qrs_ms",
    "lead_qt_ms",
    "lead_t_mv",
    "lead_p_mv",
    "lead_q_ms",
)

#: Leads used for the global delineation (the 8 independent leads).
DELINEATION_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Options of the measurement chain."""

    fs_analysis: float = 500.0  # every record is resampled to this rate first (Hz)
    # rhythm and ectopy are read over at most this many seconds (the whole of every Challenge
    # record, 10-120 s; a cap on the cost of Holter-length ones)
    max_duration_s: float = 600.0
    # the average beat (and every morphology measure on it) from the first this many seconds
    morphology_s: float = 30.0
    flat_mv: float = 0.02  # a lead whose filtered peak-to-peak is below this is flat
    noisy_ratio: float = 0.5  # a lead whose >40 Hz residual RMS exceeds this x its RMS is noisy
    qrs_method: str = "christov2004"  # QRS detector, see team_code.dsp.qrs.METHODS
    xyz_method: str = "kors1990"  # 12-lead to X/Y/Z transform, see team_code.dsp.vcg.MATRICES
    min_beats: int = 3  # fewer detected beats: no average beat, interval measurements NaN
    # beats do not repeat where fewer than this share of them has a look-alike at the average
    # beat's same-morphology correlation: noise, not a heart's beats (a note says so)
    min_alike_fraction: float = 0.5
    prematurity: float = 0.85  # a beat earlier than this x local RR is premature
    ectopic_qrs_ms: float = 20.0  # a non-dominant beat wider than dominant + this is ventricular
    lead_method: str = "laguna1994"  # per-lead delineation, see delineation.LEAD_METHODS
    global_rule: str = "mad"  # global boundaries from the leads, see delineation.GLOBAL_RULES
    paced_p_fraction: float = 0.5  # beats with a pacing spike above this fraction: no P wave
    min_p_consistency: float = 0.5  # P segments less alike across beats than this: no P wave
    af_irregularity: float = 0.15  # RR irregularity above this ...
    af_p_consistency: float = 0.85  # ... with P segments less alike than this: AF, no P wave
    flutter_organisation: float = 0.8  # atrial activity organised above this: flutter, no P
    # AF on windows: a record holding at least two whole windows of this length gets the AF
    # evidence of its most irregular window (afw_*; a paroxysm in a long record), a window
    # counting from this many beats
    af_window_s: float = 10.0
    af_window_beats: int = 6
    # ... and where at least this share of its beats has the dominant QRS morphology (AF
    # conducts through the normal pathway; a stretch of noise gives detections unlike it)
    af_window_dominant: float = 0.8
    # intervals and lead T amplitudes from the wavelet chain or the learned delineator
    # ("cnn"; see DELINEATORS and the module docstring)
    delineator: str = "wavelet"
    # "cnn": a network beat within this of a detected beat takes that beat's dominance
    learned_match_ms: float = 60.0

    def __post_init__(self):
        if self.delineator not in DELINEATORS:
            raise ValueError(
                f"unknown delineator {self.delineator!r}; known: {', '.join(DELINEATORS)}"
            )
        if self.lead_method not in delineation.LEAD_METHODS:
            raise ValueError(
                f"unknown lead_method {self.lead_method!r}; known: "
                f"{', '.join(delineation.LEAD_METHODS)}"
            )
        if self.global_rule not in delineation.GLOBAL_RULES:
            raise ValueError(
                f"unknown global_rule {self.global_rule!r}; known: "
                f"{', '.join(delineation.GLOBAL_RULES)}"
            )


class LearnedDelineatorMissing(ValueError):
    """``delineator="cnn"`` without the learned delineator to run."""


@dataclasses.dataclass
class Measurements:
    """What :func:`measure` found in one record."""

    values: dict  # measurement name -> float (NaN when not measurable) or int
    notes: list  # human-readable notes on leads left out and measurements not made
    beat: beats.AverageBeat | None = None  # the average beat (fs = fs_analysis)
    # its delineation on the independent leads together (spatial velocity and magnitude),
    # the window of the per-lead amplitude measures
    delineation: delineation.Delineation | None = None
    # every usable lead delineated on its own; ``leads.global_`` the standard global
    # boundaries (earliest onset, latest offset of the leads; no P without P waves)
    leads: delineation.LeadDelineation | None = None
    lead_names: tuple = ()  # the standard lead of each row of ``leads.points``
    fs: float = 500.0  # sampling frequency of the analysed signal


def measure_record(
    record: Record, config: FeatureConfig | None = None, learned: LearnedDelineator | None = None
) -> Measurements:
    """Measurements of a :class:`~team_code.data.records.Record` (see :func:`measure`)."""
    try:
        return measure(record.signal, record.fs, record.leads, config, learned)
    except LearnedDelineatorMissing as e:
        raise ValueError(f"record {record.name}: {e}") from None


def _n(ms: float, fs: float) -> int:
    return max(1, int(round(ms * 1e-3 * fs)))


def _standard(signal_mv, leads: Sequence[str], notes: list) -> tuple[np.ndarray, bool]:
    """The 12 standard leads in order (limb leads that I and II determine derived, others
    missing set flat) and whether every lead was there or derived."""
    x = np.asarray(signal_mv, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(leads):
        raise ValueError(
            f"signal_mv must be (n_leads, n_samples) with one row per lead name; got shape "
            f"{x.shape} for {len(leads)} lead names"
        )
    out = np.zeros((len(STANDARD_LEADS), x.shape[1]))
    names = list(leads)
    derived = _limb_leads(x, names)
    complete = True
    for i, lead in enumerate(STANDARD_LEADS):
        if lead in names:
            out[i] = x[names.index(lead)]
        elif lead in derived:
            out[i] = derived[lead]
            notes.append(f"lead {lead} missing: derived from I and II")
        else:
            notes.append(f"lead {lead} missing: treated as flat")
            complete = False
    return out, complete


def _limb_leads(x: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The limb leads that I and II determine (:func:`team_code.data.leads.limb_from_i_ii`),
    when both are present."""
    if "I" not in names or "II" not in names:
        return {}
    rows = limb_from_i_ii(x[names.index("I")], x[names.index("II")])
    return dict(zip(DERIVED_LIMB_LEADS, rows, strict=True))


#: A lead still this far from its baseline at the common QRS offset (fraction of its QRS
#: peak-to-peak) has a terminal deflection the offset cut short (:func:`terminal_end`).
TERMINAL_OPEN_FRACTION = 0.2
#: The terminal deflection ends where the lead is back within this fraction of its QRS
#: peak-to-peak of the baseline, or where its slope falls below this fraction of the
#: lead's steepest QRS slope after its descent.
TERMINAL_END_FRACTION = 0.1
#: How far past the common QRS offset a terminal deflection is followed (ms).
TERMINAL_MAX_MS = 100.0
#: A second positive QRS wave (r') must stand this far above the dip before it (mV).
RPRIME_DIP_MV = 0.05


def terminal_end(y: np.ndarray, on: int, off: int, fs: float) -> int:
    """Sample where the terminal QRS deflection of one lead ends: ``off`` (the common QRS
    offset) unless the lead is still far from its baseline there (more than
    :data:`TERMINAL_OPEN_FRACTION` of its QRS peak-to-peak, as where the offset falls on the
    broad terminal R' of right bundle branch block in V1); then the deflection is followed
    past its extreme until the lead is back within :data:`TERMINAL_END_FRACTION` of its
    peak-to-peak of the baseline or its slope, having risen on the way back, falls below that
    fraction of the lead's steepest QRS slope, at most :data:`TERMINAL_MAX_MS` past ``off``.

    Args:
        y: one lead of the average beat, referred to its PR-segment level (mV).
        on, off: the common QRS onset and offset (samples of ``y``).
    """
    w = y[on : off + 1]
    pp = float(w.max() - w.min()) if w.size else 0.0
    if pp <= 0 or abs(float(y[off])) <= TERMINAL_OPEN_FRACTION * pp:
        return off
    last = min(y.size - 1, off + _n(TERMINAL_MAX_MS, fs))
    sign = 1.0 if y[off] > 0 else -1.0
    seg = sign * y[off : last + 1]
    k = int(np.argmax(seg))  # the extreme of the open deflection
    slope = np.abs(np.gradient(y))
    steep = float(slope[on : off + 1].max())
    rising = False
    for j in range(off + k, last + 1):
        if sign * y[j] <= TERMINAL_END_FRACTION * pp:
            return j
        if slope[j] >= TERMINAL_END_FRACTION * steep:
            rising = True
        elif rising:
            return j
    return last


def rprime_mv(w: np.ndarray) -> float:
    """Amplitude of r' (or R'): the largest positive QRS wave that follows an earlier positive
    wave across a dip of at least :data:`RPRIME_DIP_MV` below both (rsr', rsR', rSR' or a
    notched R: AHA/ACCF/HRS part III); both waves at least :data:`RPRIME_DIP_MV` above the
    baseline. 0 where the QRS ``w`` (referred to the PR level) has no second positive wave."""
    if w.size < 3:
        return 0.0
    interior = np.flatnonzero((w[1:-1] > w[:-2]) & (w[1:-1] >= w[2:])) + 1
    peaks = [int(k) for k in interior if w[k] >= RPRIME_DIP_MV]
    best = 0.0
    for i, b in enumerate(peaks):
        for a in peaks[:i]:
            if min(w[a], w[b]) - float(w[a : b + 1].min()) >= RPRIME_DIP_MV:
                best = max(best, float(w[b]))
                break
    return best


#: A lead's QRS whose largest positive deflection stays under this is a QS complex (no R
#: wave): its negative deflection is read as a Q wave (Minnesota code 1's QS pattern), which
#: it is whether its trough comes early or late.
QS_MAX_R_MV = 0.025


def _lead_measures(beat: np.ndarray, fs: float, d: delineation.Delineation) -> dict:
    """Per-lead amplitudes on the average beat (see the module docstring)."""
    out: dict = {}
    nan = math.nan
    for lead in STANDARD_LEADS:
        for m in LEAD_MEASURES:
            out[f"{lead}_{m}"] = nan
    if not (math.isfinite(d.qrs_on) and math.isfinite(d.qrs_off)):
        return out
    on, off = int(d.qrs_on), int(d.qrs_off)
    ref = beat[:, max(0, on - _n(20, fs)) : max(1, on - _n(4, fs) + 1)].mean(axis=-1)
    y = beat - ref[:, None]
    q = y[:, on : off + 1]
    n_term = _n(40, fs)
    j60 = min(beat.shape[-1] - 1, off + _n(60, fs))
    for i, lead in enumerate(STANDARD_LEADS):
        w = q[i]
        k_max = int(np.argmax(w))
        r_mv = max(0.0, float(w[k_max]))
        # a QS complex (no R wave: none above QS_MAX_R_MV) is a Q wave: all of it comes first
        before = w[: k_max + 1] if r_mv >= QS_MAX_R_MV else w
        q_mv = min(0.0, float(before.min())) if before.size else 0.0
        q_ms = 0.0
        if q_mv < 0:  # Q: from QRS onset to where the initial negative deflection recrosses 0
            k_q = int(np.argmin(before))
            up = np.flatnonzero(before[k_q:] >= 0)
            q_ms = (k_q + (up[0] if up.size else before.size - k_q)) * 1e3 / fs
        after = w[k_max:]
        s_mv = min(0.0, float(after.min())) if after.size else 0.0
        end = terminal_end(y[i], on, off, fs)
        out.update(
            {
                f"{lead}_r_mv": r_mv,
                f"{lead}_s_mv": s_mv,
                f"{lead}_q_mv": q_mv,
                f"{lead}_q_ms": q_ms,
                f"{lead}_rprime_mv": rprime_mv(y[i, on : end + 1]),
                f"{lead}_qrs_area_mvms": float(w.sum() * 1e3 / fs),
                f"{lead}_qrs_pp_mv": float(w.max() - w.min()),
                f"{lead}_term_mv": float(w[-n_term:].mean()),
                f"{lead}_st_mv": float(y[i, j60]),
                f"{lead}_t_mv": float(y[i, int(d.t_peak)]) if math.isfinite(d.t_peak) else nan,
                f"{lead}_p_mv": float(y[i, int(d.p_peak)]) if math.isfinite(d.p_peak) else nan,
                f"{lead}_qrs_end_ms": (end - on) * 1e3 / fs,
            }
        )
    return out


def _terminal_qrs_ms(values: dict) -> float:
    """``qrs_ms`` lengthened to the latest end of the terminal deflection in
    :data:`TERMINAL_LEADS` (``<lead>_qrs_end_ms``; never shorter than ``qrs_ms``), or in
    :data:`TERMINAL_LIMB_LEADS` where none of those was measured."""

    def ends_of(leads: tuple[str, ...]) -> list[float]:
        ends = [values.get(f"{lead}_qrs_end_ms", math.nan) for lead in leads]
        return [e for e in ends if math.isfinite(e)]

    ends = ends_of(TERMINAL_LEADS) or ends_of(TERMINAL_LIMB_LEADS)
    qrs_ms = values.get("qrs_ms", math.nan)
    if not math.isfinite(qrs_ms):
        return math.nan
    return max([qrs_ms, *ends])


def p_waves_present(values: dict, config: FeatureConfig | None = None) -> bool:
    """Whether the rhythm has P waves to delineate, from the rhythm measurements in
    ``values``: not where most beats are paced (``paced_fraction``), where the P segments
    disagree across beats (``p_consistency`` low or NaN), where RR is irregular and the P
    segments are not alike (atrial fibrillation), or where the atrial activity is organised
    (flutter: ``atrial_organisation``)."""
    c = config or FeatureConfig()
    pc = values.get("p_consistency", math.nan)
    paced = values.get("paced_fraction", math.nan)
    irr = values.get("rr_irregularity", math.nan)
    org = values.get("atrial_organisation", math.nan)
    if not math.isfinite(pc) or pc < c.min_p_consistency:
        return False
    if math.isfinite(paced) and paced >= c.paced_p_fraction:
        return False
    if math.isfinite(irr) and irr > c.af_irregularity and pc < c.af_p_consistency:
        return False
    return not (math.isfinite(org) and org > c.flutter_organisation)


def _lead_boundary_measures(
    ld: delineation.LeadDelineation, rows: Sequence[int], values: dict, qrs_on: float
) -> dict:
    """``<lead>_<measure>`` of :data:`LEAD_BOUNDARY_MEASURES` for every standard lead (NaN
    for leads not in ``rows``), and the median over leads of the lead durations; ``values``
    holds the leads' ``q_ms`` counted from ``qrs_on`` (the leads-together QRS onset, the
    origin :func:`_lead_measures` reads them from)."""
    out = {f"{lead}_{m}": math.nan for lead in STANDARD_LEADS for m in LEAD_BOUNDARY_MEASURES}
    for k, row in enumerate(rows):
        lead = STANDARD_LEADS[row]
        lead_on = ld.points[k, delineation.LEAD_POINTS.index("qrs_on")]
        late_ms = ld.global_._ms(qrs_on, lead_on)
        q_ms = values.get(f"{lead}_q_ms", math.nan)
        if math.isfinite(late_ms) and math.isfinite(q_ms):
            # a lead starting before that onset counts 0
            out[f"{lead}_lead_q_ms"] = max(0.0, q_ms - max(0.0, late_ms)) if q_ms > 0 else 0.0
        out[f"{lead}_lead_qrs_ms"] = ld.ms(k, "qrs_on", "qrs_off")
        out[f"{lead}_lead_qt_ms"] = ld.ms(k, "qrs_on", "t_end")
        out[f"{lead}_lead_t_mv"] = float(ld.t_mv[k])
        out[f"{lead}_lead_p_mv"] = float(ld.p_mv[k])
    for name in ("qrs", "qt"):
        v = np.array([out[f"{STANDARD_LEADS[r]}_lead_{name}_ms"] for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        out[f"{name}_lead_median_ms"] = float(np.median(v)) if v.size else math.nan
    return out


def _morphology_beat(
    xf: np.ndarray, fs: float, whole: beats.AverageBeat, config: FeatureConfig, notes: list
) -> beats.AverageBeat:
    """The average beat of the first ``config.morphology_s`` seconds (``whole``, the average
    of every beat, where the record is no longer or the window holds too few beats)."""
    n_win = int(round(config.morphology_s * fs))
    if xf.shape[1] <= n_win:
        return whole
    r = whole.r_peaks[whole.r_peaks < n_win]
    ab = beats.average_beat(xf[:, :n_win], fs, r) if r.size >= config.min_beats else None
    if ab is None:
        notes.append(f"too few beats in the first {config.morphology_s:g} s: average of all")
        return whole
    notes.append(f"average beat from the first {config.morphology_s:g} s")
    return ab


#: aVF's lead vector is sqrt(3)/2 as long as lead I's (Einthoven's triangle with Goldberger's
#: augmented leads: I = E cos(a), aVF = (II + III) / 2 = sqrt(3)/2 E sin(a)).
_AVF_GAIN = math.sqrt(3.0) / 2.0


def _axis(values: dict, measure: str) -> float:
    """The frontal-plane angle of the mean vector whose projections on leads I and aVF are
    the record's ``I_<measure>`` and ``aVF_<measure>``, in degrees (-180..180)."""
    a, b = values.get(f"I_{measure}", math.nan), values.get(f"aVF_{measure}", math.nan)
    if not (math.isfinite(a) and math.isfinite(b)) or (a == 0 and b == 0):
        return math.nan
    return math.degrees(math.atan2(b / _AVF_GAIN, a))


#: The AF evidence read on windows (:func:`_af_window`), each with its whole-record twin
AF_WINDOW_KEYS = {
    "afw_rr_irregularity": "rr_irregularity",
    "afw_zc_per_s": "zc_per_s",
    "afw_p_consistency": "p_consistency",
}


def whole_record_af(values: dict) -> dict:
    """``values`` with the AF window's evidence (``afw_*``) replaced by the whole record's:
    what the AF rule read before it read windows (benchmarks and tests compare the two)."""
    return dict(values, **{k: values[w] for k, w in AF_WINDOW_KEYS.items() if w in values})


def _af_window(xf, fs, r, whole, ab_idx, idx, d0, lead_af, values, config) -> dict:
    """The AF evidence of the record's most irregular window (``afw_*``, see
    :data:`AF_WINDOW_KEYS`): where the record holds at least two whole windows of
    ``config.af_window_s``, each window with at least ``config.af_window_beats`` detected
    beats, at least ``config.af_window_dominant`` of them of the dominant QRS morphology
    (``whole.dominant``: a noisy stretch's false detections are not), gets its RR
    irregularity (:func:`rhythm.rr_statistics` of its beats), the derivative
    zero crossings of lead ``lead_af`` between its beats and the P-segment consistency of its
    dominant beats against the record's average beat (``ab_idx``, on the rows ``idx``); the
    window with the largest irregularity gives all three (the first of equals). A shorter
    record, or one without such a window, keeps the whole-record values: an episode of AF
    that a long record's median dilutes is read where it is."""
    out = {k: values.get(v, math.nan) for k, v in AF_WINDOW_KEYS.items()}
    n_win = int(round(config.af_window_s * fs))
    count = xf.shape[1] // n_win if n_win > 0 else 0
    if count < 2:
        return out
    best = None
    for w in range(count):
        a, b = w * n_win, (w + 1) * n_win
        rw = r[(r >= a) & (r < b)]
        if rw.size < config.af_window_beats:
            continue
        inside = (whole.r_peaks >= a) & (whole.r_peaks < b)
        if not inside.any() or whole.dominant[inside].mean() < config.af_window_dominant:
            continue
        irr = rhythm.rr_statistics(rw, fs)["rr_irregularity"]
        if math.isfinite(irr) and (best is None or irr > best[0]):
            best = (irr, a, b, inside)
    if best is None:
        return out
    irr, a, b, inside = best
    peaks = whole.r_peaks[inside] - a
    sub = dataclasses.replace(ab_idx, r_peaks=peaks, dominant=whole.dominant[inside])
    out.update(
        afw_rr_irregularity=irr,
        afw_zc_per_s=rhythm.derivative_zero_crossings(xf[lead_af, a:b], fs, peaks),
        afw_p_consistency=_p_consistency(xf[idx, a:b], peaks, sub, d0),
    )
    return out


def _p_consistency(x: np.ndarray, r: np.ndarray, ab: beats.AverageBeat, d) -> float:
    """Median correlation of each dominant beat's P segment with the average beat's."""
    if not (math.isfinite(d.p_on) and math.isfinite(d.p_off)):
        return math.nan
    fs = ab.fs
    a = int(d.p_on) - _n(20, fs) - ab.r_index
    b = int(d.p_off) + _n(20, fs) - ab.r_index
    ref = ab.beat_mv[:, ab.r_index + a : ab.r_index + b]
    use = r[ab.dominant & (r + a >= 0) & (r + b <= x.shape[-1])]
    if use.size < 2 or ref.shape[-1] < 3:
        return math.nan
    segs = x[:, use[:, None] + np.arange(a, b)[None, :]].transpose(1, 0, 2)
    return float(np.median(beats.qrs_correlation(segs, ref)))


def _dominant_beats(found: list, whole: beats.AverageBeat, fs: float, match_ms: float) -> list:
    """Indices of the learned delineator's beats whose R lies within ``match_ms`` of a
    detected dominant beat (every beat where none does)."""
    r = whole.r_peaks
    keep = []
    for i, b in enumerate(found):
        k = int(np.argmin(np.abs(r - b.r_index))) if r.size else -1
        if k >= 0 and abs(int(r[k]) - b.r_index) * 1e3 / fs <= match_ms and whole.dominant[k]:
            keep.append(i)
    return keep or list(range(len(found)))


def _typical(v: Sequence[float]) -> float:
    """Median of the finite ``v`` where at least half of ``v`` is finite, else NaN."""
    a = np.asarray(v, dtype=float)
    ok = np.isfinite(a)
    return float(np.median(a[ok])) if ok.any() and 2 * ok.sum() >= a.size else math.nan


def _learned_measures(
    x: np.ndarray,
    fs: float,
    whole: beats.AverageBeat,
    rows: Sequence[int],
    rr_s: float,
    p_present: bool,
    learned: LearnedDelineator,
    config: FeatureConfig,
    notes: list,
) -> dict:
    """:data:`LEARNED_INTERVALS` and ``<lead>_lead_t_mv`` from the learned delineator run on
    the usable leads ``rows`` of the morphology window of ``x`` (see the module docstring);
    empty where it finds no beat."""
    window = x[rows, : int(round(config.morphology_s * fs))]
    found = list(learned(window, fs))
    if not found:
        notes.append("learned delineator found no beat: wavelet intervals kept")
        return {}
    keep = _dominant_beats(found, whole, fs, config.learned_match_ms)
    g = [found[i].global_ for i in keep]
    qrs_ms, qt_ms = _typical([b.qrs_ms for b in g]), _typical([b.qt_ms for b in g])
    p_ms = _typical([b.p_ms for b in g]) if p_present else math.nan
    pr_ms = _typical([b.pr_ms for b in g]) if p_present else math.nan
    bazett = delineation.qtc(qt_ms, rr_s, "bazett1920")
    typical = [found[i].lead_median() for i in keep]  # each boundary's median over the leads
    out = {
        "p_ms": p_ms,
        "pr_ms": pr_ms,
        "qrs_ms": qrs_ms,
        "qt_ms": qt_ms,
        "qtc_bazett_ms": bazett,
        "qtc_fridericia_ms": delineation.qtc(qt_ms, rr_s, "fridericia1920"),
        "global_p_ms": p_ms,
        "global_pr_ms": pr_ms,
        "global_qrs_ms": qrs_ms,
        "global_qt_ms": qt_ms,
        "global_qtc_bazett_ms": bazett,
        "qrs_lead_median_ms": _typical([b.qrs_ms for b in typical]),
        "qt_lead_median_ms": _typical([b.qt_ms for b in typical]),
    }
    t_mv = np.stack([found[i].t_mv for i in keep])
    for k, row in enumerate(rows):
        t = _typical(t_mv[:, k])
        if math.isfinite(t):
            out[f"{STANDARD_LEADS[row]}_lead_t_mv"] = t
    notes.append(f"intervals and lead T amplitudes from the learned delineator ({len(keep)} beats)")
    return out


def measure(
    signal_mv,
    fs,
    leads: Sequence[str],
    config: FeatureConfig | None = None,
    learned: LearnedDelineator | None = None,
) -> Measurements:
    """Run the measurement chain on one record (see the module docstring).

    Args:
        signal_mv: (n_leads, n_samples) raw ECG in mV.
        fs: sampling frequency in Hz.
        leads: the row names (canonical spelling, any order; the 12 standard leads are used).
        config: options; defaults to :class:`FeatureConfig()`.
        learned: the learned delineator that ``config.delineator="cnn"`` runs
            (:func:`team_code.nn.delineator.delineate_record`); unused otherwise.

    Returns:
        :class:`Measurements`. Never raises on flat, short or noisy signals: what cannot be
        measured is NaN and explained in ``notes``.
    """
    config = config or FeatureConfig()
    if config.delineator != "wavelet" and learned is None:
        raise LearnedDelineatorMissing(
            f"delineator={config.delineator!r} needs the learned delineator passed as learned= "
            "(team_code.nn.delineator.delineate_record; "
            "team_code.classifiers.measurements.record_measurements passes it)"
        )
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"fs must be a positive sampling frequency in Hz; got {fs}")
    notes: list[str] = []
    x, complete = _standard(signal_mv, leads, notes)
    n_max = int(round(config.max_duration_s * fs))
    if x.shape[1] > n_max:
        notes.append(
            f"rhythm read over the first {config.max_duration_s:g} s of {x.shape[1] / fs:.1f} s"
        )
        x = x[:, :n_max]
    x, n_bad = filters.fill_nonfinite(x)
    if n_bad:
        notes.append(f"{n_bad} non-finite samples bridged by straight lines")
    # pacemaker spikes last a millisecond or two: searched at the record's own rate, before
    # resampling keeps or spreads them by their phase
    x_native, fs_native = x, fs
    if fs != config.fs_analysis:
        x = resample(x, fs, config.fs_analysis)
        fs = config.fs_analysis
    values: dict = {"duration_s": x.shape[1] / fs}
    result = Measurements(values=values, notes=notes, fs=fs)
    x_pl = filters.remove_powerline(x, fs)
    xf = filters.remove_emg(filters.remove_baseline(x_pl, fs), fs)
    # ---- lead quality
    pp = np.ptp(xf, axis=1) if xf.shape[1] else np.zeros(12)
    hf = x_pl - filters.remove_emg(x_pl, fs)
    rms = np.sqrt(np.mean(xf**2, axis=1)) + 1e-12
    noisy = np.sqrt(np.mean(hf**2, axis=1)) > config.noisy_ratio * rms
    flat = pp < config.flat_mv
    good = ~flat & ~noisy
    if not good.any():
        good = ~flat  # every lead noisy: detect on them all the same
    for i, lead in enumerate(STANDARD_LEADS):
        if flat[i]:
            notes.append(f"lead {lead} flat (peak-to-peak {pp[i]:.3f} mV): left out")
        elif noisy[i]:
            notes.append(f"lead {lead} noisy: left out of QRS detection")
    values["n_flat_leads"] = int(flat.sum())
    values["n_noisy_leads"] = int((noisy & ~flat).sum())
    nan = math.nan
    if not good.any() or x.shape[1] < int(2 * fs):
        notes.append("no usable lead (or under 2 s): nothing measured")
        return result
    # ---- beats and rhythm
    r = qrs.detect(xf[good], fs, method=config.qrs_method)
    good = ~flat  # noisy leads are still measured on the (noise-averaging) median beat
    values.update(rhythm.rr_statistics(r, fs))
    if r.size < config.min_beats:
        notes.append(f"only {r.size} beats detected: no average beat")
        return result
    whole = beats.average_beat(xf, fs, r)  # every beat's morphology, for rhythm and ectopy
    if whole is None:
        notes.append("no beat with a full window inside the record: no average beat")
        return result
    values["alike_fraction"] = whole.alike_fraction
    if whole.alike_fraction < config.min_alike_fraction:
        notes.append(
            f"beats do not repeat: {whole.alike_fraction:.0%} of them have a look-alike "
            f"(QRS correlation >= {beats.AverageBeatConfig().same_morphology:g}): noise; the "
            "average beat, the morphology and intervals read on it and the ectopic-beat "
            "types are unreliable"
        )
    ab = _morphology_beat(xf, fs, whole, config, notes)
    result.beat = ab
    idx = [
        STANDARD_LEADS.index(lead) for lead in DELINEATION_LEADS if good[STANDARD_LEADS.index(lead)]
    ]
    if not idx:
        idx = list(np.flatnonzero(good))
    rr_s = values["rr_median_s"]
    d0 = delineation.delineate(ab.beat_mv[idx], fs, ab.r_index, rr_s)
    dominant = whole.dominant
    # ---- atrial activity and pacing: whether there are P waves to delineate
    i2, iv1 = STANDARD_LEADS.index("II"), STANDARD_LEADS.index("V1")
    lead_af = i2 if good[i2] else int(np.flatnonzero(good)[0])
    values["zc_per_s"] = rhythm.derivative_zero_crossings(xf[lead_af], fs, whole.r_peaks)
    lead_aa = iv1 if good[iv1] else lead_af
    values.update(
        rhythm.atrial_activity(
            xf[lead_aa], fs, whole.r_peaks, ab.beat_mv[lead_aa], ab.r_index, dominant
        )
    )
    ab_idx = dataclasses.replace(whole, beat_mv=ab.beat_mv[idx])  # every beat, the rows idx
    values["p_consistency"] = _p_consistency(xf[idx], whole.r_peaks, ab_idx, d0)
    values.update(_af_window(xf, fs, r, whole, ab_idx, idx, d0, lead_af, values, config))
    r_native = np.round(whole.r_peaks * (fs_native / fs)).astype(np.int64)
    x_native_pl = (
        x_pl[good] if fs_native == fs else filters.remove_powerline(x_native[good], fs_native)
    )
    values.update(rhythm.pacing_spikes(x_native_pl, fs_native, r_native))
    p_present = p_waves_present(values, config)
    values["p_present"] = float(p_present)
    # ---- every usable lead on its own, and the global boundaries from the leads
    rows = [int(i) for i in np.flatnonzero(good)]
    ld = delineation.delineate_leads(
        ab.beat_mv[rows],
        fs,
        ab.r_index,
        rr_s,
        method=config.lead_method,
        config=delineation.LeadDelineationConfig(global_rule=config.global_rule),
        anchor=d0,
        p_present=p_present,
    )
    d = d0
    result.delineation = d
    result.leads = ld
    result.lead_names = tuple(STANDARD_LEADS[r] for r in rows)
    values.update(d.as_dict())
    if not p_present:  # no P wave, so no P interval (the P amplitudes stay rhythm evidence)
        for key in ("p_ms", "pr_ms", "p_on_ms_from_r", "p_off_ms_from_r"):
            values[key] = nan
    gl = ld.global_
    values.update(
        {
            "global_p_ms": gl.p_ms,
            "global_pr_ms": gl.pr_ms,
            "global_qrs_ms": gl.qrs_ms,
            "global_qt_ms": gl.qt_ms,
            "global_qtc_bazett_ms": delineation.qtc(gl.qt_ms, rr_s, "bazett1920"),
        }
    )
    values["qtc_bazett_ms"] = delineation.qtc(d.qt_ms, values["rr_median_s"], "bazett1920")
    values["qtc_fridericia_ms"] = delineation.qtc(d.qt_ms, values["rr_median_s"], "fridericia1920")
    if not math.isfinite(d.qrs_ms):
        notes.append("average beat too flat to delineate: interval measurements NaN")
    if not p_present:
        notes.append("no P waves: paced, fibrillating or flutter rhythm, or P segments unlike")
    elif not math.isfinite(d.pr_ms):
        notes.append("no P wave found on the average beat")
    lm = _lead_measures(ab.beat_mv, fs, d)
    for i, lead in enumerate(STANDARD_LEADS):  # unusable leads: NaN measures
        if not good[i]:
            for m in LEAD_MEASURES:
                lm[f"{lead}_{m}"] = nan
    values.update(lm)
    values.update(_lead_boundary_measures(ld, rows, values, d.qrs_on))
    if config.delineator != "wavelet":
        values.update(
            _learned_measures(x, fs, whole, rows, rr_s, p_present, learned, config, notes)
        )
    values["qrs_terminal_ms"] = _terminal_qrs_ms(values)
    values["qrs_axis_deg"] = _axis(values, "qrs_area_mvms")
    values["p_axis_deg"] = _axis(values, "p_mv")
    values["t_axis_deg"] = _axis(values, "t_mv")
    limb = [values[f"{lead}_qrs_pp_mv"] for lead in STANDARD_LEADS[:6]]
    chest = [values[f"{lead}_qrs_pp_mv"] for lead in STANDARD_LEADS[6:]]
    # "Every limb (precordial) lead below ...": only where every one of them was measured (a
    # three-lead record's V2 alone says nothing of V1-V6; neither does a flat lead)
    values["limb_qrs_max_mv"] = float(np.max(limb)) if np.isfinite(limb).all() else nan
    values["chest_qrs_max_mv"] = float(np.max(chest)) if np.isfinite(chest).all() else nan
    # ---- ectopic beats: premature and/or of another QRS morphology
    premature = rhythm.premature_beats(whole.r_peaks, fs, config.prematurity)
    other = ~dominant & np.isfinite(whole.qrs_corr)
    values["n_premature"] = int(premature.sum())
    values["n_other_morphology"] = int(other.sum())
    values["n_pac"] = int((premature & dominant).sum())
    values["n_pvc"] = int((premature & other).sum())
    values["dominant_fraction"] = float(dominant.mean())
    # ---- VCG (from all twelve leads: none with a lead missing)
    if math.isfinite(d.qrs_on) and complete:
        on = int(d.qrs_on)
        ref = ab.beat_mv[:, max(0, on - _n(20, fs)) : max(1, on - _n(4, fs) + 1)].mean(axis=-1)
        xyz = vcg.to_xyz(ab.beat_mv - ref[:, None], STANDARD_LEADS, config.xyz_method)
        values.update(vcg.loop_descriptors(xyz, fs, d.qrs_on, d.qrs_off, d.t_end))
    return result
