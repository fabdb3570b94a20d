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
from team_code.data.labels import label_matrix, scored_classes
from team_code.data.outputs import write_output
from team_code.data.records import (
    RecordError,
    RecordSet,
    find_records,
    load_record,
    record_source,
)
from team_code.fileio import load_json, save_json
from team_code.presets import DEFAULT_PRESET, with_preset
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
    """The family's default config with command-line values applied (types coerced)."""
    return apply_options(cls.Config, values)


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


def data_summary(records: RecordSet, classes: Sequence[str]) -> dict:
    """Counts that describe a training set for the manifest."""
    truth = label_matrix(records.labels, classes)
    scored = scored_classes()
    return {
        "n_records": len(records),
        "n_with_scored_label": int(truth.any(axis=1).sum()),
        "by_source": dict(sorted(Counter(record_source(n) for n in records.names).items())),
        "fs_hz": {str(k): v for k, v in sorted(Counter(h.fs for h in records.headers).items())},
        "class_counts": {
            scored.abbreviation(c): int(n) for c, n in zip(classes, truth.sum(axis=0))
        },
    }


def _default_cache_dir(model_dir: Path) -> str:
    """Where deep models cache preprocessed inputs: ``$ECG_KIT_CACHE``, else ``MODEL/.cache``."""
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


def _with_cache(configs: dict, model_dir: Path) -> dict:
    """Give every config with a ``cache_dir`` left at its default (``""`` or ``"auto"``) the
    training cache folder, members of ensembles included, so that nothing is written outside
    the folders the user named (or ``$ECG_KIT_CACHE``)."""

    def unset(value) -> bool:
        return value in (None, "", "auto")

    cache = _default_cache_dir(model_dir)
    out = {}
    for name, config in configs.items():
        if hasattr(config, "cache_dir") and unset(config.cache_dir):
            config = dataclasses.replace(config, cache_dir=cache)
        if hasattr(config, "member_options"):
            members = {k: dict(v) for k, v in config.member_options.items()}
            for member in getattr(config, "members", ()):
                fields = {f.name for f in dataclasses.fields(registry.get(member).Config)}
                options = members.setdefault(member, {})
                if "cache_dir" in fields and unset(options.get("cache_dir")):
                    options["cache_dir"] = cache
            config = dataclasses.replace(config, member_options=members)
        out[name] = config
    return out


def _with_workdirs(configs: dict, model_dir: Path, resume: bool) -> dict:
    """Checkpoints of trained deep models go to ``MODEL/.work/<name>``, and a hybrid's members
    train each fold in a child of ``MODEL/.work/hybrid``; with ``resume``, training continues
    from what is found there: a deep model's checkpoint, a hybrid's finished folds and its
    members' checkpoints."""
    out = {}
    for name, config in configs.items():
        if hasattr(config, "workdir") and not config.workdir:
            config = dataclasses.replace(config, workdir=str(model_dir / ".work" / name))
        if hasattr(config, "member_options"):  # an ensemble resumes whatever its folder holds
            found = hasattr(config, "workdir") and Path(config.workdir).is_dir()
        else:
            found = (
                hasattr(config, "workdir") and (Path(config.workdir) / "checkpoint.pt").is_file()
            )
        if resume and found and not config.resume:
            config = dataclasses.replace(config, resume=config.workdir)
        out[name] = config
    return out


def _run_options(families: dict, options: dict, preset: str, progress: bool) -> dict:
    """The user's options on top of the preset's, for the trained classifiers and the members
    of trained hybrids; with ``progress`` false, ``progress=false`` for every family that has
    the option (unless the user set it)."""
    wanted = set(families)
    for name, cls in families.items():
        config = build_config(cls, options.get(name, {}))
        wanted.update(getattr(config, "members", ()))
    merged = with_preset(preset, options, wanted)
    if not progress:
        for name in wanted:
            fields = {f.name for f in dataclasses.fields(registry.get(name).Config)}
            if "progress" in fields:
                merged.setdefault(name, {}).setdefault("progress", "false")
    return merged


def is_main_process() -> bool:
    """False in the non-zero ranks of a ``torchrun`` job, which train but do not write."""
    return os.environ.get("RANK", "0") == "0"


