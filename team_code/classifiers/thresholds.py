"""Choosing per-class decision thresholds on held-out scores (numpy only).

- ``youden``: per class, the threshold maximising Youden's J = TPR - FPR (Pardasani and
  Awasthi's choice, read off each class's ROC curve);
- ``challenge``: coordinate ascent on the challenge metric itself, starting from Youden's
  thresholds and trying each class's candidate thresholds in turn until no class improves.

Both take held-out (validation or out-of-fold) scores: thresholds read off the training set
were the reason the paper fell from 0.342 on validation to 0.077 on test.
"""

from __future__ import annotations

import numpy as np

from team_code.data.labels import NORMAL_CLASS, ScoredClasses, table_for

#: A threshold above every score in [0, 1]: the class is never predicted.
NEVER = float(np.nextafter(1.0, 2.0))


def youden_thresholds(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class threshold maximising TPR - FPR; 0.5 for classes without both outcomes."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    thresholds = np.full(labels.shape[1], 0.5)
    for j in range(labels.shape[1]):
        y, s = labels[:, j], scores[:, j]
        n_pos, n_neg = y.sum(), (~y).sum()
        if n_pos == 0 or n_neg == 0:
            continue
        order = np.argsort(-s, kind="stable")
        s_sorted, y_sorted = s[order], y[order]
        tp = np.cumsum(y_sorted)
        fp = np.cumsum(~y_sorted)
        last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # end of each run of equal scores
        j_stat = tp[last] / n_pos - fp[last] / n_neg
        best = int(np.argmax(j_stat))
        thresholds[j] = s_sorted[last][best]
    return thresholds


def at_thresholds(scores, thresholds) -> np.ndarray:
    """(n, c) bool labels of scores (n, c): each class at or above its threshold, the scores
    clipped to [0, 1] first (a threshold above 1 keeps the class silent)."""
    return np.clip(np.asarray(scores, dtype=float), 0.0, 1.0) >= thresholds


def challenge_weights(classes, scored: ScoredClasses | None = None) -> np.ndarray:
    """The challenge-metric weights restricted to ``classes`` (representative codes) of the
    table ``scored`` (by default the shipped table that holds them all: 2020, else 2021).

    A cell of a custom table that is not a number (read as NaN, as the official scorer's
    ``load_table`` reads it) weighs 0: the scorer sums with ``nansum``, so the pair earns
    nothing, and every search and decision built on these weights agrees with it."""
    scored = scored or table_for(classes)
    index = [scored.codes.index(c) for c in classes]
    return np.nan_to_num(scored.weights[np.ix_(index, index)], nan=0.0)


def normal_index(classes) -> int:
    """The column of sinus rhythm among ``classes``: the challenge metric measures every
    output against the "inactive" one that names sinus rhythm alone, so a class set without
    it has no such metric (a clear error, not a failed lookup)."""
    classes = list(classes)
    if NORMAL_CLASS not in classes:
        raise ValueError(
            f"the challenge metric needs sinus rhythm ({NORMAL_CLASS}) among the classes: it "
            "measures every output against the one that names sinus rhythm alone; add it to "
            "the class subset, or choose thresholds without the metric"
        )
    return classes.index(NORMAL_CLASS)


def challenge_score(
    labels: np.ndarray, binary: np.ndarray, classes, scored: ScoredClasses | None = None
) -> float:
    """The normalised challenge metric of binary outputs, by the project's scorer."""
    from evaluation.metrics import compute_challenge_metric

    normal_index(classes)
    return compute_challenge_metric(
        challenge_weights(classes, scored), labels, binary, list(classes), NORMAL_CLASS
    )


class RecordMetric:
    """The challenge metric of any subset of a fixed set of labelled records, for many trial
    outputs: each record's observed, correct and inactive contributions (the scorer's
    ``evaluation.metrics.record_challenge_contributions`` and ``record_observed``) summed over
    the subset. Equal to :func:`challenge_score` on the subset up to rounding (the sums run
    in another order), at a fraction of its cost: the correct and inactive parts are computed
    once."""

    def __init__(self, labels: np.ndarray, classes, scored: ScoredClasses | None = None):
        from evaluation.metrics import record_challenge_contributions, record_observed

        self._record_observed = record_observed  # imported once, not per trial output

        self.labels = np.asarray(labels, dtype=bool)
        weights = np.nan_to_num(challenge_weights(classes, scored), nan=0.0)
        self.normal = normal_index(classes)
        _, self.correct, self.inactive = record_challenge_contributions(
            weights, self.labels, self.labels, self.normal
        )
        self.lw = self.labels.astype(np.float64) @ weights

    def observed(self, binary: np.ndarray) -> np.ndarray:
        """Each record's observed contribution for the outputs ``binary`` (n, c)."""
        return self._record_observed(self.lw, self.labels, binary)

    def score(self, observed: np.ndarray, rows: np.ndarray) -> float:
        """The metric of the records ``rows`` (a boolean mask) from :meth:`observed`."""
        correct, inactive = self.correct[rows].sum(), self.inactive[rows].sum()
        if correct == inactive:
            return 0.0
        return float((observed[rows].sum() - inactive) / (correct - inactive))


def challenge_thresholds(
    labels: np.ndarray,
    scores: np.ndarray,
    classes,
    n_candidates: int = 41,
    max_passes: int = 4,
    start: np.ndarray | None = None,
    min_positives: int = 0,
    scored: ScoredClasses | None = None,
    groups: np.ndarray | None = None,
    vote: str = "net",
    lowest: float | np.ndarray | None = None,
) -> np.ndarray:
    """Thresholds maximising the challenge metric by coordinate ascent over classes.

    ``lowest``: no candidate below it is tried (scores under it never name a class; "never"
    stays a candidate); one value, or one per class (NaN: no bound).

    Classes with fewer than ``min_positives`` positive labels keep their ``start`` threshold:
    a threshold searched on two or three positives mostly learns which records they were.

    With ``groups`` (one id per record: the source hospital of held-out scores), a class's
    threshold moves only to a candidate that raises the pooled metric *and* raises the metric
    of more groups than it lowers (:class:`GroupVotes`): a move that pays on one large source
    but costs on most others is not made. ``vote="majority"`` asks more: the move must raise
    the metric of more than half of the groups (a group it leaves unchanged counts against).

    Each class in turn tries ``n_candidates`` quantiles of its scores (and "never"); all
    candidates of a class are scored at once. With the other classes' outputs fixed, the
    observed score is ``sum_i (rest_i + o_ij * LW_ij) / max(union_i, 1)`` where ``LW = L @ W``
    (labels times weights), ``rest_i`` the contribution of the other classes and ``union_i``
    the size of the union of labels and outputs; the perfect and inactive scores do not depend
    on the outputs. Passes repeat until none improves (at most ``max_passes``).
    """
    from evaluation.metrics import challenge_scores, record_observed

    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    classes = list(classes)
    weights = challenge_weights(classes, scored)
    thresholds = youden_thresholds(labels, scores) if start is None else np.array(start, float)
    binary = scores >= thresholds
    _, correct, inactive = challenge_scores(weights, labels, binary, normal_index(classes))
    if correct == inactive:  # nothing to gain: the metric is 0 whatever the outputs
        return thresholds
    label_weights = labels.astype(float) @ weights  # (n, c): LW

    def metric(observed):
        return (observed - inactive) / (correct - inactive)

    per_record = record_observed(label_weights, labels, binary)
    best = metric(per_record.sum())
    bounds = np.broadcast_to(
        np.asarray(np.nan if lowest is None else lowest, float), (len(classes),)
    )
    bounds = np.nan_to_num(bounds, nan=-np.inf)
    votes = None if groups is None else GroupVotes(labels, weights, classes, groups)
    searched = np.flatnonzero(labels.sum(axis=0) >= min_positives)
    for _ in range(max_passes):
        improved = False
        for j in searched:
            candidates = np.unique(
                np.r_[np.quantile(scores[:, j], np.linspace(0, 1, n_candidates)), NEVER]
            )
            if bounds[j] > -np.inf:
                candidates = candidates[candidates >= bounds[j]]
            out = scores[:, j, None] >= candidates[None, :]  # (n, T)
            others = binary.copy()
            others[:, j] = False
            rest = (others * label_weights).sum(axis=1)
            union_others = labels | others
            union_others[:, j] = False
            size = union_others.sum(axis=1)[:, None] + (labels[:, j, None] | out)
            observed = (rest[:, None] + out * label_weights[:, j, None]) / np.maximum(size, 1)
            values = metric(observed.sum(axis=0))
            if votes is not None:  # only candidates that enough groups gain from
                values = np.where(votes.passes(observed, per_record, vote), values, -np.inf)
            k = int(np.argmax(values))
            if values[k] > best + 1e-12:
                best, thresholds[j], improved = values[k], candidates[k], True
                binary[:, j] = out[:, k]
                per_record = observed[:, k]
        if not improved:  # a pass that changed nothing: a local optimum
            break
    return thresholds


class GroupVotes:
    """Per-group challenge metrics of candidate outputs, for :func:`challenge_thresholds`.

    ``net(observed, current)`` takes per-record observed scores of ``T`` candidates
    ``(n, T)`` and of the current outputs ``(n,)`` and returns, per candidate, the number of
    groups whose metric rises minus the number whose metric falls. Groups whose metric is
    undefined (every record labelled normal only: correct == inactive) do not vote.
    """

    def __init__(self, labels, weights, classes, groups):
        from evaluation.metrics import challenge_scores

        groups = np.asarray(groups)
        self.names, index = np.unique(groups, return_inverse=True)
        self.onehot = np.zeros((len(self.names), len(groups)))
        self.onehot[index, np.arange(len(groups))] = 1.0
        normal = normal_index(classes)
        spans = []
        for g in range(len(self.names)):
            rows = index == g
            _, correct, inactive = challenge_scores(weights, labels[rows], labels[rows], normal)
            spans.append(correct - inactive)
        self.span = np.asarray(spans)
        self.voting = np.abs(self.span) > 1e-12

    def counts(self, observed: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per candidate (columns of ``observed``): the groups gaining, the groups losing."""
        change = self.onehot @ (observed - current[:, None])  # (groups, T): observed change
        change = change[self.voting] / self.span[self.voting, None]
        return (change > 1e-12).sum(axis=0), (change < -1e-12).sum(axis=0)

    def net(self, observed: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Groups gaining minus groups losing, per candidate (columns of ``observed``)."""
        up, down = self.counts(observed, current)
        return up - down

    def passes(self, observed: np.ndarray, current: np.ndarray, vote: str) -> np.ndarray:
        """Whether each candidate wins the vote: ``"net"``, more groups gain than lose;
        ``"majority"``, more than half of the voting groups gain."""
        up, down = self.counts(observed, current)
        if vote == "net":
            return up > down
        if vote == "majority":
            return 2 * up > int(self.voting.sum())
        raise ValueError(f"vote must be 'net' or 'majority', not {vote!r}")


def prevalence_thresholds(
    truth: np.ndarray, classes, scored: ScoredClasses | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The prevalence floor: each class's prevalence as a constant score for every record,
    and the thresholds on it that maximise the challenge metric on ``truth`` (a class at or
    below its threshold is predicted for every record, above it for none). Returns
    ``(prevalence, thresholds)``."""
    truth = np.asarray(truth, dtype=bool)
    prevalence = truth.mean(axis=0) if len(truth) else np.zeros(len(classes))
    constant = np.broadcast_to(prevalence, truth.shape)
    start = np.full(len(classes), NEVER)
    return prevalence, challenge_thresholds(truth, constant, classes, start=start, scored=scored)
