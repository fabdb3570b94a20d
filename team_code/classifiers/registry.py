"""The classifier registry: names to classes, resolved lazily.

Built-in families are listed as ``module:Class`` strings and imported only when asked for, so
that using ``rules`` never imports torch. Plug-ins add themselves with :func:`register`.
"""

from __future__ import annotations

import importlib

from team_code.classifiers.base import Classifier

_BUILTIN: dict[str, str] = {
    "prevalence": "team_code.classifiers.prevalence:PrevalenceClassifier",
    "rules": "team_code.classifiers.rules:RulesClassifier",
    "parallel_cnn": "team_code.classifiers.parallel_cnn:ParallelCNNClassifier",
    "cwt_googlenet": "team_code.classifiers.cwt_googlenet:CWTGoogLeNetClassifier",
    "beats": "team_code.classifiers.beats:BeatsClassifier",
    "hybrid": "team_code.classifiers.hybrid:HybridClassifier",
}
_REGISTERED: dict[str, type[Classifier]] = {}


def register(name: str):
    """Class decorator adding a classifier family under ``name``."""

    def decorate(cls: type[Classifier]) -> type[Classifier]:
        if name in _BUILTIN or name in _REGISTERED:
            raise ValueError(f"a classifier named {name!r} is already registered")
        cls.name = name
        _REGISTERED[name] = cls
        return cls

    return decorate


def available() -> list[str]:
    """Names of every known classifier family."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def get(name: str) -> type[Classifier]:
    """The class registered under ``name``; an unknown name raises with the known ones."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _BUILTIN:
        raise KeyError(f"unknown classifier {name!r}; known classifiers: {', '.join(available())}")
    module_name, _, class_name = _BUILTIN[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if cls.name != name:
        raise TypeError(f"{_BUILTIN[name]} declares name {cls.name!r}, registered as {name!r}")
    return cls


def create(name: str, config=None) -> Classifier:
    """A new, unfitted classifier of family ``name``."""
    return get(name)(config)
