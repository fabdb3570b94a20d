"""The hybrid: out-of-fold predictions of the engines fused per class.

Training (``fit``):

1. k folds grouped so that identical signals stay on one side (:mod:`.cv`);
2. every member (``rules``, ``parallel_cnn``, ``cwt_googlenet``, ``beats``) is trained on k-1
   folds and predicts the held-out fold, giving out-of-fold (OOF) scores for every record;
   a member with an ``evidence(records)`` method (``beats``: fractions of V and S beats,
   the MI probability) adds those features too;
3. three fusions are compared on the OOF scores, each itself cross-validated over the same
   folds so that neither is judged on records it was fitted to:
   - ``stacking``: per class, an L2-regularised logistic regression on the members'
     logit scores for that class plus the evidence features;
   - ``selection``: per class, the member with the best OOF average precision (classes
     with fewer than ``selection_min_positives`` positives take the best member overall);
   - ``single``: the one member with the best mean average precision (fusion that does not
     pay on a small training set must not cost the best engine's score);
   the one with the highest challenge metric is kept (``fusion="auto"``), or the one named;
4. thresholds maximising the challenge metric on the chosen fusion's cross-validated scores;
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
from team_code.classifiers.cv import grouped_kfold, signal_digests, take
from team_code.classifiers.thresholds import NEVER, challenge_score, challenge_thresholds
from team_code.data.records import Record
from team_code.fileio import load_arrays, load_json, save_arrays, save_json

FUSIONS = ("stacking", "selection", "single")


@dataclasses.dataclass(frozen=True)
class HybridConfig:
    """Options of the hybrid."""

    # Engines to fuse, by registry name; beats joins only when given --beat-data.
    members: tuple[str, ...] = ("rules", "parallel_cnn", "cwt_googlenet", "beats")
    # Folds of the out-of-fold predictions (records with identical signals share a fold).
    n_folds: int = 5
    # "auto" picks the best of stacking, selection and single on cross-validated OOF scores.
    fusion: str = "auto"
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


class _Stacker:
    """Per-class logistic regressions on [member logits of the class, evidence]."""

    def __init__(self, c: float):
        self.c = c

    @staticmethod
    def features(scores: np.ndarray, evidence: np.ndarray, j: int) -> np.ndarray:
        return np.column_stack([_logit(scores[:, :, j]), evidence])

    def fit(self, scores: np.ndarray, evidence: np.ndarray, truth: np.ndarray) -> _Stacker:
        """scores (n, n_members, n_classes); evidence (n, n_evidence); truth (n, n_classes)."""
        from sklearn.linear_model import LogisticRegression

        n_classes = truth.shape[1]
        n_features = scores.shape[1] + evidence.shape[1]
        self.coef_ = np.zeros((n_classes, n_features))
        self.intercept_ = np.zeros(n_classes)
        self.mean_ = np.zeros((n_classes, n_features))
        self.scale_ = np.ones((n_classes, n_features))
        for j in range(n_classes):
            x = self.features(scores, evidence, j)
            y = truth[:, j]
            self.mean_[j] = x.mean(axis=0)
            self.scale_[j] = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
            if y.all() or not y.any():  # one outcome only: a constant at its (smoothed) rate
                rate = (y.sum() + 0.5) / (len(y) + 1.0)
                self.intercept_[j] = np.log(rate / (1 - rate))
                continue
            model = LogisticRegression(C=self.c, max_iter=1000)
            model.fit((x - self.mean_[j]) / self.scale_[j], y)
            self.coef_[j] = model.coef_[0]
            self.intercept_[j] = model.intercept_[0]
        return self

    def predict(self, scores: np.ndarray, evidence: np.ndarray) -> np.ndarray:
        out = np.empty((scores.shape[0], scores.shape[2]))
        for j in range(scores.shape[2]):
            x = (self.features(scores, evidence, j) - self.mean_[j]) / self.scale_[j]
            out[:, j] = _sigmoid(x @ self.coef_[j] + self.intercept_[j])
        return out


class _Selector:
    """Per class, the scores of one member, chosen by average precision (AP).

    ``per_class``: each class with at least ``min_positives`` positives takes the member with
    its best AP; rarer classes (where AP is noise) take the member with the best mean AP over
    all classes. Without ``per_class`` every class takes that member ("single").
    """

    def __init__(self, per_class: bool = True, min_positives: int = 5):
        self.per_class = per_class
        self.min_positives = min_positives

    def fit(self, scores: np.ndarray, evidence: np.ndarray, truth: np.ndarray) -> _Selector:
        del evidence
        n_members, n_classes = scores.shape[1], scores.shape[2]
        precision = np.array(
            [
                [_average_precision(truth[:, j], scores[:, m, j]) for m in range(n_members)]
                for j in range(n_classes)
            ]
        )
        present = truth.any(axis=0)
        overall = int(precision[present].mean(axis=0).argmax()) if present.any() else 0
        self.choice_ = np.full(n_classes, overall)
        if self.per_class:
            frequent = truth.sum(axis=0) >= self.min_positives
            self.choice_[frequent] = precision[frequent].argmax(axis=1)
        return self

    def predict(self, scores: np.ndarray, evidence: np.ndarray) -> np.ndarray:
        del evidence
        return scores[:, self.choice_, np.arange(scores.shape[2])]


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
        folds = grouped_kfold(truth, signal_digests(records), self.config.n_folds, self.config.seed)
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

        # Compare the fusions on scores cross-validated over the same folds.
        fused_cv = {fusion: np.zeros((n, c)) for fusion in FUSIONS}
        for train_index, test_index in folds:
            for fusion in FUSIONS:
                fuser = self._new_fuser(fusion).fit(
                    oof_scores[train_index], evidence[train_index], truth[train_index]
                )
                fused_cv[fusion][test_index] = fuser.predict(
                    oof_scores[test_index], evidence[test_index]
                )
        fused_fusers = {f: self._new_fuser(f).fit(oof_scores, evidence, truth) for f in FUSIONS}
        self.fusion_scores_ = {}
        thresholds = {}
        for fusion in FUSIONS:
            thresholds[fusion] = challenge_thresholds(
                truth,
                fused_cv[fusion],
                self.classes_,
                start=self._start_thresholds(fusion, fused_fusers[fusion], fold_thresholds),
                min_positives=self.config.threshold_min_positives,
            )
            self.fusion_scores_[fusion] = challenge_score(
                truth, fused_cv[fusion] >= thresholds[fusion], self.classes_
            )
        self.member_scores_ = {}
        for m, name in enumerate(members):
            member_thresholds = challenge_thresholds(
                truth,
                oof_scores[:, m],
                self.classes_,
                start=fold_thresholds[:, m].mean(axis=0),
                min_positives=self.config.threshold_min_positives,
            )
            self.member_scores_[name] = challenge_score(
                truth, oof_scores[:, m] >= member_thresholds, self.classes_
            )
        if self.config.fusion == "auto":
            self.fusion_ = max(FUSIONS, key=lambda f: self.fusion_scores_[f])
        elif self.config.fusion in FUSIONS:
            self.fusion_ = self.config.fusion
        else:
            raise ValueError(f"hybrid: fusion must be auto or one of {FUSIONS}")
        scores = {**self.member_scores_, **self.fusion_scores_}
        self._log(
            "hybrid: cross-validated challenge metric "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            + f"; using {self.fusion_}"
        )
        self.thresholds_ = thresholds[self.fusion_]
        self.fuser_ = fused_fusers[self.fusion_]

        self.members_ = {}
        for name in members:
            self._log(f"hybrid: fitting {name} on all {n} records")
            self.members_[name] = self._new_member(name).fit(records, self.classes_)
        return self

    @staticmethod
    def _start_thresholds(fusion: str, fuser, fold_thresholds: np.ndarray) -> np.ndarray:
        """Where the threshold search starts (and where rare classes stay): 0.5 on stacked
        probabilities, else each class's chosen member's own thresholds (mean over folds)."""
        n_classes = fold_thresholds.shape[2]
        if fusion == "stacking":
            return np.full(n_classes, 0.5)
        return fold_thresholds.mean(axis=0)[fuser.choice_, np.arange(n_classes)]

    def _new_fuser(self, fusion: str):
        if fusion == "stacking":
            return _Stacker(self.config.stacking_c)
        return _Selector(fusion == "selection", self.config.selection_min_positives)

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
            "fusion_scores": self.fusion_scores_,
            "member_scores": self.member_scores_,
        }
        if self.fusion_ != "stacking":
            state["choice"] = self.fuser_.choice_.tolist()
        else:
            save_arrays(
                folder / "stacker.safetensors",
                {
                    "coef": self.fuser_.coef_,
                    "intercept": self.fuser_.intercept_,
                    "mean": self.fuser_.mean_,
                    "scale": self.fuser_.scale_,
                },
            )
        save_json(folder / "hybrid.json", state)

    def _load_state(self, folder: Path) -> None:
        state = load_json(folder / "hybrid.json")
        self.members_ = {
            name: registry.get(name).load(folder / "members" / name) for name in state["members"]
        }
        self.fusion_ = state["fusion"]
        self.fusion_scores_ = state["fusion_scores"]
        self.member_scores_ = state["member_scores"]
        self.fuser_ = self._new_fuser(self.fusion_)
        if self.fusion_ != "stacking":
            self.fuser_.choice_ = np.asarray(state["choice"], dtype=int)
        else:
            arrays = load_arrays(folder / "stacker.safetensors")
            self.fuser_.coef_ = arrays["coef"]
            self.fuser_.intercept_ = arrays["intercept"]
            self.fuser_.mean_ = arrays["mean"]
            self.fuser_.scale_ = arrays["scale"]

    def summary(self) -> dict:
        return {
            "members": list(self.members_),
            "fusion": self.fusion_,
            "cv_challenge_metric": {**self.member_scores_, **self.fusion_scores_},
        }
