"""Synthetic 12-lead ECGs with labels known by construction: a heart-vector (dipole) model.

The heart is a time-varying 3-D dipole ``d(t)`` in a body frame with x to the patient's left,
y to the feet (inferior) and z to the front (anterior). Each wave is a sum of smooth, compact
lobes ``amp * direction * bump(t)`` where ``bump`` is a cos^2 hump (peak 1, exactly zero
outside its support, so the P, QRS and T spans are exact):

- P: a right-atrial then a left-atrial lobe (frontal axis about +60 deg, biphasic in V1);
- QRS: septal (right-anterior), main (along the planted axis, posterior) and terminal
  (right-superior-posterior) lobes, all within ``[onset, onset + qrs_ms]``;
- T: one asymmetric lobe, concordant with the QRS, ending at a Bazett-corrected QT;
- PVC: a wide, bizarre two-lobe QRS from an ectopic focus, no P wave, a discordant T and a
  full compensatory pause (the next sinus beat falls two sinus cycles after the previous);
- AF: irregularly irregular RR, no P waves, fibrillatory f-waves (4-8 Hz, wandering).

Leads are projections ``lead = l . d`` with an ideal lead field: lead I = (1, 0, 0), lead II at
+60 deg in the frontal plane (Einthoven's triangle), so aVF = (0, sqrt(3)/2, 0); the chest
leads point round the horizontal plane (V1 right-anterior ... V6 left) with larger gains.
Noise is added at the nine electrodes (RA, LA, LL, V1..V6; chest leads referred to Wilson's
central terminal), and III, aVR, aVL, aVF are formed from I and II, so Einthoven's and
Goldberger's relations (III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2) hold
to float precision, noise included.

Planted exactly (see :func:`synthesize`'s truth dict): heart rate and R-peak samples, PR, QRS
width, the frontal QRS axis, the angle of the net QRS area vector in the frontal plane
(``atan2(area_aVF / (sqrt(3)/2), area_I)`` from the leads; the QRS loop is rotated in the
frontal plane until it lands on ``axis_deg``), the QRS voltage relative to the
low-voltage criterion (``qrs_scale`` < 1 <=> every limb lead < 0.5 mV and every chest lead
< 1 mV peak to peak), PVC positions.

Command line: ``python -m team_code.data.synth OUT_DIR --n 200 --seed 0 [--fs 500]
[--duration 10]`` writes ``SYN00001.hea/.mat`` ... with balanced label combinations.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from team_code.data.leads import limb_from_i_ii
from team_code.data.records import STANDARD_LEADS

#: Lead order of every synthetic record: the standard twelve.
LEADS: tuple[str, ...] = STANDARD_LEADS

# SNOMED CT codes of the classes the generator plants (from evaluation/dx_mapping_scored.csv).
NSR = "426783006"  # sinus rhythm
SB = "426177001"  # sinus bradycardia
STACH = "427084000"  # sinus tachycardia
AF = "164889003"  # atrial fibrillation
LAD = "39732003"  # left axis deviation
RAD = "47665007"  # right axis deviation
IAVB = "270492004"  # first-degree AV block
LQRSV = "251146004"  # low QRS voltages
PVC = "427172004"  # premature ventricular contractions

#: Abbreviation -> SNOMED CT code of every class this module can plant.
CLASS_CODES: dict[str, str] = {
    "NSR": NSR,
    "SB": SB,
    "STach": STACH,
    "AF": AF,
    "LAD": LAD,
    "RAD": RAD,
    "IAVB": IAVB,
    "LQRSV": LQRSV,
    "PVC": PVC,
}
RHYTHM_CODES: tuple[str, ...] = (NSR, SB, STACH, AF)
_LABEL_ORDER: tuple[str, ...] = (NSR, SB, STACH, AF, LAD, RAD, IAVB, LQRSV, PVC)

#: Label combinations of :func:`generate_dataset`, each with its rhythm label, cycled evenly.
COMBINATIONS: tuple[tuple[str, ...], ...] = (
    (NSR,),
    (SB,),
    (STACH,),
    (AF,),
    (NSR, LAD),
    (NSR, RAD),
    (NSR, IAVB),
    (NSR, LQRSV),
    (NSR, PVC),
    (SB, IAVB),
    (SB, LAD),
    (SB, LQRSV),
    (SB, PVC),
    (STACH, PVC),
    (STACH, RAD),
    (STACH, LAD),
    (AF, RAD),
    (AF, LAD),
    (AF, LQRSV),
    (NSR, IAVB, LAD),
    (NSR, PVC, LQRSV),
)

# Low-voltage criterion (peak-to-peak QRS, mV) used to normalise ``qrs_scale``.
LOW_VOLTAGE_LIMB_MV = 0.5
LOW_VOLTAGE_CHEST_MV = 1.0

_SQRT3_2 = math.sqrt(3.0) / 2.0


def _unit(*xyz: float) -> np.ndarray:
    v = np.asarray(xyz, dtype=np.float64)
    return v / np.linalg.norm(v)


#: Chest-lead vectors (x left, y inferior, z anterior) from Dower's 1980 coefficients for V1..V6
#: (z sign turned from Frank's posterior to anterior), divided by Dower's lead-I x coefficient
#: 0.632 so that they are on the scale of the ideal limb leads below.
_CHEST_DOWER = (
    np.array(
        [
            [-0.515, 0.157, 0.917],  # V1 right-anterior
            [0.044, 0.164, 1.387],  # V2
            [0.882, 0.098, 1.277],  # V3
            [1.213, 0.127, 0.601],  # V4
            [1.125, 0.127, 0.086],  # V5
            [0.831, 0.076, -0.230],  # V6 left
        ]
    )
    / 0.632
)

#: Lead vectors (rows: I, II, V1..V6; columns x left, y inferior, z anterior). Limb leads are
#: Einthoven's ideal triangle (I at 0 deg, II at +60 deg); III, aVR, aVL, aVF are formed from I
#: and II.
_LEAD_FIELD_8 = np.vstack([[[1.0, 0.0, 0.0], [0.5, _SQRT3_2, 0.0]], _CHEST_DOWER])


def lead_field() -> np.ndarray:
    """The (12, 3) lead-field matrix used to project the dipole onto I, II, III, aVR ... V6."""
    limb = limb_from_i_ii(_LEAD_FIELD_8[0], _LEAD_FIELD_8[1])
    return np.vstack([_LEAD_FIELD_8[:2], limb, _LEAD_FIELD_8[2:]])


# --------------------------------------------------------------------------------------------
# Specifications


@dataclass(frozen=True)
class NoiseSpec:
    """Noise added at the electrodes; amplitudes are typical per-lead values in mV."""

    white_mv: float = 0.0  # standard deviation of white (amplifier) noise per lead
    emg_mv: float = 0.0  # standard deviation of muscle noise (20-150 Hz, bursty) per lead
    baseline_mv: float = 0.0  # amplitude of baseline wander (respiration 0.1-0.5 Hz, drift)
    powerline_mv: float = 0.0  # amplitude of mains interference per lead
    powerline_hz: float = 50.0  # mains frequency (50 or 60 Hz)

    def __post_init__(self):
        for name in ("white_mv", "emg_mv", "baseline_mv", "powerline_mv"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"NoiseSpec.{name} must be finite and >= 0; got {value!r}")
        if not (math.isfinite(self.powerline_hz) and self.powerline_hz > 0):
            raise ValueError(f"NoiseSpec.powerline_hz must be positive; got {self.powerline_hz}")

    @property
    def is_silent(self) -> bool:
        """True when no noise at all is added."""
        return not (self.white_mv or self.emg_mv or self.baseline_mv or self.powerline_mv)


@dataclass(frozen=True)
class RecordSpec:
    """Everything that defines one synthetic record; the labels follow from it by rule.

    Labels: rhythm ``af`` -> AF; ``sinus`` -> SB below 60 bpm, STach above 100, else NSR;
    LAD for -90 <= axis < -30 deg; RAD for 90 < axis <= 180; IAVB for sinus with PR > 200 ms;
    LQRSV for ``qrs_scale`` < 1; PVC for ``n_pvc`` > 0.
    """

    rhythm: str = "sinus"  # "sinus" or "af"
    heart_rate_bpm: float = 75.0  # sinus rate, or mean ventricular rate in AF
    pr_ms: float = 160.0  # P onset to QRS onset (sinus beats; unused in AF)
    p_ms: float = 100.0  # P-wave duration
    qrs_ms: float = 90.0  # QRS duration of supraventricular beats
    axis_deg: float = 60.0  # frontal QRS axis: the net area vector's angle, -180..180
    qrs_scale: float = 2.0  # QRS voltage / low-voltage limit: max(limb p2p/0.5, chest p2p/1)
    qtc_ms: float = 410.0  # Bazett-corrected QT (QT = QTc * sqrt(RR))
    p_amp_mv: float = 0.12  # peak of the atrial dipole (P in lead II about 0.6-0.9 of it)
    t_amp_mv: float = 0.2  # peak of the T-wave dipole
    rr_cv: float = 0.03  # RR coefficient of variation: sinus arrhythmia, or AF irregularity
    n_pvc: int = 0  # PVCs wanted (sinus only); as many as fit are placed, at least one
    pvc_qrs_ms: float = 150.0  # QRS duration of the PVCs
    af_amp_mv: float = 0.05  # amplitude of the fibrillatory f-wave dipole (AF only)
    af_hz: float = 6.0  # mean f-wave frequency (AF only)
    noise: NoiseSpec = field(default_factory=NoiseSpec)  # electrode noise

    def __post_init__(self):
        def bad(name, why):
            raise ValueError(f"RecordSpec.{name}={getattr(self, name)!r}: {why}")

        if self.rhythm not in ("sinus", "af"):
            bad("rhythm", "must be 'sinus' or 'af'")
        checks = {
            "heart_rate_bpm": (20.0, 250.0),
            "pr_ms": (60.0, 500.0),
            "p_ms": (40.0, 160.0),
            "qrs_ms": (40.0, 250.0),
            "axis_deg": (-180.0, 180.0),
            "qtc_ms": (250.0, 600.0),
            "p_amp_mv": (0.0, 1.0),
            "t_amp_mv": (0.0, 2.0),
            "rr_cv": (0.0, 0.4),
            "pvc_qrs_ms": (80.0, 250.0),
            "af_amp_mv": (0.0, 0.5),
            "af_hz": (3.0, 10.0),
        }
        for name, (low, high) in checks.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                bad(name, "must be a finite number")
            if not low <= value <= high:
                bad(name, f"must lie in [{low:g}, {high:g}]")
        if not (math.isfinite(self.qrs_scale) and 0 < self.qrs_scale <= 10):
            bad("qrs_scale", "must lie in (0, 10]")
        if self.rhythm == "sinus" and self.pr_ms < self.p_ms + 10:
            bad("pr_ms", f"must exceed the P duration ({self.p_ms:g} ms) by at least 10 ms")
        if not (isinstance(self.n_pvc, (int, np.integer)) and self.n_pvc >= 0):
            bad("n_pvc", "must be a non-negative integer")
        if self.n_pvc and self.rhythm != "sinus":
            bad("n_pvc", "PVCs (with a compensatory pause) are only planted in sinus rhythm")
        if not isinstance(self.noise, NoiseSpec):
            bad("noise", "must be a NoiseSpec")

    def labels(self) -> tuple[str, ...]:
        """SNOMED CT codes this spec plants, rhythm first."""
        codes = []
        if self.rhythm == "af":
            codes.append(AF)
        elif self.heart_rate_bpm < 60:
            codes.append(SB)
        elif self.heart_rate_bpm > 100:
            codes.append(STACH)
        else:
            codes.append(NSR)
        if -90 <= self.axis_deg < -30:
            codes.append(LAD)
        if 90 < self.axis_deg <= 180:
            codes.append(RAD)
        if self.rhythm == "sinus" and self.pr_ms > 200:
            codes.append(IAVB)
        if self.qrs_scale < 1:
            codes.append(LQRSV)
        if self.n_pvc > 0:
            codes.append(PVC)
        return tuple(codes)


# --------------------------------------------------------------------------------------------
# Waveform building blocks


def _rotation_z(angle_rad: float) -> np.ndarray:
    """Rotation in the frontal (x-y) plane; positive turns left (0 deg) toward inferior (+90)."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# A lobe: (centre_s, rise_s, fall_s, vector_mv[3]) relative to the beat's QRS onset sample.
