"""Reading Challenge records: a WFDB header (``.hea``) plus a MATLAB v4 signal file (``.mat``).

One reader for every header dialect found in the real releases:

- 2020: ``A0001 12 500 7500 05-Feb-2020 11:39:16`` (a date that ``wfdb.rdheader`` rejects),
  ``A0001.mat 16+24 1000/mV 16 0 28 -1716 0 I``, ``#Dx: 59118001``;
- Georgia 2020: the signal file name in the record line (``E00015.mat 12 500 ...``),
  gains such as ``4880/mV``;
- PTB and PTB-XL: lower-case units (``1000/mv``);
- 2021: no date, ``16x1+24 1000.0(0)/mV`` (baseline in parentheses), ``# Dx:`` with a space;
- defects left as found: a code listed twice, an empty code between commas, ``Age: NaN`` or
  ``Unknown``, stray non-UTF-8 bytes in comments.

A record that cannot be read raises :class:`RecordError`, whose message names the record and
the problem. Signals are returned in millivolts as ``(digital - baseline) / gain``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# A record's source (``HR00001`` -> ``HR``, ``LU0001`` -> ``LU``): the scorer's one definition,
# for leave-one-source-out and per-source scores alike.
from evaluation.metrics import record_source  # noqa: F401

#: Canonical spelling of the twelve standard leads, in the Challenge's order.
STANDARD_LEADS: tuple[str, ...] = (
    "I",
    "II",
    "III",
    "aVR",
    "aVL",
    "aVF",
    "V1",
    "V2",
    "V3",
    "V4",
    "V5",
    "V6",
)
_CANONICAL = {lead.lower(): lead for lead in STANDARD_LEADS}
#: Einthoven's leads as French, Spanish and Portuguese conventions write them (DI, DII, DIII;
#: D1, D2, D3), as some hospitals' exports and Brazilian datasets label them.
_CANONICAL.update({"di": "I", "dii": "II", "diii": "III", "d1": "I", "d2": "II", "d3": "III"})

#: Physical units accepted in a gain field, with their factor to millivolts.
_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "v": 1e3, "nv": 1e-6}

#: Sampling frequencies an ECG can be analysed at; outside them a record is refused.
MIN_FS_HZ = 50.0
MAX_FS_HZ = 20_000.0

_GAIN_RE = re.compile(r"^(?P<gain>[^(/]+)(?:\((?P<baseline>[^)]*)\))?(?:/(?P<units>.+))?$")


#: The largest magnitude a lead may reach in millivolts after the header's gain and baseline:
#: ECG amplifiers span about +-5 to +-40 mV; more means a wrong gain or baseline (an ADC
#: offset of 1e9 read as 1e6 mV), never a heart.
MAX_ABS_MV = 1000.0


class RecordError(ValueError):
    """A record that cannot be read; the message names the record and the problem."""

    def __init__(self, record: str, problem: str):
        super().__init__(f"record {record}: {problem}")
        self.record = record
        self.problem = problem


#: A leading word "lead" (``Lead I``, ``LEAD_II``, ``lead-V1``), and the first word of a
#: description followed only by a comment, a parenthesis or stray non-ASCII bytes (``V6 #
#: chest``, ``II (rhythm)``, ``V6`` and a byte of another encoding); ``aVR inverted`` or
#: ``V1-V2`` say something else and stay as they are.
_LEAD_PREFIX = re.compile(r"^lead[\s_\-:.]*")
_FIRST_WORD = re.compile(r"^([a-z0-9]+)(?:\s*$|\s*#.*$|\s*\(.*\)\s*$|[^\x00-\x7f].*$)")


def canonical_lead(name: str) -> str:
    """Return the canonical spelling of a lead name (``avr`` -> ``aVR``, ``DII`` -> ``II``,
    ``Lead I`` -> ``I``, ``V6 # chest`` -> ``V6``); others unchanged. A name that begins with
    anything but a letter or digit stays as it is (``-aVR``, Cabrera's inverted aVR, is not
    aVR), and so does one whose words go on (``aVR inverted``)."""
    text = name.strip()
    key = text.lower()
    if key in _CANONICAL:
        return _CANONICAL[key]
    word = _FIRST_WORD.match(_LEAD_PREFIX.sub("", key))
    if word and word.group(1) in _CANONICAL:
        return _CANONICAL[word.group(1)]
    return text


@dataclass(frozen=True)
class Header:
    """What a header says, before the signal file is read."""

    name: str  # record name (the header file's stem)
    path: Path  # the header file
    n_leads: int  # number of signals declared in the record line
    fs: float  # sampling frequency in Hz
    n_samples: int | None  # samples per signal declared in the record line (None if absent)
    signal_file: str  # signal file name, relative to the header's folder
    leads: tuple[str, ...]  # lead names, canonical spelling, in file order
    gains: tuple[float, ...]  # ADC units per millivolt, one per lead
    baselines: tuple[float, ...]  # ADC value of 0 mV, one per lead
    age: float | None  # years; None when missing, NaN or Unknown
    sex: str | None  # "Male", "Female" or None
    labels: tuple[str, ...]  # #Dx SNOMED CT codes, duplicates and empty codes removed
    comments: dict[str, str] = field(default_factory=dict)  # every "#Key: value" comment


@dataclass(frozen=True)
class Record:
    """One recording in physical units, the one layout every classifier sees."""

    name: str  # record name
    signal: np.ndarray  # float32 (n_leads, n_samples), millivolts
    fs: float  # sampling frequency in Hz
    leads: tuple[str, ...]  # lead names (canonical spelling), one per row of ``signal``
    age: float | None = None  # years; None when unknown
    sex: str | None = None  # "Male", "Female" or None
    labels: tuple[str, ...] = ()  # SNOMED CT codes from #Dx (equivalents not merged)

    @property
    def n_samples(self) -> int:
        """Samples per lead."""
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return self.n_samples / self.fs

    def lead(self, name: str) -> np.ndarray:
        """The samples of one lead, found by name in any order (``avr`` finds ``aVR``)."""
        wanted = canonical_lead(name)
        try:
            return self.signal[self.leads.index(wanted)]
        except ValueError:
            raise RecordError(
                self.name, f"has no lead {name!r} (leads: {', '.join(self.leads)})"
            ) from None

    def select_leads(self, names: Sequence[str] = STANDARD_LEADS) -> np.ndarray:
        """A (len(names), n_samples) array with the leads in the order asked for."""
        return np.stack([self.lead(n) for n in names])


# --------------------------------------------------------------------------------------------
# Header parsing


def _parse_float(text: str, record: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RecordError(record, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RecordError(record, f"{what} {text!r} is not finite")
    return value


def _parse_age(text: str) -> float | None:
    try:
        age = float(text)
    except ValueError:
        return None
    return age if math.isfinite(age) and age >= 0 else None


def _parse_sex(text: str) -> str | None:
    value = text.strip().lower()
    if value in ("male", "m"):
        return "Male"
    if value in ("female", "f"):
        return "Female"
    return None


def parse_dx(text: str) -> tuple[str, ...]:
    """Split a ``#Dx`` value into codes: stripped, empty codes and repeats dropped, in order."""
    codes: list[str] = []
    for code in text.split(","):
        code = code.strip()
        if code and code not in codes:
            codes.append(code)
    return tuple(codes)


def _parse_signal_line(line: str, record: str, index: int) -> tuple[str, float, float, str]:
    """Return (file name, gain per mV, baseline, lead name) of one signal line."""
    fields = line.split()
    if len(fields) < 3:
        raise RecordError(record, f"signal line {index + 1} is incomplete: {line.strip()!r}")
    file_name = fields[0]
    match = _GAIN_RE.match(fields[2])
    if match is None:
        raise RecordError(record, f"signal line {index + 1} has an unreadable gain {fields[2]!r}")
    gain = _parse_float(match["gain"], record, f"gain of signal {index + 1}")
    if gain <= 0:
        raise RecordError(record, f"gain of signal {index + 1} is {gain:g}; it must be positive")
    units = (match["units"] or "mV").strip().lower()
    if units not in _UNIT_TO_MV:
        raise RecordError(record, f"signal {index + 1} has unknown units {match['units']!r}")
    # Gain is ADC units per physical unit; convert to ADC units per millivolt.
    gain_per_mv = gain / _UNIT_TO_MV[units]
    if match["baseline"] is not None and match["baseline"].strip():
        baseline = _parse_float(match["baseline"], record, f"baseline of signal {index + 1}")
    elif len(fields) > 4:
        baseline = _parse_float(fields[4], record, f"ADC zero of signal {index + 1}")
    else:
        baseline = 0.0
    lead = canonical_lead(" ".join(fields[8:])) if len(fields) > 8 else f"lead{index + 1}"
    return file_name, gain_per_mv, baseline, lead


def _check_signal_file(file_name: str, record: str) -> str:
    """Refuse a signal file name that could point outside the record's folder."""
    candidate = file_name.replace("\\", "/")
    if (
        not candidate
        or candidate.startswith("/")
        or re.match(r"^[A-Za-z]:", candidate)
        or "/" in candidate
        or candidate in (".", "..")
    ):
        raise RecordError(
            record, f"signal file name {file_name!r} points outside the record's folder"
        )
    return candidate


def read_header(path: str | os.PathLike) -> Header:
    """Parse a header file in any of the Challenge dialects."""
    path = Path(path)
    if path.suffix.lower() != ".hea":
        path = path.with_name(path.name + ".hea")
    record = path.stem
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise RecordError(record, f"header {path} cannot be read ({error.strerror})") from None
    return parse_header(_header_text(raw), record, path)


def _header_text(raw: bytes) -> str:
    """A header's text: UTF-8 (a byte-order mark dropped), or UTF-16 where it starts with
    UTF-16's byte-order mark (as some Windows editors save text); undecodable bytes replaced."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    return raw.decode("utf-8", errors="replace").removeprefix("\ufeff")


def parse_header(text: str, record: str, path: Path) -> Header:
    """Parse the text of a header (any Challenge dialect) of record ``record``; ``path`` is
    where the signal file is looked for (its folder) and what the header is known by."""
    lines = [line.strip() for line in text.splitlines()]
    body = [line for line in lines if line and not line.startswith("#")]
    comments: dict[str, str] = {}
    for line in lines:
        if line.startswith("#"):
            key, sep, value = line.lstrip("#").partition(":")
            if sep:
                comments.setdefault(key.strip().lower(), value.strip())
    if not body:
        raise RecordError(record, "header is empty")
    fields = body[0].split()
    if len(fields) < 3:
        lacks = "the sampling frequency" if len(fields) == 2 else "the number of signals and fs"
        # (WFDB would assume 250 Hz; an ECG read at a guessed rate is refused instead)
        raise RecordError(record, f"record line {body[0]!r} lacks {lacks}")
    try:
        n_leads = int(fields[1])
    except ValueError:
        raise RecordError(record, f"number of signals {fields[1]!r} is not an integer") from None
    # fs may carry a counter frequency: "500/1000(0)"; the sampling frequency comes first.
    fs = _parse_float(fields[2].split("/")[0], record, "sampling frequency")
    if fs <= 0:
        raise RecordError(record, f"sampling frequency {fs:g} Hz is not positive")
    if not MIN_FS_HZ <= fs <= MAX_FS_HZ:
        raise RecordError(
            record,
            f"sampling frequency {fs:g} Hz is outside the {MIN_FS_HZ:g}-{MAX_FS_HZ:g} Hz an ECG "
            "can be analysed at",
        )
    n_samples = None
    if len(fields) > 3:
        try:
            n_samples = int(fields[3])
        except ValueError:
            raise RecordError(record, f"sample count {fields[3]!r} is not an integer") from None
    if n_leads <= 0:
        raise RecordError(record, f"header declares {n_leads} signals")
    signal_lines = body[1:]
    if len(signal_lines) != n_leads:
        raise RecordError(
            record, f"header declares {n_leads} signals but has {len(signal_lines)} signal lines"
        )
    parsed = [_parse_signal_line(line, record, i) for i, line in enumerate(signal_lines)]
    leads = [p[3] for p in parsed]
    twice = sorted({lead for lead in leads if leads.count(lead) > 1})
    if twice:
        raise RecordError(
            record,
            f"header names lead(s) {', '.join(twice)} more than once (leads: {', '.join(leads)})",
        )
    files = {p[0] for p in parsed}
    if len(files) != 1:
        raise RecordError(record, f"signals are spread over several files: {sorted(files)}")
    signal_file = _check_signal_file(parsed[0][0], record)
    dx = comments.get("dx", "")
    return Header(
        name=record,
        path=path,
        n_leads=n_leads,
        fs=fs,
        n_samples=n_samples,
        signal_file=signal_file,
        leads=tuple(p[3] for p in parsed),
        gains=tuple(p[1] for p in parsed),
        baselines=tuple(p[2] for p in parsed),
        age=_parse_age(comments.get("age", "")),
        sex=_parse_sex(comments.get("sex", "")),
        labels=parse_dx(dx),
        comments=comments,
    )


# --------------------------------------------------------------------------------------------
# Signal files


def _unreadable(path: Path, record: str, error: Exception) -> RecordError:
    """The error for a signal file that scipy cannot read: what the file is where that is
    known (MATLAB v7.3, or not a ``.mat`` file at all), else the reader's own reason."""
    from scipy.io.matlab import matfile_version

    try:
        is_v73 = matfile_version(path)[0] == 2  # MATLAB v7.3 files are HDF5
    except Exception:  # not a MATLAB file: its version cannot be read either
        is_v73 = False
    if is_v73:
        what = "is MATLAB v7.3 (HDF5), which is not read"
    elif path.suffix.lower() != ".mat":
        what = "is not a MATLAB file (a WFDB .dat file, say)"
    else:
        return RecordError(record, f"signal file {path.name} is unreadable or truncated ({error})")
    return RecordError(
        record,
        f"signal file {path.name} {what}: the kit reads Challenge records, whose signals are in "
        "a MATLAB v4 .mat file, variable 'val' (MATLAB's save -v4, scipy's "
        "savemat(..., format='4'))",
    )


def _case_insensitive(path: Path) -> Path | None:
    """The one file in ``path``'s folder whose name equals ``path.name`` but for case (a
    record copied from a case-insensitive file system: ``A0001.MAT`` named ``A0001.mat`` in
    its header), else None."""
    try:
        matches = [
            p for p in path.parent.iterdir() if p.name.lower() == path.name.lower() and p.is_file()
        ]
    except OSError:
        return None
    return matches[0] if len(matches) == 1 else None


def _read_mat_v4(path: Path, record: str) -> np.ndarray:
    """Read the variable ``val`` of a MATLAB file (v4 in the releases; v5 accepted too); a
    name that differs from the file's only in case finds it."""
    from scipy.io import loadmat  # scipy.io is slow to import; only readers need it

    if not path.is_file():
        found = _case_insensitive(path)
        if found is None:
            raise RecordError(record, f"signal file {path.name} is missing")
        path = found
    if path.stat().st_size == 0:
        raise RecordError(record, f"signal file {path.name} is empty")
    try:
        content = loadmat(path)
    except Exception as error:  # scipy raises several types for corrupt or truncated files
        raise _unreadable(path, record, error) from None
    if "val" not in content:
        names = sorted(k for k in content if not k.startswith("__"))
        raise RecordError(record, f"signal file {path.name} has no variable 'val' (has {names})")
    return np.asarray(content["val"])


def load_record(path: str | os.PathLike) -> Record:
    """Load a record from its header path (``X.hea``) or record path without extension (``X``)."""
    header = read_header(path)
    digital = _read_mat_v4(header.path.parent / header.signal_file, header.name)
    return record_from_digital(header, digital)


def record_from_digital(header: Header, digital: np.ndarray) -> Record:
    """The record of ``header`` from its signal in digital units (``val``, leads x samples),
    checked against the header and converted to millivolts."""
    record = header.name
    digital = np.asarray(digital)
    if digital.ndim == 1:
        digital = digital[np.newaxis, :]
    if digital.ndim != 2:
        raise RecordError(record, f"signal has {digital.ndim} dimensions; expected 2")
    if digital.shape[0] != header.n_leads:
        raise RecordError(
            record,
            f"signal file has {digital.shape[0]} leads but the header declares {header.n_leads}",
        )
    if digital.shape[1] == 0:
        raise RecordError(record, "signal is empty (0 samples)")
    if header.n_samples is not None and header.n_samples not in (0, digital.shape[1]):
        raise RecordError(
            record,
            f"header declares {header.n_samples} samples but the signal file has "
            f"{digital.shape[1]} (truncated or mismatched file)",
        )
    kind = digital.dtype
    if not np.issubdtype(kind, np.number) or np.issubdtype(kind, np.complexfloating):
        raise RecordError(record, f"signal has non-numeric or complex type {kind}")
    if np.issubdtype(kind, np.unsignedinteger):
        # ADC samples are signed: an unsigned array has its negative samples wrapped around
        raise RecordError(record, f"signal has unsigned type {kind}; ADC samples are signed")
    digital = digital.astype(np.float64, copy=False)
    if not np.isfinite(digital).all():
        bad = int(np.count_nonzero(~np.isfinite(digital)))
        raise RecordError(record, f"signal has {bad} NaN or infinite samples")
    if not np.issubdtype(kind, np.integer) and not np.array_equal(digital, np.round(digital)):
        # samples already in physical units under a digital gain would read 1000 times small
        raise RecordError(
            record,
            "signal holds non-integer samples; the .mat must hold ADC units (digital "
            "samples), which the header's gain converts to millivolts",
        )
    gains = np.asarray(header.gains)[:, np.newaxis]
    baselines = np.asarray(header.baselines)[:, np.newaxis]
    with np.errstate(over="ignore"):  # an overflow is refused just below, with the record
        signal_mv = (digital - baselines) / gains
    if not np.isfinite(signal_mv).all():
        raise RecordError(record, "signal is not finite in millivolts (a gain too small)")
    largest = float(np.max(np.abs(signal_mv)))
    if largest > MAX_ABS_MV:
        raise RecordError(
            record,
            f"signal reaches {largest:.3g} mV (more than {MAX_ABS_MV:g} mV): a wrong gain or "
            "baseline in the header",
        )
    signal_mv = signal_mv.astype(np.float32)
    return Record(
        name=record,
        signal=signal_mv,
        fs=header.fs,
        leads=header.leads,
        age=header.age,
        sex=header.sex,
        labels=header.labels,
    )


def find_records(folder: str | os.PathLike) -> list[Path]:
    """Header files directly inside ``folder``, sorted by record name. Hidden files (a name
    starting with ``.``, such as the ``._NAME.hea`` that macOS writes beside ``NAME.hea``)
    are not records, as for the scorer and both years' organizers' scripts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist or is not a folder")
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.suffix.lower() == ".hea" and not p.name.startswith(".") and p.is_file()
        ),
        key=lambda p: p.stem,
    )


class RecordSet(Sequence[Record]):
    """A lazy, indexable list of records in a folder: headers parsed up front, signals on access.

    Classifiers take any ``Sequence[Record]``; this one keeps a 43,000-record training set out of
    memory and gives the labels without reading a signal file (``headers``).
    """

    def __init__(self, paths: Sequence[str | os.PathLike]):
        self.paths = [Path(p) for p in paths]
        self.headers = [read_header(p) for p in self.paths]

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> RecordSet:
        """Every record in a folder, sorted by name."""
        return cls(find_records(folder))

    @property
    def names(self) -> list[str]:
        """Record names, in order."""
        return [h.name for h in self.headers]

    @property
    def labels(self) -> list[tuple[str, ...]]:
        """The #Dx codes of every record, from the headers alone."""
        return [h.labels for h in self.headers]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            subset = RecordSet.__new__(RecordSet)
            subset.paths = self.paths[index]
            subset.headers = self.headers[index]
            return subset
        return load_record(self.paths[index])

    def subset(self, indices: Sequence[int]) -> RecordSet:
        """The records at the given positions, still lazy."""
        subset = RecordSet.__new__(RecordSet)
        subset.paths = [self.paths[i] for i in indices]
        subset.headers = [self.headers[i] for i in indices]
        return subset

    def __iter__(self) -> Iterator[Record]:
        for path in self.paths:
            yield load_record(path)
