"""MIT-BIH Arrhythmia Database reader with the AAMI EC57 beat classes.

Works on any folder of MIT-BIH records (``<name>.hea``/``.dat``/``.atr``): the whole 48-record
database fetched with ``wfdb.dl_database("mitdb", DIR)`` or the 9 records of the kit's shared
data. Each record is read once with ``wfdb`` in physical units (mV).

AAMI EC57 mapping of the annotation symbols (ANSI/AAMI EC57:1998/2012; de Chazal et al. 2004):

- N (normal and bundle-branch): ``N L R e j``
- S (supraventricular ectopic): ``A a J S``
- V (ventricular ectopic): ``V E``
- F (fusion of ventricular and normal): ``F``
- Q (paced, fusion of paced and normal, unclassifiable): ``/ f Q``

Other annotation symbols (rhythm changes ``+``, noise ``~``, ``|``, ``!``, ``x`` ...) are not
beats of these five classes and are skipped.

The inter-patient division of de Chazal et al. (2004): DS1 for training, DS2 for testing, the
four paced records (102, 104, 107, 217) excluded.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The five AAMI classes, in the order used for integer labels everywhere in ``beats``.
AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

#: Annotation symbol -> AAMI class.
SYMBOL_TO_AAMI: dict[str, str] = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}

#: de Chazal et al. (2004) training records.
DS1: tuple[str, ...] = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
    "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230",
)  # fmt: skip
#: de Chazal et al. (2004) test records.
DS2: tuple[str, ...] = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
    "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234",
)  # fmt: skip
#: Records with a pacemaker, excluded from both sets by the AAMI recommendation.
PACED: tuple[str, ...] = ("102", "104", "107", "217")

#: Preferred lead for beat classification; records without it fall back to their first lead.
DEFAULT_LEAD = "MLII"


@dataclass(frozen=True)
class MitdbRecord:
    """One MIT-BIH record: one lead and its AAMI-labelled beats."""

    name: str  # record name, e.g. "100"
    fs: float  # sampling frequency in Hz (360 in MIT-BIH)
    lead: str  # name of the lead in signal_mv ("MLII" unless the record lacks it)
    signal_mv: np.ndarray  # float64 (n_samples,), physical units
    beat_samples: np.ndarray  # int64 (n_beats,), annotation sample of each AAMI beat
    beat_symbols: tuple[str, ...]  # original annotation symbol of each beat
    beat_labels: np.ndarray  # int64 (n_beats,), index into AAMI_CLASSES

    @property
    def aami(self) -> tuple[str, ...]:
        """The AAMI class letter of each beat."""
        return tuple(AAMI_CLASSES[i] for i in self.beat_labels)

    def counts(self) -> dict[str, int]:
        """Number of beats per AAMI class (classes with no beat omitted)."""
        counter = Counter(self.aami)
        return {c: counter[c] for c in AAMI_CLASSES if counter[c]}


def inter_patient_set(name: str) -> str:
    """``"DS1"``, ``"DS2"``, ``"paced"`` or ``"other"`` for a record name."""
    if name in PACED:
        return "paced"
    if name in DS1:
        return "DS1"
    if name in DS2:
        return "DS2"
    return "other"


def list_records(folder: str | os.PathLike) -> list[str]:
    """Names of the records of a folder that have a header, a signal and ``.atr`` annotations."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MIT-BIH folder {folder} does not exist")
    names = sorted(p.stem for p in folder.glob("*.hea") if (folder / f"{p.stem}.atr").exists())
    if not names:
        raise FileNotFoundError(
            f"no MIT-BIH records (<name>.hea + <name>.atr) in {folder}; fetch the database with "
            "wfdb.dl_database('mitdb', DIR)"
        )
    return names


def aami_label(symbol: str) -> int | None:
    """Index into :data:`AAMI_CLASSES` of an annotation symbol, or None when not a beat."""
    cls = SYMBOL_TO_AAMI.get(symbol)
    return None if cls is None else AAMI_CLASSES.index(cls)


def read_record(folder: str | os.PathLike, name: str, lead: str = DEFAULT_LEAD) -> MitdbRecord:
    """Read one record's lead (``lead``, else its first lead) and its AAMI beat annotations."""
    import wfdb

    path = str(Path(folder) / name)
    try:
        header = wfdb.rdheader(path)
        channel = header.sig_name.index(lead) if lead in header.sig_name else 0
        record = wfdb.rdrecord(path, channels=[channel], physical=True)
        annotation = wfdb.rdann(path, "atr")
    except (OSError, ValueError) as error:
        raise ValueError(f"MIT-BIH record {name} in {folder}: cannot read ({error})") from error
    signal_mv = np.asarray(record.p_signal[:, 0], dtype=np.float64)
    units = (record.units or ["mV"])[0]
    if units.lower() != "mv":
        raise ValueError(f"MIT-BIH record {name}: lead {record.sig_name[0]} is in {units}, not mV")
    samples, symbols, labels = [], [], []
    for sample, symbol in zip(annotation.sample, annotation.symbol):
        label = aami_label(symbol)
        if label is None or not 0 <= sample < signal_mv.size:
            continue
        samples.append(int(sample))
        symbols.append(symbol)
        labels.append(label)
    return MitdbRecord(
        name=name,
        fs=float(record.fs),
        lead=record.sig_name[0],
        signal_mv=signal_mv,
        beat_samples=np.asarray(samples, dtype=np.int64),
        beat_symbols=tuple(symbols),
        beat_labels=np.asarray(labels, dtype=np.int64),
    )


def read_database(
    folder: str | os.PathLike,
    records: tuple[str, ...] | None = None,
    include_paced: bool = False,
    lead: str = DEFAULT_LEAD,
) -> list[MitdbRecord]:
    """Read every record of a folder (or the named ones); paced records only when asked."""
    names = list_records(folder) if records is None else list(records)
    if not include_paced:
        names = [n for n in names if n not in PACED]
    return [read_record(folder, n, lead=lead) for n in names]
