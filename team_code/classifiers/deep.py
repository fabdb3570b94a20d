"""The base both deep engines (``parallel_cnn``, ``cwt_googlenet``) are built on.

A family says what is its own: the preprocessing (:meth:`DeepClassifier.transform`: a signal
in mV of the task's leads and its sampling rate in, the network's input out, as a picklable
callable), the settings that input depends on (the cache key), the network, its loss and
optional hooks (initialisation, a balanced draw of training rows, augmentation). The base does
the rest, one way for both:

- **Inputs** are computed once per record and kept in the run's per-record cache
  (:func:`team_code.nn.cache.cached_inputs`, keyed by the record's files: their resolved
  paths, sizes and modification times, not their bytes; and by the settings, the task's leads
  and the source of the preprocessing code), shared by every fold and member of a hybrid;
  without a cache folder they are computed in memory. A record that cannot be preprocessed
  is named and left out of training; at inference it raises naming it.
- **Validation split**: ``val_fraction`` of the training records held out, records with
  byte-identical inputs (duplicated recordings) kept on one side.
- **Training**: :func:`team_code.nn.training.fit` (best epoch by validation loss, early
  stopping, mixed precision on CUDA, DDP under ``torchrun``), checkpointing every epoch into
  the run's work folder and resuming from it (``ctx.resume``) only when the checkpoint
  carries this training's key (:func:`team_code.runs.run_key`: the records' contents and
  labels, the config, the task, the kit's version, the part); the hybrid gives each member and
  fold its own folder, so every fold has its own checkpoint. A training that diverges raises
  :class:`team_code.runs.TrainingDiverged` (lower ``lr``).
- **Targets** (``label_mask``, ``source_balance``): which classes a source labels and the
  rates the balance weights even out are learnt from each network's training records alone,
  never from the records it is validated on or scores out of source.
- **Thresholds** on held-out scores, through the decision policy
  (:class:`team_code.classifiers.decision.ThresholdPolicy`, built by
  :meth:`DeepClassifier.threshold_policy`; ``threshold_method`` is one of its names):
  ``"challenge"`` searches the challenge metric starting from the prevalence floor's
  decisions (the classes a constant prediction pays for; only
  classes with ``threshold_min_positives`` positives in the validation split, or
  ``source_min_positives`` among the out-of-source scores, leave them), ``"youden"`` takes
  Youden's J per class. The held-out scores are the validation split's
  (``threshold_split="validation"``), or (``"sources"``, the CPU preset's for
  ``parallel_cnn``) out-of-source scores: each training source scored by a network trained on
  the other sources (a recording released under two sources' names counted with its first
  copy's), early-stopped on that source, a move from the floor kept only where it
  wins the sources' vote (``source_vote``: more sources gain than lose, or a majority gains);
  with ``source_ensemble`` those per-source networks, averaged, are the model.
- **Long records**: a network reads one window (``parallel_cnn``: ``length`` samples at
  ``fs_hz``, 20 s by default; ``cwt_googlenet``: ``rhythm_s`` and its margins, 14 s) and is
  trained on one per record. At inference a record longer than one window
  (:meth:`DeepClassifier.window_s`) is cut into windows (:func:`record_windows`: every
  ``hop`` seconds from the start, the last one ending at the record's end) and each class's
  score is the **maximum** over its windows: a finding present in any part of the record
  (a paroxysmal rhythm, a run of ectopic beats) is what a diagnosis of the record reads,
  and a mean would dilute it by the number of windows. Records within one window are read
  as before. The held-out scores an engine chooses its thresholds on are read the same way,
  so a threshold meets at inference the kind of score it was chosen on. Windows are computed
  when scored, in chunks of bounded size (``WINDOW_CHUNK_BYTES``), and are not cached.
- **Weights** in safetensors (``weights.safetensors``), training facts in JSON.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy.special import expit

from team_code.classifiers.base import Classifier
from team_code.classifiers.cv import source_groups, take
from team_code.classifiers.decision import (
    GROUP_VOTES,
    SCORE_THRESHOLD_POLICIES,
    ThresholdPolicy,
    check_policy_name,
    make_policy,
)
from team_code.classifiers.thresholds import NEVER, prevalence_thresholds
from team_code.context import RunContext, Task, record_names
from team_code.data.records import Record, RecordError, RecordSet, record_source
from team_code.fileio import atomic_write_bytes, load_json, save_json
from team_code.nn.layers import MeanLogits
from team_code.runs import run_key

WEIGHTS_FILE = "weights.safetensors"
#: ``threshold_method``: the decision policies (names in
#: :data:`team_code.classifiers.decision.NAMED_POLICIES`) a deep engine's thresholds take.
THRESHOLD_METHODS = SCORE_THRESHOLD_POLICIES
#: Where the thresholds are chosen: the validation split, or out-of-source scores.
THRESHOLD_SPLITS = ("validation", "sources")
#: Which targets the loss reads: all, or (``"source"``) only the classes a record's source
#: labels at all (a class no record of a source carries is unknown there, not absent).
LABEL_MASKS = ("none", "source")


@dataclasses.dataclass(frozen=True)
class DeepConfig:
    """The options every deep engine shares (training, thresholds, targets, precision, cache);
    a family's config derives from it and adds its own (input, network, augmentation).
    Checked where it is built."""

    epochs: int = 30  # training epochs (the best by validation loss is kept)
    # records (images) per optimiser step; 0: chosen for the device (32 off CUDA; on CUDA the
    # largest power of two up to 256 that fits 60 % of the free memory:
    # team_code.nn.training.choose_batch_size)
    batch_size: int = 32
    lr: float = 1e-4  # Adam learning rate
    weight_decay: float = 0.0  # Adam weight decay
    patience: int = 5  # early stopping after this many epochs without a better val loss (0: never)
    seed: int = 0  # initialisation, split, training draw, shuffling and dropout
    val_fraction: float = 0.2  # training records held out for the best epoch and the thresholds
    # the decision policy of the thresholds (a name in decision.NAMED_POLICIES): "challenge"
    # (the challenge metric searched from the prevalence floor) or "youden" (Youden's J)
    threshold_method: str = "challenge"
    # "validation": thresholds on the validation split's scores; "sources": on out-of-source
    # scores (one network per training source, trained on the others; a move from the floor
    # must win the sources' vote). One source: "validation". See the module docstring.
    threshold_split: str = "validation"
    source_vote: str = "net"  # "sources": "net" (more sources gain than lose) or "majority"
    threshold_min_positives: int = 5  # classes with fewer validation positives keep the floor
    source_min_positives: int = 10  # "sources": fewer out-of-source positives keep the floor
    # "sources" only: predict with the mean logit of the per-source networks (the scores the
    # thresholds were chosen on came from such networks) instead of one network on everything
    source_ensemble: bool = False
    # "source": the loss skips the classes a record's source never labels (unknown there,
    # not absent; source_targets); "none": every class of every record
    label_mask: str = "none"
    # loss weights that give every training source each class at the pooled prevalence, so
    # that telling hospitals apart does not pay (source_balance_weights)
    source_balance: bool = False
    amp: bool = True  # mixed precision on CUDA
    amp_dtype: str = "auto"  # "auto" (bf16 where supported, else fp16), "bf16" or "fp16"
    cache_dtype: str = "float16"  # "float16" or "float32" cached inputs

    def __post_init__(self):
        name = type(self).__name__
        check_policy_name(self.threshold_method, THRESHOLD_METHODS, f"{name} threshold_method")
        for option, value, choices in (
            ("threshold_split", self.threshold_split, THRESHOLD_SPLITS),
            ("source_vote", self.source_vote, GROUP_VOTES),
            ("label_mask", self.label_mask, LABEL_MASKS),
        ):
            if value not in choices:
                raise ValueError(f"{name}: {option} must be one of {choices}, not {value!r}")
        if self.batch_size < 0:
            raise ValueError(
                f"{name}: batch_size must be >= 0 (0: chosen for the device), not {self.batch_size}"
            )


def _fitted(n: int, fit_rows) -> np.ndarray:
    """Positions of the rows to learn from: ``fit_rows``, or all ``n``."""
    return np.arange(n) if fit_rows is None else np.asarray(fit_rows, dtype=int)


def source_targets(
    truth: np.ndarray, sources: np.ndarray, mask: str = "source", fit_rows=None
) -> np.ndarray:
    """Training targets (float32): ``truth``, with NaN (unknown) where a record's source has
    no record of a class that other sources have (``mask="source"``; ``"none"``: ``truth`` as
    it is). A class no source has stays negative, and one source masks nothing. Which classes
    each source has is read from the ``fit_rows`` alone (all rows when None) and applied to
    every row: a source with no row among them masks nothing.

    The Challenge's hospitals label different subsets of the classes (CPSC's records carry
    nine of them: no axis deviation, no bradycardia): a CPSC record with left axis deviation
    is not labelled so because CPSC never labels axes, and a network taught that it is negative
    learns to tell hospitals apart instead of axes. The loss skips unknown targets
    (:func:`masked_bce_with_logits`)."""
    if mask not in LABEL_MASKS:
        raise ValueError(f"label_mask must be one of {LABEL_MASKS}, not {mask!r}")
    targets = np.asarray(truth, dtype=np.float32).copy()
    if mask == "none":
        return targets
    sources = np.asarray(sources)
    fit = _fitted(len(targets), fit_rows)
    known = np.asarray(truth, dtype=np.float32)[fit]
    anywhere = known.sum(axis=0) > 0
    for source in np.unique(sources[fit]):
        rows = np.flatnonzero(sources == source)
        unlabelled = np.flatnonzero((known[sources[fit] == source].sum(axis=0) == 0) & anywhere)
        targets[np.ix_(rows, unlabelled)] = np.nan
    return targets


#: Largest weight (and smallest, its inverse) :func:`source_balance_weights` gives.
MAX_SOURCE_WEIGHT = 10.0


def source_balance_weights(
    targets: np.ndarray, sources: np.ndarray, cap: float = MAX_SOURCE_WEIGHT, fit_rows=None
) -> np.ndarray:
    """Per-target loss weights under which every source shows each class at its pooled
    prevalence (over the sources' known targets): positives of a source weigh
    ``p / p_source``, negatives ``(1 - p) / (1 - p_source)``, bounded to ``[1/cap, cap]``;
    unknown (NaN) targets weigh 0. The rates are those of the ``fit_rows`` (all rows when
    None); a source with no row among them weighs 1.

    Sinus rhythm is 13 % of CPSC's records and 68 % of LUDB's: a network that can tell the
    hospitals apart lowers its loss by learning each hospital's rate instead of the rhythm,
    and on a hospital it never saw its scores sit at a level no threshold chosen elsewhere
    fits. With the rates evened out, knowing the hospital tells the loss nothing."""
    targets = np.asarray(targets, dtype=np.float64)
    sources = np.asarray(sources)
    known = ~np.isnan(targets)
    labels = np.where(known, targets, 0.0)
    fit = np.zeros(len(targets), dtype=bool)
    fit[_fitted(len(targets), fit_rows)] = True
    pooled = labels[fit].sum(axis=0) / np.maximum(known[fit].sum(axis=0), 1)
    weights = np.where(known, 1.0, 0.0).astype(np.float32)
    for source in np.unique(sources[fit]):
        rows = sources == source
        n_known = known[rows & fit].sum(axis=0)
        rate = labels[rows & fit].sum(axis=0) / np.maximum(n_known, 1)
        positive = np.divide(pooled, rate, out=np.ones_like(rate), where=rate > 0)
        negative = np.divide(1 - pooled, 1 - rate, out=np.ones_like(rate), where=rate < 1)
        w = np.where(labels[rows] > 0, positive, negative)
        weights[rows] = np.where(known[rows], np.clip(w, 1 / cap, cap), 0.0)
    return weights


def masked_bce_with_logits(logits, targets):
    """Binary cross-entropy over the known targets (NaN: unknown, skipped), their mean; 0 for
    a batch with none known. Where every target is known it is ``BCEWithLogitsLoss()``'s
    own computation, to the last bit. Targets of shape ``(batch, 2, classes)`` carry labels
    and per-target weights (:func:`source_balance_weights`): the weighted mean."""
    import torch
    import torch.nn.functional as F

    if targets.dim() == logits.dim() + 1:
        targets, weights = targets[:, 0], targets[:, 1]
    else:
        if not torch.isnan(targets).any():
            return F.binary_cross_entropy_with_logits(logits, targets)
        weights = torch.ones_like(targets)
    known = ~torch.isnan(targets)
    weights = torch.where(known, weights, torch.zeros_like(weights))
    losses = F.binary_cross_entropy_with_logits(
        logits, torch.where(known, targets, torch.zeros_like(targets)), reduction="none"
    )
    return (losses * weights).sum() / weights.sum().clamp_min(1e-12)


WINDOW_CHUNK_BYTES = 64 << 20  # long records' window inputs held at once while scoring them


def record_input(record: Record, leads: tuple[str, ...], transform: Callable) -> np.ndarray:
    """The network input of one record: ``transform(signal_mv, fs)`` on ``leads``; a missing
    lead or a ``ValueError`` of the transform raises :class:`RecordError` naming the record."""
    return record_window_inputs(record, leads, transform)[0]


def record_windows(signal_mv: np.ndarray, fs: float, window_s: float, hop_s: float) -> list:
    """Windows of ``window_s`` seconds of ``signal_mv`` (leads x samples), one every ``hop_s``
    seconds from the start and the last ending at the record's end; the whole signal when it
    is no longer than one window."""
    n = signal_mv.shape[-1]
    width, hop = int(round(window_s * fs)), max(1, int(round(hop_s * fs)))
    if n <= width:
        return [signal_mv]
    starts = list(range(0, n - width + 1, hop))
    if starts[-1] != n - width:
        starts.append(n - width)
    return [signal_mv[..., s : s + width] for s in starts]


def record_window_inputs(
    record: Record, leads: tuple[str, ...], transform: Callable, window=None
) -> list[np.ndarray]:
    """The network inputs of one record: ``transform(signal_mv, fs)`` of the whole record on
    ``leads``, or with ``window`` (``(window_s, hop_s)``) of each of its windows
    (:func:`record_windows`); a missing lead or a ``ValueError`` of the transform raises
    :class:`RecordError` naming the record."""
    return list(iter_window_inputs(record, leads, transform, window))


def iter_window_inputs(record: Record, leads: tuple[str, ...], transform: Callable, window=None):
    """:func:`record_window_inputs` one input at a time: a record of many windows (a Holter
    recording) never holds more than one transformed window."""
    signal_mv = record.select_leads(leads)
    parts = [signal_mv] if window is None else record_windows(signal_mv, record.fs, *window)
    for part in parts:
        try:
            yield transform(part, record.fs)
        except ValueError as error:
            raise RecordError(record.name, str(error)) from None


def signal_groups(array: Sequence[np.ndarray]) -> np.ndarray:
    """Group ids: rows with byte-identical contents share one (duplicated recordings); rows
    are read one at a time."""
    seen: dict[bytes, int] = {}
    groups = np.empty(len(array), dtype=int)
    for i in range(len(array)):
        digest = hashlib.blake2b(np.ascontiguousarray(array[i]).tobytes(), digest_size=16)
        groups[i] = seen.setdefault(digest.digest(), len(seen))
    return groups


def group_split(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions: about ``fraction`` of the groups held out, whole."""
    unique = np.unique(groups)
    n_val = int(round(fraction * len(unique)))
    if fraction <= 0 or n_val == 0 or n_val >= len(unique):
        return np.arange(len(groups)), np.zeros(0, dtype=int)
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(unique)[:n_val].tolist())
    in_val = np.array([g in held for g in groups])
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def floor_thresholds(truth: np.ndarray, classes, scored=None) -> np.ndarray:
    """The prevalence floor as thresholds: 0 (every record) for the classes that a constant
    prediction pays for on ``truth`` under the challenge metric, "never" for the others.

    The challenge-metric search of the held-out thresholds starts here, so that a class
    leaves the floor's decision only where the network's scores pay on the held-out split
    (and only for classes with 5+ held-out positives): on sources the network never saw, a
    class it cannot tell apart falls back to the floor, not to a threshold fitted to noise.
    """
    prevalence, chosen = prevalence_thresholds(truth, classes, scored)
    return np.where(prevalence >= chosen, 0.0, NEVER)


