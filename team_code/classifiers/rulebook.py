"""The rule book: one rule per diagnosis, each with its criterion, thresholds, bounds and source.

After Bortolan, Christov and Simova's 2020 Challenge entry (filtering, Christov's QRS
detector, a robust average beat, Dower's X/Y/Z leads, a physician's knowledge base refined on
data): every record is measured once (:func:`team_code.dsp.features.measure`), then each
scored class has a rule written with its clinical criterion and thresholds in physical units,
in the rule language of :mod:`team_code.classifiers.rule_language`. This module holds the
book only: what each diagnosis means and where its limits come from. How the thresholds are
tuned within their bounds and turned into decisions is the classifier's
(:mod:`team_code.classifiers.rules`).

Each rule implements the SNOMED CT concept its Challenge label carries, not a source's habit:
426783006 is sinus rhythm at 60-100/min whatever the AV or intraventricular conduction;
bradycardia 426627000 is a ventricular rate below 60/min whatever the rhythm, sinus
bradycardia 426177001 a sinus rhythm below it; axis deviations are read on the frontal QRS
axis with the published cut-offs. Every threshold carries its published value, the
clinically stated bounds that tuning may not leave, and their source
(:class:`~team_code.classifiers.rule_language.Threshold`).

Rules are keyed by one SNOMED CT code each and serve classes by equivalence
(:func:`rule_for_class`): the class of any scoring table whose group of equivalent codes holds
the rule's code. The 2020 table's 24 classes and the 2021 table's 26 all have a rule: the LBBB
rule (164909002) serves 2021's CLBBB|LBBB (733534002|164909002), and two rules serve classes
new in 2021, bundle branch block of unstated type (6374002) and poor R wave progression
(365413008).

Sources label the same concept differently (LUDB gives sinus rhythm to records with bundle
branch blocks, CPSC does not; LUDB's 'left axis deviation' covers axes down to about +30
degrees): ``python -m benchmarks.rules --conventions`` measures these differences. The
rules' clinical definitions stay as written and are tested on their own
(``tests/classifiers/test_rule_semantics.py``).

References for the criteria: the AHA/ACCF/HRS recommendations for the standardization and
interpretation of the ECG, part II (Mason et al., computerized interpretation, Circulation
2007;115:1325), part III (Surawicz et al., intraventricular conduction disturbances,
Circulation 2009;119:e235), part IV (Rautaharju et al., ST segment, T and U waves and the QT
interval, e241) and part V (Hancock et al., chamber hypertrophy, e251); Prineas, Crow and
Zhang, The Minnesota Code Manual of Electrocardiographic Findings (2nd ed., 2010); Kusumoto
et al., ACC/AHA/HRS guideline on bradycardia (Circulation 2019;140:e382); January et al.,
AHA/ACC/HRS atrial fibrillation guideline (2014); Thygesen et al., fourth universal
definition of myocardial infarction (2018).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from team_code.classifiers.rule_language import Context, Rule, Threshold, score_rule
from team_code.data.labels import ScoredClasses, table_for

__all__ = [
    "RULES",
    "class_codes",
    "default_thresholds",
    "evaluate_rules",
    "rule_for_class",
    "rule_table",
]


# ---- sources of the thresholds -----------------------------------------------------------

_PART2 = "AHA/ACCF/HRS part II (Mason 2007)"
_PART3 = "AHA/ACCF/HRS part III (Surawicz 2009)"
_PART4 = "AHA/ACCF/HRS part IV (Rautaharju 2009)"
_MINN = "Minnesota Code (Prineas 2010)"
_DATA = "no published cut-off: bounds span the values seen in the shared records"


def _t(value, scale, lo, hi, unit="", source=_DATA) -> Threshold:
    return Threshold(value, scale, lo, hi, unit, source)


# ---- shared evidence ---------------------------------------------------------------------

_P = {
    "p_min_mv": _t(
        0.05, 0.015, 0.02, 0.12, "mV", "P visible: 0.05 mV; Minnesota 9-3 reads P from 0.025 mV"
    ),
    "p_consistency": _t(0.7, 0.06, 0.4, 0.9),
}
_AF = {
    "af_irregularity": _t(0.08, 0.015, 0.04, 0.2),
    "af_zc_per_s": _t(9.0, 1.5, 5.0, 15.0, "1/s", "f waves 350-600/min (January 2014); bounds"),
}


def _p_waves(c: Context, consistency: str = "p_consistency") -> float:
    """Distinct, repeatable P waves: magnitude and beat-to-beat consistency (``consistency``:
    the record's, or its AF window's, ``afw_p_consistency``)."""
    return c.above("p_mv", "p_min_mv") * c.above(consistency, "p_consistency")


def _af_of(c: Context, prefix: str) -> float:
    """Irregularly irregular RR and (no distinct P waves or fibrillatory waves), from the
    measurements named with ``prefix``: the whole record's (``""``) or its most irregular
    window's (``"afw_"``, ``features.AF_WINDOW_KEYS``)."""
    irregular = c.above(f"{prefix}rr_irregularity", "af_irregularity")
    no_p = c.absent(lambda c: _p_waves(c, f"{prefix}p_consistency"))
    f_waves = c.above(f"{prefix}zc_per_s", "af_zc_per_s")
    return irregular * max(no_p, f_waves)


