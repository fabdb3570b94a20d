"""Named sets of classifier options: ``train_model.py DATA MODEL --preset cpu``.

- ``paper``: every classifier at its own defaults, the papers' settings, sized for a GPU and
  the 43,101 Challenge records (parallel_cnn on 12 x 10,000 samples at 500 Hz,
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

Where no preset is named, :func:`default_preset` chooses: ``$ECG_KIT_PRESET`` when set, else
``paper`` where training runs on CUDA and ``cpu`` elsewhere. Every way of training (the kit's
``train_model.py``, :func:`team_code.training.train`, the organizers' 2020 and 2021 scripts)
goes through :func:`choose_preset`, which logs the choice and its reason.

A preset only fills options: ``--set NAME.OPTION=VALUE`` given with it wins. Options of
classifiers that are neither trained nor members of a trained hybrid are left out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

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

#: Environment variable naming the preset to use wherever none is given.
PRESET_ENV = "ECG_KIT_PRESET"


def default_preset(device: str = "auto") -> tuple[str, str]:
    """The preset to train with when none is named, and why: ``$ECG_KIT_PRESET`` when set;
    else ``paper`` when ``device`` is CUDA (``"auto"``: when CUDA is available), ``cpu``
    otherwise. An unknown name in ``$ECG_KIT_PRESET`` raises ``ValueError`` naming it."""
    named = os.environ.get(PRESET_ENV, "").strip()
    if named:
        if named not in PRESETS:
            raise ValueError(
                f"${PRESET_ENV}={named!r} is not a preset; known presets: "
                f"{', '.join(sorted(PRESETS))}"
            )
        return named, f"${PRESET_ENV}={named}"
    device = (device or "auto").strip().lower()
    if device == "auto":
        import torch  # only where the device must be looked at

        if torch.cuda.is_available():
            return "paper", "CUDA is available"
        return "cpu", "CUDA is not available"
    if device.startswith("cuda"):
        return "paper", f"training on {device}"
    return "cpu", f"training on {device}"


def choose_preset(
    preset: str | None, device: str = "auto", log: Callable[[str], None] | None = None
) -> str:
    """``preset`` when given, else :func:`default_preset`'s choice for ``device``; the choice
    and its reason go to ``log``. An unknown name raises ``ValueError``."""
    if preset is None:
        preset, reason = default_preset(device)
    else:
        preset_options(preset)  # an unknown name fails here
        reason = "asked for"
    if log is not None:
        log(f"preset {preset} ({reason})")
    return preset


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
