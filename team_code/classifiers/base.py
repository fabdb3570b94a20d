"""The classifier interface every family implements (scikit-learn-like).

``__init__(config)`` stores; ``fit(records, classes)`` learns, and learned state ends in ``_``;
``predict_proba(records)`` returns (n_records, n_classes) scores in [0, 1]; ``predict`` applies
``thresholds_``; ``save(folder)`` / ``load(folder)`` write and read JSON plus tensors, never
pickle. A family declares a frozen dataclass ``Config`` with a comment per field.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from team_code.data.labels import label_matrix
from team_code.data.records import Record, RecordSet
from team_code.fileio import load_json, save_json

CONFIG_FILE = "config.json"


@dataclasses.dataclass(frozen=True)
class EmptyConfig:
    """A classifier with no options."""


def config_from_dict(config_class: type, values: Mapping[str, Any]):
    """Build a frozen config from JSON-like values: unknown keys raise, lists become tuples."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(
            f"{config_class.__name__} has no option(s) {unknown}; options: {sorted(fields)}"
        )
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
        fields = sorted(f.name for f in dataclasses.fields(config_class))
        raise ValueError(f"{config_class.__name__} has no option {key!r}; options: {fields}")
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


def record_labels(records: Sequence[Record]) -> list[tuple[str, ...]]:
    """Each record's raw #Dx codes, from headers when the records are lazy."""
    if isinstance(records, RecordSet):
        return records.labels
    return [r.labels for r in records]


class Classifier:
    """Base class: configuration, thresholds, and the JSON side of save/load."""

    #: Registry name of the family.
    name: ClassVar[str] = "base"
    #: Frozen dataclass of the family's options.
    Config: ClassVar[type] = EmptyConfig

    def __init__(self, config=None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def quick_config(cls):
        """A configuration that trains in seconds on a few records (smoke tests, the demo)."""
        return cls.Config()

    # -- learning ------------------------------------------------------------------------
    def fit(self, records: Sequence[Record], classes: Sequence[str]) -> Classifier:
        """Learn from records whose #Dx labels give the truth; ``classes`` are representatives."""
        raise NotImplementedError

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        """(n_records, n_classes) scores in [0, 1]."""
        raise NotImplementedError

    def predict(self, records: Sequence[Record]) -> np.ndarray:
        """Binary labels: scores at or above each class's threshold."""
        return self.predict_proba(records) >= self.thresholds_

    def label_matrix(self, records: Sequence[Record]) -> np.ndarray:
        """Truth for ``records`` over ``classes_`` (equivalent codes merged)."""
        return label_matrix(record_labels(records), self.classes_)

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> None:
        """Write config, classes and thresholds as JSON, then the family's own state."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_json(
            folder / CONFIG_FILE,
            {
                "classifier": self.name,
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
        model = cls(config_from_dict(cls.Config, meta.get("config", {})))
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
        return {"config": dataclasses.asdict(self.config)}
