"""Benchmark the rule-based classifier on the shared records of six sources, and its AF detector.

Tables printed:

1. Leave one source out and grouped k-fold:
   ``prevalence`` and ``rules`` (as shipped: thresholds tuned and operating thresholds chosen
   on the training part only; ``--set rules.OPTION=VALUE`` for variants) trained on five
   sources and scored on the sixth (A, E, HR, Q, S from ``challenge/``, LU from
   ``ludb_challenge/``): challenge metric per source and pooled with bootstrap intervals,
   per class and source the predicted / labelled / both counts and F-measure, and the
   operating thresholds each split chose (silent classes named).
   ``--protocols nested`` estimates a *choice* among rules variants honestly: for each
   held-out source, every variant (``--variant``; by default the shipped options (the
   expected-metric decision), the operating thresholds' vote, the pooled objective, the
   vocabulary option and 0.5 thresholds, the last four labelling at thresholds) is scored
   by leave one source out over the training sources alone, the best one is refitted on them
   and scores the held-out source. The table gives the nested figure, the count of variants
   and what each split chose; a variant's own LOSO row is in-sample for the choice.
   ``--vote CLASS`` (an abbreviation, e.g. ``LAD``) adds, per leave-one-source-out split,
   what the operating-threshold step saw for that class: the challenge metric of each
   training source's held-out records (:func:`vote_table`) with the class silent and at
   each threshold it may take (the other classes at their chosen thresholds), the number
   of records it fires on, and the held-out source's own metric at each: why the vote
   named or silenced the class, and what that did to the unseen source.
2. Label conventions per source (``--conventions``): how often each source gives sinus rhythm
   (NSR) to a record with a conduction label, and the measured frontal QRS axis of the LUDB
   records against LUDB's own axis words (left, normal, horizontal, vertical, right).
3. The AF/AFL detector of Bortolan et al. (zero crossings of the first derivative of lead II
   between QRS complexes) on the CPSC 2021 paroxysmal-AF records: AUROC over 10-s windows
   labelled AF (more than half of the window inside an ``(AFIB`` episode) or non-AF (no AF at
   all), beside the RR irregularity and their product; then the AF rule on the whole
   records (leads I and II, knowledge-base thresholds), its evidence read over the whole
   record and in the record's most irregular 10-s window (what the rule reads).

Usage::

    python -m benchmarks.rules [--data DIR] [--protocols loso,kfold,nested] [--cache FILE]
        [--set rules.OPTION=VALUE ...] [--variant NAME=OPTION=VALUE,...] [--conventions]
        [--skip-af] [--outputs FILE.npz] [--inner-criterion pooled|sources|one-se]
        [--task 2020|2021] [--leads 12|6|4|3|2|I,II,...] [--vote CLASS]
    python -m benchmarks.rules --combine RUN.npz RUN.npz ...

``--task`` and ``--leads`` give the scoring table and the leads the rules read (default: the
2020 table, twelve leads): every protocol, the nested ones included, then fits and scores the
rules of that task, each record measured through those leads alone, as
``train_model.py --task 2021 --leads 2`` trains them (``benchmarks.lead_sets`` gives the same
leave-one-source-out rows for several lead sets at once).

``--outputs`` keeps the nested protocol's decisions per record and each split's inner scores.
``--inner-criterion`` says how the nested protocol's inner loop scores a variant
(:data:`INNER_CRITERIA`): its held-out records pooled, or each training source of 20 records
or more counted alike by its margin over that source's floor, or pooled with the first listed
variant (by default the shipped options) taken where its score is within one standard error
of the best, else the best (``one-se``, the hybrid's own rule).
``--combine`` makes one nested choice across such runs, made by different versions of the
code (a measurement or rule book change is a variant that options cannot express): for each
held-out source the run whose chosen variant scored best on the inner leave one source out
(the training sources alone; ties: the first run named) gives that source's decisions. The
estimate counts every variant of every run.

``--data`` is the shared data folder (``$ECG_KIT_DATA`` or ``<repo>/../shared/data``).
Every record is measured once (``--cache FILE`` keeps the measurements between runs, keyed by
the kit's own measurement key: the measurement options and code); fitting and scoring reuse
them.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(os.environ.get("ECG_KIT_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default, help="shared data folder")
    parser.add_argument(
        "--protocols",
        default="loso,kfold",
        help="loso, kfold, nested and/or nested-kfold (comma-separated)",
    )
    parser.add_argument(
        "--variant",
        dest="variants",
        action="append",
        default=[],
        metavar="NAME=OPTION=VALUE[,OPTION=VALUE]",
        help="a rules variant the nested protocol chooses among (repeatable; default: "
        "the shipped options, pooled-8, vote-vocabulary and half)",
    )
    parser.add_argument(
        "--inner-criterion",
        choices=INNER_CRITERIA,
        default="one-se",
        help="nested protocol: one-se (default): the inner loop's held-out records pooled, the "
        "first variant listed if within one standard error of the best, else the best; "
        "pooled: the best "
        f"pooled; sources: the best mean margin over the floor of its {MIN_SOURCE_RECORDS}+ "
        "record sources",
    )
    parser.add_argument("--folds", type=int, default=5, help="folds of the kfold protocol")
    parser.add_argument("--seed", type=int, default=0, help="fold and bootstrap seed")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--cache", type=Path, help="measurement cache file (JSON)")
    parser.add_argument(
        "--delineator-folds",
        type=Path,
        help="with --set rules.delineator=cnn: measure each LUDB record with the learned "
        "delineator's fold model that never saw it (folds.json of python -m "
        "team_code.nn.delineator folds, e.g. cache/delineator_folds)",
    )
    parser.add_argument(
        "--task", default="2020", help="scoring table: 2020 (default), 2021 or a weights.csv"
    )
    parser.add_argument(
        "--leads",
        default="12",
        help="the leads the rules read (a 2021 lead set by size, 12, 6, 4, 3 or 2, or names "
        "such as I,II): each record is measured through those leads only",
    )
    parser.add_argument("--set", dest="options", action="append", default=[])
    parser.add_argument("--conventions", action="store_true", help="print the conventions table")
    parser.add_argument(
        "--vote",
        metavar="CLASS",
        help="leave one source out: the operating-threshold vote on this class (abbreviation), "
        "per split: each training source's held-out metric and the held-out source's at each "
        "threshold",
    )
    parser.add_argument("--skip-af", action="store_true", help="skip the CPSC 2021 AF table")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument(
        "--outputs", type=Path, help="nested protocol: its decisions per record (.npz)"
    )
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="RUN.npz",
        help="one nested choice across the --outputs of runs of different code",
    )
    return parser


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN scores are left out."""
    ok = np.isfinite(s)
    y, s = y[ok].astype(bool), s[ok]
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