Lobe = tuple[float, float, float, np.ndarray]


def _render(dipole: np.ndarray, onset: int, lobes: Sequence[Lobe], fs: float) -> None:
    """Add cos^2 lobes to ``dipole`` (3, n) in place; times are relative to sample ``onset``."""
    n = dipole.shape[1]
    for centre, rise, fall, vector in lobes:
        j0 = math.ceil((centre - rise) * fs)
        j1 = math.floor((centre + fall) * fs)
        lo, hi = max(onset + j0, 0), min(onset + j1 + 1, n)
        if lo >= hi:
            continue
        t = np.arange(lo - onset, hi - onset) / fs - centre
        width = np.where(t < 0, rise, fall)
        w = np.cos(0.5 * np.pi * np.clip(t / width, -1.0, 1.0)) ** 2
        dipole[:, lo:hi] += vector[:, None] * w


def _lobe_area(lobes: Sequence[Lobe]) -> np.ndarray:
    """Time integral (mV*s) of a set of lobes: a cos^2 hump of half-widths a, b has area (a+b)/2."""
    return sum((0.5 * (rise + fall) * vec for _, rise, fall, vec in lobes), np.zeros(3))


def _p2p_per_lead(lobes: Sequence[Lobe], duration_s: float, fs: float) -> np.ndarray:
    """Peak-to-peak (mV) of the lobes in each of the 12 leads, sampled like the record."""
    m = int(math.floor(duration_s * fs)) + 1
    local = np.zeros((3, m))
    _render(local, 0, lobes, fs)
    leads = lead_field() @ local
    return leads.max(axis=1) - leads.min(axis=1)


