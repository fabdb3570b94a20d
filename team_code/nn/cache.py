"""Preprocessed signals cached on disk, so that epochs and runs never re-read or re-resample.

:func:`cached_signals` applies ``preprocess(record) -> np.ndarray`` (same shape for every record)
to each record once and keeps the results in one memory-mapped ``.npy`` (float16 or float32)
per record list and preprocessing key, beside a JSON sidecar (record names, failures,
settings). The file name is a hash of the settings and of the record list (each record's
header and signal file: path, size, modification time), so a changed record or setting makes a
new file, and a second epoch or run opens the same file without calling ``load_record``.
Files are written atomically (a temporary file renamed into place). Under ``torchrun``, rank 0
builds the file while the others wait, then all open it.

A record that fails to load or preprocess is reported (``log`` gets name and problem) and left
out: :attr:`CachedSignals.kept` holds the positions of the records that made it.

Where: the ``cache_dir`` argument, else ``$ECG_KIT_CACHE``; with neither, nothing is written
and the signals are kept in memory.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from team_code.data.records import Record, RecordError, RecordSet
from team_code.fileio import load_json, save_json
from team_code.nn import distributed

#: Bump when the file layout changes; old files are then ignored.
CACHE_FORMAT = "ecg-kit-signal-cache/1"
#: Environment variable naming the default cache folder.
CACHE_ENV = "ECG_KIT_CACHE"


@dataclass
class CachedSignals:
    """Preprocessed signals of a record list; rows of ``array`` follow ``kept``."""

    array: np.ndarray  # (len(kept), *shape), float16/float32; a read-only memmap when on disk
    kept: np.ndarray  # int positions (into the records given) of the rows of ``array``
    names: list[str]  # record names of the rows
    failures: list[tuple[str, str]]  # (record, problem) of the records left out
    path: Path | None  # the .npy file, or None when kept in memory

    def __len__(self) -> int:
        return len(self.kept)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Resolve a cache option: a folder; ``"none"``: None (in memory); ``""``, ``"auto"`` or
    None: ``$ECG_KIT_CACHE``, else None. ``train_model.py`` passes ``MODEL/.cache``."""
    option = str(cache_dir) if cache_dir is not None else ""
    if option.lower() == "none":
        return None
    if option and option.lower() != "auto":
        return Path(option).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else None


