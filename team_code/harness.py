"""The harness: the only module that walks folders.

``train(data, model)`` fits the chosen classifiers on every readable record of a folder and
writes a self-describing model folder; ``run(model, data, outputs)`` writes one output file
per record. A record that cannot be read or classified is reported with its name and the
reason, and never costs the other records their outputs.

Model folder layout::

    MODEL/manifest.json          classifiers, primary, classes, thresholds, versions, data summary
    MODEL/<classifier>/config.json  + the family's tensors (safetensors) and JSON
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from team_code import __version__
from team_code.classifiers import registry
from team_code.classifiers.base import Classifier, apply_options
from team_code.context import RunContext, Task
from team_code.data.outputs import write_output
from team_code.data.records import (
    STANDARD_LEADS,
    Record,
    RecordError,
    RecordSet,
    find_records,
    load_record,
    read_header,
    record_source,
)
from team_code.fileio import load_json, save_json
from team_code.presets import choose_preset, with_preset
from team_code.threads import apply_threads, choose_threads, requested_threads

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "ecg-kit-model/1"

#: What ``train_model.py`` trains when no ``--classifiers`` is given.
DEFAULT_CLASSIFIERS: tuple[str, ...] = ("hybrid",)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


# --------------------------------------------------------------------------------------------
# Options


def parse_options(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["parallel_cnn.epochs=5", ...]`` -> ``{"parallel_cnn": {"epochs": "5"}}``."""
    options: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, field = key.partition(".")
        if not sep or not dot or not name or not field:
            raise ValueError(f"option {item!r} is not of the form CLASSIFIER.OPTION=VALUE")
        options.setdefault(name.strip(), {})[field.strip()] = value
    return options


def build_config(cls: type[Classifier], values: Mapping[str, str]):
    """The family's default config with command-line values applied (types coerced); an
    error names the classifier."""
    try:
        return apply_options(cls.Config, values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{cls.name}: {error}") from None


# --------------------------------------------------------------------------------------------
# Training


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


def configure(
    classifiers: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, str]] | None = None,
    preset: str | None = None,
) -> dict:
    """The config of each classifier to train: the preset's options under the user's, for
    the trained classifiers and the members of trained ensembles (a member's options reach
    every ensemble that trains it, and the classifier itself when it is trained alone too).
    Unknown names and options fail here, before any work."""
    names = list(classifiers or DEFAULT_CLASSIFIERS)
    families = {name: registry.get(name) for name in names}  # unknown names fail before work
    options = dict(options or {})
    wanted = set(families)
    for name, cls in families.items():
        wanted.update(cls.members(build_config(cls, options.get(name, {}))))
    options = with_preset(choose_preset(preset), options, wanted)
    configs = {name: build_config(cls, options.get(name, {})) for name, cls in families.items()}
    members = {m for name, c in configs.items() for m in families[name].members(c)}
    for name, values in options.items():
        registry.get(name)  # an unknown name fails here, with the known ones
        if name not in families and name not in members:
            raise ValueError(f"options given for a classifier that is not trained: {name}")
        build_config(registry.get(name), values)  # and an unknown option here
    for name, config in configs.items():
        wanted = families[name].members(config)
        if wanted:
            given = {m: dict(options[m]) for m in wanted if m in options}
            configs[name] = families[name].with_member_options(config, given)
    return configs


