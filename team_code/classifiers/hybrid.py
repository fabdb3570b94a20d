"""The hybrid: out-of-fold predictions of the engines fused per class.

Training (``fit``):

1. k folds grouped so that identical signals stay on one side (:mod:`.cv`), or whole sources
   (``fold_groups="source"``);
2. every member (``rules``, ``parallel_cnn``, ``cwt_googlenet``, ``beats``) is trained on k-1
   folds and predicts the held-out fold, giving out-of-fold (OOF) scores for every record;
   a member with a ``stack_features(records)`` method (``beats``: fractions of V and S beats,
   the MI probability) adds those features too;
3. three fusions, each with two ways of setting thresholds, are compared on records that
   neither the fuser nor the thresholds saw (fusers fitted on k-1 folds of the OOF scores;
   searched thresholds taken from the other folds' fused scores, a stack's from stacks
   fitted without each record's fold, a selection's from the member it chose there):
   - ``single``: the one member with the best mean average precision (fusion that does not
     pay on a small training set must not cost the best engine's score);
   - ``selection``: per class, the member with the best OOF average precision (classes
     with fewer than ``selection_min_positives`` positives take the best member overall);
   - ``stacking``: per class, an L2-regularised logistic regression on the members'
     margins (logit score minus the logit of the member's own threshold) plus the evidence
     features; rare classes take the best member's scores as they are;
   - thresholds ``own`` (each class's member's own, 0.5 on stacked probabilities) or
     ``searched`` for the challenge metric (classes with fewer than
     ``threshold_min_positives`` positives keep their own); out of fold, a member's own
     thresholds are those of the fold model that made the score;
   the simplest candidate is kept unless a more complex one scores higher by more than
   ``tolerance_se`` standard errors of the paired per-record difference (the
   one-standard-error rule; ``fusion``/``thresholding`` "auto"), or the one named;
4. every member is refitted on all records for inference;
5. the chosen fuser is refitted on all OOF scores; the shipped thresholds are those of the
   models that make the shipped predictions: the refitted members' own (0.5 on stacked
   probabilities), or, when ``searched`` won, thresholds searched on all the OOF fused
   scores (rarer classes keep the refitted members' own). Never an average across folds.

A record that a member cannot process (it raises for that record, or returns non-finite
scores or evidence) is reported and left out of that member's part only: its average
precision is taken without the record, stacking gives the record that member's mean
features (they add nothing), and where the class takes that member's scores, the next
member's are used on the first one's threshold scale. At inference, likewise; a record that
no member can process raises an error naming it.

``beats`` joins only when it has beat data (``--beat-data``); without it, it is left out
with a message, and the manifest lists the members actually used.

Work folder and resume (the run context's ``workdir`` and ``resume``; ``train_model.py``
gives ``MODEL/.work/hybrid`` and, with ``--resume``, resumes from it): every member trains
each fold and the refit under a child context of its own (:meth:`RunContext.child`),
``<workdir>/<member>/fold<k>`` and ``<workdir>/<member>/refit``, so no two trainings share a
checkpoint; all of them share the run's per-record cache. A deep member
checkpoints every epoch there; a finished fold leaves its held-out scores, evidence and own
thresholds (``outputs.safetensors``), a finished refit its saved model (``model/``), and the
fold's checkpoint is then deleted (``history.csv`` stays). ``fold.json`` holds a key of what
defines the part (:func:`team_code.runs.run_key`: the member, its options, the task, the kit's
version, the training and held-out records by their contents and labels) and whether it
finished. A resumed fit reads back the
parts that finished with the same key, continues an interrupted deep member from its last
epoch, and trains the rest; every seed is fixed per part, so the result equals an
uninterrupted run's. Nothing of the run (folders, device, workers) is part of the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.special import expit

from team_code.classifiers import registry
from team_code.classifiers.base import Classifier, Evidence, apply_options
from team_code.classifiers.cv import grouped_kfold, signal_digests, source_groups, take
from team_code.classifiers.decision import make_policy
from team_code.classifiers.thresholds import (
    NEVER,
    challenge_score,
    prevalence_thresholds,
)
from team_code.context import RunContext, Task, record_names
from team_code.data.records import Record, record_source
from team_code.fileio import load_arrays, load_json, save_arrays, save_json
from team_code.runs import TrainingDiverged, run_key

FUSIONS = ("single", "selection", "stacking")  # simplest first: ties keep the simpler
#: The shipped default's members (see HybridConfig.members).
DEFAULT_MEMBERS: tuple[str, ...] = ("auto",)
#: What ``members=auto`` stands for: every engine, cheapest first (ties keep the earlier).
AUTO_MEMBERS: tuple[str, ...] = ("rules", "parallel_cnn", "cwt_googlenet", "beats")
THRESHOLDINGS = ("own", "searched")
CHOICES = ("global", "per_class")
#: The per-class candidate that predicts each class by its training prevalence decision.
FLOOR = "floor"
#: The mode of the candidate that takes a member's own decision policy for every class
#: (``"rules/policy"``: the rules' expected-metric label sets), beside the per-class choice.
POLICY = "policy"


@dataclasses.dataclass(frozen=True)
class HybridConfig:
    """Options of the hybrid."""

    # Engines to fuse, by registry name; beats joins only when given --beat-data. The default
    # "auto" stands for every engine that can train on the data (AUTO_MEMBERS), each class
    # served by what its out-of-fold evidence supports (docs/hybrid.md); naming engines
    # (--set hybrid.members=rules,parallel_cnn) narrows the candidates.
    members: tuple[str, ...] = DEFAULT_MEMBERS
    # "global": one fusion and thresholding for every class (the candidates of `fusion` and
    # `thresholding`), every member shipped; "per_class": each class keeps the floor's
    # decision, one member (own or searched thresholds) or the stack, whichever its own
    # out-of-fold evidence supports, and members that serve no class are not shipped;
    # "auto": "per_class" with members=auto (the default), "global" with named members.
    choice: str = "auto"
    # Per-class choice only: after this many folds, a member that leads no class (the best
    # out-of-fold ROC AUC, LEAD_Z standard errors above chance, among classes with
    # selection_min_positives positives in those folds) is dropped from the other folds and
    # the refit (0: never). Not nested: the validation names such drops under "not_nested".
    early_drop_folds: int = 1
    # Folds of the out-of-fold predictions (records with identical signals share a fold).
    n_folds: int = 5
    # "source": whole sources (record-name prefixes) stay together, so the fusion and its
    # thresholds are chosen on scores for hospitals the members did not see (falls back to
    # "signal" with fewer sources than folds); "signal": folds keep identical signals together
    # (the two compared in docs/results.md).
    fold_groups: str = "source"
    # "auto" compares single, selection and stacking on cross-validated OOF scores (see
    # tolerance_se); or name one.
    fusion: str = "auto"
    # "own": each class keeps its member's own threshold (0.5 on stacked probabilities);
    # "searched": thresholds searched for the challenge metric; "auto": the better of the
    # two on records the thresholds were not searched on.
    thresholding: str = "auto"
    # Among the candidates ("auto"), the simplest is kept unless a more complex one scores
    # higher by more than this many standard errors (0: the highest score wins).
    tolerance_se: float = 1.0
    # The per-class choice: a class leaves its current candidate (the start, or the floor)
    # only for a candidate whose gain over it on that class exceeds this many standard errors
    # of the paired per-record difference (with k records changed alike, about sqrt(k): 3
    # asks for nine or more records' worth of consistent evidence; a high bar, as every class
    # tries every candidate); among those, tolerance_se applies.
    class_tolerance_se: float = 3.0
    # ... and by at least this much of the challenge metric: a member's inference is not
    # shipped for a gain that small.
    class_min_gain: float = 0.001
    # Inverse L2 strength of the per-class logistic regressions (stacking).
    stacking_c: float = 0.5
    # Per-class selection only for classes with this many positives (else the best member).
    selection_min_positives: int = 5
    # Thresholds are searched only for classes with this many positives; the others keep the
    # chosen member's own thresholds (0.5 for stacking).
    threshold_min_positives: int = 5
    # Seed of the fold assignment.
    seed: int = 0
    # Options of the members: {"parallel_cnn": {"epochs": "5"}, ...} (strings, as on the CLI).
    member_options: dict = dataclasses.field(default_factory=dict)


#: Per part of a member's training: its key and whether it finished.
PART_FILE = "fold.json"
#: A finished fold's held-out scores, evidence and own thresholds.
OUTPUTS_FILE = "outputs.safetensors"
#: A finished refit's model folder.
MODEL_FOLDER = "model"


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return expit(z)


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision of scores ``s`` for truth ``y``, over the records that have a score
    (a member's NaN marks a record it could not process)."""
    scored = np.isfinite(s)
    y, s = y[scored], s[scored]
    if not y.any():
        return 0.0
    order = np.argsort(-s, kind="stable")
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(y) + 1)
    return float((precision * hits).sum() / hits.sum())


