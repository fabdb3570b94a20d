"""One decision policy: how a model turns a record's class scores into its label set.

Modelled on scikit-learn's ``TunedThresholdClassifierCV``: a policy is fitted on out-of-fold
scores (scores of records the scoring model did not learn from), their truth and their groups
(the source hospital of each record), applied to each record's whole score vector, and saved
with the model as JSON. Every policy takes the same call::

    policy = make_policy("expected").fit(scores, truth, groups, task)
    labels = policy.apply(scores)              # (n, c) bool
    same = policy_from_json(policy.to_json())  # saved with the model

Kinds (:data:`POLICY_KINDS`):

- :class:`ThresholdPolicy` (``"thresholds"``): a threshold per class, chosen by ``method``:
  ``"fixed"`` (``fixed`` everywhere), ``"youden"``, ``"challenge"`` (coordinate ascent on the
  challenge metric, :func:`team_code.classifiers.thresholds.challenge_thresholds`, from the
  ``start`` thresholds: the deep engines start from the prevalence floor; with ``vote`` a move
  must also win the vote of the ``groups``, the sources of out-of-source scores),
  ``"vote"`` and ``"pooled"`` (the rules' operating thresholds: graded-score levels or
  silence, kept where they pay on more held-out groups than they cost, or on the held-out
  records pooled: :func:`team_code.classifiers.rules.operating_thresholds`).
- :class:`ExpectedMetricPolicy` (``"expected"``): a joint decision over the label set. The
  scores are calibrated per class (``calibration``: ``"platt"``, ``"isotonic"`` or
  ``"none"``; :class:`Calibrator`, fitted on the scores given to ``fit``), and each record
  gets the label set, among the subsets of its ``top_k`` most probable classes, with the
  highest expected contribution to the challenge metric under the scoring table's weights
  (partial credit for confusing related classes). The metric's normalisation does not depend
  on the outputs, so maximising each record's expected observed score maximises the expected
  metric. The expectation treats the classes' labels as independent Bernoulli draws with the
  calibrated probabilities and is taken over ``n_samples`` fixed draws (common random numbers:
  a record's decision does not depend on the other records it is applied with).

Named policies (:data:`NAMED_POLICIES`) give the option values one vocabulary: ``vote``,
``pooled``, ``half``, ``challenge``, ``youden``, ``expected`` (Platt), ``expected-isotonic``,
``expected-raw``, ``expected-vocabulary`` (Platt on the sources that use each label, times
their share of the sources).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from scipy.special import expit

from team_code.classifiers.thresholds import (
    at_thresholds,
    challenge_thresholds,
    challenge_weights,
    youden_thresholds,
)

#: How :class:`ThresholdPolicy` chooses its thresholds.
THRESHOLD_METHODS = ("fixed", "youden", "challenge", "vote", "pooled")
#: ``min_positives`` of :class:`ThresholdPolicy` when none is given, by method.
DEFAULT_MIN_POSITIVES = {"vote": 3, "pooled": 3, "challenge": 0}
#: How the ``"challenge"`` search's groups vote on a move (``vote`` of :class:`ThresholdPolicy`;
#: :meth:`team_code.classifiers.thresholds.GroupVotes.passes`): ``"net"``, more groups gain
#: than lose; ``"majority"``, more than half of them gain.
GROUP_VOTES = ("net", "majority")
#: Who wins a tie between a class's current threshold and silence in the ``"vote"`` and
#: ``"pooled"`` methods (:func:`team_code.classifiers.rules.operating_thresholds`):
#: ``"silence"`` (a detection that does not pay on the held-out sources is not made: where as
#: many sources gain as lose, or none is touched, the class falls silent) or ``"keep"``
#: (silence, like any other move, needs more sources for it than against it: a rule whose
#: detections touch no held-out source keeps its published 0.5).
TIES = ("silence", "keep")
#: The named policies an engine's ``threshold_method`` takes (the deep engines, the beat
#: networks): per-class thresholds searched on the engine's scores alone.
SCORE_THRESHOLD_POLICIES = ("challenge", "youden")
#: How :class:`ExpectedMetricPolicy` turns scores into probabilities.
CALIBRATIONS = ("platt", "isotonic", "none")


def _as_arrays(scores, truth=None) -> tuple[np.ndarray, np.ndarray | None]:
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2:
        raise ValueError(f"decision: scores must be (records, classes), not shape {scores.shape}")
    if not np.isfinite(scores).all():
        bad = np.argwhere(~np.isfinite(scores))[0]
        raise ValueError(f"decision: score of record {bad[0]}, class {bad[1]} is not finite")
    if truth is None:
        return scores, None
    truth = np.asarray(truth, dtype=bool)
    if truth.shape != scores.shape:
        raise ValueError(f"decision: truth {truth.shape} and scores {scores.shape} differ")
    return scores, truth


class DecisionPolicy:
    """The interface every policy implements (see the module docstring)."""

    #: The name the policy is saved under (:data:`POLICY_KINDS`).
    kind: ClassVar[str] = ""

    def options(self) -> dict:
        """The options given to the constructor (JSON-able)."""
        raise NotImplementedError

    def fit(self, scores, truth, groups=None, task=None, sources=None) -> DecisionPolicy:
        """Learn from out-of-fold ``scores`` (n, c), ``truth`` (n, c) and ``groups`` (n: each
        record's held-out group, its source hospital); ``task`` gives the classes and the
        scoring table (:class:`team_code.context.Task`); ``sources`` the records' sources where
        they are not the groups (the rules' label vocabulary)."""
        raise NotImplementedError

    def apply(self, scores) -> np.ndarray:
        """(n, c) bool labels of records' score vectors (n, c)."""
        raise NotImplementedError

    def _state(self) -> dict:
        raise NotImplementedError

    def _set_state(self, state: dict) -> None:
        raise NotImplementedError

    def to_json(self) -> dict:
        """``{"kind", "options", "state"}``: everything :func:`policy_from_json` needs."""
        return {"kind": self.kind, "options": self.options(), "state": self._state()}


def group_masks(groups, n: int) -> list[np.ndarray]:
    """One boolean mask per group of ``groups`` (all records as one group without them)."""
    if groups is None:
        return [np.ones(n, dtype=bool)]
    labels = np.asarray(groups)
    return [labels == g for g in sorted(set(labels.tolist()))]


def label_vocabulary(truth: np.ndarray, sources: Sequence[str] | None = None) -> np.ndarray:
    """(n, c) bool: whether record i's source uses class j's label at all (has a positive).

    Sources label from different vocabularies (CPSC ``A`` from nine classes: no axis, no
    T-wave label; LUDB no bradycardia 426627000): a source that never gives a label says
    nothing about where that label's threshold should lie, and its records are left out of
    that class's tuning and decision. Without ``sources``, every record counts.
    """
    truth = np.asarray(truth, bool)
    if sources is None:
        return np.ones_like(truth)
    uses = np.zeros_like(truth)
    for rows, used in zip(*_source_uses(truth, sources)):
        uses[rows] = used
    return uses


def _source_uses(truth: np.ndarray, sources) -> tuple[list[np.ndarray], np.ndarray]:
    """Each source's records (:func:`group_masks`) and the labels it uses, (n_sources, c)
    bool: the classes it gives at least once."""
    masks = group_masks(sources, len(truth))
    return masks, np.array([np.asarray(truth, bool)[m].any(axis=0) for m in masks])


def _most_chosen(choices: np.ndarray, preferred: np.ndarray) -> np.ndarray:
    """Per class (column), the value most rows of ``choices`` hold; among tied values the
    ``preferred`` one where it is tied, else the highest."""
    out = np.empty(choices.shape[1])
    for j in range(choices.shape[1]):
        values, counts = np.unique(choices[:, j], return_counts=True)
        tied = values[counts == counts.max()]
        out[j] = preferred[j] if preferred[j] in tied else tied.max()
    return out


class ThresholdPolicy(DecisionPolicy):
    """A threshold per class: a class is labelled where its score reaches its threshold.

    ``min_positives``: classes with fewer positives among the scores given to ``fit`` keep
    their start (``"challenge"``) or choose between 0.5 and silence only (``"vote"``,
    ``"pooled"``: no graded level is searched on a few positives, and with ``bagging`` the
    positives are counted once, on the records as given, not in each resample); None: the
    method's default (:data:`DEFAULT_MIN_POSITIVES`: 3, and 0 for ``"challenge"``, which
    searches every class). ``start`` (``"challenge"``): the thresholds the search starts from,
    one per class (None: ``fixed`` everywhere); ``fit`` without records returns them.
    ``vote`` (``"challenge"``): None, the ``groups`` given to ``fit`` are not read; ``"net"``
    or ``"majority"`` (:data:`GROUP_VOTES`), a move from the start must also win the groups'
    vote. ``lowest`` (``"challenge"``): no threshold below it is searched, one value or one per
    class, NaN for none (a member's
    :attr:`~team_code.classifiers.base.Classifier.lowest_decision`). ``bagging`` (``"vote"``,
    ``"pooled"``): with ``B`` > 0, the thresholds are also chosen on ``B`` resamples of the
    records (with replacement, within each group of ``groups``, else of ``sources``; numpy's
    generator seeded with ``seed``) and each class takes the threshold most of the ``B + 1``
    choices give (ties: the one chosen on the records as given where it is among them, else
    the highest), so that a class's decision does not hang on a few records. ``ties``
    (``"vote"``, ``"pooled"``; :data:`TIES`): whether silence wins
    a tie with a class's current threshold (``"silence"``) or needs a strict gain (``"keep"``).
    """

    kind = "thresholds"

    def __init__(
        self,
        method: str = "vote",
        min_positives: int | None = None,
        vocabulary: bool = False,
        fixed: float = 0.5,
        start: Sequence[float] | None = None,
        vote: str | None = None,
        bagging: int = 0,
        seed: int = 0,
        lowest: float | Sequence[float] | None = None,
        ties: str = "silence",
    ):
        if method not in THRESHOLD_METHODS:
            raise ValueError(
                f"decision: threshold method must be one of {', '.join(THRESHOLD_METHODS)}, "
                f"not {method!r}"
            )
        if vote is not None and vote not in GROUP_VOTES:
            raise ValueError(
                f"decision: vote must be None or one of {', '.join(GROUP_VOTES)}, not {vote!r}"
            )
        self.method = method
        self.min_positives = None if min_positives is None else int(min_positives)
        self.vocabulary = bool(vocabulary)
        self.fixed = float(fixed)
        self.start = None if start is None else [float(t) for t in np.ravel(start)]
        self.vote = vote
        if int(bagging) < 0:
            raise ValueError(f"decision: bagging must be >= 0, not {bagging!r}")
        if int(bagging) and method not in ("vote", "pooled"):
            raise ValueError(
                f"decision: bagging applies to the vote and pooled methods, not {method!r}"
            )
        self.bagging = int(bagging)
        self.seed = int(seed)
        # NaN (no bound) is saved as None (JSON has no NaN) and None read back as NaN
        self.lowest = None if lowest is None else np.asarray(lowest, dtype=float).tolist()
        if ties not in TIES:
            raise ValueError(f"decision: ties must be one of {', '.join(TIES)}, not {ties!r}")
        if ties != "silence" and method not in ("vote", "pooled"):
            raise ValueError(f"decision: ties apply to the vote and pooled methods, not {method!r}")
        self.ties = ties

    def options(self) -> dict:
        return {
            "method": self.method,
            "min_positives": self.min_positives,
            "vocabulary": self.vocabulary,
            "fixed": self.fixed,
            "start": self.start,
            "vote": self.vote,
            "bagging": self.bagging,
            "seed": self.seed,
            "lowest": _nan_as_none(self.lowest),
            "ties": self.ties,
        }

    def _min_positives(self) -> int:
        if self.min_positives is not None:
            return self.min_positives
        return DEFAULT_MIN_POSITIVES.get(self.method, 0)

    def _start(self, n_classes: int) -> np.ndarray:
        if self.start is None:
            return np.full(n_classes, self.fixed)
        if len(self.start) != n_classes:
            raise ValueError(
                f"decision: start has {len(self.start)} thresholds, the scores {n_classes} classes"
            )
        return np.asarray(self.start, dtype=float)

    def fit(self, scores, truth, groups=None, task=None, sources=None) -> ThresholdPolicy:
        scores, truth = _as_arrays(scores, truth)
        n_classes = scores.shape[1]
        if self.method == "fixed":
            self.thresholds_ = np.full(n_classes, self.fixed)
            return self
        if len(scores) == 0:
            self.thresholds_ = self._start(n_classes)
            return self
        if self.method == "youden":
            self.thresholds_ = youden_thresholds(truth, scores)
            return self
        task = _task(task, n_classes)
        classes = list(task.classes)
        if self.method == "challenge":
            self.thresholds_ = challenge_thresholds(
                truth,
                scores,
                classes,
                start=self._start(n_classes),
                min_positives=self._min_positives(),
                scored=task.scored,
                groups=None if self.vote is None else groups,
                vote=self.vote or "net",
                lowest=self.lowest,
            )
            return self
        from team_code.classifiers.rules import operating_thresholds

        _check_per_record(len(scores), sources=sources, groups=groups)
        # which classes may search the graded levels: decided once, on the records as given,
        # and held in every resample (a resample that repeats a rare class's few positives
        # does not make it searchable)
        graded = truth.sum(axis=0) >= self._min_positives()

        def choose(rows: np.ndarray) -> np.ndarray:
            def part(values):
                return None if values is None else [values[i] for i in rows]

            return operating_thresholds(
                truth[rows],
                scores[rows],
                classes,
                self._min_positives(),
                part(sources if sources is not None else groups),
                self.vocabulary,
                task.scored,
                self.method,
                part(groups),
                ties=self.ties,
                graded=graded,
            )

        everything = np.arange(len(scores))
        self.thresholds_ = choose(everything)
        if self.bagging:
            rng = np.random.default_rng(self.seed)
            # resampled within the groups operating_thresholds votes over: sources without them
            voters = groups if groups is not None else sources
            members = [np.flatnonzero(g) for g in group_masks(voters, len(scores))]
            choices = [self.thresholds_] + [
                choose(np.concatenate([rng.choice(m, size=m.size) for m in members]))
                for _ in range(self.bagging)
            ]
            self.thresholds_ = _most_chosen(np.array(choices), self.thresholds_)
        return self

    def apply(self, scores) -> np.ndarray:
        scores, _ = _as_arrays(scores)
        return at_thresholds(scores, self.thresholds_)

    def _state(self) -> dict:
        return {"thresholds": [float(t) for t in self.thresholds_]}

    def _set_state(self, state: dict) -> None:
        self.thresholds_ = np.asarray(state["thresholds"], dtype=float)


def _nan_as_none(values):
    """``values`` (a number or a list of them) with NaN written as None, for strict JSON."""
    if isinstance(values, list):
        return [_nan_as_none(v) for v in values]
    if isinstance(values, float) and np.isnan(values):
        return None
    return values


def _check_per_record(n: int, **given) -> None:
    """Refuse per-record labels (``sources``, ``groups``) given for another number of records
    than the scores', naming them and both counts."""
    for what, values in given.items():
        if values is not None and len(values) != n:
            raise ValueError(f"decision: {len(values)} {what} for {n} records (one per record)")


def _task(task, n_classes: int):
    if task is None:
        raise ValueError("decision: this policy needs the task (classes and scoring table)")
    if len(task.classes) != n_classes:
        raise ValueError(f"decision: scores have {n_classes} classes, the task {len(task.classes)}")
    return task


class Calibrator:
    """Per-class maps from scores to probabilities, fitted on held-out scores and truth.

    ``"platt"``: a logistic curve of the score per class (Platt 1999, with his smoothed
    targets ``(n+ + 1) / (n+ + 2)`` and ``1 / (n- + 2)``, so that a class without positives
    gets a small probability rather than zero); ``"isotonic"``: a non-decreasing step function
    (pool adjacent violators, Zadrozny and Elkan 2002) on the same smoothed targets, linearly
    interpolated between the blocks; ``"none"``: the scores clipped to [0, 1].
    """

    def __init__(self, method: str = "platt"):
        if method not in CALIBRATIONS:
            raise ValueError(
                f"decision: calibration must be one of {', '.join(CALIBRATIONS)}, not {method!r}"
            )
        self.method = method

    def fit(self, scores, truth, rows=None) -> Calibrator:
        """Each class's map from its scores and truth; ``rows`` ((n, c) bool): the records
        each class is fitted on (default: all)."""
        scores, truth = _as_arrays(scores, truth)
        rows = np.ones(scores.shape, bool) if rows is None else np.asarray(rows, bool)
        self.params_ = []
        for j in range(scores.shape[1]):
            s, y = scores[rows[:, j], j], truth[rows[:, j], j]
            if self.method == "platt":
                self.params_.append(list(_platt(s, y)))
            elif self.method == "isotonic":
                x, y = _isotonic(s, y)
                self.params_.append([x.tolist(), y.tolist()])
            else:
                self.params_.append([])
        return self

    def transform(self, scores) -> np.ndarray:
        scores, _ = _as_arrays(scores)
        if self.method == "none":
            return np.clip(scores, 0.0, 1.0)
        out = np.empty_like(scores)
        for j, params in enumerate(self.params_):
            if self.method == "platt":
                a, b = params
                out[:, j] = expit(a * scores[:, j] + b)
            else:
                x, y = params
                out[:, j] = np.interp(scores[:, j], x, y) if x else 0.0
        return out

    def to_json(self) -> dict:
        return {"method": self.method, "params": self.params_}

    @classmethod
    def from_json(cls, data: dict) -> Calibrator:
        calibrator = cls(data["method"])
        calibrator.params_ = data["params"]
        return calibrator


def _smoothed_targets(y: np.ndarray) -> np.ndarray:
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))


