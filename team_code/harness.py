"""The harness: the only module that walks folders.

``train(data, model)`` fits the chosen classifiers on every readable record of a folder and
writes a self-describing model folder; ``run(model, data, outputs)`` writes one output file
per record. A record that cannot be read or classified is reported with its name and the
reason, and never costs the other records their outputs.

Model folder layout (written whole or not at all, and checked when loaded:
:mod:`team_code.model_folder`)::

    MODEL/manifest.json          classifiers, primary, classes, thresholds, versions, data
                                 summary, threads, and every file's size and SHA-256
    MODEL/<classifier>/config.json  + the family's tensors (safetensors) and JSON
    MODEL/.work, MODEL/.cache    run state of the trainings: checkpoints, per-record caches
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

from team_code import __version__, model_folder
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
from team_code.presets import choose_preset, with_preset
from team_code.threads import (
    apply_threads,
    available_cores,
    busy_cores,
    choose_threads,
    requested_threads,
    training_threads,
    using_threads,
)

MANIFEST = model_folder.MANIFEST
MANIFEST_FORMAT = model_folder.FORMAT

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


# --------------------------------------------------------------------------------------------
# Inference


def load_manifest(model_dir: str | os.PathLike, verify: bool = True) -> dict:
    """Read a model folder's manifest and check the folder (:func:`model_folder.check`): a
    folder of another model format or kit version, or (``verify``) whose files do not match
    the manifest's list, raises :class:`~team_code.model_folder.ModelFolderError` (a
    ``ValueError``) naming the file and the problem. Files are hashed once per process while
    they stay unchanged."""
    manifest = model_folder.read_manifest(model_dir)
    model_folder.check(model_dir, manifest, verify)
    return manifest


def load_model(
    model_dir: str | os.PathLike,
    classifier: str | None = None,
    ctx: RunContext | None = None,
    verify: bool = True,
):
    """The primary classifier of a model folder (or the one named; ``hybrid.rules`` names a
    member of a trained hybrid), set to run under ``ctx``. A folder with several lead sets
    gives a :class:`LeadSetModels` that serves each record with the largest lead set it has.
    The folder is checked first (:func:`load_manifest`; ``verify=False`` skips the files'
    sizes and hashes, for a folder whose enclosing model folder verified them)."""
    manifest = load_manifest(model_dir, verify)
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
        """The lead sets' models of ``model_dir``, whose ``manifest`` was read (and its files,
        lead-set folders included, verified) by :func:`load_manifest`."""
        models, leads = {}, {}
        for name, entry in manifest["lead_sets"].items():
            folder = _subfolder(model_dir, entry["folder"], "lead-set")
            models[name] = load_model(folder, classifier, ctx, verify=False)
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


def _load_for_run(model_dir, classifier: str | None, device: str):
    """The model that :func:`run` serves, loaded for ``device``. A model that cannot be loaded
    raises ``ValueError`` naming the folder and the reason (an unknown classifier
    ``KeyError``, a missing file ``FileNotFoundError``)."""
    try:
        return load_model(model_dir, classifier, RunContext(device=device, progress=False))
    except (KeyError, FileNotFoundError):
        raise
    except Exception as error:
        raise ValueError(
            f"cannot load the model in {model_dir}: {type(error).__name__}: {error}"
        ) from error


def _worker_main(model_dir, classifier, threads, device, tasks, results) -> None:
    """A worker process: load the model once, then classify the lists of record paths sent to
    it on ``tasks``, sending each record's outcome on ``results`` as it is done (so that a
    worker that dies costs only the records it had not reported)."""
    apply_threads(threads)
    try:
        model = _load_for_run(model_dir, classifier, device)
    except Exception as error:
        message = error.args[0] if error.args else error
        results.send(("init-error", type(error).__name__, str(message)))
        return
    results.send(("ready", list(model.classes_)))
    while True:
        try:
            task = tasks.recv()
        except EOFError:  # the main process is gone
            return
        if task is None:
            return
        paths, output_dir, batch_size = task
        _classify_paths(
            model,
            paths,
            output_dir,
            batch_size,
            lambda name, reason: results.send(("record", name, reason)),
        )
        results.send(("done",))


def _exit_text(code: int | None) -> str:
    """``exit code 7`` or ``killed by SIGKILL`` for a process's exit code."""
    import signal

    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclasses.dataclass(eq=False)
