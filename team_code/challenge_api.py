"""The functions the PhysioNet/CinC Challenge organizers' own scripts call, on the kit's harness.

2020 (``train_model.py``, ``driver.py``; the kit's ``train_12ECG_classifier.py`` and
``run_12ECG_classifier.py`` at the repository root wrap these):

- :func:`train_2020` (``train_12ECG_classifier(input_directory, output_directory)``) trains the
  kit's default for the 2020 table on twelve leads, as ``python train_model.py DATA MODEL``;
- :func:`load_2020` (``load_12ECG_model(model_input)``) loads a model folder;
- :func:`classify_2020` (``run_12ECG_classifier(data, header_data, model)``) classifies one
  record from its ``val`` matrix and its header lines and returns ``(labels, scores,
  classes)``. The 2020 driver catches nothing, so a record the kit refuses gets the kit's
  all-negative output (every label and score 0), as ``run_model.py`` writes it, and the
  reason goes to stderr with the record's name.

2021 (``train_model.py``, ``test_model.py``, ``helper_code.py``; ``team_code`` exports these):

- :func:`training_code` trains the kit's default for the 2021 table (26 classes), one model per
  2021 lead set (12, 6, 4, 3 and 2 leads), as ``train_model.py DATA MODEL --task 2021 --leads
  12,6,4,3,2``;
- :func:`load_model` loads the model that serves records with ``leads`` (the largest trained
  lead set whose leads they have, as ``run_model.py`` chooses);
- :func:`run_model` returns ``(classes, labels, probabilities)`` of one record from its header
  text and its ``val`` matrix, and raises, naming the record and the problem, for a record the
  kit refuses, with the reason on stderr (``test_model.py`` then writes an empty output
  and prints only that the record failed).

Records are classified by :func:`team_code.inference.decide`, the code ``run_model.py`` uses,
from a :class:`~team_code.data.records.Record` built by the kit's own header parser and
digital-to-millivolt conversion (no file is read): on the same model, the outputs equal
``run_model.py``'s. The preset follows :func:`team_code.presets.default_preset`
(``$ECG_KIT_PRESET``, else the device's).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from team_code import model_folder, training
from team_code.context import RunContext, say
from team_code.data.leads import LEAD_SETS
from team_code.data.records import (
    STANDARD_LEADS,
    Record,
    RecordError,
    canonical_lead,
    parse_header,
    record_from_digital,
)
from team_code.inference import NON_FINITE, decide, output_row

# --------------------------------------------------------------------------------------------
# Shared by both years


def train_default(
    data_directory: str | os.PathLike,
    model_directory: str | os.PathLike,
    table: str,
    lead_sets: Sequence[Sequence[str]],
) -> dict:
    """Train the kit's default classifiers (its default options and preset) for ``table`` and
    ``lead_sets`` on the records of ``data_directory`` into ``model_directory``, with the
    compute threads ``train_model.py`` uses without ``--threads`` (``$OMP_NUM_THREADS``, else
    the cores, never the load: :func:`team_code.training.train`); returns the manifest."""
    return training.train(data_directory, model_directory, table=table, lead_sets=lead_sets)


def challenge_record(header: str | Sequence[str], recording) -> Record:
    """The record described by ``header`` (its text, or its lines as ``readlines`` gives them)
    with the signal ``recording`` (``val``: leads x samples, digital units), read by the kit's
    header parser and converted to millivolts as :func:`~team_code.data.records.load_record`
    does. The record is named by the header's record line. Raises
    :class:`~team_code.data.records.RecordError` naming the record and the problem."""
    header = _header_text(header)
    name = header_record_name(header)
    return record_from_digital(parse_header(header, name, Path(name + ".hea")), recording)


def _header_text(header: str | Sequence[str]) -> str:
    """A header given as its text or as its lines, as text."""
    if isinstance(header, str):
        return header
    return "\n".join(line.rstrip("\r\n") for line in header)


def header_record_name(header: str | Sequence[str]) -> str:
    """The record's name from its header's record line (``(unnamed)`` for an empty header)."""
    first = _header_text(header).strip().split(maxsplit=1)
    return Path(first[0]).stem if first else "(unnamed)"


def _problem(error: Exception, name: str) -> str:
    """``record NAME: problem`` for any error raised while classifying record ``name``."""
    if isinstance(error, RecordError) or str(error).startswith(f"record {name}:"):
        return str(error)
    return f"record {name}: classification failed: {type(error).__name__}: {error}"


def classify(model, record: Record) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, labels)`` of one record, as ``run_model.py`` writes them: the model's scores
    (:func:`team_code.inference.decide`) clipped to [0, 1] and its 0/1 labels. Raises for a
    record the model refuses, or non-finite scores, naming the record."""
    scores, labels = decide(model, [record])
    written = output_row(scores[0], labels[0])
    if written is None:
        raise ValueError(f"record {record.name}: {NON_FINITE}")
    return written