def _af(c: Context) -> float:
    """AF over the whole record (what the sinus rhythm and premature atrial complex rules
    exclude)."""
    return _af_of(c, "")


def _af_window(c: Context) -> float:
    """AF in the record's most irregular window (the AF rule: a paroxysm counts)."""
    return _af_of(c, "afw_")


def _sinus(c: Context) -> float:
    """Sinus rhythm: distinct consistent P waves, upright in II, and no AF."""
    return _p_waves(c) * c.above("II_p_mv", "p_upright_mv") * c.absent(_af)


_SINUS = {
    **_P,
    **_AF,
    "p_upright_mv": _t(0.0, 0.02, -0.05, 0.05, "mV", f"sinus P upright in II ({_PART2})"),
}


#: The right chest leads whose QRS the bundle branch block shapes read; where none of them
#: was recorded (the 2021 task's two leads, I and II) the shapes read the limb leads alone.
_RIGHT_CHEST = ("V1", "V2")


def _measured(c: Context, leads: Sequence[str], measure: str) -> list[str]:
    """The leads of ``leads`` whose ``<lead>_<measure>`` was measured (a lead not recorded,
    or flat, has none)."""
    return [lead for lead in leads if math.isfinite(c.value(f"{lead}_{measure}"))]


def _limb_leads_only(c: Context) -> bool:
    """Whether no right chest lead was measured (:data:`_RIGHT_CHEST`): a record of the limb
    leads alone, where a chest criterion is unknown rather than unmet."""
    return not _measured(c, _RIGHT_CHEST, "term_mv")


def _rbbb_shape(c: Context) -> float:
    """Terminal QRS forces rightward and anterior: rsr', rsR' or rSR' in V1 or V2 (an r' in
    either, or a positive end of QRS in V1), slurred terminal S in I and V6. Without the right
    chest leads, the terminal S in I (the limb-lead sign of the rightward terminal forces)."""
    if _limb_leads_only(c):
        return c.below("I_term_mv", "rbbb_lat_term_mv")
    v1 = max(
        c.above("V1_term_mv", "rbbb_v1_term_mv"),
        c.above("V1_rprime_mv", "rbbb_rprime_mv"),
        c.above("V2_rprime_mv", "rbbb_rprime_mv"),
    )
    lateral = max(
        c.below("I_term_mv", "rbbb_lat_term_mv"), c.below("V6_term_mv", "rbbb_lat_term_mv")
    )
    return v1 * lateral


#: The QRS duration of the right bundle branch block rules: ``qrs_ms`` lengthened to the end
#: of the terminal deflection in V1 and V2 where the common QRS offset cuts it short (the
#: broad terminal R' of V1; :func:`team_code.dsp.features.terminal_end`).
_RBBB_WIDTH = "qrs_terminal_ms"


def _rbbb_width(c: Context, op: str, name: str) -> float:
    """Graded ``QRS width op threshold`` on :data:`_RBBB_WIDTH` (``qrs_ms`` where the values
    do not hold it, as values not made by :func:`team_code.dsp.features.measure` may not)."""
    key = _RBBB_WIDTH if math.isfinite(c.value(_RBBB_WIDTH)) else "qrs_ms"
    return c.above(key, name) if op == ">" else c.below(key, name)


_RBBB_SHAPE = {
    "rbbb_v1_term_mv": _t(0.05, 0.05, -0.1, 0.3, "mV"),
    "rbbb_rprime_mv": _t(0.15, 0.04, 0.05, 0.4, "mV", f"r' in V1 or V2 ({_PART3}); size: bounds"),
    "rbbb_lat_term_mv": _t(-0.02, 0.04, -0.15, 0.05, "mV"),
}


