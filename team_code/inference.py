"""Inference: ``run(model, data, outputs)`` writes one output file per record of a folder, in
one process or in a pool of worker processes that each load the model once.

A record that cannot be read, classified or written is reported with its name and the reason,
and never costs the other records their outputs; a worker that dies costs a retry, not records.
:func:`decide` turns a loaded model's scores into labels with its thresholds, each record by
its lead set's model where the folder holds several
(:class:`~team_code.model_folder.LeadSetModels`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from team_code.classifiers.base import Classifier
from team_code.context import RunContext, say
from team_code.data.outputs import write_output
from team_code.data.records import (
    STANDARD_LEADS,
    Record,
    RecordError,
    find_records,
    load_record,
)
from team_code.model_folder import LeadSetModels, load_manifest, load_model, served_lead_sets
from team_code.threads import apply_threads, choose_threads, requested_threads


def decide(model, records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, labels)`` of ``records``: the model's scores and its own decision's labels
    (``model.decide``: each class at its threshold, or a joint decision policy's); a
    :class:`~team_code.model_folder.LeadSetModels` decides each record by its lead set's model
    and thresholds. A record that has none of the leads the model reads raises
    :class:`RecordError` (nothing of it could be measured)."""
    if isinstance(model, LeadSetModels):
        return _decide_by_lead_set(model, records)
    _check_leads(model.task_.leads, records)
    _check_amplitude(model.task_.leads, records)
    scores = np.asarray(model.predict_proba(records), dtype=float)
    _check_scores(scores, len(records), len(model.classes_))
    return scores, model.decide(scores)


def _check_leads(wanted: Sequence[str], records: Sequence[Record]) -> None:
    """Refuse the first record that has none of the ``wanted`` leads (a header without lead
    names, whose leads the reader calls ``lead1``, ``lead2``, ...); a record with some of them
    is served with what it has, with a note on stderr where it also names leads the reader
    did not recognise (``V6-chest``): one of them may be a missing lead under another name."""
    for record in records:
        if not set(record.leads) & set(wanted):
            raise RecordError(
                record.name,
                f"has none of the leads the model reads ({', '.join(wanted)}); "
                f"its leads: {', '.join(record.leads)}",
            )
        missing = [lead for lead in wanted if lead not in record.leads]
        unknown = [lead for lead in record.leads if lead not in STANDARD_LEADS]
        if missing and unknown:
            say(
                f"note: record {record.name}: no lead named {', '.join(missing)}, and leads "
                f"named {', '.join(unknown)}, which are not standard names; classified "
                "without the missing ones"
            )


#: Below this range (mV, between the 0.5th and 99.5th percentiles) on every lead a record is
#: flat: no ECG, or samples written in millivolts under a gain of ADC units per millivolt.
FLAT_RANGE_MV = 0.02
#: Above this range on the median lead a record is no surface ECG in millivolts (the 331
#: shared records: 0.12-6.4 mV): most likely a gain of 1 for samples in microvolts.
LARGE_RANGE_MV = 50.0


def _check_amplitude(wanted: Sequence[str], records: Sequence[Record]) -> None:
    """A note on stderr for a record whose leads are all flat or whose typical lead spans an
    implausible range: a wrong gain in the header, which the reader cannot tell from a real
    signal. The record is classified all the same (a flat one as having no finding)."""
    for record in records:
        rows = [i for i, lead in enumerate(record.leads) if lead in wanted]
        # a long record: every step-th sample (the limits lie decades from any ECG; a sort of
        # every sample of a 30-min record would cost more than classifying it)
        step = max(1, record.signal.shape[1] // 5_000)
        x = np.asarray(record.signal[rows, ::step], dtype=float)
        if not x.size or not np.isfinite(x).all():
            continue
        lo, hi = np.percentile(x, [0.5, 99.5], axis=1)
        spans = hi - lo
        if spans.max() < FLAT_RANGE_MV:
            say(
                f"note: record {record.name}: every lead is flat (largest range "
                f"{spans.max():.4f} mV); classified as having no finding. If it holds an ECG, "
                "check the header's gain (ADC units per mV) and the samples' units"
            )
        elif np.median(spans) > LARGE_RANGE_MV:
            say(
                f"note: record {record.name}: its typical lead spans {np.median(spans):.0f} mV, "
                "beyond any surface ECG; check the header's gain (ADC units per mV): samples "
                "in microvolts under a gain of 1 read 1000 times too large"
            )


def _decide_by_lead_set(
    models: LeadSetModels, records: Sequence[Record]
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels, each record by its lead set's model and thresholds."""
    chosen = [models.choose(r) for r in records]
    scores = np.zeros((len(records), len(models.classes_)))
    labels = np.zeros_like(scores, dtype=bool)
    for name, model in models.models.items():
        rows = [i for i, c in enumerate(chosen) if c == name]
        if rows:
            part, binary = decide(model, [records[i] for i in rows])
            scores[rows], labels[rows] = part, binary
    return scores, labels


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


#: The reason of a record whose classifier returned non-finite scores.
NON_FINITE = "classifier returned non-finite scores"


def output_row(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """One record's ``(scores, labels)`` as ``run_model.py`` writes them (scores clipped to
    [0, 1], labels 0/1), or None when the classifier returned non-finite scores."""
    if not np.all(np.isfinite(scores)):
        return None
    return np.clip(scores, 0.0, 1.0), np.asarray(labels).astype(int)


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
            written = None if problem is not None else output_row(row, labels)
            if problem is None and written is None:
                problem = NON_FINITE
            if written is not None:
                row, labels = written
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
    log: Callable[[str], None] = say,
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
