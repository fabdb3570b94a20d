"""Writing Challenge 2020 records: a WFDB header (``.hea``) plus a MATLAB v4 ``.mat`` file.

The layout follows the 2020 release byte for byte where it matters to readers:

```
A0001 12 500 7500 05-Feb-2020 11:39:16
A0001.mat 16+24 1000/mV 16 0 28 -1716 0 I
...
#Age: 74
#Sex: Male
#Dx: 59118001,164889003
#Rx: Unknown
#Hx: Unknown
#Sx: Unknown
```

The ``.mat`` file holds one int16 variable ``val`` shaped (n_leads, n_samples) in digital
units, ``round(signal_mv * gain) + baseline``. MATLAB v4 stores it column-major, i.e. frame
after frame, which is what WFDB's format ``16`` with a 24-byte offset (``16+24``) describes.
Each signal line gives the first sample and the WFDB checksum (sum of the lead's digital
samples modulo 65536, as a signed 16-bit number). Both files are written atomically.
"""

from __future__ import annotations

import datetime as _dt
import io
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from team_code.fileio import atomic_write_bytes, atomic_write_text

#: Largest and smallest digital value written; -32768 is WFDB's "no sample" marker in format 16.
_DIGITAL_MAX = 32767
_DIGITAL_MIN = -32767

_MONTHS = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _format_number(value: float) -> str:
    """``500`` for integral values, else the shortest exact-enough form (``4880.5``)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.10g}"


def _format_date(when: _dt.datetime) -> str:
    """``05-Feb-2020 11:39:16``, the 2020 release's spelling (independent of the locale)."""
    return f"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} {when:%H:%M:%S}"


def wfdb_checksum(digital: np.ndarray) -> np.ndarray:
    """WFDB checksum of each row: the sum of the samples modulo 65536 as a signed 16-bit value."""
    total = np.asarray(digital, dtype=np.int64).sum(axis=-1) % 65536
    return np.where(total >= 32768, total - 65536, total)