def _lbbb_shape(c: Context) -> float:
    """Predominantly negative QRS in V1 (QS or rS; in V2 where V1 was not recorded), upright
    end of QRS in I and V6, no q in I and V6. Without the right chest leads, the upright end
    of QRS and no q in I."""
    if _limb_leads_only(c):
        return c.above("I_term_mv", "lbbb_lat_term_mv") * c.above("I_q_mv", "lbbb_q_mv")
    right = (_measured(c, _RIGHT_CHEST, "qrs_area_mvms") or ["V1"])[0]
    v1 = c.below(f"{right}_qrs_area_mvms", "lbbb_v1_area_mvms")
    lateral = max(
        c.above("I_term_mv", "lbbb_lat_term_mv"), c.above("V6_term_mv", "lbbb_lat_term_mv")
    )
    # no q in I and V6: in both where both were recorded (the 2021 three and four leads lack V6)
    no_q = math.prod(
        c.above(f"{lead}_q_mv", "lbbb_q_mv") for lead in _measured(c, ("I", "V6"), "q_mv") or ["I"]
    )
    return v1 * lateral * no_q


_LBBB_SHAPE = {
    "lbbb_v1_area_mvms": _t(-20.0, 8.0, -60.0, 0.0, "mV ms"),
    "lbbb_lat_term_mv": _t(0.03, 0.03, -0.05, 0.15, "mV"),
    "lbbb_q_mv": _t(-0.08, 0.03, -0.2, -0.02, "mV"),
}


def _qrs_wide(name: str, value: float, lo: float, hi: float, source: str) -> dict:
    return {name: _t(value, 6.0, lo, hi, "ms", source)}


def _t_count(c: Context, leads: Sequence[str], name: str) -> float:
    """Number of leads whose T amplitude (signed, at the lead's own T peak) is below the
    threshold ``name`` (each a term); NaN when no lead's T wave could be measured."""
    if not any(math.isfinite(c.value(f"{lead}_lead_t_mv")) for lead in leads):
        return math.nan
    return float(sum(c.below(f"{lead}_lead_t_mv", name) >= 0.5 for lead in leads))


_T_LEADS = ("I", "II", "aVF", "V3", "V4", "V5", "V6")
_CONTIGUOUS = (
    ("I", "aVL"),
    ("I", "V6"),
    ("II", "aVF"),
    ("III", "aVF"),
    ("V2", "V3"),
    ("V3", "V4"),
    ("V4", "V5"),
    ("V5", "V6"),
)


def _q_lead(c: Context, lead: str) -> float:
    """Q wave of one lead: its duration from the lead's own QRS onset, and its depth."""
    return c.above(f"{lead}_lead_q_ms", "qab_q_ms") * c.below(f"{lead}_q_mv", "qab_q_mv")


def _qab(c: Context) -> float:
    return max(min(_q_lead(c, a), _q_lead(c, b)) for a, b in _CONTIGUOUS)


def _lqt(c: Context) -> float:
    female = c.values.get("sex") == "Female"
    name = "lqt_qtc_female_ms" if female else "lqt_qtc_male_ms"
    return c.above("qtc_bazett_ms", name)


def _bbb(c: Context) -> float:
    """Wide QRS with the morphology of either complete bundle branch block, each width read
    as that block's rule reads it (the right block's to the end of V1-V2's terminal
    deflection), so that the parent holds wherever either child does."""
    return max(
        _rbbb_width(c, ">", "bbb_qrs_ms") * _rbbb_shape(c),
        c.above("qrs_ms", "bbb_qrs_ms") * _lbbb_shape(c),
    )


#: Poor R wave progression. Zema and Kligfield (ECG poor R-wave progression: review and
#: synthesis, Arch Intern Med 1982;142:1145) as summarised by ECG Stampede's glossary (citing
#: them): R < 3 mm in V3, or R decreasing from V2 to V3 or from V3 to V4; DePace's criteria
#: as summarised by metealpaslan.com: R in V3 <= 3 mm (10 mm/mV), or a reversed progression;
#: UCSF's ECG course: reversed progression is a loss of R height V1-V2, V2-V3 or V3-V4, the
#: R in V3 is normally > 2 mm, and "poor R wave progression" is a non-preferred term of the
#: AHA. Not verified: the primary articles were not read (only these summaries), so the
#: 0.3 mV limit and the leads of the reversal are as the summaries state them; the size of a
#: "decrease" is not stated: 0.1 mV (1 mm, what a reader sees at 10 mm/mV) is our choice.
#: V1-V2 is left out of the reversal (ECG Stampede's reading): a tall R' of right bundle
#: branch block in V1 is no loss of anterior forces.
_PRWP_SOURCE = "Zema and Kligfield 1982 via ECG Stampede; DePace via metealpaslan.com"
_PRWP_DROPS = (("V2", "V3"), ("V3", "V4"))