def _voltage_ratio(p2p: np.ndarray) -> float:
    """max(limb p2p / 0.5 mV, chest p2p / 1 mV): < 1 exactly when the low-voltage rule holds."""
    return max(p2p[:6].max() / LOW_VOLTAGE_LIMB_MV, p2p[6:].max() / LOW_VOLTAGE_CHEST_MV)


def _sinus_qrs(spec: RecordSpec, fs: float) -> tuple[list[Lobe], np.ndarray]:
    """QRS lobes rotated onto the planted axis and scaled to ``qrs_scale``; also lead p2p."""
    q = spec.qrs_ms / 1000.0
    canonical = [
        (0.13 * q, 0.13 * q, 0.13 * q, 0.12 * _unit(-0.55, 0.25, 0.8)),  # septal
        (0.45 * q, 0.27 * q, 0.25 * q, 1.0 * _unit(0.75, 0.6, -0.4)),  # main
        (0.80 * q, 0.20 * q, 0.20 * q, 0.22 * _unit(-0.6, -0.5, -0.6)),  # terminal
    ]
    # Rotate the loop so that its net area vector (A_x, A_y) points at the planted axis
    # (net area in I is A_x, in aVF sqrt(3)/2 * A_y).
    area = _lobe_area(canonical)
    rot = _rotation_z(math.radians(spec.axis_deg) - math.atan2(area[1], area[0]))
    lobes = [(c, a, b, rot @ v) for c, a, b, v in canonical]
    p2p = _p2p_per_lead(lobes, q, fs)
    k = spec.qrs_scale / _voltage_ratio(p2p)
    return [(c, a, b, k * v) for c, a, b, v in lobes], k * p2p