def train(
    data_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    classifiers: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, str]] | None = None,
    log: Callable[[str], None] = _say,
    resume: bool = False,
    preset: str = DEFAULT_PRESET,
    progress: bool = True,
    cache: str = "remove",
) -> dict:
    """Fit each classifier on the records of ``data_dir`` and save them under ``model_dir``.

    Returns the manifest. Unreadable records are left out with a warning naming each one.
    Deep models checkpoint every epoch under ``MODEL/.work/<name>``; ``resume=True`` continues
    an interrupted training from there. ``preset`` fills options (:mod:`team_code.presets`;
    ``options`` win); ``progress=False`` silences every classifier's progress output.
    Per-record caches (network inputs, measurements) go to ``MODEL/.cache`` (or
    ``$ECG_KIT_CACHE``); ``cache="remove"`` deletes ``MODEL/.cache`` once the model is saved,
    ``"keep"`` keeps it for the next training on the same records.
    """
    if cache not in CACHE_CHOICES:
        raise ValueError(f"cache must be one of {CACHE_CHOICES}, not {cache!r}")
    names = list(classifiers or DEFAULT_CLASSIFIERS)
    families = {name: registry.get(name) for name in names}  # unknown names fail before work
    options = _run_options(families, dict(options or {}), preset, progress)
    configs = {name: build_config(cls, options.get(name, {})) for name, cls in families.items()}
    # Options of classifiers that are not trained themselves go to ensembles that train them.
    member_options = {k: dict(v) for k, v in options.items() if k not in families}
    for name in member_options:
        registry.get(name)  # an unknown name fails here, with the known ones
    ensembles = [n for n, c in configs.items() if hasattr(c, "member_options")]
    if member_options and not ensembles:
        raise ValueError(
            f"options given for classifiers that are not trained: {sorted(member_options)}"
        )
    for name in ensembles:
        merged = {**configs[name].member_options}
        for member, values in member_options.items():
            merged[member] = {**merged.get(member, {}), **values}
        configs[name] = dataclasses.replace(configs[name], member_options=merged)
    configs = _with_workdirs(_with_cache(configs, Path(model_dir)), Path(model_dir), resume)

    records, failures = scan_records(data_dir)
    for record, problem in failures:
        log(f"warning: record {record} left out of training: {problem}")
    if len(records) == 0:
        raise ValueError(f"no readable records in {data_dir}")
    classes = scored_classes().codes
    log(f"training on {len(records)} records ({len(failures)} unreadable) from {data_dir}")

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    trained: dict[str, dict] = {}
    for name, cls in families.items():
        start = time.perf_counter()
        log(f"fitting {name} ...")
        model = cls(configs[name]).fit(records, classes)
        if is_main_process():
            model.save(model_dir / name)
        seconds = time.perf_counter() - start
        log(f"fitted {name} in {seconds:.1f} s")
        trained[name] = {
            "folder": name,
            "fit_seconds": round(seconds, 3),
            "thresholds": [float(t) for t in model.thresholds_],
            **model.summary(),
        }

    manifest = {
        "format": MANIFEST_FORMAT,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "classifiers": trained,
        "primary": names[0],
        "preset": preset,
        "classes": list(classes),
        "abbreviations": [scored_classes().abbreviation(c) for c in classes],
        "versions": package_versions(),
        "training_data": {
            "folder": str(Path(data_dir).resolve()),
            "unreadable": [{"record": r, "problem": p} for r, p in failures],
            **data_summary(records, classes),
        },
    }
    if is_main_process():
        save_json(model_dir / MANIFEST, manifest)
        _finish_cache(model_dir, cache, log)
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


def load_model(model_dir: str | os.PathLike, classifier: str | None = None) -> Classifier:
    """The primary classifier of a model folder (or the one named)."""
    manifest = load_manifest(model_dir)
    name = classifier or manifest["primary"]
    if name not in manifest["classifiers"]:
        raise KeyError(
            f"{model_dir} has no {name!r} classifier; it has {sorted(manifest['classifiers'])}"
        )
    folder_name = str(manifest["classifiers"][name]["folder"])
    if folder_name in ("", ".", "..") or "/" in folder_name or "\\" in folder_name:
        raise ValueError(
            f"{model_dir}: classifier folder {folder_name!r} points outside the model folder"
        )
    return registry.get(name).load(Path(model_dir) / folder_name)


@dataclasses.dataclass
class RunResult:
    """What a run wrote and what failed, in record order."""

    written: list[str]  # record names with their classifier's output file
    failures: list[tuple[str, str]]  # (record, reason)
    # Failed records given an all-negative output file, so that the folder stays scoreable.
    placeholders: list[str] = dataclasses.field(default_factory=list)


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
        """(name, scores, problem) of each record of the batch."""
        try:
            scores = np.asarray(model.predict_proba([r for _, r in batch]), dtype=float)
            _check_scores(scores, len(batch), len(classes))
        except Exception as error:
            if len(batch) > 1:  # isolate the record at fault by retrying one at a time
                return [row for item in batch for row in predict([item])]
            return [(batch[0][0], None, f"classification failed: {type(error).__name__}: {error}")]
        return [(name, row, None) for (name, _), row in zip(batch, scores)]

    def emit(batch) -> None:
        for name, row, problem in predict(batch):
            if problem is None and not np.all(np.isfinite(row)):
                problem = "classifier returned non-finite scores"
            if problem is None:
                row = np.clip(row, 0.0, 1.0)
                labels = (row >= model.thresholds_).astype(int)
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


def _worker_main(worker, model_dir, classifier, threads, tasks, results) -> None:
    """A worker process: load the model once, then classify the tasks sent to it, reporting
    every record as it is done (so that a crash costs only the records not yet reported)."""
    apply_threads(threads)
    try:
        model = load_model(model_dir, classifier)
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
    model_dir, classifier, paths, output_dir, batch_size, workers, report, threads
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
            args=(worker, str(model_dir), classifier, threads, tasks, results),
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
            model = load_model(model_dir, classifier)
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
                model_dir, classifier, paths, output_dir, batch_size, workers, report, per_process
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
    return result


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
    from team_code.data.outputs import read_output
    from team_code.report import write_report

    model = load_model(model_dir, classifier)
    paths = {p.stem: p for p in find_records(data_dir)}
    names = [n for n in (records if records is not None else paths) if n in paths]
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
