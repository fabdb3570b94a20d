"""Vectorcardiography: X/Y/Z leads from the 12-lead ECG and loop descriptors.

Transforms (``to_xyz(signal_mv, leads, method=...)``) take the 8 independent leads
(V1-V6, I, II) and return Frank-like X (left +), Y (foot +), Z leads:

- ``dower1988``: the inverse Dower matrix of Edenbrandt and Pahlm, "Vectorcardiogram
  synthesized from a 12-lead ECG: superiority of the inverse Dower matrix", J Electrocardiol
  21:361 (1988);
- ``kors1990``: the regression matrix of Kors, van Herpen, Sittig and van Bemmel,
  "Reconstruction of the Frank vectorcardiogram from standard electrocardiographic leads:
  diagnostic comparison of different methods", Eur Heart J 11:1083 (1990).

Both keep the sign convention of the Frank leads recorded in the PTB database (Z positive
towards the back); ``tests/dsp/test_vcg.py`` checks them against the measured Frank leads of
PTB ``s0010_re``.

Descriptors (``loop_descriptors``) of the QRS and T loops of an average beat: maximal
vectors (magnitude, azimuth, elevation), the spatial QRS-T angle (between the mean QRS and
mean T vectors, and between the maximal vectors) and the planarity of each loop (fraction of
the loop's energy in its best-fitting plane, from the singular values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["MATRICES", "INPUT_LEADS", "to_xyz", "loop_descriptors"]

#: Lead order of the transform matrices' columns.
INPUT_LEADS: tuple[str, ...] = ("V1", "V2", "V3", "V4", "V5", "V6", "I", "II")

#: (3, 8) matrices mapping (V1..V6, I, II) to (X, Y, Z), by method name.
MATRICES: dict[str, np.ndarray] = {
    "dower1988": np.array(
        [
            [-0.172, -0.074, 0.122, 0.231, 0.239, 0.194, 0.156, -0.010],
            [0.057, -0.019, -0.106, -0.022, 0.041, 0.048, -0.227, 0.887],
            [-0.229, -0.310, -0.246, -0.063, 0.055, 0.108, 0.022, 0.102],
        ]
    ),
    "kors1990": np.array(
        [
            [-0.13, 0.05, -0.01, 0.14, 0.06, 0.54, 0.38, -0.07],
            [0.06, -0.02, -0.05, 0.06, -0.17, 0.13, -0.07, 0.93],
            [-0.43, -0.06, -0.14, -0.20, -0.11, 0.31, 0.11, -0.23],
        ]
    ),
}


def to_xyz(signal_mv, leads: Sequence[str], method: str = "kors1990") -> np.ndarray:
    """Synthesise X, Y, Z leads (3, n_samples) in mV from a 12-lead signal.

    Args:
        signal_mv: (n_leads, n_samples) in mV.
        leads: lead names of the rows (canonical spelling: I, II, V1..V6 must be present).
        method: ``"kors1990"`` or ``"dower1988"`` (see the module docstring).
    """
    try:
        matrix = MATRICES[method]
    except KeyError:
        raise ValueError(f"unknown XYZ method {method!r}; known: {sorted(MATRICES)}") from None
    names = list(leads)
    missing = [lead for lead in INPUT_LEADS if lead not in names]
    if missing:
        raise ValueError(f"to_xyz needs leads {missing} (got {names})")
    x = np.asarray(signal_mv, dtype=np.float64)
    return matrix @ x[[names.index(lead) for lead in INPUT_LEADS]]


def _angles(v: np.ndarray) -> tuple[float, float]:
    """Azimuth (transverse plane, X towards -Z, degrees) and elevation (towards +Y)."""
    x, y, z = v
    azimuth = math.degrees(math.atan2(-z, x))
    elevation = math.degrees(math.atan2(y, math.hypot(x, z)))
    return azimuth, elevation


def _angle_between(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return math.nan
    return math.degrees(math.acos(float(np.clip(a @ b / (na * nb), -1.0, 1.0))))


def _loop(
    xyz: np.ndarray, lo: float, hi: float, prefix: str
) -> tuple[dict, np.ndarray, np.ndarray]:
    nan = math.nan
    out = {
        f"{prefix}_max_mv": nan,
        f"{prefix}_azimuth_deg": nan,
        f"{prefix}_elevation_deg": nan,
        f"{prefix}_planarity": nan,
    }
    zero = np.zeros(3)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo < 3:
        return out, zero, zero
    seg = xyz[:, int(lo) : int(hi) + 1]
    mag = np.linalg.norm(seg, axis=0)
    k = int(np.argmax(mag))
    vmax, vmean = seg[:, k], seg.mean(axis=1)
    az, el = _angles(vmax)
    s = np.linalg.svd(seg - seg.mean(axis=1, keepdims=True), compute_uv=False)
    energy = float((s**2).sum())
    out.update(
        {
            f"{prefix}_max_mv": float(mag[k]),
            f"{prefix}_azimuth_deg": az,
            f"{prefix}_elevation_deg": el,
            f"{prefix}_planarity": float((s[0] ** 2 + s[1] ** 2) / energy) if energy > 0 else nan,
        }
    )
    return out, vmax, vmean


def loop_descriptors(
    xyz_beat_mv, fs, qrs_on: float, qrs_off: float, t_end: float, j_offset_ms: float = 40.0
) -> dict:
    """QRS and T loop descriptors of an X/Y/Z average beat.

    Args:
        xyz_beat_mv: (3, n_window) X/Y/Z average beat in mV, referred to the PR-segment level.
        fs: sampling frequency in Hz.
        qrs_on, qrs_off, t_end: fiducial samples from the delineation (NaN allowed).
        j_offset_ms: the T loop starts this long after QRS offset (skips the J point).

    Returns:
        A JSON-able dict: ``qrs_max_mv``, ``qrs_azimuth_deg``, ``qrs_elevation_deg``,
        ``qrs_planarity``, the same for ``t_*``, ``qrst_angle_deg`` (mean vectors) and
        ``qrst_max_angle_deg`` (maximal vectors); NaN where a loop is missing.
    """
    xyz = np.asarray(xyz_beat_mv, dtype=np.float64)
    qrs, qmax, qmean = _loop(xyz, qrs_on, qrs_off, "qrs")
    t_on = qrs_off + j_offset_ms * 1e-3 * fs if math.isfinite(qrs_off) else math.nan
    t, tmax, tmean = _loop(xyz, t_on, t_end, "t")
    return {
        **qrs,
        **t,
        "qrst_angle_deg": _angle_between(qmean, tmean),
        "qrst_max_angle_deg": _angle_between(qmax, tmax),
    }
