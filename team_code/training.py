"""Training: ``train(data, model)`` fits the chosen classifiers on every readable record of a
folder and writes a self-describing model folder (:mod:`team_code.model_folder`), one per lead
set when several are asked for.

A record that cannot be read is left out with a warning naming it and the reason. The options
and configs come from :mod:`team_code.options`; the run state (checkpoints in ``MODEL/.work``,
per-record caches in ``MODEL/.cache`` or ``$ECG_KIT_CACHE``) from :func:`run_context`; the
compute threads from :mod:`team_code.threads` (the cores, never the load), recorded in the
manifest with the data summary and the package versions.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from team_code import __version__, model_folder
from team_code.classifiers import registry
from team_code.context import RunContext, Task, is_main_process, say
from team_code.data.records import (
    STANDARD_LEADS,
    RecordError,
    RecordSet,
    find_records,
    load_record,
    record_source,
)
from team_code.model_folder import LEAD_SET_FOLDER
from team_code.options import DEFAULT_CLASSIFIERS, configure
from team_code.presets import choose_preset
from team_code.threads import (
    available_cores,
    busy_cores,
    requested_threads,
    training_threads,
    using_threads,
)


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a model depends on."""
    import importlib.metadata as md

    versions = {"python": platform.python_version(), "team_code": __version__}
    for package in ("numpy", "scipy", "torch", "safetensors", "wfdb", "PyWavelets"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


def scan_records(data_dir: str | os.PathLike) -> tuple[RecordSet, list[tuple[str, str]]]:
    """Every readable record of a folder, and (name, reason) for those that are not."""
    good, failures = [], []
    for path in find_records(data_dir):
        try:
            load_record(path)
        except RecordError as error:
            failures.append((error.record, error.problem))
            continue
        good.append(path)
    return RecordSet(good), failures


def data_summary(records: RecordSet, task: Task) -> dict:
    """Counts that describe a training set for the manifest."""
    classes = task.classes
    truth = task.truth(records.labels)
    return {
        "n_records": len(records),
        "n_with_scored_label": int(truth.any(axis=1).sum()),
        "by_source": dict(sorted(Counter(record_source(n) for n in records.names).items())),
        "fs_hz": {str(k): v for k, v in sorted(Counter(h.fs for h in records.headers).items())},
        "class_counts": {task.abbreviation(c): int(n) for c, n in zip(classes, truth.sum(axis=0))},
    }


def _default_cache_dir(model_dir: Path) -> str:
    """Where per-record caches go: ``$ECG_KIT_CACHE``, else ``MODEL/.cache``."""
    return os.environ.get("ECG_KIT_CACHE") or str(model_dir / ".cache")


#: What ``train`` does with ``MODEL/.cache`` after a successful training.
CACHE_CHOICES = ("remove", "keep")


def _finish_cache(model_dir: Path, cache: str, log: Callable[[str], None]) -> None:
    """Say how big the training's cache is; remove ``MODEL/.cache`` unless ``cache`` is
    ``"keep"``. A ``$ECG_KIT_CACHE`` folder is the user's, shared by trainings: always kept."""
    from team_code.record_cache import CACHE_ENV, folder_bytes

    env = os.environ.get(CACHE_ENV)
    folder = Path(env) if env else model_dir / ".cache"
    if not folder.is_dir():
        return
    size = f"{folder_bytes(folder) / 1e9:.2f} GB"
    if env or cache == "keep":
        log(f"cache: {size} in {folder}, kept" + (f" (${CACHE_ENV})" if env else ""))
        return
    shutil.rmtree(folder, ignore_errors=True)
    log(f"cache: {size} in {folder}, removed (train_model.py --cache keep keeps it)")


def run_context(
    model_dir: Path,
    resume: bool = False,
    progress: bool = True,
    device: str = "auto",
    workers: int = 0,
    log: Callable[[str], None] = say,
    loader_workers: int = 0,
) -> RunContext:
    """The run context of a training into ``model_dir``: caches in ``MODEL/.cache`` (or
    ``$ECG_KIT_CACHE``), checkpoints under ``MODEL/.work`` (each classifier gets a child)."""
    return RunContext(
        device=device,
        workers=workers,
        loader_workers=loader_workers,
        cache_dir=_default_cache_dir(model_dir),
        workdir=str(model_dir / ".work"),
        resume=resume,
        progress=progress,
        log=log,
    )


def train(
    data_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    classifiers: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, str]] | None = None,
    log: Callable[[str], None] = say,
    resume: bool = False,
    preset: str | None = None,
    progress: bool = True,
    cache: str = "remove",
    table: str = "2020",
    lead_sets: Sequence[Sequence[str]] | None = None,
    device: str = "auto",
    workers: int = 0,
    loader_workers: int = 0,
    threads: int | None = None,
) -> dict:
    """Fit each classifier on the records of ``data_dir`` and save them under ``model_dir``.

    Returns the manifest. Unreadable records are left out with a warning naming each one.
    ``table`` (``"2020"``, ``"2021"`` or a ``weights.csv``) and each lead set of ``lead_sets``
    (twelve leads by default) make a :class:`~team_code.context.Task`; with several lead sets,
    one model per set is trained into ``MODEL/leads-<set>`` (each a model folder of its own)
    and ``MODEL/manifest.json`` lists them, largest first. Deep models checkpoint every epoch
    under ``MODEL/.work/<name>``; ``resume=True`` continues an interrupted training from
    there. ``preset`` fills options (:mod:`team_code.presets`; ``options`` win; None: the
    device's, or ``$ECG_KIT_PRESET``'s, logged with the reason);
    ``progress=False`` silences progress output. Per-record caches (network inputs,
    measurements) go to ``MODEL/.cache`` (or ``$ECG_KIT_CACHE``); ``cache="remove"`` deletes
    ``MODEL/.cache`` once the model is saved, ``"keep"`` keeps it for the next training.

    The model is built in a temporary sibling of ``model_dir`` and moved into place only when
    complete (:mod:`team_code.model_folder`): a training that fails or is killed leaves the
    previous model whole, and its checkpoints in ``MODEL/.work`` for ``resume``. An existing
    ``model_dir`` must be a model folder (or empty): it is replaced as a whole. Only
    ``torchrun``'s rank 0 writes. Each process computes with ``threads`` threads (default:
    ``$OMP_NUM_THREADS``, else :func:`team_code.threads.training_threads`, never the load),
    recorded in the manifest.
    """
    if cache not in CACHE_CHOICES:
        raise ValueError(f"cache must be one of {CACHE_CHOICES}, not {cache!r}")
    if loader_workers < 0:
        raise ValueError(f"loader_workers must be 0 or more, not {loader_workers}")
    names = list(classifiers or DEFAULT_CLASSIFIERS)
    preset = choose_preset(preset, device, log)
    configs = configure(names, options, preset)
    lead_sets = [tuple(leads) for leads in (lead_sets or [STANDARD_LEADS])]
    tasks = sorted((Task(table, leads) for leads in lead_sets), key=lambda t: -len(t.leads))
    if len({t.leads for t in tasks}) != len(tasks):
        raise ValueError("a lead set is given twice")

    model_dir = Path(model_dir)
    main = is_main_process()
    if main:
        model_folder.check_writable(model_dir)
    records, failures = scan_records(data_dir)
    for record, problem in failures:
        log(f"warning: record {record} left out of training: {problem}")
    if len(records) == 0:
        raise ValueError(f"no readable records in {data_dir}")
    log(f"training on {len(records)} records ({len(failures)} unreadable) from {data_dir}")
    n_threads = _training_threads(threads, log)
    created = not model_dir.exists()
    model_dir.mkdir(parents=True, exist_ok=True)  # the run state's home (.work, .cache)
    ctx = run_context(model_dir, resume, progress, device, workers, log, loader_workers)
    common = {
        "preset": preset,
        "versions": package_versions(),
        "threads": n_threads,
        "training_data": {
            "folder": str(Path(data_dir).resolve()),
            "unreadable": [{"record": r, "problem": p} for r, p in failures],
        },
    }
    staging = model_folder.begin(model_dir) if main else None
    try:
        with using_threads(n_threads):
            if len(tasks) == 1:
                manifest = _train_task(records, staging, names, configs, tasks[0], ctx, common)
            else:
                sets = {}
                for task in tasks:
                    folder = LEAD_SET_FOLDER.format(task.lead_set.replace(",", "-"))
                    log(f"lead set {task.lead_set} ({', '.join(task.leads)}): model in {folder}")
                    task_dir = staging / folder if staging is not None else None
                    _train_task(records, task_dir, names, configs, task, ctx.child(folder), common)
                    sets[task.lead_set] = {"folder": folder, "leads": list(task.leads)}
                manifest = {
                    "created": _now(),
                    "task": {"table": tasks[0].to_json()["table"]},
                    "lead_sets": sets,
                    **common,
                }
                if staging is not None:
                    manifest = model_folder.write_manifest(staging, manifest)
        if staging is not None:
            model_folder.commit(staging, model_dir)
    finally:
        if staging is not None:
            model_folder.discard(staging)
        if created and main and model_dir.is_dir() and not any(model_dir.iterdir()):
            model_dir.rmdir()  # made for run state that this training never wrote
    if main:
        _finish_cache(model_dir, cache, log)
    return manifest


