"""The training loop every deep model reuses: any ``nn.Module``, any ``Dataset``, any loss.

``fit(model, train_set, val_set, loss_fn, config)`` trains in place and returns the state of the
epoch with the lowest validation loss (training loss when there is no validation set):

- the device comes from ``config.device`` (``"auto"``: CUDA when present); on CUDA, mixed
  precision with ``torch.autocast`` (bf16, or fp16 with a ``GradScaler``);
- seeded: the same seed gives the same weights (on CPU bit for bit; on CUDA up to the
  determinism cuDNN allows); shuffling uses one generator per epoch (seed, epoch) so a resumed
  run draws the same batches as an uninterrupted one;
- with ``workdir``: ``checkpoint.pt`` written atomically every ``checkpoint_every`` epochs (a
  ``torch.save`` of plain state dicts, history and RNG states; read back with
  ``weights_only=True``) and ``history.csv`` (epoch, train_loss, val_loss, lr, seconds);
  ``resume=<checkpoint.pt or workdir>`` continues after the last completed epoch and ends with
  the same weights as an uninterrupted run; given a run ``key``
  (:func:`team_code.runs.run_key`), the checkpoint carries it and only a checkpoint with the
  same key is resumed (another says so in the log and the training starts afresh);
- a training that does not learn raises :class:`team_code.runs.TrainingDiverged` (engine,
  part, epoch, reason, the option to change) instead of returning its weights: when an
  epoch's training or validation loss, or a weight, is not finite (at that epoch), or, judged
  at the last epoch, when the training loss never came back to its start (every epoch's mean
  training loss above ``DIVERGED_FACTOR``, 1.5, times the start: the initial weights' mean
  loss over the first ``START_ITEMS``, 512, training items, in training mode) or ended that
  far above both its start and its lowest epoch. A loss that only stays flat, as a tiny
  training from a prevalence-initialised output does, is not divergence; one that explodes,
  or does not come down after exploding (``parallel_cnn`` at ``lr=10`` on 16 synthetic
  records: 48.9 to 180 where it started at 0.17), is;
- under ``torchrun``: DistributedDataParallel, each process a shard of every epoch, losses
  averaged over processes, only rank 0 writes files (see :mod:`team_code.nn.distributed`).

Dataset items are ``(inputs, targets)``; ``inputs`` is a tensor or a tuple of tensors passed
as ``model(*inputs)``; ``loss_fn(outputs, targets)`` returns the mean loss of a batch.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from team_code.fileio import atomic_write_bytes, atomic_write_text
from team_code.nn import distributed
from team_code.nn.device import amp_dtype, amp_enabled, autocast, pick_device
from team_code.runs import TrainingDiverged

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.csv"
HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "lr", "seconds")
#: A training whose lowest epoch loss stays above this many times its start has diverged.
DIVERGED_FACTOR = 1.5
#: Training items whose loss under the initial weights is the start of the training.
START_ITEMS = 512


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`fit` and :func:`predict`."""

    epochs: int = 10  # passes over the training set
    batch_size: int = 32  # records per optimiser step (per process under torchrun)
    # on CUDA, choose the batch size for the device (choose_batch_size); batch_size elsewhere
    device_batch: bool = False
    max_batch_size: int = 256  # device_batch: the largest batch it chooses (a power of two)
    memory_fraction: float = 0.6  # device_batch: share of the free device memory a batch may use
    channels_last: bool = False  # on CUDA, 4-D weights in channels_last layout (convolutions)
    lr: float = 1e-4  # learning rate
    optimizer: str = "adam"  # "adam", "adamw" or "sgd" (momentum 0.9)
    weight_decay: float = 0.0  # the optimiser's weight decay
    l1: float = 0.0  # L1 penalty on weights (tensors with 2+ dims), added to the loss
    l2: float = 0.0  # L2 penalty (sum of squares) on weights, added to the loss
    grad_clip: float = 0.0  # clip the global gradient norm to this value; 0: no clipping
    patience: int = 0  # stop after this many epochs without a better validation loss; 0: never
    seed: int = 0  # seeds initialisation-independent randomness: shuffling, dropout, workers
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"
    amp: bool = True  # mixed precision (CUDA only; ignored on CPU)
    amp_dtype: str = "auto"  # "auto" (bf16 where supported), "bf16" or "fp16" (with a GradScaler)
    num_workers: int = 0  # DataLoader worker processes
    balanced_sampling: bool = False  # draw batches by per-item weights, with replacement
    lr_decay_rate: float = 1.0  # exponential schedule: lr * rate ** (step / lr_decay_steps)
    lr_decay_steps: int = 0  # optimiser steps per decay by lr_decay_rate; 0: constant lr
    checkpoint_every: int = 1  # epochs between checkpoints (with a workdir); the last always
    eval_batch_size: int = 0  # batch size of validation and predict; 0: 2 * batch_size
    deterministic: bool = True  # torch deterministic algorithms (warn only) and no cudnn tuning
    progress: bool = True  # tqdm progress bar per epoch (rank 0 only)


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns; the model itself ends holding ``best_state_dict``."""

    best_state_dict: dict[str, torch.Tensor]  # CPU copy of the best epoch's weights
    history: list[dict]  # one dict per epoch: epoch, train_loss, val_loss, lr, seconds
    best_epoch: int  # 1-based epoch of the best state (0: no epoch ran)
    best_loss: float  # its validation loss (training loss without a validation set)
    stopped_early: bool  # True when patience ended training
    batch_size: int = 0  # records per optimiser step it trained with
    batch_rule: str = ""  # why that batch size (choose_batch_size)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Seeds and sampling


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, numpy and torch (CPU and CUDA); optionally ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - code that uses the global RNG
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-record sampling weights that even out classes in a multi-label set.

    A record weighs the mean of ``1 / count`` over its positive classes (records without a
    positive class count as one extra class), so every class is drawn about equally often.
    """
    labels = np.asarray(labels, dtype=bool)
    if labels.ndim == 1:
        labels = labels[:, None]
    none = ~labels.any(axis=1)
    columns = np.column_stack([labels, none]) if none.any() else labels
    counts = columns.sum(axis=0).astype(float)
    inverse = np.where(counts > 0, 1.0 / np.maximum(counts, 1.0), 0.0)
    return (columns * inverse).sum(axis=1) / columns.sum(axis=1)


