"""Decision policies on the rules' scores, compared by nested leave one source out.

The rules' scores do not depend on the decision policy: for every training set the nested
protocol needs, the rules are tuned once (within their bounds, as ``RulesClassifier.fit``
tunes them) and their scores kept (``--scores FILE`` stores them between runs, keyed by the
measurements and the rules' code). Every policy is then fitted and applied on those score
matrices alone (:mod:`team_code.classifiers.decision`):

- a policy for the records of a held-out set is fitted on out-of-source scores of the
  training set, exactly as ``RulesClassifier`` fits its operating thresholds: each training
  source scored by rules tuned on the other training sources; it is applied to the held-out
  records' scores from rules tuned on the whole training set;
- nested choice: for each held-out source (outer split), the policies of :data:`POLICIES`
  (declared here, before any figure) are each scored by leave one source out over the
  training sources alone (the challenge metric of those inner held-out records pooled); the
  best is fitted on the training sources and scores the held-out source, which takes no part
  in the choice.

Printed: per source and pooled, the prevalence floor, the shipped rules (``RulesClassifier``
as shipped, trained on the training sources; its ``expected`` policy) and the rules at their
operating thresholds (``decision_policy="thresholds"``: the ``vote`` policy), each policy's
own leave-one-source-out figure
and the nested choice, with bootstrap intervals and record counts; what each split chose; a
reliability table per class on held-out sources (predicted probability bins against the
observed frequency, for the raw graded scores and the calibrated ones).

Usage::

    python -m benchmarks.decision [--data DIR] [--cache FILE] [--scores FILE]
        [--bootstrap N] [--seed S] [--policies NAME ...] [--json OUT]

``--data`` is the shared data folder (``$ECG_KIT_DATA`` or ``<repo>/../shared/data``); the
records are the six sources of ``benchmarks.challenge`` (A, E, HR, Q, S from ``challenge/``,
LU from ``ludb_challenge/``); ``--cache`` the measurement cache of ``benchmarks.rules``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: The policies the nested protocol chooses among, in tie order (team_code.classifiers.decision
#: names): today's per-class thresholds by source vote, the same judged pooled, 0.5, coordinate
#: ascent on the pooled challenge metric, and the joint expected-metric decision from Platt,
#: isotonic and uncalibrated scores.
POLICIES = (
    "vote",
    "pooled",
    "half",
    "challenge",
    "expected",
    "expected-isotonic",
    "expected-raw",
)
#: Probability bins of the reliability table.
BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(os.environ.get("ECG_KIT_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default, help="shared data folder")
    parser.add_argument("--cache", type=Path, help="measurement cache file (JSON)")
    parser.add_argument("--scores", type=Path, help="rule-score cache file (.npz)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--policies",
        nargs="+",
        default=list(POLICIES),
        metavar="NAME",
        help="the policies the nested protocol chooses among, in tie order "
        "(decision.NAMED_POLICIES; default: POLICIES)",
    )
    parser.add_argument("--json", type=Path, help="write every number here")
    return parser


def _rules_key() -> str:
    """A digest of the rules' code: scores computed by other code are not reused."""
    digest = hashlib.sha256()
    for name in ("rules.py", "rulebook.py", "rule_language.py", "measurements.py"):
        digest.update((REPO / "team_code" / "classifiers" / name).read_bytes())
    return digest.hexdigest()[:16]