def _per_lead(value, n_leads: int, what: str, record: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(n_leads, float(array))
    if array.shape != (n_leads,):
        raise ValueError(
            f"record {record}: {what} must be one number or one per lead ({n_leads}); "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"record {record}: {what} must be finite")
    return array


def digitize(
    signal_mv: np.ndarray,
    gain: float | Sequence[float] = 1000.0,
    baseline: int | Sequence[int] = 0,
    *,
    name: str = "<unnamed>",
    max_clipped_fraction: float = 0.0,
) -> np.ndarray:
    """Convert millivolts to int16 digital units: ``round(signal_mv * gain) + baseline``.

    Values outside the int16 range are clipped to +-32767; if more than
    ``max_clipped_fraction`` of a lead's samples would be clipped a ``ValueError`` naming the
    record is raised instead (a lower gain would keep the data).
    """
    signal = np.asarray(signal_mv, dtype=np.float64)
    n_leads = signal.shape[0]
    gains = _per_lead(gain, n_leads, "gain", name)
    if (gains <= 0).any():
        raise ValueError(f"record {name}: gain must be positive; got {gains.tolist()}")
    baselines = _per_lead(baseline, n_leads, "baseline", name)
    if not np.all(baselines == np.round(baselines)):
        raise ValueError(f"record {name}: baseline must be an integer; got {baselines.tolist()}")
    digital = np.rint(signal * gains[:, None]) + baselines[:, None]
    outside = (digital > _DIGITAL_MAX) | (digital < _DIGITAL_MIN)
    if outside.any():
        fraction = outside.mean(axis=1)
        worst = int(np.argmax(fraction))
        if fraction[worst] > max_clipped_fraction:
            peak = float(np.abs(signal[worst]).max())
            raise ValueError(
                f"record {name}: lead {worst + 1} would be clipped on "
                f"{int(outside[worst].sum())} samples ({100 * fraction[worst]:.3g}%) at gain "
                f"{gains[worst]:g}/mV (peak {peak:.4g} mV beyond the int16 range); "
                f"lower the gain"
            )
        digital = np.clip(digital, _DIGITAL_MIN, _DIGITAL_MAX)
    return digital.astype(np.int16)


def format_header(
    name: str,
    digital: np.ndarray,
    fs: float,
    leads: Sequence[str],
    *,
    gain: float | Sequence[float] = 1000.0,
    baseline: int | Sequence[int] = 0,
    age: float | None = None,
    sex: str | None = None,
    dx: Sequence[str] = (),
    date: bool | _dt.datetime = True,
) -> str:
    """The text of a 2020-style header for an int16 (n_leads, n_samples) digital signal."""
    n_leads, n_samples = digital.shape
    gains = _per_lead(gain, n_leads, "gain", name)
    baselines = _per_lead(baseline, n_leads, "baseline", name)
    record_line = f"{name} {n_leads} {_format_number(fs)} {n_samples}"
    if date is True:
        date = _dt.datetime.now().replace(microsecond=0)
    if isinstance(date, _dt.datetime):
        record_line += " " + _format_date(date)
    elif date is not False:
        raise ValueError(f"record {name}: date must be True, False or a datetime; got {date!r}")
    checksums = wfdb_checksum(digital)
    first = digital[:, 0] if n_samples else np.zeros(n_leads, dtype=np.int16)
    lines = [record_line]
    for i, lead in enumerate(leads):
        lines.append(
            f"{name}.mat 16+24 {_format_number(gains[i])}/mV 16 {int(baselines[i])} "
            f"{int(first[i])} {int(checksums[i])} 0 {lead}"
        )
    if age is None or (isinstance(age, float) and math.isnan(age)):
        age_text = "NaN"
    else:
        age_text = _format_number(float(age))
    lines += [
        f"#Age: {age_text}",
        f"#Sex: {sex if sex else 'Unknown'}",
        f"#Dx: {','.join(str(code) for code in dx)}",
        "#Rx: Unknown",
        "#Hx: Unknown",
        "#Sx: Unknown",
    ]
    return "\n".join(lines) + "\n"


def write_record(
    folder: str | os.PathLike,
    name: str,
    signal_mv: np.ndarray,
    fs: float,
    leads: Sequence[str],
    *,
    age: float | None = None,
    sex: str | None = None,
    dx: Sequence[str] = (),
    gain: float | Sequence[float] = 1000.0,
    baseline: int | Sequence[int] = 0,
    date: bool | _dt.datetime = True,
    max_clipped_fraction: float = 0.0,
) -> Path:
    """Write ``<folder>/<name>.mat`` and ``<folder>/<name>.hea``; return the header path.

    ``signal_mv`` is (n_leads, n_samples) in millivolts; ``gain`` (ADC units per mV) and
    ``baseline`` (ADC value of 0 mV) are one number or one per lead. ``age`` None is written
    ``NaN``, ``sex`` None ``Unknown``; ``dx`` are SNOMED CT codes. ``date`` True writes the
    current date and time in the record line, a ``datetime`` writes that one (reproducible
    files), False writes none (the 2021 dialect). Raises ``ValueError`` naming the record for
    a bad name, shape, non-finite sample, lead count, or a signal the int16 range cannot hold
    (beyond ``max_clipped_fraction`` of a lead's samples). The ``.mat`` file is written
    before the header, each atomically, so a header on disk always has its signal file.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"record name {name!r} must be non-empty letters, digits, '_', '-' or '.' "
            "(no spaces or folders)"
        )
    signal = np.asarray(signal_mv)
    if signal.ndim != 2:
        raise ValueError(
            f"record {name}: signal must be 2-D (n_leads, n_samples); got shape {signal.shape}"
        )
    if signal.shape[0] == 0 or signal.shape[1] == 0:
        raise ValueError(f"record {name}: signal is empty (shape {signal.shape})")
    if not np.issubdtype(signal.dtype, np.number):
        raise ValueError(f"record {name}: signal has non-numeric type {signal.dtype}")
    if not np.isfinite(signal).all():
        bad = int(np.count_nonzero(~np.isfinite(signal)))
        raise ValueError(f"record {name}: signal has {bad} NaN or infinite samples")
    leads = [str(lead) for lead in leads]
    if len(leads) != signal.shape[0]:
        raise ValueError(
            f"record {name}: {len(leads)} lead names for a signal with {signal.shape[0]} leads"
        )
    for lead in leads:
        if not lead or any(ch.isspace() for ch in lead):
            raise ValueError(f"record {name}: lead name {lead!r} is empty or has whitespace")
    if not (isinstance(fs, (int, float, np.number)) and math.isfinite(fs) and fs > 0):
        raise ValueError(f"record {name}: fs must be a positive number; got {fs!r}")
    codes = [str(code).strip() for code in dx]
    for code in codes:
        if not code or "," in code or any(ch.isspace() for ch in code):
            raise ValueError(f"record {name}: diagnosis code {code!r} is malformed")
    if sex is not None and ("\n" in sex or not sex.strip()):
        raise ValueError(f"record {name}: sex {sex!r} is malformed")
    if age is not None and not (isinstance(age, (int, float, np.number))):
        raise ValueError(f"record {name}: age must be a number or None; got {age!r}")

    digital = digitize(signal, gain, baseline, name=name, max_clipped_fraction=max_clipped_fraction)
    header = format_header(
        name,
        digital,
        float(fs),
        leads,
        gain=gain,
        baseline=baseline,
        age=age,
        sex=sex,
        dx=codes,
        date=date,
    )
    from scipy.io import savemat  # scipy.io is slow to import; only writers need it

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    savemat(buffer, {"val": digital}, format="4")
    atomic_write_bytes(folder / f"{name}.mat", buffer.getvalue())
    header_path = folder / f"{name}.hea"
    atomic_write_text(header_path, header)
    return header_path
