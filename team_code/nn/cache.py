"""Network inputs cached per record, and a ``Dataset`` over them.

:func:`cached_inputs` gives the preprocessed input (an array) of every record through the
per-record cache of :mod:`team_code.record_cache`: one ``.npy`` (float16 or float32) per record
under ``CACHE/<kind>-<settings digest>/``, written once and read by every epoch, fold, member
and later training with the same preprocessing settings. Under ``torchrun``, rank 0 fills the
cache while the others wait, then all read it. With a cache folder the entries are then packed
into one memory-mapped array per folder (:mod:`team_code.nn.packed`; ``packed=False``: read
one file per row), so a batch is one indexing operation, not N file reads.
:class:`SignalDataset` reads a row, or (``dataset[indices]``, as the loaders of
:mod:`team_code.nn.training` ask) a whole batch at once, from the pack, a list or an array, so a
training holds one batch of inputs in memory, not the data set; :class:`ComputedRows`
preprocesses records as they are read (inference).

A record that fails to load or preprocess (or gives a non-finite input) is reported (``log``
gets name and problem) and left out: :attr:`PerRecord.kept` holds the positions of the records
that made it.

Where: the ``cache_dir`` argument, else ``$ECG_KIT_CACHE``; with neither, nothing is written
and the inputs are kept in memory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from team_code.data.records import Record, RecordSet
from team_code.nn import distributed
from team_code.nn.packed import PackedRows
from team_code.record_cache import (
    CACHE_ENV,
    PerRecord,
    array_format,
    default_cache_dir,
    per_record,
)

__all__ = [
    "CACHE_ENV",
    "ComputedRows",
    "PerRecord",
    "SignalDataset",
    "cached_inputs",
    "default_cache_dir",
]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cached_inputs(
    records: Sequence[Record],
    preprocess: Callable[[Record], np.ndarray],
    settings: Mapping,
    cache_dir: str | os.PathLike | None = None,
    dtype: str = "float16",
    num_workers: int = 0,
    code: Sequence[str] = (),
    progress: bool = False,
    desc: str = "preprocessing",
    log: Callable[[str], None] | None = _say,
    packed: bool = True,
) -> PerRecord:
    """Preprocessed inputs of ``records``, one cache entry per record.

    ``settings`` must name everything ``preprocess`` depends on (e.g. ``{"kind":
    "parallel_cnn/1", "fs_hz": 500, "length": 10000, ...}``) and ``code`` the modules whose
    source it runs: both are part of the key, with ``dtype``. ``num_workers > 1`` preprocesses
    in that many processes (``preprocess`` must then be picklable). With a cache folder and
    ``packed``, the items are rows of the folder's pack (:class:`~team_code.nn.packed.PackedRows`).
    """
    fmt = array_format(dtype)
    settings = {**settings, "dtype": dtype}
    shared = default_cache_dir(cache_dir) is not None and isinstance(records, RecordSet)
    if shared and not distributed.is_main():
        distributed.barrier()  # rank 0 fills the cache and the pack first
    stored = per_record(
        records,
        preprocess,
        settings,
        cache_dir,
        fmt=fmt,
        code=code,
        workers=num_workers,
        progress=progress and distributed.is_main(),
        desc=desc,
        log=log if distributed.is_main() else None,
        pack=packed,
    )
    if shared and distributed.is_main():
        distributed.barrier()
    return stored


class ComputedRows(Sequence):
    """``preprocess(records[i])`` computed when row ``i`` is read (nothing kept)."""

    def __init__(self, records: Sequence[Record], preprocess: Callable[[Record], np.ndarray]):
        self.records = records
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):  # type: ignore[override]
        return self.preprocess(self.records[int(index)])


class SignalDataset(Dataset):
    """A ``Dataset`` over rows of an array-like (an array, a list, :class:`PerRecord` items).

    Item ``i`` is ``(float32 tensor of rows[i], float32 tensor of targets[i])``, or the input
    tensor alone when ``targets`` is None. ``rows`` selects and orders rows (default: all);
    ``transform(array) -> array`` runs on the float32 row (augmentation, normalisation).

    ``dataset[indices]`` (a list or array of item positions) is the whole batch: inputs
    ``(len(indices), ...)`` read in one indexing operation where the rows are a
    :class:`~team_code.nn.packed.PackedRows` or an array, in the stored floating dtype
    (float16 from a float16 cache: the network converts on its device, which halves the bytes
    a batch moves; float32 where a ``transform`` ran), and the targets stacked.
    """

    #: Items may be read a batch at a time (the loaders of :mod:`team_code.nn.training`).
    batched = True

    def __init__(
        self,
        array: Sequence,
        targets: np.ndarray | None = None,
        rows: Sequence[int] | None = None,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.array = array
        self.rows = np.arange(len(array)) if rows is None else np.asarray(rows, dtype=int)
        self.targets = None if targets is None else np.asarray(targets, dtype=np.float32)
        if self.targets is not None and len(self.targets) != len(self.rows):
            raise ValueError(f"{len(self.targets)} targets for {len(self.rows)} rows")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if np.ndim(index) > 0:
            return self._batch(np.asarray(index, dtype=np.int64))
        x = np.asarray(self.array[self.rows[index]], dtype=np.float32)
        if self.transform is not None:
            x = self.transform(x)
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.targets is None:
            return x
        return x, torch.from_numpy(self.targets[index])

    def _batch(self, index: np.ndarray):
        rows = self.rows[index]
        if isinstance(self.array, (PackedRows, np.ndarray)):
            x = self.array.take(rows) if isinstance(self.array, PackedRows) else self.array[rows]
        else:
            x = np.stack([np.asarray(self.array[r]) for r in rows])
        if self.transform is not None:
            x = np.stack([self.transform(np.asarray(row, dtype=np.float32)) for row in x])
        if not np.issubdtype(x.dtype, np.floating) or x.dtype == np.float64:
            x = x.astype(np.float32)
        x = torch.from_numpy(np.ascontiguousarray(x))
        if self.targets is None:
            return x
        return x, torch.from_numpy(self.targets[index])