def _platt(s: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Slope and intercept of the logistic curve: Newton's method with step halving until the
    penalised log loss falls (a full Newton step overshoots where the scores sit at 0 and 1);
    a small ridge on the slope keeps a separable class finite."""
    if len(s) == 0:
        return 0.0, 0.0
    t = _smoothed_targets(y)
    x = np.column_stack([s, np.ones_like(s)])
    ridge = 1e-3

    def loss(w: np.ndarray) -> float:
        z = x @ w
        # -[t log p + (1 - t) log(1 - p)] = log(1 + e^z) - t z, computed stably
        return float(np.sum(np.logaddexp(0.0, z) - t * z) + 0.5 * ridge * w[0] ** 2)

    w = np.array([0.0, np.log(t.mean() / (1 - t.mean()))])
    current = loss(w)
    for _ in range(iterations):
        p = expit(x @ w)
        grad = x.T @ (p - t) + ridge * np.array([w[0], 0.0])
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6 and loss(w - scale * step) > current:
            scale /= 2
        if scale <= 1e-6:
            break
        w = w - scale * step
        previous, current = current, loss(w)
        if previous - current < 1e-10 * max(1.0, abs(current)):
            break
    return float(w[0]), float(w[1])


def _isotonic(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots (score, probability) of the non-decreasing fit of the smoothed targets."""
    if len(s) == 0:
        return np.array([]), np.array([])
    order = np.argsort(s, kind="stable")
    xs, ts = s[order], _smoothed_targets(y)[order]
    # one block per distinct score, then pool adjacent violators
    values, starts = np.unique(xs, return_index=True)
    sums = np.add.reduceat(ts, starts)
    counts = np.diff(np.r_[starts, len(xs)]).astype(float)
    blocks: list[list[float]] = []  # [sum, count, first x, last x]
    for v, total, count in zip(values, sums, counts, strict=True):
        blocks.append([total, count, v, v])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1] = [blocks[-1][0] + last[0], blocks[-1][1] + last[1], blocks[-1][2], last[3]]
    knots_x, knots_y = [], []
    for total, count, lo, hi in blocks:
        knots_x += [lo, hi] if hi > lo else [lo]
        knots_y += [total / count] * (2 if hi > lo else 1)
    return np.asarray(knots_x), np.asarray(knots_y)


