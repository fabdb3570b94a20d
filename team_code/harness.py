"""The harness: the kit's folder-level functions under one name.

Each job has a module of its own; this one gathers their public names, so that
``harness.train``, ``harness.run``, ``harness.load_model``, ``harness.decide`` and the rest
keep working:

- :mod:`team_code.options`: ``parse_options``, ``build_config``, ``configure`` (presets
  applied), ``DEFAULT_CLASSIFIERS``;
- :mod:`team_code.training`: ``train(data, model)``, ``scan_records``, ``data_summary``,
  ``run_context``, ``package_versions``, ``CACHE_CHOICES``;
- :mod:`team_code.model_folder`: ``load_manifest``, ``load_model``, ``LeadSetModels``,
  ``choose_lead_set``, ``served_lead_sets``, ``describe_classifiers``, the folder's layout;
- :mod:`team_code.inference`: ``run(model, data, outputs)``, ``decide``, ``RunResult``, the
  worker pool;
- :mod:`team_code.report`: ``report_outputs`` (here ``report``), pictures of classified records;
- :mod:`team_code.context`: ``is_main_process``.

Imports point one way: ``data -> dsp -> classifiers/beats -> (options, training, model
loading, inference, report) -> cli`` (``tests/test_import_direction.py``). A name is looked up
where it is defined: to replace one in a test, patch its own module (``training.train``,
``inference.load_record``), not this one.
"""

from __future__ import annotations

from team_code.context import RunContext, Task, is_main_process
from team_code.data.records import STANDARD_LEADS, record_source
from team_code.inference import UNWRITABLE, RunResult, decide, run
from team_code.model_folder import FORMAT as MANIFEST_FORMAT
from team_code.model_folder import (
    LEAD_SET_FOLDER,
    MANIFEST,
    LeadSetModels,
    choose_lead_set,
    describe_classifiers,
    load_manifest,
    load_model,
    served_lead_sets,
)
from team_code.options import DEFAULT_CLASSIFIERS, build_config, configure, parse_options
from team_code.report import report_outputs as report
from team_code.training import (
    CACHE_CHOICES,
    data_summary,
    package_versions,
    run_context,
    scan_records,
    train,
)

__all__ = [
    "CACHE_CHOICES",
    "DEFAULT_CLASSIFIERS",
    "LEAD_SET_FOLDER",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "STANDARD_LEADS",
    "UNWRITABLE",
    "LeadSetModels",
    "RunContext",
    "RunResult",
    "Task",
    "build_config",
    "choose_lead_set",
    "configure",
    "data_summary",
    "decide",
    "describe_classifiers",
    "is_main_process",
    "load_manifest",
    "load_model",
    "package_versions",
    "parse_options",
    "record_source",
    "report",
    "run",
    "run_context",
    "scan_records",
    "served_lead_sets",
    "train",
]