def _training_threads(threads: int | None, log: Callable[[str], None]) -> int:
    """The compute threads of each training process (``torchrun``'s local processes share
    the cores), said in the log, with a note when other work keeps cores busy."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    requested = requested_threads(threads)
    chosen = training_threads(local, requested)
    log(f"using {chosen} compute thread(s) per process")
    busy = busy_cores()
    if requested is None and chosen * local > max(1, available_cores() - busy):
        log(
            f"note: other work keeps about {busy} core(s) busy; training uses {chosen} "
            "thread(s) all the same, so that the model does not depend on the load "
            "(--threads 1 trains faster on a busy machine; another thread count changes the "
            "weights slightly)"
        )
    return chosen


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _train_task(
    records, model_dir: Path | None, names, configs, task: Task, ctx: RunContext, common
):
    """Train every classifier for one task and, unless ``model_dir`` is None (a ``torchrun``
    rank that does not write), save them and the manifest into ``model_dir``."""
    if model_dir is not None:
        model_dir.mkdir(parents=True, exist_ok=True)
    trained: dict[str, dict] = {}
    for name in names:
        start = time.perf_counter()
        ctx.log(f"fitting {name} ({task.describe()}) ...")
        model = registry.get(name)(configs[name]).fit(records, task, ctx.child(name))
        if model_dir is not None:
            model.save(model_dir / name)
        seconds = time.perf_counter() - start
        ctx.log(f"fitted {name} in {seconds:.1f} s")
        trained[name] = {
            "folder": name,
            "fit_seconds": round(seconds, 3),
            "thresholds": [float(t) for t in model.thresholds_],
            **model.summary(),
        }
    manifest = {
        "created": _now(),
        "task": task.to_json(),
        "classifiers": trained,
        "primary": names[0],
        "classes": list(task.classes),
        "abbreviations": [task.abbreviation(c) for c in task.classes],
        **common,
    }
    manifest["training_data"] = {**common["training_data"], **data_summary(records, task)}
    if "validation" in trained[names[0]]:  # the primary's nested out-of-fold estimate
        manifest["validation"] = trained[names[0]]["validation"]
    if model_dir is not None:
        manifest = model_folder.write_manifest(model_dir, manifest)
    return manifest
