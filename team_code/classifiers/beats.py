"""``beats``: beat-level evidence for the 12-lead kit.

Training (``fit``):

1. a beat network (``model``: Kachuee et al. 2018 by default) learns the five AAMI classes from
   the MIT-BIH records of ``beat_data`` (every annotated beat, hybrid-balanced);
2. with ``mi`` on, a copy with all but its last two layers frozen learns myocardial infarction
   versus healthy from the lead II beats of the training records (MI codes against sinus
   rhythm alone, see :mod:`team_code.beats.ptb`) and of any PTB folders in ``beat_data``;
3. every training record's lead II beats (R peaks from ``qrs.detect``) are classified and
   summarised as evidence (:attr:`EVIDENCE_NAMES`: fractions and counts of S and V beats,
   heart rate, RR irregularity, mean MI probability, ...);
4. each Challenge class with evidence (PVC, PAC, AF, sinus rhythm, sinus tachycardia and
   bradycardia, bradycardia) gets a small logistic regression on its evidence features, fitted
   on the 12-lead training records; every other class scores its training prevalence;
5. thresholds: coordinate ascent on the challenge metric over the training records.

``stack_features(records)`` returns that evidence as an (n_records, n_features) matrix, named
by ``stack_feature_names_``, which the hybrid's stacking reads beside the members' scores
(``evidence``, the per-record report's, is the base class's: nothing shown without the
network). ``beat_data`` is required: without it ``fit`` raises.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.special import expit

from team_code.classifiers.base import Classifier, record_labels
from team_code.classifiers.decision import (
    SCORE_THRESHOLD_POLICIES,
    ThresholdPolicy,
    check_policy_name,
    make_policy,
)
from team_code.classifiers.thresholds import NEVER, youden_thresholds
from team_code.context import RunContext, Task
from team_code.data.records import Record
from team_code.dsp.rhythm import rr_statistics

#: The definition of the evidence, saved with a model and checked on loading: 2 since the
#: heart rate became ``rhythm.rr_statistics``'s (60 / the trimmed mean RR; 1: 60 / median RR)
EVIDENCE_VERSION = 2

#: Names of the evidence features, in column order.
EVIDENCE_NAMES: tuple[str, ...] = (
    "n_beats",  # R peaks detected in the record
    "heart_rate_bpm",  # 60 / trimmed mean RR, as rhythm.rr_statistics (0 with fewer than 2 beats)
    "rr_cv",  # RR standard deviation / mean (irregularity)
    "hr_outside_60_100",  # bpm below 60 or above 100 (0 inside the band)
    "frac_N",  # fraction of classified beats in each AAMI class
    "frac_S",
    "frac_V",
    "frac_F",
    "frac_Q",
    "n_S",  # number of beats classified S
    "n_V",  # number of beats classified V
    "mean_prob_S",  # mean softmax probability of S over the beats
    "mean_prob_V",
    "max_prob_S",  # largest S probability of any beat
    "max_prob_V",
    "mean_mi_prob",  # mean MI probability of the beats (NEUTRAL_MI_PROB: no beats or no MI model)
)

#: ``mean_mi_prob`` of a record without beats in its lead (or of every record when no MI
#: model was trained): no evidence either way. Every evidence value is finite: a record
#: without beats has 0 beats, counts, fractions and heart rate, and this MI probability.
NEUTRAL_MI_PROB = 0.5

#: Challenge classes scored from evidence, with the features of their logistic regression.
EVIDENCE_CLASSES: dict[str, tuple[str, ...]] = {
    "427172004": ("frac_V", "n_V", "mean_prob_V", "max_prob_V"),  # PVC (VPB, 17338001)
    "284470004": ("frac_S", "n_S", "mean_prob_S", "max_prob_S", "rr_cv"),  # PAC (SVPB)
    "164889003": ("rr_cv", "frac_S"),  # atrial fibrillation: irregular RR
    "426783006": ("hr_outside_60_100", "rr_cv", "frac_N"),  # sinus rhythm
    "427084000": ("heart_rate_bpm",),  # sinus tachycardia
    "426177001": ("heart_rate_bpm",),  # sinus bradycardia
    "426627000": ("heart_rate_bpm",),  # bradycardia
}

#: Fewer positive (or negative) training records than this: the class keeps its prevalence.
MIN_RECORDS_PER_SIDE = 3


def _default_beat_data() -> tuple[str, ...]:
    """The kit's shared MIT-BIH folder, found from ``$ECG_KIT_DATA`` or beside the repository."""
    root = os.environ.get("ECG_KIT_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[3] / "shared" / "data"
    folder = base / "mitdb"
    return (str(folder),) if folder.is_dir() else ()


class BeatsClassifier(Classifier):
    """AAMI beat classes and MI probability of lead II beats, turned into class scores."""

    name = "beats"

    @dataclasses.dataclass(frozen=True)
    class Config:
        """Options of the beats classifier."""

        beat_data: tuple[str, ...] = ()  # MIT-BIH folder(s) (required); PTB folders add MI data
        model: str = "kachuee2018"  # beat network: kachuee2018, skip_cnn or resnet_tcn
        epochs: int = 6  # passes over the balanced MIT-BIH training beats
        max_beats: int = 12000  # training beats after hybrid balancing (0: no cap)
        batch_size: int = 128  # beats per optimiser step
        lr: float = 1e-3  # Adam learning rate (decay 0.75 every 10,000 steps)
        augment: bool = False  # random crop + interpolation while training
        mi: bool = True  # train the MI transfer model (kachuee2018 only)
        mi_epochs: int = 10  # passes over the MI beats
        mi_max_beats_per_record: int = 20  # beats per record in MI training (0: all)
        # the decision policy of the thresholds (a name in decision.NAMED_POLICIES):
        # "challenge" (coordinate ascent from Youden's J) or "youden"
        threshold_method: str = "challenge"
        logistic_c: float = 1.0  # inverse L2 strength of the per-class logistic regressions
        seed: int = 0  # seeds sampling, initialisation and shuffling

        def __post_init__(self):
            check_policy_name(
                self.threshold_method, SCORE_THRESHOLD_POLICIES, "beats threshold_method"
            )

    @classmethod
    def unavailable(cls, config) -> str | None:
        if not config.beat_data:
            return "train with --beat-data MITDB_DIR to add it"
        return None

    @classmethod
    def quick_config(cls):
        """Seconds of training on the shared MIT-BIH records (when they are present)."""
        return cls.Config(beat_data=_default_beat_data(), epochs=1, max_beats=1500, mi_epochs=2)

    # -- helpers -------------------------------------------------------------------------
    def _train_config(self, epochs: int):
        from team_code.beats.train import BeatTrainConfig

        c = self.config
        return BeatTrainConfig(
            epochs=epochs,
            batch_size=c.batch_size,
            lr=c.lr,
            max_beats=c.max_beats,
            augment=c.augment,
            seed=c.seed,
            device=self.ctx.device,
        )

    def _lr_hint(self) -> str:
        return f"lower --set beats.lr= (now {self.config.lr:g})"

    def _split_beat_data(self) -> tuple[list[str], list[str]]:
        """MIT-BIH folders (with ``.atr`` files) and the other (MI) folders of ``beat_data``."""
        if not self.config.beat_data:
            raise ValueError(
                "beats: no beat data; train with --beat-data MITDB_DIR "
                "(or --set beats.beat_data=MITDB_DIR[,PTB_DIR]): the MIT-BIH Arrhythmia "
                "records the beat network learns from"
            )
        mitdb_dirs, other = [], []
        for folder in self.config.beat_data:
            path = Path(folder)
            if not path.is_dir():
                raise FileNotFoundError(f"beats: beat data folder {path} does not exist")
            (mitdb_dirs if any(path.glob("*.atr")) else other).append(str(path))
        if not mitdb_dirs:
            raise ValueError(
                f"beats: none of {list(self.config.beat_data)} holds MIT-BIH records "
                "(<name>.hea/.dat/.atr); --beat-data needs the MIT-BIH Arrhythmia folder"
            )
        return mitdb_dirs, other

    # -- learning ------------------------------------------------------------------------
    def fit(
        self, records: Sequence[Record], task: Task, ctx: RunContext | None = None
    ) -> BeatsClassifier:
        import torch

        from team_code.beats import extract, mitdb, models, ptb
        from team_code.beats.train import train_beat_model

        self._begin(task, ctx)
        mitdb_dirs, mi_dirs = self._split_beat_data()
        if len(records) == 0:
            raise ValueError("beats: no training records")
        torch.manual_seed(self.config.seed)
        method = models.EXTRACTION.get(self.config.model)
        if method is None:
            raise ValueError(
                f"beats: unknown model {self.config.model!r}; known: {', '.join(models.MODELS)}"
            )
        self.method_ = method
        extraction = dataclasses.replace(
            extract.config_for(method),
            **({"r_source": "annotations"} if method == "kachuee2018" else {}),
        )
        beat_sets = [
            extract.extract_database(mitdb.read_database(folder), method, extraction)
            for folder in mitdb_dirs
        ]
        beats = extract.BeatSet.concat(beat_sets)
        self.mitdb_counts_ = beats.counts()
        length = extract.beat_length(method)
        self.model_ = models.build(
            self.config.model, n_classes=len(mitdb.AAMI_CLASSES), input_length=length
        )
        train_beat_model(
            self.model_,
            beats,
            self._train_config(self.config.epochs),
            len(mitdb.AAMI_CLASSES),
            part="MIT-BIH beat network",
            hint=self._lr_hint(),
        )
        self.model_.eval()

        self.mi_model_ = None
        self.mi_counts_ = {}
        if self.config.mi and hasattr(self.model_, "prepare_transfer"):
            self._fit_mi(records, mi_dirs, ptb)

        features = self.stack_features(records)
        truth = self.label_matrix(records)
        self.prevalence_ = truth.mean(axis=0)
        self.logistic_ = {}
        for j, code in enumerate(self.classes_):
            names = EVIDENCE_CLASSES.get(code)
            y = truth[:, j]
            if names is None or min(y.sum(), (~y).sum()) < MIN_RECORDS_PER_SIDE:
                continue
            self.logistic_[code] = self._fit_logistic(features, y, names)
        self.thresholds_ = self.choose_thresholds(truth, self._scores(features))
        return self

    def threshold_policy(self, truth: np.ndarray, scores: np.ndarray) -> ThresholdPolicy:
        """The decision policy of the thresholds (``threshold_method``): ``"challenge"``
        searches from Youden's J of each class with evidence, and from "never predicted" for
        the classes scored by their prevalence (a constant score)."""
        start = youden_thresholds(truth, scores)
        start[[j for j, code in enumerate(self.classes_) if code not in self.logistic_]] = NEVER
        policy = make_policy(self.config.threshold_method, start=start)
        assert isinstance(policy, ThresholdPolicy)  # SCORE_THRESHOLD_POLICIES are thresholds
        return policy

    def choose_thresholds(self, truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The thresholds of :meth:`threshold_policy` fitted on the training records'
        ``scores`` and ``truth``."""
        return self.threshold_policy(truth, scores).fit(scores, truth, task=self.task_).thresholds_

    def _fit_mi(self, records: Sequence[Record], mi_dirs: list[str], ptb) -> None:
        """MI versus healthy transfer model from training records and PTB folders."""
        import copy

        from team_code.beats import extract
        from team_code.beats.train import train_beat_model

        sets = []
        labels = record_labels(records)
        for i, codes in enumerate(labels):
            label = ptb.mi_label(codes)
            if label is None:
                continue
            record = records[i]
            beats, r_used = self._lead_beats(record)
            if (
                self.config.mi_max_beats_per_record
                and len(beats) > self.config.mi_max_beats_per_record
            ):
                keep = np.linspace(0, len(beats) - 1, self.config.mi_max_beats_per_record)
                keep = np.unique(keep.round().astype(int))
                beats, r_used = beats[keep], r_used[keep]
            n = len(beats)
            sets.append(
                extract.BeatSet(
                    x=beats,
                    y=np.full(n, label, np.int64),
                    record=np.full(n, record.name),
                    group=np.full(n, record.name),
                    sample=r_used,
                    method=self.method_,
                )
            )
        if mi_dirs:
            entries = ptb.find_entries(mi_dirs)
            if entries:
                sets.append(
                    ptb.mi_beats(
                        entries, self.method_, max_per_record=self.config.mi_max_beats_per_record
                    )
                )
        if not sets:
            return
        beats = extract.BeatSet.concat(sets)
        self.mi_counts_ = beats.counts(ptb.MI_CLASSES)
        if min(self.mi_counts_.values()) == 0:
            return
        model = copy.deepcopy(self.model_).prepare_transfer(2)
        train_beat_model(
            model,
            beats,
            self._train_config(self.config.mi_epochs),
            n_classes=2,
            part="MI transfer network",
            hint=self._lr_hint(),
        )
        model.eval()
        self.mi_model_ = model

    def _fit_logistic(self, features: np.ndarray, y: np.ndarray, names: Sequence[str]) -> dict:
        from sklearn.linear_model import LogisticRegression

        columns = [EVIDENCE_NAMES.index(n) for n in names]
        x = np.nan_to_num(features[:, columns])
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        fitted = LogisticRegression(C=self.config.logistic_c, class_weight="balanced")
        fitted.fit((x - mean) / scale, y.astype(int))
        return {
            "features": list(names),
            "mean": mean.tolist(),
            "scale": scale.tolist(),
            "coef": fitted.coef_[0].tolist(),
            "intercept": float(fitted.intercept_[0]),
        }

    # -- evidence ------------------------------------------------------------------------
    def _lead_beats(self, record: Record) -> tuple[np.ndarray, np.ndarray]:
        from team_code.beats import extract

        lead = "II" if "ii" in [n.lower() for n in record.leads] else record.leads[0]
        beats, r_used, _ = extract.record_beats(
            record.signal, record.fs, record.leads, self.method_, lead=lead
        )
        return beats, r_used

    @property
    def stack_feature_names_(self) -> tuple[str, ...]:
        """Column names of :meth:`stack_features`."""
        return EVIDENCE_NAMES

    def stack_features(self, records: Sequence[Record]) -> np.ndarray:
        """(n_records, len(stack_feature_names_)) beat evidence of each record's lead II."""
        from team_code.beats import extract
        from team_code.beats.train import predict_proba

        per_record = []
        for i in range(len(records)):
            record = records[i]
            lead = "II" if "ii" in [n.lower() for n in record.leads] else record.leads[0]
            beats, _, r_all = extract.record_beats(
                record.signal, record.fs, record.leads, self.method_, lead=lead
            )
            per_record.append((beats, r_all, record.fs))
        all_beats = [b for b, _, _ in per_record]
        stacked = np.concatenate(all_beats) if all_beats else np.zeros((0, 1), np.float32)
        probs = predict_proba(self.model_, stacked, self.ctx.device)
        mi = (
            predict_proba(self.mi_model_, stacked, self.ctx.device)[:, 1]
            if self.mi_model_ is not None
            else np.full(len(stacked), np.nan)
        )
        out = np.zeros((len(records), len(EVIDENCE_NAMES)))
        start = 0
        for i, (beats, r_all, fs) in enumerate(per_record):
            stop = start + len(beats)
            out[i] = _summarise(probs[start:stop], mi[start:stop], r_all, fs)
            start = stop
        return out

    def _scores(self, features: np.ndarray) -> np.ndarray:
        scores = np.tile(self.prevalence_, (len(features), 1)).astype(float)
        for j, code in enumerate(self.classes_):
            params = self.logistic_.get(code)
            if params is None:
                continue
            columns = [EVIDENCE_NAMES.index(n) for n in params["features"]]
            x = (np.nan_to_num(features[:, columns]) - params["mean"]) / np.asarray(params["scale"])
            z = x @ np.asarray(params["coef"]) + params["intercept"]
            scores[:, j] = expit(z)
        return scores

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        return self._scores(self.stack_features(records))

    # -- persistence ---------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        from team_code.fileio import save_arrays, save_json

        save_arrays(folder / "beat_model.safetensors", _state_arrays(self.model_))
        if self.mi_model_ is not None:
            save_arrays(folder / "mi_model.safetensors", _state_arrays(self.mi_model_))
        save_json(
            folder / "beats.json",
            {
                "method": self.method_,
                "model_spec": self.model_.spec,
                "mi_spec": None if self.mi_model_ is None else self.mi_model_.spec,
                "prevalence": self.prevalence_,
                "logistic": self.logistic_,
                "mitdb_counts": self.mitdb_counts_,
                "mi_counts": self.mi_counts_,
                "evidence_names": list(EVIDENCE_NAMES),
                "evidence_version": EVIDENCE_VERSION,
            },
        )

    def _load_state(self, folder: Path) -> None:
        from team_code.beats import models
        from team_code.fileio import load_json

        state = load_json(folder / "beats.json")
        if tuple(state["evidence_names"]) != EVIDENCE_NAMES:
            raise ValueError(f"{folder}: saved evidence features differ from this version's")
        saved = state.get("evidence_version", 1)
        if saved != EVIDENCE_VERSION:
            raise ValueError(
                f"{folder}: the beat model was fitted on evidence of definition {saved}, this "
                f"version computes definition {EVIDENCE_VERSION} (the heart rate from the "
                "trimmed mean RR); train the model again"
            )
        self.method_ = state["method"]
        self.model_ = _load_model(models, state["model_spec"], folder / "beat_model.safetensors")
        self.mi_model_ = (
            None
            if state["mi_spec"] is None
            else _load_model(models, state["mi_spec"], folder / "mi_model.safetensors")
        )
        self.prevalence_ = np.asarray(state["prevalence"], dtype=float)
        self.logistic_ = state["logistic"]
        self.mitdb_counts_ = state["mitdb_counts"]
        self.mi_counts_ = state["mi_counts"]

    def summary(self) -> dict:
        return {
            "config": dataclasses.asdict(self.config),
            "mitdb_beats": getattr(self, "mitdb_counts_", {}),
            "mi_beats": getattr(self, "mi_counts_", {}),
            "scored_from_evidence": sorted(getattr(self, "logistic_", {})),
        }


def _summarise(probs: np.ndarray, mi: np.ndarray, r_all: np.ndarray, fs: float) -> np.ndarray:
    """One record's evidence row from its beats' class probabilities and R peaks."""
    row = dict.fromkeys(EVIDENCE_NAMES, 0.0)
    row["n_beats"] = float(len(r_all))
    if len(r_all) >= 2:
        # the rules' statistics: an alternating rhythm's rate is that of all its beats, not
        # of its more frequent interval
        rr = rr_statistics(r_all, fs)
        hr = rr["hr_bpm"]
        row["heart_rate_bpm"] = hr
        row["rr_cv"] = rr["rr_cv"]
        row["hr_outside_60_100"] = max(0.0, 60.0 - hr, hr - 100.0)
    if len(probs):
        predicted = probs.argmax(axis=1)
        for k, c in enumerate("NSVFQ"):
            row[f"frac_{c}"] = float(np.mean(predicted == k))
        row["n_S"] = float(np.sum(predicted == 1))
        row["n_V"] = float(np.sum(predicted == 2))
        row["mean_prob_S"] = float(probs[:, 1].mean())
        row["mean_prob_V"] = float(probs[:, 2].mean())
        row["max_prob_S"] = float(probs[:, 1].max())
        row["max_prob_V"] = float(probs[:, 2].max())
    finite = len(mi) and np.isfinite(mi).all()
    row["mean_mi_prob"] = float(np.mean(mi)) if finite else NEUTRAL_MI_PROB
    return np.array([row[n] for n in EVIDENCE_NAMES])


def _state_arrays(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def _load_model(models, spec: dict, path: Path):
    import torch

    from team_code.fileio import load_arrays

    model = models.from_spec(spec)
    state = {k: torch.from_numpy(np.array(v)) for k, v in load_arrays(path).items()}
    model.load_state_dict(state)
    model.eval()
    return model
