"""Named sets of classifier options: ``train_model.py DATA MODEL --preset cpu``.

- ``paper`` (the default): every classifier at its own defaults, the papers' settings, sized
  for a GPU and the 43,101 Challenge records (parallel_cnn on 12 x 10,000 samples at 500 Hz,
  GoogLeNet at 224 px, 30 epochs).
- ``cpu``: the deep engines sized for a 2-core CPU and a few hundred records (parallel_cnn on
  10 s at 250 Hz with 16 filters per branch, inputs shifted at random in time, thresholds
  chosen on out-of-source scores where the training records come from several sources (one
  extra training per source; a class leaves the floor's decision only where that pays on
  most training sources, and only with 10+ positives; the loss skips the classes a record's
  source never labels and weighs each source to the pooled prevalence of each class);
  GoogLeNet at 64 px for 3 epochs on a balanced draw of at most 100 records per class; the
  beat networks for 4 epochs on 8,000 beats; the hybrid with 3 inner folds). The demo
  (``scripts/demo.sh``) and the benchmarks use it.

A preset only fills options: ``--set NAME.OPTION=VALUE`` given with it wins. Options of
classifiers that are neither trained nor members of a trained hybrid are left out.
"""

from __future__ import annotations

from collections.abc import Mapping

PRESETS: dict[str, dict[str, dict[str, str]]] = {
    "paper": {},
    "cpu": {
        "parallel_cnn": {
            "fs_hz": "250",
            "length": "2500",
            "filters": "16",
            "epochs": "10",
            "lr": "0.001",
            "batch_size": "8",
            "augment_shift": "true",
            "threshold_split": "sources",
            "source_vote": "majority",
            "label_mask": "source",
            "source_balance": "true",
        },
        "cwt_googlenet": {
            "image_size": "64",
            "epochs": "3",
            "lr": "0.001",
            "batch_size": "16",
            "n_max": "100",
            "max_copies": "2",
        },
        "beats": {"epochs": "4", "max_beats": "8000"},
        "hybrid": {"n_folds": "3"},
    },
}

DEFAULT_PRESET = "paper"


def preset_options(name: str) -> dict[str, dict[str, str]]:
    """The options of preset ``name`` (a copy), as ``{classifier: {option: value}}``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return {family: dict(values) for family, values in PRESETS[name].items()}


def with_preset(
    name: str, options: Mapping[str, Mapping[str, str]], wanted: set[str]
) -> dict[str, dict[str, str]]:
    """``options`` on top of preset ``name``'s, for the classifiers in ``wanted`` only (the
    trained ones and the members of trained hybrids): the user's options win."""
    merged = {family: values for family, values in preset_options(name).items() if family in wanted}
    for family, values in options.items():
        merged[family] = {**merged.get(family, {}), **values}
    return merged
