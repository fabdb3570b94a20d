"""The parallel 1D-CNN of Pardasani and Awasthi (Challenge 2020): one branch per scored class.

Each branch is a 1D CNN over all 12 leads at 500 Hz, trimmed or wrap-padded to ``length``
samples (10,000 in the paper). The paper's branch:

    Conv(k=11, s=5, 64) + ReLU + Dropout(0.3) + BatchNorm
    n_blocks x [Conv(k=5, s=2, 64) + ReLU + Dropout(0.3) + BatchNorm]
    Conv(k=3, s=1, 1), Flatten, Dropout(0.3), Dense(1) + sigmoid

The kit's default departs from it in three places, because the paper's layout does not learn
at the sizes this kit is trained and checked at (on 240 synthetic records with planted, easy
classes its training loss stayed at the prior's, 0.1894 -> 0.1886 over 6 epochs):

- ``conv_dropout=0`` (paper 0.3): dropout placed before every BatchNorm makes the statistics a
  layer is normalised with in training differ from those at inference (the "variance shift"
  of Li et al., CVPR 2019), and eight layers of 30 % dropout drown the signal: with it alone
  removed, the same run learns (training loss 0.155 after 6 epochs). Dropout stays before
  the dense layer, after the last BatchNorm, where it does no such harm.
- ``head="pool"`` (paper ``"dense"``): the paper's dense layer gives a weight to every time
  step, so a feature must be learnt again at every position a beat can fall; a global mean
  and maximum over time of each channel (2 x ``filters`` numbers per branch) is translation
  invariant, and a rhythm, an axis or a PVC anywhere in the record reads the same. On 300
  synthetic records: challenge metric 0.48 -> 0.72 on 150 unseen ones.
- ``highpass_hz=0.5`` (paper: none): baseline wander is removed before the network (the
  kit's zero-phase Butterworth, :func:`team_code.dsp.filters.remove_baseline`): 0.72 -> 0.81.

``--set parallel_cnn.conv_dropout=0.3 --set parallel_cnn.head=dense --set
parallel_cnn.highpass_hz=0`` restores the paper's layout. All convolutions are unpadded
('valid'). At 10,000 samples the lengths run 1998, 997, 497, 247, 122, 59, 28, 12 after 7
blocks, and the paper's head convolution leaves 10 steps (the paper's "13" is not reached
exactly by unpadded convolutions; 7 blocks is the closest). With the paper's head our reading
gives 153,548 trainable parameters per branch, 3,685,152 for the 24 scored classes (3,709,728
counting the BatchNorm running statistics, as Keras does; 4,145,796 trainable for 27 unmerged
classes): the paper quotes about 3.8 M. Fewer blocks are used when ``length`` is too short for
``n_blocks``.

The branches run as one batched computation: the stem is one convolution with
``n_classes * filters`` output channels (each branch sees every lead), the blocks are grouped
convolutions (``groups = n_classes``) with BatchNorm over ``n_classes * filters`` channels, the
head is a grouped convolution to one channel per class (or the pooled channels of each branch)
and the dense layers are a :class:`~team_code.nn.layers.GroupedLinear`.
:func:`grouped_from_branches` copies separate branch modules into the batched one; their
outputs agree to float rounding.

Training as in the paper: binary cross-entropy, Adam at 1e-4, gradient clipping at 0.5, small
L1/L2 penalties, the best epoch by validation loss. Unlike the paper (thresholds read off the
training set: 0.342 on validation, 0.077 on test), the per-class thresholds are chosen on the
held-out validation split, by Youden's J or by the challenge metric (``threshold_method``);
with ``threshold_split="sources"`` (the CPU preset) they are chosen on out-of-source scores
instead: each training source scored by a network trained on the other sources, a class
leaving the floor's decision only where that pays on more of these sources than it costs on.
The validation split keeps records with identical preprocessed signals together. Also not in
the paper: each branch's output bias starts at its class's training prevalence.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from team_code.classifiers.base import Classifier, record_labels
from team_code.classifiers.thresholds import (
    NEVER,
    challenge_thresholds,
    prevalence_thresholds,
    youden_thresholds,
)
from team_code.data.labels import label_matrix
from team_code.data.records import STANDARD_LEADS, Record, record_source
from team_code.fileio import atomic_write_bytes, load_json, save_json
from team_code.nn.layers import AmplitudeScale, GroupedLinear, MeanLogits

WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "parallel_cnn.json"
#: Bump when preprocessing changes, so old cache files are not reused.
PREPROCESS_VERSION = "parallel_cnn/1"
#: Input scalings of the network: volts as recorded, or over a robust amplitude of the record
#: (all leads) or of each lead (:class:`~team_code.nn.layers.AmplitudeScale`).
INPUT_SCALES = ("none", "record", "lead")
#: Modules whose source the preprocessing runs (part of the cache key).
PREPROCESS_CODE = ("team_code.dsp.resample", "team_code.dsp.filters")


@dataclasses.dataclass(frozen=True)
class ParallelCNNConfig:
    """Options of the parallel 1D-CNN classifier."""

    fs_hz: float = 500.0  # sampling rate the network sees; records are resampled to it
    length: int = 10000  # samples per lead after trimming or wrap-padding
    filters: int = 64  # channels per branch
    n_blocks: int = 7  # Conv(k=5, s=2) blocks per branch (fewer if the input is too short)
    dropout: float = 0.3  # dropout before the dense layer
    conv_dropout: float = 0.0  # dropout after each convolution, before its BatchNorm (paper 0.3)
    head: str = "pool"  # "pool": global mean + max over time; "dense": the paper's flatten
    highpass_hz: float = 0.5  # baseline-wander high-pass before the network (0: none, paper)
    input_scale: str = "none"  # "none" (mV), "record" or "lead" (over a robust amplitude)
    augment_gain: float = 0.0  # inputs scaled by exp(N(0, this)); blurs low voltage (0: none)
    augment_shift: bool = False  # training inputs rolled by a random number of samples
    epochs: int = 30  # training epochs
    batch_size: int = 32  # records per step
    lr: float = 1e-4  # Adam learning rate
    grad_clip: float = 0.5  # global gradient-norm clipping
    l1: float = 1e-6  # L1 penalty on weights
    l2: float = 1e-5  # L2 penalty on weights
    weight_decay: float = 0.0  # Adam weight decay
    lr_decay_rate: float = 1.0  # exponential lr decay per lr_decay_steps steps (1: none)
    lr_decay_steps: int = 0  # steps per decay (0: constant lr)
    patience: int = 5  # early stopping on the validation loss (0: never)
    seed: int = 0  # initialisation, split, shuffling and dropout
    val_fraction: float = 0.2  # held-out share for the best epoch and the thresholds
    threshold_method: str = "challenge"  # "challenge" (metric search from the floor) or "youden"
    # "validation": thresholds on the validation split's scores; "sources": on out-of-source
    # scores (one network per training source, trained on the others; a move from the floor
    # must pay on more of those sources than it costs on). One source: "validation".
    threshold_split: str = "validation"
    source_vote: str = "net"  # "sources": "net" (more sources gain than lose) or "majority"
    threshold_min_positives: int = 5  # classes with fewer held-out positives keep the floor
    # "sources" only: predict with the mean logit of the per-source networks (the scores the
    # thresholds were chosen on came from such networks) instead of one network on everything
    source_ensemble: bool = False
    balanced_sampling: bool = False  # draw training records so that classes even out
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"
    amp: bool = True  # mixed precision on CUDA
    amp_dtype: str = "auto"  # "auto" (bf16 where supported, else fp16), "bf16" or "fp16"
    num_workers: int = 0  # processes for preprocessing and data loading
    cache_dir: str = ""  # per-record input cache ("": $ECG_KIT_CACHE, else in memory)
    cache_dtype: str = "float16"  # "float16" or "float32" cache files
    workdir: str = ""  # folder for checkpoint.pt and history.csv ("": none)
    resume: str = ""  # checkpoint (or workdir) to resume training from ("": start afresh)
    progress: bool = True  # progress bars on stderr


# --------------------------------------------------------------------------------------------
# Preprocessing


def fix_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Trim to the first ``length`` samples, or repeat the signal from its start (wrap-pad)."""
    n = signal.shape[-1]
    if n == 0:
        raise ValueError("signal has no samples")
    if n >= length:
        return signal[..., :length]
    return np.take(signal, np.arange(length) % n, axis=-1)


