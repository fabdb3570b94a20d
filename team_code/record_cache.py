"""Per-record caches: what one record gives is computed once and kept in one file.

A training reads its records many times: the hybrid fits every member on k-1 folds, scores
the held-out fold, then refits on all records, and every epoch reads every training record
again. What a record gives (a deep engine's network input, the rules' measurements) depends
only on the record and the settings, so it is computed once per record and stored as one file
per record::

    CACHE/<kind>-<digest>/settings.json            what the entries depend on
    CACHE/<kind>-<digest>/failures.json            records that gave no entry, and why
    CACHE/<kind>-<digest>/<record>-<stamp>.npy     one entry per record (.json for dicts)

``<digest>`` covers the settings, the kit's version and the source of the code that computes
the entries, the record reader's included, so changed settings or code make a new folder (and
a record that failed under the old code is tried again); ``<stamp>`` is a digest of the
record's header and signal files (resolved path, size, modification time), so a changed record
file gets a new entry. Any subset of the records (a fold, the refit, another member with the
same settings, a later training) reads the entries already there: a hybrid over N records
stores N entries of each kind whatever its number of folds, about N times one record's entry
in bytes (a ``.npy`` adds a 128-byte header). Entries are written whole (a temporary file
renamed into place), so an interrupted training leaves only whole entries, which the next one
reuses. A record that cannot be processed is reported, left out, and remembered in
``failures.json`` (not retried while its files are unchanged).

Where: the ``cache_dir`` argument (``train_model.py`` gives ``MODEL/.cache``, or
``$ECG_KIT_CACHE`` when set); ``"auto"`` or ``""``: ``$ECG_KIT_CACHE``, else none; ``"none"``:
none. Without a folder, or for records that are not a :class:`~team_code.data.records.RecordSet`
(records in memory have no files to stamp), the values are computed and kept in memory.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import io
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from team_code.data.records import Record, RecordError, RecordSet
from team_code.fileio import load_json, save_json

#: Environment variable naming the default cache folder.
CACHE_ENV = "ECG_KIT_CACHE"
#: Bump when the layout of a cache folder changes; old folders are then ignored.
CACHE_FORMAT = "ecg-kit-record-cache/1"


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


def folder_bytes(folder: str | os.PathLike) -> int:
    """Total size in bytes of the files under ``folder`` (0 when it does not exist)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _source_files(module: str) -> list[Path]:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"no module {module!r}")
    origin = Path(spec.origin)
    if spec.submodule_search_locations:  # a package: every module in it
        return sorted(origin.parent.glob("*.py"))
    return [origin]


#: Code every entry depends on whatever computes it: the reader, which turns the files into the
#: record every cached value is computed from (its lead names, units and refusals).
READER_CODE = ("team_code.data.records",)


def settings_digest(settings: Mapping, code: Sequence[str] = ()) -> str:
    """A digest of ``settings``, of the kit's version and of the source of the reader and of
    the modules (or packages) in ``code``."""
    from team_code import __version__

    digest = hashlib.sha256()
    version = [CACHE_FORMAT, __version__, dict(settings)]
    digest.update(json.dumps(version, sort_keys=True, default=str).encode())
    for module in (*READER_CODE, *code):
        for path in _source_files(module):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def record_stamp(path: Path, signal_file: str) -> str:
    """A digest of a record's header and signal files (resolved path, size, modification
    time); a file that cannot be read stamps as missing."""
    parts = []
    for file in (path, path.parent / signal_file):
        try:
            stat = file.stat()
            parts.append([str(file.resolve()), stat.st_size, stat.st_mtime_ns])
        except OSError:
            parts.append([str(file), -1, -1])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Entry formats


@dataclasses.dataclass(frozen=True)
class EntryFormat:
    """How one record's value is written, read and checked."""

    suffix: str  # file name suffix of an entry
    prepare: Callable[[Any], Any]  # computed value -> the value kept (e.g. a dtype)
    dumps: Callable[[Any], bytes]  # value -> file contents
    load: Callable[[Path], Any]  # file -> value
    problem: Callable[[Any], str | None]  # why a value cannot be kept (None: it can)


def _as_dtype(value, dtype: str) -> np.ndarray:
    return np.asarray(value).astype(dtype, copy=False)


def _dump_array(value) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value)
    return buffer.getvalue()


def _array_problem(value) -> str | None:
    return None if np.all(np.isfinite(value)) else "preprocessed signal is not finite"