def _record_contributions(truth: np.ndarray, binary: np.ndarray, classes, scored) -> np.ndarray:
    """Each record's share of the normalised challenge metric, weighed by ``scored`` (the
    task's table): its observed score over the span between the correct and the inactive
    scores, so that the sums of two sets of outputs differ exactly as their metrics do."""
    from evaluation.metrics import record_challenge_contributions
    from team_code.classifiers.thresholds import challenge_weights, normal_index

    observed, correct, inactive = record_challenge_contributions(
        challenge_weights(classes, scored), truth, binary, normal_index(classes)
    )
    span = correct.sum() - inactive.sum()
    return observed / span if span else np.zeros_like(observed)


def _paired_se(difference: np.ndarray) -> float:
    """Standard error of the sum of a paired per-record difference (0 for one record)."""
    n = len(difference)
    return float(np.sqrt(n) * difference.std(ddof=1)) if n > 1 else 0.0


def first_within_one_se(outputs: dict, truth, classes, scored=None) -> tuple[str, dict]:
    """The one-standard-error choice among variants: the first variant of ``outputs`` where
    its score is within one standard error of the best one's, else the best, the standard
    error taken of the paired per-record difference of the records' contributions to the
    normalised challenge metric. Where several variants tie for the best, the first is kept
    if it is within one standard error of any of them, else the first listed of them is
    chosen; the order of the other variants plays no other part. ``outputs[name]``: the
    variant's decisions on the same records, ``truth`` their labels, ``scored`` the task's
    table (None: the shipped table of ``classes``). Returns the choice and each variant's
    standard error against the best (the first listed of tied best; the best's: 0)."""
    contributions = {
        n: _record_contributions(truth, b, classes, scored) for n, b in outputs.items()
    }
    totals = {n: float(c.sum()) for n, c in contributions.items()}
    top = max(totals.values())
    tied = [n for n in outputs if totals[n] == top]
    se = {n: _paired_se(contributions[tied[0]] - c) for n, c in contributions.items()}
    first = next(iter(outputs))
    # the hybrid's one-standard-error rule between the first listed and each best
    for best in tied:
        pair = {n: contributions[n] for n in (first, best)}
        if _simplest_within_tolerance(pair, 1.0) == first:
            return first, se
    return tied[0], se


def _simplest_within_tolerance(contributions: dict, tolerance_se: float) -> tuple:
    """The first (simplest) candidate whose cross-validated score is within ``tolerance_se``
    standard errors of the best one's, the standard error taken of the paired per-record
    difference (the one-standard-error rule: on a small set, the best score among several
    candidates is partly luck, and the simpler candidate is the safer bet)."""
    totals = {k: float(v.sum()) for k, v in contributions.items()}
    best = max(totals, key=totals.get)
    for key, values in contributions.items():
        difference = contributions[best] - values
        se = _paired_se(difference)
        if totals[best] - totals[key] <= tolerance_se * se:
            return key
    return best


def _class_pick(
    contributions: dict, current: str, over_se: float, tolerance_se: float, min_gain: float = 0.0
) -> tuple[str, list]:
    """One class's candidate from per-record contributions (``current``'s among them):
    ``current``, unless candidates beat it by more than ``over_se`` standard errors of the
    paired per-record difference and by more than ``min_gain``; then the simplest of those
    within ``tolerance_se`` of the best of them (:func:`_simplest_within_tolerance`).
    Returns the key and the candidates that beat ``current``."""
    base = contributions[current]
    better = []
    for key, values in contributions.items():
        difference = values - base
        se = _paired_se(difference)
        if key != current and difference.sum() > max(over_se * se, min_gain, 1e-12):
            better.append(key)
    if not better:
        return current, better
    return _simplest_within_tolerance(
        {key: contributions[key] for key in better}, tolerance_se
    ), better


