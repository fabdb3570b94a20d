"""The parallel 1D-CNN of Pardasani and Awasthi (Challenge 2020): one branch per scored class.

Each branch is a 1D CNN over all the task's leads (12) at 500 Hz, trimmed or wrap-padded to
``length`` samples (10,000 in the paper). The paper's branch:

    Conv(k=11, s=5, 64) + ReLU + Dropout(0.3) + BatchNorm
    n_blocks x [Conv(k=5, s=2, 64) + ReLU + Dropout(0.3) + BatchNorm]
    Conv(k=3, s=1, 1), Flatten, Dropout(0.3), Dense(1) + sigmoid

The kit's default departs from it in three places, because the paper's layout does not learn
at the sizes this kit is trained and checked at (on synthetic records with planted, easy
classes its training loss stays at the prior's; the measurements are in docs/results.md,
"Deep engines"):

- ``conv_dropout=0`` (paper 0.3): dropout placed before every BatchNorm makes the statistics a
  layer is normalised with in training differ from those at inference (the "variance shift"
  of Li et al., CVPR 2019), and eight layers of 30 % dropout drown the signal; with it alone
  removed, the same run learns. Dropout stays before the dense layer, after the last
  BatchNorm, where it does no such harm.
- ``head="pool"`` (paper ``"dense"``): the paper's dense layer gives a weight to every time
  step, so a feature must be learnt again at every position a beat can fall; a global mean
  and maximum over time of each channel (2 x ``filters`` numbers per branch) is translation
  invariant, and a rhythm, an axis or a PVC anywhere in the record reads the same.
- ``highpass_hz=0.5`` (paper: none): baseline wander is removed before the network (the
  kit's zero-phase Butterworth, :func:`team_code.dsp.filters.remove_baseline`).

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
held-out validation split, by Youden's J or by the challenge metric (``threshold_method``).
The validation split keeps records with identical preprocessed signals together. Also not in
the paper: each branch's output bias starts at its class's training prevalence. Input cache,
validation split, checkpoints, thresholds and weights are those of every deep engine
(:mod:`team_code.classifiers.deep`). The network reads the task's leads (12 by default; the
2021 lead sets give the stem fewer input channels).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from team_code.classifiers.deep import (  # noqa: F401  (re-exported for tools and tests)
    DeepClassifier,
    DeepConfig,
    floor_thresholds,
    group_split,
    signal_groups,
)
from team_code.data.records import STANDARD_LEADS, Record
from team_code.nn.layers import AmplitudeScale, GroupedLinear

STATE_FILE = "parallel_cnn.json"
#: Bump when preprocessing changes, so old cache files are not reused.
PREPROCESS_VERSION = "parallel_cnn/1"
#: Input scalings of the network: volts as recorded, or over a robust amplitude of the record
#: (all leads) or of each lead (:class:`~team_code.nn.layers.AmplitudeScale`).
INPUT_SCALES = ("none", "record", "lead")
#: Modules whose source the preprocessing runs (part of the cache key).
#: The code its cached inputs come from: the filters and resampling, the input assembly
#: (``deep.record_input``) and its own preprocessing (``preprocess_signal``, ``fix_length``).
PREPROCESS_CODE = (
    "team_code.dsp.resample",
    "team_code.dsp.filters",
    "team_code.classifiers.deep",
    "team_code.classifiers.parallel_cnn",
)


@dataclasses.dataclass(frozen=True)
class ParallelCNNConfig(DeepConfig):
    """Options of the parallel 1D-CNN classifier: those of every deep engine
    (:class:`~team_code.classifiers.deep.DeepConfig`: epochs, batch size, learning rate,
    thresholds, targets, precision, cache) and its own."""

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
    grad_clip: float = 0.5  # global gradient-norm clipping
    l1: float = 1e-6  # L1 penalty on weights
    l2: float = 1e-5  # L2 penalty on weights
    lr_decay_rate: float = 1.0  # exponential lr decay per lr_decay_steps steps (1: none)
    lr_decay_steps: int = 0  # steps per decay (0: constant lr)
    balanced_sampling: bool = False  # draw training records so that classes even out


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


def preprocess_signal(
    signal_mv: np.ndarray,
    fs: float,
    fs_hz: float = 500.0,
    length: int = 10000,
    highpass_hz: float = 0.0,
) -> np.ndarray:
    """Leads x samples in mV at ``fs``, resampled to ``fs_hz``, high-passed at
    ``highpass_hz`` (0: not) and fixed to ``length`` samples (the preprocessing contract of
    :class:`~team_code.classifiers.deep.DeepClassifier`)."""
    from team_code.dsp.resample import resample

    signal_mv = resample(signal_mv, fs, fs_hz, axis=-1)
    if highpass_hz > 0:
        from team_code.dsp.filters import remove_baseline

        signal_mv = remove_baseline(signal_mv, fs_hz, cutoff_hz=highpass_hz)
    return fix_length(signal_mv, length).astype(np.float32, copy=False)


def preprocess_record(
    record: Record,
    fs_hz: float = 500.0,
    length: int = 10000,
    highpass_hz: float = 0.0,
    leads: Sequence[str] = STANDARD_LEADS,
) -> np.ndarray:
    """:func:`preprocess_signal` of a record's ``leads`` (the 12 standard leads by default)."""
    return preprocess_signal(record.select_leads(leads), record.fs, fs_hz, length, highpass_hz)


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
        """Logits of every branch (a float16 batch, as packed caches give, is read as float32)."""
        x = x.float()
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