class ExpectedMetricPolicy(DecisionPolicy):
    """The label set with the highest expected challenge-metric contribution per record.

    ``vocabulary``: a new hospital's vocabulary is unknown, and sources label from different
    ones (CPSC gives no axis or T-wave label, LUDB no bradycardia 426627000). Each class is
    then calibrated on the records of the sources that use its label (give it at least once:
    ``sources`` of ``fit``, else ``groups``), and its probability is that calibrated one times
    the share of those sources, every source counted once: the chance that a hospital drawn
    like the training sources gives the label at all.
    """

    kind = "expected"

    def __init__(
        self,
        calibration: str = "platt",
        top_k: int = 6,
        n_samples: int = 1000,
        seed: int = 0,
        vocabulary: bool = False,
    ):
        Calibrator(calibration)  # checks the name
        if not 1 <= int(top_k) <= 12:
            raise ValueError(f"decision: top_k must be between 1 and 12, not {top_k!r}")
        if int(n_samples) < 1:
            raise ValueError(f"decision: n_samples must be positive, not {n_samples!r}")
        self.calibration = calibration
        self.top_k = int(top_k)
        self.n_samples = int(n_samples)
        self.seed = int(seed)
        self.vocabulary = bool(vocabulary)

    def options(self) -> dict:
        return {
            "calibration": self.calibration,
            "top_k": self.top_k,
            "n_samples": self.n_samples,
            "seed": self.seed,
            "vocabulary": self.vocabulary,
        }

    def fit(self, scores, truth, groups=None, task=None, sources=None) -> ExpectedMetricPolicy:
        scores, truth = _as_arrays(scores, truth)
        if len(scores) == 0:
            raise ValueError(
                "decision: the expected-metric policy cannot be fitted on no records (its "
                "calibration would give every class the same made-up probability: Platt 0.5, "
                "isotonic 0); fit it on held-out scores of at least one record"
            )
        task = _task(task, scores.shape[1])
        self.weights_ = challenge_weights(list(task.classes), task.scored)
        voters = sources if sources is not None else groups
        rows, self.share_ = None, np.ones(scores.shape[1])
        if self.vocabulary and voters is not None:
            _check_per_record(len(scores), sources=sources, groups=groups)
            rows = label_vocabulary(truth, voters)
            self.share_ = _source_uses(truth, voters)[1].mean(axis=0)
        self.calibrator_ = Calibrator(self.calibration).fit(scores, truth, rows)
        return self

    def probabilities(self, scores) -> np.ndarray:
        """The calibrated per-class probabilities of ``scores`` (times the share of sources
        that use each label, with ``vocabulary``)."""
        return self.calibrator_.transform(scores) * self.share_

    def apply(self, scores) -> np.ndarray:
        return expected_metric_labels(
            self.probabilities(scores), self.weights_, self.top_k, self.n_samples, self.seed
        )

    def _state(self) -> dict:
        return {
            "weights": np.asarray(self.weights_).tolist(),
            "calibrator": self.calibrator_.to_json(),
            "share": np.asarray(self.share_).tolist(),
        }

    def _set_state(self, state: dict) -> None:
        self.weights_ = np.asarray(state["weights"], dtype=float)
        self.calibrator_ = Calibrator.from_json(state["calibrator"])
        self.share_ = np.asarray(state.get("share", np.ones(len(self.weights_))), dtype=float)


