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
     ``threshold_min_positives`` positives keep their own);
   the simplest candidate is kept unless a more complex one scores higher by more than
   ``tolerance_se`` standard errors of the paired per-record difference (the
   one-standard-error rule; ``fusion``/``thresholding`` "auto"), or the one named;
4. the chosen fuser is refitted on all OOF scores (and its thresholds searched on all of
   them when ``searched`` won);
5. every member is refitted on all records for inference.

``beats`` joins only when it has beat data (``--beat-data``); without it, it is left out
with a message, and the manifest lists the members actually used.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from team_code.classifiers import registry
from team_code.classifiers.base import Classifier, apply_options
from team_code.classifiers.cv import grouped_kfold, signal_digests, source_groups, take
from team_code.classifiers.thresholds import NEVER, challenge_score, challenge_thresholds
from team_code.data.records import Record, RecordSet, record_source
from team_code.fileio import load_arrays, load_json, save_arrays, save_json

FUSIONS = ("single", "selection", "stacking")  # simplest first: ties keep the simpler
THRESHOLDINGS = ("own", "searched")


@dataclasses.dataclass(frozen=True)
class HybridConfig:
    """Options of the hybrid."""

    # Engines to fuse, by registry name; beats joins only when given --beat-data.
    members: tuple[str, ...] = ("rules", "parallel_cnn", "cwt_googlenet", "beats")
    # Folds of the out-of-fold predictions (records with identical signals share a fold).
    n_folds: int = 5
    # "signal": folds keep identical signals together; "source": whole sources (record-name
    # prefixes) stay together, so the fusion and its thresholds are chosen on scores for
    # hospitals the members did not see (falls back to "signal" with fewer sources than folds).
    fold_groups: str = "signal"
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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
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


def _best_member(precision: np.ndarray, truth: np.ndarray) -> int:
    """The member with the best mean average precision over the classes that have positives."""
    present = truth.any(axis=0)
    return int(precision[present].mean(axis=0).argmax()) if present.any() else 0


