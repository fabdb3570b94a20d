"""The classifier interface every family implements (scikit-learn-like).

``__init__(config)`` stores; ``fit(records, task, ctx)`` learns (:mod:`team_code.context`:
``task`` is the problem, saved with the model; ``ctx`` how this run goes, never saved), and
learned state ends in ``_``; ``predict_proba(records)`` returns (n_records, n_classes) scores
in [0, 1]; ``predict`` applies ``decide`` (``thresholds_``, or a family's joint decision
policy); ``use(ctx)`` sets how inference runs (device,
cache); ``save(folder)`` / ``load(folder)`` write and read JSON plus tensors, never pickle. A
family declares a frozen dataclass ``Config`` with a comment per field: what defines the model,
nothing about a run. An ensemble declares the families it trains with :meth:`Classifier.members`
and takes their options with :meth:`Classifier.with_member_options`; the harness needs nothing
else from a family, so a new one is its own module plus one registry line. What a model can
show of how it scored a record (the per-record report's panels) it gives through
:meth:`Classifier.evidence`, one :class:`Evidence` per record.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from team_code.classifiers.thresholds import at_thresholds
from team_code.context import RunContext, Task, record_labels
from team_code.data.records import Record
from team_code.fileio import load_json, save_json

CONFIG_FILE = "config.json"

#: Options that once described a run inside model configs (before ``RunContext``): models
#: saved with them still load (the values are dropped), and setting one names its new place.
RUN_OPTIONS = {
    "device": "train_model.py/run_model.py --device",
    "num_workers": "--loader-workers",
    "preprocess_workers": "--workers",
    "workers": "--workers",
    "cache_dir": "$ECG_KIT_CACHE or train_model.py --cache",
    "workdir": "MODEL/.work (train_model.py)",
    "resume": "train_model.py --resume",
    "progress": "--no-progress",
}


def _unknown_options(config_class: type, unknown) -> str:
    fields = sorted(f.name for f in dataclasses.fields(config_class))
    moved = [f"{k} ({RUN_OPTIONS[k]})" for k in unknown if k in RUN_OPTIONS]
    text = f"{config_class.__name__} has no option(s) {sorted(unknown)}; options: {fields}"
    if moved:
        text += "; run settings are not model options: " + ", ".join(moved)
    return text


@dataclasses.dataclass(frozen=True)
class EmptyConfig:
    """A classifier with no options."""


def config_from_dict(config_class: type, values: Mapping[str, Any], saved: bool = False):
    """Build a frozen config from JSON-like values: unknown keys raise, lists become tuples.
    ``saved``: values read from a model folder, whose former run options are dropped."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    if saved:
        values = {k: v for k, v in values.items() if k in fields or k not in RUN_OPTIONS}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(_unknown_options(config_class, unknown))
    hints = typing.get_type_hints(config_class)
    converted = {}
    for key, value in values.items():
        hint = hints.get(key)
        origin = typing.get_origin(hint)
        if isinstance(value, list) and (origin is tuple or hint is tuple):
            value = tuple(value)
        converted[key] = value
    return config_class(**converted)


def coerce_option(config_class: type, key: str, text: str):
    """Convert a command-line string to the type of a config field (``epochs=5``)."""
    hints = typing.get_type_hints(config_class)
    if key not in hints:
        raise ValueError(_unknown_options(config_class, [key]))
    hint = hints[key]
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"option {key} takes true/false, not {text!r}")
    if origin is tuple or hint is tuple:
        item = args[0] if args else str
        return tuple(item(v) for v in text.split(",") if v != "")
    if text.lower() == "none" and type(None) in typing.get_args(hint):
        return None
    target = args[0] if args and origin is not None else hint
    return target(text)


def apply_options(config_class: type, values: Mapping[str, Any]):
    """The default config of ``config_class`` with ``values`` applied: strings (from the
    command line) coerced to the field types, lists (from JSON) made tuples, others as given."""
    updates = {}
    for key, value in values.items():
        if isinstance(value, str):
            value = coerce_option(config_class, key, value)
        elif isinstance(value, list):
            value = tuple(value)
        updates[key] = value
    config = config_class()
    return dataclasses.replace(config, **updates) if updates else config


@dataclasses.dataclass
class Evidence:
    """What a model shows of how it scored one record (:meth:`Classifier.evidence`); every
    part is optional, a family gives the parts it has."""

    # The rules' account of the record (the layout of ``RulesClassifier.explain``): every
    # rule's score, operating threshold and verdict, and the terms that decided it.
    rules: dict | None = None
    # The model's own scores (n_classes,), where they come with its evidence (the rules'
    # scores are part of their account); None otherwise.
    scores: np.ndarray | None = None
    # Member name -> that member's scores (n_classes,), for an ensemble's members whose
    # evidence carries them.
    members: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    # The settings of the scalogram image an engine classifies (a ``CWTGoogLeNetConfig``).
    scalogram: Any = None

    @staticmethod
    def gather(
        parts: Mapping[str, Sequence[Evidence]], n_records: int, n_classes: int
    ) -> list[Evidence]:
        """An ensemble's evidence for ``n_records`` records from its members' (name -> one
        :class:`Evidence` per record): the first rules account and scalogram settings there
        are, and every member's own scores of ``n_classes`` classes under its name."""
        for name, part in parts.items():
            if len(part) != n_records:
                raise ValueError(f"{name} gave evidence for {len(part)} of {n_records} records")
        gathered: list[Evidence] = []
        for i in range(n_records):
            evidence = Evidence()
            for name, part in ((name, part[i]) for name, part in parts.items()):
                evidence.rules = evidence.rules if evidence.rules is not None else part.rules
                if evidence.scalogram is None:
                    evidence.scalogram = part.scalogram
                if part.scores is not None and np.shape(part.scores) == (n_classes,):
                    evidence.members[name] = np.asarray(part.scores, dtype=float)
                for member, row in part.members.items():
                    evidence.members.setdefault(f"{name}.{member}", row)
            gathered.append(evidence)
        return gathered


