"""Reduced-lead copies of Challenge records, the way the 2021 Challenge tested its models.

    python -m team_code.data.leads SRC DST --leads 2          # the 2-lead set: I, II
    python -m team_code.data.leads SRC DST --leads I,II,V2    # any leads, in this order

The 2021 Challenge ("Will Two Do?") scored models on five lead sets, named here by their size:
12 (all), 6 (I, II, III, aVR, aVL, aVF), 4 (I, II, III, V2), 3 (I, II, V2) and 2 (I, II).

A copy keeps the source header as written, in its own dialect: the record line with the new
number of signals, the chosen leads' signal lines verbatim and in the order asked for (their
gain, baseline, first value and checksum still hold, since a lead's samples are unchanged),
and every comment line verbatim. The signal file gets the chosen rows of the source's ``val``
matrix, same type, as MATLAB v4 under the same name, which is what the ``16+24`` signal lines
describe for any number of leads. Both files are written atomically.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from team_code.data.records import (
    STANDARD_LEADS,
    RecordError,
    canonical_lead,
    find_records,
    load_record,
    read_header,
)
from team_code.fileio import atomic_write_bytes

#: The lead sets of the 2021 Challenge, by number of leads.
LEAD_SETS: dict[str, tuple[str, ...]] = {
    "12": STANDARD_LEADS,
    "6": ("I", "II", "III", "aVR", "aVL", "aVF"),
    "4": ("I", "II", "III", "V2"),
    "3": ("I", "II", "V2"),
    "2": ("I", "II"),
}

#: The limb leads that leads I and II determine, in the order :func:`limb_from_i_ii` gives.
DERIVED_LIMB_LEADS = ("III", "aVR", "aVL", "aVF")


def limb_from_i_ii(lead_i: np.ndarray, lead_ii: np.ndarray) -> np.ndarray:
    """Rows III, aVR, aVL, aVF from leads I and II (Einthoven: III = II - I; Goldberger:
    aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2)."""
    return np.stack(
        [
            lead_ii - lead_i,
            -(lead_i + lead_ii) / 2.0,
            lead_i - lead_ii / 2.0,
            lead_ii - lead_i / 2.0,
        ]
    )


def parse_leads(text: str) -> tuple[str, ...]:
    """A lead set from its name (``"2"`` ... ``"12"``) or comma-separated lead names.

    Names are spelt canonically (``avr`` -> ``aVR``); raises ``ValueError`` for an empty list
    or a lead named twice.
    """
    text = text.strip()
    if text in LEAD_SETS:
        return LEAD_SETS[text]
    leads = tuple(canonical_lead(name) for name in text.split(",") if name.strip())
    if not leads:
        raise ValueError(
            f"no leads in {text!r}: give lead names (I,II,V2) or a lead set "
            f"({', '.join(LEAD_SETS)})"
        )
    twice = sorted({lead for lead in leads if leads.count(lead) > 1})
    if twice:
        raise ValueError(f"lead(s) named twice in {text!r}: {', '.join(twice)}")
    return leads


def parse_lead_sets(text: str) -> list[tuple[str, ...]]:
    """``"12,6,2"`` (sizes) or ``"12;I,II,V2"`` (';'-separated sets) -> lead sets.

    Raises ``ValueError`` for a set given twice (the same leads, in any order or spelling).
    """
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if len(parts) == 1 and all(p.strip() in LEAD_SETS for p in parts[0].split(",")):
        parts = [p.strip() for p in parts[0].split(",")]
    sets = [parse_leads(p) for p in parts]
    seen: dict[frozenset[str], int] = {}
    for i, leads in enumerate(sets):
        earlier = seen.setdefault(frozenset(leads), i)
        if earlier != i:
            raise ValueError(
                f"--leads {text!r}: the lead set {', '.join(leads)} is given twice "
                f"(as {parts[earlier]!r} and {parts[i]!r})"
            )
    return sets


def _is_content(line: str) -> bool:
    """A record or signal line: the header reader's rule (not blank, not a comment)."""
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def reduced_header_text(text: str, record: str, rows: Sequence[int]) -> str:
    """The header ``text`` with only the signal lines ``rows`` (0-based, in that order).

    The record line's number of signals becomes ``len(rows)``; every other line is kept as
    written, line endings included.
    """
    lines = text.splitlines(keepends=True)
    content = [i for i, line in enumerate(lines) if _is_content(line)]
    if not content:
        raise RecordError(record, "header is empty")
    record_at, signal_at = content[0], content[1:]
    body = lines[record_at].rstrip("\r\n")
    ending = lines[record_at][len(body) :]
    fields = body.split()
    if len(fields) < 2:
        raise RecordError(record, f"record line {body!r} lacks the number of signals")
    fields[1] = str(len(rows))
    out: list[str] = []
    for i, line in enumerate(lines):
        if i == record_at:
            out.append(" ".join(fields) + ending)
        elif signal_at and i == signal_at[0]:
            chosen = [lines[signal_at[r]] for r in rows]
            if chosen and not chosen[-1].endswith(("\n", "\r")):
                chosen[-1] += "\n"  # the source's last line, now followed by others
            out.extend(chosen)
        elif i not in signal_at:
            out.append(line)
    return "".join(out)