class EpochSampler(Sampler[int]):
    """Indices for one process and one epoch: shuffled (or drawn by weight) from (seed, epoch).

    Every process draws the same permutation and keeps every ``world_size``-th index from its
    rank on, padded so that all processes take the same number of steps. Call
    :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        n_items: int,
        seed: int = 0,
        shuffle: bool = True,
        weights: np.ndarray | None = None,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ):
        self.n_items = int(n_items)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        if self.weights is not None and len(self.weights) != self.n_items:
            raise ValueError(f"{len(self.weights)} sample weights for {self.n_items} items")
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose draw :meth:`__iter__` yields."""
        self.epoch = int(epoch)

    def _all_indices(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            return torch.multinomial(
                self.weights, self.n_items, replacement=True, generator=generator
            ).tolist()
        if self.shuffle:
            return torch.randperm(self.n_items, generator=generator).tolist()
        return list(range(self.n_items))

    def __iter__(self):
        indices = self._all_indices()
        if self.pad and self.world_size > 1 and indices:
            total = math.ceil(len(indices) / self.world_size) * self.world_size
            indices = (indices * math.ceil(total / len(indices)))[:total]
        return iter(indices[self.rank :: self.world_size])

    def __len__(self) -> int:
        if self.pad and self.world_size > 1:
            return math.ceil(self.n_items / self.world_size)
        return len(range(self.rank, self.n_items, self.world_size))


# --------------------------------------------------------------------------------------------
# Helpers


def to_device(obj, device: torch.device):
    """Move a tensor, or tuples/lists/dicts of tensors, to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def _to_float(obj):
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a NamedTuple of outputs
        return type(obj)(*(_to_float(o) for o in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_float(o) for o in obj)
    return obj


def _call(model: nn.Module, inputs):
    return model(*inputs) if isinstance(inputs, (list, tuple)) else model(inputs)


def _batch_size_of(inputs) -> int:
    first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
    return int(first.shape[0])


def weight_penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor | None:
    """``l1 * sum|w| + l2 * sum w**2`` over weight tensors (2+ dims; biases and norms free)."""
    if not l1 and not l2:
        return None
    total = None
    for param in model.parameters():
        if param.ndim < 2 or not param.requires_grad:
            continue
        term = 0.0
        if l1:
            term = term + l1 * param.abs().sum()
        if l2:
            term = term + l2 * param.pow(2).sum()
        total = term if total is None else total + term
    return total


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    name = config.optimizer.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; use 'adam', 'adamw' or 'sgd'")


def _make_scheduler(optimizer, config: TrainConfig):
    if config.lr_decay_steps <= 0 or config.lr_decay_rate == 1.0:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    rate, steps = config.lr_decay_rate, config.lr_decay_steps
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: rate ** (step / steps))


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _rng_state() -> dict:
    np_state = np.random.get_state()  # noqa: NPY002
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    has_gauss, gauss = state["numpy_gauss"]
    np.random.set_state(("MT19937", keys, state["numpy_pos"], int(has_gauss), gauss))  # noqa: NPY002
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`fit` (a file, or a workdir holding one).

    Loaded with ``weights_only=True``: plain tensors and containers only, never arbitrary
    objects.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    """Write a checkpoint dict atomically (``torch.save`` of state dicts and plain values)."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def write_history(path: str | os.PathLike, history: Sequence[dict]) -> None:
    """Write the per-epoch metrics as CSV (epoch, train_loss, val_loss, lr, seconds)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})
    atomic_write_text(path, out.getvalue())


def _loader(dataset, sampler, batch_size, config, device, collate_fn, epoch) -> DataLoader:
    generator = torch.Generator().manual_seed(config.seed * 7919 + epoch)
    if getattr(dataset, "batched", False) and collate_fn is None:
        # the sampler's indices a batch at a time: one read of the dataset per batch
        return DataLoader(
            dataset,
            batch_size=None,
            sampler=BatchSampler(sampler, batch_size, drop_last=False),
            num_workers=config.num_workers,
            pin_memory=device.type == "cuda",
            generator=generator,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        collate_fn=collate_fn,
        generator=generator,
        drop_last=False,
    )


# --------------------------------------------------------------------------------------------
# The device: weight layout and batch size

#: Batch size of an engine whose config leaves it to the device (0) when not on CUDA.
CPU_BATCH_SIZE = 32
#: Items in the two probe steps that measure a batch's device memory (choose_batch_size).
PROBE_BATCHES = (4, 8)


def memory_format(module: nn.Module, config: TrainConfig) -> None:
    """With ``config.channels_last``: the module's 4-D weights in channels_last layout, on every
    device (the layout cuDNN's convolutions under bf16 autocast and oneDNN's on a CPU run
    fastest in; docs/gpu.md); nothing without the option. Values are unchanged, only their
    layout."""
    if config.channels_last:
        module.to(memory_format=torch.channels_last)


def largest_fitting_batch(fixed_bytes: float, per_item_bytes: float, budget: float, cap: int):
    """The largest power of two ``b <= cap`` with ``fixed_bytes + b * per_item_bytes <=
    budget``; 1 when none does."""
    b = 1
    while b * 2 <= cap and fixed_bytes + b * 2 * per_item_bytes <= budget:
        b *= 2
    return b


def _probe_bytes(module, dataset, loss_fn, config, device, collate_fn, n: int, train: bool) -> int:
    """Device bytes one step over ``n`` items allocates at its peak above what was held before:
    the forward pass under the training's autocast, and in ``train`` the loss's backward."""
    from torch.utils.data import Subset

    items = Subset(dataset, [i % len(dataset) for i in range(n)])
    sampler = EpochSampler(n, shuffle=False)
    batch = next(iter(_loader(items, sampler, n, config, device, collate_fn, 0)))
    pair = isinstance(batch, (list, tuple)) and len(batch) == 2
    inputs, targets = (batch[0], batch[1]) if pair else (batch, None)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    held = torch.cuda.memory_allocated(device)
    module.train(train)
    with torch.set_grad_enabled(train):
        with autocast(device, config.amp, config.amp_dtype):
            outputs = _call(module, to_device(inputs, device))
        if train:
            loss_fn(_to_float(outputs), to_device(targets, device)).backward()
    del outputs
    peak = torch.cuda.max_memory_allocated(device) - held
    module.zero_grad(set_to_none=True)
    return int(peak)


def choose_batch_size(
    module: nn.Module,
    dataset: Dataset,
    loss_fn: Callable | None,
    config: TrainConfig,
    device: torch.device,
    collate_fn: Callable | None = None,
    train: bool = True,
    probe: Callable[[int], int] | None = None,
) -> tuple[int, str]:
    """The batch size to train with (``train``; else to predict with) and the rule that gave it.

    ``config.batch_size`` unless ``config.device_batch`` is on and the device is CUDA. There,
    the largest power of two up to ``config.max_batch_size`` (twice that to predict) whose
    device memory fits ``config.memory_fraction`` of the device's free memory
    (``torch.cuda.mem_get_info``, less the optimiser's state in training: Adam keeps two
    values per weight). A batch of ``b`` items is estimated to take ``fixed + b * per_item``
    bytes, the line through two probe steps of :data:`PROBE_BATCHES` items (``probe(n)``:
    the peak bytes of one step, :func:`_probe_bytes` by default); the weights, normalisation
    statistics and random number generators are left as they were. Under ``torchrun`` every
    process takes the smallest of the processes' choices.
    """
    if not config.device_batch:
        return config.batch_size, "configured"
    if device.type != "cuda":
        return config.batch_size, f"not on CUDA: {config.batch_size}, the CPU's batch size"
    if probe is None:
        probe = functools.partial(
            _probe_bytes, module, dataset, loss_fn, config, device, collate_fn, train=train
        )
    rng, state = _rng_state(), _cpu_state(module)
    try:
        small, large = (probe(n) for n in PROBE_BATCHES)
    finally:
        module.load_state_dict(state)
        _set_rng_state(rng)
    n_small, n_large = PROBE_BATCHES
    per_item = max((large - small) / (n_large - n_small), 1.0)
    fixed = max(small - n_small * per_item, 0.0)
    free, _total = torch.cuda.mem_get_info(device)
    weights = sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    optimiser = 2 * weights if train else 0
    budget = config.memory_fraction * free - optimiser
    cap = config.max_batch_size * (1 if train else 2)
    size = largest_fitting_batch(fixed, per_item, budget, cap)
    if distributed.is_initialized():
        chosen = torch.tensor([size], device=device)
        torch.distributed.all_reduce(chosen, op=torch.distributed.ReduceOp.MIN)
        size = int(chosen.item())
    gib = 2.0**30
    rule = (
        f"chosen for {device}: the largest power of two <= {cap} whose estimated "
        f"{(fixed + size * per_item) / gib:.2f} GiB fits {config.memory_fraction:.0%} of "
        f"{free / gib:.1f} GiB free (probe: {fixed / 2**20:.0f} MiB + "
        f"{per_item / 2**20:.1f} MiB per item)"
    )
    return size, rule


# --------------------------------------------------------------------------------------------
# Training


def _evaluate(model, dataset, loss_fn, config, device, collate_fn, train_mode=False) -> float:
    """Mean loss over ``dataset``, each process a shard, summed over processes (without
    gradients; in eval mode, or in training mode with ``train_mode``)."""
    sampler = EpochSampler(
        len(dataset),
        shuffle=False,
        rank=distributed.rank(),
        world_size=distributed.world_size(),
        pad=False,
    )
    batch_size = config.eval_batch_size or 2 * config.batch_size
    loader = _loader(dataset, sampler, batch_size, config, device, collate_fn, 0)
    module = distributed.unwrap(model)
    module.train(train_mode)
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    with torch.no_grad():
        for inputs, targets in loader:
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            with autocast(device, config.amp, config.amp_dtype):
                outputs = _call(module, inputs)
            loss = loss_fn(_to_float(outputs), targets)
            n = _batch_size_of(inputs)
            totals[0] += float(loss) * n
            totals[1] += n
    totals = distributed.all_reduce_sum(totals)
    return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")


def _start_loss(model, train_set, loss_fn, config, device, collate_fn) -> float:
    """The initial weights' mean loss over the first ``START_ITEMS`` training items, in
    training mode as the epochs' losses are (batch statistics, dropout); the weights, the
    normalisation statistics and the random number generators are left as they were, so the
    training that follows is the same."""
    from torch.utils.data import Subset

    rng, state = _rng_state(), _cpu_state(model)
    items = Subset(train_set, range(min(len(train_set), START_ITEMS)))
    loss = _evaluate(model, items, loss_fn, config, device, collate_fn, train_mode=True)
    model.load_state_dict(state)
    _set_rng_state(rng)
    return loss


def _not_finite(module: nn.Module, train_loss: float, val_loss: float, has_val: bool):
    """Why an epoch's end is not finite (None: its losses and weights are)."""
    if not math.isfinite(train_loss):
        return f"the training loss is {train_loss}"
    if has_val and not math.isfinite(val_loss):
        return f"the validation loss is {val_loss}"
    bad = [
        name
        for name, value in module.state_dict().items()
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
    if bad:
        more = f" and {len(bad) - 1} other tensor(s)" if len(bad) > 1 else ""
        return f"weights are not finite ({bad[0]}{more})"
    return None


def _never_came_down(history: Sequence[dict], start_loss: float) -> str | None:
    """Why the training loss, at the end of a training, shows that it diverged (None: it
    does not): it never came within ``DIVERGED_FACTOR`` of its start, or it ended that far
    above both its start and its lowest epoch."""
    best, last = min(history, key=lambda row: row["train_loss"]), history[-1]
    limit = max(DIVERGED_FACTOR * start_loss, start_loss + 1e-3)
    if best["train_loss"] > limit:
        problem = "never came back to its start"
    elif last["train_loss"] > limit and last["train_loss"] > DIVERGED_FACTOR * best["train_loss"]:
        problem = "climbed far above its start"
    else:
        return None
    return (
        f"the training loss {problem} ({last['train_loss']:.4g} at epoch {last['epoch']}, lowest "
        f"{best['train_loss']:.4g} at epoch {best['epoch']}, {start_loss:.4g} with the initial "
        "weights)"
    )


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    loss_fn: Callable,
    config: TrainConfig,
    *,
    workdir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    sample_weights: np.ndarray | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    collate_fn: Callable | None = None,
    log: Callable[[str], None] | None = _say,
    key: str | None = None,
    name: str = "network",
    part: str = "all records",
    hint: str = "lower the learning rate (lr)",
) -> FitResult:
    """Train ``model`` in place; it ends on the best epoch's weights (see the module docstring).

    ``train_set``/``val_set`` yield ``(inputs, targets)``; ``loss_fn(outputs, targets)`` gives a
    batch's mean loss (outputs in float32). ``sample_weights`` (one per training item) are used
    to draw batches, with replacement, when ``config.balanced_sampling`` is on (use
    :func:`balanced_weights`). ``penalty(model)`` is added to the loss that is optimised, as are
    the ``l1``/``l2`` terms; the reported losses are the data loss alone. ``workdir`` receives
    ``checkpoint.pt`` and ``history.csv`` (rank 0 only); ``resume`` is a checkpoint file or a
    workdir to continue from: with a run ``key``, only a checkpoint that carries the same key
    (another starts the training afresh, saying so). ``log`` gets one line per epoch
    (``None``: silent). A training that diverges raises
    :class:`~team_code.runs.TrainingDiverged` naming ``name``, ``part``, the epoch and
    ``hint`` (the option to change).
    """
    from team_code.progress import progress

    log = log or (lambda message: None)
    device = pick_device(config.device)
    dist_env = distributed.setup(device)
    if not distributed.is_main():
        log = lambda message: None  # noqa: E731 - one process speaks for all
    set_seed(config.seed, config.deterministic)
    if len(train_set) == 0:
        raise ValueError("fit: the training set is empty")
    if config.balanced_sampling and sample_weights is None:
        raise ValueError("balanced_sampling needs sample_weights (see balanced_weights)")
    weights = sample_weights if config.balanced_sampling else None

    model.to(device)
    memory_format(model, config)
    module = model
    model = distributed.wrap(module, device)
    optimizer = _make_optimizer(module, config)
    scheduler = _make_scheduler(optimizer, config)
    use_amp = amp_enabled(device, config.amp)
    scaler = torch.amp.GradScaler(
        "cuda", enabled=use_amp and amp_dtype(config.amp_dtype) == torch.float16
    )

    history: list[dict] = []
    best_state = _cpu_state(module)
    best_loss, best_epoch, bad_epochs, start_epoch = math.inf, 0, 0, 0
    checkpoint = load_checkpoint(resume) if resume is not None else None
    if checkpoint is not None and key is not None and checkpoint.get("key") != key:
        log(
            f"the checkpoint in {resume} is of another run (other records, labels, options, "
            "task or kit version); training afresh"
        )
        checkpoint = None
    if checkpoint is not None:
        module.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint["scaler"] and scaler.is_enabled():
            # a checkpoint of a CPU or bf16 run holds no scaler state; an fp16 card starts one
            scaler.load_state_dict(checkpoint["scaler"])
        best_state = checkpoint["best_state"]
        best_loss, best_epoch = float(checkpoint["best_loss"]), int(checkpoint["best_epoch"])
        bad_epochs, start_epoch = int(checkpoint["bad_epochs"]), int(checkpoint["epoch"])
        history = list(checkpoint["history"])
        _set_rng_state(checkpoint["rng"])
        log(f"resuming from {resume} after epoch {start_epoch}")
    if checkpoint is not None and config.device_batch:  # the batches of the run it continues
        batch_size = int(checkpoint["config"]["batch_size"])
        batch_rule = "the checkpoint's, whose run this continues"
    else:
        batch_size, batch_rule = choose_batch_size(
            module, train_set, loss_fn, config, device, collate_fn
        )
    if config.device_batch:
        log(f"{name}: batch size {batch_size} ({batch_rule})")
    config = dataclasses.replace(config, batch_size=batch_size)
    start_loss = checkpoint.get("start_loss") if checkpoint is not None else None
    if start_loss is None:
        start_loss = _start_loss(module, train_set, loss_fn, config, device, collate_fn)
    if not math.isfinite(start_loss):
        raise TrainingDiverged(
            name, part, 0, f"the initial weights' loss is {start_loss} (inputs or targets "
            "not finite?)", hint
        )  # fmt: skip

    main = distributed.is_main()
    workdir = Path(workdir) if workdir is not None and main else None
    sampler = EpochSampler(
        len(train_set),
        seed=config.seed,
        weights=weights,
        rank=dist_env.rank if distributed.is_initialized() else 0,
        world_size=distributed.world_size(),
    )
    stopped_early = config.patience > 0 and bad_epochs >= config.patience
    for epoch in range(start_epoch, config.epochs):
        if stopped_early:
            break
        start = time.perf_counter()
        sampler.set_epoch(epoch)
        loader = _loader(
            train_set, sampler, config.batch_size, config, device, collate_fn, epoch + 1
        )
        model.train()
        totals = torch.zeros(2, dtype=torch.float64, device=device)
        bar = progress(
            loader,
            total=len(loader),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            enabled=config.progress and main,
        )
        for inputs, targets in bar:
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            with autocast(device, config.amp, config.amp_dtype):
                outputs = _call(model, inputs)
            loss = loss_fn(_to_float(outputs), targets)
            objective = loss
            extra = weight_penalty(module, config.l1, config.l2)
            if extra is not None:
                objective = objective + extra
            if penalty is not None:
                objective = objective + penalty(module)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(objective).backward()
            if config.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            n = _batch_size_of(inputs)
            totals[0] += float(loss.detach()) * n
            totals[1] += n
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{float(totals[0] / totals[1]):.4f}")
        if hasattr(bar, "close"):
            bar.close()
        totals = distributed.all_reduce_sum(totals)
        train_loss = float(totals[0] / totals[1])
        distributed.broadcast_buffers(module)
        val_loss = (
            _evaluate(model, val_set, loss_fn, config, device, collate_fn)
            if val_set is not None and len(val_set) > 0
            else float("nan")
        )
        has_val = val_set is not None and len(val_set) > 0
        problem = _not_finite(module, train_loss, val_loss, has_val)
        if problem:
            raise TrainingDiverged(name, part, epoch + 1, problem, hint)
        monitored = val_loss if math.isfinite(val_loss) else train_loss
        if monitored < best_loss:
            best_loss, best_epoch, bad_epochs = monitored, epoch + 1, 0
            best_state = _cpu_state(module)
        else:
            bad_epochs += 1
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "seconds": round(time.perf_counter() - start, 3),
        }
        history.append(row)
        log(
            f"epoch {epoch + 1}/{config.epochs}: train_loss {train_loss:.4f}, "
            f"val_loss {val_loss:.4f}, {row['seconds']:.1f} s"
        )
        stopped_early = config.patience > 0 and bad_epochs >= config.patience
        last = epoch + 1 == config.epochs or stopped_early
        problem = _never_came_down(history, start_loss) if last else None
        if problem:
            raise TrainingDiverged(name, part, epoch + 1, problem, hint)
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
            if last or (config.checkpoint_every > 0 and (epoch + 1) % config.checkpoint_every == 0):
                save_checkpoint(
                    workdir / CHECKPOINT,
                    {
                        "model": _cpu_state(module),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "epoch": epoch + 1,
                        "best_state": best_state,
                        "best_loss": best_loss,
                        "best_epoch": best_epoch,
                        "bad_epochs": bad_epochs,
                        "history": history,
                        "rng": _rng_state(),
                        "config": dataclasses.asdict(config),
                        "key": key,
                        "start_loss": start_loss,
                    },
                )
            # After the checkpoint: a kill between the two leaves the history one epoch behind
            # the checkpoint (the resume rewrites it from the checkpoint's), never ahead of it.
            write_history(workdir / HISTORY, history)
        if stopped_early:
            log(f"early stop after epoch {epoch + 1}: no improvement in {config.patience} epochs")
    distributed.barrier()
    module.load_state_dict(best_state)
    return FitResult(
        best_state_dict=best_state,
        history=history,
        best_epoch=best_epoch,
        best_loss=best_loss,
        stopped_early=stopped_early,
        batch_size=batch_size,
        batch_rule=batch_rule,
    )