def _load(model_directory: str | os.PathLike):
    """The primary classifier of a model folder, set to run quietly on the default device."""
    return model_folder.load_model(model_directory, ctx=RunContext(progress=False))


# --------------------------------------------------------------------------------------------
# 2020: train_12ECG_classifier.py and run_12ECG_classifier.py


def train_2020(input_directory: str | os.PathLike, output_directory: str | os.PathLike) -> dict:
    """``train_12ECG_classifier``: the kit's default for the 2020 table on twelve leads."""
    return train_default(input_directory, output_directory, "2020", [STANDARD_LEADS])


def load_2020(model_input: str | os.PathLike):
    """``load_12ECG_model``: the model folder's primary classifier."""
    return _load(model_input)


def classify_2020(data, header_data: Sequence[str], model) -> tuple[np.ndarray, np.ndarray, list]:
    """``run_12ECG_classifier``: ``(labels, scores, classes)`` of the record whose ``val`` is
    ``data`` and whose header lines are ``header_data``. A record the kit refuses gets
    all-negative labels and scores (as ``run_model.py`` writes it); the reason goes to stderr
    with the record's name."""
    classes = list(model.classes_)
    try:
        record = challenge_record(header_data, data)
        scores, labels = classify(model, record)
    except Exception as error:  # the 2020 driver stops at the first exception it meets
        say(f"error: {_problem(error, header_record_name(header_data))}; written all-negative")
        return np.zeros(len(classes), dtype=int), np.zeros(len(classes)), classes
    return labels, scores, classes


# --------------------------------------------------------------------------------------------
# 2021: team_code.training_code, load_model, run_model


def training_code(data_directory: str | os.PathLike, model_directory: str | os.PathLike) -> dict:
    """The kit's default for the 2021 table (26 classes), one model per 2021 lead set."""
    return train_default(data_directory, model_directory, "2021", list(LEAD_SETS.values()))


def load_model(model_directory: str | os.PathLike, leads: Sequence[str]):
    """The model serving records with ``leads`` (``helper_code.sort_leads``' tuple, any
    order): of a model folder with several lead sets, the model of the largest set whose
    leads are all in ``leads`` (the smallest set's where none is, which then refuses each
    record with the reason); a folder of one model is that model."""
    manifest = model_folder.load_manifest(model_directory)
    if "lead_sets" not in manifest:
        return _load(model_directory)
    sets = {name: entry["leads"] for name, entry in manifest["lead_sets"].items()}
    name = model_folder.choose_lead_set(sets, [canonical_lead(lead) for lead in leads])
    if name is None:
        name = min(sets, key=lambda n: len(sets[n]))
    one = {"lead_sets": {name: manifest["lead_sets"][name]}}
    return model_folder.LeadSetModels.load(model_directory, one, None, RunContext(progress=False))


def run_model(model, header: str, recording) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(classes, labels, probabilities)`` of the record whose header text is ``header``
    and whose ``val`` is ``recording``; raises, naming the record, for one the kit refuses.
    The reason also goes to stderr first: the 2021 ``test_model.py`` catches every exception
    with a bare ``except`` and prints only that the record failed."""
    try:
        scores, labels = classify(model, challenge_record(header, recording))
    except Exception as error:
        say(f"error: {_problem(error, header_record_name(header))}")
        raise
    return list(model.classes_), labels, scores