# --------------------------------------------------------------------------------------------
# The classifier


class ParallelCNNClassifier(DeepClassifier):
    """One binary 1D-CNN branch per scored class, run as one grouped network."""

    name = "parallel_cnn"
    Config = ParallelCNNConfig
    INPUT_CODE = PREPROCESS_CODE
    STATE_FILE = STATE_FILE
    INPUT_NAME = "signals"

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
        )

    # -- the family's parts of DeepClassifier ----------------------------------------------
    def transform(self):
        c = self.config
        return functools.partial(
            preprocess_signal, fs_hz=c.fs_hz, length=c.length, highpass_hz=c.highpass_hz
        )

    def window_s(self) -> tuple[float, float]:
        """Back-to-back windows of ``length`` samples at ``fs_hz``."""
        seconds = self.config.length / self.config.fs_hz
        return seconds, seconds

    def input_settings(self) -> dict:
        c = self.config
        return {
            "kind": PREPROCESS_VERSION,
            "fs_hz": c.fs_hz,
            "length": c.length,
            "highpass_hz": c.highpass_hz,
        }

    def build_network(self):
        c = self.config
        return ParallelCNN(
            len(self.classes_),
            c.length,
            c.filters,
            c.n_blocks,
            c.dropout,
            n_leads=len(self.input_leads()),
            conv_dropout=c.conv_dropout,
            head=c.head,
            input_scale=c.input_scale,
        )

    def prepare_network(self, network, targets_train: np.ndarray) -> None:
        known = ~np.isnan(targets_train)
        positives = np.where(known, targets_train, 0.0).sum(axis=0)
        init_output_bias(network, positives / np.maximum(known.sum(axis=0), 1))

    def augmentation(self):
        c = self.config
        if c.augment_gain > 0 or c.augment_shift:
            return Augment(c.augment_gain, c.augment_shift)
        return None

    def sample_weights(self, truth_train: np.ndarray):
        from team_code.nn.training import balanced_weights

        return balanced_weights(truth_train) if self.config.balanced_sampling else None

    def train_overrides(self) -> dict:
        c = self.config
        return {
            "grad_clip": c.grad_clip,
            "l1": c.l1,
            "l2": c.l2,
            "lr_decay_rate": c.lr_decay_rate,
            "lr_decay_steps": c.lr_decay_steps,
            "balanced_sampling": c.balanced_sampling,
        }