def json_safe(value):
    """Non-finite floats (a NaN validation loss without a validation set) become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class DeepClassifier(Classifier):
    """A network over one preprocessed input per record; see the module docstring.

    A family's ``Config`` derives from :class:`DeepConfig`. A ``batch_size`` of 0 leaves it
    to the device: :data:`~team_code.nn.training.CPU_BATCH_SIZE` off CUDA, on CUDA the largest
    that fits (:func:`~team_code.nn.training.choose_batch_size`); the training summary records
    the batch size and why.
    """

    Config: ClassVar[type[DeepConfig]] = DeepConfig
    config: DeepConfig

    #: Modules whose source the preprocessing runs (part of the cache key).
    INPUT_CODE: ClassVar[tuple[str, ...]] = ()
    #: JSON file of the training facts.
    STATE_FILE: ClassVar[str] = "training.json"
    #: Name of the preprocessing pass in progress output.
    INPUT_NAME: ClassVar[str] = "preprocessing"

    def __init__(self, config: DeepConfig | None = None):
        super().__init__(config)
        if not isinstance(self.config, self.Config):
            raise TypeError(
                f"{self.name}: config must be a {self.Config.__name__}, "
                f"not {type(self.config).__name__}"
            )

    # -- what a family defines ---------------------------------------------------------------
    def transform(self) -> Callable[[np.ndarray, float], np.ndarray]:
        """A picklable ``f(signal_mv, fs) -> input`` (signal: the task's leads x samples)."""
        raise NotImplementedError

    def input_settings(self) -> dict:
        """Everything the input depends on besides the leads (part of the cache key)."""
        raise NotImplementedError

    def build_network(self):
        """A new network for ``len(self.classes_)`` outputs and ``len(self.task_.leads)`` leads."""
        raise NotImplementedError

    def loss(self) -> Callable:
        """``loss(outputs, targets)``: the training loss; NaN targets are unknown (see
        ``label_mask``) and must be skipped."""
        return masked_bce_with_logits

    def prepare_network(self, network, targets_train: np.ndarray) -> None:
        """Before training (initialisation from the training targets, NaN where unknown;
        pretrained weights)."""

    def training_draw(self, truth_train: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Positions into the training rows to train on (repeats allowed); all by default."""
        return np.arange(len(truth_train))

    def augmentation(self) -> Callable | None:
        """A transform of each training input (None: none)."""
        return None

    def sample_weights(self, truth_train: np.ndarray) -> np.ndarray | None:
        """Per-row weights for drawing batches (with ``balanced_sampling``); None: uniform."""
        return None

    def train_overrides(self) -> dict:
        """Family options of :class:`team_code.nn.training.TrainConfig` beyond the common."""
        return {}

    def extra_state(self) -> dict:
        """JSON facts the family saves beside the weights."""
        return {}

    def set_extra_state(self, state: dict) -> None:
        """Read back :meth:`extra_state` (before the network is built)."""

    def input_leads(self) -> tuple[str, ...]:
        """The leads the input is made of: the task's (a family may keep a subset)."""
        return tuple(self.task_.leads)

    def window_s(self) -> tuple[float, float] | None:
        """(window, hop) in seconds of the record a network input reads; a longer record is
        scored from all its windows (module docstring). None: the whole record."""
        return None

    # -- shared ------------------------------------------------------------------------------
    def preprocess(self) -> Callable[[Record], np.ndarray]:
        """The picklable per-record preprocessing: the input leads through :meth:`transform`."""
        return functools.partial(record_input, leads=self.input_leads(), transform=self.transform())

    def cache_settings(self) -> dict:
        return {**self.input_settings(), "leads": list(self.input_leads())}

    def train_config(self):
        """The training loop's options: the model's, and the run's device, workers, progress."""
        from team_code.nn.training import CPU_BATCH_SIZE, TrainConfig

        c = self.config
        return TrainConfig(
            epochs=c.epochs,
            batch_size=c.batch_size or CPU_BATCH_SIZE,
            device_batch=c.batch_size == 0,  # 0: chosen for the device (training.py)
            lr=c.lr,
            weight_decay=c.weight_decay,
            patience=c.patience,
            seed=c.seed,
            amp=c.amp,
            amp_dtype=c.amp_dtype,
            device=self.ctx.device,
            num_workers=self.ctx.loader_workers,
            progress=self.ctx.progress,
            **self.train_overrides(),
        )

    def cached_inputs(self, records: Sequence[Record], progress: bool | None = None):
        """Inputs of ``records`` through the run's per-record cache (in memory without one)."""
        from team_code.nn.cache import cached_inputs

        return cached_inputs(
            records,
            self.preprocess(),
            self.cache_settings(),
            cache_dir=self.ctx.cache_option(),
            dtype=self.config.cache_dtype,
            num_workers=self.ctx.preprocess_workers(),
            code=self.INPUT_CODE,
            progress=self.ctx.progress if progress is None else progress,
            desc=self.INPUT_NAME,
            log=self.ctx.log,
        )

    def inputs(self, records: Sequence[Record]) -> Sequence[np.ndarray]:
        """Network inputs of ``records``, read one batch at a time: from the run's cache when
        there is one (the hybrid's held-out folds, which later folds and the refit reuse), else
        preprocessed as read."""
        from team_code.nn.cache import ComputedRows

        if isinstance(records, RecordSet) and self.ctx.cache is not None:
            stored = self.cached_inputs(records, progress=False)
            stored.raise_failures(f"{self.name} cannot preprocess it")
            return stored.items
        return ComputedRows(records, self.preprocess())

    def _scores(self, dataset, network=None) -> np.ndarray:
        from team_code.nn.training import predict

        network = self.network_ if network is None else network
        logits = predict(network, dataset, self.train_config())
        return expit(np.asarray(logits, dtype=np.float64))

    def threshold_policy(self, truth_floor: np.ndarray, by_source: bool) -> ThresholdPolicy:
        """The decision policy of the thresholds (``threshold_method``): ``"challenge"``
        searches from the prevalence floor of ``truth_floor``, leaving it only for classes
        with ``threshold_min_positives`` held-out positives (``by_source``, out-of-source
        scores: ``source_min_positives``, and a move must win the sources' ``source_vote``);
        ``"youden"`` reads none of these."""
        c = self.config
        policy = make_policy(
            c.threshold_method,
            start=floor_thresholds(truth_floor, self.classes_, self.task_.scored),
            min_positives=c.source_min_positives if by_source else c.threshold_min_positives,
            vote=c.source_vote if by_source else None,
        )
        assert isinstance(policy, ThresholdPolicy)  # THRESHOLD_METHODS are threshold policies
        return policy

    def choose_thresholds(self, truth_held, scores, truth_floor, groups=None) -> np.ndarray:
        """The thresholds of :meth:`threshold_policy` fitted on held-out ``scores`` and their
        truth; ``groups``: the sources of out-of-source scores (None: the validation split's)."""
        policy = self.threshold_policy(truth_floor, by_source=groups is not None)
        return policy.fit(scores, truth_held, groups, self.task_).thresholds_

    def fit(self, records: Sequence[Record], task: Task, ctx: RunContext | None = None):
        """Preprocess (cached), split, train with checkpoints, choose held-out thresholds."""
        from team_code.nn import distributed
        from team_code.nn.device import pick_device

        c = self.config
        self._begin(task, ctx)
        distributed.setup(pick_device(self.ctx.device))
        truth_all = self.label_matrix(records)
        stored = self.cached_inputs(records)
        if len(stored) == 0:
            raise ValueError(f"{self.name}: no record could be preprocessed for training")
        truth = truth_all[stored.kept]
        names = record_names(records)
        sources = np.array([record_source(names[i]) for i in stored.kept])
        signals = signal_groups(stored.items)
        train_rows, val_rows = group_split(signals, c.val_fraction, c.seed)
        # the held-out sources: a recording released under two sources' names (A0101 =
        # Q0048) counts with its first copy's source, so no network scores a twin of its own
        # training records
        held_groups = np.array(source_groups(sources.tolist(), signals.tolist()))
        by_source = c.threshold_split == "sources" and len(np.unique(held_groups)) > 1
        self._run_key = run_key(self.name, c, task, records)
        members = []
        if by_source:  # every training source scored by a network trained on the others
            held_scores = np.zeros(truth.shape)
            for source in np.unique(held_groups):
                held = np.flatnonzero(held_groups == source)
                rest = np.flatnonzero(held_groups != source)
                targets = self.training_targets(truth, sources, rest)
                part = f"source-{source}"
                network, result = self._train(stored, truth, targets, rest, held, part)
                held_scores[held] = self._held_out_scores(records, stored, held, network)
                members.append((network, result))
        if by_source and c.source_ensemble:
            network, result = MeanLogits([m for m, _ in members]), members[-1][1]
            train_rows, val_rows = np.arange(len(truth)), np.zeros(0, dtype=int)
        else:
            targets = self.training_targets(truth, sources, train_rows)
            network, result = self._train(stored, truth, targets, train_rows, val_rows)
        self.network_ = network

        if by_source:  # the floor and the search both on the out-of-source scores
            held_out = floor_rows = np.arange(len(truth))
            scores, groups, thresholds_from = held_scores, held_groups, "other sources"
        elif val_rows.size:
            held_out, floor_rows = val_rows, train_rows
            scores = self._held_out_scores(records, stored, held_out, network)
            groups, thresholds_from = None, "validation"
        else:
            # no held-out records (val_fraction 0, or too few distinct signals to split):
            # thresholds searched on the training records' own scores would be read off the
            # scores they were fitted to, so every class keeps the network's 0.5
            self.ctx.log(f"{self.name}: no validation split; thresholds 0.5 (nothing held out)")
            held_out, thresholds_from = None, "none held out (0.5)"
        self.thresholds_ = (
            np.full(len(self.classes_), 0.5)
            if held_out is None
            else self.choose_thresholds(truth[held_out], scores, truth[floor_rows], groups)
        )
        self.fit_summary_ = json_safe(
            {
                "n_records": len(records),
                "n_train": int(train_rows.size),
                "n_val": int(val_rows.size),
                "thresholds_from": thresholds_from,
                "left_out": [{"record": r, "problem": p} for r, p in stored.failures],
                "best_epoch": result.best_epoch,
                "best_loss": result.best_loss,
                "stopped_early": result.stopped_early,
                "batch_size": result.batch_size,
                "batch_size_rule": result.batch_rule,
                "history": result.history,
                "n_parameters": sum(p.numel() for p in network.parameters() if p.requires_grad),
            }
        )
        if isinstance(network, MeanLogits):
            self.fit_summary_["ensemble_members"] = len(network.members)
            self.fit_summary_["member_best_epochs"] = [r.best_epoch for _, r in members]
        return self

    def training_targets(self, truth: np.ndarray, sources: np.ndarray, train_rows) -> np.ndarray:
        """The loss's targets of every row, learnt from ``train_rows`` alone: ``truth`` with
        NaN where the source does not label a class (``label_mask``), stacked with the loss
        weights (``(records, 2, classes)``) where ``source_balance`` weighs any target."""
        c = self.config
        targets = source_targets(truth, sources, c.label_mask, train_rows)
        if not c.source_balance:
            return targets
        weights = source_balance_weights(targets, sources, fit_rows=train_rows)
        if np.any(weights[~np.isnan(targets)] != 1):
            targets = np.stack([targets, weights], axis=1)  # labels and weights
        return targets

    def _train(self, stored, truth, targets, train_rows, val_rows, part: str | None = None):
        """A network trained on ``train_rows`` (the family's draw of them) towards
        ``targets`` (``truth`` with NaN where unknown; with ``source_balance`` stacked with
        the loss weights, ``(records, 2, classes)``), its best epoch chosen on ``val_rows``;
        checkpoints in the run's work folder (a child ``part`` for the per-source networks).
        Returns the network (on the CPU, in eval mode) and the training's result."""
        from team_code.nn.cache import SignalDataset
        from team_code.nn.training import fit, set_seed

        c = self.config
        ctx = self.ctx.child(part) if part else self.ctx
        rng = np.random.default_rng(c.seed)
        drawn = train_rows[self.training_draw(truth[train_rows], rng)]
        if drawn.size == 0:
            raise ValueError(f"{self.name}: the training draw is empty")
        set_seed(c.seed)
        network = self.build_network()
        labels = targets[:, 0] if targets.ndim == 3 else targets
        self.prepare_network(network, labels[train_rows])
        y = targets
        train_set = SignalDataset(stored.items, y[drawn], rows=drawn, transform=self.augmentation())
        val_set = SignalDataset(stored.items, y[val_rows], rows=val_rows) if val_rows.size else None
        result = fit(
            network,
            train_set,
            val_set,
            self.loss(),
            self.train_config(),
            workdir=ctx.workdir,
            resume=ctx.checkpoint(),
            sample_weights=self.sample_weights(truth[drawn]),
            log=ctx.log,
            key=f"{self._run_key}:{part or 'all'}",
            name=self.name,
            part=part or "all records",
            hint=f"lower --set {self.name}.lr= (now {c.lr:g})",
        )
        return network.cpu().eval(), result

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        """Sigmoid outputs, (n_records, n_classes)."""
        from team_code.nn.cache import SignalDataset

        scores = np.zeros((len(records), len(self.classes_)))
        longer = self._longer_than_a_window(records)
        if longer.size:  # scored from all their windows, not from the one input of the others
            scores[longer] = self._window_scores(take(records, longer))  # read one at a time
        within = np.setdiff1d(np.arange(len(records)), longer)
        if within.size:
            scores[within] = self._scores(SignalDataset(self.inputs(take(records, within))))
        return np.clip(scores, 0.0, 1.0)

    def _longer_than_a_window(self, records: Sequence[Record]) -> np.ndarray:
        """Positions of the records longer than one window (:meth:`window_s`)."""
        window = self.window_s()
        if window is None:
            return np.zeros(0, dtype=int)
        if isinstance(records, RecordSet):
            sizes = [(h.n_samples, h.fs) for h in records.headers]
        else:
            sizes = [(r.signal.shape[-1], r.fs) for r in records]
        return np.array(
            [i for i, (n, fs) in enumerate(sizes) if n is None or n > round(window[0] * fs)],
            dtype=int,
        )

    def _held_out_scores(self, records, stored, rows: np.ndarray, network) -> np.ndarray:
        """Scores of the preprocessed records at ``rows`` (positions in ``stored``) as
        :meth:`predict_proba` gives them with ``network``: the cached input of a record within
        one window, the maximum over all its windows for a longer one (its cached input's score
        where a window cannot be read). The thresholds are chosen on these, so they meet at
        inference the scores they were chosen on."""
        from team_code.nn.cache import SignalDataset

        scores = self._scores(SignalDataset(stored.items, rows=rows), network)
        held = take(records, [int(stored.kept[r]) for r in rows])
        longer = self._longer_than_a_window(held)
        try:
            if longer.size:
                scores[longer] = self._window_scores(take(held, longer), network)
        except (RecordError, ValueError, OSError):  # find the records at fault, one at a time
            names = record_names(held)
            for i in longer:
                try:  # reading the record (a RecordSet's) can fail as well as its windows
                    scores[i] = self._window_scores(take(held, [i]), network)[0]
                except (RecordError, ValueError, OSError) as error:  # its cached input's score
                    self.ctx.log(f"{self.name}: {names[i]}: scored from one window ({error})")
        return scores

    def _window_scores(self, records: Sequence[Record], network=None) -> np.ndarray:
        """Each record's scores: the maximum over its windows' scores. Windows are scored in
        chunks of at most :data:`WINDOW_CHUNK_BYTES` of inputs, so host memory does not grow
        with the number of long records or with their length."""
        from team_code.nn.cache import SignalDataset

        pooled = np.full((len(records), len(self.classes_)), -np.inf)
        chunk: list[np.ndarray] = []
        owner: list[int] = []

        def score_chunk() -> None:
            scores = self._scores(SignalDataset(np.stack(chunk)), network)
            np.maximum.at(pooled, np.asarray(owner), scores)
            chunk.clear()
            owner.clear()

        limit = 0
        for i, record in enumerate(records):
            for part in iter_window_inputs(
                record, self.input_leads(), self.transform(), self.window_s()
            ):
                chunk.append(part)
                owner.append(i)
                limit = limit or max(1, WINDOW_CHUNK_BYTES // max(1, part.nbytes))
                if len(chunk) >= limit:
                    score_chunk()
        if chunk:
            score_chunk()
        return pooled

    # -- persistence -------------------------------------------------------------------------
    def save(self, folder) -> None:
        """Write config, thresholds and weights (rank 0 only under torchrun)."""
        from team_code.nn import distributed

        if distributed.is_main():
            super().save(folder)

    def _save_state(self, folder: Path) -> None:
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in self.network_.state_dict().items()}
        atomic_write_bytes(folder / WEIGHTS_FILE, save(state))
        save_json(
            folder / self.STATE_FILE,
            {"training": getattr(self, "fit_summary_", {}), **self.extra_state()},
        )

    def _load_state(self, folder: Path) -> None:
        from safetensors.torch import load

        if not (folder / WEIGHTS_FILE).is_file():
            raise ValueError(
                f"{folder}: no {WEIGHTS_FILE}; a {self.name} model saved by an earlier version "
                "of the kit (its weights were stored otherwise): train it again"
            )
        meta = load_json(folder / self.STATE_FILE) if (folder / self.STATE_FILE).is_file() else {}
        self.fit_summary_ = meta.get("training", {})
        self.set_extra_state(meta)
        n_members = int(self.fit_summary_.get("ensemble_members", 0) or 0)
        if n_members:
            network = MeanLogits([self.build_network() for _ in range(n_members)])
        else:
            network = self.build_network()
        network.load_state_dict(load((folder / WEIGHTS_FILE).read_bytes()))
        network.eval()
        self.network_ = network

    def summary(self) -> dict:
        """Config, task and the training run's figures (less the per-epoch history)."""
        training = {k: v for k, v in getattr(self, "fit_summary_", {}).items() if k != "history"}
        return {**super().summary(), **self.extra_state(), "training": training}


__all__ = [
    "LABEL_MASKS",
    "WEIGHTS_FILE",
    "WINDOW_CHUNK_BYTES",
    "DeepClassifier",
    "DeepConfig",
    "floor_thresholds",
    "group_split",
    "iter_window_inputs",
    "json_safe",
    "masked_bce_with_logits",
    "record_input",
    "record_window_inputs",
    "record_windows",
    "signal_groups",
    "source_balance_weights",
    "source_targets",
]