class ScoreBank:
    """Rule scores of every record from rules tuned on a training set, each set tuned once.

    ``values`` holds each record's measurements (in record order), ``names`` the record names
    (a cache written for other records or measurements is not reused), ``digests`` the
    signals' digests: a recording released under two sources' names is held out with its
    first copy's source where the training records are scored source by source
    (:func:`~team_code.classifiers.cv.source_groups`, as ``RulesClassifier`` groups them;
    without digests, each record's own source)."""

    def __init__(
        self, values: Sequence[dict], names, truth, sources, task, path=None, key="", digests=None
    ):
        from team_code.classifiers.cv import source_groups

        self.values, self.truth, self.task = list(values), truth, task
        self.sources = list(sources)
        self.groups = self.sources if digests is None else source_groups(self.sources, digests)
        self.path = Path(path) if path is not None else None
        names_digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
        self.key = f"{key}-{_rules_key()}-{names_digest}"
        self.stored: dict[str, np.ndarray] = {}
        self.new = 0
        if self.path is not None and self.path.exists():
            with np.load(self.path) as data:
                if str(data["__key__"]) == self.key:
                    self.stored = {k: data[k] for k in data.files if k != "__key__"}

    def scores(self, train: np.ndarray) -> np.ndarray:
        """(n_records, n_classes) scores of every record from rules tuned on ``train``."""
        from team_code.classifiers.rulebook import default_thresholds
        from team_code.classifiers.rules import RulesClassifier

        train = np.sort(np.asarray(train, dtype=int))
        key = hashlib.sha256(train.tobytes()).hexdigest()[:20]
        if key not in self.stored:
            rules = RulesClassifier(RulesClassifier.Config())
            rules.task_, rules.classes_ = self.task, tuple(self.task.classes)
            rules.rule_thresholds_ = default_thresholds()
            rules.tuning_ = {}
            rules.tune_on_values(
                [self.values[i] for i in train],
                self.truth[train],
                [self.sources[i] for i in train],
            )
            self.stored[key] = rules._scores_from_values(self.values)
            self.new += 1
        return self.stored[key]

    def save(self) -> None:
        if self.path is not None and self.new:
            np.savez_compressed(self.path, __key__=np.array(self.key), **self.stored)
            self.new = 0