def _p_wave(spec: RecordSpec) -> list[Lobe]:
    """Right- then left-atrial lobes ending ``pr_ms - p_ms`` before the QRS onset."""
    p = spec.p_ms / 1000.0
    start = -spec.pr_ms / 1000.0
    amp = spec.p_amp_mv
    return [
        (start + 0.35 * p, 0.35 * p, 0.35 * p, 0.65 * amp * _unit(0.25, 0.9, 0.45)),
        (start + 0.62 * p, 0.30 * p, 0.38 * p, 0.65 * amp * _unit(0.9, 0.45, -0.35)),
    ]


def _qt_s(spec: RecordSpec, rr_s: float) -> float:
    return spec.qtc_ms / 1000.0 * math.sqrt(min(max(rr_s, 0.3), 2.0))


def _t_wave(qrs_s: float, qt_s: float, vector: np.ndarray, peak_fraction: float) -> Lobe:
    """A T lobe from after the ST segment to ``qt_s`` after the QRS onset."""
    qt_s = max(qt_s, qrs_s + 0.12)
    start = qrs_s + 0.2 * (qt_s - qrs_s)
    peak = start + peak_fraction * (qt_s - start)
    return (peak, peak - start, qt_s - peak, vector)


def _pvc_beat(
    spec: RecordSpec, fs: float, rng: np.random.Generator, sinus_main: np.ndarray
) -> tuple[list[Lobe], np.ndarray, float]:
    """Lobes of a unifocal PVC QRS (wide, bizarre), its discordant T vector and voltage gain."""
    q = spec.pvc_qrs_ms / 1000.0
    # Ectopic focus: right-ventricular (LBBB-like, leftward-posterior) or left-ventricular
    # (RBBB-like, rightward-anterior), superior or inferior, always far from the sinus vector.
    for _ in range(100):
        if rng.random() < 0.5:
            main = _unit(0.75, rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.8), -0.6)
        else:
            main = _unit(-0.6, rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.8), 0.7)
        main = _unit(*(main + rng.normal(0, 0.15, 3)))
        if main @ _unit(*sinus_main) < 0.2:
            break
    second = _unit(*(np.cross(main, rng.normal(size=3)) * 0.8 + main * 0.3))
    lobes = [
        (0.35 * q, 0.35 * q, 0.30 * q, 1.0 * main),
        (0.70 * q, 0.30 * q, 0.30 * q, 0.45 * second),
    ]
    # PVCs are taller than sinus QRS, but stay under the low-voltage limits in LQRSV records.
    ratio = spec.qrs_scale * (rng.uniform(1.2, 1.6) if spec.qrs_scale >= 1 else 0.95)
    k = ratio / _voltage_ratio(_p2p_per_lead(lobes, q, fs))
    lobes = [(c, a, b, k * v) for c, a, b, v in lobes]
    t_vector = -0.35 * k * main  # discordant T
    return lobes, t_vector, k


# --------------------------------------------------------------------------------------------
# Rhythm, f-waves and noise


def _smooth_noise(rng: np.random.Generator, n: int, fs: float, knots_hz: float) -> np.ndarray:
    """Unit-variance-ish random curve, piecewise linear between knots ``knots_hz`` apart."""
    n_knots = max(int(n / fs * knots_hz) + 2, 2)
    knots = rng.normal(size=n_knots)
    return np.interp(np.linspace(0, n_knots - 1, n), np.arange(n_knots), knots)