class _Worker:
    """One worker process of a :class:`_WorkerPool` and the pipes to and from it."""

    process: object  # multiprocessing Process
    tasks: object  # Connection: tasks to the worker
    results: object  # Connection: messages from the worker
    ready: bool = False  # it has loaded the model
    task: list[Path] | None = None  # the records it is classifying
    reported: set[str] = dataclasses.field(default_factory=set)  # those of them it has reported
    error: str | None = None  # why it could not load the model


class _WorkerPool:
    """Processes that each load the model once and classify the records sent to them.

    A worker that dies (killed, out of memory, a crash in native code) costs a retry, not
    records: the records of its task that it had not reported go again, one record per task,
    to the next free worker (a fresh one replaces the dead one); a record on which a worker
    dies a second time fails with the reason. A worker that dies holding no record (while
    loading the model, or idle) is replaced too, but after two such deaths in a row no more
    are started; when no worker is left, the records not yet classified fail with the reason.
    Each worker has its own pipes, so that one that dies cannot block the others.
    """

    #: Deaths in a row that cost no record, after which no worker is started.
    MAX_IDLE_DEATHS = 2

    def __init__(self, model_dir, classifier: str | None, threads: int, device: str):
        import collections
        import multiprocessing

        self._context = multiprocessing.get_context("spawn")
        self._args = (str(model_dir), classifier, threads, device)
        self.model_dir = model_dir
        self.workers: list[_Worker] = []
        self.classes: list[str] | None = None
        self._report: Report | None = None
        self._pending: collections.deque[list[Path]] = collections.deque()
        self._deaths: dict[str, list[int | None]] = {}  # record -> exit codes of its deaths
        self._idle_deaths = 0  # deaths in a row that cost no record
        self._last_death = ""  # how the last worker to end ended

    def start(self, n_workers: int) -> list[str]:
        """Start ``n_workers`` workers and wait until one has loaded the model; its classes.

        Raises as :func:`_load_for_run` when the model cannot be loaded (a worker's error),
        or when workers die while loading it until no more are started."""
        for _ in range(n_workers):
            self._spawn()
        while self.classes is None:
            self._step()
        return self.classes

    def classify(
        self, paths: Sequence[Path], output_dir: Path, batch_size: int, chunk: int, report: Report
    ) -> None:
        """Classify ``paths`` in chunks of ``chunk`` records; every record's outcome goes to
        ``report`` (see :func:`_classify_paths`), nothing is raised for a record."""
        self._report = report
        self._pending.extend(list(paths[i : i + chunk]) for i in range(0, len(paths), chunk))
        while self._pending or any(w.task is not None for w in self.workers):
            for worker in self.workers:
                if worker.ready and worker.task is None and self._pending:
                    self._give(worker, self._pending.popleft(), output_dir, batch_size)
            if not self.workers:
                reason = f"not classified: no worker process left (the last {self._last_death})"
                for task in self._pending:
                    for path in task:
                        report(path.stem, reason)
                self._pending.clear()
                return
            self._step()

    def close(self) -> None:
        """Ask every worker to end, and end those that do not."""
        for worker in self.workers:
            try:
                worker.tasks.send(None)
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join()
            worker.tasks.close()
            worker.results.close()
        self.workers.clear()

    def _spawn(self) -> None:
        results, results_end = self._context.Pipe(duplex=False)
        tasks_end, tasks = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main, args=(*self._args, tasks_end, results_end), daemon=True
        )
        process.start()
        results_end.close()  # the worker's ends: once it is gone, reading says so
        tasks_end.close()
        self.workers.append(_Worker(process, tasks, results))

    def _give(self, worker: _Worker, task: list[Path], output_dir: Path, batch_size: int) -> None:
        try:
            worker.tasks.send((task, output_dir, batch_size))
        except OSError:  # it has died: the task waits for the next worker
            self._pending.appendleft(task)
            return
        worker.task, worker.reported = task, set()

    def _step(self) -> None:
        """Wait for messages or deaths, and handle them."""
        from multiprocessing.connection import wait

        handles = {w.results: w for w in self.workers}
        handles.update({w.process.sentinel: w for w in self.workers})
        woken = dict.fromkeys(handles[h] for h in wait(list(handles)))
        for worker in woken:
            if not self._receive(worker) or not worker.process.is_alive():
                self._receive(worker)  # what it sent before it died
                self._bury(worker)

    def _receive(self, worker: _Worker) -> bool:
        """Handle what ``worker`` has sent; False once its pipe is closed (it has ended)."""
        try:
            while worker.results.poll():
                self._handle(worker, worker.results.recv())
        except (EOFError, OSError):
            return False
        return True

    def _handle(self, worker: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
            self.classes = message[1]
        elif kind == "init-error":
            worker.error = f"{message[1]}: {message[2]}"
            if self.classes is None:  # the model cannot be loaded: raise as a load would
                errors = {"KeyError": KeyError, "FileNotFoundError": FileNotFoundError}
                raise errors.get(message[1], ValueError)(message[2])
        elif kind == "record":
            worker.reported.add(message[1])
            self._idle_deaths = 0
            self._report(message[1], message[2])
        elif kind == "done":
            worker.task = None

    def _bury(self, worker: _Worker) -> None:
        """Take a worker that has ended out of the pool; retry or fail its records; start
        another when it may."""
        worker.process.join(timeout=30)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        self.workers.remove(worker)
        worker.tasks.close()
        worker.results.close()
        code = worker.process.exitcode
        if worker.error is not None:
            self._last_death = f"could not load the model: {worker.error}"
        elif not worker.ready:
            self._last_death = f"died while loading the model, {_exit_text(code)}"
        else:
            self._last_death = f"died, {_exit_text(code)}"
        left = [p for p in worker.task or () if p.stem not in worker.reported]
        self._idle_deaths = 0 if left else self._idle_deaths + 1
        for path in reversed(left):
            deaths = self._deaths.setdefault(path.stem, [])
            deaths.append(code)
            if len(deaths) > 1:
                self._report(
                    path.stem,
                    "worker died twice before classifying it ("
                    + ", then ".join(_exit_text(c) for c in deaths)
                    + ")",
                )
            else:
                self._pending.appendleft([path])
        wanted = self.classes is None or self._pending or any(w.task for w in self.workers)
        if wanted and self._idle_deaths < self.MAX_IDLE_DEATHS:
            self._spawn()
        elif self.classes is None and not self.workers:
            raise ValueError(
                f"cannot load the model in {self.model_dir}: the worker process {self._last_death}"
            )


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


def _output_folder(output_dir: Path, make: bool = True) -> None:
    """Make the output folder (with ``make`` False only check that it can be one), or say
    clearly why it cannot be one."""
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"OUTPUTS {output_dir} exists and is not a folder")
    if not make:
        return
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
    the outputs are identical to one worker's, and a worker that dies costs a retry, not
    records (:class:`_WorkerPool`). Each process uses ``threads`` compute threads (default:
    the free cores shared among the workers, :func:`team_code.threads.choose_threads`).

    Raises (before anything is written, ``output_dir`` included: it is made once the model
    has loaded) ``FileNotFoundError`` for a missing model or data folder,
    ``NotADirectoryError`` when ``output_dir`` is a file, ``ValueError`` for a model that
    cannot be loaded or bad arguments, ``KeyError`` for an unknown classifier. Once records
    are classified nothing is raised for them: every record is written or in ``failures``.
    """
    from tqdm import tqdm

    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    paths = find_records(data_dir)
    output_dir = Path(output_dir)
    _output_folder(output_dir, make=False)
    manifest = load_manifest(model_dir)
    per_process = choose_threads(workers, requested_threads(threads))
    model, pool = None, None
    chunk = max(1, min(batch_size, -(-len(paths) // workers)))
    if workers == 1:
        apply_threads(per_process)
        model = _load_for_run(model_dir, classifier, device)
        classes = list(model.classes_)
    else:
        pool = _WorkerPool(model_dir, classifier, per_process, device)
    outcome: dict[str, str | None] = {}
    try:
        if pool is not None:
            classes = pool.start(max(1, min(workers, -(-len(paths) // chunk))))
        _output_folder(output_dir)
        bar = tqdm(
            total=len(paths), desc="records", unit="rec", disable=not progress, file=sys.stderr
        )

        def report(name: str, reason: str | None) -> None:
            if reason is not None:
                log(f"error: record {name}: {reason}")
            if name not in outcome:
                bar.update(1)
            outcome[name] = reason

        with bar:
            if model is not None:
                _classify_paths(model, paths, output_dir, batch_size, report)
            else:
                pool.classify(paths, output_dir, batch_size, chunk, report)
    finally:
        if pool is not None:
            pool.close()
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
    written; nothing is classified again. What the model shows of how it scored a record
    (the rules' account, its members' scores where they come without classifying, the
    scalogram settings) comes from :meth:`Classifier.evidence`.
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
    return write_report(
        chosen,
        scores,
        list(model.classes_),
        model.thresholds_,
        report_dir,
        evidence=lambda record: model.evidence([record])[0],
        log=log,
    )
