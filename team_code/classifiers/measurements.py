"""The rules' measurements of many records: once per record per training, in parallel.

The rules classifier reads every training record's measurements
(:func:`team_code.dsp.features.measure_record`, about 0.1 s a record). The hybrid fits it on
k-1 folds, scores the held-out fold and refits it on all records, so without a cache each
record would be measured k + 1 times. :func:`measure_all` keeps one JSON entry per record in
the per-record cache (:mod:`team_code.record_cache`, kind ``rules-measurements-1``), keyed by
the record's files, the :class:`~team_code.dsp.features.FeatureConfig` and the source of
:mod:`team_code.dsp` (with ``delineator="cnn"``, also the learned delineator's source and
weights), and measures the records not yet there in ``workers`` processes: every
fold and the refit read the entries.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import sys
from collections.abc import Sequence

from team_code.data.records import Record
from team_code.dsp.features import FeatureConfig, measure_record
from team_code.record_cache import JSON_FORMAT, per_record
from team_code.threads import worker_processes

#: Bump when what :func:`record_measurements` returns changes beyond the dsp code.
MEASUREMENTS_VERSION = "rules-measurements/1"
#: Packages and modules whose source the measurements are computed with (part of the cache
#: key): the signal processing, the limb leads derived from I and II, and this module.
MEASUREMENT_CODE = ("team_code.dsp", "team_code.data.leads", "team_code.classifiers.measurements")


def measured_leads(leads: Sequence[str] | None) -> tuple[str, ...] | None:
    """The leads a task's measurements read: None (each record's own leads) for no set or all
    twelve, else the reduced set, whose measurements and cache keys differ."""
    return None if leads is None or len(leads) == 12 else tuple(leads)


def record_measurements(
    record: Record, config: FeatureConfig, leads: Sequence[str] | None = None, learned=None
) -> dict:
    """``{"values": {measurement: value, ..., "sex": ...}, "notes": [...]}`` of one record
    (values NaN where not measurable; ``sex`` for sex-specific limits). With ``leads``, only
    those leads are read (a reduced-lead task): limb leads that I and II determine are
    derived, the others are missing and their measurements NaN. ``learned`` replaces the
    learned delineator ``config.delineator`` names (a benchmark's fold model)."""
    if leads is not None and tuple(leads) != tuple(record.leads):
        record = dataclasses.replace(
            record, signal=record.select_leads(tuple(leads)), leads=tuple(leads)
        )
    if learned is None:
        learned = learned_delineator(config)
    measured = measure_record(record, config, learned)
    values = dict(measured.values)
    values["sex"] = record.sex
    return {"values": values, "notes": list(measured.notes)}


def learned_delineator(config: FeatureConfig):
    """The learned delineator ``config.delineator`` names (None for the wavelet chain)."""
    if config.delineator == "wavelet":
        return None
    from team_code.nn.delineator import delineate_record

    return delineate_record


def measurement_key(config: FeatureConfig) -> tuple[dict, tuple[str, ...]]:
    """The settings and code that the measurements of ``config`` depend on."""
    settings = {"kind": MEASUREMENTS_VERSION, "features": dataclasses.asdict(config)}
    if config.delineator == "wavelet":
        return settings, MEASUREMENT_CODE
    settings["delineator_weights"] = delineator_weights_digest(config)[:16]
    return settings, (*MEASUREMENT_CODE, "team_code.nn.delineator")


def delineator_weights_digest(config: FeatureConfig) -> str | None:
    """The SHA-256 of the learned delineator's weights that ``config`` measures with (None
    for the wavelet chain); missing weights raise, naming the file and how to build it."""
    if config.delineator == "wavelet":
        return None
    from team_code.nn.delineator import weights_path

    return hashlib.sha256(weights_path().read_bytes()).hexdigest()


def measure_all(
    records: Sequence[Record],
    config: FeatureConfig,
    cache_dir: str | os.PathLike | None = "none",
    workers: int = 0,
    progress: bool = False,
    leads: Sequence[str] | None = None,
) -> list[dict]:
    """:func:`record_measurements` of every record, in order, each measured once.

    With a cache folder (see :func:`team_code.record_cache.default_cache_dir`) and records of
    a :class:`~team_code.data.records.RecordSet`, measurements come from the per-record cache
    and only the records missing there are measured, in
    :func:`team_code.threads.worker_processes` processes.
    Raises :class:`~team_code.data.records.RecordError` naming a record that cannot be
    measured.
    """
    settings, code = measurement_key(config)
    if leads is not None:
        settings["leads"] = list(leads)
    measured = per_record(
        records,
        functools.partial(record_measurements, config=config, leads=leads),
        settings,
        cache_dir,
        fmt=JSON_FORMAT,
        code=code,
        workers=worker_processes(workers),
        progress=progress,
        desc="measuring",
        log=None,
    )
    measured.raise_failures("rules cannot measure it")
    return [_shared_keys(m) for m in measured.items]


def _shared_keys(measured: dict) -> dict:
    """The same measurements with the values' names shared by every record (a JSON entry
    read back has its own copy of each name: 24 kB a record in memory instead of 12 kB)."""
    values = {sys.intern(name): value for name, value in measured["values"].items()}
    return {"values": values, "notes": measured["notes"]}
