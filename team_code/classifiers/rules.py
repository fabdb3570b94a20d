"""Rule-based classifier: the rule book's rules, their thresholds learnt within their bounds.

Every record is measured once (:func:`team_code.dsp.features.measure`) and scored by the rule
of each class (:mod:`team_code.classifiers.rulebook`, written in the graded rule language of
:mod:`team_code.classifiers.rule_language`). A classifier reads its task's table
(``task.scored``), its truth merged with that table's equivalences.

Learning (``fit``) has two phases, both on the training records only:

1. ``tune``: each rule's primary threshold moves, within its clinically stated bounds, to the
   value that maximises the class's F-measure on the training records (1-D grid; ties go to
   the published value; classes with fewer than ``min_positives`` positives keep it);
2. ``decision="loso"`` (the default): each class's operating threshold on the rule score, or
   silence, is chosen for the challenge metric on scores for hospitals the rules did not
   see: for every training source, the rules are tuned on the other sources and score it
   (leave one source out; record-name prefixes, :func:`record_source`), and a coordinate
   ascent over classes keeps a class's detections only where they raise the challenge
   metric on more of those held-out sources than they lower it, each source scored on its
   own (``decision_objective="vote"``; ``"pooled"`` judges their records pooled, where the
   largest source decides). A class whose detections do not pay on held-out sources
   stays silent (threshold above every score). Where the training records come from one
   source, ``decision_folds`` grouped folds stand in for the sources. ``decision="half"``
   takes 0.5 everywhere; ``"challenge"`` searches thresholds on the training scores.
3. ``decision_policy``: a name of :data:`team_code.classifiers.decision.NAMED_POLICIES`
   fits that decision policy on the held-out training-source scores of step 2; the default,
   ``"expected"``, gives per record the label set with the highest expected challenge metric
   under the scoring table's partial credits, from Platt-calibrated scores (chosen by a rule
   declared before most of its figures: docs/decision.md). ``"thresholds"`` labels a class
   where its score reaches its operating threshold. The operating thresholds are chosen and
   saved either way: the report and the hybrid read them.

Sources label the same concept differently (see the rule book): the operating thresholds
follow the pooled training labels, the rules' clinical definitions stay as the book writes
them.

The rule language and the book's names (:class:`Threshold`, :class:`Rule`, :data:`RULES`,
:func:`evaluate_rules`, :func:`rule_for_class`, :func:`default_thresholds`) are importable
from here as well.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import numpy as np

from team_code.classifiers.base import Classifier, Evidence
from team_code.classifiers.cv import signal_digests, source_groups
from team_code.classifiers.decision import (
    NAMED_POLICIES,
    TIES,
    DecisionPolicy,
    ThresholdPolicy,
    group_masks,
    label_vocabulary,
    make_policy,
    policy_from_json,
)
from team_code.classifiers.measurements import (
    delineator_weights_digest,
    measure_all,
    measured_leads,
    record_measurements,
)
from team_code.classifiers.rule_language import Rule, Threshold
from team_code.classifiers.rulebook import (
    RULES,
    apply_follows,
    class_codes,
    default_thresholds,
    evaluate_rules,
    rule_for_class,
    rule_table,
)
from team_code.classifiers.thresholds import NEVER, RecordMetric, at_thresholds
from team_code.context import RunContext, Task
from team_code.data.labels import ScoredClasses, table_for
from team_code.data.records import Record, record_source
from team_code.dsp.features import DELINEATORS, FeatureConfig

__all__ = [
    "RulesClassifier",
    "Threshold",
    "Rule",
    "RULES",
    "class_codes",
    "default_thresholds",
    "evaluate_rules",
    "rule_for_class",
    "rule_table",
    "operating_thresholds",
    "label_vocabulary",
]

#: Ways of setting the operating thresholds on the rule scores (:class:`RulesClassifier`).
DECISIONS = ("loso", "half", "challenge")
#: How ``decision="loso"`` judges a threshold on held-out sources (:func:`operating_thresholds`).
OBJECTIVES = ("vote", "pooled")


#: The graded-score levels a class's operating threshold chooses among (besides silence): the
#: rule's condition met by a margin of about one transition width either way, or just met.
OPERATING_LEVELS: tuple[float, ...] = (0.2, 0.35, 0.5, 0.65, 0.8)

#: Decision variants ``decision_select`` may name, each as the options it sets over the
#: configured ones: ``configured`` (the options as given: by default the expected-metric
#: label sets), ``vote`` (each class at the operating threshold the source vote chose: the
#: default before), ``pooled-8`` (the pooled objective, graded levels for classes of 8 or more
#: positives), ``vote-vocabulary`` (each class judged on the sources that use its label),
#: ``half`` (0.5 everywhere) and ``bagged-15`` (thresholds most of 15 bootstrap resamples
#: choose); the last five label at operating thresholds. ``configured`` and the last four are
#: the five variants of the nested protocol of ``benchmarks/rules.py`` as first declared,
#: under its names (``configured`` is its ``shipped``), when the vote was the default.
_AT_THRESHOLDS = {"decision_policy": "thresholds"}
DECISION_VARIANTS: dict[str, dict] = {
    "configured": {},
    "vote": dict(_AT_THRESHOLDS),
    "pooled-8": {"decision_objective": "pooled", "decision_min_positives": 8, **_AT_THRESHOLDS},
    "vote-vocabulary": {"decision_vocabulary": True, **_AT_THRESHOLDS},
    "half": {"decision": "half", **_AT_THRESHOLDS},
    "bagged-15": {"decision_bagging": 15, **_AT_THRESHOLDS},
}


def _variant_names(text: str) -> list[str]:
    """The names of ``decision_select`` (comma-separated, blanks ignored)."""
    return [n.strip() for n in text.split(",") if n.strip()]


def _labels(scores, thresholds, policy) -> np.ndarray:
    """Labels of score vectors: the decision policy's where there is one, else each class at
    its operating threshold."""
    if policy is None:
        return at_thresholds(scores, thresholds)
    return policy.apply(np.atleast_2d(scores))


def operating_thresholds(
    truth: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    min_positives: int = 8,
    sources: Sequence[str] | None = None,
    vocabulary: bool = True,
    scored: ScoredClasses | None = None,
    objective: str = "pooled",
    groups: Sequence[str] | None = None,
    ties: str = "silence",
    graded: Sequence[bool] | None = None,
) -> np.ndarray:
    """Each class's threshold on held-out rule scores, or silence (:data:`NEVER`), for the
    challenge metric: coordinate ascent over classes from 0.5 everywhere.

    ``objective`` says when a class's new threshold is kept: ``"pooled"``, where it raises the
    challenge metric of all held-out records pooled; ``"vote"``, where it raises the metric of
    more held-out groups (``groups``, the held-out training sources; ``sources`` without
    them) than it lowers it, each group scored on its own (a sign vote: a source of 116
    records and one of 8 count alike, and a small source's large swing in the metric counts
    once). ``ties`` (:data:`TIES`) says who wins a tie: by default silence (a class keeps a
    threshold only where its detections pay on the held-out scores); with ``"keep"`` the
    class's current threshold (silence needs a strict gain like any other move).
    Classes with ``min_positives`` or more positives try 0.5, silence and the graded-score
    levels 0.2, 0.35, 0.65 and 0.8 (the rule's condition met by a margin of about one
    transition width either way); rarer classes try 0.5 and silence only (a threshold searched
    on a few positives mostly learns which records they were). ``graded`` (one bool per
    class) says instead which classes try the graded levels (None: those with
    ``min_positives`` positives in ``truth``), e.g. decided once on the records as given
    and held in each bootstrap resample of them. With ``sources``, a class is
    judged on the records of the sources that use its label (:func:`label_vocabulary`); a
    class that no source uses is silent. The metric weighs with ``scored`` (when None, the
    shipped table of ``classes``: :func:`team_code.data.labels.table_for`).
    """
    truth = np.asarray(truth, bool)
    scores = np.asarray(scores, float)
    classes = list(classes)
    scored = scored if scored is not None else table_for(classes)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}, not {ties!r}")
    uses = label_vocabulary(truth, sources if vocabulary else None)
    masks = group_masks(groups if groups is not None else sources, len(truth))
    metric = RecordMetric(truth, classes, scored)

    def value(rows, b):
        """The challenge metric of the records in ``rows``: pooled, or per group."""
        observed = metric.observed(b)
        if objective == "pooled":
            return metric.score(observed, rows)
        return np.array([metric.score(observed, rows & m) for m in masks])

    def better(new, old, silence: bool) -> bool:
        """Whether ``new`` beats ``old``; with ``ties="silence"`` silence wins ties, another
        threshold (and with ``"keep"``, silence too) must do strictly better."""
        silence = silence and ties == "silence"
        if objective == "pooled":
            return new > old + 1e-9 or (silence and new >= old - 1e-12)
        up, down = int(np.sum(new > old + 1e-9)), int(np.sum(new < old - 1e-9))
        return up > down or (silence and up >= down)

    thresholds = np.full(len(classes), 0.5)
    binary = scores >= thresholds
    for _ in range(4):
        improved = False
        for j in range(len(classes)):
            rows = uses[:, j]
            if not rows.any():
                improved |= bool(thresholds[j] != NEVER)
                thresholds[j] = NEVER
                binary[:, j] = False
                continue
            best = value(rows, binary)
            candidates = [NEVER, 0.5]
            if (truth[:, j].sum() >= min_positives) if graded is None else graded[j]:
                candidates += [t for t in OPERATING_LEVELS if t != 0.5]
            for t in candidates:
                if t == thresholds[j]:
                    continue
                trial = binary.copy()
                trial[:, j] = scores[:, j] >= t
                v = value(rows, trial)
                if better(v, best, t == NEVER):
                    best, thresholds[j], improved = v, float(t), True
                    binary[:, j] = trial[:, j]
        if not improved:
            break
    return thresholds


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    tp = float(np.sum(y & p))
    denom = float(2 * tp + np.sum(~y & p) + np.sum(y & ~p))
    return 2 * tp / denom if denom else 0.0


def _jsonable(v):
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


class RulesClassifier(Classifier):
    """Knowledge-base rules per scored class on measured intervals, axes and loops."""

    name = "rules"
    #: A graded score under the lowest operating level is a rule whose condition is missed by
    #: more than a transition width: no threshold below it names the class.
    lowest_decision = min(OPERATING_LEVELS)
    #: The fitted decision policy where ``decision_policy`` names one (None: thresholds).
    policy_: DecisionPolicy | None = None
    #: The training records' choice among ``decision_select``'s variants (None: no choice):
    #: ``chosen``, ``groups``, each variant's pooled challenge metric on the groups' decisions
    #: (``inner``) and its standard error against the best (``se``).
    decision_selection_: dict | None = None

    @dataclasses.dataclass(frozen=True)
    class Config:
        """Options of the rule-based classifier."""

        tune: bool = True  # tune each rule's primary threshold on training data, within bounds
        min_positives: int = 3  # classes with fewer training positives keep the published value
        n_grid: int = 25  # grid points of the per-rule threshold search
        # Operating thresholds on the rule scores: "loso" (each class's threshold, or silence,
        # chosen for the challenge metric on scores for held-out training sources), "half"
        # (0.5), "challenge" (searched on the training scores themselves).
        decision: str = "loso"
        # "loso": classes with at least this many training positives choose among graded-score
        # levels 0.2-0.8 and silence (see operating_thresholds); rarer ones 0.5 or silence.
        # 3, as min_positives: a class with enough positives to tune its rule chooses its level.
        decision_min_positives: int = 3
        # "loso": "vote" keeps a class's threshold where it raises the challenge metric on more
        # held-out training sources than it lowers it, each scored on its own; "pooled" where
        # it raises the metric of their records pooled (see operating_thresholds).
        decision_objective: str = "vote"
        # "loso" with fewer than two sources in the training records: this many grouped
        # folds stand in for the sources.
        decision_folds: int = 3
        # "loso": judge each class only on the sources that use its label (tuning always is:
        # see label_vocabulary); off, a class's detections are judged on every held-out
        # source, as an unseen hospital's vocabulary is unknown.
        decision_vocabulary: bool = False
        # "loso": with B > 0, each class takes the threshold (or silence) that most of B
        # bootstrap resamples of the held-out records (within each source) and the records
        # themselves choose (decision.ThresholdPolicy's bagging); 0: the records alone.
        decision_bagging: int = 0
        # "loso": who wins a tie between a class's threshold and silence (decision.TIES):
        # "silence" (a detection that does not pay is not made) or "keep" (silence needs more
        # held-out sources for it than against it, as any other move does).
        decision_ties: str = "silence"
        # rhythm and ectopy read over at most this many seconds of a record (the whole of
        # every Challenge record), the average beat from the first ``morphology_s`` seconds
        max_duration_s: float = FeatureConfig.max_duration_s
        morphology_s: float = FeatureConfig.morphology_s
        # intervals and lead T amplitudes from "wavelet" (the rules' own delineation) or
        # "cnn" (the learned delineator, team_code.nn.delineator; see features.DELINEATORS)
        delineator: str = FeatureConfig.delineator
        # How scores become labels: a policy of decision.NAMED_POLICIES fitted on the
        # held-out training-source scores ("expected", the default: the label set with the
        # highest expected challenge metric, from Platt-calibrated scores; docs/decision.md),
        # or "thresholds": each class at its operating threshold (as ``decision`` chose it).
        decision_policy: str = "expected"
        # Names of DECISION_VARIANTS, comma-separated: the training records choose among
        # them (each source decided by every variant fitted without it; the first listed
        # kept within one standard error of the best, else the best), and the chosen one
        # decides. Empty: the configured decision options, unchosen.
        decision_select: str = ""

        def __post_init__(self):
            names = _variant_names(self.decision_select)
            unknown = [n for n in names if n not in DECISION_VARIANTS]
            if unknown or len(set(names)) != len(names):
                raise ValueError(
                    "rules: decision_select must name distinct variants of "
                    f"{', '.join(DECISION_VARIANTS)}, not {self.decision_select!r}"
                )
            if self.delineator not in DELINEATORS:
                raise ValueError(
                    f"rules: delineator must be one of {', '.join(DELINEATORS)}, "
                    f"not {self.delineator!r}"
                )
            if self.decision not in DECISIONS:
                raise ValueError(
                    f"rules: decision must be one of {', '.join(DECISIONS)}, not {self.decision!r}"
                )
            if self.decision_bagging < 0:
                raise ValueError(
                    f"rules: decision_bagging must be >= 0, not {self.decision_bagging!r}"
                )
            if self.decision_ties not in TIES:
                raise ValueError(
                    f"rules: decision_ties must be one of {', '.join(TIES)}, "
                    f"not {self.decision_ties!r}"
                )
            if self.decision_objective not in OBJECTIVES:
                raise ValueError(
                    f"rules: decision_objective must be one of {', '.join(OBJECTIVES)}, "
                    f"not {self.decision_objective!r}"
                )
            if self.decision_policy != "thresholds" and self.decision_policy not in NAMED_POLICIES:
                raise ValueError(
                    "rules: decision_policy must be 'thresholds' or one of "
                    f"{', '.join(NAMED_POLICIES)}, not {self.decision_policy!r}"
                )

    @classmethod
    def quick_config(cls):
        """Published thresholds and 0.5: fits instantly (no measurement pass)."""
        return cls.Config(tune=False, decision="half", decision_policy="thresholds")

    # -- measurements --------------------------------------------------------------------
    def _feature_config(self) -> FeatureConfig:
        return FeatureConfig(
            max_duration_s=self.config.max_duration_s,
            morphology_s=self.config.morphology_s,
            delineator=self.config.delineator,
        )

    def _leads(self) -> tuple[str, ...] | None:
        """The task's leads when it reads fewer than twelve (None: the record's own)."""
        return measured_leads(self.task_.leads)

    def measure(self, record: Record) -> dict:
        """Measurements of one record plus its sex (for sex-specific limits) and notes."""
        return record_measurements(record, self._feature_config(), self._leads())

    def _measured(self, records: Sequence[Record]) -> list[dict]:
        """The measurement values of ``records``: each record is measured once, in parallel
        over the run's workers, and kept in the run's per-record cache, which the hybrid's
        folds and refit reuse (:mod:`team_code.classifiers.measurements`)."""
        measured = measure_all(
            records,
            self._feature_config(),
            self.ctx.cache_option(),
            self.ctx.workers,
            progress=self.ctx.progress,
            leads=self._leads(),
        )
        return [m["values"] for m in measured]

    def _scores_from_values(self, all_values: Sequence[dict], thresholds=None) -> np.ndarray:
        """Rule scores of measured records under the model's rule thresholds (or
        ``thresholds``)."""
        thresholds = self.rule_thresholds_ if thresholds is None else thresholds
        scores = np.zeros((len(all_values), len(self.classes_)))
        scored = self.task_.scored
        for i, values in enumerate(all_values):
            result = evaluate_rules(values, thresholds, self.classes_, scored)
            for j, code in enumerate(self.classes_):
                if code in result:
                    scores[i, j] = result[code]["score"]
        return scores

    # -- learning ------------------------------------------------------------------------
    def fit(
        self, records: Sequence[Record], task: Task, ctx: RunContext | None = None
    ) -> RulesClassifier:
        """Tune the rules within their bounds, then choose each class's operating threshold
        (see the module docstring)."""
        self._begin(task, ctx)
        self.rule_thresholds_ = default_thresholds()
        self.tuning_ = {}
        self.thresholds_ = np.full(len(self.classes_), 0.5)
        self.policy_ = None
        # the learned delineator's weights are read at run time too: the model keeps their digest
        self.delineator_weights_ = delineator_weights_digest(self._feature_config())
        if (
            not self.config.tune
            and self.config.decision == "half"
            and self.config.decision_policy == "thresholds"
            and len(self._candidates()) == 1
        ):
            return self
        start = time.perf_counter()
        all_values = self._measured(records)
        self.fit_seconds_per_record_ = (time.perf_counter() - start) / max(1, len(records))
        names = [r.name for r in records]
        # truth merged with the equivalences of the task's table (2020 or 2021)
        truth = self.label_matrix(records)
        # the signals' digests group twins in the held-out scores, which only some decisions read
        digests = signal_digests(records) if self._reads_held_out() else None
        return self.fit_values(all_values, truth, names, digests)

    def _reads_held_out(self) -> bool:
        """Whether fitting scores the training records by rules tuned without them (the
        operating thresholds' input, or a decision policy's)."""
        return (
            self.config.decision == "loso"
            or self.config.decision_policy != "thresholds"
            or len(self._candidates()) > 1
        )

    def fit_values(
        self,
        all_values: Sequence[dict],
        truth: np.ndarray,
        names: Sequence[str],
        digests: Sequence[str] | None = None,
    ) -> RulesClassifier:
        """``fit`` on measurements already made (``names`` give the records' sources;
        ``digests``, the signals' (:func:`signal_digests`), keep a recording released under
        two sources' names, or twice in one source, out of training while either copy is held
        out). With ``decision_select``, the decision variant is chosen first
        (:meth:`_select_decision`)."""
        self.policy_ = None
        self.decision_selection_ = None
        sources = [record_source(n) for n in names]
        fit = _GroupFit(self, all_values, truth, sources, digests)
        config = self.config
        candidates = self._candidates()
        if len(candidates) > 1 and len(all_values) > 0:
            config = self._select_decision(fit)
        elif _variant_names(self.config.decision_select):  # one variant named: that one
            config = next(iter(candidates.values()))
        self.rule_thresholds_, self.tuning_ = fit.tuned(frozenset())
        self.thresholds_, self.policy_, self.decision_ = fit.decision(config, frozenset())
        return self

    def _candidates(self) -> dict[str, Config]:
        """The decision variants ``decision_select`` names, as configs (the configured options
        with each variant's over them); without it, the configured options alone."""
        names = _variant_names(self.config.decision_select)
        if not names:
            return {"configured": self.config}
        return {
            n: dataclasses.replace(self.config, decision_select="", **DECISION_VARIANTS[n])
            for n in names
        }

    def _select_decision(self, fit: _GroupFit) -> Config:
        """The decision variant of ``decision_select`` that the training records themselves
        choose: each group (source; see :class:`_GroupFit`) is decided by every variant
        fitted without it (its rules tuned, and its held-out scores made, on the other groups
        alone), and the first variant listed is kept where its pooled challenge metric on
        those decisions is within one standard error of the best variant's, else the best
        (:func:`team_code.classifiers.hybrid.first_within_one_se`)."""
        from team_code.classifiers.hybrid import first_within_one_se

        candidates = self._candidates()
        outputs = {name: np.zeros(fit.truth.shape, bool) for name in candidates}
        for group in fit.names:
            test = fit.groups == group
            excluded = frozenset([group])
            scores = fit.scores(excluded, test)
            for name, config in candidates.items():
                thresholds, policy, _ = fit.decision(config, excluded)
                outputs[name][test] = _labels(scores, thresholds, policy)
        chosen, se = first_within_one_se(outputs, fit.truth, self.classes_, self.task_.scored)
        metric = RecordMetric(fit.truth, self.classes_, self.task_.scored)
        everyone = np.ones(len(fit.truth), bool)
        self.decision_selection_ = {
            "chosen": chosen,
            "groups": list(fit.names),
            "inner": {
                n: float(metric.score(metric.observed(b), everyone)) for n, b in outputs.items()
            },
            "se": {n: float(v) for n, v in se.items()},
        }
        return candidates[chosen]

    def tune_on_values(
        self, all_values: Sequence[dict], truth: np.ndarray, sources: Sequence[str] | None = None
    ) -> None:
        """Per-rule 1-D grid search of the primary threshold maximising the class's F1 on the
        records of the sources that use the class's label (all records without ``sources``;
        see :func:`label_vocabulary`); then the thresholds that follow a tuned one move with
        it (:func:`~team_code.classifiers.rulebook.apply_follows`)."""
        scored = self.task_.scored
        uses = label_vocabulary(truth, sources)
        for j, code in enumerate(self.classes_):
            rule = rule_for_class(code, scored)
            rows = np.flatnonzero(uses[:, j])
            y = truth[rows, j]
            if rule is None or y.sum() < self.config.min_positives:
                continue
            spec = rule.thresholds[rule.primary]
            grid = np.unique(np.r_[np.linspace(spec.lo, spec.hi, self.config.n_grid), spec.value])
            best_value, best_f1 = spec.value, -1.0
            for value in sorted(grid, key=lambda g: abs(g - spec.value)):  # ties: nearest to KB
                tried = {rule.primary: float(value)}
                th = {rule.code: dict(self.rule_thresholds_[rule.code], **tried)}
                pred = np.array(
                    [
                        evaluate_rules(all_values[i], th, [code], scored)[code]["score"] >= 0.5
                        for i in rows
                    ]
                )
                f1 = _f1(y, pred)
                if f1 > best_f1 + 1e-12:
                    best_value, best_f1 = float(value), f1
            self.rule_thresholds_[rule.code][rule.primary] = best_value
            self.tuning_[code] = {
                "threshold": rule.primary,
                "value": best_value,
                "knowledge_base": spec.value,
                "train_f1": best_f1,
            }
        apply_follows(self.rule_thresholds_)

    # -- inference -----------------------------------------------------------------------
    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        """Graded rule scores in [0, 1]; classes without a rule score 0."""
        return self._scores_from_values(self._measured(records))

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Labels of score vectors: the decision policy's where one is fitted
        (``decision_policy``), else the operating thresholds'."""
        return _labels(scores, self.thresholds_, self.policy_)

    def explain(self, record: Record) -> dict:
        """A JSON-able account of one record: measurements, notes, and every rule's verdict.

        Returns:
            ``{"record", "notes", "measurements", "labels", "rules"}`` where ``rules`` holds,
            per class, ``code``, ``abbreviation`` (the class's, in its table), ``rule`` (the
            code the serving rule is keyed by), ``criterion``, ``score``, ``threshold``
            (operating threshold on the score; above 1 where the class is silent), ``label``
            (bool), ``terms`` (each condition: ``measure``, ``value``, ``op``, ``threshold``
            (as tuned), ``published`` (the published value), ``bounds`` (the clinically stated
            range tuning keeps to), ``source``, ``unit``, ``score`` and ``role``: ``"for"``
            or ``"against"`` the diagnosis, ``"missing"``), ``missing`` (measurements that
            were NaN; their conditions scored 0) and ``why`` (a sentence).
        """
        m = self.measure(record)
        values = m["values"]
        scored = self.task_.scored
        result = evaluate_rules(values, self.rule_thresholds_, self.classes_, scored)
        record_scores = np.array(
            [result[c]["score"] if c in result else 0.0 for c in self.classes_]
        )
        decided = self.decide(record_scores[None, :])[0]
        rules, labels = [], []
        for j, code in enumerate(self.classes_):
            rule = rule_for_class(code, scored)
            if rule is None:
                continue
            r = result[code]
            label = bool(decided[j])
            scored_code = code in scored.representative
            abbreviation = scored.abbreviation(code) if scored_code else rule.abbreviation
            if label:
                labels.append(abbreviation)
            parts = {"for": [], "against": []}
            for t in r["terms"]:
                if t["value"] is None:
                    continue
                text = (
                    f"{t['measure']} = {t['value']:.3g} {t['op']} {t['threshold']:.3g}"
                    + (f" {t['unit']}" if t["unit"] else "")
                    + f" ({t['score']:.2f})"
                )
                if text not in parts[t["role"]]:
                    parts[t["role"]].append(text)
            why = ("fired: " if label else "not fired: ") + "; ".join(
                f"{role}: " + ", ".join(items) for role, items in parts.items() if items
            )
            if self.thresholds_[j] >= NEVER and self.policy_ is None:
                why += " (silent: its detections did not pay on held-out training sources)"
            if r["missing"]:
                why += "; not measurable: " + ", ".join(r["missing"]) + " (scored 0)"
            rules.append(
                {
                    "code": code,
                    "abbreviation": abbreviation,
                    "rule": rule.code,  # the rule's own code (any code of the class)
                    "criterion": rule.criterion,
                    "score": r["score"],
                    "threshold": float(self.thresholds_[j]),
                    "label": label,
                    "terms": r["terms"],
                    "missing": r["missing"],
                    "why": why,
                }
            )
        return {
            "record": record.name,
            "notes": list(m["notes"]),
            "measurements": {k: _jsonable(v) for k, v in values.items()},
            "labels": labels,
            "rules": rules,
        }

    def evidence(self, records: Sequence[Record]) -> list[Evidence]:
        """Each record's account (:meth:`explain`) and the rule scores it gives (those of
        :meth:`predict_proba`)."""
        out = []
        for record in records:
            account = self.explain(record)
            score = {r["code"]: r["score"] for r in account["rules"]}
            scores = np.array([score.get(code, 0.0) for code in self.classes_])
            out.append(Evidence(rules=account, scores=scores))
        return out

    # -- persistence ---------------------------------------------------------------------
    def _save_state(self, folder) -> None:
        from team_code.fileio import save_json

        policy = self.policy_
        save_json(
            folder / "rules.json",
            {
                "thresholds": self.rule_thresholds_,
                "tuning": self.tuning_,
                "decision_policy": None if policy is None else policy.to_json(),
                "decision_selection": self.decision_selection_,
                "delineator_weights_sha256": getattr(self, "delineator_weights_", None),
            },
        )

    def _load_state(self, folder) -> None:
        from team_code.fileio import load_json

        state = load_json(folder / "rules.json")
        self.rule_thresholds_ = default_thresholds()
        for code, th in state["thresholds"].items():
            self.rule_thresholds_.setdefault(code, {}).update(th)
        self.tuning_ = state.get("tuning", {})
        policy = state.get("decision_policy")
        self.policy_ = None if policy is None else policy_from_json(policy)
        self.decision_selection_ = state.get("decision_selection")
        self.delineator_weights_ = state.get("delineator_weights_sha256")
        self._check_delineator_weights(folder)

    def _check_delineator_weights(self, folder) -> None:
        """Refuse (``ValueError``: a model that cannot be loaded, exit 2) a model that measures
        with the learned delineator when its weights, which live outside the model folder, are
        not the ones it was trained with."""
        if self.config.delineator == "wavelet":
            return
        try:
            now = delineator_weights_digest(self._feature_config())
        except FileNotFoundError as error:
            raise ValueError(f"{folder}: rules.delineator=cnn: {error}") from None
        if self.delineator_weights_ is not None and now != self.delineator_weights_:
            raise ValueError(
                f"{folder}: rules.delineator=cnn: the learned delineator's weights "
                f"(sha256 {now[:12]}...) are not those the model was trained with "
                f"({self.delineator_weights_[:12]}...): restore them, or retrain the model"
            )

    def summary(self) -> dict:
        """Config, tuned thresholds and the classes covered by a rule."""
        scored = self.task_.scored
        covered = [c for c in self.classes_ if rule_for_class(c, scored) is not None]
        return {
            "config": dataclasses.asdict(self.config),
            "rules": [self.task_.abbreviation(c) for c in covered],
            "tuning": self.tuning_,
            "decision_selection": self.decision_selection_,
        }


class _GroupFit:
    """The parts of a rules fit on measured records, each computed once: the rules tuned
    without some groups of the records (memoised by the set left out), their scores, and the
    held-out scores a decision is chosen on. The groups are the records' sources, a recording
    released under two sources' names counted with its first copy's
    (:func:`~team_code.classifiers.cv.source_groups`); with one source, ``decision_folds``
    folds drawn by the signals' digests (not the records' order) stand in for them.

    A fit without the groups ``excluded`` tunes on the other groups' records and chooses its
    decision on their held-out scores (each such group scored by rules tuned without it too),
    so that choosing among decision variants group by group (:meth:`RulesClassifier.
    _select_decision`) reuses every tuning: with ``g`` groups, ``1 + g + g(g-1)/2`` tunings
    in all."""

    def __init__(self, model: RulesClassifier, all_values, truth, sources, digests=None):
        self.model = model
        self.values = list(all_values)
        self.truth = np.asarray(truth, bool)
        self.sources = list(sources)
        groups = list(sources) if digests is None else source_groups(sources, digests)
        if len(set(groups)) < 2:
            k = max(2, min(model.config.decision_folds, len(groups)))
            ids = range(len(groups)) if digests is None else digests
            rank = {d: r for r, d in enumerate(sorted(set(ids)))}  # not the records' order
            groups = [f"fold {rank[d] % k + 1}" for d in ids]
        self.groups = np.asarray(groups)
        self.names = sorted(set(groups))
        self._tuned: dict[frozenset, tuple[dict, dict]] = {}
        self._held: dict[frozenset, np.ndarray] = {}

    def rows(self, excluded: frozenset) -> np.ndarray:
        """Whether each record lies outside the groups ``excluded``."""
        return ~np.isin(self.groups, sorted(excluded))

    def tuned(self, excluded: frozenset) -> tuple[dict, dict]:
        """The rule thresholds and tuning account of rules tuned without ``excluded``."""
        if excluded not in self._tuned:
            model = self.model
            inner = RulesClassifier(model.config)
            inner.task_, inner.classes_ = model.task_, model.classes_
            inner.rule_thresholds_ = default_thresholds()
            inner.tuning_ = {}
            if model.config.tune and len(self.values):
                train = np.flatnonzero(self.rows(excluded))
                inner.tune_on_values(
                    [self.values[i] for i in train],
                    self.truth[train],
                    [self.sources[i] for i in train],
                )
            self._tuned[excluded] = (inner.rule_thresholds_, inner.tuning_)
        return self._tuned[excluded]

    def scores(self, excluded: frozenset, rows: np.ndarray) -> np.ndarray:
        """Rule scores of the records ``rows`` (a mask) by rules tuned without ``excluded``."""
        thresholds, _ = self.tuned(excluded)
        values = [self.values[i] for i in np.flatnonzero(rows)]
        return self.model._scores_from_values(values, thresholds)

    def held_out(self, excluded: frozenset) -> np.ndarray:
        """Scores of the records outside ``excluded``, each by rules tuned without its group
        too (the scores a decision is chosen on)."""
        if excluded not in self._held:
            train = self.rows(excluded)
            held = np.zeros((int(train.sum()), len(self.model.classes_)))
            groups = self.groups[train]
            for group in sorted(set(groups.tolist())):
                part = groups == group
                held[part] = self.scores(excluded | {group}, train & (self.groups == group))
            self._held[excluded] = held
        return self._held[excluded]

    def decision(self, config, excluded: frozenset) -> tuple[np.ndarray, object, dict | None]:
        """The operating thresholds, decision policy (None: the thresholds decide) and an
        account of the decision (None unless ``decision="loso"``) that ``config``'s decision
        options choose on the records outside ``excluded``."""
        model = self.model
        train = self.rows(excluded)
        truth = self.truth[train]
        groups = self.groups[train].tolist()
        sources = [s for s, keep in zip(self.sources, train, strict=True) if keep]
        thresholds = np.full(len(model.classes_), 0.5)
        policy = account = None
        if config.decision == "challenge" and train.any():
            scores = self.scores(excluded, train)
            chooser = ThresholdPolicy("challenge", fixed=0.5)
            thresholds = chooser.fit(scores, truth, task=model.task_).thresholds_
        elif config.decision == "loso" and train.any():
            chooser = ThresholdPolicy(
                config.decision_objective,
                config.decision_min_positives,
                config.decision_vocabulary,
                bagging=config.decision_bagging,
                ties=config.decision_ties,
            )
            held = self.held_out(excluded)
            thresholds = chooser.fit(held, truth, groups, model.task_, sources).thresholds_
            account = {
                "held_out_groups": sorted(set(groups)),
                "silent": [
                    model.task_.abbreviation(c)
                    for c, t in zip(model.classes_, thresholds, strict=True)
                    if t >= NEVER
                ],
            }
        if config.decision_policy != "thresholds" and train.any():
            policy = make_policy(config.decision_policy).fit(
                self.held_out(excluded), truth, groups, model.task_, sources
            )
        return thresholds, policy, account
