"""What a training is about (:class:`Task`) and how it runs (:class:`RunContext`).

Every classifier learns with ``fit(records, task, ctx)``:

- ``task`` defines the problem: the scoring table (the Challenge 2020 or 2021 table, or a
  ``weights.csv`` of the same layout), hence the scored classes and how equivalent codes merge,
  and the lead set the model reads. It is saved with the model (``config.json``, the
  manifest), because the model's outputs mean nothing without it.
- ``ctx`` defines one run: the device, worker processes, the per-record cache folder, the
  work folder for checkpoints, whether to resume from it, progress output and the log. It is
  never saved with a model: the same model trained on a GPU with a cache and on a CPU without
  one is the same model. An ensemble hands each member and fold a child context
  (:meth:`RunContext.child`), so no two trainings share a checkpoint.

:func:`is_main_process` says whether this process writes (``torchrun``'s rank 0, or the only
process); :func:`say` is a run's default log. Both sit here, below the classifiers, so that
a classifier never imports the modules that drive it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from evaluation.tables import TASKS, task_weights_path
from team_code.data.labels import NORMAL_CLASS, ScoredClasses, label_matrix, scored_classes
from team_code.data.leads import LEAD_SETS, parse_leads
from team_code.data.records import STANDARD_LEADS, Record, RecordSet


def lead_set_name(leads: Sequence[str]) -> str:
    """``"12"``, ``"6"``... for the Challenge's lead sets, else the leads joined by commas."""
    for name, members in LEAD_SETS.items():
        if tuple(leads) == members:
            return name
    return ",".join(leads)


def record_names(records: Sequence[Record]) -> list[str]:
    """The records' names, without reading the signals of a :class:`RecordSet`."""
    return records.names if isinstance(records, RecordSet) else [r.name for r in records]


def record_labels(records: Sequence[Record]) -> list[tuple[str, ...]]:
    """Each record's raw #Dx codes, from headers when the records are lazy."""
    if isinstance(records, RecordSet):
        return records.labels
    return [r.labels for r in records]


@dataclasses.dataclass(frozen=True)
class Task:
    """The problem a model solves: which scoring table (classes, equivalences, weights) and
    which leads it reads. Saved with the model."""

    # "2020", "2021" (the shipped Challenge tables) or the path of a weights.csv.
    table: str = "2020"
    # The leads the model reads, in this order; a record must have all of them.
    leads: tuple[str, ...] = STANDARD_LEADS
    # The classes to learn (representative codes of the table): () for all scored classes.
    subset: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "table", str(self.table))
        object.__setattr__(self, "leads", tuple(self.leads))
        object.__setattr__(self, "subset", tuple(self.subset))
        if not self.leads:
            raise ValueError("a task needs at least one lead")
        unknown = [name for name in self.leads if name not in STANDARD_LEADS]
        if unknown:
            raise ValueError(f"unknown lead(s) {unknown}; leads: {', '.join(STANDARD_LEADS)}")
        if self.table not in TASKS and not Path(self.table).is_file():
            raise ValueError(
                f"task table {self.table!r} is neither {' nor '.join(TASKS)} nor a weights.csv file"
            )
        if self.table not in TASKS:
            self._check_custom_table()

    def _check_custom_table(self) -> None:
        """A custom table must score sinus rhythm as a class of its own (the first code of
        its group): the challenge metric measures every output against the "inactive" one
        that gives sinus rhythm alone."""
        scored = self.scored
        if NORMAL_CLASS in scored.codes:
            return
        where = (
            f"it stands in the group of {scored.representative[NORMAL_CLASS]}; it must be the "
            "first code of its group"
            if NORMAL_CLASS in scored.representative
            else "it is not among the table's classes"
        )
        raise ValueError(
            f"task table {self.weights_path}: the challenge metric needs sinus rhythm "
            f"{NORMAL_CLASS} (its 'inactive' reference class) as a scored class: {where}"
        )

    @property
    def weights_path(self) -> Path:
        """The ``weights.csv`` of the task (its ``dx_mapping_scored.csv`` lies beside it)."""
        return _table_path(self.table)

    @cached_property
    def scored(self) -> ScoredClasses:
        """The scored classes of the table, equivalent codes merged."""
        return scored_classes(self.weights_path)

    @property
    def classes(self) -> tuple[str, ...]:
        """Representative codes of the classes learnt: the table's scored classes (24 in 2020,
        26 in 2021), or the subset asked for (in its order)."""
        if not self.subset:
            return self.scored.codes
        unknown = sorted(set(self.subset) - set(self.scored.codes))
        if unknown:
            raise ValueError(f"classes {unknown} are not scored classes of the {self.table} table")
        return self.subset

    @classmethod
    def of_classes(cls, classes: Sequence[str], leads: Sequence[str] = STANDARD_LEADS) -> Task:
        """The task of learning ``classes`` of the shipped table that scores them all."""
        from team_code.data.labels import table_for

        table = table_for(classes)
        name = next(t for t in TASKS if scored_classes(_table_path(t)) is table)
        subset = () if tuple(classes) == table.codes else tuple(classes)
        return cls(name, tuple(leads), subset)

    @property
    def lead_set(self) -> str:
        """The lead set's short name (``"12"``, ``"2"``, or the leads joined by commas)."""
        return lead_set_name(self.leads)

    def abbreviation(self, code: str) -> str:
        return self.scored.abbreviation(code)

    def truth(
        self, records_or_labels: Sequence[Record] | Sequence[Iterable[str]], classes=None
    ) -> np.ndarray:
        """(n, n_classes) bool labels of records (or of their raw #Dx code lists), equivalent
        codes merged by this task's table; ``classes`` defaults to the task's."""
        items = records_or_labels
        if isinstance(items, RecordSet) or (len(items) and isinstance(items[0], Record)):
            items = record_labels(items)
        return label_matrix(items, self.classes if classes is None else classes, self.scored)

    def to_json(self) -> dict:
        table = self.table if self.table in TASKS else str(self.weights_path)
        values = {"table": table, "leads": list(self.leads)}
        if self.subset:
            values["classes"] = list(self.classes)
        return values

    @classmethod
    def from_json(cls, values: dict | None) -> Task:
        """The task saved by :meth:`to_json`; models saved before tasks existed (no entry) were
        trained for the 2020 table on twelve leads."""
        values = values or {}
        return cls(
            table=values.get("table", "2020"),
            leads=tuple(values.get("leads", STANDARD_LEADS)),
            subset=tuple(values.get("classes", ())),
        )

    def describe(self) -> str:
        """``"2021 table, 2 leads"``."""
        table = self.table if self.table in TASKS else Path(self.table).name
        return f"{table} table, {self.lead_set} leads"