def preprocess_record(
    record: Record, fs_hz: float = 500.0, length: int = 10000, highpass_hz: float = 0.0
) -> np.ndarray:
    """The 12 standard leads in mV, resampled to ``fs_hz`` and fixed to ``length`` samples."""
    from team_code.dsp.resample import resample

    signal_mv = record.select_leads(STANDARD_LEADS)
    signal_mv = resample(signal_mv, record.fs, fs_hz, axis=-1)
    if highpass_hz > 0:
        from team_code.dsp.filters import remove_baseline

        signal_mv = remove_baseline(signal_mv, fs_hz, cutoff_hz=highpass_hz)
    return fix_length(signal_mv, length).astype(np.float32, copy=False)


def stack_lengths(length: int, n_blocks: int) -> list[int]:
    """Sequence lengths after the stem and each block that fits (unpadded convolutions).

    Blocks stop when the next one would leave fewer than 3 steps (the head needs 3).
    """
    if length < 11 + 5 * 2:
        raise ValueError(f"length {length} is too short for the network (at least 21 samples)")
    lengths = [(length - 11) // 5 + 1]
    for _ in range(n_blocks):
        following = (lengths[-1] - 5) // 2 + 1
        if following < 3:
            break
        lengths.append(following)
    return lengths


# --------------------------------------------------------------------------------------------
# Networks


class ParallelCNN(nn.Module):
    """One 1D-CNN branch per class, all branches in grouped layers.

    Input (batch, n_leads, length) in mV; output logits (batch, n_classes). With
    ``n_classes=1`` this is one separate branch. The 1D convolutions are computed as 2D ones
    over a height of 1 (kernels ``(1, k)``) in the channels-last layout, which oneDNN runs about
    three times faster than grouped ``Conv1d`` on a CPU; the arithmetic is that of ``Conv1d``.
    """

    def __init__(
        self,
        n_classes: int,
        length: int,
        filters: int = 64,
        n_blocks: int = 7,
        dropout: float = 0.3,
        n_leads: int = 12,
        channels_last: bool = True,
        conv_dropout: float | None = None,
        head: str = "dense",
        input_scale: str = "none",
    ):
        super().__init__()
        if input_scale not in INPUT_SCALES:
            raise ValueError(f"input_scale must be one of {INPUT_SCALES}, not {input_scale!r}")
        self.scale = AmplitudeScale(per_lead=True) if input_scale == "lead" else None
        if input_scale == "record":
            self.scale = AmplitudeScale(per_lead=False)
        lengths = stack_lengths(length, n_blocks)
        channels = n_classes * filters
        self.n_classes = n_classes
        self.lengths = lengths
        self.channels_last = channels_last
        conv_dropout = dropout if conv_dropout is None else conv_dropout
        self.stem = nn.Sequential(
            nn.Conv2d(n_leads, channels, kernel_size=(1, 11), stride=(1, 5)),
            nn.ReLU(inplace=True),
            nn.Dropout(conv_dropout),
            nn.BatchNorm2d(channels),
        )
        self.blocks = nn.Sequential(
            *[
                nn.Sequential(
                    nn.Conv2d(channels, channels, (1, 5), stride=(1, 2), groups=n_classes),
                    nn.ReLU(inplace=True),
                    nn.Dropout(conv_dropout),
                    nn.BatchNorm2d(channels),
                )
                for _ in lengths[1:]
            ]
        )
        if head not in ("dense", "pool"):
            raise ValueError(f"head must be 'dense' or 'pool', not {head!r}")
        self.head_kind = head
        self.filters = filters
        self.dropout = nn.Dropout(dropout)
        if head == "dense":
            self.head = nn.Conv2d(channels, n_classes, kernel_size=(1, 3), groups=n_classes)
            self.dense = GroupedLinear(n_classes, lengths[-1] - 2, 1)
        else:
            self.dense = GroupedLinear(n_classes, 2 * filters, 1)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every branch."""
        if self.scale is not None:
            x = self.scale(x)
        x = x.unsqueeze(2)  # (batch, leads, 1, samples)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.blocks(self.stem(x))
        if self.head_kind == "dense":
            x = self.head(x).flatten(1, 2)  # (batch, n_classes, steps)
        else:
            x = x.flatten(2)  # (batch, n_classes * filters, steps)
            x = torch.cat([x.mean(-1), x.amax(-1)], dim=1)  # (batch, 2 * channels)
            x = x.view(x.shape[0], 2, self.n_classes, self.filters).transpose(1, 2)
            x = x.reshape(x.shape[0], self.n_classes, 2 * self.filters)
        return self.dense(self.dropout(x)).squeeze(-1)


class LoopedParallelCNN(nn.Module):
    """The unbatched reference: separate branch modules run one after the other."""

    def __init__(self, n_classes: int, length: int, **options):
        super().__init__()
        self.n_classes = n_classes
        self.branches = nn.ModuleList(ParallelCNN(1, length, **options) for _ in range(n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each branch's logit, concatenated."""
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def grouped_from_branches(grouped: ParallelCNN, branches: Sequence[ParallelCNN]) -> None:
    """Copy separate branch networks (``ParallelCNN(1, ...)``) into a batched one, in place.

    Every tensor of the batched state is the branches' tensors stacked along the first axis.
    """
    if len(branches) != grouped.n_classes:
        raise ValueError(f"{len(branches)} branches for {grouped.n_classes} classes")
    states = [b.state_dict() for b in branches]
    merged = {}
    for key, value in grouped.state_dict().items():
        if key.endswith("num_batches_tracked"):
            merged[key] = states[0][key].clone()
        else:
            merged[key] = torch.cat([s[key] for s in states], dim=0).reshape(value.shape)
    grouped.load_state_dict(merged)


def init_output_bias(model: ParallelCNN, prevalence: np.ndarray) -> None:
    """Start each branch's output at its class's training prevalence (logit, clipped).

    Not in the paper: with 24 mostly-negative classes, branches that start at 0.5 spend their
    first epochs learning the base rates; starting there lets training go to the signals.
    """
    p = np.clip(np.asarray(prevalence, dtype=float), 1e-3, 1 - 1e-3)
    with torch.no_grad():
        model.dense.bias.copy_(torch.as_tensor(np.log(p / (1 - p)), dtype=torch.float32)[:, None])
        model.dense.weight.mul_(0.1)  # keep the initial outputs near the prevalence


def count_parameters(module) -> int:
    """Trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# --------------------------------------------------------------------------------------------
# Validation split


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


def floor_thresholds(truth: np.ndarray, classes) -> np.ndarray:
    """The prevalence floor as thresholds: 0 (every record) for the classes that a constant
    prediction pays for on ``truth`` under the challenge metric, "never" for the others.

    The challenge-metric search of the held-out thresholds starts here, so that a class
    leaves the floor's decision only where the network's scores pay on the held-out split
    (and only for classes with 5+ held-out positives): on sources the network never saw, a
    class it cannot tell apart falls back to the floor, not to a threshold fitted to noise.
    """
    prevalence, chosen = prevalence_thresholds(truth, classes)
    return np.where(prevalence >= chosen, 0.0, NEVER)


class Augment:
    """Random changes a record could show at another hospital, applied to a training input:
    one gain for all leads (``exp(N(0, gain_sd))``: amplifiers and electrodes differ) and a
    circular shift in time (a recording starts anywhere in the cardiac cycle; the input is
    wrap-padded anyway). Drawn from torch's generator, whose state the training checkpoints
    keep, so a resumed training draws what an uninterrupted one would."""

    def __init__(self, gain_sd: float, shift: bool):
        self.gain_sd, self.shift = float(gain_sd), bool(shift)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.gain_sd > 0:
            x = x * float(np.exp(float(torch.randn(())) * self.gain_sd))
        if self.shift:
            x = np.roll(x, int(torch.randint(0, x.shape[-1], ())), axis=-1)
        return x


def _names(records: Sequence[Record]) -> list[str]:
    """Record names (from the paths when the records are lazy)."""
    names = getattr(records, "names", None)
    return list(names) if names is not None else [r.name for r in records]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The classifier


class ParallelCNNClassifier(Classifier):
    """One binary 1D-CNN branch per scored class, run as one grouped network."""

    name = "parallel_cnn"
    Config = ParallelCNNConfig

    @classmethod
    def quick_config(cls) -> ParallelCNNConfig:
        """2 s at 100 Hz, 8 filters, 3 blocks, 1 epoch: fits ~20 records in a few seconds."""
        return ParallelCNNConfig(
            fs_hz=100.0,
            length=200,
            filters=8,
            n_blocks=3,
            epochs=1,
            batch_size=8,
            lr=1e-3,
            val_fraction=0.25,
            progress=False,
        )

    # -- helpers ---------------------------------------------------------------------------
    def _preprocess(self):
        c = self.config
        return functools.partial(
            preprocess_record, fs_hz=c.fs_hz, length=c.length, highpass_hz=c.highpass_hz
        )

    def _settings(self) -> dict:
        c = self.config
        return {
            "kind": PREPROCESS_VERSION,
            "fs_hz": c.fs_hz,
            "length": c.length,
            "highpass_hz": c.highpass_hz,
            "leads": list(STANDARD_LEADS),
        }

    def _train_config(self):
        from team_code.nn.training import TrainConfig

        return TrainConfig.from_options(self.config)

    def _network(self):
        c = self.config
        return ParallelCNN(
            len(self.classes_),
            c.length,
            c.filters,
            c.n_blocks,
            c.dropout,
            conv_dropout=c.conv_dropout,
            head=c.head,
            input_scale=c.input_scale,
        )

    def _cached_inputs(self, records: Sequence[Record], cache_dir: str | None, progress: bool):
        from team_code.nn.cache import cached_inputs

        c = self.config
        return cached_inputs(
            records,
            self._preprocess(),
            self._settings(),
            cache_dir=cache_dir,
            dtype=c.cache_dtype,
            num_workers=c.num_workers,
            code=PREPROCESS_CODE,
            progress=progress,
        )

    def _inputs(self, records: Sequence[Record]) -> Sequence[np.ndarray]:
        """Network inputs of ``records``, read one batch at a time: from the training's
        per-record cache when this model was trained in this process (the hybrid's held-out
        folds, which later folds and the refit then reuse), else preprocessed as read."""
        from team_code.data.records import RecordSet
        from team_code.nn.cache import ComputedRows, default_cache_dir

        cache_dir = getattr(self, "_cache_dir", None)
        if isinstance(records, RecordSet) and default_cache_dir(cache_dir) is not None:
            stored = self._cached_inputs(records, cache_dir, progress=False)
            stored.raise_failures("parallel_cnn cannot preprocess it")
            return stored.items
        return ComputedRows(records, self._preprocess())

    def _scores(self, dataset, model=None) -> np.ndarray:
        from team_code.nn.training import predict

        logits = predict(self.model_ if model is None else model, dataset, self._train_config())
        return torch.sigmoid(torch.from_numpy(logits)).numpy().astype(float)

    # -- learning --------------------------------------------------------------------------
    def fit(self, records: Sequence[Record], classes: Sequence[str]) -> ParallelCNNClassifier:
        """Train on ``records``; thresholds from held-out scores (``threshold_split``)."""
        from team_code.nn import distributed
        from team_code.nn.cache import SignalDataset
        from team_code.nn.device import pick_device

        c = self.config
        if c.threshold_method not in ("youden", "challenge"):
            raise ValueError(
                f"threshold_method must be 'youden' or 'challenge', not {c.threshold_method!r}"
            )
        if c.threshold_split not in ("validation", "sources"):
            raise ValueError(
                f"threshold_split must be 'validation' or 'sources', not {c.threshold_split!r}"
            )
        self.classes_ = tuple(classes)
        distributed.setup(pick_device(c.device))
        truth_all = label_matrix(record_labels(records), self.classes_)
        self._cache_dir = c.cache_dir or None  # this training's inputs (not saved)
        cached = self._cached_inputs(records, self._cache_dir, c.progress)
        if len(cached) == 0:
            raise ValueError("parallel_cnn: no record could be loaded for training")
        truth = truth_all[cached.kept]
        train_rows, val_rows = group_split(signal_groups(cached.items), c.val_fraction, c.seed)
        sources = np.array([record_source(n) for n in _names(records)])[cached.kept]
        by_source = c.threshold_split == "sources" and len(np.unique(sources)) > 1
        if by_source:  # out-of-source scores of every training record, before the final model
            held_scores, members = self._out_of_source_scores(cached.items, truth, sources)
        if by_source and c.source_ensemble:
            self.model_, result = MeanLogits([m for m, _ in members]), members[-1][1]
            train_rows, val_rows = np.arange(len(truth)), np.zeros(0, dtype=int)
        else:
            self.model_, result = self._train(
                cached.items, truth, train_rows, val_rows, c.workdir or None, c.resume or None
            )
        held_out, floor_rows = (val_rows if len(val_rows) else train_rows), train_rows
        if by_source:
            held_out, scores, groups = np.arange(len(truth)), held_scores, sources
            floor_rows = held_out
        else:
            if not len(val_rows):
                _say("parallel_cnn: no validation split; thresholds read off the training set")
            scores, groups = self._scores(SignalDataset(cached.items, rows=held_out)), None
        if c.threshold_method == "youden":
            self.thresholds_ = youden_thresholds(truth[held_out], scores)
        else:
            self.thresholds_ = challenge_thresholds(
                truth[held_out],
                scores,
                self.classes_,
                start=floor_thresholds(truth[floor_rows], self.classes_),
                min_positives=c.threshold_min_positives,
                groups=groups,
                vote=c.source_vote,
            )
        self.fit_summary_ = {
            "n_train": len(train_rows),
            "n_val": len(val_rows),
            "left_out": [{"record": r, "problem": p} for r, p in cached.failures],
            "best_epoch": result.best_epoch,
            "best_loss": result.best_loss,
            "stopped_early": result.stopped_early,
            "history": result.history,
            "n_parameters": count_parameters(self.model_),
        }
        if isinstance(self.model_, MeanLogits):
            self.fit_summary_["ensemble_members"] = len(self.model_.members)
            self.fit_summary_["member_best_epochs"] = [r.best_epoch for _, r in members]
        return self

    def _train(self, items, truth, train_rows, val_rows, workdir=None, resume=None):
        """A network trained on ``train_rows``, its best epoch chosen on ``val_rows``."""
        from team_code.nn.cache import SignalDataset
        from team_code.nn.training import balanced_weights, fit, set_seed

        c = self.config
        set_seed(c.seed)
        model = self._network()
        init_output_bias(model, truth[train_rows].mean(axis=0))
        augment = (
            Augment(c.augment_gain, c.augment_shift)
            if c.augment_gain > 0 or c.augment_shift
            else None
        )
        train_set = SignalDataset(items, truth[train_rows], rows=train_rows, transform=augment)
        val_set = SignalDataset(items, truth[val_rows], rows=val_rows)
        result = fit(
            model,
            train_set,
            val_set if len(val_rows) else None,
            nn.BCEWithLogitsLoss(),
            self._train_config(),
            workdir=workdir,
            resume=resume,
            sample_weights=balanced_weights(truth[train_rows]) if c.balanced_sampling else None,
        )
        return model.cpu().eval(), result

    def _out_of_source_scores(self, items, truth, sources) -> np.ndarray:
        """Scores of each training source's records by a network trained on the other sources
        (its best epoch chosen on the held-out source: early stopping across hospitals), and
        these networks with their training results."""
        from team_code.nn.cache import SignalDataset

        scores, members = np.zeros(truth.shape), []
        for source in np.unique(sources):
            held, rest = np.flatnonzero(sources == source), np.flatnonzero(sources != source)
            members.append(self._train(items, truth, rest, held))
            scores[held] = self._scores(SignalDataset(items, rows=held), members[-1][0])
        return scores, members

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        """Sigmoid outputs of every branch, (n_records, n_classes)."""
        if len(records) == 0:
            return np.zeros((0, len(self.classes_)))
        from team_code.nn.cache import SignalDataset

        return np.clip(self._scores(SignalDataset(self._inputs(records))), 0.0, 1.0)

    # -- persistence -----------------------------------------------------------------------
    def save(self, folder) -> None:
        """Write config, thresholds and weights (rank 0 only under torchrun)."""
        from team_code.nn import distributed

        if distributed.is_main():
            super().save(folder)

    def _save_state(self, folder: Path) -> None:
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()}
        atomic_write_bytes(folder / WEIGHTS_FILE, save(state))
        save_json(folder / STATE_FILE, getattr(self, "fit_summary_", {}))

    def _load_state(self, folder: Path) -> None:
        from safetensors.torch import load

        if (folder / STATE_FILE).is_file():
            self.fit_summary_ = load_json(folder / STATE_FILE)
        n_members = getattr(self, "fit_summary_", {}).get("ensemble_members", 0)
        members = [self._network() for _ in range(n_members)]
        self.model_ = MeanLogits(members) if members else self._network()
        self.model_.load_state_dict(load((folder / WEIGHTS_FILE).read_bytes()))
        self.model_.eval()

    def summary(self) -> dict:
        """Config, parameter count and the training run's figures."""
        fit_summary = dict(getattr(self, "fit_summary_", {}))
        return {"config": dataclasses.asdict(self.config), **fit_summary}