def array_format(dtype: str = "float16") -> EntryFormat:
    """Arrays as ``.npy`` files of ``dtype``; a value with NaN or infinity is refused."""
    if dtype not in ("float16", "float32"):
        raise ValueError(f"cache dtype must be 'float16' or 'float32', not {dtype!r}")
    prepare = functools.partial(_as_dtype, dtype=dtype)
    return EntryFormat(".npy", prepare, _dump_array, np.load, _array_problem)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dump_json(value) -> bytes:
    return json.dumps(value, default=_jsonable).encode()  # NaN kept as NaN


def _load_json(path: Path):
    return json.loads(path.read_bytes())


def _no_problem(value) -> None:
    return None


def _same(value):
    return value


#: JSON values (dicts of numbers, strings, lists); NaN is kept.
JSON_FORMAT = EntryFormat(".json", _same, _dump_json, _load_json, _no_problem)


# --------------------------------------------------------------------------------------------
# Results


class StoredEntries(Sequence):
    """A read-only list over entry files, each read when indexed (nothing kept in memory)."""

    def __init__(self, paths: Sequence[Path], load: Callable[[Path], Any]):
        self.paths = list(paths)
        self.load = load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):  # type: ignore[override]
        return self.load(self.paths[int(index)])


@dataclasses.dataclass
class PerRecord:
    """The values of a record list; ``items[i]`` is the value of record ``kept[i]``."""

    items: Sequence  # a StoredEntries reader over the cache, or a list in memory
    kept: np.ndarray  # positions (into the records given) of the records that have a value
    failures: list[tuple[str, str]]  # (record, problem) of the records left out
    folder: Path | None  # the cache folder of these entries; None when kept in memory

    def __len__(self) -> int:
        return len(self.kept)

    def raise_failures(self, what: str) -> None:
        """Raise :class:`RecordError` naming the first record left out, if any."""
        if self.failures:
            name, problem = self.failures[0]
            raise RecordError(name, f"{what}: {problem}")


# --------------------------------------------------------------------------------------------
# Computing


_WORKER: dict = {}


def _init_worker(compute, fmt) -> None:
    _WORKER["compute"], _WORKER["fmt"] = compute, fmt


def _value(compute, fmt: EntryFormat, load: Callable[[], Record], name: str):
    """(value, None) or (None, (record, problem))."""
    try:
        value = compute(load())
    except RecordError as error:
        return None, (error.record, error.problem)
    except (OSError, ValueError, IndexError, ArithmeticError) as error:
        return None, (name, f"{type(error).__name__}: {error}")
    value = fmt.prepare(value)
    problem = fmt.problem(value)
    return (None, (name, problem)) if problem else (value, None)