def _prwp(c: Context) -> float:
    """A small R in V3, or an R that falls from V2 to V3 or from V3 to V4."""
    small_v3 = c.below("V3_r_mv", "prwp_v3_r_mv")
    drops = [
        c.above(f"{a}_r_mv - {b}_r_mv", "prwp_drop_mv", c.value(f"{a}_r_mv") - c.value(f"{b}_r_mv"))
        for a, b in _PRWP_DROPS
    ]
    return max(small_v3, *drops)


def _in_range_hr(c: Context) -> float:
    return c.above("hr_bpm", "nsr_hr_lo_bpm") * c.below("hr_bpm", "nsr_hr_hi_bpm")


#: Heart-rate limits: 60 and 100/min (part II; Minnesota 8-7, 8-8); the 2018 ACC/AHA/HRS
#: bradycardia guideline (Kusumoto 2019) draws sinus bradycardia at 50/min.
_SLOW = f"60/min ({_PART2}); 50/min (Kusumoto 2019)"
_FAST = f"100/min ({_PART2}; Minnesota 8-8)"
_PR = f"PR > 200 ms ({_PART2}); >= 220 ms (Minnesota 6-3)"
#: Frontal QRS axis: -30 deg (Minnesota 2-1, part II); 0 deg, where 0..+90 is read as normal.
_LEFT = "-30 deg (Minnesota 2-1; part II); -45 deg (LAFB, part III); 0 deg (normal 0..+90)"