def expected_observed(probabilities, candidates, weights, n_samples=1000, seed=0) -> np.ndarray:
    """Expected challenge-metric contribution of each candidate label set of one record:
    ``E[sum_{j in L, k in S} W[j, k] / |L union S|]`` over label sets ``L`` drawn with
    independent class ``probabilities`` (c,), for each row ``S`` of ``candidates`` (T, c)
    bool; ``n_samples`` fixed draws (``seed``). Returns (T,). A NaN weight (a cell of a custom
    table that is not a number) counts as 0, as the scorer's ``nansum`` counts it."""
    p = np.asarray(probabilities, dtype=float)
    weights = np.nan_to_num(np.asarray(weights, dtype=float), nan=0.0)
    uniforms = np.random.default_rng(seed).random((n_samples, p.size))
    drawn = (uniforms < p).astype(float)  # (M, c)
    o = np.asarray(candidates, dtype=float)  # (T, c)
    numerator = (drawn @ weights) @ o.T  # (M, T)
    union = drawn.sum(axis=1)[:, None] + o.sum(axis=1)[None, :] - drawn @ o.T
    return (numerator / np.maximum(union, 1.0)).mean(axis=0)


def _subsets(k: int) -> np.ndarray:
    """Every subset of ``k`` items as rows of a bool matrix, smallest first."""
    rows = [
        np.isin(np.arange(k), c) for n in range(k + 1) for c in itertools.combinations(range(k), n)
    ]
    return np.array(rows, dtype=bool).reshape(-1, k)