def reduce_record(
    header_path: str | os.PathLike, out_dir: str | os.PathLike, leads: Sequence[str]
) -> Path:
    """Write a copy of one record with only ``leads`` (in that order) into ``out_dir``.

    Returns the new header's path. Raises ``RecordError`` naming the record when it cannot be
    read or lacks a lead, ``ValueError`` when ``out_dir`` is the record's own folder.
    """
    header = read_header(header_path)
    record = header.name
    leads = [canonical_lead(lead) for lead in leads]
    missing = [lead for lead in leads if lead not in header.leads]
    if missing:
        raise RecordError(
            record,
            f"has no lead {missing[0]!r} (leads: {', '.join(header.leads)}) for the lead set "
            f"{', '.join(leads)}",
        )
    out_dir = Path(out_dir)
    if out_dir.resolve() == header.path.parent.resolve():
        raise ValueError(f"record {record}: the copy would overwrite the source in {out_dir}")
    load_record(header.path)  # the whole record must read (signal file, shape, numbers)

    from scipy.io import loadmat, savemat  # scipy.io is slow to import; only files need it

    digital = np.asarray(loadmat(header.path.parent / header.signal_file)["val"])
    if digital.ndim == 1:
        digital = digital[np.newaxis, :]
    rows = [header.leads.index(lead) for lead in leads]
    raw = header.path.read_bytes().decode("utf-8", errors="surrogateescape")
    text = reduced_header_text(raw, record, rows)

    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    savemat(buffer, {"val": np.ascontiguousarray(digital[rows])}, format="4")
    atomic_write_bytes(out_dir / header.signal_file, buffer.getvalue())
    new_header = out_dir / header.path.name
    atomic_write_bytes(new_header, text.encode("utf-8", errors="surrogateescape"))
    return new_header


def get_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """Return the command-line parser (``prog`` names the command in usage lines)."""
    p = argparse.ArgumentParser(
        prog=prog or "python -m team_code.data.leads",
        description="Write reduced-lead copies of Challenge records (headers and signals).",
    )
    p.add_argument("source", type=Path, help="folder of records <name>.hea + <name>.mat")
    p.add_argument("destination", type=Path, help="folder for the copies (made if absent)")
    p.add_argument(
        "--leads",
        required=True,
        help=f"a lead set ({', '.join(LEAD_SETS)}) or lead names in order, e.g. I,II,V2",
    )
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Copy every record of the source folder; returns the exit code (1 if any failed)."""
    args = get_parser(prog).parse_args(argv)
    try:
        leads = parse_leads(args.leads)
        headers = find_records(args.source)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    failed = 0
    for path in headers:
        try:
            reduce_record(path, args.destination, leads)
        except (RecordError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    print(
        f"{len(headers) - failed} of {len(headers)} records copied with leads "
        f"{', '.join(leads)} to {args.destination}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