def _build_rules() -> list[Rule]:
    T = _t
    return [
        Rule(
            "IAVB",
            "270492004",
            "First-degree AV block: PR interval > 200 ms with a P wave before every QRS "
            f"({_PART2}; Minnesota code 6-3).",
            {"pr_ms": T(200.0, 8.0, 200.0, 220.0, "ms", _PR), **_P},
            "pr_ms",
            lambda c: c.above("pr_ms", "pr_ms") * _p_waves(c),
        ),
        Rule(
            "AF",
            "164889003",
            "Atrial fibrillation: irregularly irregular RR intervals without distinct P waves, "
            "fibrillatory waves in the TQ segments (AHA/ACC/HRS 2014; Minnesota code 8-3-1); "
            "f waves counted as zero crossings of the first derivative of lead II between QRS "
            "complexes (Bortolan, Christov and Simova 2020); read in the record's most "
            "irregular 10-s window, so that a paroxysm counts.",
            dict(_AF, **_P),
            "af_irregularity",
            _af_window,
        ),
        Rule(
            "AFL",
            "164890007",
            "Atrial flutter: regular, organised atrial waves at 240-340/min (4-5.7 Hz) without "
            "isoelectric baseline (Minnesota code 8-3-2); dominant atrial frequency of the "
            "QRST-cancelled V1 and its spectral organisation.",
            {
                "afl_organisation": T(0.5, 0.05, 0.35, 0.7),
                "afl_freq_lo_hz": T(4.0, 0.2, 3.0, 4.5, "Hz", "240/min = 4 Hz (Minnesota 8-3-2)"),
                "afl_freq_hi_hz": T(5.7, 0.2, 5.5, 7.0, "Hz", "340/min = 5.7 Hz (Minnesota 8-3-2)"),
                **_P,
            },
            "afl_organisation",
            lambda c: (
                c.above("atrial_organisation", "afl_organisation")
                * c.above("atrial_freq_hz", "afl_freq_lo_hz")
                * c.below("atrial_freq_hz", "afl_freq_hi_hz")
                * c.absent(_p_waves)
            ),
        ),
        Rule(
            "Brady",
            "426627000",
            "Bradycardia (426627000): ventricular rate < 60/min whatever the rhythm (sinus, "
            f"junctional, AF with slow response, AV block; {_PART2}; Kusumoto 2019).",
            {"brady_hr_bpm": T(60.0, 2.0, 50.0, 60.0, "1/min", _SLOW)},
            "brady_hr_bpm",
            lambda c: c.below("hr_bpm", "brady_hr_bpm"),
        ),
        Rule(
            "CRBBB|RBBB",
            "713427006",
            "Complete right bundle branch block: QRS >= 120 ms (to the end of the terminal "
            "deflection in V1 and V2); rsr', rsR' or rSR' in V1/V2 (an r' in V1 or V2, or a "
            "positive terminal QRS in V1); S wave longer than R or > 40 ms in I and V6 "
            f"({_PART3}; Minnesota code 7-2-1). Without V1 and V2 (the limb leads alone): QRS "
            ">= 120 ms with a terminal S in I.",
            {
                **_qrs_wide("rbbb_qrs_ms", 120.0, 110.0, 120.0, f"120 ms ({_PART3})"),
                **_RBBB_SHAPE,
            },
            "rbbb_qrs_ms",
            lambda c: _rbbb_width(c, ">", "rbbb_qrs_ms") * _rbbb_shape(c),
        ),
        Rule(
            "IRBBB",
            "713426002",
            "Incomplete right bundle branch block: RBBB morphology (rsr' in V1 or V2, terminal "
            "S in I and V6) with QRS 110-119 ms in adults, 90-100 ms in children (to the end of "
            f"the terminal deflection in V1 and V2; {_PART3}; Minnesota code 7-3).",
            {
                **_qrs_wide(
                    "irbbb_qrs_lo_ms", 110.0, 90.0, 110.0, f"110 ms; 90 ms children ({_PART3})"
                ),
                **_qrs_wide("irbbb_qrs_hi_ms", 120.0, 110.0, 120.0, f"< 120 ms ({_PART3})"),
                **_RBBB_SHAPE,
            },
            "irbbb_qrs_lo_ms",
            lambda c: (
                _rbbb_width(c, ">", "irbbb_qrs_lo_ms")
                * _rbbb_width(c, "<", "irbbb_qrs_hi_ms")
                * _rbbb_shape(c)
            ),
            follows={"irbbb_qrs_hi_ms": ("713427006", "rbbb_qrs_ms")},
        ),
        Rule(
            "LAnFB",
            "445118002",
            "Left anterior fascicular block: frontal QRS axis between -45 and -90 degrees, "
            f"qR in aVL, QRS < 120 ms ({_PART3}).",
            {
                "lafb_axis_deg": T(-45.0, 5.0, -45.0, -30.0, "deg", f"-45 deg ({_PART3}); {_LEFT}"),
                "lafb_axis_lo_deg": T(-90.0, 5.0, -90.0, -90.0, "deg", f"-90 deg ({_PART3})"),
                **_qrs_wide("lafb_qrs_ms", 120.0, 120.0, 120.0, f"< 120 ms ({_PART3})"),
                "lafb_avl_r_mv": T(0.1, 0.05, 0.0, 0.3, "mV"),
            },
            "lafb_axis_deg",
            lambda c: (
                c.below("qrs_axis_deg", "lafb_axis_deg")
                * c.above("qrs_axis_deg", "lafb_axis_lo_deg")
                * c.below("qrs_ms", "lafb_qrs_ms")
                * c.above("aVL_r_mv", "lafb_avl_r_mv")
            ),
        ),
        Rule(
            "LAD",
            "39732003",
            "Left axis deviation: frontal QRS axis between -30 and -90 degrees (Minnesota code "
            f"2-1; {_PART2}).",
            {
                "lad_axis_deg": T(-30.0, 5.0, -45.0, 0.0, "deg", _LEFT),
                "lad_axis_lo_deg": T(-90.0, 5.0, -90.0, -90.0, "deg", "-90 deg (Minnesota 2-1)"),
            },
            "lad_axis_deg",
            lambda c: (
                c.below("qrs_axis_deg", "lad_axis_deg") * c.above("qrs_axis_deg", "lad_axis_lo_deg")
            ),
        ),
        Rule(
            "LBBB",
            "164909002",
            "Complete left bundle branch block (164909002; in the 2021 table the class "
            "CLBBB|LBBB, 733534002|164909002): QRS >= 120 ms; broad notched or slurred R in I, "
            f"aVL, V5, V6; absent q in I, V5, V6; QS or rS in V1 ({_PART3}; Minnesota code "
            "7-1-1). Without V1 and V2 (the limb leads alone): QRS >= 120 ms with an upright "
            "end of QRS and no q in I.",
            {
                **_qrs_wide("lbbb_qrs_ms", 120.0, 120.0, 140.0, f"120 ms; 130 ms women ({_PART3})"),
                **_LBBB_SHAPE,
            },
            "lbbb_qrs_ms",
            lambda c: c.above("qrs_ms", "lbbb_qrs_ms") * _lbbb_shape(c),
        ),
        Rule(
            "BBB",
            "6374002",
            "Bundle branch block, type not stated (6374002, 2021 table): QRS >= 120 ms with the "
            "morphology of complete right (r' or positive end of QRS in V1, terminal S in I and "
            "V6) or complete left bundle branch block (QS or rS in V1, upright end of QRS in I "
            f"and V6, no q in I and V6); both complete blocks share the 120 ms limit ({_PART3}; "
            "Minnesota codes 7-1-1, 7-2-1). The parent concept of CRBBB and LBBB: it holds "
            "wherever either of their rules does; sources give it where the type was not "
            "recorded, and the operating threshold learnt on held-out sources decides whether "
            "its detections pay.",
            {
                **_qrs_wide(
                    "bbb_qrs_ms",
                    120.0,
                    110.0,
                    130.0,
                    f"120 ms ({_PART3}); 110 ms incomplete RBBB, 130 ms LBBB in women",
                ),
                **_RBBB_SHAPE,
                **_LBBB_SHAPE,
            },
            "bbb_qrs_ms",
            _bbb,
        ),
        Rule(
            "PRWP",
            "365413008",
            "Poor R wave progression (365413008, 2021 table): R in V3 <= 0.3 mV (3 mm), or an "
            "R that decreases from V2 to V3 or from V3 to V4 (reversed progression; Zema and "
            "Kligfield, Arch Intern Med 1982, and DePace's criteria, both read in secondary "
            "summaries only). A non-preferred term of the AHA: it is seen with old anterior "
            "infarction, left or right ventricular hypertrophy, left bundle branch block, high "
            "precordial electrodes and as a normal variant.",
            {
                "prwp_v3_r_mv": T(
                    0.3, 0.04, 0.2, 0.3, "mV", f"0.3 mV ({_PRWP_SOURCE}); normal > 0.2 mV (UCSF)"
                ),
                "prwp_drop_mv": T(
                    0.1, 0.03, 0.0, 0.2, "mV", f"any decrease ({_PRWP_SOURCE}); 0.1 mV: ours"
                ),
            },
            "prwp_v3_r_mv",
            _prwp,
        ),
        Rule(
            "LQRSV",
            "251146004",
            "Low QRS voltages: QRS peak-to-peak < 0.5 mV in every limb lead or < 1.0 mV in every "
            "precordial lead (AHA/ACCF/HRS part V; Minnesota code 9-1).",
            {
                "lqrsv_limb_mv": T(0.5, 0.05, 0.5, 0.5, "mV", "0.5 mV (part V; Minnesota 9-1)"),
                "lqrsv_chest_mv": T(1.0, 0.08, 0.7, 1.0, "mV", "1.0 mV (part V); 0.7 (Minn. 9-1)"),
            },
            "lqrsv_limb_mv",
            lambda c: max(
                c.below("limb_qrs_max_mv", "lqrsv_limb_mv"),
                c.below("chest_qrs_max_mv", "lqrsv_chest_mv"),
            ),
        ),
        Rule(
            "NSIVCB",
            "698252002",
            "Nonspecific intraventricular conduction delay: QRS > 110 ms without the criteria "
            f"of right or left bundle branch block ({_PART3}; Minnesota 7-4).",
            {
                **_qrs_wide("nsivcb_qrs_ms", 110.0, 110.0, 120.0, f"110 ms adults ({_PART3})"),
                **_RBBB_SHAPE,
                **_LBBB_SHAPE,
            },
            "nsivcb_qrs_ms",
            lambda c: (
                c.above("qrs_ms", "nsivcb_qrs_ms") * c.absent(_rbbb_shape) * c.absent(_lbbb_shape)
            ),
        ),
        Rule(
            "PR",
            "10370003",
            "Pacing rhythm: pacemaker stimulus artefacts (narrow spikes) before most QRS "
            "complexes (Minnesota code 6-8).",
            {"paced_fraction": T(0.5, 0.1, 0.2, 0.8)},
            "paced_fraction",
            lambda c: c.above("paced_fraction", "paced_fraction"),
        ),
        Rule(
            "PAC|SVPB",
            "284470004",
            "Premature atrial/supraventricular complex: a beat earlier than 85 % of the local RR "
            "with the dominant (supraventricular) QRS morphology, outside AF "
            "(Minnesota code 8-1-1).",
            {"pac_count": T(0.5, 0.2, 0.5, 2.5, "beats"), **_AF, **_P},
            "pac_count",
            lambda c: c.above("n_pac", "pac_count") * c.absent(_af),
        ),
        Rule(
            "PVC|VPB",
            "427172004",
            "Premature ventricular complex: a premature beat whose QRS differs from the dominant "
            "morphology (correlation < 0.9) (Minnesota code 8-1-2).",
            {"pvc_count": T(0.5, 0.2, 0.5, 2.5, "beats")},
            "pvc_count",
            lambda c: c.above("n_pvc", "pvc_count"),
        ),
        Rule(
            "LPR",
            "164947007",
            f"Prolonged PR interval: PR > 200 ms ({_PART2}; Minnesota code 6-3).",
            {"lpr_pr_ms": T(200.0, 8.0, 200.0, 220.0, "ms", _PR), **_P},
            "lpr_pr_ms",
            lambda c: c.above("pr_ms", "lpr_pr_ms") * _p_waves(c),
        ),
        Rule(
            "LQT",
            "111975006",
            f"Prolonged QT: QTc (Bazett) >= 450 ms in men, >= 460 ms in women ({_PART4}).",
            {
                "lqt_qtc_male_ms": T(
                    450.0, 8.0, 450.0, 500.0, "ms", f"450 ms ({_PART4}); 500 ms marked"
                ),
                "lqt_qtc_female_ms": T(
                    460.0, 8.0, 460.0, 500.0, "ms", f"460 ms ({_PART4}); 500 ms marked"
                ),
            },
            "lqt_qtc_male_ms",
            _lqt,
            follows={"lqt_qtc_female_ms": ("111975006", "lqt_qtc_male_ms")},
        ),
        Rule(
            "QAb",
            "164917005",
            "Pathological Q waves: Q >= 30 ms and >= 0.1 mV deep in two contiguous leads "
            "(fourth universal definition of MI 2018; Minnesota codes 1-1/1-2).",
            {
                "qab_q_ms": T(30.0, 4.0, 20.0, 40.0, "ms", "30 ms (MI 2018); 40 (Minn. 1-1)"),
                "qab_q_mv": T(-0.1, 0.03, -0.3, -0.1, "mV", "0.1 mV (MI 2018)"),
            },
            "qab_q_ms",
            _qab,
        ),
        Rule(
            "RAD",
            "47665007",
            "Right axis deviation: frontal QRS axis between +90 and +180 degrees (Minnesota code "
            f"2-2; {_PART2}).",
            {"rad_axis_deg": T(90.0, 5.0, 90.0, 120.0, "deg", "+90 (Minnesota 2-2); +120 marked")},
            "rad_axis_deg",
            lambda c: c.above("qrs_axis_deg", "rad_axis_deg"),
        ),
        Rule(
            "SA",
            "427393009",
            "Sinus arrhythmia: sinus P waves with RR intervals varying by more than 0.12 s "
            f"(max - min) without premature beats ({_PART2}).",
            {
                "sa_rr_range_s": T(0.12, 0.03, 0.12, 0.16, "s", "0.12 s; 0.16 s (Minnesota 8-4)"),
                "sa_premature": T(0.5, 0.2, 0.5, 2.5, "beats"),
                **_SINUS,
            },
            "sa_rr_range_s",
            lambda c: (
                _sinus(c)
                * c.above("rr_range_s", "sa_rr_range_s")
                * c.below("n_premature", "sa_premature")
            ),
        ),
        Rule(
            "SB",
            "426177001",
            "Sinus bradycardia (426177001): sinus rhythm at < 60/min "
            f"({_PART2}; Minnesota 8-7; < 50/min in Kusumoto 2019).",
            {"sb_hr_bpm": T(60.0, 2.0, 50.0, 60.0, "1/min", _SLOW), **_SINUS},
            "sb_hr_bpm",
            lambda c: _sinus(c) * c.below("hr_bpm", "sb_hr_bpm"),
        ),
        Rule(
            "NSR",
            "426783006",
            "Sinus rhythm (426783006): sinus P waves at 60-100/min, whatever the AV or "
            f"intraventricular conduction ({_PART2}).",
            {
                "nsr_hr_lo_bpm": T(60.0, 2.0, 50.0, 60.0, "1/min", _SLOW),
                "nsr_hr_hi_bpm": T(100.0, 2.0, 100.0, 100.0, "1/min", _FAST),
                **_SINUS,
            },
            "nsr_hr_lo_bpm",
            lambda c: _sinus(c) * _in_range_hr(c),
        ),
        Rule(
            "STach",
            "427084000",
            f"Sinus tachycardia: sinus rhythm at > 100/min ({_PART2}; Minnesota 8-8).",
            {"stach_hr_bpm": T(100.0, 2.0, 100.0, 100.0, "1/min", _FAST), **_SINUS},
            "stach_hr_bpm",
            lambda c: _sinus(c) * c.above("hr_bpm", "stach_hr_bpm"),
        ),
        Rule(
            "TAb",
            "164934002",
            "T-wave abnormality: T flat (< 0.1 mV) or negative in two or more of I, II, aVF, "
            "V3-V6, where it is normally upright (Minnesota codes 5-1 to 5-4).",
            {
                "tab_t_mv": T(0.1, 0.03, 0.0, 0.1, "mV", "flat < 0.1 mV (Minnesota 5-3)"),
                "tab_count": T(1.5, 0.4, 1.5, 4.0, "leads", "two leads (Minnesota 5)"),
            },
            "tab_count",
            lambda c: c.above("tab_leads", "tab_count", value=_t_count(c, _T_LEADS, "tab_t_mv")),
        ),
        Rule(
            "TInv",
            "59931005",
            "T-wave inversion: negative T (< -0.1 mV) in two or more of I, II, aVF, V3-V6 "
            "(Minnesota codes 5-1/5-2).",
            {
                "tinv_t_mv": T(-0.1, 0.03, -0.5, -0.1, "mV", "-0.1 (5-2), -0.5 mV (5-1)"),
                "tinv_count": T(1.5, 0.4, 1.5, 4.0, "leads", "two leads (Minnesota 5)"),
            },
            "tinv_count",
            lambda c: c.above("tinv_leads", "tinv_count", value=_t_count(c, _T_LEADS, "tinv_t_mv")),
        ),
    ]