def _file_stamp(path: Path) -> list:
    try:
        stat = path.stat()
    except OSError:
        return [str(path), -1, -1]
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def cache_key(records: RecordSet, settings: Mapping, dtype: str) -> str:
    """A hash of the settings, the dtype and every record's header and signal file stamps."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps([CACHE_FORMAT, dict(settings), dtype], sort_keys=True, default=str).encode()
    )
    for path, header in zip(records.paths, records.headers):
        stamp = [header.name, _file_stamp(path), _file_stamp(path.parent / header.signal_file)]
        digest.update(json.dumps(stamp).encode())
    return digest.hexdigest()[:24]


# --------------------------------------------------------------------------------------------
# Building

_WORKER_STATE: dict = {}


def _init_worker(records, preprocess) -> None:
    torch.set_num_threads(1)
    _WORKER_STATE["records"] = records
    _WORKER_STATE["preprocess"] = preprocess


def _one(records, preprocess, index: int):
    """(array, None) or (None, (name, problem)) for one record."""
    name = _record_name(records, index)
    try:
        record = records[index]
        return np.asarray(preprocess(record)), None
    except RecordError as error:
        return None, (error.record, error.problem)
    except (OSError, ValueError, IndexError) as error:
        return None, (name, f"{type(error).__name__}: {error}")


def _one_in_worker(index: int):
    return _one(_WORKER_STATE["records"], _WORKER_STATE["preprocess"], index)


def _record_name(records, index: int) -> str:
    if isinstance(records, RecordSet):
        return records.headers[index].name
    try:
        return records[index].name
    except Exception:
        return f"#{index}"


def _results(records, preprocess, num_workers: int):
    if num_workers <= 0:
        for i in range(len(records)):
            yield _one(records, preprocess, i)
        return
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=num_workers, initializer=_init_worker, initargs=(records, preprocess)
    ) as pool:
        yield from pool.map(_one_in_worker, range(len(records)), chunksize=16)


def _build(records, preprocess, dtype, target: Path | None, progress: bool, log):
    """Fill an array (a memmap at ``target`` + tmp suffix when given); return it and metadata."""
    from team_code.progress import progress as show_progress

    array = None
    kept: list[int] = []
    failures: list[tuple[str, str]] = []
    shape = None
    tmp = None
    iterator = _results(records, preprocess["function"], preprocess["num_workers"])
    for i, (row, failure) in enumerate(
        show_progress(
            iterator, total=len(records), desc="preprocessing", unit="rec", enabled=progress
        )
    ):
        if failure is not None:
            failures.append(failure)
            log(f"warning: record {failure[0]} left out: {failure[1]}")
            continue
        if shape is None:
            shape = row.shape
            full = (len(records), *shape)
            if target is not None:
                tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.npy")
                array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=full)
            else:
                array = np.empty(full, dtype=dtype)
        elif row.shape != shape:
            problem = f"preprocessed shape {row.shape} differs from {shape}"
            failures.append((_record_name(records, i), problem))
            log(f"warning: record {_record_name(records, i)} left out: {problem}")
            continue
        if not np.all(np.isfinite(row)):
            failures.append((_record_name(records, i), "preprocessed signal is not finite"))
            continue
        array[len(kept)] = row
        kept.append(i)
    return array, kept, failures, shape, tmp


def cached_signals(
    records: Sequence[Record],
    preprocess: Callable[[Record], np.ndarray],
    settings: Mapping,
    cache_dir: str | os.PathLike | None = None,
    dtype: str = "float16",
    num_workers: int = 0,
    progress: bool = False,
    log: Callable[[str], None] | None = _say,
) -> CachedSignals:
    """Preprocessed signals of ``records``, from the cache when it holds them.

    ``settings`` must name everything ``preprocess`` depends on (e.g. ``{"kind":
    "parallel_cnn/1", "fs": 500, "length": 10000, "leads": [...]}``): it is part of the key.
    ``records`` as a :class:`RecordSet` are cached on disk under ``cache_dir`` (see
    :func:`default_cache_dir`); other sequences, or no cache folder, are preprocessed in
    memory. ``num_workers > 0`` preprocesses in that many processes (``preprocess`` must then
    be picklable: a module-level function or a ``functools.partial`` of one).
    """
    log = log or (lambda message: None)
    if dtype not in ("float16", "float32"):
        raise ValueError(f"cache dtype must be 'float16' or 'float32', not {dtype!r}")
    folder = default_cache_dir(cache_dir)
    job = {"function": preprocess, "num_workers": num_workers}
    if folder is None or not isinstance(records, RecordSet):
        array, kept, failures, _, _ = _build(records, job, dtype, None, progress, log)
        array = array[: len(kept)] if array is not None else np.zeros((0,), dtype=dtype)
        names = [_record_name(records, i) for i in kept]
        return CachedSignals(array, np.asarray(kept, dtype=int), names, failures, None)

    key = cache_key(records, settings, dtype)
    kind = str(settings.get("kind", "signals")).replace("/", "-")
    target = folder / f"{kind}-{key}.npy"
    sidecar = folder / f"{kind}-{key}.json"
    if distributed.is_main() and not (target.is_file() and sidecar.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        array, kept, failures, shape, tmp = _build(records, job, dtype, target, progress, log)
        if tmp is None:  # nothing loadable: an empty file records that
            tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, np.zeros((0,), dtype=dtype))
        else:
            array.flush()
            del array
        os.replace(tmp, target)
        save_json(
            sidecar,
            {
                "format": CACHE_FORMAT,
                "key": key,
                "settings": dict(settings),
                "dtype": dtype,
                "shape": list(shape) if shape is not None else None,
                "n_records": len(records),
                "kept": kept,
                "failures": [list(f) for f in failures],
            },
        )
        log(f"cached {len(kept)} preprocessed records in {target}")
    distributed.barrier()
    meta = load_json(sidecar)
    if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        raise ValueError(f"{sidecar} does not describe {target}")
    failures = [tuple(f) for f in meta["failures"]]
    for name, problem in failures:
        log(f"warning: record {name} left out: {problem}")
    kept = np.asarray(meta["kept"], dtype=int)
    full = np.load(target, mmap_mode="r")
    array = full[: len(kept)] if full.ndim > 1 else full
    names = [records.headers[i].name for i in kept]
    return CachedSignals(array, kept, names, failures, target)


class SignalDataset(Dataset):
    """A ``Dataset`` over rows of an array (e.g. :attr:`CachedSignals.array`).

    Item ``i`` is ``(float32 tensor of rows[i], float32 tensor of targets[i])``, or the input
    tensor alone when ``targets`` is None. ``rows`` selects and orders rows (default: all);
    ``transform(array) -> array`` runs on the float32 row (augmentation, normalisation).
    """

    def __init__(
        self,
        array: np.ndarray,
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

    def __getitem__(self, index: int):
        x = np.asarray(self.array[self.rows[index]], dtype=np.float32)
        if self.transform is not None:
            x = self.transform(x)
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.targets is None:
            return x
        return x, torch.from_numpy(self.targets[index])
