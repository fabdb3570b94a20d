"""Options of a training: which classifiers, and each one's config.

``train_model.py --classifiers hybrid --option parallel_cnn.epochs=5 --preset cpu`` becomes,
through :func:`parse_options` and :func:`configure`, one config per trained classifier: the
family's defaults, the preset's options (:mod:`team_code.presets`) under the user's, with the
members of ensembles given theirs. Unknown classifiers and options fail here, before any work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from team_code.classifiers import registry
from team_code.classifiers.base import Classifier, apply_options
from team_code.presets import choose_preset, with_preset

#: What ``train_model.py`` trains when no ``--classifiers`` is given.
DEFAULT_CLASSIFIERS: tuple[str, ...] = ("hybrid",)


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