# ---- the book's index -------------------------------------------------------------------


def _rules_by_code() -> dict[str, Rule]:
    return {rule.code: rule for rule in _build_rules()}


RULES: dict[str, Rule] = {}  # filled lazily by :func:`rule_table` (nothing at import time)


def rule_table() -> dict[str, Rule]:
    """The book: rule code -> rule (built on first use)."""
    if not RULES:
        RULES.update(_rules_by_code())
    return RULES


def class_codes(code: str, scored: ScoredClasses) -> tuple[str, ...]:
    """Every code of the class of ``code`` in ``scored`` (its representative first); a code
    the table does not score stands for itself."""
    rep = scored.representative.get(code)
    if rep is None:
        return (code,)
    return (rep, *sorted(c for c, r in scored.representative.items() if r == rep and c != rep))


def rule_for_class(code: str, scored: ScoredClasses) -> Rule | None:
    """The rule serving class ``code`` of the table ``scored``, or None.

    A rule is keyed by one SNOMED CT code (:attr:`Rule.code`, the 2020 representative); it
    serves the class of any table whose group of equivalent codes holds that code: the LBBB
    rule 164909002 serves the 2020 class 164909002 and the 2021 class CLBBB|LBBB
    (733534002|164909002). Every lookup of a class's rule (fit, predict, explain,
    :func:`evaluate_rules`) goes through here. Raises ``ValueError`` where two rules would
    serve one class.
    """
    table = rule_table()
    found = [table[c] for c in class_codes(code, scored) if c in table]
    if len(found) > 1:
        names = ", ".join(f"{r.abbreviation} {r.code}" for r in found)
        raise ValueError(f"class {code} is served by more than one rule: {names}")
    return found[0] if found else None