def expected_metric_labels(probabilities, weights, top_k=6, n_samples=1000, seed=0) -> np.ndarray:
    """(n, c) bool: per record, the label set among the subsets of its ``top_k`` most probable
    classes with the highest :func:`expected_observed` (ties: the smaller set, first found)."""
    probabilities = np.asarray(probabilities, dtype=float)
    weights = np.asarray(weights, dtype=float)
    n, c = probabilities.shape
    k = min(top_k, c)
    subsets = _subsets(k)
    labels = np.zeros((n, c), dtype=bool)
    for i in range(n):
        top = np.argsort(-probabilities[i], kind="stable")[:k]
        candidates = np.zeros((len(subsets), c), dtype=bool)
        candidates[:, top] = subsets
        values = expected_observed(probabilities[i], candidates, weights, n_samples, seed)
        labels[i] = candidates[int(np.argmax(values))]
    return labels


#: Policy kinds by their saved name.
POLICY_KINDS: dict[str, type[DecisionPolicy]] = {
    ThresholdPolicy.kind: ThresholdPolicy,
    ExpectedMetricPolicy.kind: ExpectedMetricPolicy,
}

#: Named policies: the option values every engine accepts (kind and options).
NAMED_POLICIES: dict[str, tuple[str, dict]] = {
    "vote": ("thresholds", {"method": "vote"}),
    "pooled": ("thresholds", {"method": "pooled"}),
    "half": ("thresholds", {"method": "fixed", "fixed": 0.5}),
    "challenge": ("thresholds", {"method": "challenge"}),
    "youden": ("thresholds", {"method": "youden"}),
    "expected": ("expected", {"calibration": "platt"}),
    "expected-isotonic": ("expected", {"calibration": "isotonic"}),
    "expected-raw": ("expected", {"calibration": "none"}),
    "expected-vocabulary": ("expected", {"calibration": "platt", "vocabulary": True}),
}