def out_of_source(bank: ScoreBank, train: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Scores of the ``train`` records, each source's from rules tuned on the other training
    sources (as ``RulesClassifier`` obtains held-out scores for its operating thresholds; a
    recording under two sources' names with its first copy's, ``bank.groups``); returns the
    scores and each record's group."""
    groups = [bank.groups[i] for i in train]
    scores = np.zeros((len(train), len(bank.task.classes)))
    for group in sorted(set(groups)):
        test = np.array([g == group for g in groups])
        scores[test] = bank.scores(train[~test])[train[test]]
    return scores, groups


def fit_policies(bank: ScoreBank, train: np.ndarray, names: Sequence[str]) -> dict:
    """Each named policy fitted on the out-of-source scores of ``train``."""
    from team_code.classifiers.decision import fit_policies as fit

    scores, groups = out_of_source(bank, train)
    return fit(names, scores, bank.truth[train], groups, bank.task, groups)


def policy_labels(bank: ScoreBank, train, test, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Labels of the ``test`` records by each policy, fitted on ``train`` (see the module
    docstring)."""
    policies = fit_policies(bank, train, names)
    scores = bank.scores(train)[test]
    return {name: policy.apply(scores) for name, policy in policies.items()}


def _metric(truth, binary, classes) -> float:
    from evaluation.metrics import compute_challenge_metric
    from team_code.data.labels import scored_classes

    return compute_challenge_metric(scored_classes().weights, truth, binary, list(classes))


def nested_policies(bank: ScoreBank, digests, names: Sequence[str] = POLICIES) -> dict:
    """Every policy's leave-one-source-out labels, and the nested choice among them.

    Returns ``{"labels": {name: (n, c)}, "nested": (n, c), "chosen": {source: {"chosen",
    "inner"}}}``: each policy's outputs on every source from the other sources, the chosen
    policy's outputs, and for each held-out source the inner leave-one-source-out metric of
    every policy (over its training sources only) and the one chosen."""
    from team_code.classifiers.cv import leave_one_source_out

    sources = np.asarray(bank.sources)
    digests = np.asarray(digests)
    classes = list(bank.task.classes)
    n = len(sources)
    labels = {name: np.zeros((n, len(classes)), bool) for name in names}
    nested = np.zeros((n, len(classes)), bool)
    chosen = {}
    for source, train, test in leave_one_source_out(sources, digests):
        outer = policy_labels(bank, train, test, names)
        for name in names:
            labels[name][test] = outer[name]
        inner_out = {name: [] for name in names}
        inner_rows = []
        for _, tr, te in leave_one_source_out(sources[train], digests[train]):
            result = policy_labels(bank, train[tr], train[te], names)
            for name in names:
                inner_out[name].append(result[name])
            inner_rows.append(train[te])
        rows = np.concatenate(inner_rows)
        inner = {
            name: _metric(bank.truth[rows], np.concatenate(inner_out[name]), classes)
            for name in names
        }
        best = max(names, key=lambda name: inner[name])  # ties: the first listed
        nested[test] = outer[best]
        chosen[source] = {"chosen": best, "inner": inner}
        text = ", ".join(f"{k} {v:.3f}" for k, v in inner.items())
        print(f"[held out {source}] inner LOSO: {text} -> {best}", flush=True)
        bank.save()
    return {"labels": labels, "nested": nested, "chosen": chosen}


def shipped_rules(values: dict, records, digests, task, **options) -> np.ndarray:
    """Leave-one-source-out labels of ``RulesClassifier`` as shipped (default options, or
    ``options`` over them: ``decision_policy="thresholds"`` labels at the vote's operating
    thresholds)."""
    from benchmarks.rules import cached_rules
    from team_code.classifiers.cv import leave_one_source_out
    from team_code.data.records import record_source

    sources = np.asarray([record_source(n) for n in records.names])
    loaded = list(records)
    out = np.zeros((len(loaded), len(task.classes)), bool)
    rules_class = cached_rules(values)
    for _, train, test in leave_one_source_out(sources, np.asarray(digests)):
        model = rules_class(rules_class.Config(**options)).fit([loaded[i] for i in train], task)
        out[test] = model.predict([loaded[i] for i in test])
    return out


def floor_labels(truth, sources, digests) -> np.ndarray:
    """Leave-one-source-out labels of the prevalence floor."""
    from team_code.classifiers.cv import leave_one_source_out
    from team_code.classifiers.thresholds import prevalence_thresholds
    from team_code.data.labels import scored_classes

    classes = list(scored_classes().codes)
    out = np.zeros(truth.shape, bool)
    for _, train, test in leave_one_source_out(np.asarray(sources), np.asarray(digests)):
        prevalence, thresholds = prevalence_thresholds(truth[train], classes)
        out[test] = prevalence >= thresholds
    return out


def held_out_probabilities(bank: ScoreBank, digests) -> dict[str, np.ndarray]:
    """Each record's scores on its held-out source: raw, and calibrated by Platt and isotonic
    maps fitted on the out-of-source scores of the training sources."""
    from team_code.classifiers.cv import leave_one_source_out
    from team_code.classifiers.decision import Calibrator

    sources = np.asarray(bank.sources)
    shape = bank.truth.shape
    out = {"raw": np.zeros(shape), "platt": np.zeros(shape), "isotonic": np.zeros(shape)}
    for _, train, test in leave_one_source_out(sources, np.asarray(digests)):
        scores = bank.scores(train)[test]
        oof, _ = out_of_source(bank, train)
        out["raw"][test] = np.clip(scores, 0, 1)
        for method in ("platt", "isotonic"):
            calibrator = Calibrator(method).fit(oof, bank.truth[train])
            out[method][test] = calibrator.transform(scores)
    return out


def reliability(probabilities: dict, truth, classes, min_positives: int = 10) -> dict:
    """Per class with ``min_positives`` positives: per bin of :data:`BINS` and kind of score,
    the records, mean predicted probability and observed frequency; and per kind the expected
    calibration error (record-weighted mean |observed - predicted| over bins) and Brier
    score."""
    from team_code.data.labels import scored_classes

    table = {}
    for j, code in enumerate(classes):
        y = truth[:, j]
        if y.sum() < min_positives:
            continue
        name = scored_classes().abbreviation(code)
        table[name] = {"positives": int(y.sum())}
        for kind, p in probabilities.items():
            pj = p[:, j]
            index = np.clip(np.digitize(pj, BINS[1:-1], right=False), 0, len(BINS) - 2)
            bins, ece = [], 0.0
            for b in range(len(BINS) - 1):
                m = index == b
                if not m.any():
                    bins.append(None)
                    continue
                pred, obs = float(pj[m].mean()), float(y[m].mean())
                bins.append({"n": int(m.sum()), "predicted": pred, "observed": obs})
                ece += m.sum() * abs(obs - pred)
            table[name][kind] = {
                "bins": bins,
                "ece": ece / len(y),
                "brier": float(np.mean((pj - y) ** 2)),
            }
    return table


def print_reliability(table: dict, kinds: Sequence[str]) -> None:
    """Markdown tables of :func:`reliability`."""
    print("\n### Calibration on held-out sources: ECE and Brier per class\n")
    print("| class | positives | " + " | ".join(f"ECE {k} | Brier {k}" for k in kinds) + " |")
    print("|---|---:|" + "---:|---:|" * len(kinds))
    for name, row in table.items():
        cells = " | ".join(f"{row[k]['ece']:.3f} | {row[k]['brier']:.3f}" for k in kinds)
        print(f"| {name.replace('|', chr(92) + '|')} | {row['positives']} | {cells} |")
    labels = [f"{lo:.1f}-{hi:.1f}" for lo, hi in itertools.pairwise(BINS)]
    print(
        "\n### Reliability on held-out sources: per probability bin, records: mean predicted"
        " -> observed frequency\n"
    )
    print("| class | scores | " + " | ".join(labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for name, row in table.items():
        for k in kinds:
            cells = [
                "-" if b is None else f"{b['n']}: {b['predicted']:.2f} -> {b['observed']:.2f}"
                for b in row[k]["bins"]
            ]
            print(f"| {name.replace('|', chr(92) + '|')} | {k} | " + " | ".join(cells) + " |")


def print_table(report: dict, methods: Sequence[str]) -> None:
    """The challenge metric per source and pooled of each method, with intervals."""
    print("\n### Leave one source out: challenge metric [bootstrap 95% CI]\n")
    print("| method | " + " | ".join(f"{r['source']} ({r['records']})" for r in report["rows"]))
    print("|---|" + "---|" * len(report["rows"]))
    for m in methods:
        cells = []
        for r in report["rows"]:
            v = r["methods"][m]
            lo, hi = v["challenge_ci"]
            floor = r["methods"]["prevalence"]["challenge"]
            mark = "" if m == "prevalence" or v["challenge"] >= floor else " (below floor)"
            cells.append(f"{v['challenge']:.3f} [{lo:.3f}, {hi:.3f}]{mark}")
        print(f"| {m} | " + " | ".join(cells) + " |")


def main(args: argparse.Namespace) -> int:
    """Print the tables."""
    from benchmarks.challenge import load_pool, source_report
    from benchmarks.rules import _measurement_key, measure_all
    from team_code.classifiers.cv import signal_digests
    from team_code.classifiers.decision import check_policy_name
    from team_code.context import Task
    from team_code.data.labels import label_matrix, scored_classes
    from team_code.data.records import record_source

    policies = [check_policy_name(name, option="--policies") for name in args.policies]
    repeated = sorted({name for name in policies if policies.count(name) > 1})
    if repeated:
        raise ValueError(f"--policies names {', '.join(map(repr, repeated))} twice")
    folders = [args.data / "challenge", args.data / "ludb_challenge"]
    records = load_pool(folders)
    classes = list(scored_classes().codes)
    task = Task.of_classes(classes)
    truth = label_matrix(records.labels, classes)
    digests = signal_digests(records)
    sources = [record_source(n) for n in records.names]
    values = measure_all(records, args.cache)
    bank = ScoreBank(
        [values[n] for n in records.names],
        records.names,
        truth,
        sources,
        task,
        args.scores,
        _measurement_key(),
        digests,
    )
    print(f"{len(records)} records from {', '.join(str(f) for f in folders)}")
    print(f"nested choice among {len(policies)} policies: {', '.join(policies)}")
    result = nested_policies(bank, digests, policies)
    binary = {
        "prevalence": floor_labels(truth, sources, digests),
        "shipped rules": shipped_rules(values, records, digests, task),
        "rules at operating thresholds": shipped_rules(
            values, records, digests, task, decision_policy="thresholds"
        ),
        **{f"policy {name}": result["labels"][name] for name in policies},
        f"nested choice ({len(policies)} policies)": result["nested"],
    }
    report = source_report(
        records.names, truth, binary, classes, n_boot=args.bootstrap, seed=args.seed
    )
    print_table(report, list(binary))
    print(
        "\nA policy's own row is its leave-one-source-out figure: choosing the best row by this"
        " table would be in-sample; the nested row is the honest estimate of the choice."
    )
    print("\nChosen per held-out source (inner LOSO metric of each policy):\n")
    for source, c in result["chosen"].items():
        inner = ", ".join(f"{k} {v:.3f}" for k, v in c["inner"].items())
        print(f"- {source}: {c['chosen']} ({inner})")
    probabilities = held_out_probabilities(bank, digests)
    table = reliability(probabilities, truth, classes)
    print_reliability(table, list(probabilities))
    bank.save()
    if args.json:
        out = {"report": report, "chosen": result["chosen"], "reliability": table}
        args.json.write_text(json.dumps(out, indent=2, default=_jsonable))
    return 0


def _jsonable(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(type(v))


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
