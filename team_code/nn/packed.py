"""Packed caches: the per-record cache entries of one kind, in one memory-mapped array.

The per-record cache (:mod:`team_code.record_cache`) keeps one ``.npy`` per record; a batch
read from it is N file opens and reads. :func:`pack` copies the entries of a cache folder into
one ``.npy`` of shape ``(n_entries, *input_shape)`` (written with
``np.lib.format.open_memmap``, read back memory-mapped) beside a JSON index of the entry names
it holds, in order::

    CACHE/<kind>-<digest>/packed.json           {"format", "file", "entries": [...], ...}
    CACHE/<kind>-<digest>/packed-<digest>.pack  (n_entries, *input_shape), a .npy of the cache dtype

An entry's name carries the record's stamp (its files' resolved paths, sizes and modification
times), so the index says which version of each record the pack holds: a request whose entries
are all in the index reads the pack as it is; one with an entry the index lacks (a new record,
or a changed file: a new stamp) rebuilds it over the union of the request and the index's
entries, less those of the same records under an older stamp. The hybrid's folds and refit,
which ask for subsets of the same records, build it at most twice (the first fold's records,
then all). Once packed, an entry's own file is removed: the cache keeps each value once, and
:func:`team_code.record_cache.per_record` counts an entry the pack holds as present. A pack is
written whole (a temporary file, then renamed; the index last), so a reader sees the old pack
or the new one.

:class:`PackedRows` is a read-only sequence over rows of the pack (``rows[i]`` one array, as
the per-record entries give) with :meth:`PackedRows.take`: a batch of rows in one indexing
operation of the memory map. :class:`team_code.nn.cache.SignalDataset` uses it, and
:func:`batch_loader` makes a ``DataLoader`` whose sampler yields whole batches of indices.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from team_code.fileio import load_json, save_json

#: Bump when the layout of a pack changes; older packs are then rebuilt.
PACKED_FORMAT = "ecg-kit-packed/1"
INDEX_FILE = "packed.json"

__all__ = [
    "INDEX_FILE",
    "PACKED_FORMAT",
    "PackedRows",
    "pack",
    "packed_entries",
    "record_of_entry",
]


def record_of_entry(entry: str) -> str:
    """The record name of a per-record cache entry name (``<record>-<stamp>.<suffix>``)."""
    return Path(entry).stem.rsplit("-", 1)[0]


class PackedRows(Sequence):
    """Rows ``rows`` of a packed array (a memory map, or any array): ``self[i]`` is row
    ``rows[i]``; :meth:`take` a batch of them in one indexing operation."""

    def __init__(self, array: np.ndarray, rows: Sequence[int] | None = None):
        self.array = array
        self.rows = np.arange(len(array)) if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):  # type: ignore[override]
        return self.array[self.rows[int(index)]]

    def take(self, indices) -> np.ndarray:
        """Rows ``indices`` (positions into this sequence) as one array, ``(len(indices),
        *input_shape)`` in the stored dtype: a slice of the memory map where they are
        consecutive in the pack, else one fancy index."""
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        if rows.size and rows[-1] - rows[0] == rows.size - 1 and np.all(np.diff(rows) == 1):
            return np.array(self.array[rows[0] : rows[-1] + 1])
        return self.array[rows]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one row."""
        return tuple(self.array.shape[1:])


def _open(folder: Path) -> tuple[np.ndarray | None, list[str], str]:
    """The folder's pack (memory-mapped), the entries it holds and its file name; (None, [],
    "") when there is none or it does not match its index."""
    index_file = folder / INDEX_FILE
    try:
        index = load_json(index_file) if index_file.is_file() else {}
    except (OSError, ValueError):
        index = {}
    name, entries = str(index.get("file", "")), list(index.get("entries", ()))
    path = folder / name
    if index.get("format") != PACKED_FORMAT or not name or not path.is_file():
        return None, [], ""
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None, [], ""
    return (array, entries, name) if len(array) == len(entries) else (None, [], "")


def packed_entries(folder: str | os.PathLike) -> set[str]:
    """Names of the cache entries the folder's pack holds (their own files are removed once
    packed)."""
    return set(_open(Path(folder))[1])


def packed_rows_bytes(folder: str | os.PathLike) -> dict[str, int]:
    """Each entry the folder's pack holds, with the bytes of its row."""
    array, entries, _ = _open(Path(folder))
    if array is None:
        return {}
    row = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize
    return dict.fromkeys(entries, row)


def _write_pack(folder: Path, entries: list[str], read) -> tuple[str, np.ndarray]:
    """Write the entries' values (``read(entry)``) into a new pack file; returns its name and
    its memory map."""
    first = np.asarray(read(entries[0]))
    digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]
    name = f"packed-{digest}.pack"
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    try:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=first.dtype, shape=(len(entries), *first.shape)
        )
        for i, entry in enumerate(entries):
            value = first if i == 0 else np.asarray(read(entry))
            if value.shape != first.shape:
                raise ValueError(
                    f"record {record_of_entry(entry)}: cached input of shape {value.shape}, "
                    f"others {first.shape}; cannot pack {folder}"
                )
            out[i] = value
        out.flush()
        del out
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return name, np.load(folder / name, mmap_mode="r")


def pack(folder: str | os.PathLike, entries: Sequence[str], load=np.load) -> PackedRows:
    """The values of cache entries ``entries`` (names in ``folder``: held by its pack, or
    files) as rows of the folder's pack, in that order; the pack is rebuilt when it lacks any
    of them (see the module docstring), and the entry files it then holds are removed (the
    pack keeps each value once). ``load(path)`` reads one entry file."""
    folder = Path(folder)
    entries = list(entries)
    if not entries:
        return PackedRows(np.zeros((0,), dtype=np.float32))
    array, held, old = _open(folder)
    position = {entry: i for i, entry in enumerate(held)}
    if any(entry not in position for entry in entries):
        wanted = set(entries)
        records = {record_of_entry(e) for e in entries}
        kept = [e for e in held if e not in wanted and record_of_entry(e) not in records]
        union = kept + entries

        def read(entry: str):
            if entry in position:
                return array[position[entry]]
            return load(folder / entry)

        name, array = _write_pack(folder, union, read)
        save_json(folder / INDEX_FILE, {"format": PACKED_FORMAT, "file": name, "entries": union})
        for gone in [old] if old and old != name else []:
            with contextlib.suppress(OSError):
                (folder / gone).unlink()
        position = {entry: i for i, entry in enumerate(union)}
    for entry in entries:  # now in the pack
        with contextlib.suppress(OSError):
            (folder / entry).unlink()
    return PackedRows(array, [position[entry] for entry in entries])