class Classifier:
    """Base class: configuration, thresholds, and the JSON side of save/load."""

    #: Registry name of the family.
    name: ClassVar[str] = "base"
    #: Frozen dataclass of the family's options.
    Config: ClassVar[type] = EmptyConfig
    #: The lowest score at which a threshold of this family's scores still means a detection
    #: (an ensemble's threshold search stays at or above it); None: any score may.
    lowest_decision: ClassVar[float | None] = None

    #: How this model runs (set by ``fit`` and ``use``; never saved).
    ctx: RunContext = RunContext()
    #: The problem the model was fitted for (set by ``fit``, saved, read back by ``load``).
    task_: Task = Task()

    def __init__(self, config=None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def quick_config(cls):
        """A configuration that trains in seconds on a few records (smoke tests, the demo)."""
        return cls.Config()

    @classmethod
    def members(cls, config) -> tuple[str, ...]:
        """The registry names of the families this classifier trains inside itself (an
        ensemble's members); none for a single engine."""
        return ()

    @classmethod
    def unavailable(cls, config) -> str | None:
        """Why this family cannot train with ``config`` (data it needs is not given), for an
        ensemble to leave it out with that message; None when it can."""
        return None

    @classmethod
    def with_member_options(cls, config, options: Mapping[str, Mapping[str, str]]):
        """``config`` with options for its members (only ensembles take them)."""
        raise ValueError(f"{cls.name} trains no other classifier; options for {sorted(options)}")

    # -- learning ------------------------------------------------------------------------
    def fit(self, records: Sequence[Record], task: Task, ctx: RunContext | None = None):
        """Learn ``task`` from records whose #Dx labels give the truth; ``ctx`` says how the
        run goes. Families start with :meth:`_begin`."""
        raise NotImplementedError

    def _begin(self, task: Task | None, ctx: RunContext | None) -> None:
        """Record the task (classes from its table) and the run context of a fit."""
        self.task_ = task if task is not None else Task()
        self.classes_ = tuple(self.task_.classes)
        self.ctx = ctx if ctx is not None else RunContext()

    def use(self, ctx: RunContext) -> Classifier:
        """Run inference under ``ctx`` (device, cache, progress); returns self."""
        self.ctx = ctx
        return self

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        """(n_records, n_classes) scores in [0, 1]."""
        raise NotImplementedError

    def predict(self, records: Sequence[Record]) -> np.ndarray:
        """Binary labels of ``records``: :meth:`decide` on their scores."""
        return self.decide(self.predict_proba(records))

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """(n, n_classes) bool labels of scores (n, n_classes): each class at or above its
        threshold. A family with its own decision policy overrides this."""
        return at_thresholds(scores, self.thresholds_)

    def evidence(self, records: Sequence[Record]) -> list[Evidence]:
        """What the model can show of how it scored each of ``records``, one
        :class:`Evidence` per record, for the per-record report. It never classifies the
        records again (the report shows the scores the run wrote): a family gives what it
        keeps or derives without its network; an ensemble gathers its members'. Nothing by
        default."""
        return [Evidence() for _ in records]

    def label_matrix(self, records: Sequence[Record]) -> np.ndarray:
        """Truth for ``records`` over ``classes_`` (equivalent codes merged by the task's
        table)."""
        return self.task_.truth(record_labels(records), self.classes_)

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> None:
        """Write config, classes and thresholds as JSON, then the family's own state."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_json(
            folder / CONFIG_FILE,
            {
                "classifier": self.name,
                "task": self.task_.to_json(),
                "config": dataclasses.asdict(self.config),
                "classes": list(self.classes_),
                "thresholds": [float(t) for t in self.thresholds_],
            },
        )
        self._save_state(folder)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Classifier:
        """Read a folder written by :meth:`save`."""
        folder = Path(folder)
        meta = load_json(folder / CONFIG_FILE)
        if meta.get("classifier") != cls.name:
            raise ValueError(
                f"{folder} holds a {meta.get('classifier')!r} classifier, not {cls.name!r}"
            )
        model = cls(config_from_dict(cls.Config, meta.get("config", {}), saved=True))
        model.task_ = Task.from_json(meta.get("task"))
        model.classes_ = tuple(meta["classes"])
        model.thresholds_ = np.asarray(meta["thresholds"], dtype=float)
        model._load_state(folder)
        return model

    def _save_state(self, folder: Path) -> None:
        """Write learned state beyond classes and thresholds (tensors, JSON)."""

    def _load_state(self, folder: Path) -> None:
        """Read what :meth:`_save_state` wrote."""

    # -- description ---------------------------------------------------------------------
    def summary(self) -> dict:
        """A JSON-able description for the model manifest."""
        return {"config": dataclasses.asdict(self.config), "task": self.task_.to_json()}
