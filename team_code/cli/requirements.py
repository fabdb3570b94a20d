"""The packages the kit's commands import, checked before any of them is: a machine where the
kit's dependencies were never installed gets one clear message with the install command
instead of a traceback from deep inside the first import that fails."""

from __future__ import annotations

import importlib.util
import sys

#: Import name -> the distribution ``requirements.txt`` pins, for every package the training
#: and classifying commands import (matplotlib, for ``ecg-kit report`` only, is not needed).
REQUIRED: dict[str, str] = {
    "numpy": "numpy",
    "scipy": "scipy",
    "torch": "torch",
    "wfdb": "wfdb",
    "pywt": "PyWavelets",
    "safetensors": "safetensors",
    "tqdm": "tqdm",
    "sklearn": "scikit-learn",
}

#: Pinned in ``requirements.txt`` but needed by one command only.
OPTIONAL: dict[str, str] = {"matplotlib": "matplotlib"}

INSTALL_HINT = (
    "install them with `bash scripts/env.sh` from the repository (a virtual environment with "
    "the CPU build of torch), or `pip install -r requirements.txt`, then run this again from "
    "that environment"
)


def missing(modules=REQUIRED) -> list[str]:
    """The distributions of ``modules`` (import name -> distribution) that cannot be imported
    here, found without importing anything."""
    return [dist for name, dist in modules.items() if importlib.util.find_spec(name) is None]


def check(prog: str) -> bool:
    """Whether every required package can be imported; if not, says which are missing and how
    to install them on stderr, naming ``prog``."""
    absent = missing()
    if absent:
        print(
            f"{prog}: the kit's dependencies are not installed for {sys.executable} "
            f"(missing: {', '.join(absent)}); {INSTALL_HINT}",
            file=sys.stderr,
        )
    return not absent
