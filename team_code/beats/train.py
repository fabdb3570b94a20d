"""Training and evaluation protocols of the beat networks (on top of ``team_code.nn.training``).

- :func:`train_beat_model`: hybrid resampling to balanced classes (optional), augmentation by
  random crop and interpolation back to length (optional), Adam with exponential decay through
  :func:`team_code.nn.training.fit`;
- :func:`split_intra_patient`: the random beat split of the papers (beats of one record on
  both sides: optimistic, comparable with their figures);
- :func:`split_inter_patient`: de Chazal's DS1 -> DS2 division (paced records excluded): the
  figure a user should trust;
- :func:`beat_metrics`: per-class sensitivity, positive predictivity, F1, accuracy, confusion;
- :func:`transfer_mi`: Kachuee's transfer (all but the last two layers frozen) to myocardial
  infarction versus healthy, cross-validated with folds grouped by patient/record.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from team_code.beats.extract import BeatSet
from team_code.beats.mitdb import AAMI_CLASSES, DS1, DS2, PACED


@dataclass(frozen=True)
class BeatTrainConfig:
    """How one beat network is trained."""

    epochs: int = 10  # passes over the (resampled) training beats
    batch_size: int = 128  # beats per optimiser step
    lr: float = 1e-3  # Adam learning rate (Kachuee et al.)
    lr_decay_rate: float = 0.75  # exponential decay factor ...
    lr_decay_steps: int = 10_000  # ... applied every this many steps (Kachuee et al.)
    balance: str = "hybrid"  # "hybrid": resample every class to the same count; "none"
    max_beats: int = 0  # cap on training beats after resampling; 0: no cap
    augment: bool = False  # random crop then linear interpolation back to the beat length
    min_crop: float = 0.9  # augmentation keeps a random window of at least this fraction
    val_fraction: float = 0.1  # training beats held out to pick the best epoch (0: none)
    patience: int = 0  # early stopping on the validation loss; 0: never
    seed: int = 0  # resampling, split, initialisation and shuffling
    device: str = "auto"  # "auto", "cpu", "cuda"
    progress: bool = False  # tqdm bars


# --------------------------------------------------------------------------------------------
# Sampling and data


def hybrid_resample(
    y: np.ndarray, n_per_class: int, rng: np.random.Generator, n_classes: int | None = None
) -> np.ndarray:
    """Indices giving every present class ``n_per_class`` beats: majority classes are
    subsampled without replacement, minority classes keep all their beats plus random
    repeats (random over- and under-sampling, the "hybrid" of the skip-CNN paper)."""
    y = np.asarray(y)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    chosen = []
    for c in range(n_classes):
        members = np.flatnonzero(y == c)
        if members.size == 0:
            continue
        if members.size >= n_per_class:
            chosen.append(rng.choice(members, n_per_class, replace=False))
        else:
            extra = rng.choice(members, n_per_class - members.size, replace=True)
            chosen.append(np.concatenate([members, extra]))
    index = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    return rng.permutation(index)


def training_indices(y: np.ndarray, config: BeatTrainConfig, n_classes: int) -> np.ndarray:
    """The training beats after balancing and capping (see :class:`BeatTrainConfig`)."""
    rng = np.random.default_rng(config.seed)
    y = np.asarray(y)
    present = np.unique(y).size
    if config.balance == "hybrid":
        n_per_class = int(np.ceil(y.size / max(present, 1)))
        if config.max_beats:
            n_per_class = min(n_per_class, max(1, config.max_beats // max(present, 1)))
        return hybrid_resample(y, n_per_class, rng, n_classes)
    if config.balance != "none":
        raise ValueError(f"balance must be 'hybrid' or 'none', not {config.balance!r}")
    index = rng.permutation(y.size)
    return index[: config.max_beats] if config.max_beats else index


class BeatDataset:
    """A torch ``Dataset`` of beats: items ``(beat float32 (length,), label int64)``.

    With ``augment``, each draw keeps a random window of at least ``min_crop`` of the beat and
    stretches it back to full length by linear interpolation (torch's global RNG, which
    ``fit`` seeds).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, augment: bool = False, min_crop: float = 0.9):
        import torch

        self.x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        self.y = torch.as_tensor(np.asarray(y, dtype=np.int64))
        self.augment = augment
        self.min_crop = float(min_crop)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, i):
        beat = self.x[i]
        if self.augment:
            beat = random_crop_stretch(beat, self.min_crop)
        return beat, self.y[i]


