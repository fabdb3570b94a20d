"""The hybrid: out-of-fold predictions of the engines fused per class.

Training (``fit``):

1. k folds grouped so that identical signals stay on one side (:mod:`.cv`), or whole sources
   (``fold_groups="source"``);
2. every member (``rules``, ``parallel_cnn``, ``cwt_googlenet``, ``beats``) is trained on k-1
   folds and predicts the held-out fold, giving out-of-fold (OOF) scores for every record;
   a member with an ``evidence(records)`` method (``beats``: fractions of V and S beats,
   the MI probability) adds those features too;
3. three fusions, each with two ways of setting thresholds, are compared on records that
   neither the fuser nor the thresholds saw (fusers fitted on k-1 folds of the OOF scores;
   searched thresholds taken from the other folds' fused scores):
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
defines the part (the member, its options less those that only say how it runs, the classes,
the training and held-out record names) and whether it finished. A resumed fit reads back the
parts that finished with the same key, continues an interrupted deep member from its last
epoch, and trains the rest; every seed is fixed per part, so the result equals an
uninterrupted run's. Nothing of the run (folders, device, workers) is part of the model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from team_code.classifiers import registry
from team_code.classifiers.base import Classifier, apply_options
from team_code.classifiers.cv import grouped_kfold, signal_digests, source_groups, take
from team_code.classifiers.thresholds import NEVER, challenge_score, challenge_thresholds
from team_code.context import RunContext, Task, record_names
from team_code.data.records import Record, record_source
from team_code.fileio import load_arrays, load_json, save_arrays, save_json

FUSIONS = ("single", "selection", "stacking")  # simplest first: ties keep the simpler
#: The shipped default's members (see HybridConfig.members).
DEFAULT_MEMBERS: tuple[str, ...] = ("rules", "beats")
THRESHOLDINGS = ("own", "searched")


@dataclasses.dataclass(frozen=True)
class HybridConfig:
    """Options of the hybrid."""

    # Engines to fuse, by registry name; beats joins only when given --beat-data. The default
    # holds the engines that pay under leave-one-source-out on the six shared sources
    # (README): rules 0.351 pooled against the floor's 0.185. cwt_googlenet (0.167) is below
    # the floor at --preset cpu; parallel_cnn is just above it (0.186 to 0.199 over four
    # seeds: it keeps the floor's decisions almost everywhere), for six trainings per fold.
    # Both join when named (--set hybrid.members=rules,parallel_cnn,cwt_googlenet).
    members: tuple[str, ...] = DEFAULT_MEMBERS
    # Folds of the out-of-fold predictions (records with identical signals share a fold).
    n_folds: int = 5
    # "source": whole sources (record-name prefixes) stay together, so the fusion and its
    # thresholds are chosen on scores for hospitals the members did not see (falls back to
    # "signal" with fewer sources than folds); "signal": folds keep identical signals together.
    # Leave-one-source-out on six sources (at 8f300c0): the hybrid over the rules scored 0.283
    # pooled with "source" and 0.265 with "signal", whose thresholds made IRBBB fire on 45
    # CPSC records.
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
    return 1.0 / (1.0 + np.exp(-z))


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


def _record_contributions(truth: np.ndarray, binary: np.ndarray, classes) -> np.ndarray:
    """Each record's share of the normalised challenge metric (they sum to the metric's
    distance above the inactive score)."""
    from evaluation.metrics import record_challenge_contributions
    from team_code.classifiers.thresholds import challenge_weights
    from team_code.data.labels import NORMAL_CLASS

    observed, correct, inactive = record_challenge_contributions(
        challenge_weights(classes), truth, binary, list(classes).index(NORMAL_CLASS)
    )
    span = correct.sum() - inactive.sum()
    return observed / span if span else np.zeros_like(observed)


def _simplest_within_tolerance(contributions: dict, tolerance_se: float) -> tuple:
    """The first (simplest) candidate whose cross-validated score is within ``tolerance_se``
    standard errors of the best one's, the standard error taken of the paired per-record
    difference (the one-standard-error rule: on a small set, the best score among several
    candidates is partly luck, and the simpler candidate is the safer bet)."""
    totals = {k: float(v.sum()) for k, v in contributions.items()}
    best = max(totals, key=totals.get)
    for key, values in contributions.items():
        difference = contributions[best] - values
        se = np.sqrt(len(difference)) * difference.std(ddof=1) if len(difference) > 1 else 0.0
        if totals[best] - totals[key] <= tolerance_se * se:
            return key
    return best


def _member_ranking(precision: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Members from the best mean average precision (over the classes that have positives) to
    the worst; the first is ``single``'s member."""
    present = truth.any(axis=0)
    mean = precision[present].mean(axis=0) if present.any() else np.zeros(precision.shape[1])
    return np.argsort(-mean, kind="stable")


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

    def __init__(self, per_class: bool = True, min_positives: int = 5):
        self.per_class = per_class
        self.min_positives = min_positives

    def fit(
        self, scores: np.ndarray, own: np.ndarray, evidence: np.ndarray, truth: np.ndarray
    ) -> _Selector:
        del own, evidence
        precision = _precision_table(scores, truth)
        overall = _member_ranking(precision, truth)
        self.ranking_ = np.tile(overall, (truth.shape[1], 1))
        if self.per_class:
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
        return tuple(config.members)

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
        for name in self.config.members:
            if name == "hybrid":
                raise ValueError("the hybrid cannot contain itself")
            reason = registry.get(name).unavailable(self._member_config(name))
            if reason:
                self._log(f"hybrid: {name} left out ({reason})")
                continue
            members.append(name)
        if not members:
            raise ValueError("the hybrid has no usable members")
        return members

    def _log(self, message: str) -> None:
        self.ctx.log(message)

    def _fold_groups(self, records: Sequence[Record]) -> list[str]:
        digests = signal_digests(records)
        if self.config.fold_groups == "signal":
            return digests
        if self.config.fold_groups != "source":
            raise ValueError("hybrid: fold_groups must be 'signal' or 'source'")
        groups = source_groups([record_source(name) for name in record_names(records)], digests)
        if len(set(groups)) >= self.config.n_folds:
            return groups
        self._log(
            f"hybrid: {len(set(groups))} sources cannot fill {self.config.n_folds} folds; "
            "folds keep identical signals together instead"
        )
        return digests

    def _member_outputs(self, name: str, model: Classifier, records: Sequence[Record]):
        """One member's scores (n, n_classes) and evidence (n, n_evidence) for ``records``.

        A record the member cannot process (it raises for that record alone, or gives
        non-finite scores or evidence) is reported and gets NaN rows: the fusion leaves it
        out of that member's part (:func:`_pick`, :class:`_Stacker`), not out of the fit.
        """
        n_evidence = len(getattr(model, "evidence_names_", ())) if hasattr(model, "evidence") else 0

        def outputs(batch):
            scores = np.asarray(model.predict_proba(batch), dtype=float)
            evidence = (
                np.asarray(model.evidence(batch), dtype=float)
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
        return np.stack(
            [
                np.clip(np.asarray(m.thresholds_, dtype=float), 0.0, NEVER)
                for m in self.members_.values()
            ]
        )

    # -- learning ------------------------------------------------------------------------
    def fit(
        self, records: Sequence[Record], task: Task, ctx: RunContext | None = None
    ) -> HybridClassifier:
        self._begin(task, ctx)
        truth = self.label_matrix(records)
        members = self._usable_members()
        folds = grouped_kfold(
            truth, self._fold_groups(records), self.config.n_folds, self.config.seed
        )
        n, c = truth.shape
        oof_scores = np.zeros((n, len(members), c))
        # The own thresholds of the fold model that made each out-of-fold score.
        oof_own = np.zeros((n, len(members), c))
        oof_evidence: list[np.ndarray | None] = [None] * len(members)
        for k, (train_index, test_index) in enumerate(folds):
            for m, name in enumerate(members):
                scores, evidence, own = self._fold_outputs(
                    name, k, len(folds), take(records, train_index), take(records, test_index)
                )
                oof_own[test_index, m] = own
                oof_scores[test_index, m] = scores
                if oof_evidence[m] is None:
                    oof_evidence[m] = np.zeros((n, evidence.shape[1]))
                oof_evidence[m][test_index] = evidence
        evidence = np.concatenate(oof_evidence, axis=1)
        self.oof_scores_ = oof_scores  # kept for reports; not saved

        # The refitted members make the shipped predictions, so their own thresholds are
        # the ones shipped with them (never an average of the fold models' thresholds).
        self.members_ = {name: self._refit(name, records) for name in members}
        self._fuse(members, truth, folds, oof_scores, oof_own, evidence, self._own())
        return self

    # -- work folders and resume -----------------------------------------------------------
    def _part(self, name: str, part: str, train, held_out) -> tuple:
        """Member ``name``'s config and child run context for one part of the fit
        (``fold<k>`` or ``refit``), and ``(config, ctx, finished, key)``: ``finished`` is the
        folder of the same part finished by the run resumed from (None when it must be
        trained). The key is what defines the part: the member, its config, the task and the
        records on each side (nothing about the run)."""
        config = self._member_config(name)
        text = json.dumps(
            [
                name,
                dataclasses.asdict(config),
                self.task_.to_json(),
                list(self.classes_),
                record_names(train),
                record_names(held_out),
            ],
            sort_keys=True,
            default=str,
        )
        key = hashlib.sha256(text.encode()).hexdigest()
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
        from team_code.harness import is_main_process

        if not is_main_process():
            return
        save_json(work / PART_FILE, {"key": key, "finished": finished})
        if finished:
            (work / "checkpoint.pt").unlink(missing_ok=True)

    def _fold_outputs(self, name: str, k: int, n_folds: int, train, held_out) -> tuple:
        """Member ``name`` trained on fold ``k``'s training records: its scores and evidence
        for the held-out records, and its own thresholds (read back when a resumed run
        finished this fold)."""
        config, ctx, finished, key = self._part(name, f"fold{k + 1}", train, held_out)
        if finished is not None:
            self._log(f"hybrid: fold {k + 1}/{n_folds}: {name} read back from {finished}")
            saved = load_arrays(finished / OUTPUTS_FILE)
            return saved["scores"], saved["evidence"], saved["own"]
        self._log(f"hybrid: fold {k + 1}/{n_folds}: fitting {name}")
        model = registry.get(name)(config).fit(train, self.task_, ctx)
        work = Path(ctx.workdir) if ctx.workdir else None
        own = np.clip(np.asarray(model.thresholds_, dtype=float), 0.0, NEVER)
        scores, evidence = self._member_outputs(name, model, held_out)
        if work is not None:
            arrays = {"scores": scores, "evidence": evidence, "own": own}
            save_arrays(work / OUTPUTS_FILE, arrays)
            self._write_part(work, key, finished=True)
        return scores, evidence, own

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

    def _fuse(self, members, truth, folds, oof_scores, oof_own, evidence, own) -> None:
        """Choose the fusion and its thresholds from the members' out-of-fold outputs.

        ``oof_own`` (n, members, classes) holds the own thresholds of the fold model that
        made each out-of-fold score; ``own`` (members, classes) those of the refitted members
        that make the shipped predictions. Every candidate (a fusion with its members' own
        thresholds, or with thresholds searched for the challenge metric) is scored on
        records neither its fuser nor its thresholds saw: fusers are fitted on k-1 folds of
        the OOF scores, and searched thresholds come from the other folds' fused scores. The
        simplest candidate is kept unless a more complex one wins by more than
        ``tolerance_se`` standard errors. The shipped thresholds are the refitted members'
        own (``own``: 0.5 on stacked probabilities), or searched on all the out-of-fold fused
        scores (``searched``; rarer classes keep the refitted members' own).
        """
        n, c = truth.shape
        fusions = FUSIONS if self.config.fusion == "auto" else (self.config.fusion,)
        modes = THRESHOLDINGS if self.config.thresholding == "auto" else (self.config.thresholding,)
        if not set(fusions) <= set(FUSIONS):
            raise ValueError(f"hybrid: fusion must be auto or one of {FUSIONS}")
        if not set(modes) <= set(THRESHOLDINGS):
            raise ValueError(f"hybrid: thresholding must be auto or one of {THRESHOLDINGS}")
        min_positives = self.config.threshold_min_positives
        self.fusion_scores_ = {}
        thresholds = {}
        fusers = {}
        contributions = {}
        for fusion in fusions:
            fused_cv, start_cv = np.zeros((n, c)), np.zeros((n, c))
            for train_index, test_index in folds:
                fuser = self._new_fuser(fusion).fit(
                    oof_scores[train_index],
                    oof_own[train_index],
                    evidence[train_index],
                    truth[train_index],
                )
                fused_cv[test_index] = fuser.predict(
                    oof_scores[test_index], oof_own[test_index], evidence[test_index]
                )
                start_cv[test_index] = fuser.start_thresholds(oof_own[test_index])
            fused_cv = np.nan_to_num(fused_cv, nan=0.0)  # no member could score: negative
            fusers[fusion] = self._new_fuser(fusion).fit(oof_scores, oof_own, evidence, truth)
            start = fusers[fusion].start_thresholds(own)
            for mode in modes:
                if mode == "own":
                    binary = fused_cv >= start_cv
                    thresholds[fusion, mode] = start
                else:
                    binary = np.zeros((n, c), dtype=bool)
                    for train_index, test_index in folds:
                        # The held-out fold was scored by one fold model per member, so its
                        # own thresholds are one row: the start, kept by rarer classes.
                        cut = challenge_thresholds(
                            truth[train_index],
                            fused_cv[train_index],
                            self.classes_,
                            scored=self.task_.scored,
                            start=start_cv[test_index[0]],
                            min_positives=min_positives,
                        )
                        binary[test_index] = fused_cv[test_index] >= cut
                    thresholds[fusion, mode] = challenge_thresholds(
                        truth,
                        fused_cv,
                        self.classes_,
                        start=start,
                        min_positives=min_positives,
                        scored=self.task_.scored,
                    )
                self.fusion_scores_[f"{fusion}/{mode}"] = challenge_score(
                    truth, binary, self.classes_, self.task_.scored
                )
                contributions[fusion, mode] = _record_contributions(truth, binary, self.classes_)
        # The members alone, each with its fold models' own thresholds (for the log/manifest).
        self.member_scores_ = {
            name: challenge_score(
                truth, oof_scores[:, m] >= oof_own[:, m], self.classes_, self.task_.scored
            )
            for m, name in enumerate(members)
        }
        self.fusion_, self.thresholding_ = _simplest_within_tolerance(
            contributions, self.config.tolerance_se
        )
        scores = {**self.member_scores_, **self.fusion_scores_}
        self._log(
            "hybrid: cross-validated challenge metric "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            + f"; using {self.fusion_}/{self.thresholding_}"
        )
        self.thresholds_ = thresholds[self.fusion_, self.thresholding_]
        self.fuser_ = fusers[self.fusion_]

    def _new_fuser(self, fusion: str):
        if fusion == "stacking":
            return _Stacker(self.config.stacking_c, self.config.selection_min_positives)
        return _Selector(fusion == "selection", self.config.selection_min_positives)

    def member_predictions(self, records: Sequence[Record]) -> dict[str, np.ndarray]:
        """Each member's scores for ``records`` (for reports and comparisons; NaN where a
        member could not process a record)."""
        return {
            name: self._member_outputs(name, m, records)[0] for name, m in self.members_.items()
        }

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        outputs = [self._member_outputs(n, m, records) for n, m in self.members_.items()]
        scores = np.stack([s for s, _ in outputs], axis=1)
        evidence = np.concatenate([e for _, e in outputs], axis=1)
        fused = self.fuser_.predict(scores, self._own(), evidence)
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
            "fusion": self.fusion_,
            "thresholding": self.thresholding_,
            "fusion_scores": self.fusion_scores_,
            "member_scores": self.member_scores_,
        }
        save_arrays(folder / "fuser.safetensors", self.fuser_.arrays())
        save_json(folder / "hybrid.json", state)

    def _load_state(self, folder: Path) -> None:
        state = load_json(folder / "hybrid.json")
        fuser_file = folder / "fuser.safetensors"
        arrays = load_arrays(fuser_file) if fuser_file.is_file() else {}
        # Before the fuser file, or before the members' own thresholds came from the
        # refitted members ("own" held the fold models' average).
        if "thresholding" not in state or "ranking" not in arrays or "own" in arrays:
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
        self.fuser_ = self._new_fuser(self.fusion_)
        self.fuser_.set_arrays(arrays)

    def summary(self) -> dict:
        return {
            "task": self.task_.to_json(),
            "members": list(self.members_),
            "fusion": self.fusion_,
            "thresholding": self.thresholding_,
            "cv_challenge_metric": {**self.member_scores_, **self.fusion_scores_},
        }