def check_policy_name(
    name: str, allowed: Sequence[str] | None = None, option: str = "decision policy"
) -> str:
    """``name`` where it is one of ``allowed`` (names in :data:`NAMED_POLICIES`; all of them
    when None); otherwise a ``ValueError`` naming ``option`` and the choices."""
    allowed = tuple(NAMED_POLICIES) if allowed is None else tuple(allowed)
    unknown = set(allowed) - set(NAMED_POLICIES)
    if unknown:
        raise ValueError(f"{option}: {sorted(unknown)} are not names in decision.NAMED_POLICIES")
    if name not in allowed:
        raise ValueError(f"unknown {option} {name!r}; known: {', '.join(allowed)}")
    return name


def make_policy(name: str, **options) -> DecisionPolicy:
    """An unfitted policy by its name in :data:`NAMED_POLICIES` (``options`` override)."""
    kind, defaults = NAMED_POLICIES[check_policy_name(name)]
    return POLICY_KINDS[kind](**{**defaults, **options})


def policy_from_json(data: dict) -> DecisionPolicy:
    """A fitted policy from :meth:`DecisionPolicy.to_json`."""
    kind = data.get("kind")
    if kind not in POLICY_KINDS:
        raise ValueError(f"unknown decision policy kind {kind!r}; known: {', '.join(POLICY_KINDS)}")
    policy = POLICY_KINDS[kind](**data.get("options", {}))
    policy._set_state(data["state"])
    return policy


