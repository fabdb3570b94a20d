"""ECG classification kit for the PhysioNet/CinC Challenge 2020 scored diagnoses.

Subpackages: ``data`` (records, labels, outputs, synthetic data), ``dsp`` (numpy/scipy signal
processing), ``classifiers`` (the registry and the classifier families), ``nn`` (torch
building blocks and training core), ``beats`` (beat-level networks). The modules that walk
folders each do one job: ``options`` (what to train), ``training`` (``train``),
``model_folder`` (writing, checking and loading a model folder), ``inference`` (``run``) and
``report``; ``harness`` gathers their names. Importing the package does nothing else.

The PhysioNet/CinC Challenge 2021 harness (``from team_code import training_code``;
``from team_code import load_model, run_model``) finds its three functions here; they live in
:mod:`team_code.challenge_api`, imported on first use.
"""

__version__ = "0.2.0"

#: The names the 2021 Challenge's ``train_model.py`` and ``test_model.py`` import.
CHALLENGE_2021 = ("training_code", "load_model", "run_model")


def __getattr__(name: str):
    if name in CHALLENGE_2021:
        from team_code import challenge_api

        return getattr(challenge_api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *CHALLENGE_2021])