def _rules(rules_options: dict | None = None):
    """An untuned rules classifier with ``rules_options`` (``--set rules.OPTION=VALUE``)."""
    from team_code.classifiers.rules import RulesClassifier
    from team_code.harness import build_config

    return RulesClassifier(
        build_config(RulesClassifier, {**(rules_options or {}), "tune": "false"})
    )


def _measurement_key(rules_options: dict | None = None) -> str:
    """The kit's own key of the rules' measurements with ``rules_options``
    (:func:`team_code.classifiers.measurements.measurement_key`: the measurement options, the
    measurement code and, with ``delineator=cnn``, the learned delineator and its weights): a
    cache written by other code or options is not reused."""
    from team_code.classifiers.measurements import measurement_key
    from team_code.record_cache import settings_digest

    return settings_digest(*measurement_key(_rules(rules_options)._feature_config()))


def delineator_fold_models(folder: Path) -> tuple[dict, str]:
    """``(LUDB record -> its weights file, digest)`` of the learned delineator's fold models
    in ``folder`` (``folds.json``, written by ``python -m team_code.nn.delineator folds``):
    each LUDB record mapped to the fold model that never saw it; the digest covers the index
    and every weights file, for the measurement cache key."""
    from benchmarks.delineation import _cnn_fold_index

    try:
        folds = _cnn_fold_index(folder)
    except FileNotFoundError as error:
        raise SystemExit(f"--delineator-folds: {error}") from None
    digest = hashlib.sha256((folder / "folds.json").read_bytes())
    held = {}
    for weights, names in sorted(folds.items()):
        digest.update((folder / weights).read_bytes())
        held.update({str(name): folder / weights for name in names})
    return held, digest.hexdigest()[:16]


def ludb_record(name: str) -> str | None:
    """The LUDB record of a ``ludb_challenge`` record name (``LU0008`` -> ``8``), else None."""
    if name.startswith("LU") and name[2:].isdigit():
        return str(int(name[2:]))
    return None


def measure_all(
    records,
    cache: Path | None,
    rules_options: dict | None = None,
    delineator_folds=None,
    leads: tuple[str, ...] | None = None,
) -> dict:
    """Record name -> the rules' measurement values (with ``sex``), measured once, with the
    measurement options of ``rules_options`` (``--set rules.delineator=cnn``), through
    ``leads`` only (None or twelve: every lead; the cache key names a reduced set). With
    ``delineator_folds`` (a folder of the learned delineator's fold models, and
    ``delineator=cnn``) every LUDB record is measured by the fold model that never saw it,
    the other records by the kit's weights (which saw no Challenge record)."""
    from team_code.classifiers.measurements import measured_leads, record_measurements
    from team_code.runs import record_digests

    key = _measurement_key(rules_options)
    rules = _rules(rules_options)
    leads = measured_leads(leads)
    if leads is not None:
        key = f"{key}-leads-{'.'.join(leads)}"
    held = {}
    if delineator_folds is not None:
        if rules._feature_config().delineator != "cnn":
            raise SystemExit("--delineator-folds needs --set rules.delineator=cnn")
        held, digest = delineator_fold_models(Path(delineator_folds))
        key = f"{key}-folds-{digest}"
    elif rules._feature_config().delineator == "cnn" and any(map(ludb_record, records.names)):
        print(
            "warning: LUDB records measured with the learned delineator's own weights, which "
            "were trained on the shared LUDB records: their figures are in-sample for the "
            "delineator (--delineator-folds DIR measures each with the fold model that never "
            "saw it)",
            file=sys.stderr,
        )
    stored = {}
    if cache is not None and cache.exists():
        data = json.loads(cache.read_text())
        if data.get("key") == key:
            stored = data["values"]
    values = {}
    # each entry under the record's name and the digest of its header and signal files, so
    # that a file replaced under the same name (or another data folder) is measured again
    contents = record_digests(records)
    for i, name in enumerate(records.names):
        entry = f"{name}:{contents[i]}"
        if entry not in stored:
            weights = held.get(ludb_record(name) or "")
            learned = _fold_delineator(weights) if weights is not None else None
            stored[entry] = record_measurements(
                records[i], rules._feature_config(), leads, learned=learned
            )["values"]
        values[name] = stored[entry]
    if cache is not None:
        cache.write_text(json.dumps({"key": key, "values": stored}, default=_nan_none))
    return {n: {k: (np.nan if v is None else v) for k, v in d.items()} for n, d in values.items()}