def fit_policies(
    names: Sequence[str], scores, truth, groups=None, task=None, sources=None
) -> dict[str, DecisionPolicy]:
    """Each named policy fitted on the same out-of-fold scores."""
    return {name: make_policy(name).fit(scores, truth, groups, task, sources) for name in names}


def out_of_group_labels(name: str, scores, truth, groups, task=None) -> dict:
    """Each group's labels from the named policy fitted on the other groups' records only.

    Returns ``{"labels": (n, c) bool, "policies": {group: the policy that decided it}}``.
    A single group leaves no other group's records to fit on: a ``ValueError``.
    """
    scores, truth = _as_arrays(scores, truth)
    groups = np.asarray(groups)
    _check_per_record(len(scores), groups=groups)
    if len(set(groups.tolist())) < 2:
        raise ValueError(
            f"decision: out-of-group labels need at least two groups (given "
            f"{len(set(groups.tolist()))}): each group is decided by the policy fitted on the "
            "other groups' records, and with one group there are none"
        )
    labels = np.zeros(scores.shape, dtype=bool)
    policies = {}
    for group in sorted(set(groups.tolist())):
        test = groups == group
        rest = groups[~test]
        policy = make_policy(name).fit(scores[~test], truth[~test], rest, task, rest)
        labels[test] = policy.apply(scores[test])
        policies[group] = policy
    return {"labels": labels, "policies": policies}