def run_context(
    model_dir: Path,
    resume: bool = False,
    progress: bool = True,
    device: str = "auto",
    workers: int = 0,
    log: Callable[[str], None] = _say,
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


def is_main_process() -> bool:
    """False in the non-zero ranks of a ``torchrun`` job, which train but do not write."""
    return os.environ.get("RANK", "0") == "0"


#: Subfolder of a model folder holding the model of one lead set (with several lead sets).
LEAD_SET_FOLDER = "leads-{}"


def train(
    data_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    classifiers: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, str]] | None = None,
    log: Callable[[str], None] = _say,
    resume: bool = False,
    preset: str | None = None,
    progress: bool = True,
    cache: str = "remove",
    table: str = "2020",
    lead_sets: Sequence[Sequence[str]] | None = None,
    device: str = "auto",
    workers: int = 0,
    loader_workers: int = 0,
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

    records, failures = scan_records(data_dir)
    for record, problem in failures:
        log(f"warning: record {record} left out of training: {problem}")
    if len(records) == 0:
        raise ValueError(f"no readable records in {data_dir}")
    log(f"training on {len(records)} records ({len(failures)} unreadable) from {data_dir}")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    ctx = run_context(model_dir, resume, progress, device, workers, log, loader_workers)
    common = {
        "preset": preset,
        "versions": package_versions(),
        "training_data": {
            "folder": str(Path(data_dir).resolve()),
            "unreadable": [{"record": r, "problem": p} for r, p in failures],
        },
    }
    if len(tasks) == 1:
        manifest = _train_task(records, model_dir, names, configs, tasks[0], ctx, common)
    else:
        sets = {}
        for task in tasks:
            folder = LEAD_SET_FOLDER.format(task.lead_set.replace(",", "-"))
            log(f"lead set {task.lead_set} ({', '.join(task.leads)}): model in {folder}")
            _train_task(
                records, model_dir / folder, names, configs, task, ctx.child(folder), common
            )
            sets[task.lead_set] = {"folder": folder, "leads": list(task.leads)}
        manifest = {
            "format": MANIFEST_FORMAT,
            "created": _now(),
            "task": {"table": tasks[0].to_json()["table"]},
            "lead_sets": sets,
            **common,
        }
        if is_main_process():
            save_json(model_dir / MANIFEST, manifest)
    if is_main_process():
        _finish_cache(model_dir, cache, log)
    return manifest


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _train_task(records, model_dir: Path, names, configs, task: Task, ctx: RunContext, common):
    """Train every classifier for one task into ``model_dir`` and write its manifest."""
    model_dir.mkdir(parents=True, exist_ok=True)
    trained: dict[str, dict] = {}
    for name in names:
        start = time.perf_counter()
        ctx.log(f"fitting {name} ({task.describe()}) ...")
        model = registry.get(name)(configs[name]).fit(records, task, ctx.child(name))
        if is_main_process():
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
        "format": MANIFEST_FORMAT,
        "created": _now(),
        "task": task.to_json(),
        "classifiers": trained,
        "primary": names[0],
        "classes": list(task.classes),
        "abbreviations": [task.abbreviation(c) for c in task.classes],
        **common,
    }
    manifest["training_data"] = {**common["training_data"], **data_summary(records, task)}
    if is_main_process():
        save_json(model_dir / MANIFEST, manifest)
    return manifest


# --------------------------------------------------------------------------------------------
# Inference


def load_manifest(model_dir: str | os.PathLike) -> dict:
    """Read and check a model folder's manifest."""
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} is not a model folder: {MANIFEST} is missing")
    manifest = load_json(path)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: unknown model format {manifest.get('format')!r}")
    return manifest


def load_model(
    model_dir: str | os.PathLike, classifier: str | None = None, ctx: RunContext | None = None
):
    """The primary classifier of a model folder (or the one named; ``hybrid.rules`` names a
    member of a trained hybrid), set to run under ``ctx``. A folder with several lead sets
    gives a :class:`LeadSetModels` that serves each record with the largest lead set it has."""
    manifest = load_manifest(model_dir)
    ctx = ctx or RunContext(progress=False)
    if "lead_sets" in manifest:
        return LeadSetModels.load(model_dir, manifest, classifier, ctx)
    name = classifier or manifest["primary"]
    top, _, member = name.partition(".")
    if top not in manifest["classifiers"]:
        raise KeyError(
            f"{model_dir} has no {top!r} classifier; it has {describe_classifiers(manifest)}"
        )
    folder = _subfolder(model_dir, manifest["classifiers"][top]["folder"], "classifier")
    model = registry.get(top).load(folder).use(ctx)
    if member:
        members = getattr(model, "members_", {})
        if member not in members:
            raise KeyError(
                f"{model_dir}: {top} has no member {member!r}; it has "
                f"{describe_classifiers(manifest)}"
            )
        return members[member]
    return model


def _subfolder(model_dir, name, what: str) -> Path:
    """``model_dir/name`` for a folder name read from a manifest; one that would point
    outside the model folder raises."""
    name = str(name)
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"{model_dir}: {what} folder {name!r} points outside the model folder")
    return Path(model_dir) / name


def describe_classifiers(manifest: dict) -> str:
    """The classifiers a model holds, members of hybrids as ``hybrid.<member>``."""
    names = []
    for name, entry in manifest.get("classifiers", {}).items():
        names.append(name)
        names.extend(f"{name}.{m}" for m in entry.get("members", ()))
    return ", ".join(names)