def _f_waves(spec: RecordSpec, n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Fibrillatory waves as a (3, n) dipole: 4-8 Hz, wandering frequency and amplitude."""
    freq = np.clip(spec.af_hz + 0.6 * _smooth_noise(rng, n, fs, 1.0), 4.0, 8.0)
    phase = 2 * np.pi * np.cumsum(freq) / fs + rng.uniform(0, 2 * np.pi)
    envelope = np.clip(1.0 + 0.25 * _smooth_noise(rng, n, fs, 0.5), 0.5, 1.5)
    second = rng.uniform(0, 2 * np.pi)
    wave1 = envelope * (np.sin(phase) + 0.25 * np.sin(2 * phase + second))
    wave2 = envelope * np.sin(phase + np.pi / 2)
    d1 = _unit(0.2, 0.5, 0.85)  # anterior-inferior: largest in V1 and the inferior leads
    d2 = _unit(0.7, 0.6, -0.2)
    return spec.af_amp_mv * (d1[:, None] * wave1 + 0.4 * d2[:, None] * wave2)


def _electrode_noise(noise: NoiseSpec, n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """(9, n) noise at RA, LA, LL, V1..V6; a lead (difference of two) gets about the spec."""
    out = np.zeros((9, n))
    t = np.arange(n) / fs
    per_electrode = 1.0 / math.sqrt(2.0)
    if noise.white_mv:
        out += noise.white_mv * per_electrode * rng.normal(size=(9, n))
    if noise.emg_mv:
        from scipy.signal import butter, sosfilt

        high = min(150.0, 0.45 * fs)
        if high > 25.0:
            sos = butter(2, [20.0, high], btype="bandpass", fs=fs, output="sos")
            emg = sosfilt(sos, rng.normal(size=(9, n)), axis=1)
            emg /= emg.std(axis=1, keepdims=True) + 1e-12
            bursts = np.clip(1.0 + 0.8 * _smooth_noise(rng, 9 * n, fs, 1.0), 0.1, 3.0)
            out += noise.emg_mv * per_electrode * emg * bursts.reshape(9, n)
    if noise.baseline_mv:
        resp_hz = rng.uniform(0.15, 0.4)
        resp = np.sin(2 * np.pi * resp_hz * t + rng.uniform(0, 2 * np.pi))
        drift = np.sin(2 * np.pi * rng.uniform(0.03, 0.1) * t + rng.uniform(0, 2 * np.pi))
        gains = rng.uniform(-1.0, 1.0, size=(9, 2))
        out += noise.baseline_mv * per_electrode * (gains[:, :1] * resp + gains[:, 1:] * drift)
    if noise.powerline_mv:
        phase = rng.uniform(0, 2 * np.pi, size=(9, 1))
        amps = rng.uniform(0.5, 1.0, size=(9, 1))
        out += (
            noise.powerline_mv
            * per_electrode
            * amps
            * np.sin(2 * np.pi * noise.powerline_hz * t + phase)
        )
    return out


def _sinus_rr(spec: RecordSpec, n_beats: int, rng: np.random.Generator) -> np.ndarray:
    """Sinus RR intervals (s): respiratory sinus arrhythmia plus a little jitter."""
    mean_rr = 60.0 / spec.heart_rate_bpm
    resp_cycles = rng.uniform(0.2, 0.3) * mean_rr  # respiratory cycles per beat
    phase = rng.uniform(0, 2 * np.pi)
    k = np.arange(n_beats)
    # A sinusoid of amplitude a has CV a/sqrt(2); split the variance 80/20 with the jitter.
    rsa = math.sqrt(0.8) * math.sqrt(2) * spec.rr_cv * np.sin(2 * np.pi * resp_cycles * k + phase)
    jitter = math.sqrt(0.2) * spec.rr_cv * rng.normal(size=n_beats)
    return mean_rr * (1.0 + rsa + jitter)


def _af_rr(spec: RecordSpec, n_beats: int, rng: np.random.Generator) -> np.ndarray:
    """Irregularly irregular RR (s): independent draws, CV ``rr_cv``, floor 0.3 s."""
    mean_rr = 60.0 / spec.heart_rate_bpm
    spread = spec.rr_cv / math.sqrt(0.05)  # Beta(2, 2) has variance 0.05
    return np.maximum(mean_rr * (1.0 + spread * (rng.beta(2.0, 2.0, n_beats) - 0.5)), 0.3)


# --------------------------------------------------------------------------------------------
# Records


def synthesize(
    spec: RecordSpec,
    fs: float = 500,
    duration_s: float = 10,
    seed: int | np.random.SeedSequence | np.random.Generator | None = 0,
) -> tuple[np.ndarray, dict]:
    """One synthetic 12-lead record: ``(signal_mv (12, n) float32, truth)``.

    Leads are :data:`LEADS`. ``seed`` feeds ``numpy.random.default_rng`` (same seed, same
    record). ``truth`` holds the planted values: ``labels`` (SNOMED codes, rhythm first),
    ``rhythm``, ``heart_rate_bpm``, ``pr_ms`` (None in AF), ``qrs_ms``, ``pvc_qrs_ms``,
    ``axis_deg``, ``qrs_scale``, ``qrs_p2p_mv`` (12 per-lead QRS peak-to-peak of the sinus
    beats), ``r_peaks`` (sample of each beat's main QRS peak, every beat whose peak lies in
    the record), ``beat_types`` ('N' or 'V' per r_peak), ``qrs_onsets``/``qrs_offsets``
    (samples), ``p_onsets`` (sample of the P onset of each 'N' beat in sinus rhythm; -1 for
    PVCs, AF and a P wave that starts before the record),
    ``rr_s`` (diff of r_peaks in s), ``pvc_indices`` (r_peaks of PVCs), ``af_hz``,
    ``fs``, ``n_samples``, ``leads``, ``spec``.
    """
    if not isinstance(spec, RecordSpec):
        raise TypeError(f"spec must be a RecordSpec; got {type(spec).__name__}")
    if not (math.isfinite(fs) and fs >= 50):
        raise ValueError(f"fs must be at least 50 Hz; got {fs!r}")
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be positive; got {duration_s!r}")
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fs))
    if n < 2:
        raise ValueError(f"{duration_s} s at {fs} Hz gives fewer than 2 samples")
    dipole = np.zeros((3, n))
    qrs_lobes, qrs_p2p = _sinus_qrs(spec, fs)
    q_s = spec.qrs_ms / 1000.0
    main_vec = qrs_lobes[1][3]
    phi = math.radians(spec.axis_deg)
    t_angle = 0.5 * phi + 0.5 * math.radians(45.0)
    t_scale = 1.0 if spec.qrs_scale >= 1 else 0.5  # low-voltage records: everything smaller
    t_vec = spec.t_amp_mv * t_scale * _unit(math.cos(t_angle), math.sin(t_angle), 0.25)
    p_lobes = [(c, a, b, t_scale * v) for c, a, b, v in _p_wave(spec)]

    # Beat times: QRS onsets from a random phase before 0 to past the end.
    mean_rr = 60.0 / spec.heart_rate_bpm
    n_beats = int(math.ceil((duration_s + 2.0) / (mean_rr * 0.7))) + 4
    if spec.rhythm == "af":
        rr = _af_rr(spec, n_beats, rng)
    else:
        rr = _sinus_rr(spec, n_beats, rng)
    start = -rng.uniform(0.2, 1.0) * mean_rr - 0.5
    onsets_s = start + np.concatenate([[0.0], np.cumsum(rr[:-1])])
    onsets = np.round(onsets_s * fs).astype(int)
    types = ["N"] * n_beats
    main_off = int(round(0.45 * q_s * fs))

    # PVCs: replace sinus beat k+1 by a premature beat after beat k (full compensatory pause).
    pvc_offset = int(round(0.35 * spec.pvc_qrs_ms / 1000.0 * fs))
    pvc_lobes: list[Lobe] = []
    pvc_t: np.ndarray | None = None
    if spec.n_pvc:
        pvc_lobes, pvc_t, _ = _pvc_beat(spec, fs, rng, main_vec)
        pvc_q = spec.pvc_qrs_ms / 1000.0
        # Candidates: the sinus beat before the PVC and the PVC with its T lie inside the
        # record; those whose next sinus beat (the end of the pause) is inside come first.
        t_end = pvc_q + 0.45
        inside = [
            k
            for k in range(n_beats - 3)
            if onsets_s[k] > 0.05 and onsets_s[k] + 0.65 * rr[k] + t_end < duration_s
        ]
        whole = [k for k in inside if onsets_s[k + 2] + pvc_q < duration_s - 0.3]
        partial = [k for k in inside if k not in whole]
        chosen: list[int] = []
        for k in [*rng.permutation(whole), *rng.permutation(partial)]:
            if all(abs(int(k) - c) >= 3 for c in chosen):
                chosen.append(int(k))
            if len(chosen) == spec.n_pvc:
                break
        if not chosen:
            raise ValueError(
                f"no PVC fits in {duration_s:g} s at {spec.heart_rate_bpm:g} bpm (it needs a "
                "sinus beat before it and room for its T wave); use a longer record"
            )
        for k in chosen:
            coupling = max(rng.uniform(0.5, 0.65), (_qt_s(spec, rr[k]) + 0.03) / rr[k])
            onsets_s[k + 1] = onsets_s[k] + coupling * rr[k]
            onsets[k + 1] = int(round(onsets_s[k + 1] * fs))
            types[k + 1] = "V"

    p_onsets = np.full(n_beats, -1)
    for k in range(n_beats):
        onset = int(onsets[k])
        prev_rr = rr[k - 1] if k else mean_rr
        if types[k] == "V":
            qt = _qt_s(spec, rr[k - 1]) + 0.04
            t_lobe = _t_wave(spec.pvc_qrs_ms / 1000.0, qt, pvc_t, 0.5)
            _render(dipole, onset, [*pvc_lobes, t_lobe], fs)
            continue
        lobes = list(qrs_lobes)
        if spec.rhythm == "sinus":
            if k and types[k - 1] == "V":
                prev_rr = rr[k - 1] + rr[k - 2]  # after the compensatory pause
            lobes += p_lobes
            p_onset = onset + math.ceil(-spec.pr_ms / 1000.0 * fs)
            p_onsets[k] = p_onset if p_onset >= 0 else -1
        lobes.append(_t_wave(q_s, _qt_s(spec, prev_rr), t_vec, 0.6))
        _render(dipole, onset, lobes, fs)

    if spec.rhythm == "af":
        f_waves = _f_waves(spec, n, fs, rng)
        dipole += f_waves

    # Projection (I, II, V1..V6), electrode noise, then the derived limb leads.
    leads8 = _LEAD_FIELD_8 @ dipole
    if not spec.noise.is_silent:
        e = _electrode_noise(spec.noise, n, fs, rng)
        ra, la, ll = e[0], e[1], e[2]
        leads8[0] += la - ra
        leads8[1] += ll - ra
        leads8[2:] += e[3:] - (ra + la + ll) / 3.0
    signal = np.empty((12, n))
    signal[:2] = leads8[:2]
    signal[2:6] = limb_from_i_ii(leads8[0], leads8[1])
    signal[6:] = leads8[2:]

    fiducial = np.array(
        [onsets[k] + (pvc_offset if types[k] == "V" else main_off) for k in range(n_beats)]
    )
    widths = np.array(
        [int(round((spec.pvc_qrs_ms if t == "V" else spec.qrs_ms) / 1000.0 * fs)) for t in types]
    )
    inside = (fiducial >= 0) & (fiducial < n)
    r_peaks = fiducial[inside]
    beat_types = np.array(types)[inside]
    truth = {
        "labels": spec.labels(),
        "rhythm": spec.rhythm,
        "heart_rate_bpm": float(spec.heart_rate_bpm),
        "pr_ms": float(spec.pr_ms) if spec.rhythm == "sinus" else None,
        "qrs_ms": float(spec.qrs_ms),
        "pvc_qrs_ms": float(spec.pvc_qrs_ms) if spec.n_pvc else None,
        "axis_deg": float(spec.axis_deg),
        "qrs_scale": float(spec.qrs_scale),
        "qrs_p2p_mv": qrs_p2p.astype(np.float32),
        "r_peaks": r_peaks,
        "beat_types": beat_types,
        "qrs_onsets": onsets[inside],
        "qrs_offsets": onsets[inside] + widths[inside],
        "p_onsets": p_onsets[inside],
        "rr_s": np.diff(r_peaks) / fs,
        "pvc_indices": r_peaks[beat_types == "V"],
        "af_hz": float(spec.af_hz) if spec.rhythm == "af" else None,
        "fs": float(fs),
        "n_samples": n,
        "leads": LEADS,
        "spec": spec,
    }
    return signal.astype(np.float32), truth


def _check_labels(labels: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(str(code).strip() for code in labels)
    known = set(CLASS_CODES.values())
    unknown = sorted(wanted - known)
    if unknown:
        names = ", ".join(f"{abbr} {code}" for abbr, code in CLASS_CODES.items())
        raise ValueError(f"cannot plant labels {unknown}; known: {names}")
    rhythms = wanted & set(RHYTHM_CODES)
    if len(rhythms) != 1:
        raise ValueError(
            f"labels {sorted(wanted)} must hold exactly one rhythm label "
            f"(NSR {NSR}, SB {SB}, STach {STACH} or AF {AF})"
        )
    if {LAD, RAD} <= wanted:
        raise ValueError("LAD and RAD exclude each other")
    if AF in wanted and wanted & {IAVB, PVC}:
        raise ValueError("AF cannot carry IAVB (no PR interval) or PVC (no compensatory pause)")
    return wanted


def random_spec(
    rng: np.random.Generator, labels: Iterable[str] | None = None, *, noise: bool = True
) -> RecordSpec:
    """Draw a plausible :class:`RecordSpec` whose :meth:`RecordSpec.labels` equal ``labels``.

    ``labels`` is a set of SNOMED codes with exactly one rhythm (NSR, SB, STach, AF) plus any
    of LAD, RAD, IAVB, LQRSV, PVC (AF excludes IAVB and PVC); None picks one of
    :data:`COMBINATIONS`. Values are drawn inside each class's range, away from its limits:
    NSR 62-95 bpm, SB 40-55, STach 105-150 (105-120 with IAVB), AF mean 65-130 with RR CV
    0.15-0.25; PR 130-190 ms (120-170 in STach), IAVB 230-320 (225-260 in STach); QRS
    80-110 ms; axis -20..80 deg, LAD -75..-45, RAD 100..150; ``qrs_scale`` 1.5-3.0, LQRSV
    0.45-0.75; 1-2 PVCs of 135-180 ms. ``noise`` False gives a noise-free spec.
    """
    if labels is None:
        wanted = frozenset(COMBINATIONS[int(rng.integers(len(COMBINATIONS)))])
    else:
        wanted = _check_labels(labels)
    u = rng.uniform
    if AF in wanted:
        rhythm, rate, rr_cv = "af", u(65, 130), u(0.15, 0.25)
    elif SB in wanted:
        rhythm, rate, rr_cv = "sinus", u(40, 55), u(0.015, 0.04)
    elif STACH in wanted:
        high = 120 if IAVB in wanted else 150
        rhythm, rate, rr_cv = "sinus", u(105, high), u(0.01, 0.025)
    else:
        rhythm, rate, rr_cv = "sinus", u(62, 95), u(0.015, 0.04)
    p_ms = u(80, 110)
    if IAVB in wanted:
        pr_ms = u(225, 260) if STACH in wanted else u(230, 320)
    else:
        pr_ms = u(max(120, p_ms + 30), 170) if STACH in wanted else u(max(130, p_ms + 30), 190)
    if LAD in wanted:
        axis = u(-75, -45)
    elif RAD in wanted:
        axis = u(100, 150)
    else:
        axis = u(-20, 80)
    low = LQRSV in wanted
    af_amp = u(0.02, 0.04) if low else u(0.03, 0.08)
    noise_spec = NoiseSpec()
    if noise:
        noise_spec = NoiseSpec(
            white_mv=u(0.003, 0.015),
            emg_mv=u(0.0, 0.02) if rng.random() < 0.5 else 0.0,
            baseline_mv=u(0.02, 0.15),
            powerline_mv=u(0.0, 0.02) if rng.random() < 0.3 else 0.0,
            powerline_hz=50.0 if rng.random() < 0.5 else 60.0,
        )
    return RecordSpec(
        rhythm=rhythm,
        heart_rate_bpm=round(float(rate), 1),
        pr_ms=round(float(pr_ms), 1),
        p_ms=round(float(p_ms), 1),
        qrs_ms=round(float(u(80, 110)), 1),
        axis_deg=round(float(axis), 1),
        qrs_scale=round(float(u(0.45, 0.75) if low else u(1.5, 3.0)), 3),
        qtc_ms=round(float(u(380, 440)), 1),
        p_amp_mv=round(float(u(0.08, 0.16)), 3),
        t_amp_mv=round(float(u(0.12, 0.3)), 3),
        rr_cv=round(float(rr_cv), 3),
        n_pvc=int(rng.integers(1, 3)) if PVC in wanted else 0,
        pvc_qrs_ms=round(float(u(135, 180)), 1),
        af_amp_mv=round(float(af_amp), 3),
        af_hz=round(float(u(4.5, 7.5)), 2),
        noise=noise_spec,
    )


def generate_dataset(
    folder: str | os.PathLike,
    n_records: int = 200,
    seed: int = 0,
    fs: float = 500,
    duration_s: float = 10,
    prefix: str = "SYN",
    *,
    noise: bool = True,
) -> list[Path]:
    """Write ``n_records`` synthetic records ``<prefix>00001`` ... into ``folder``.

    Every block of ``len(COMBINATIONS)`` records holds each of :data:`COMBINATIONS` once, in a
    seeded random order (counts differ by at most one); ages 18-89 (about 5% unknown), sexes
    Male/Female (about 3% unknown).
    Each record draws from its own child of ``SeedSequence(seed)``, so a record does not
    depend on how many others are written, and the files (dates included) are reproducible.
    Returns the header paths, in order.
    """
    from team_code.data.writer import write_record

    if int(n_records) != n_records or n_records < 0:
        raise ValueError(f"n_records must be a non-negative integer; got {n_records!r}")
    n_records = int(n_records)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Each block of len(COMBINATIONS) records holds every combination once, in a seeded order.
    m = len(COMBINATIONS)
    combos = []
    for block in range((n_records + m - 1) // m):
        order = np.random.default_rng([seed, 0, block]).permutation(m)
        combos += [COMBINATIONS[j] for j in order]
    children = np.random.SeedSequence([seed, 1]).spawn(n_records)
    base_date = _dt.datetime(2020, 2, 5, 9, 0, 0)
    width = max(5, len(str(n_records)))
    paths = []
    for i, (child, combo) in enumerate(zip(children, combos)):
        rng = np.random.default_rng(child)
        spec = random_spec(rng, combo, noise=noise)
        age = None if rng.random() < 0.05 else int(rng.integers(18, 90))
        draw = rng.random()
        sex = None if draw < 0.03 else ("Male" if draw < 0.515 else "Female")
        when = base_date + _dt.timedelta(seconds=int(rng.integers(0, 3600 * 24 * 90)))
        signal, truth = synthesize(spec, fs=fs, duration_s=duration_s, seed=rng)
        name = f"{prefix}{i + 1:0{width}d}"
        paths.append(
            write_record(
                folder,
                name,
                signal,
                fs,
                LEADS,
                age=age,
                sex=sex,
                dx=truth["labels"],
                date=when,
            )
        )
    return paths


# --------------------------------------------------------------------------------------------
# Command line


def get_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """Arguments of ``python -m team_code.data.synth`` (``prog`` names the command in usage
    lines)."""
    parser = argparse.ArgumentParser(
        prog=prog or "python -m team_code.data.synth",
        description="Write synthetic 12-lead Challenge records with planted labels "
        "(NSR, SB, STach, AF, LAD, RAD, IAVB, LQRSV, PVC).",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write <prefix>NNNNN.hea/.mat into")
    parser.add_argument("--n", type=int, default=200, help="number of records (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--fs", type=float, default=500.0, help="sampling rate, Hz (500)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per record (10)")
    parser.add_argument("--prefix", default="SYN", help="record name prefix (default SYN)")
    parser.add_argument("--no-noise", action="store_true", help="write noise-free records")
    return parser


#: The label a planted pattern carries (sinus arrhythmia's code, given to a pattern no clinical
#: rule reads): see :func:`plant_pattern`.
PLANTED_CLASS = "427393009"


def plant_pattern(records, seed: int, code: str = PLANTED_CLASS) -> list:
    """A class only a network can see: every other record (atrial fibrillation records left
    out) gets a 3 Hz, 0.6 mV wave for 1.5 s on V1-V3 at a random time and the label ``code``,
    a pattern the rules' measurements (RR, axis, intervals, voltages) do not read. Returns new
    records; the given ones are not changed."""
    rng = np.random.default_rng(seed)
    out = []
    for i, record in enumerate(r for r in records if "164889003" not in r.labels):
        if i % 2:
            signal = record.signal.copy()
            n = int(1.5 * record.fs)
            start = int(rng.integers(0, signal.shape[1] - n))
            wave = 0.6 * np.sin(2 * np.pi * 3.0 * np.arange(n) / record.fs)
            signal[6:9, start : start + n] += wave.astype(signal.dtype)
            record = replace(record, signal=signal, labels=(*record.labels, code))
        out.append(record)
    return out


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point: write the records and print the label counts."""
    parser = get_parser(prog)
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("--n must be >= 0")
    if args.fs < 50 or args.duration <= 0:
        parser.error("--fs must be >= 50 and --duration > 0")
    fs = int(args.fs) if float(args.fs).is_integer() else args.fs
    paths = generate_dataset(
        args.out_dir,
        n_records=args.n,
        seed=args.seed,
        fs=fs,
        duration_s=args.duration,
        prefix=args.prefix,
        noise=not args.no_noise,
    )
    from team_code.data.records import read_header

    counts = Counter(code for p in paths for code in read_header(p).labels)
    names = {code: abbr for abbr, code in CLASS_CODES.items()}
    summary = ", ".join(f"{names[c]} {counts[c]}" for c in _LABEL_ORDER if counts[c])
    print(f"wrote {len(paths)} records to {args.out_dir} ({summary})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