def _fold_delineator(weights: Path):
    """The learned delineator with the weights of one fold model (loaded once)."""
    from benchmarks.delineation import _cnn_model
    from team_code.nn.delineator import delineate_record

    return functools.partial(delineate_record, model=_cnn_model(weights))


def _nan_none(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    raise TypeError(type(v))


def default_task():
    """The task of the tables unless ``--task``/``--leads`` say otherwise: the 2020 table's
    classes on twelve leads."""
    from team_code.context import Task

    return Task("2020")


def task_of(args):
    """The task of ``--task`` and ``--leads``."""
    from team_code.context import Task
    from team_code.data.leads import parse_leads

    return Task(args.task, parse_leads(args.leads))


def cached_rules(values: dict):
    """The rules classifier class with measurements read from ``values`` (by record name)."""
    from team_code.classifiers.rules import RulesClassifier

    class CachedRules(RulesClassifier):
        def measure(self, record):
            return {"values": values[record.name], "notes": []}

        def _measured(self, records):
            return [values[r.name] for r in records]

    return CachedRules


def cross_predict(
    records, values: dict, splits, options: dict, quiet: bool = False, task=None
) -> dict:
    """Outputs of ``prevalence`` and ``rules`` on each split's test part, trained on its
    training part for ``task`` (default: the 2020 table, twelve leads); also each split's
    operating thresholds. ``values`` must have been measured through the task's leads."""
    from team_code.classifiers.cv import take
    from team_code.classifiers.prevalence import PrevalenceClassifier
    from team_code.classifiers.rules import RulesClassifier
    from team_code.harness import build_config

    task = default_task() if task is None else task
    classes = list(task.classes)
    n = len(records)
    binary = {m: np.zeros((n, len(classes)), bool) for m in ("prevalence", "rules")}
    loaded = list(records)
    config = build_config(RulesClassifier, options.get("rules", {}))
    chosen = {}
    for label, train, test in splits:
        train_records = [loaded[i] for i in train]
        test_records = [loaded[i] for i in test]
        prevalence = PrevalenceClassifier().fit(take(records, train), task)
        binary["prevalence"][test] = prevalence.decide(prevalence.predict_proba(test_records))
        model = cached_rules(values)(config).fit(train_records, task)
        binary["rules"][test] = model.decide(model.predict_proba(test_records))
        silent = [
            task.scored.abbreviation(c)
            for c, t in zip(classes, model.thresholds_, strict=True)
            if t > 1.0
        ]
        chosen[label] = {
            "thresholds": [float(t) for t in model.thresholds_],
            "silent": silent,
            "rule_thresholds": getattr(model, "rule_thresholds_", {}),
            "decision_selection": model.decision_selection_,
        }
        if not quiet:
            selection = model.decision_selection_
            picked = (
                ""
                if selection is None
                else f"; decision {selection['chosen']} ("
                + ", ".join(f"{n} {v:.3f}" for n, v in selection["inner"].items())
                + ")"
            )
            print(f"[{label}] silent: {', '.join(silent) or 'none'}{picked}", flush=True)
    return {"binary": binary, "chosen": chosen}


#: The decision variants compared by ``--protocols nested`` unless ``--variant`` names others:
#: the shipped options, the pooled objective of the previous version, the vocabulary option
#: and 0.5 on the graded scores. Each is a set of ``rules`` options.
NESTED_VARIANTS: dict[str, dict[str, str]] = {
    "shipped": {},
    "vote": {"decision_policy": "thresholds"},
    "pooled-8": {
        "decision_objective": "pooled",
        "decision_min_positives": "8",
        "decision_policy": "thresholds",
    },
    "vote-vocabulary": {"decision_vocabulary": "true", "decision_policy": "thresholds"},
    "half": {"decision": "half", "decision_policy": "thresholds"},
}


def vote_table(records, values, sources, digests, truth, task, options: dict, abbr: str) -> dict:
    """Per leave-one-source-out split, what the rules' operating-threshold step weighed for
    class ``abbr``: the rules fitted on the training sources as ``cross_predict`` fits them;
    then, with every other class at its chosen threshold and this class silent or at each
    level it may take, the challenge metric of each training source's held-out records
    (scored by rules tuned without that source: the records the vote reads) and of the
    held-out source (the rules fitted on all training sources), and the records it fires on;
    every class labelled at its operating threshold (as with ``decision_policy="thresholds"``:
    the default expected-metric policy labels from the same scores otherwise).
    Returns ``{held-out source: {"chosen": threshold, "rows": [{"threshold", "inner":
    {source: metric}, "inner_fires": {source: n}, "held_out": metric, "fires": n}]}}``."""
    from team_code.classifiers.cv import leave_one_source_out
    from team_code.classifiers.rules import NEVER, OPERATING_LEVELS, RulesClassifier, _GroupFit
    from team_code.classifiers.thresholds import RecordMetric
    from team_code.harness import build_config

    classes = list(task.classes)
    names = [task.scored.abbreviation(c) for c in classes]
    if abbr not in names:
        raise SystemExit(f"--vote: no class {abbr!r} in this task; known: {', '.join(names)}")
    j = names.index(abbr)
    config = build_config(RulesClassifier, options.get("rules", {}))
    loaded = list(records)
    out = {}
    for source, train, test in leave_one_source_out(sources, digests):
        model = cached_rules(values)(config).fit([loaded[i] for i in train], task)
        fit = _GroupFit(
            model,
            [values[loaded[i].name] for i in train],
            truth[train],
            [sources[i] for i in train],
            [digests[i] for i in train],
        )
        inner_scores = fit.held_out(frozenset())
        inner = RecordMetric(truth[train], classes, task.scored)
        test_scores = model.predict_proba([loaded[i] for i in test])
        held = RecordMetric(truth[test], classes, task.scored)
        everyone = np.ones(len(test), bool)
        rows = []
        for t in (NEVER, *OPERATING_LEVELS):
            th = np.array(model.thresholds_, float)
            th[j] = t
            b_inner, b_test = inner_scores >= th, test_scores >= th
            observed = inner.observed(b_inner)
            rows.append(
                {
                    "threshold": float(t),
                    "inner": {g: inner.score(observed, fit.groups == g) for g in fit.names},
                    "inner_fires": {g: int(b_inner[fit.groups == g, j].sum()) for g in fit.names},
                    "held_out": held.score(held.observed(b_test), everyone),
                    "fires": int(b_test[:, j].sum()),
                }
            )
        out[source] = {"chosen": float(model.thresholds_[j]), "rows": rows}
    return out


def print_vote_table(table: dict, abbr: str) -> None:
    """The vote table of :func:`vote_table`, one block per held-out source."""
    print(f"\n### the operating-threshold vote on {abbr}, leave one source out")
    for source, split in table.items():
        chosen = "silent" if split["chosen"] >= 1.0 else f"{split['chosen']:g}"
        groups = list(split["rows"][0]["inner"])
        print(f"\nheld out {source} (chosen: {chosen})")
        print(
            "| threshold | "
            + " | ".join(f"{g} (inner)" for g in groups)
            + f" | {source} (held out) |"
        )
        print("|---|" + "---:|" * (len(groups) + 1))
        for row in split["rows"]:
            t = "silent" if row["threshold"] >= 1.0 else f"{row['threshold']:g}"
            cells = [f"{row['inner'][g]:.3f} ({row['inner_fires'][g]})" for g in groups]
            print(f"| {t} | " + " | ".join(cells) + f" | {row['held_out']:.3f} ({row['fires']}) |")


def parse_variants(items) -> dict[str, dict[str, str]]:
    """``["NAME=OPTION=VALUE,OPTION=VALUE", ...]`` -> ``{NAME: {OPTION: VALUE}}`` (rules
    options; ``NAME=`` alone is the shipped options); none given: :data:`NESTED_VARIANTS`."""
    if not items:
        return {name: dict(values) for name, values in NESTED_VARIANTS.items()}
    variants = {}
    for item in items:
        name, sep, rest = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--variant {item!r} is not NAME=OPTION=VALUE[,OPTION=VALUE]")
        values = {}
        for pair in filter(None, rest.split(",")):
            key, sep, value = pair.partition("=")
            if not sep:
                raise SystemExit(f"--variant {item!r}: {pair!r} is not OPTION=VALUE")
            values[key.strip()] = value.strip()
        variants[name.strip()] = values
    return variants


#: Inner criteria of the nested protocol: how a variant's inner leave one source out is scored.
#: ``pooled``: the challenge metric of the inner held-out records pooled (large sources weigh
#: most); ``sources``: the mean over the inner held-out sources of at least
#: :data:`MIN_SOURCE_RECORDS` records of the variant's margin over that source's prevalence
#: floor (every such source weighs the same: a decision that holds across sources wins over
#: one that pays on the largest); ``one-se``: scored as ``pooled``, the first listed variant
#: (the shipped options) kept where it is within one standard error of the best, else the
#: best (:func:`one_se_choice`, the one-standard-error rule: a choice among near-equal
#: variants does not follow noise).
INNER_CRITERIA = ("pooled", "sources", "one-se")
MIN_SOURCE_RECORDS = 20


def inner_score(criterion, weights, truth, rules, floor, sources, classes) -> tuple[float, dict]:
    """A variant's inner score under ``criterion`` (:data:`INNER_CRITERIA`) from its inner
    held-out outputs ``rules`` and the floor's, with each source's margin over its floor."""
    from evaluation import metrics

    margins = {}
    for source in dict.fromkeys(sources.tolist()):
        rows = sources == source
        margins[source] = metrics.compute_challenge_metric(
            weights, truth[rows], rules[rows], classes
        ) - metrics.compute_challenge_metric(weights, truth[rows], floor[rows], classes)
    if criterion in ("pooled", "one-se"):
        return metrics.compute_challenge_metric(weights, truth, rules, classes), margins
    if criterion != "sources":
        raise ValueError(f"inner criterion must be one of {INNER_CRITERIA}, not {criterion!r}")
    large = [s for s in margins if (sources == s).sum() >= MIN_SOURCE_RECORDS] or list(margins)
    return float(np.mean([margins[s] for s in large])), margins


def one_se_choice(outputs: dict, truth, classes, scored=None) -> tuple[str, dict]:
    """The ``one-se`` choice among variants: the first listed (the shipped options) within one
    standard error of the best, else the best; the kit's own rule
    (:func:`team_code.classifiers.hybrid.first_within_one_se`, which ``rules.decision_select``
    applies when the rules choose their decision variant in training)."""
    from team_code.classifiers.hybrid import first_within_one_se

    return first_within_one_se(outputs, truth, classes, scored)


def nested_loso(
    records,
    values,
    sources,
    digests,
    truth,
    classes,
    variants,
    options,
    criterion="pooled",
    task=None,
) -> dict:
    """Nested leave one source out: for each held-out source, each variant is scored by a
    leave-one-source-out loop over the training sources alone (``criterion``, one of
    :data:`INNER_CRITERIA`: by default the challenge metric of their held-out records pooled),
    the best is refitted on all the training sources and scores the held-out source. The
    held-out source takes no part in the choice. Returns the outer outputs (``binary``), each
    split's choice, the inner scores of every variant and their margins over the floor per
    inner source."""
    sources = np.asarray(sources)
    outer, inner_splits = loso_splits(sources, digests)
    data = (records, values, sources, truth, classes, variants, options)
    return nested_choice(*data, outer, inner_splits, criterion, task)


def loso_splits(sources, digests) -> tuple[list, Callable]:
    """The outer splits of nested leave one source out, ``(label, train, test)``, and the
    inner splits of a training part: leave one of its sources out (twins kept together)."""
    from team_code.classifiers.cv import leave_one_source_out

    sources, digests = np.asarray(sources), np.asarray(digests)

    def inner_splits(label, train):
        return [
            (f"{label}/{s}", train[tr], train[te])
            for s, tr, te in leave_one_source_out(sources[train], digests[train])
        ]

    return leave_one_source_out(sources, digests), inner_splits


def nested_kfold(
    records,
    values,
    sources,
    digests,
    truth,
    classes,
    variants,
    options,
    n_folds=5,
    seed=0,
    criterion="pooled",
    folds=None,
    task=None,
) -> dict:
    """Nested grouped k-fold, the estimate for new records of the training hospitals: for
    each outer fold, each variant is scored by a grouped k-fold over the other folds' records
    alone, the best is refitted on them and scores the outer fold (as :func:`nested_loso`).
    ``folds``: the outer ``(train, test)`` pairs (default: :func:`grouped_kfold` of ``truth``,
    whose fold assignment reads every record's labels, as a stratified split does)."""
    outer, inner_splits = kfold_splits(truth, digests, n_folds, seed, folds)
    data = (records, values, np.asarray(sources), truth, classes, variants, options)
    return nested_choice(*data, outer, inner_splits, criterion, task)


def kfold_splits(truth, digests, n_folds=5, seed=0, folds=None) -> tuple[list, Callable]:
    """The outer folds of nested grouped k-fold, ``(label, train, test)``, and the inner
    folds of a training part (a grouped k-fold of its records, seed ``seed + 1``)."""
    from team_code.classifiers.cv import grouped_kfold

    digests = np.asarray(digests)

    def inner_splits(label, train):
        inner = grouped_kfold(truth[train], digests[train], n_folds, seed + 1)
        return [(f"{label}/{k + 1}", train[tr], train[te]) for k, (tr, te) in enumerate(inner)]

    folds = grouped_kfold(truth, digests, n_folds, seed) if folds is None else folds
    return [(f"fold {k + 1}", tr, te) for k, (tr, te) in enumerate(folds)], inner_splits


def check_variants_measure_alike(variants: dict, options: dict) -> None:
    """Refuse (``SystemExit``) a variant that changes how records are measured: the
    measurements are made once, with ``--set``'s options, and every variant is fitted on
    them, so such a variant would be scored on measurements it does not make."""
    base = _measurement_key(options.get("rules"))
    for name, variant in variants.items():
        if _measurement_key(with_variant(options, variant)["rules"]) != base:
            raise SystemExit(
                f"--variant {name} changes the measurements ({', '.join(sorted(variant))}); "
                "every variant is fitted on one set of measurements: compare measurement "
                "options in runs of their own (--set rules.OPTION=VALUE)"
            )


def with_variant(options: dict, variant: dict) -> dict:
    """``options`` with a variant's rules options over its own."""
    return {**options, "rules": {**options.get("rules", {}), **variant}}


def nested_choice(
    records,
    values,
    sources,
    truth,
    classes,
    variants,
    options,
    outer,
    inner_splits,
    criterion,
    task=None,
) -> dict:
    """For each outer split ``(label, train, test)``: every variant scored on
    ``inner_splits(label, train)`` (splits of the training records only) by ``criterion``,
    the best refitted on ``train`` and scoring ``test`` (``task``: the scoring table and
    leads, default the 2020 table on twelve leads)."""
    task = default_task() if task is None else task
    weights = task.scored.weights
    binary = np.zeros(truth.shape, bool)
    floor = np.zeros(truth.shape, bool)
    chosen = {}
    for label, train, test in outer:
        inner = inner_splits(label, train)
        rows = np.concatenate([te for _, _, te in inner])
        scored, margins, outputs = {}, {}, {}
        for name, variant in variants.items():
            inner_out = cross_predict(
                records, values, inner, with_variant(options, variant), quiet=True, task=task
            )["binary"]
            outputs[name] = inner_out["rules"][rows]
            scored[name], margins[name] = inner_score(
                criterion,
                weights,
                truth[rows],
                outputs[name],
                inner_out["prevalence"][rows],
                sources[rows],
                list(classes),
            )
        entry = {"inner": scored, "margins": margins}
        if criterion == "one-se":
            best, entry["se"] = one_se_choice(outputs, truth[rows], list(classes), task.scored)
        else:
            best = max(scored, key=lambda name: scored[name])  # ties: the first listed
        merged = with_variant(options, variants[best])
        result = cross_predict(
            records, values, [(label, train, test)], merged, quiet=True, task=task
        )
        binary[test] = result["binary"]["rules"][test]
        floor[test] = result["binary"]["prevalence"][test]
        chosen[label] = {"chosen": best, **entry}
        inner_text = ", ".join(
            f"{n} {v:.3f}" + (f" (se {entry['se'][n]:.3f})" if "se" in entry else "")
            for n, v in scored.items()
        )
        print(
            f"[nested, held out {label}] inner ({criterion}): {inner_text} -> {best}",
            flush=True,
        )
    return {"binary": binary, "floor": floor, "chosen": chosen, "criterion": criterion}


def save_nested(path: Path, names, truth, classes, nested: dict, variants: dict, task=None) -> None:
    """The nested protocol's decisions per record, the floor's, each split's inner scores
    and the task they were scored for (the input of :func:`combine_nested`)."""
    task = default_task() if task is None else task
    np.savez_compressed(
        path,
        names=np.asarray(names),
        truth=truth,
        classes=np.asarray(classes),
        binary=nested["binary"],
        floor=nested["floor"],
        chosen=json.dumps(nested["chosen"]),
        variants=json.dumps(variants),
        criterion=nested.get("criterion", "pooled"),
        task=json.dumps(task.to_json()),
    )


def _task(run):
    """The task a saved nested run was scored for (runs saved before it was recorded: the
    2020 table on twelve leads)."""
    from team_code.context import Task

    return Task.from_json(json.loads(str(run["task"]))) if "task" in run.files else default_task()


def _criterion(run) -> str:
    """The inner criterion a saved nested run used (runs saved before it was recorded: pooled)."""
    return str(run["criterion"]) if "criterion" in run.files else "pooled"


def combine_nested(paths, n_boot: int = 1000, seed: int = 0) -> dict:
    """One nested choice across runs of :func:`nested_loso` saved by :func:`save_nested`: per
    held-out source, the run whose chosen variant scored best on the inner leave one source
    out (ties: the first run) gives that source's decisions. Runs must hold the same records,
    labels and classes. Returns the report, each source's pick, the count of variants and
    the combined decisions (``binary``)."""
    from benchmarks.challenge import print_source_report, source_report
    from team_code.data.records import record_source

    runs = [np.load(p) for p in paths]
    first = runs[0]
    for path, run in zip(paths[1:], runs[1:], strict=True):
        for key in ("names", "truth", "classes", "floor"):
            if not np.array_equal(run[key], first[key]):
                raise SystemExit(f"{path}: its {key} differ from {paths[0]}'s; not comparable")
        if _criterion(run) != _criterion(first):
            raise SystemExit(f"{path}: its inner criterion differs from {paths[0]}'s")
        if _task(run) != _task(first):
            raise SystemExit(f"{path}: its task differs from {paths[0]}'s")
    if _criterion(first) == "one-se":
        raise SystemExit(
            "runs of the one-se criterion are not combined: its reference variant and standard "
            "errors belong to one run"
        )
    names = first["names"].tolist()
    sources = np.array([record_source(n) for n in names])
    chosen = [json.loads(str(run["chosen"])) for run in runs]
    binary = np.zeros_like(first["binary"])
    picks = {}
    for source in dict.fromkeys(sources.tolist()):
        best, best_score = 0, -np.inf
        for r, choices in enumerate(chosen):
            entry = choices[source]
            score = entry["inner"][entry["chosen"]]
            if score > best_score:
                best, best_score = r, score
        rows = sources == source
        binary[rows] = runs[best]["binary"][rows]
        entry = chosen[best][source]
        picks[source] = {"run": str(paths[best]), "variant": entry["chosen"], "inner": best_score}
        print(
            f"[combined, held out {source}] {paths[best]}: {entry['chosen']} "
            f"(inner {best_score:.3f})"
        )
    n_variants = sum(len(json.loads(str(run["variants"]))) for run in runs)
    report = source_report(
        names,
        first["truth"],
        {"prevalence": first["floor"], "rules (nested choice)": binary},
        first["classes"].tolist(),
        n_boot=n_boot,
        seed=seed,
        scored=_task(first).scored,
    )
    print_source_report(f"nested loso ({n_variants} variants in {len(runs)} runs)", report)
    return {"by_source": report, "picks": picks, "variants": n_variants, "binary": binary}


def rules_tables(args) -> dict:
    """Table 1: prevalence and rules per protocol, per source and per class."""
    from benchmarks.challenge import default_folders, load_pool, print_source_report, source_report
    from team_code.classifiers.cv import grouped_kfold, leave_one_source_out, signal_digests
    from team_code.data.records import record_source
    from team_code.harness import parse_options

    task = task_of(args)
    if args.conventions and task != default_task():  # before the protocols, not after them
        raise SystemExit("--conventions reads the 2020 table on twelve leads")
    folders = [args.data / f.name for f in default_folders()]
    records = load_pool(folders)
    classes = list(task.classes)
    truth = task.truth(records)
    digests = signal_digests(records)
    sources = [record_source(n) for n in records.names]
    options = parse_options(args.options)
    values = measure_all(
        records, args.cache, options.get("rules", {}), args.delineator_folds, task.leads
    )
    print(
        f"{len(records)} records from {', '.join(str(f) for f in folders)}; "
        f"{task.describe()}; rules {options}"
    )
    report_of = functools.partial(
        source_report, n_boot=args.bootstrap, seed=args.seed, scored=task.scored
    )
    out = {}
    for protocol in args.protocols.split(","):
        if protocol == "loso":
            splits = [
                (f"source {s}", tr, te) for s, tr, te in leave_one_source_out(sources, digests)
            ]
        elif protocol == "kfold":
            folds = grouped_kfold(truth, digests, args.folds, args.seed)
            splits = [(f"fold {k + 1}", tr, te) for k, (tr, te) in enumerate(folds)]
        elif protocol in ("nested", "nested-kfold"):
            variants = parse_variants(args.variants)
            check_variants_measure_alike(variants, options)
            print(
                f"\n{'nested LOSO' if protocol == 'nested' else 'nested k-fold'} over "
                f"{len(variants)} variants: "
                + "; ".join(f"{n} {v or '(shipped options)'}" for n, v in variants.items())
            )
            common = (records, values, sources, digests, truth, classes, variants, options)
            if protocol == "nested":
                nested = nested_loso(*common, criterion=args.inner_criterion, task=task)
            else:
                nested = nested_kfold(
                    *common, args.folds, args.seed, criterion=args.inner_criterion, task=task
                )
            binary = {"prevalence": nested["floor"], "rules (nested choice)": nested["binary"]}
            report = report_of(records.names, truth, binary, classes)
            name = "nested loso" if protocol == "nested" else "nested k-fold"
            print_source_report(
                f"{name} ({len(variants)} variants, inner {args.inner_criterion})", report
            )
            out[protocol] = {
                "by_source": report,
                "variants": variants,
                "inner_criterion": args.inner_criterion,
                "chosen": nested["chosen"],
            }
            if args.outputs and protocol == "nested":
                save_nested(args.outputs, records.names, truth, classes, nested, variants, task)
            elif args.outputs:
                print(f"--outputs keeps the nested LOSO decisions only; {protocol} not saved")
            continue
        else:
            raise SystemExit(f"unknown protocol {protocol!r} (loso, kfold, nested, nested-kfold)")
        result = cross_predict(records, values, splits, options, task=task)
        report = report_of(records.names, truth, result["binary"], classes)
        print_source_report(protocol, report)
        out[protocol] = {"by_source": report, "chosen": result["chosen"]}
    if args.conventions:
        out["conventions"] = conventions_table(records, values, truth, classes, sources, args.data)
    if args.vote:
        out["vote"] = vote_table(records, values, sources, digests, truth, task, options, args.vote)
        print_vote_table(out["vote"], args.vote)
    return out


def conventions_table(records, values, truth, classes, sources, data: Path) -> dict:
    """Table 2: label conventions per source (see the module docstring)."""
    import csv

    from benchmarks.challenge import ordered_sources
    from team_code.data.labels import scored_classes

    abbreviations = [scored_classes().abbreviation(c) for c in classes]
    nsr = truth[:, abbreviations.index("NSR")]
    sources = np.array(sources)
    print("\n## Label conventions per source\n")
    print("Records with a conduction label that also carry sinus rhythm (NSR), per source:\n")
    conduction = ["IAVB", "CRBBB|RBBB", "IRBBB", "LBBB", "LAnFB", "NSIVCB"]
    print("| source | " + " | ".join(a.replace("|", "\\|") for a in conduction) + " |")
    print("|---|" + "---:|" * len(conduction))
    table = {}
    for source in ordered_sources(sources.tolist()):
        cells = []
        for a in conduction:
            m = (sources == source) & truth[:, abbreviations.index(a)]
            cells.append(f"{int((m & nsr).sum())}/{int(m.sum())}" if m.any() else "-")
            table[f"{source} {a}"] = [int((m & nsr).sum()), int(m.sum())]
        print(f"| {source} | " + " | ".join(cells) + " |")
    manifest = data / "ludb_challenge" / "MANIFEST.csv"
    axes: dict[str, list[float]] = {}
    if manifest.exists():
        with manifest.open() as f:
            for row in csv.DictReader(f):
                words = [
                    w.split(":", 1)[1].strip()
                    for w in row["ludb_diagnoses"].split("|")
                    if "electric axis" in w
                ]
                axis = values.get(row["record"], {}).get("qrs_axis_deg", np.nan)
                axes.setdefault(words[0] if words else "(none)", []).append(float(axis))
        print("\nLUDB axis words against the measured frontal QRS axis (degrees):\n")
        print("| LUDB axis | records | median | 10th-90th percentile | < -30 | < 0 | > +90 |")
        print("|---|---:|---:|---|---:|---:|---:|")
        for word, a in sorted(axes.items(), key=lambda kv: np.nanmedian(kv[1])):
            a = np.array(a)
            print(
                f"| {word} | {a.size} | {np.nanmedian(a):.0f} | {np.nanpercentile(a, 10):.0f} to "
                f"{np.nanpercentile(a, 90):.0f} | {int((a < -30).sum())} | {int((a < 0).sum())} |"
                f" {int((a > 90).sum())} |"
            )
    return {"nsr_with_conduction": table, "ludb_axes": axes}


def _af_mask(ann, n: int) -> np.ndarray:
    """Bool per sample: inside a rhythm episode marked ``(AF...`` in a WFDB annotation."""
    af = np.zeros(n, bool)
    state, since = False, 0
    for s, note in zip(ann.sample, ann.aux_note):
        note = note.strip("\x00 ")
        if note.startswith("("):
            af[since:s] = state
            state, since = note.startswith("(AF"), s
    af[since:] = state
    return af


def cpsc2021_records(data: Path) -> list[tuple[str, object, np.ndarray]]:
    """``(name, WFDB record, AF mask per sample)`` of every CPSC 2021 record in
    ``data/cpsc2021``, read once for both of its tables."""
    import wfdb

    out = []
    for hea in sorted((data / "cpsc2021").glob("*.hea")):
        rec = wfdb.rdrecord(str(hea.with_suffix("")))
        ann = wfdb.rdann(str(hea.with_suffix("")), "atr")
        out.append((hea.stem, rec, _af_mask(ann, rec.p_signal.shape[0])))
    return out


def af_table(records: list, folder: Path) -> None:
    """Table 3: AF detector on CPSC 2021 10-s windows (``records``: :func:`cpsc2021_records`
    of ``folder``)."""
    from team_code.dsp import filters, qrs, rhythm

    rows = []
    for stem, rec, af in records:
        fs = float(rec.fs)
        n = rec.p_signal.shape[0]
        lead = rec.sig_name.index("II") if "II" in rec.sig_name else 0
        x = np.nan_to_num(rec.p_signal.T.astype(float))
        xf = filters.clean(x, fs)
        r_all = qrs.detect(xf, fs)
        win = int(10 * fs)
        for a in range(0, n - win + 1, win):
            frac = af[a : a + win].mean()
            if 0 < frac <= 0.5:
                continue
            r = r_all[(r_all >= a) & (r_all < a + win)] - a
            if r.size < 4:
                continue
            zc = rhythm.derivative_zero_crossings(xf[lead, a : a + win], fs, r)
            irr = rhythm.rr_statistics(r, fs)["rr_irregularity"]
            rows.append((stem, frac > 0.5, zc, irr))
    y = np.array([r[1] for r in rows])
    zc = np.array([r[2] for r in rows], float)
    irr = np.array([r[3] for r in rows], float)
    n_rec = len({r[0] for r in rows})
    print(f"\n## AF detector on {folder}: {len(rows)} 10-s windows of {n_rec} records")
    print(f"({int(y.sum())} AF, {int((~y).sum())} non-AF; windows with 0-50 % AF left out)\n")
    print("| feature | AUROC | median AF | median non-AF |")
    print("|---|---:|---:|---:|")
    for name, s in [
        ("zero crossings of d/dt lead II, per s (Bortolan 2020)", zc),
        ("RR irregularity (median abs successive diff / median RR)", irr),
        ("product of the two", zc * irr),
    ]:
        print(
            f"| {name} | {auroc(y, s):.3f} | {np.nanmedian(s[y]):.3f} | {np.nanmedian(s[~y]):.3f} |"
        )


def af_record_table(records: list, folder: Path) -> dict:
    """Table 3, second part: the AF rule on whole CPSC 2021 records (leads I and II, the
    knowledge-base thresholds, AF named at a score of 0.5), its evidence read over the whole
    record and in the record's most irregular 10-s window (``features.AF_WINDOW_KEYS``, what
    the rule reads). A record is AF where any AF episode is marked; paroxysmal where AF
    covers part of it. ``records``: :func:`cpsc2021_records` of ``folder``."""
    from team_code.classifiers.rulebook import evaluate_rules
    from team_code.dsp.features import measure, whole_record_af

    af_code = "164889003"
    rows = []
    for name, rec, af in records:
        frac = float(af.mean())
        leads = [lead.upper() for lead in rec.sig_name]
        v = measure(np.nan_to_num(rec.p_signal.T), float(rec.fs), leads).values
        scores = [
            evaluate_rules(d, codes=[af_code])[af_code]["score"] for d in (whole_record_af(v), v)
        ]
        kind = "non-AF" if frac == 0 else ("persistent" if frac > 0.99 else "paroxysmal")
        rows.append((name, kind, frac, rec.sig_len / rec.fs, *scores))
    print(f"\n## The AF rule on whole records of {folder} (I and II, knowledge-base thresholds)\n")
    print("| record | AF marked | AF share | seconds | score, whole record | score, AF window |")
    print("|---|---|---:|---:|---:|---:|")
    for name, kind, frac, sec, a, b in rows:
        print(f"| {name} | {kind} | {frac:.2f} | {sec:.0f} | {a:.2f} | {b:.2f} |")
    counts = {}
    for kind in ("paroxysmal", "persistent", "non-AF"):
        sel = [r for r in rows if r[1] == kind]
        counts[kind] = (len(sel), sum(r[4] >= 0.5 for r in sel), sum(r[5] >= 0.5 for r in sel))
    print("\n| records | n | named AF, whole record | named AF, AF window |")
    print("|---|---:|---:|---:|")
    for kind, (n, a, b) in counts.items():
        print(f"| {kind} | {n} | {a} | {b} |")
    return counts


def main(args: argparse.Namespace) -> int:
    """Print the tables."""
    if args.combine:
        report = combine_nested(args.combine, args.bootstrap, args.seed)
        del report["binary"]
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=_nan_none))
        return 0
    report = rules_tables(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=_nan_none))
    if not args.skip_af:
        records = cpsc2021_records(args.data)
        af_table(records, args.data / "cpsc2021")
        af_record_table(records, args.data / "cpsc2021")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