# --------------------------------------------------------------------------------------------
# Inference


def predict(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig | None = None,
    *,
    collate_fn: Callable | None = None,
    device: torch.device | None = None,
) -> np.ndarray:
    """The model's outputs over ``dataset``, batched, in eval mode without gradients.

    Items may be ``(inputs, targets)`` pairs (targets ignored) or bare input tensors. Returns the
    outputs concatenated along the first axis as float32 numpy (no activation applied). Under
    ``torchrun`` every process predicts the whole dataset.
    """
    config = config or TrainConfig()
    device = device or pick_device(config.device)
    module = distributed.unwrap(model).to(device)
    memory_format(module, config)
    batch_size = config.eval_batch_size or 2 * config.batch_size
    if config.device_batch and not config.eval_batch_size and len(dataset) > batch_size:
        batch_size, _ = choose_batch_size(
            module, dataset, None, config, device, collate_fn, train=False
        )
    module.eval()
    sampler = EpochSampler(len(dataset), shuffle=False)
    loader = _loader(dataset, sampler, batch_size, config, device, collate_fn, 0)
    outputs = []
    with torch.no_grad():
        for batch in loader:
            inputs = batch[0] if isinstance(batch, (list, tuple)) and len(batch) == 2 else batch
            inputs = to_device(inputs, device)
            with autocast(device, config.amp, config.amp_dtype):
                out = _call(module, inputs)
            outputs.append(out.float().cpu().numpy())
    if not outputs:
        return np.zeros((0,), dtype=np.float32)
    return np.concatenate(outputs, axis=0)