def _member_ranking(precision: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Members from the best mean average precision (over the classes that have positives) to
    the worst; the first is ``single``'s member."""
    present = truth.any(axis=0)
    mean = precision[present].mean(axis=0) if present.any() else np.zeros(precision.shape[1])
    return np.argsort(-mean, kind="stable")


#: The early-drop rule: a member leads a class when its ROC AUC there is the best and above
#: 0.5 by this many standard errors of an uninformative score's AUC.
LEAD_Z = 2.5


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC of scores ``s`` for truth ``y`` (ties count half; NaN scores left out)."""
    scored = np.isfinite(s)
    y, s = y[scored], s[scored]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return 0.5
    from scipy.stats import rankdata

    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _leading_members(scores: np.ndarray, truth: np.ndarray, min_positives: int) -> set[int]:
    """The members (indices into ``scores``' axis 1) that lead at least one class with
    ``min_positives`` or more positives: the best ROC AUC there (ties: the earlier member),
    and above 0.5 by ``LEAD_Z`` standard errors of an uninformative score's AUC
    (Mann-Whitney: sqrt((n_pos + n_neg + 1) / (12 n_pos n_neg))). Every member when none
    leads anywhere (too little evidence to drop any)."""
    truth = np.asarray(truth, dtype=bool)
    leaders = set()
    for j in np.flatnonzero(truth.sum(axis=0) >= min_positives):
        y = truth[:, j]
        n_pos, n_neg = int(y.sum()), int((~y).sum())
        if not n_neg:
            continue
        auc = [_auc(y, scores[:, m, j]) for m in range(scores.shape[1])]
        best = int(np.argmax(auc))
        se = np.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))
        if auc[best] > 0.5 + LEAD_Z * se:
            leaders.add(best)
    return leaders or set(range(scores.shape[1]))


def _f1(truth: np.ndarray, binary: np.ndarray) -> float:
    """F1 of one class's decisions (0 without positives or predictions)."""
    tp = float((truth & binary).sum())
    total = float(truth.sum() + binary.sum())
    return 2 * tp / total if total else 0.0


def _precision_table(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Average precision of every (class, member): shape (n_classes, n_members)."""
    return np.array(
        [
            [_average_precision(truth[:, j], scores[:, m, j]) for m in range(scores.shape[1])]
            for j in range(scores.shape[2])
        ]
    )


def _pick(scores: np.ndarray, own: np.ndarray, ranking: np.ndarray) -> np.ndarray:
    """Per class ``j``, the scores of member ``ranking[j, 0]``; where that member has no score
    for a record (NaN: it could not process it), the next member in ``ranking[j]`` that has
    one, moved onto the first member's scale by its margin (its logit distance from its own
    threshold, added to the logit of the first member's threshold), so that each member's
    own decision is kept. NaN where no member has a score.

    ``scores`` (n, n_members, n_classes); ``own`` the members' own thresholds, (n_members,
    n_classes) or per record (n, n_members, n_classes); ``ranking`` (n_classes, n_members).
    """
    c = scores.shape[2]
    own = np.broadcast_to(own, scores.shape)
    columns = np.arange(c)
    first = ranking[:, 0]
    out = scores[:, first, columns].copy()
    target = _logit(own[:, first, columns])
    for rank in range(1, ranking.shape[1]):
        missing = ~np.isfinite(out)
        if not missing.any():
            break
        other = ranking[:, rank]
        margin = _logit(scores[:, other, columns]) - _logit(own[:, other, columns])
        out = np.where(missing, _sigmoid(margin + target), out)
    return out


class _Stacker:
    """Per-class logistic regressions on the members' margins and the evidence.

    A member's margin for a class is its logit score minus the logit of the own threshold of
    the model that made the score (a fold model for out-of-fold scores, the refitted member
    at inference), so 0 is that model's decision boundary whatever its score scale. A member
    that could not process a record (NaN) adds nothing to that record's regression: its
    standardised features are 0 there. Classes with fewer than ``min_positives`` positives
    are not regressed (a regression on two positives learns which records they were): they
    take the best member's scores and thresholds as they are (:func:`_pick`), except classes
    with one outcome only, which score a constant at their smoothed rate (the data-driven
    fusion predicts no class it has never seen; ``single`` and ``selection`` keep the
    engines' knowledge of such classes, and cross-validation chooses).
    """

    learns_from_labels = True

    def __init__(self, c: float, min_positives: int = 5):
        self.c = c
        self.min_positives = min_positives

    @staticmethod
    def features(scores: np.ndarray, own: np.ndarray, evidence: np.ndarray, j: int) -> np.ndarray:
        own = np.broadcast_to(own, scores.shape)
        return np.column_stack([_logit(scores[:, :, j]) - _logit(own[:, :, j]), evidence])

    def _standardised(self, x: np.ndarray, j: int) -> np.ndarray:
        z = (x - self.mean_[j]) / self.scale_[j]
        return np.where(np.isfinite(z), z, 0.0)

    def fit(
        self, scores: np.ndarray, own: np.ndarray, evidence: np.ndarray, truth: np.ndarray
    ) -> _Stacker:
        """scores (n, n_members, n_classes); own (n_members, n_classes) or per record;
        evidence (n, n_evidence); truth (n, n_classes)."""
        from sklearn.linear_model import LogisticRegression

        n_classes = truth.shape[1]
        n_features = scores.shape[1] + evidence.shape[1]
        self.coef_ = np.zeros((n_classes, n_features))
        self.intercept_ = np.zeros(n_classes)
        self.mean_ = np.zeros((n_classes, n_features))
        self.scale_ = np.ones((n_classes, n_features))
        self.ranking_ = np.tile(
            _member_ranking(_precision_table(scores, truth), truth), (n_classes, 1)
        )
        positives = truth.sum(axis=0)
        frequent = (positives >= self.min_positives) & ~truth.all(axis=0)
        one_outcome = (positives == 0) | truth.all(axis=0)
        # -1: regressed; -2: one outcome only, a constant at its smoothed rate; else a member.
        self.fallback_ = np.where(frequent, -1, np.where(one_outcome, -2, self.ranking_[:, 0]))
        for j in np.flatnonzero(one_outcome):
            rate = (positives[j] + 0.5) / (len(truth) + 1.0)
            self.intercept_[j] = np.log(rate / (1 - rate))
        for j in np.flatnonzero(frequent):
            x = self.features(scores, own, evidence, j)
            finite = np.isfinite(x)
            counts = finite.sum(axis=0)
            x0 = np.where(finite, x, 0.0)
            mean = x0.sum(axis=0) / np.maximum(counts, 1)
            std = np.sqrt(
                (np.where(finite, x - mean, 0.0) ** 2).sum(axis=0) / np.maximum(counts, 1)
            )
            self.mean_[j] = mean
            self.scale_[j] = np.where(std > 1e-9, std, 1.0)
            model = LogisticRegression(C=self.c, max_iter=1000)
            model.fit(self._standardised(x, j), truth[:, j])
            self.coef_[j] = model.coef_[0]
            self.intercept_[j] = model.intercept_[0]
        return self

    def predict(self, scores: np.ndarray, own: np.ndarray, evidence: np.ndarray) -> np.ndarray:
        out = _pick(scores, own, self.ranking_)
        for j in range(scores.shape[2]):
            if self.fallback_[j] == -2:
                out[:, j] = _sigmoid(self.intercept_[j])
            elif self.fallback_[j] == -1:
                x = self._standardised(self.features(scores, own, evidence, j), j)
                out[:, j] = _sigmoid(x @ self.coef_[j] + self.intercept_[j])
        return out

    def start_thresholds(self, own: np.ndarray) -> np.ndarray:
        """0.5 on regressed probabilities; the fallback member's own threshold elsewhere
        (per record when ``own`` is)."""
        columns = np.arange(len(self.fallback_))
        member = np.asarray(own)[..., self.ranking_[:, 0], columns]
        return np.where(self.fallback_ >= 0, member, 0.5)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "coef": self.coef_,
            "intercept": self.intercept_,
            "mean": self.mean_,
            "scale": self.scale_,
            "fallback": self.fallback_.astype(np.int64),
            "ranking": self.ranking_.astype(np.int64),
        }

    def set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]
        self.mean_, self.scale_ = arrays["mean"], arrays["scale"]
        self.fallback_ = arrays["fallback"].astype(int)
        self.ranking_ = arrays["ranking"].astype(int)


class _Selector:
    """Per class, the scores of one member, chosen by average precision (AP).

    ``per_class``: each class with at least ``min_positives`` positives takes the member with
    its best AP; rarer classes (where AP is noise) take the member with the best mean AP over
    all classes. Without ``per_class`` every class takes that member ("single"). A record the
    chosen member could not process takes the next member's score (:func:`_pick`).
    """

    def __init__(self, per_class: bool = True, min_positives: int = 5, first: int | None = None):
        self.per_class = per_class
        self.min_positives = min_positives
        self.first = first

    #: Its scores are one member's out-of-fold scores, not fitted to the labels (only the
    #: choice of the member reads them), so thresholds are searched on the scores of the
    #: member it chose on all the records it saw. Scores of fusers fitted without each fold
    #: would mix members of different scales (the rules' graded scores, a network's
    #: probabilities) wherever the folds' choices differ.
    learns_from_labels = False

    def fit(
        self, scores: np.ndarray, own: np.ndarray, evidence: np.ndarray, truth: np.ndarray
    ) -> _Selector:
        del own, evidence
        precision = _precision_table(scores, truth)
        overall = _member_ranking(precision, truth)
        if self.first is not None:  # one member for every class; the others stand in for it
            overall = np.r_[self.first, overall[overall != self.first]]
        self.ranking_ = np.tile(overall, (truth.shape[1], 1))
        if self.per_class and self.first is None:
            for j in np.flatnonzero(truth.sum(axis=0) >= self.min_positives):
                # by the class's own AP; ties in the overall order
                self.ranking_[j] = overall[np.argsort(-precision[j, overall], kind="stable")]
        return self

    @property
    def choice_(self) -> np.ndarray:
        """The member each class takes."""
        return self.ranking_[:, 0]

    def predict(self, scores: np.ndarray, own: np.ndarray, evidence: np.ndarray) -> np.ndarray:
        del evidence
        return _pick(scores, own, self.ranking_)

    def start_thresholds(self, own: np.ndarray) -> np.ndarray:
        """Each class's chosen member's own threshold (per record when ``own`` is)."""
        return np.asarray(own)[..., self.choice_, np.arange(len(self.choice_))]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"ranking": self.ranking_.astype(np.int64)}

    def set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.ranking_ = arrays["ranking"].astype(int)


class _Floor:
    """The prevalence floor as a fuser: every record scores each class's training prevalence,
    and the class is predicted for every record or for none, as
    :class:`~team_code.classifiers.prevalence.PrevalenceClassifier` decides."""

    learns_from_labels = True

    def __init__(self, classes, scored=None):
        self.classes = classes
        self.scored = scored

    def fit(self, scores, own, evidence, truth) -> _Floor:
        del scores, own, evidence
        self.prevalence_, self.thresholds_ = prevalence_thresholds(truth, self.classes, self.scored)
        return self

    def predict(self, scores: np.ndarray, own, evidence) -> np.ndarray:
        return np.tile(self.prevalence_, (len(scores), 1))

    def start_thresholds(self, own: np.ndarray) -> np.ndarray:
        own = np.asarray(own)
        return np.broadcast_to(self.thresholds_, own.shape[:-2] + self.thresholds_.shape).copy()

    def arrays(self) -> dict[str, np.ndarray]:
        return {"prevalence": self.prevalence_, "thresholds": self.thresholds_}

    def set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.prevalence_ = arrays["prevalence"]
        self.thresholds_ = arrays["thresholds"]


def _split(key: str) -> tuple[str, str]:
    """A candidate key (``"stacking/searched"``, ``"rules/own"``, ``"floor"``) as (kind, mode)."""
    kind, _, mode = key.partition("/")
    return kind, mode or "own"


class _Nested:
    """Fusion candidates judged on records that neither their fuser nor their thresholds saw.

    The held-out parts of ``folds`` partition the records; a *subset* is a frozenset of fold
    numbers. A candidate ``kind/mode`` fitted on a subset is the fuser ``kind`` fitted on that
    subset's out-of-fold scores, with the own thresholds of the models that made the scores
    (``own``) or thresholds searched for the challenge metric on that subset's records, scored
    by fusers fitted without each record's fold (``inner``; a fuser that learns nothing from
    labels, one member's scores, is searched on its own scores). :meth:`decide` applies such
    a candidate to a fold outside the subset, :meth:`oof` gives every fold of a subset its
    decisions by candidates fitted on the others, :meth:`choose` makes the hybrid's choice
    from those, and :meth:`validate` makes it again inside every outer fold, on the other
    folds only, and applies it to the outer fold: the estimate of the whole procedure. Fitted
    fusers, inner scores and searched thresholds are memoised by the subset they saw.
    """

    def __init__(
        self,
        hybrid,
        members,
        truth,
        folds,
        scores,
        own,
        evidence,
        candidates,
        labels=None,
        policies: Sequence[int] = (),
    ):
        self.hybrid = hybrid
        self.members = list(members)
        self.truth, self.scores, self.own, self.evidence = truth, scores, own, evidence
        # (n, members, classes): each fold model's own decisions on its held-out records; and
        # the members whose own decision is a joint policy (a candidate for every class)
        self.labels = labels
        self.policies = list(policies)
        self.parts = [np.asarray(test, dtype=int) for _, test in folds]
        self.everything = frozenset(range(len(self.parts)))
        self.candidates = list(candidates)
        self._fusers: dict = {}
        self._inner: dict = {}
        self._searched: dict = {}
        self._oof: dict = {}

    def rows(self, subset: frozenset) -> np.ndarray:
        return np.sort(np.concatenate([self.parts[i] for i in sorted(subset)]))

    def fuser(self, kind: str, subset: frozenset):
        key = (kind, subset)
        if key not in self._fusers:
            rows = self.rows(subset)
            self._fusers[key] = self.hybrid._new_fuser(kind, self.members).fit(
                self.scores[rows], self.own[rows], self.evidence[rows], self.truth[rows]
            )
        return self._fusers[key]

    def fused(self, kind: str, subset: frozenset, rows: np.ndarray) -> np.ndarray:
        """Scores of ``rows`` by ``kind`` fitted on ``subset`` (0 where no member scored)."""
        fuser = self.fuser(kind, subset)
        fused = fuser.predict(self.scores[rows], self.own[rows], self.evidence[rows])
        return np.nan_to_num(fused, nan=0.0)

    def inner(self, kind: str, subset: frozenset) -> np.ndarray | None:
        """Scores of the subset's records, each fold's from ``kind`` fitted on the subset's
        other folds (None with one fold); a fuser whose scores are not fitted to the labels
        (a selector: one member's out-of-fold scores) scores them itself."""
        key = (kind, subset)
        if key not in self._inner:
            rows = self.rows(subset)
            if not self.fuser(kind, subset).learns_from_labels:
                self._inner[key] = self.fused(kind, subset, rows)
            elif len(subset) < 2:
                self._inner[key] = None
            else:
                out = np.zeros(self.truth.shape)
                for i in subset:
                    out[self.parts[i]] = self.fused(kind, subset - {i}, self.parts[i])
                self._inner[key] = out[rows]
        return self._inner[key]

    def lowest_decision(self, kind: str, subset: frozenset) -> np.ndarray | None:
        """The lowest threshold a search may give each class's scores of ``kind``: the
        ``lowest_decision`` of the member whose scores they are (the rules' graded scores;
        per class for a selection), NaN for a member without one; None for stacked scores."""

        def lowest(member: str) -> float:
            if member not in registry.available():  # a name given by hand, not a family
                return np.nan
            value = registry.get(member).lowest_decision
            return np.nan if value is None else float(value)

        n = len(self.hybrid.classes_)
        if kind in self.members:
            return np.full(n, lowest(kind))
        if kind in ("single", "selection"):
            return np.array([lowest(self.members[i]) for i in self.fuser(kind, subset).choice_])
        return None

    def searched(self, kind: str, subset: frozenset, start: np.ndarray) -> np.ndarray:
        """Thresholds for the challenge metric searched on the subset's inner scores (classes
        with fewer than threshold_min_positives positives, or a subset too small to hold
        inner scores, keep ``start``; none below the member's :meth:`lowest_decision`)."""
        key = (kind, subset, np.asarray(start).tobytes())
        if key not in self._searched:
            inner = self.inner(kind, subset)
            rows = self.rows(subset)
            self._searched[key] = (
                np.array(start, dtype=float)
                if inner is None
                else make_policy(
                    "challenge",
                    start=start,
                    min_positives=self.hybrid.config.threshold_min_positives,
                    lowest=self.lowest_decision(kind, subset),
                )
                .fit(inner, self.truth[rows], task=self.hybrid.fused_task())
                .thresholds_
            )
        return self._searched[key]

    def decide(self, keys, subset: frozenset, fold: int) -> dict[str, np.ndarray]:
        """Each candidate of ``keys`` fitted on ``subset``, applied to fold ``fold``: its
        decisions for that fold's records."""
        rows = self.parts[fold]
        out = {}
        for key in keys:
            kind, mode = _split(key)
            if mode == POLICY:  # the fold model's own decisions: nothing fitted on the subset
                out[key] = self.labels[rows, self.members.index(kind)]
                continue
            fused = self.fused(kind, subset, rows)
            start = self.fuser(kind, subset).start_thresholds(self.own[rows])
            if mode == "searched":
                # The fold was scored by one fold model per member: its own thresholds are
                # one row, the start that rarer classes keep.
                out[key] = fused >= self.searched(kind, subset, start[0])
            else:
                out[key] = fused >= start
        return out

    def oof(self, subset: frozenset) -> dict[str, np.ndarray]:
        """(n, n_classes) decisions of every candidate on the subset's records (False
        elsewhere), each fold's by candidates fitted on the subset's other folds."""
        if subset not in self._oof:
            out = {key: np.zeros(self.truth.shape, dtype=bool) for key in self.candidates}
            for fold in subset:
                for key, binary in self.decide(self.candidates, subset - {fold}, fold).items():
                    out[key][self.parts[fold]] = binary
            self._oof[subset] = out
        return self._oof[subset]

    def choose(self, subset: frozenset) -> tuple[list[str], dict]:
        """The hybrid's choice (a candidate per class) made on the subset's records only;
        with one fold, nothing out of fold to choose on: the simplest candidate."""
        classes = len(self.hybrid.classes_)
        if len(subset) < 2:
            return [self.candidates[0]] * classes, {}
        rows = self.rows(subset)
        decisions = {key: d[rows] for key, d in self.oof(subset).items()}
        choice, report = self.hybrid._choose(decisions, self.truth[rows])
        return self.or_policy(choice, report, decisions, rows)

    def or_policy(self, choice: list[str], report: dict, decisions: dict, rows) -> tuple:
        """The per-class ``choice``, or a member's own joint decision policy for every class
        where the member has one (:attr:`policies`): the per-class choice is kept unless a
        policy's out-of-fold decisions beat its decisions by more than one standard error of
        the paired per-record difference (:func:`first_within_one_se`; the per-class
        decisions are those the choice was made on, so the comparison leans to it)."""
        if not self.policies:
            return choice, report
        truth, classes = self.truth[rows], self.hybrid.classes_
        composite = np.column_stack([decisions[key][:, j] for j, key in enumerate(choice)])
        outputs = {"per class": composite}
        for m in self.policies:
            outputs[f"{self.members[m]}/{POLICY}"] = self.labels[rows, m]
        best, se = first_within_one_se(outputs, truth, classes, self.hybrid.task_.scored)
        if best == "per class":
            return choice, report
        metric = {
            key: challenge_score(truth, outputs[key], classes, self.hybrid.task_.scored)
            for key in ("per class", best)
        }
        why = (
            f"{best} for every class: out-of-fold challenge metric {metric[best]:.3f} against "
            f"the per-class choice's {metric['per class']:.3f} (more than one standard "
            f"error, {se['per class']:.3f}, above it)"
        )
        chosen = outputs[best]
        report = {  # the account's figures are the member's own decisions', not the per-class
            code: {
                "class": entry["class"],
                "positives": entry["positives"],
                "served_by": best,
                "why": why,
                "dropped": {},
                **({"f1": _f1(truth[:, j], chosen[:, j])} if entry["positives"] else {}),
            }
            for j, (code, entry) in enumerate(report.items())
        }
        return [best] * len(classes), report

    def validate(self) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-fold decisions of the whole choice (made again inside every outer fold on
        the other folds) and of the floor, on the same folds."""
        chosen = np.zeros(self.truth.shape, dtype=bool)
        floor = np.zeros(self.truth.shape, dtype=bool)
        for fold in self.everything:
            others = self.everything - {fold}
            choice, _ = self.choose(others)
            decided = self.decide(sorted(set(choice)), others, fold)
            rows = self.parts[fold]
            for j, key in enumerate(choice):
                chosen[rows, j] = decided[key][:, j]
            floor[rows] = self.decide([FLOOR], others, fold)[FLOOR]
        return chosen, floor


class HybridClassifier(Classifier):
    """Engines fused per class on out-of-fold predictions; thresholds for the challenge metric."""

    name = "hybrid"
    Config = HybridConfig

    @classmethod
    def quick_config(cls) -> HybridConfig:
        members = ("rules", "parallel_cnn")
        options = {m: dataclasses.asdict(registry.get(m).quick_config()) for m in members}
        return HybridConfig(members=members, n_folds=3, member_options=options)

    # -- members -------------------------------------------------------------------------
    @classmethod
    def members(cls, config: HybridConfig) -> tuple[str, ...]:
        members = tuple(config.members)
        return AUTO_MEMBERS if members == ("auto",) else members

    @classmethod
    def with_member_options(cls, config: HybridConfig, options) -> HybridConfig:
        """``config`` with ``options`` ({member: {option: value}}) over its member options."""
        merged = {k: dict(v) for k, v in config.member_options.items()}
        for member, values in options.items():
            merged[member] = {**merged.get(member, {}), **values}
        return dataclasses.replace(config, member_options=merged)

    def _member_config(self, name: str):
        values = self.config.member_options.get(name, {})
        return apply_options(registry.get(name).Config, values)

    def use(self, ctx: RunContext) -> HybridClassifier:
        """Inference under ``ctx``, for the members too."""
        self.ctx = ctx
        for model in getattr(self, "members_", {}).values():
            model.use(ctx)
        return self

    def _usable_members(self) -> list[str]:
        members = []
        for name in self.members(self.config):
            if name == "hybrid":
                raise ValueError("the hybrid cannot contain itself")
            config = self._member_config(name)
            reason = registry.get(name).unavailable(config)
            if reason:
                self._log(f"hybrid: {name} left out ({reason})")
                continue
            # the global choice reads every member's scores and operating thresholds alike: a
            # policy the user named for a member is said (the per-class choice weighs a
            # member's own joint policy as a candidate for every class)
            policy = self.config.member_options.get(name, {}).get("decision_policy", "thresholds")
            if policy != "thresholds" and self._choice_mode() == "global":
                self._log(
                    f"warning: hybrid: {name}.decision_policy={policy} is not read by the "
                    f"hybrid, which decides on {name}'s scores with its operating thresholds; "
                    f"the policy labels a {name} model trained on its own "
                    f"(--classifiers {name})"
                )
            members.append(name)
        if not members:
            raise ValueError("the hybrid has no usable members")
        return members

    def _log(self, message: str) -> None:
        self.ctx.log(message)

    def _fold_groups(self, records: Sequence[Record]) -> list[str]:
        """Fold groups: whole sources (``grouping_`` "source"), or records with identical
        signals kept together (``grouping_`` "record")."""
        digests = signal_digests(records)
        self.grouping_ = "record"
        if self.config.fold_groups == "signal":
            return digests
        if self.config.fold_groups != "source":
            raise ValueError("hybrid: fold_groups must be 'signal' or 'source'")
        groups = source_groups([record_source(name) for name in record_names(records)], digests)
        if len(set(groups)) >= self.config.n_folds:
            self.grouping_ = "source"
            return groups
        self._log(
            f"warning: hybrid: {len(set(groups))} source(s) cannot fill {self.config.n_folds} "
            "folds; the folds group by record (identical signals together), so the "
            "out-of-fold figures are for new records of these sources, not for new sources"
        )
        return digests

    def _member_outputs(self, name: str, model: Classifier, records: Sequence[Record]):
        """One member's scores (n, n_classes) and evidence (n, n_evidence) for ``records``.

        A record the member cannot process (it raises for that record alone, or gives
        non-finite scores or evidence) is reported and gets NaN rows: the fusion leaves it
        out of that member's part (:func:`_pick`, :class:`_Stacker`), not out of the fit.
        """
        n_evidence = len(getattr(model, "stack_feature_names_", ()))

        def outputs(batch):
            scores = np.asarray(model.predict_proba(batch), dtype=float)
            evidence = (
                np.asarray(model.stack_features(batch), dtype=float)
                if n_evidence
                else np.zeros((len(batch), 0))
            )
            if scores.shape != (len(batch), len(self.classes_)):
                raise ValueError(f"scores of shape {scores.shape}")
            if evidence.shape != (len(batch), n_evidence):
                raise ValueError(f"evidence of shape {evidence.shape}")
            return scores, evidence

        n = len(records)
        problems: dict[int, str] = {}
        try:
            scores, evidence = outputs(records)
        except Exception:  # find the records at fault, one at a time
            scores, evidence = (
                np.full((n, len(self.classes_)), np.nan),
                np.full((n, n_evidence), np.nan),
            )
            for i in range(n):
                try:
                    one_scores, one_evidence = outputs(take(records, [i]))
                    scores[i], evidence[i] = one_scores[0], one_evidence[0]
                except Exception as error:
                    problems[i] = f"{type(error).__name__}: {error}"
        finite = np.isfinite(scores).all(axis=1) & np.isfinite(evidence).all(axis=1)
        for i in np.flatnonzero(~finite):
            problems.setdefault(int(i), "non-finite scores or evidence")
        if problems:
            names = record_names(records)
            for i, problem in sorted(problems.items()):
                self._log(
                    f"hybrid: {name} cannot process record {names[i]} ({problem}); "
                    f"fused without {name} for it"
                )
            bad = sorted(problems)
            scores[bad], evidence[bad] = np.nan, np.nan
        return scores, evidence

    def _own(self) -> np.ndarray:
        """(n_members, n_classes): the fitted members' own thresholds."""
        return np.array(
            [
                np.clip(np.asarray(m.thresholds_, dtype=float), 0.0, NEVER)
                for m in self.members_.values()
            ]
        ).reshape(len(self.members_), len(self.classes_))

    # -- learning ------------------------------------------------------------------------
    def fit(
        self, records: Sequence[Record], task: Task, ctx: RunContext | None = None
    ) -> HybridClassifier:
        self._begin(task, ctx)
        truth = self.label_matrix(records)
        per_class = self._choice_mode() == "per_class"
        members = self._usable_members()
        folds = grouped_kfold(
            truth, self._fold_groups(records), self.config.n_folds, self.config.seed
        )
        n, c = truth.shape
        self.dropped_: dict[str, str] = {}
        # Members dropped early, on the labels of the first folds, which the validation then
        # scores as outer folds: that step is not nested (docs/hybrid.md).
        self.early_dropped_: list[str] = []
        # Per member: out-of-fold scores, the own thresholds of the fold model that made each
        # score, and evidence.
        outputs = {
            name: [np.zeros((n, c)), np.zeros((n, c)), None, np.zeros((n, c), bool)]
            for name in members
        }
        active = list(members)
        for k, (train_index, test_index) in enumerate(folds):
            for name in list(active):
                try:
                    scores, evidence, own, labels = self._fold_outputs(
                        name, k, len(folds), take(records, train_index), take(records, test_index)
                    )
                except TrainingDiverged as error:  # stops the training (exit 3), as alone
                    raise error.within(f"hybrid fold {k + 1}/{len(folds)}") from error
                except Exception as error:  # a candidate that fails is dropped, not the fit
                    if not per_class:
                        raise
                    reason = f"failed to train on fold {k + 1}/{len(folds)}"
                    self._drop(name, active, f"{reason} ({type(error).__name__}: {error})")
                    continue
                out = outputs[name]
                out[0][test_index], out[1][test_index] = scores, own
                out[3][test_index] = labels
                if out[2] is None:
                    out[2] = np.zeros((n, evidence.shape[1]))
                out[2][test_index] = evidence
            if per_class and k + 1 == self.config.early_drop_folds and len(active) > 1:
                done = np.concatenate([test for _, test in folds[: k + 1]])
                scores = np.stack([outputs[name][0][done] for name in active], axis=1)
                leaders = _leading_members(scores, truth[done], self.config.selection_min_positives)
                for m, name in enumerate(list(active)):
                    if m not in leaders:
                        self.early_dropped_.append(name)
                        self._drop(
                            name,
                            active,
                            f"dropped after fold {k + 1}: it leads no class with "
                            f"{self.config.selection_min_positives}+ positives (the best "
                            f"out-of-fold ROC AUC, {LEAD_Z:g} SE above chance)",
                        )
        refitted: dict[str, Classifier] = {}
        while True:
            if not active:
                reasons = "; ".join(f"{name} {why}" for name, why in self.dropped_.items())
                raise ValueError(f"hybrid: no member could be trained ({reasons})")
            nested = self._nested(active, truth, folds, outputs)
            choice = self._choose_and_validate(nested)
            kept = self._kept(active, choice)
            failed = False
            # The refitted members make the shipped predictions, so their own thresholds
            # are the ones shipped with them (never an average of the fold models').
            for name in kept:
                if name in refitted:
                    continue
                try:
                    refitted[name] = self._refit(name, records)
                except TrainingDiverged as error:
                    raise error.within("hybrid refit on all records") from error
                except Exception as error:
                    if not per_class:
                        raise
                    reason = f"failed to train on all records ({type(error).__name__}: {error})"
                    self._drop(name, active, reason)
                    failed = True  # choose again without it
            if not failed:
                break
        for name in active:
            if name not in kept:
                self.dropped_[name] = "serves no class (not shipped)"
                self._log(f"hybrid: {name} serves no class; not shipped")
        self.oof_scores_ = nested.scores  # kept for reports; not saved
        self.members_ = {name: refitted[name] for name in kept}
        if kept != active:
            nested = self._nested(kept, truth, folds, outputs)
        self._ship(nested, choice, self._own())
        return self

    def _drop(self, name: str, active: list, reason: str) -> None:
        active.remove(name)
        self.dropped_[name] = reason
        self._log(f"hybrid: {name} {reason}")

    def _nested(self, members, truth, folds, outputs) -> _Nested:
        """The chooser over ``members``' out-of-fold outputs (none: the floor alone)."""
        empty = np.zeros((*truth.shape[:1], 0, truth.shape[1]))
        scores = np.concatenate([empty] + [outputs[name][0][:, None] for name in members], 1)
        own = np.concatenate([empty] + [outputs[name][1][:, None] for name in members], 1)
        evidence = np.concatenate([empty[:, :, 0]] + [outputs[name][2] for name in members], 1)
        labels = np.concatenate(
            [empty.astype(bool)] + [outputs[name][3][:, None] for name in members], 1
        )
        candidates = self._candidates(members)
        policies = (
            [m for m, name in enumerate(members) if self._joint_policy(name)]
            if self._choice_mode() == "per_class"
            else []
        )
        return _Nested(
            self, members, truth, folds, scores, own, evidence, candidates, labels, policies
        )

    def _joint_policy(self, name: str) -> bool:
        """Whether member ``name`` decides by a joint policy of its own (the rules' default
        ``decision_policy="expected"``), not class by class at its thresholds."""
        policy = getattr(self._member_config(name), "decision_policy", "thresholds")
        return policy != "thresholds"

    # -- work folders and resume -----------------------------------------------------------
    def _part(self, name: str, part: str, train, held_out) -> tuple:
        """Member ``name``'s config and child run context for one part of the fit
        (``fold<k>`` or ``refit``), and ``(config, ctx, finished, key)``: ``finished`` is the
        folder of the same part finished by the run resumed from (None when it must be
        trained). The key is what defines the part (:func:`team_code.runs.run_key`): the
        member, its config, the task, the kit's version and the records on each side, by
        their contents and labels (nothing about the run)."""
        config = self._member_config(name)
        key = run_key(name, config, self.task_, train, held_out)
        ctx = self.ctx.child(name, part)
        work = Path(ctx.workdir) if ctx.workdir else None
        finished, resume = None, False
        if self.ctx.resume and work is not None and (work / PART_FILE).is_file():
            state = load_json(work / PART_FILE)
            if state.get("key") != key:
                self._log(f"hybrid: {work} was trained with other settings; training afresh")
            elif state.get("finished") and any(
                (work / f).exists() for f in (OUTPUTS_FILE, MODEL_FOLDER)
            ):
                finished = work
            else:
                resume = True  # an interrupted part: its member continues from its checkpoint
        ctx = ctx.replace(resume=resume)
        if work is not None and finished is None:
            self._write_part(work, key, finished=False)
        return config, ctx, finished, key

    @staticmethod
    def _write_part(work: Path, key: str, finished: bool) -> None:
        """Record a part's key and state; once finished, its checkpoint is no longer needed."""
        from team_code.context import is_main_process

        if not is_main_process():
            return
        save_json(work / PART_FILE, {"key": key, "finished": finished})
        if finished:
            (work / "checkpoint.pt").unlink(missing_ok=True)

    def _fold_outputs(self, name: str, k: int, n_folds: int, train, held_out) -> tuple:
        """Member ``name`` trained on fold ``k``'s training records: its scores and evidence
        for the held-out records, its own thresholds, and its own decisions on those records
        (its ``decide``: the thresholds', or its joint decision policy's; read back when a
        resumed run finished this fold)."""
        config, ctx, finished, key = self._part(name, f"fold{k + 1}", train, held_out)
        if finished is not None:
            saved = load_arrays(finished / OUTPUTS_FILE)
            if "labels" in saved:
                self._log(f"hybrid: fold {k + 1}/{n_folds}: {name} read back from {finished}")
                labels = saved["labels"].astype(bool)
                return saved["scores"], saved["evidence"], saved["own"], labels
            self._log(f"hybrid: {finished} keeps no decisions (an earlier kit); training afresh")
        self._log(f"hybrid: fold {k + 1}/{n_folds}: fitting {name}")
        model = registry.get(name)(config).fit(train, self.task_, ctx)
        work = Path(ctx.workdir) if ctx.workdir else None
        own = np.clip(np.asarray(model.thresholds_, dtype=float), 0.0, NEVER)
        scores, evidence = self._member_outputs(name, model, held_out)
        labels = np.zeros(scores.shape, bool)
        scored = np.isfinite(scores).all(axis=1)  # a record the member could not process: none
        if scored.any():
            labels[scored] = model.decide(scores[scored])
        if work is not None:
            arrays = {"scores": scores, "evidence": evidence, "own": own, "labels": labels}
            save_arrays(work / OUTPUTS_FILE, arrays)
            self._write_part(work, key, finished=True)
        return scores, evidence, own, labels

    def _refit(self, name: str, records) -> Classifier:
        """Member ``name`` fitted on all records (read back when a resumed run had done it)."""
        config, ctx, finished, key = self._part(name, "refit", records, [])
        if finished is not None:
            self._log(f"hybrid: {name} on all {len(records)} records read back from {finished}")
            return registry.get(name).load(finished / MODEL_FOLDER).use(self.ctx)
        self._log(f"hybrid: fitting {name} on all {len(records)} records")
        model = registry.get(name)(config).fit(records, self.task_, ctx)
        work = Path(ctx.workdir) if ctx.workdir else None
        if work is not None:
            model.save(work / MODEL_FOLDER)
            self._write_part(work, key, finished=True)
        return model

    def fused_task(self) -> Task:
        """The task of the classes the hybrid fuses (a subset of its task's, in their order)."""
        if tuple(self.classes_) == tuple(self.task_.classes):
            return self.task_
        return dataclasses.replace(self.task_, subset=tuple(self.classes_))

    def _choice_mode(self) -> str:
        mode = self.config.choice
        if mode == "auto":
            return "per_class" if tuple(self.config.members) == ("auto",) else "global"
        if mode not in CHOICES:
            raise ValueError(f"hybrid: choice must be auto or one of {CHOICES}, not {mode!r}")
        return mode

    def _candidates(self, members) -> list[str]:
        """The candidate keys, simplest first (ties and near-ties keep the simpler):
        ``fusion/thresholding`` for the global choice; per class the floor, each member with
        its own then searched thresholds, and the stack (unless ``fusion`` names single or
        selection)."""
        fusions = FUSIONS if self.config.fusion == "auto" else (self.config.fusion,)
        modes = THRESHOLDINGS if self.config.thresholding == "auto" else (self.config.thresholding,)
        if not set(fusions) <= set(FUSIONS):
            raise ValueError(f"hybrid: fusion must be auto or one of {FUSIONS}")
        if not set(modes) <= set(THRESHOLDINGS):
            raise ValueError(f"hybrid: thresholding must be auto or one of {THRESHOLDINGS}")
        if self._choice_mode() == "global":
            return [f"{fusion}/{mode}" for fusion in fusions for mode in modes]
        keys = [FLOOR] + [f"{name}/{mode}" for mode in modes for name in members]
        if "stacking" in fusions:
            keys += [f"stacking/{mode}" for mode in modes]
        return keys

    def _kept(self, members, choice) -> list[str]:
        """The members the choice needs: all of them for the global choice or a stack."""
        kinds = {_split(key)[0] for key in choice}
        if self._choice_mode() == "global" or "stacking" in kinds:
            return list(members)
        return [name for name in members if name in kinds]

    def _fuse(self, members, truth, folds, oof_scores, oof_own, evidence, own) -> None:
        """Choose the fusion and its thresholds from the members' out-of-fold outputs and
        ship it: ``oof_own`` (n, members, classes) holds the own thresholds of the fold model
        that made each out-of-fold score, ``own`` (members, classes) those of the refitted
        members that make the shipped predictions."""
        candidates = self._candidates(members)
        nested = _Nested(self, members, truth, folds, oof_scores, oof_own, evidence, candidates)
        self._ship(nested, self._choose_and_validate(nested), own)

    def _choose_and_validate(self, nested: _Nested) -> list[str]:
        """The choice made on every fold's out-of-fold decisions (each fold's by candidates
        fitted on the others), the candidates' and members' scores, and the validation
        figure: the same choice made inside every outer fold on the other folds only, applied
        to the outer fold, beside the prevalence floor on the same folds."""
        truth, classes, scored = nested.truth, self.classes_, self.task_.scored
        choice, report = nested.choose(nested.everything)
        decisions = nested.oof(nested.everything)
        self.fusion_scores_ = {
            key: challenge_score(truth, binary, classes, scored)
            for key, binary in decisions.items()
        }
        for m in nested.policies:  # a member's own joint decisions, every class
            key = f"{nested.members[m]}/{POLICY}"
            self.fusion_scores_[key] = challenge_score(truth, nested.labels[:, m], classes, scored)
        # The members alone, each with its fold models' own thresholds.
        self.member_scores_ = {
            name: challenge_score(
                truth, nested.scores[:, m] >= nested.own[:, m], classes, self.task_.scored
            )
            for m, name in enumerate(nested.members)
        }
        chosen, floor = nested.validate()
        mode = self._choice_mode()
        self.validation_ = {
            "challenge_metric": challenge_score(truth, chosen, classes, scored),
            "prevalence": challenge_score(truth, floor, classes, scored),
            "records": int(len(truth)),
            "folds": len(nested.parts),
            "grouping": getattr(self, "grouping_", "source"),
            "choice": mode,
            # With two folds no choice can be made inside an outer fold: it takes the
            # simplest candidate there.
            "nested": len(nested.parts) >= 3,
        }
        if getattr(self, "early_dropped_", None):
            # chosen on the labels of the first folds, outer folds of this validation as well
            self.validation_["not_nested"] = {
                "early_drop": {
                    "after_folds": self.config.early_drop_folds,
                    "members": list(self.early_dropped_),
                }
            }
        self.class_choice_ = report
        scores = {**self.member_scores_, **self.fusion_scores_}
        self._log(
            "hybrid: cross-validated challenge metric "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
        )
        if mode == "global":
            self._log(f"hybrid: using {choice[0]}")
        served = {entry["served_by"] for entry in report.values()}
        if len(served) == 1 and _split(next(iter(served)))[1] == POLICY:
            self._log(f"hybrid: every class: {next(iter(report.values()))['why']}")
            report = {}  # said once, not class by class
        for entry in report.values():
            others = ", ".join(f"{k}: {why}" for k, why in entry["dropped"].items())
            self._log(
                f"hybrid: {entry['class']} ({entry['positives']} positives): "
                f"{entry['served_by']}, {entry['why']}" + (f"; not {others}" if others else "")
            )
        self._log(
            "hybrid: validation (the whole choice, nested, out of fold on "
            f"{self.validation_['folds']} folds by {self.validation_['grouping']}): challenge "
            f"metric {self.validation_['challenge_metric']:.3f}, prevalence floor "
            f"{self.validation_['prevalence']:.3f}"
        )
        return choice

    def _choose(self, decisions: dict[str, np.ndarray], truth: np.ndarray) -> tuple[list, dict]:
        """A candidate per class from their out-of-fold ``decisions`` on records with
        ``truth``, and (per class) why: the global choice takes for every class the simplest
        candidate within ``tolerance_se`` of the best challenge metric. The per-class choice
        starts every class with positives from the simplest engine (or the stack) within
        ``tolerance_se`` of the best over all classes, or from the floor where that does not
        beat the floor; then, class by class (the others' decisions as chosen so far), a class
        moves only to candidates that beat its current one by more than ``class_tolerance_se``
        standard errors and ``class_min_gain``, taking the simplest of those within
        ``tolerance_se`` of their best (:func:`_class_pick`), until no class moves."""
        classes = self.classes_
        if self._choice_mode() == "global":
            contributions = {
                key: _record_contributions(truth, binary, classes, self.task_.scored)
                for key, binary in decisions.items()
            }
            best = _simplest_within_tolerance(contributions, self.config.tolerance_se)
            return [best] * truth.shape[1], {}
        scored = self.task_.scored
        positives = truth.sum(axis=0)
        # The start: one engine or the stack for every class, as the global choice takes it,
        # if it beats the floor over all classes together, else the floor (moving one class
        # at a time from the floor misses what several classes gain together, sinus rhythm's
        # decisions above all; and a start kept at the floor unless an engine beats it by a
        # standard error left a held-out hospital's classes to the floor, where the rules
        # served them). From there a class moves, to the floor as to any other candidate,
        # only on its own evidence (class_tolerance_se).
        uniform = {
            key: _record_contributions(truth, binary, classes, scored)
            for key, binary in decisions.items()
        }
        engines = {key: values for key, values in uniform.items() if key != FLOOR}
        start = _simplest_within_tolerance(engines, self.config.tolerance_se) if engines else FLOOR
        if start != FLOOR and uniform[start].sum() <= uniform[FLOOR].sum():
            start = FLOOR
        choice = [start if positives[j] else FLOOR for j in range(len(classes))]
        current = np.column_stack([decisions[key][:, j] for j, key in enumerate(choice)])
        gains: dict = {}
        for _ in range(3):  # passes until no class moves
            moved = False
            for j in np.flatnonzero(positives):
                contributions = {}
                for key, binary in decisions.items():
                    trial = current.copy()
                    trial[:, j] = binary[:, j]
                    contributions[key] = _record_contributions(truth, trial, classes, scored)
                best, _ = _class_pick(
                    contributions,
                    choice[j],
                    self.config.class_tolerance_se,
                    self.config.tolerance_se,
                    self.config.class_min_gain,
                )
                floor_total = float(contributions[FLOOR].sum())
                gains[j] = {k: float(v.sum()) - floor_total for k, v in contributions.items()}
                if best != choice[j]:
                    choice[j], moved = best, True
                    current[:, j] = decisions[best][:, j]
            if not moved:
                break
        report = {}
        for j, code in enumerate(classes):
            best = choice[j]
            entry = {
                "class": self.task_.abbreviation(code),
                "positives": int(positives[j]),
                "served_by": best,
                "dropped": {},
            }
            report[code] = entry
            if not positives[j]:
                entry["why"] = "no positives in the training data: the floor's decision"
                continue
            gain = gains[j]
            f1, floor_f1 = (
                _f1(truth[:, j], decisions[best][:, j]),
                _f1(truth[:, j], decisions[FLOOR][:, j]),
            )
            entry.update(
                challenge_gain=gain[best],
                f1=f1,
                floor_f1=floor_f1,
                why=(
                    f"out-of-fold challenge metric {gain[best]:+.4f} over the floor, "
                    f"F1 {f1:.3f} (floor {floor_f1:.3f})"
                ),
            )
            for key in decisions:
                if key == best:
                    continue
                if gain[key] > gain[best]:
                    why = (
                        f"not {self.config.class_tolerance_se:g} SE and "
                        f"{self.config.class_min_gain:g} above {best}"
                    )
                else:
                    why = "lower"
                entry["dropped"][key] = f"{gain[key]:+.4f}, {why}"
        return choice, report

    def _ship(self, nested: _Nested, choice: list[str], own: np.ndarray) -> None:
        """The fusers of the chosen candidates fitted on all the out-of-fold scores, and the
        shipped thresholds: the refitted members' own (``own``; 0.5 on stacked
        probabilities) or searched on all the out-of-fold fused scores (rarer classes keep
        the refitted members' own). Never an average across folds."""
        self.choice_ = list(choice)
        kinds = list(dict.fromkeys(_split(key)[0] for key in choice))
        self.fusers_ = {kind: nested.fuser(kind, nested.everything) for kind in kinds}
        thresholds = np.zeros(len(choice))
        for j, key in enumerate(choice):
            kind, mode = _split(key)
            start = self.fusers_[kind].start_thresholds(own)
            cut = nested.searched(kind, nested.everything, start) if mode == "searched" else start
            thresholds[j] = cut[j]
        self.thresholds_ = thresholds
        if self._choice_mode() == "global":
            self.fusion_, self.thresholding_ = _split(choice[0])
        else:
            self.fusion_ = self.thresholding_ = "per_class"

    def _new_fuser(self, kind: str, members: Sequence[str] = ()):
        if kind == "stacking":
            return _Stacker(self.config.stacking_c, self.config.selection_min_positives)
        if kind in ("single", "selection"):
            return _Selector(kind == "selection", self.config.selection_min_positives)
        if kind == FLOOR:
            return _Floor(self.classes_, self.task_.scored)
        return _Selector(
            min_positives=self.config.selection_min_positives, first=members.index(kind)
        )

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Labels of fused scores: each class at its threshold, or, where the choice took a
        member's own decision policy for every class (``<member>/policy``; its scores are then
        the fused scores), that member's decision."""
        kinds = {_split(key) for key in self.choice_}
        if len(kinds) == 1:
            ((kind, mode),) = kinds
            if mode == POLICY:
                return self.members_[kind].decide(scores)
        return super().decide(scores)

    def member_predictions(self, records: Sequence[Record]) -> dict[str, np.ndarray]:
        """Each member's scores for ``records`` (for reports and comparisons; NaN where a
        member could not process a record)."""
        return {
            name: self._member_outputs(name, m, records)[0] for name, m in self.members_.items()
        }

    def evidence(self, records: Sequence[Record]) -> list[Evidence]:
        """Its members' evidence gathered (:meth:`Evidence.gather`); no member classifies the
        records again."""
        parts = {name: m.evidence(records) for name, m in self.members_.items()}
        return Evidence.gather(parts, len(records), len(self.classes_))

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        n, c = len(records), len(self.classes_)
        outputs = [self._member_outputs(n, m, records) for n, m in self.members_.items()]
        scores = np.stack([s for s, _ in outputs], axis=1) if outputs else np.zeros((n, 0, c))
        evidence = np.concatenate([e for _, e in outputs] + [np.zeros((n, 0))], axis=1)
        fused = np.full((n, c), np.nan)
        kinds = np.array([_split(key)[0] for key in self.choice_])
        for kind, fuser in self.fusers_.items():
            columns = kinds == kind
            fused[:, columns] = fuser.predict(scores, self._own(), evidence)[:, columns]
        unscored = ~np.isfinite(fused).all(axis=1)
        if unscored.any():
            names = [n for n, bad in zip(record_names(records), unscored) if bad]
            raise ValueError(f"hybrid: no member could process record(s) {', '.join(names)}")
        return np.clip(fused, 0.0, 1.0)

    # -- persistence ---------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        for name, model in self.members_.items():
            model.save(folder / "members" / name)
        state = {
            "members": list(self.members_),
            "choice": self.choice_,
            "fusion": self.fusion_,
            "thresholding": self.thresholding_,
            "fusion_scores": self.fusion_scores_,
            "member_scores": self.member_scores_,
            "validation": self.validation_,
        }
        arrays = {
            f"{kind}.{name}": array
            for kind, fuser in self.fusers_.items()
            for name, array in fuser.arrays().items()
        }
        save_arrays(folder / "fuser.safetensors", arrays)
        save_json(folder / "hybrid.json", state)

    def _load_state(self, folder: Path) -> None:
        state = load_json(folder / "hybrid.json")
        fuser_file = folder / "fuser.safetensors"
        arrays = load_arrays(fuser_file) if fuser_file.is_file() else {}
        # Before the fuser file, or before the choice of a candidate per class.
        if "choice" not in state or not arrays:
            raise ValueError(
                f"{folder}: a hybrid saved by an earlier version of the kit (its fuser or "
                "thresholds were made differently); train it again"
            )
        self.members_ = {
            name: registry.get(name).load(folder / "members" / name) for name in state["members"]
        }
        for model in self.members_.values():
            model.use(self.ctx)
        self.fusion_ = state["fusion"]
        self.thresholding_ = state["thresholding"]
        self.fusion_scores_ = state["fusion_scores"]
        self.member_scores_ = state["member_scores"]
        self.validation_ = state["validation"]
        self.choice_ = state["choice"]
        self.fusers_ = {}
        for kind in dict.fromkeys(_split(key)[0] for key in self.choice_):
            fuser = self._new_fuser(kind, state["members"])
            prefix = f"{kind}."
            fuser.set_arrays(
                {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            )
            self.fusers_[kind] = fuser

    def summary(self) -> dict:
        return {
            "task": self.task_.to_json(),
            "members": list(self.members_),
            "fusion": self.fusion_,
            "thresholding": self.thresholding_,
            "choice": {self.task_.abbreviation(c): k for c, k in zip(self.classes_, self.choice_)},
            "cv_challenge_metric": {**self.member_scores_, **self.fusion_scores_},
            "validation": self.validation_,
            **({"classes": self.class_choice_} if getattr(self, "class_choice_", None) else {}),
            **({"dropped": self.dropped_} if getattr(self, "dropped_", None) else {}),
        }