def _table_path(table: str) -> Path:
    """The weights.csv of a task table: a shipped one (``TASKS``) or the path given."""
    return task_weights_path(table) if table in TASKS else Path(table).resolve()


def say(message: str) -> None:
    """The default log of a run: ``message`` on stderr, at once."""
    print(message, file=sys.stderr, flush=True)


def is_main_process() -> bool:
    """False in the non-zero ranks of a ``torchrun`` job, which train but do not write."""
    return os.environ.get("RANK", "0") == "0"


@dataclasses.dataclass(frozen=True)
class RunContext:
    """How one training or inference runs; never saved with a model."""

    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"
    workers: int = 0  # processes preprocessing or measuring records (0: the free cores)
    loader_workers: int = 0  # DataLoader worker processes of the deep engines
    # Per-record caches (network inputs, measurements): a folder; None: $ECG_KIT_CACHE when
    # set, else nothing is cached (inputs are computed in memory).
    cache_dir: str | None = None
    workdir: str | None = None  # checkpoints and finished parts of this training (None: none)
    resume: bool = False  # continue from what workdir holds (a checkpoint, finished parts)
    progress: bool = True  # progress output on stderr
    log: Callable[[str], None] = dataclasses.field(default=say, compare=False, repr=False)

    def child(self, *parts: str) -> RunContext:
        """The context of one part of this run (a member, a fold): its own work folder under
        this one (none when this run has none)."""
        workdir = str(Path(self.workdir, *parts)) if self.workdir else None
        return dataclasses.replace(self, workdir=workdir)

    def replace(self, **changes) -> RunContext:
        return dataclasses.replace(self, **changes)

    @property
    def cache(self) -> Path | None:
        """The resolved cache folder (None: compute in memory)."""
        from team_code.record_cache import default_cache_dir

        return default_cache_dir(self.cache_dir if self.cache_dir is not None else "auto")

    def cache_option(self) -> str:
        """The cache folder as the per-record cache functions take it ("none": in memory)."""
        cache = self.cache
        return str(cache) if cache is not None else "none"

    def preprocess_workers(self) -> int:
        """Processes for a preprocessing or measurement pass: ``workers``, or when 0 the
        compute threads this process may use (:mod:`team_code.threads`)."""
        from team_code.threads import worker_processes

        return worker_processes(self.workers)

    def checkpoint(self, name: str = "checkpoint.pt") -> str | None:
        """The work folder to resume a deep training from: when resuming and a checkpoint is
        there; else None (train afresh)."""
        if self.resume and self.workdir and (Path(self.workdir) / name).is_file():
            return self.workdir
        return None

    def quiet(self) -> RunContext:
        """This context without progress output (inference inside a training, the workers)."""
        return dataclasses.replace(self, progress=False)


#: A context for code that trains in memory: no cache, no work folder, no progress output.
IN_MEMORY = RunContext(cache_dir="none", progress=False)


def default_task() -> Task:
    """The Challenge 2020 task on twelve leads."""
    return Task()


__all__ = [
    "IN_MEMORY",
    "LEAD_SETS",
    "RunContext",
    "Task",
    "default_task",
    "is_main_process",
    "lead_set_name",
    "parse_leads",
    "record_labels",
    "record_names",
    "say",
]