def _write(target: Path, data: bytes) -> None:
    """Write an entry whole: a temporary file renamed into place (no fsync: a cache)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _store(compute, fmt: EntryFormat, path: Path, target: Path | None):
    """Compute one record's value from its files; write it to ``target`` when given (and
    return None for it), else return it. The second item is (record, problem) or None."""
    from team_code.data.records import load_record

    value, failure = _value(compute, fmt, functools.partial(load_record, path), path.stem)
    if failure is None and target is not None:
        _write(target, fmt.dumps(value))
        value = None
    return value, failure


def _store_in_worker(path: Path, target: Path | None):
    return _store(_WORKER["compute"], _WORKER["fmt"], path, target)


@contextlib.contextmanager
def _one_thread_children() -> Iterator[None]:
    """Child processes started inside see one compute thread each (they run side by side)."""
    from team_code.threads import THREAD_VARIABLES, environment

    with environment(dict.fromkeys(THREAD_VARIABLES, "1")):
        yield


def _map(compute, fmt, jobs: list[tuple[Path, Path | None]], workers: int) -> Iterator:
    """``_store`` over ``jobs`` in this process, or in ``workers`` fresh processes (spawned:
    safe whatever threads this process runs) when that pays."""
    if workers <= 1 or len(jobs) < 2 * workers:
        for path, target in jobs:
            yield _store(compute, fmt, path, target)
        return
    context = multiprocessing.get_context("spawn")
    with (
        _one_thread_children(),
        concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(compute, fmt)
        ) as pool,
    ):
        chunk = max(1, min(64, len(jobs) // (8 * workers)))
        yield from pool.map(_store_in_worker, *zip(*jobs), chunksize=chunk)


def _record_name(records: Sequence[Record], index: int) -> str:
    if isinstance(records, RecordSet):
        return records.headers[index].name
    return getattr(records[index], "name", f"#{index}")


def _in_memory(records, compute, fmt, workers, show, log) -> PerRecord:
    if isinstance(records, RecordSet):
        results = _map(compute, fmt, [(p, None) for p in records.paths], workers)
    else:
        load = records.__getitem__
        results = (
            _value(compute, fmt, functools.partial(load, i), _record_name(records, i))
            for i in range(len(records))
        )
    items, kept, failures = [], [], []
    for i, (value, failure) in enumerate(show(results, len(records))):
        if failure is not None:
            failures.append(failure)
            log(f"warning: record {failure[0]} left out: {failure[1]}")
            continue
        items.append(value)
        kept.append(i)
    return PerRecord(items, np.asarray(kept, dtype=int), failures, None)


def per_record(
    records: Sequence[Record],
    compute: Callable[[Record], Any],
    settings: Mapping,
    cache_dir: str | os.PathLike | None = None,
    *,
    fmt: EntryFormat = JSON_FORMAT,
    code: Sequence[str] = (),
    workers: int = 0,
    progress: bool = False,
    desc: str = "preprocessing",
    log: Callable[[str], None] | None = _say,
    pack: bool = False,
) -> PerRecord:
    """``compute(record)`` of every record, each computed once and kept in the cache.

    With ``pack`` (arrays of one shape), the entries are then kept in the folder's pack, one
    memory-mapped array (:func:`team_code.nn.packed.pack`), and the items are its rows.

    ``settings`` must name everything ``compute`` depends on besides the record (its
    ``"kind"`` names the cache folder) and ``code`` the modules or packages whose source it
    runs: both are part of the folder's digest. ``workers > 1`` computes in that many
    processes (``compute`` must then be picklable: a module-level function or a
    ``functools.partial`` of one). See the module docstring for where and how.
    """
    from team_code.progress import progress as show_progress

    log = log or (lambda message: None)

    def show(iterable, total):
        return show_progress(iterable, total, desc, "rec", progress)

    root = default_cache_dir(cache_dir)
    if root is None or not isinstance(records, RecordSet):
        return _in_memory(records, compute, fmt, workers, show, log)

    kind = str(settings.get("kind", "values")).replace("/", "-")
    folder = root / f"{kind}-{settings_digest(settings, code)}"
    folder.mkdir(parents=True, exist_ok=True)
    settings_file = folder / "settings.json"
    if not settings_file.is_file():
        save_json(settings_file, {"format": CACHE_FORMAT, "settings": settings, "code": code})
    targets = [
        folder / f"{header.name}-{record_stamp(path, header.signal_file)}{fmt.suffix}"
        for path, header in zip(records.paths, records.headers)
    ]
    failures_file = folder / "failures.json"
    known = load_json(failures_file) if failures_file.is_file() else {}
    packed: set[str] = set()
    if pack:
        from team_code.nn.packed import packed_entries

        packed = packed_entries(folder)

    def present(target: Path) -> bool:
        return target.name in packed or target.is_file()

    todo = [i for i, t in enumerate(targets) if t.name not in known and not present(t)]
    problems: dict[int, tuple[str, str]] = {}
    if todo:
        log(f"{desc}: computing {len(todo)} of {len(records)} records into {folder}")
        jobs = [(records.paths[i], targets[i]) for i in todo]
        results = show(_map(compute, fmt, jobs, workers), len(jobs))
        problems = {i: failure for i, (_, failure) in zip(todo, results) if failure is not None}
    if problems:
        known = load_json(failures_file) if failures_file.is_file() else {}
        known.update({targets[i].name: list(p) for i, p in problems.items()})
        save_json(failures_file, known)
    kept, failures = [], []
    for i, target in enumerate(targets):
        if target.name not in known and present(target):
            kept.append(i)
            continue
        name, problem = known.get(target.name, [_record_name(records, i), "no cache entry"])
        failures.append((name, problem))
        log(f"warning: record {name} left out: {problem}")
    if pack:
        from team_code.nn.packed import pack as pack_entries

        items = pack_entries(folder, [targets[i].name for i in kept], fmt.load)
    else:
        items = StoredEntries([targets[i] for i in kept], fmt.load)
    return PerRecord(items, np.asarray(kept, dtype=int), failures, folder)