def apply_follows(thresholds: dict[str, dict[str, float]]) -> None:
    """Move, in place, every threshold that follows another (:attr:`Rule.follows`) to the
    leader's value plus their published distance, within the follower's bounds."""
    table = rule_table()
    for code, rule in table.items():
        for name, (lead_code, lead_name) in rule.follows.items():
            own, lead = rule.thresholds[name], table[lead_code].thresholds[lead_name]
            value = thresholds[lead_code][lead_name] + (own.value - lead.value)
            thresholds.setdefault(code, {})[name] = float(min(own.hi, max(own.lo, value)))


def default_thresholds() -> dict[str, dict[str, float]]:
    """Knowledge-base threshold values of every rule: rule code -> name -> value."""
    return {code: {k: t.value for k, t in r.thresholds.items()} for code, r in rule_table().items()}


def evaluate_rules(
    values: dict,
    thresholds: dict[str, dict[str, float]] | None = None,
    codes=None,
    scored: ScoredClasses | None = None,
):
    """Score every rule on one record's measurements.

    Args:
        values: measurement dict (from :func:`team_code.dsp.features.measure`), plus ``sex``.
        thresholds: rule code -> threshold name -> value (knowledge base when None).
        codes: the classes to score (every rule, by its own code, when None).
        scored: the table the classes belong to (when None, the shipped table of ``codes``:
            :func:`team_code.data.labels.table_for`); each class is served by its rule through
            :func:`rule_for_class`.

    Returns:
        class code -> ``{"score", "terms", "missing"}`` for the classes that have a rule.
    """
    thresholds = thresholds or default_thresholds()
    if codes is None:  # the whole book, each rule by its own code (no table holds them all)
        return {
            code: score_rule(rule, values, thresholds[code]) for code, rule in rule_table().items()
        }
    codes = list(codes)
    scored = scored if scored is not None else table_for(codes)
    out = {}
    for code in codes:
        rule = rule_for_class(code, scored)
        if rule is None:
            continue
        out[code] = score_rule(rule, values, thresholds[rule.code])
    return out