def _precision_table(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Average precision of every (class, member): shape (n_classes, n_members)."""
    return np.array(
        [
            [_average_precision(truth[:, j], scores[:, m, j]) for m in range(scores.shape[1])]
            for j in range(scores.shape[2])
        ]
    )


class _Stacker:
    """Per-class logistic regressions on the members' margins and the evidence.

    A member's margin for a class is its logit score minus the logit of its own threshold, so
    0 is that member's decision boundary whatever its score scale. Classes with fewer than
    ``min_positives`` positives are not regressed (a regression on two positives learns
    which records they were): they take the best member's scores and thresholds as they are,
    except classes with one outcome only, which score a constant at their smoothed rate (the
    data-driven fusion predicts no class it has never seen; ``single`` and ``selection``
    keep the engines' knowledge of such classes, and cross-validation chooses).
    """

    def __init__(self, c: float, own: np.ndarray, min_positives: int = 5):
        self.c = c
        self.own = np.asarray(own, dtype=float)  # (n_members, n_classes) members' thresholds
        self.min_positives = min_positives

    def features(self, scores: np.ndarray, evidence: np.ndarray, j: int) -> np.ndarray:
        return np.column_stack([_logit(scores[:, :, j]) - _logit(self.own[:, j]), evidence])

    def fit(self, scores: np.ndarray, evidence: np.ndarray, truth: np.ndarray) -> _Stacker:
        """scores (n, n_members, n_classes); evidence (n, n_evidence); truth (n, n_classes)."""
        from sklearn.linear_model import LogisticRegression

        n_classes = truth.shape[1]
        n_features = scores.shape[1] + evidence.shape[1]
        self.coef_ = np.zeros((n_classes, n_features))
        self.intercept_ = np.zeros(n_classes)
        self.mean_ = np.zeros((n_classes, n_features))
        self.scale_ = np.ones((n_classes, n_features))
        best = _best_member(_precision_table(scores, truth), truth)
        positives = truth.sum(axis=0)
        frequent = (positives >= self.min_positives) & ~truth.all(axis=0)
        one_outcome = (positives == 0) | truth.all(axis=0)
        # -1: regressed; -2: one outcome only, a constant at its smoothed rate; else a member.
        self.fallback_ = np.where(frequent, -1, np.where(one_outcome, -2, best))
        for j in np.flatnonzero(one_outcome):
            rate = (positives[j] + 0.5) / (len(truth) + 1.0)
            self.intercept_[j] = np.log(rate / (1 - rate))
        for j in np.flatnonzero(frequent):
            x = self.features(scores, evidence, j)
            self.mean_[j] = x.mean(axis=0)
            self.scale_[j] = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
            model = LogisticRegression(C=self.c, max_iter=1000)
            model.fit((x - self.mean_[j]) / self.scale_[j], truth[:, j])
            self.coef_[j] = model.coef_[0]
            self.intercept_[j] = model.intercept_[0]
        return self

    def predict(self, scores: np.ndarray, evidence: np.ndarray) -> np.ndarray:
        out = np.empty((scores.shape[0], scores.shape[2]))
        for j in range(scores.shape[2]):
            if self.fallback_[j] >= 0:
                out[:, j] = scores[:, self.fallback_[j], j]
                continue
            if self.fallback_[j] == -2:
                out[:, j] = _sigmoid(self.intercept_[j])
                continue
            x = (self.features(scores, evidence, j) - self.mean_[j]) / self.scale_[j]
            out[:, j] = _sigmoid(x @ self.coef_[j] + self.intercept_[j])
        return out

    def start_thresholds(self) -> np.ndarray:
        """0.5 on regressed probabilities; the fallback member's own threshold elsewhere."""
        columns = np.arange(len(self.fallback_))
        member = np.maximum(self.fallback_, 0)
        return np.where(self.fallback_ >= 0, self.own[member, columns], 0.5)


class _Selector:
    """Per class, the scores of one member, chosen by average precision (AP).

    ``per_class``: each class with at least ``min_positives`` positives takes the member with
    its best AP; rarer classes (where AP is noise) take the member with the best mean AP over
    all classes. Without ``per_class`` every class takes that member ("single").
    """

    def __init__(self, own: np.ndarray, per_class: bool = True, min_positives: int = 5):
        self.own = np.asarray(own, dtype=float)  # (n_members, n_classes) members' thresholds
        self.per_class = per_class
        self.min_positives = min_positives

    def fit(self, scores: np.ndarray, evidence: np.ndarray, truth: np.ndarray) -> _Selector:
        del evidence
        precision = _precision_table(scores, truth)
        self.choice_ = np.full(truth.shape[1], _best_member(precision, truth))
        if self.per_class:
            frequent = truth.sum(axis=0) >= self.min_positives
            self.choice_[frequent] = precision[frequent].argmax(axis=1)
        return self

    def predict(self, scores: np.ndarray, evidence: np.ndarray) -> np.ndarray:
        del evidence
        return scores[:, self.choice_, np.arange(scores.shape[2])]

    def start_thresholds(self) -> np.ndarray:
        """Each class's chosen member's own threshold."""
        return self.own[self.choice_, np.arange(len(self.choice_))]


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
    def _member_config(self, name: str):
        values = self.config.member_options.get(name, {})
        return apply_options(registry.get(name).Config, values)

    def _new_member(self, name: str) -> Classifier:
        return registry.get(name)(self._member_config(name))

    def _usable_members(self) -> list[str]:
        members = []
        for name in self.config.members:
            if name == "hybrid":
                raise ValueError("the hybrid cannot contain itself")
            config = self._member_config(name)
            if name == "beats" and not getattr(config, "beat_data", ()):
                self._log("hybrid: beats left out (train with --beat-data MITDB_DIR to add it)")
                continue
            members.append(name)
        if not members:
            raise ValueError("the hybrid has no usable members")
        return members

    @staticmethod
    def _log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def _fold_groups(self, records: Sequence[Record]) -> list[str]:
        digests = signal_digests(records)
        if self.config.fold_groups == "signal":
            return digests
        if self.config.fold_groups != "source":
            raise ValueError("hybrid: fold_groups must be 'signal' or 'source'")
        names = records.names if isinstance(records, RecordSet) else [r.name for r in records]
        groups = source_groups([record_source(name) for name in names], digests)
        if len(set(groups)) >= self.config.n_folds:
            return groups
        self._log(
            f"hybrid: {len(set(groups))} sources cannot fill {self.config.n_folds} folds; "
            "folds keep identical signals together instead"
        )
        return digests

    @staticmethod
    def _member_outputs(model: Classifier, records: Sequence[Record]):
        scores = np.asarray(model.predict_proba(records), dtype=float)
        evidence = (
            np.asarray(model.evidence(records), dtype=float)
            if hasattr(model, "evidence")
            else np.zeros((len(records), 0))
        )
        return scores, evidence

    # -- learning ------------------------------------------------------------------------
    def fit(self, records: Sequence[Record], classes: Sequence[str]) -> HybridClassifier:
        self.classes_ = tuple(classes)
        truth = self.label_matrix(records)
        members = self._usable_members()
        folds = grouped_kfold(
            truth, self._fold_groups(records), self.config.n_folds, self.config.seed
        )
        n, c = truth.shape
        oof_scores = np.zeros((n, len(members), c))
        oof_evidence: list[np.ndarray | None] = [None] * len(members)
        fold_thresholds = np.zeros((len(folds), len(members), c))
        for k, (train_index, test_index) in enumerate(folds):
            for m, name in enumerate(members):
                self._log(f"hybrid: fold {k + 1}/{len(folds)}: fitting {name}")
                model = self._new_member(name).fit(take(records, train_index), self.classes_)
                fold_thresholds[k, m] = np.clip(model.thresholds_, 0.0, NEVER)
                scores, evidence = self._member_outputs(model, take(records, test_index))
                oof_scores[test_index, m] = scores
                if oof_evidence[m] is None:
                    oof_evidence[m] = np.zeros((n, evidence.shape[1]))
                oof_evidence[m][test_index] = evidence
        evidence = np.concatenate(oof_evidence, axis=1)
        self.oof_scores_ = oof_scores  # kept for reports; not saved
        self._fuse(members, truth, folds, oof_scores, evidence, fold_thresholds)

        self.members_ = {}
        for name in members:
            self._log(f"hybrid: fitting {name} on all {n} records")
            self.members_[name] = self._new_member(name).fit(records, self.classes_)
        return self

    def _fuse(self, members, truth, folds, oof_scores, evidence, fold_thresholds) -> None:
        """Choose the fusion and its thresholds from the members' out-of-fold outputs.

        Every candidate (a fusion with its members' own thresholds, or with thresholds
        searched for the challenge metric) is scored on records neither its fuser nor its
        thresholds saw: fusers are fitted on k-1 folds of the OOF scores, and searched
        thresholds come from the other folds' fused scores. The simplest candidate is kept
        unless a more complex one wins by more than ``tolerance_se`` standard errors.
        """
        n, c = truth.shape
        fusions = FUSIONS if self.config.fusion == "auto" else (self.config.fusion,)
        modes = THRESHOLDINGS if self.config.thresholding == "auto" else (self.config.thresholding,)
        if not set(fusions) <= set(FUSIONS):
            raise ValueError(f"hybrid: fusion must be auto or one of {FUSIONS}")
        if not set(modes) <= set(THRESHOLDINGS):
            raise ValueError(f"hybrid: thresholding must be auto or one of {THRESHOLDINGS}")
        min_positives = self.config.threshold_min_positives
        own = fold_thresholds.mean(axis=0)  # (members, classes): each member's own thresholds
        self.fusion_scores_ = {}
        thresholds = {}
        fusers = {}
        contributions = {}
        for fusion in fusions:
            fused_cv, start_cv = np.zeros((n, c)), np.zeros((n, c))
            for train_index, test_index in folds:
                fuser = self._new_fuser(fusion, own).fit(
                    oof_scores[train_index], evidence[train_index], truth[train_index]
                )
                fused_cv[test_index] = fuser.predict(oof_scores[test_index], evidence[test_index])
                start_cv[test_index] = fuser.start_thresholds()
            fusers[fusion] = self._new_fuser(fusion, own).fit(oof_scores, evidence, truth)
            start = fusers[fusion].start_thresholds()
            for mode in modes:
                if mode == "own":
                    binary = fused_cv >= start_cv
                    thresholds[fusion, mode] = start
                else:
                    binary = np.zeros((n, c), dtype=bool)
                    for train_index, test_index in folds:
                        searched = truth[train_index].sum(axis=0) >= min_positives
                        fold_thresholds_k = challenge_thresholds(
                            truth[train_index],
                            fused_cv[train_index],
                            self.classes_,
                            start=start,
                            min_positives=min_positives,
                        )
                        cut = np.where(searched, fold_thresholds_k, start_cv[test_index])
                        binary[test_index] = fused_cv[test_index] >= cut
                    thresholds[fusion, mode] = challenge_thresholds(
                        truth, fused_cv, self.classes_, start=start, min_positives=min_positives
                    )
                self.fusion_scores_[f"{fusion}/{mode}"] = challenge_score(
                    truth, binary, self.classes_
                )
                contributions[fusion, mode] = _record_contributions(truth, binary, self.classes_)
        # The members alone, each with its own thresholds of each fold (for the log/manifest).
        self.member_scores_ = {}
        for m, name in enumerate(members):
            binary = np.zeros((n, c), dtype=bool)
            for k, (_, test_index) in enumerate(folds):
                binary[test_index] = oof_scores[test_index, m] >= fold_thresholds[k, m]
            self.member_scores_[name] = challenge_score(truth, binary, self.classes_)
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

    def _new_fuser(self, fusion: str, own: np.ndarray):
        """A fuser; ``own`` (members, classes) are the members' own thresholds."""
        if fusion == "stacking":
            return _Stacker(self.config.stacking_c, own, self.config.selection_min_positives)
        return _Selector(own, fusion == "selection", self.config.selection_min_positives)

    def member_predictions(self, records: Sequence[Record]) -> dict[str, np.ndarray]:
        """Each member's scores for ``records`` (for reports and comparisons)."""
        return {name: self._member_outputs(m, records)[0] for name, m in self.members_.items()}

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        outputs = [self._member_outputs(m, records) for m in self.members_.values()]
        scores = np.stack([s for s, _ in outputs], axis=1)
        evidence = np.concatenate([e for _, e in outputs], axis=1)
        return np.clip(self.fuser_.predict(scores, evidence), 0.0, 1.0)

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
        arrays = {"own": self.fuser_.own}
        if self.fusion_ == "stacking":
            arrays.update(
                coef=self.fuser_.coef_,
                intercept=self.fuser_.intercept_,
                mean=self.fuser_.mean_,
                scale=self.fuser_.scale_,
                fallback=self.fuser_.fallback_.astype(np.int64),
            )
        else:
            arrays["choice"] = self.fuser_.choice_.astype(np.int64)
        save_arrays(folder / "fuser.safetensors", arrays)
        save_json(folder / "hybrid.json", state)

    def _load_state(self, folder: Path) -> None:
        state = load_json(folder / "hybrid.json")
        if "thresholding" not in state or not (folder / "fuser.safetensors").is_file():
            raise ValueError(
                f"{folder}: a hybrid saved by an earlier version of the kit (no fuser file); "
                "train it again"
            )
        self.members_ = {
            name: registry.get(name).load(folder / "members" / name) for name in state["members"]
        }
        self.fusion_ = state["fusion"]
        self.thresholding_ = state["thresholding"]
        self.fusion_scores_ = state["fusion_scores"]
        self.member_scores_ = state["member_scores"]
        arrays = load_arrays(folder / "fuser.safetensors")
        self.fuser_ = self._new_fuser(self.fusion_, arrays["own"])
        if self.fusion_ == "stacking":
            self.fuser_.coef_ = arrays["coef"]
            self.fuser_.intercept_ = arrays["intercept"]
            self.fuser_.mean_ = arrays["mean"]
            self.fuser_.scale_ = arrays["scale"]
            self.fuser_.fallback_ = arrays["fallback"].astype(int)
        else:
            self.fuser_.choice_ = arrays["choice"].astype(int)

    def summary(self) -> dict:
        return {
            "members": list(self.members_),
            "fusion": self.fusion_,
            "thresholding": self.thresholding_,
            "cv_challenge_metric": {**self.member_scores_, **self.fusion_scores_},
        }