class LeadSetModels:
    """The models of one folder trained for several lead sets (``train --leads 12,6,2``).

    Each record is served by the model of the largest lead set whose leads the record has
    (:meth:`choose`); a record with fewer leads than every trained set fails on its own, with
    a message naming its leads and the smallest set's. All sets share the task's classes.
    """

    def __init__(self, models: dict[str, Classifier], leads: dict[str, tuple[str, ...]]):
        order = sorted(models, key=lambda name: -len(leads[name]))
        self.models = {name: models[name] for name in order}
        self.leads = {name: leads[name] for name in order}
        classes = {tuple(m.classes_) for m in models.values()}
        if len(classes) != 1:
            raise ValueError("the lead sets' models do not share their classes")
        self.classes_ = next(iter(classes))

    @classmethod
    def load(cls, model_dir, manifest: dict, classifier: str | None, ctx: RunContext):
        models, leads = {}, {}
        for name, entry in manifest["lead_sets"].items():
            folder = _subfolder(model_dir, entry["folder"], "lead-set")
            models[name] = load_model(folder, classifier, ctx)
            leads[name] = tuple(entry["leads"])
        return cls(models, leads)

    def choose(self, record: Record) -> str:
        """The largest lead set whose leads ``record`` has; raises naming what is missing."""
        name = choose_lead_set(self.leads, record.leads)
        if name is None:
            smallest = list(self.leads.values())[-1]
            raise RecordError(
                record.name,
                f"has leads {', '.join(record.leads)}: fewer than any trained lead set (the "
                f"smallest needs {', '.join(smallest)})",
            )
        return name

    def decide(self, records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
        """Scores and labels, each record by its lead set's model and thresholds."""
        chosen = [self.choose(r) for r in records]
        scores = np.zeros((len(records), len(self.classes_)))
        labels = np.zeros_like(scores, dtype=bool)
        for name, model in self.models.items():
            rows = [i for i, c in enumerate(chosen) if c == name]
            if rows:
                part, binary = decide(model, [records[i] for i in rows])
                scores[rows], labels[rows] = part, binary
        return scores, labels


def choose_lead_set(lead_sets: Mapping[str, Sequence[str]], leads: Sequence[str]) -> str | None:
    """The largest of ``lead_sets`` ({name: leads}) whose leads are all in ``leads``."""
    have = set(leads)
    fitting = [name for name, wanted in lead_sets.items() if have >= set(wanted)]
    return max(fitting, key=lambda name: len(lead_sets[name]), default=None)


def decide(model, records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, labels)`` of ``records``: the model's scores and its thresholds' labels."""
    if isinstance(model, LeadSetModels):
        return model.decide(records)
    scores = np.asarray(model.predict_proba(records), dtype=float)
    _check_scores(scores, len(records), len(model.classes_))
    return scores, np.clip(scores, 0.0, 1.0) >= model.thresholds_


@dataclasses.dataclass
class RunResult:
    """What a run wrote and what failed, in record order."""

    written: list[str]  # record names with their classifier's output file
    failures: list[tuple[str, str]]  # (record, reason)
    # Failed records given an all-negative output file, so that the folder stays scoreable.
    placeholders: list[str] = dataclasses.field(default_factory=list)
    # With a model of several lead sets: the lead set whose model served each written record.
    lead_sets: dict[str, str] = dataclasses.field(default_factory=dict)


#: A record's outcome as :func:`_classify_paths` reports it: ``None`` when its output was
#: written, else the reason it failed.
Report = Callable[[str, "str | None"], None]

#: The start of the reason of a record whose output file could not be written.
UNWRITABLE = "output file could not be written"


def _check_scores(scores: np.ndarray, n_records: int, n_classes: int) -> None:
    if scores.shape != (n_records, n_classes):
        raise ValueError(f"classifier returned scores of shape {scores.shape}")


def _classify_paths(
    model: Classifier, paths: Sequence[Path], output_dir: Path, batch_size: int, report: Report
) -> None:
    """Load, classify and write the outputs of ``paths``; every record's outcome goes to
    ``report(name, reason)`` (``reason`` None when its output was written), nothing is raised.
    A record is named by its header's file name."""
    classes = list(model.classes_)

    def predict(batch) -> list:
        """(name, scores, labels, problem) of each record of the batch."""
        try:
            scores, labels = decide(model, [r for _, r in batch])
        except Exception as error:
            if len(batch) > 1:  # isolate the record at fault by retrying one at a time
                return [row for item in batch for row in predict([item])]
            problem = (
                error.problem
                if isinstance(error, RecordError)
                else f"classification failed: {type(error).__name__}: {error}"
            )
            return [(batch[0][0], None, None, problem)]
        return [(name, s, b, None) for (name, _), s, b in zip(batch, scores, labels)]

    def emit(batch) -> None:
        for name, row, labels, problem in predict(batch):
            if problem is None and not np.all(np.isfinite(row)):
                problem = "classifier returned non-finite scores"
            if problem is None:
                row = np.clip(row, 0.0, 1.0)
                labels = np.asarray(labels).astype(int)
                try:
                    write_output(output_dir / f"{name}.csv", name, classes, labels, row)
                except OSError as error:
                    problem = f"{UNWRITABLE}: {error}"
            report(name, problem)

    batch = []
    for path in paths:
        try:
            batch.append((path.stem, load_record(path)))
        except RecordError as error:
            report(path.stem, error.problem)
        except Exception as error:  # an unforeseen reader failure costs this record only
            report(path.stem, f"cannot be read: {type(error).__name__}: {error}")
        if len(batch) >= batch_size:
            emit(batch)
            batch = []
    if batch:
        emit(batch)


def _worker_main(worker, model_dir, classifier, threads, device, tasks, results) -> None:
    """A worker process: load the model once, then classify the tasks sent to it, reporting
    every record as it is done (so that a crash costs only the records not yet reported)."""
    apply_threads(threads)
    try:
        model = load_model(model_dir, classifier, RunContext(device=device, progress=False))
    except Exception as error:
        results.put(("init-error", worker, f"{type(error).__name__}: {error}"))
        return
    results.put(("ready", worker, list(model.classes_)))
    while (task := tasks.get()) is not None:
        task_id, paths, output_dir, batch_size = task

        def report(name, reason, task_id=task_id):
            results.put(("record", worker, task_id, name, reason))

        _classify_paths(model, paths, output_dir, batch_size, report)
        results.put(("done", worker, task_id))


def _run_in_workers(
    model_dir, classifier, paths, output_dir, batch_size, workers, report, threads, device
) -> list[str]:
    """Classify ``paths`` in ``workers`` processes of ``threads`` threads; return the classes.

    Contiguous chunks of records go to whichever worker is free. A worker that dies (killed,
    out of memory, a crash in native code) is replaced by a new one: the records of its chunk
    that it had not reported are sent again one per task, and a worker that dies on a
    one-record task costs that record only (reported as failed).
    """
    import collections
    import itertools
    import multiprocessing
    import queue

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    chunk = max(1, min(batch_size, -(-len(paths) // workers)))
    pending = collections.deque(
        (i, paths[start : start + chunk], batch_size)
        for i, start in enumerate(range(0, len(paths), chunk))
    )
    next_id = len(pending)
    running: dict[int, dict] = {}  # worker id -> process, task queue, task, records reported
    classes: list[str] = []

    def start() -> None:
        worker = next(numbers)
        tasks = context.Queue()
        process = context.Process(
            target=_worker_main,
            args=(worker, str(model_dir), classifier, threads, device, tasks, results),
            daemon=True,
        )
        process.start()
        running[worker] = {"process": process, "tasks": tasks, "task": None, "ready": False}

    def handle(message) -> None:
        kind, state = message[0], running.get(message[1])
        if kind == "init-error":
            raise ValueError(f"cannot load the model in {model_dir}: {message[2]}")
        if state is None:  # from a worker already replaced
            return
        if kind == "ready":
            state["ready"] = True
            classes[:] = message[2]
        elif kind == "record" and state["task"] is not None and state["task"][0] == message[2]:
            state["reported"].add(message[3])
            report(message[3], message[4])
        elif kind == "done" and state["task"] is not None and state["task"][0] == message[2]:
            state["task"] = None

    def drain(timeout: float) -> None:
        try:
            handle(results.get(timeout=timeout))
            while True:
                handle(results.get_nowait())
        except queue.Empty:
            pass

    def replace_dead() -> None:
        nonlocal next_id
        for worker, state in list(running.items()):
            process = state["process"]
            if process.is_alive():
                continue
            drain(0.2)  # what it reported before dying
            del running[worker]
            if not state["ready"]:
                raise ValueError(
                    f"a worker died while loading the model in {model_dir} "
                    f"(exit code {process.exitcode})"
                )
            task = state["task"]
            if task is not None:
                left = [p for p in task[1] if p.stem not in state["reported"]]
                if len(task[1]) == 1 and left:
                    report(left[0].stem, f"worker died (exit code {process.exitcode})")
                else:
                    for path in reversed(left):
                        pending.appendleft((next_id, [path], 1))
                        next_id += 1
            start()

    numbers = itertools.count()
    try:
        for _ in range(min(workers, len(pending))):
            start()
        while pending or any(s["task"] is not None for s in running.values()):
            for state in running.values():
                if state["ready"] and state["task"] is None and pending:
                    task_id, task_paths, size = pending.popleft()
                    state["task"], state["reported"] = (task_id, task_paths, size), set()
                    state["tasks"].put((task_id, task_paths, output_dir, size))
            drain(0.1)
            replace_dead()
    finally:
        for state in running.values():
            if state["process"].is_alive():
                state["tasks"].put(None)
        for state in running.values():
            state["process"].join(timeout=10)
            if state["process"].is_alive():
                state["process"].terminate()
                state["process"].join()
    return classes


def _negative_outputs(result: RunResult, classes: Sequence[str], output_dir: Path, log) -> None:
    """Give every failed record whose output can be written an all-negative output."""
    zeros = np.zeros(len(classes))
    for name, reason in result.failures:
        if reason.startswith(UNWRITABLE):
            continue
        try:
            write_output(output_dir / f"{name}.csv", name, classes, zeros.astype(int), zeros)
        except OSError as error:
            log(f"error: record {name}: no all-negative output either: {error}")
            continue
        result.placeholders.append(name)


def _output_folder(output_dir: Path) -> None:
    """Make the output folder, or say clearly why it cannot be one."""
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"OUTPUTS {output_dir} exists and is not a folder")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"OUTPUTS {output_dir} cannot be made: {error}") from None


def run(
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    classifier: str | None = None,
    batch_size: int = 32,
    workers: int = 1,
    progress: bool = True,
    log: Callable[[str], None] = _say,
    threads: int | None = None,
    device: str = "auto",
) -> RunResult:
    """Write ``output_dir/<record>.csv`` for every record of ``data_dir``, in sorted order.

    Only those files are written; nothing else in ``output_dir`` is touched. A record that
    cannot be read, classified or written is reported (``log`` and the result's ``failures``)
    and costs no other record its output; it gets an all-negative output (every label 0,
    every score 0) where that can be written, so that a scorer that needs one file per record
    (the official 2020 one) can still score the folder; ``placeholders`` lists them. With
    ``workers > 1`` chunks of records go to separate processes (each loads the model once);
    the outputs are identical to one worker's, and a worker that dies costs at most the
    record it was on. Each process uses ``threads`` compute threads (default: the free cores
    shared among the workers, :func:`team_code.threads.choose_threads`).

    Raises (before any output is written) ``FileNotFoundError`` for a missing model or data
    folder, ``NotADirectoryError`` when ``output_dir`` is a file, ``ValueError`` for a model
    that cannot be loaded or bad arguments, ``KeyError`` for an unknown classifier.
    """
    from tqdm import tqdm

    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    paths = find_records(data_dir)
    output_dir = Path(output_dir)
    load_manifest(model_dir)  # fail early, before any output folder is made
    per_process = choose_threads(workers, requested_threads(threads))
    model = None
    if workers == 1:
        apply_threads(per_process)
        try:
            model = load_model(model_dir, classifier, RunContext(device=device, progress=False))
        except (KeyError, FileNotFoundError):
            raise
        except Exception as error:
            raise ValueError(
                f"cannot load the model in {model_dir}: {type(error).__name__}: {error}"
            ) from error
    _output_folder(output_dir)
    outcome: dict[str, str | None] = {}
    bar = tqdm(total=len(paths), desc="records", unit="rec", disable=not progress, file=sys.stderr)

    def report(name: str, reason: str | None) -> None:
        if reason is not None:
            log(f"error: record {name}: {reason}")
        if name not in outcome:
            bar.update(1)
        outcome[name] = reason

    with bar:
        if model is not None:
            _classify_paths(model, paths, output_dir, batch_size, report)
            classes = list(model.classes_)
        else:
            classes = _run_in_workers(
                model_dir,
                classifier,
                paths,
                output_dir,
                batch_size,
                workers,
                report,
                per_process,
                device,
            )
    names = [p.stem for p in paths]
    result = RunResult(
        written=[n for n in names if n in outcome and outcome[n] is None],
        failures=[
            (n, outcome.get(n, "not classified"))
            for n in names
            if outcome.get(n, "not classified") is not None
        ],
    )
    _negative_outputs(result, classes, output_dir, log)
    manifest = load_manifest(model_dir)
    if "lead_sets" in manifest:
        result.lead_sets = served_lead_sets(manifest, paths, set(result.written))
        counts = Counter(result.lead_sets.values())
        log(
            "lead sets: "
            + ", ".join(
                f"{counts.get(n, 0)} records by the {n}-lead model" for n in manifest["lead_sets"]
            )
        )
    return result


def served_lead_sets(manifest: dict, paths: Sequence[Path], names: set[str]) -> dict[str, str]:
    """The lead set whose model serves each of the records ``names`` (from their headers)."""
    sets = {name: entry["leads"] for name, entry in manifest["lead_sets"].items()}
    served = {}
    for path in paths:
        if path.stem in names:
            chosen = choose_lead_set(sets, read_header(path).leads)
            if chosen is not None:
                served[path.stem] = chosen
    return served


def report(
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    report_dir: str | os.PathLike,
    records: Sequence[str] | None = None,
    classifier: str | None = None,
    log: Callable[[str], None] = _say,
) -> Path:
    """Draw per-record reports of records already classified by :func:`run`.

    Scores and labels are read back from the output files, so the pictures show what was
    written. The rules' explanation, the hybrid's member scores and the scalogram settings
    come from the model when it has them (``explain``, ``member_predictions``, a
    ``cwt_googlenet`` member).
    """
    model = load_model(model_dir, classifier)
    paths = {p.stem: p for p in find_records(data_dir)}
    names = [n for n in (records if records is not None else paths) if n in paths]
    if isinstance(model, LeadSetModels):
        return _lead_set_report(model, model_dir, paths, names, output_dir, report_dir, log)
    return _model_report(model, paths, names, output_dir, report_dir, log)


def _lead_set_report(model, model_dir, paths, names, output_dir, report_dir, log) -> Path:
    """One report per lead set (``REPORT/leads-<set>/``) of the records its model served,
    and an index saying which model served which records."""
    import html

    manifest = load_manifest(model_dir)
    served = served_lead_sets(manifest, [paths[n] for n in names], set(names))
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for name, member in model.models.items():
        group = [n for n in names if served.get(n) == name]
        if not group:
            continue
        folder = LEAD_SET_FOLDER.format(name.replace(",", "-"))
        _model_report(member, paths, group, output_dir, report_dir / folder, log)
        leads = ", ".join(model.leads[name])
        items.append(
            f'<li><a href="{folder}/index.html">{len(group)} records served by the '
            f"{html.escape(name)}-lead model</a> ({html.escape(leads)})</li>"
        )
    index = report_dir / "index.html"
    index.write_text(
        "<!doctype html><meta charset='utf-8'><title>ECG report by lead set</title>"
        f"<h1>ECG report: {len(names)} records</h1>"
        "<p>Each record is classified by the model of the largest trained lead set whose "
        f"leads it has.</p><ul>{''.join(items)}</ul>",
        encoding="utf-8",
    )
    return index


def _model_report(model, paths, names, output_dir, report_dir, log) -> Path:
    from team_code.data.outputs import read_output
    from team_code.report import write_report

    outputs = [read_output(Path(output_dir) / f"{name}.csv") for name in names]
    chosen = RecordSet([paths[n] for n in names])
    scores = np.array([o.scores for o in outputs]).reshape(len(outputs), len(model.classes_))
    members = getattr(model, "members_", {})
    explainer = members.get("rules", model if hasattr(model, "explain") else None)
    cwt = members.get("cwt_googlenet", model if model.name == "cwt_googlenet" else None)
    member_scores = None
    if hasattr(model, "member_predictions") and names:
        member_scores = model.member_predictions([chosen[i] for i in range(len(chosen))])
    return write_report(
        chosen,
        scores,
        list(model.classes_),
        model.thresholds_,
        report_dir,
        explain=explainer.explain if explainer is not None else None,
        member_scores=member_scores,
        cwt_config=cwt.config if cwt is not None else None,
        log=log,
    )
