"""Myocardial infarction beats: MI records against healthy controls, lead II.

Sources (any mix):

- Challenge-format folders (``.hea`` + ``.mat``): a record is **MI** when its ``#Dx`` holds an
  MI code of the Challenge's unscored table (``scoring/2020/dx_mapping_unscored.csv``):
  164865005 myocardial infarction, 164867002 old MI, 57054005 acute MI, 54329005 anterior MI
  (413844008 chronic myocardial ischemia is not an infarction and is left out); **healthy**
  when its only code is sinus rhythm 426783006. Other records are not used.
- Original PTB Diagnostic ECG Database folders (``s0010_re.hea`` + ``.dat``, searched
  recursively so ``patientNNN/`` sub-folders work): ``Reason for admission: Myocardial
  infarction`` -> MI, ``Healthy control`` -> healthy, other diagnoses not used.

Groups (never split between training and test): PTB-derived records (``S*`` of the Challenge
and the original PTB files) are grouped by age and sex as a patient proxy, because the Challenge
renamed PTB records without the patient number: in the kit's data S0001 is s0010_re signal for
signal (patient001, 81, female) and S0002/S0003 are the same patient. A healthy-labelled record
whose group holds an MI record is dropped (the kit's S0002, labelled sinus rhythm only, comes
from an MI patient, not from a healthy control). Other records group by the MANIFEST's
``identical_signal_group`` when a ``MANIFEST.csv`` sits beside them, else by record name.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from team_code.beats.extract import BeatSet, record_beats

#: SNOMED CT codes of myocardial infarction in the Challenge 2020 tables.
MI_CODES: frozenset[str] = frozenset({"164865005", "164867002", "57054005", "54329005"})
#: Sinus rhythm: a record whose only code this is counts as healthy.
HEALTHY_CODE = "426783006"
#: Label values of MI beats.
MI_CLASSES: tuple[str, ...] = ("healthy", "MI")


@dataclass(frozen=True)
class MIEntry:
    """One record chosen for the MI task, before its signal is read."""

    name: str  # record name
    path: Path  # header path
    label: int  # 1 = MI, 0 = healthy
    group: str  # patient/record group kept on one side of any split
    source: str  # "challenge" or "ptbdb"


def mi_label(codes: Sequence[str]) -> int | None:
    """1 for an MI record, 0 for sinus rhythm alone, None for records not used."""
    codes = {c for c in codes if c}
    if codes & MI_CODES:
        return 1
    if codes == {HEALTHY_CODE}:
        return 0
    return None


def _ptb_group(age, sex) -> str:
    age_text = "?" if age is None or (isinstance(age, float) and np.isnan(age)) else f"{age:g}"
    return f"ptb:{age_text}:{(sex or '?').lower()}"


def _manifest_groups(folder: Path) -> dict[str, str]:
    path = folder / "MANIFEST.csv"
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {
            row["record"]: row["identical_signal_group"]
            for row in csv.DictReader(handle)
            if row.get("identical_signal_group")
        }


def challenge_entries(folder: str | os.PathLike) -> list[MIEntry]:
    """MI and healthy records of a Challenge-format folder (see the module docstring)."""
    from team_code.data.records import find_records, read_header

    folder = Path(folder)
    groups = _manifest_groups(folder)
    entries = []
    for path in find_records(folder):
        header = read_header(path)
        label = mi_label(header.labels)
        if label is None:
            continue
        if re.fullmatch(r"S\d+", header.name):
            group = _ptb_group(header.age, header.sex)
        else:
            group = groups.get(header.name, header.name)
        entries.append(MIEntry(header.name, Path(path), label, group, "challenge"))
    return entries


def _ptb_comment(comments: Sequence[str], key: str) -> str | None:
    for line in comments:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == key:
            return value.strip()
    return None


def ptbdb_entries(folder: str | os.PathLike) -> list[MIEntry]:
    """MI and healthy-control records of an original-format PTB folder (recursive)."""
    import wfdb

    folder = Path(folder)
    entries = []
    for path in sorted(folder.rglob("*.hea")):
        header = wfdb.rdheader(str(path.with_suffix("")))
        comments = header.comments or []
        reason = (_ptb_comment(comments, "reason for admission") or "").lower()
        if "myocardial infarction" in reason:
            label = 1
        elif "healthy control" in reason:
            label = 0
        else:
            continue
        age_text = _ptb_comment(comments, "age")
        try:
            age = float(age_text) if age_text else None
        except ValueError:
            age = None
        sex = _ptb_comment(comments, "sex")
        entries.append(MIEntry(path.stem, path, label, _ptb_group(age, sex), "ptbdb"))
    return entries


def drop_conflicts(entries: Sequence[MIEntry]) -> list[MIEntry]:
    """Healthy entries whose group also holds an MI entry are dropped."""
    mi_groups = {e.group for e in entries if e.label == 1}
    return [e for e in entries if not (e.label == 0 and e.group in mi_groups)]


def is_ptbdb_folder(folder: str | os.PathLike) -> bool:
    """True when a folder (recursively) holds original-format PTB headers (``.dat`` signals)."""
    return any(p.with_suffix(".dat").exists() for p in Path(folder).rglob("s*.hea"))


def find_entries(folders: Sequence[str | os.PathLike]) -> list[MIEntry]:
    """MI/healthy entries of several folders, each read as PTB or Challenge format."""
    entries: list[MIEntry] = []
    for folder in folders:
        if is_ptbdb_folder(folder):
            entries.extend(ptbdb_entries(folder))
        else:
            entries.extend(challenge_entries(folder))
    return drop_conflicts(entries)


def read_lead_signals(entry: MIEntry) -> tuple[np.ndarray, float, tuple[str, ...]]:
    """The 12 standard leads of an entry in mV (n_leads, n_samples), fs and lead names."""
    if entry.source == "ptbdb":
        import wfdb

        from team_code.data.records import STANDARD_LEADS, canonical_lead

        record = wfdb.rdrecord(str(entry.path.with_suffix("")))
        names = [canonical_lead(n) for n in record.sig_name]
        keep = [i for i, n in enumerate(names) if n in STANDARD_LEADS]
        return record.p_signal[:, keep].T, float(record.fs), tuple(names[i] for i in keep)
    from team_code.data.records import load_record

    record = load_record(entry.path)
    return record.signal, record.fs, record.leads


def mi_beats(
    entries: Sequence[MIEntry],
    method: str = "kachuee2018",
    config=None,
    max_per_record: int = 0,
) -> BeatSet:
    """Lead II beats of every entry, labelled with the entry's MI label (R peaks from
    ``qrs.detect`` on all leads). ``max_per_record`` > 0 keeps that many beats per record,
    evenly spaced, so that the long PTB records (115 s) do not outweigh the 10-s ones."""
    sets = []
    for entry in entries:
        signal, fs, leads = read_lead_signals(entry)
        beats, r_used, _ = record_beats(signal, fs, leads, method, config)
        if max_per_record and len(beats) > max_per_record:
            keep = np.unique(np.linspace(0, len(beats) - 1, max_per_record).round().astype(int))
            beats, r_used = beats[keep], r_used[keep]
        n = len(beats)
        sets.append(
            BeatSet(
                x=beats,
                y=np.full(n, entry.label, dtype=np.int64),
                record=np.full(n, entry.name),
                group=np.full(n, entry.group),
                sample=r_used.astype(np.int64),
                method=method,
            )
        )
    if not sets:
        raise ValueError("no MI or healthy records found")
    return BeatSet.concat(sets)