def random_crop_stretch(beat, min_crop: float):
    """A random window of ``[min_crop, 1]`` of a 1-D tensor, interpolated back to its length."""
    import torch

    n = beat.shape[-1]
    keep = int(round(n * float(torch.empty(1).uniform_(min_crop, 1.0))))
    keep = max(2, min(n, keep))
    start = int(torch.randint(0, n - keep + 1, (1,)))
    piece = beat[start : start + keep].reshape(1, 1, keep)
    return torch.nn.functional.interpolate(piece, size=n, mode="linear", align_corners=True)[0, 0]


# --------------------------------------------------------------------------------------------
# Training and prediction


def _train_config(config: BeatTrainConfig):
    from team_code.nn.training import TrainConfig

    return TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        optimizer="adam",
        lr_decay_rate=config.lr_decay_rate,
        lr_decay_steps=config.lr_decay_steps,
        patience=config.patience,
        seed=config.seed,
        device=config.device,
        progress=config.progress,
        eval_batch_size=512,
    )


def train_beat_model(
    model,
    beats: BeatSet,
    config: BeatTrainConfig,
    n_classes: int,
    log=None,
    part: str = "beat network",
    hint: str = "lower the learning rate (lr)",
):
    """Train ``model`` in place on ``beats`` (labels ``0..n_classes-1``); return the FitResult.

    A random ``val_fraction`` of the beats (before resampling) picks the best epoch. A
    training that diverges raises :class:`team_code.runs.TrainingDiverged` naming ``part``
    and ``hint`` (the option to change).
    """
    import torch

    from team_code.nn.training import fit

    if len(beats) == 0:
        raise ValueError("train_beat_model: no training beats")
    rng = np.random.default_rng(config.seed + 1)
    order = rng.permutation(len(beats))
    n_val = int(round(config.val_fraction * len(beats))) if len(beats) >= 20 else 0
    val_idx, fit_idx = order[:n_val], order[n_val:]
    train_idx = fit_idx[training_indices(beats.y[fit_idx], config, n_classes)]
    train_set = BeatDataset(beats.x[train_idx], beats.y[train_idx], config.augment, config.min_crop)
    val_set = BeatDataset(beats.x[val_idx], beats.y[val_idx]) if n_val else None
    result = fit(
        model,
        train_set,
        val_set,
        torch.nn.functional.cross_entropy,
        _train_config(config),
        log=log,
        name="beats",
        part=part,
        hint=hint,
    )
    return result


def predict_proba(model, x: np.ndarray, device: str = "auto", batch_size: int = 512) -> np.ndarray:
    """Softmax probabilities (n_beats, n_classes) of a beat network."""
    import torch

    from team_code.nn.training import TrainConfig, predict

    if len(x) == 0:
        n_out = model.spec["n_classes"] if hasattr(model, "spec") else 0
        return np.zeros((0, n_out), dtype=np.float32)
    dataset = torch.utils.data.TensorDataset(torch.as_tensor(np.asarray(x, dtype=np.float32)))
    config = TrainConfig(device=device, eval_batch_size=batch_size, progress=False)
    logits = predict(model, _Unpack(dataset), config)
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


class _Unpack:
    """Items of a one-tensor TensorDataset as bare tensors."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i][0]


# --------------------------------------------------------------------------------------------
# Protocols


def split_intra_patient(
    beats: BeatSet, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random beat split stratified by class (the papers' protocol): train and test indices."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(beats.y):
        members = rng.permutation(np.flatnonzero(beats.y == c))
        n_test = int(round(test_fraction * members.size))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def split_inter_patient(beats: BeatSet) -> tuple[np.ndarray, np.ndarray]:
    """de Chazal's division: DS1 records train, DS2 records test, paced records in neither."""
    records = beats.record.astype(str)
    train = np.flatnonzero(np.isin(records, DS1) & ~np.isin(records, PACED))
    test = np.flatnonzero(np.isin(records, DS2) & ~np.isin(records, PACED))
    return train, test


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix, rows = truth, columns = prediction."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


def beat_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str] = AAMI_CLASSES
) -> dict:
    """Accuracy, confusion matrix and per-class Se, +P, F1 and support (NaN where undefined)."""
    n = len(classes)
    m = confusion(y_true, y_pred, n)
    tp = np.diag(m).astype(float)
    support = m.sum(axis=1).astype(float)
    predicted = m.sum(axis=0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(support > 0, tp / support, np.nan)
        ppv = np.where(predicted > 0, tp / predicted, np.nan)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), np.nan)
    total = m.sum()
    return {
        "classes": list(classes),
        "n": int(total),
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "majority_rate": float(support.max() / total) if total else float("nan"),
        "confusion": m,
        "support": support.astype(int),
        "sensitivity": se,
        "ppv": ppv,
        "f1": f1,
    }


def format_metrics(metrics: dict, indent: str = "  ", unit: str = "beats") -> str:
    """A per-class table and the confusion matrix as text."""
    classes = metrics["classes"]
    w = max(5, *(len(c) for c in classes))
    lines = [
        f"{indent}{unit} {metrics['n']}, accuracy {100 * metrics['accuracy']:.1f} % "
        f"(majority class alone: {100 * metrics['majority_rate']:.1f} %)",
        f"{indent}{'class':>{w}} {'n':>6} {'Se %':>6} {'+P %':>6} {'F1 %':>6}",
    ]

    def pct(v):
        return "   n/a" if not np.isfinite(v) else f"{100 * v:6.1f}"

    for i, c in enumerate(classes):
        lines.append(
            f"{indent}{c:>{w}} {metrics['support'][i]:>6} {pct(metrics['sensitivity'][i])} "
            f"{pct(metrics['ppv'][i])} {pct(metrics['f1'][i])}"
        )
    lines.append(f"{indent}confusion (rows truth, columns predicted): " + " ".join(classes))
    for i, c in enumerate(classes):
        row = " ".join(f"{v:6d}" for v in metrics["confusion"][i])
        lines.append(f"{indent}{c:>{w}} {row}")
    return "\n".join(lines)


def grouped_folds(groups: np.ndarray, y: np.ndarray, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold number of each item; all items of a group share a fold, groups of each label
    (a group's majority label) are dealt round-robin in random order so folds stay balanced."""
    groups = np.asarray(groups).astype(str)
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    label = {g: int(np.round(np.mean(y[groups == g]))) for g in unique}
    fold_of: dict[str, int] = {}
    offset = 0
    for value in sorted(set(label.values())):
        members = rng.permutation([g for g in unique if label[g] == value])
        for k, g in enumerate(members):
            fold_of[g] = (k + offset) % n_folds
        offset += len(members)
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


def transfer_mi(
    base_model,
    beats: BeatSet,
    config: BeatTrainConfig,
    n_folds: int = 5,
    log=None,
) -> dict:
    """Cross-validated MI transfer: per fold, a copy of ``base_model`` (a trained
    :class:`~team_code.beats.models.KachueeNet`) gets all but its last two layers frozen and is
    trained on the other folds' beats (label 1 = MI, 0 = healthy); folds are grouped by
    ``beats.group`` so one patient's beats never sit on both sides.

    Returns beat-level metrics, record-level metrics (a record is MI when the mean MI
    probability of its beats is >= 0.5) and the out-of-fold probabilities.
    """
    folds = grouped_folds(beats.group, beats.y, n_folds, config.seed)
    oof = np.full(len(beats), np.nan)
    for k in range(n_folds):
        test = folds == k
        if not test.any() or test.all():
            continue
        train = beats.subset(~test)
        if np.unique(train.y).size < 2:
            continue
        model = copy.deepcopy(base_model).prepare_transfer(2)
        cfg = dataclasses.replace(config, seed=config.seed + k)
        train_beat_model(model, train, cfg, n_classes=2, log=log)
        oof[test] = predict_proba(model, beats.x[test], config.device)[:, 1]
    done = np.isfinite(oof)
    beat = beat_metrics(beats.y[done], (oof[done] >= 0.5).astype(int), ("healthy", "MI"))
    names = np.unique(beats.record[done])
    rec_true = np.array([int(beats.y[beats.record == r][0]) for r in names])
    rec_prob = np.array([oof[done & (beats.record == r)].mean() for r in names])
    record = beat_metrics(rec_true, (rec_prob >= 0.5).astype(int), ("healthy", "MI"))
    return {
        "beat": beat,
        "record": record,
        "oof": oof,
        "n_groups": int(np.unique(beats.group).size),
        "n_records": int(names.size),
        "folds": folds,
    }
