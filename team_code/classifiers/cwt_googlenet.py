"""CWT scalograms of the ECG classified by a GoogLeNet pretrained on ImageNet (``cwt_googlenet``).

After the deep-learning method of Bortolan, Christov and Simova (PhysioNet/CinC Challenge 2020,
validation score 0.426): time-frequency pictures of the ECG are given to GoogLeNet (Inception
v1), pretrained on ImageNet and fine-tuned for the multi-label diagnosis.

- Input: one scalogram mosaic per record (:func:`team_code.dsp.cwt.ecg_image`): 8 rows of
  tiles for the independent leads I, II, V1-V6, the analytic-Morlet scalogram of 10 s of the
  filtered ECG on the left half, that of the robust average beat on the right half; the module
  docstring of :mod:`team_code.dsp.cwt` says why this layout (one image per record, so one
  forward pass and an unchanged ImageNet first layer). The grey mosaic in [0, 1] is turned
  into RGB with the jet colour map (``color="jet"``, as MATLAB's scalogram transfer-learning
  recipe) or replicated (``color="gray"``), then normalised with the ImageNet mean and std.
  ``image_size`` sets the square image side (224 as ImageNet; smaller sizes work through the
  adaptive pooling, e.g. 64-112 on a CPU); the scalograms are computed at ``n_scales``
  frequencies and every sample, then area-averaged to the tile pixels.
- Cache: mosaics are computed once per record and image settings and kept as one float16
  ``.npy`` per record (:func:`images_for`, :mod:`team_code.record_cache`) under ``cache_dir``
  (``train_model.py`` gives ``MODEL/.cache`` or ``$ECG_KIT_CACHE``; ``"auto"`` elsewhere:
  ``$ECG_KIT_CACHE``, else in memory; ``"none"``: in memory). The hybrid's folds,
  cross-validation and retraining all use subsets of the same records: each mosaic is
  computed once, whatever subset asks for it, and nothing is duplicated on disk.
- Network: :class:`team_code.nn.googlenet.GoogLeNet` with its two auxiliary classifiers used
  in training (loss = BCE(main) + ``aux_weight`` * (BCE(aux1) + BCE(aux2)), 0.3 as in the
  paper) and one logit per scored class.
- Pretrained weights: the state dict of torchvision's ImageNet GoogLeNet, from the file named
  by ``pretrained_weights`` or ``$ECG_KIT_GOOGLENET_WEIGHTS`` (the Docker image fetches it at
  build time). The class heads are replaced (rule in :mod:`team_code.nn.googlenet`) and
  ``transform_input`` is switched on as torchvision does. Without a file the network trains
  from scratch, and says so in the log and in :meth:`summary`. ``pretrained_weights="none"``
  forces training from scratch.
- Class balancing as in the original: the training records are drawn so that no class exceeds
  ``n_max`` instances, and rarer classes are duplicated (up to ``max_copies`` times each
  record, never beyond ``n_max``); see :func:`balanced_draw`. The draw is made once per fit.
- Training: the shared core (:func:`team_code.nn.training.fit`: Adam, mixed precision on CUDA,
  best epoch by validation loss, early stopping). Thresholds, as for ``parallel_cnn``, come
  from held-out predictions: a seeded ``val_fraction`` of the training records is kept out of
  training and the thresholds maximise the challenge metric on it (``threshold_method``
  ``"challenge"``) or Youden's J per class (``"youden"``).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from team_code.classifiers.base import Classifier
from team_code.classifiers.thresholds import challenge_thresholds, youden_thresholds
from team_code.data.records import Record, RecordError
from team_code.dsp import cwt
from team_code.fileio import atomic_write_bytes, load_json, save_json
from team_code.record_cache import PerRecord

STATE_FILE = "googlenet.pt"
TRAINING_FILE = "training.json"
#: Bump when the mosaic computation changes, so that cached images are rebuilt.
IMAGE_VERSION = "cwt_googlenet-image/2"
_COLORS = ("jet", "gray")
_THRESHOLD_METHODS = ("challenge", "youden")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class CWTGoogLeNetConfig:
    """Options of the ``cwt_googlenet`` classifier."""

    image_size: int = 224  # square image side in pixels (224 as ImageNet; >= 32)
    color: str = "jet"  # grey mosaic to RGB: "jet" colour map or "gray" replicated
    fs_hz: float = 250.0  # rate the filtered ECG is resampled to before the CWT
    rhythm_s: float = 10.0  # length of the rhythm segment (centred; zero-padded if shorter)
    margin_s: float = 2.0  # signal filtered on each side of the segment (longer records)
    rhythm_band_hz: tuple[float, float] = (0.7, 40.0)  # rhythm scalogram frequency range
    beat_band_hz: tuple[float, float] = (2.0, 40.0)  # average-beat scalogram frequency range
    n_scales: int = 56  # CWT scales per scalogram (area-averaged to the tile height)
    ref_mv: float = 0.02  # pixel = log1p(|W| / ref_mv) / log1p(max_mv / ref_mv)
    max_mv: float = 2.0  # CWT magnitude (mV) mapped to the brightest pixel
    pretrained_weights: str = ""  # ImageNet state dict file; "": $ECG_KIT_GOOGLENET_WEIGHTS
    aux_weight: float = 0.3  # weight of each auxiliary classifier's loss (paper: 0.3)
    dropout: float = 0.2  # dropout before the main classifier (torchvision: 0.2)
    epochs: int = 30  # training epochs (best by validation loss is kept)
    batch_size: int = 32  # images per optimiser step
    lr: float = 1e-4  # Adam learning rate (fine-tuning ImageNet weights; ~1e-3 from scratch)
    weight_decay: float = 1e-4  # Adam weight decay
    patience: int = 5  # early stopping after this many epochs without a better val loss
    n_max: int = 2000  # class balancing: most instances of a class in the training draw
    max_copies: int = 10  # class balancing: most copies of one record in the draw
    val_fraction: float = 0.2  # training records held out for early stopping and thresholds
    threshold_method: str = "challenge"  # "challenge" (metric search) or "youden"
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"
    amp: bool = True  # mixed precision on CUDA
    amp_dtype: str = "auto"  # "auto" (bf16 where supported, else fp16), "bf16" or "fp16"
    num_workers: int = 0  # DataLoader worker processes
    preprocess_workers: int = 0  # processes computing scalograms (0: in this process)
    cache_dir: str = "auto"  # image store folder; "auto": $ECG_KIT_CACHE, else in memory; "none"
    workdir: str = ""  # folder for checkpoint.pt and history.csv ("": none)
    resume: str = ""  # checkpoint (or workdir) to resume training from ("": start afresh)
    seed: int = 0  # initialisation, split, balancing draw and batch order
    progress: bool = True  # progress while preprocessing and training (on stderr)


# --------------------------------------------------------------------------------------------
# Images


def scalogram_config(config: CWTGoogLeNetConfig) -> cwt.ScalogramConfig:
    """The :class:`~team_code.dsp.cwt.ScalogramConfig` that ``config`` describes."""
    return cwt.ScalogramConfig(
        fs_hz=config.fs_hz,
        rhythm_s=config.rhythm_s,
        margin_s=config.margin_s,
        rhythm_band_hz=tuple(config.rhythm_band_hz),
        beat_band_hz=tuple(config.beat_band_hz),
        n_scales=config.n_scales,
        ref_mv=config.ref_mv,
        max_mv=config.max_mv,
    )


def record_image(record: Record, image_size: int, scalograms: cwt.ScalogramConfig) -> np.ndarray:
    """The (image_size, image_size) float32 scalogram mosaic of one record.

    Raises :class:`RecordError` naming the record when a lead is missing or the signal is not
    finite.
    """
    signal_mv = record.select_leads(cwt.ECG_IMAGE_LEADS)
    try:
        return cwt.ecg_image(signal_mv, record.fs, (image_size, image_size), scalograms)
    except ValueError as error:
        raise RecordError(record.name, f"no scalogram: {error}") from None


def image_settings(config: CWTGoogLeNetConfig) -> dict:
    """Everything the cached mosaics depend on (part of the cache key)."""
    return {
        "kind": IMAGE_VERSION,
        "image_size": config.image_size,
        "leads": list(cwt.ECG_IMAGE_LEADS),
        "scalograms": dataclasses.asdict(scalogram_config(config)),
    }


#: Modules whose source the mosaics are computed with (part of the cache key).
IMAGE_CODE = ("team_code.dsp",)


def images_for(records: Sequence[Record], config: CWTGoogLeNetConfig, log=_say) -> PerRecord:
    """The mosaics of ``records`` (float16), from the per-record cache when possible.

    Records of a :class:`RecordSet` are cached one ``.npy`` per record under
    ``<cache>/cwt_googlenet-image-2-<digest>/`` (:mod:`team_code.record_cache`), so any subset,
    fold or later run of the same records with the same image settings reuses them (and a
    changed record file gets a new entry). Other sequences of records, or
    ``cache_dir="none"``, are computed in memory. Unusable records are logged and left out;
    the cache remembers them rather than retrying unchanged files.
    """
    from team_code.nn.cache import cached_inputs

    compute = functools.partial(
        record_image, image_size=config.image_size, scalograms=scalogram_config(config)
    )
    return cached_inputs(
        records,
        compute,
        image_settings(config),
        cache_dir=config.cache_dir,
        num_workers=config.preprocess_workers,
        code=IMAGE_CODE,
        progress=config.progress,
        desc="scalograms",
        log=log,
    )


# --------------------------------------------------------------------------------------------
# Class balancing


def balanced_draw(
    labels: np.ndarray, n_max: int, max_copies: int, rng: np.random.Generator
) -> np.ndarray:
    """Record indices (with repeats) such that no class exceeds ``n_max`` instances.

    Classes are filled rarest first: class ``c`` with ``n_c`` records is topped up to
    ``min(n_max, max_copies * n_c)`` instances by drawing its records in random order without
    replacement, and again (duplicates) while that is not enough, counting the instances its
    records already brought in through other classes. Records with no positive class form one
    more class. A common class may end a little above ``n_max`` only through records drawn for
    a rarer class they also belong to. Returns the indices shuffled.
    """
    labels = np.asarray(labels, dtype=bool)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (n_records, n_classes); got shape {labels.shape}")
    if n_max < 1 or max_copies < 1:
        raise ValueError(f"n_max and max_copies must be >= 1; got {n_max}, {max_copies}")
    columns = np.column_stack([labels, ~labels.any(axis=1)])
    sizes = columns.sum(axis=0)
    counts = np.zeros(columns.shape[1], dtype=int)
    copies = np.zeros(len(labels), dtype=int)
    drawn: list[int] = []
    for c in np.argsort(sizes, kind="stable"):
        members = np.flatnonzero(columns[:, c])
        if members.size == 0:
            continue
        target = min(n_max, max_copies * members.size)
        while counts[c] < target:
            # least-copied members first, ties in random order
            order = members[np.lexsort((rng.random(members.size), copies[members]))]
            order = order[copies[order] < max_copies]
            if order.size == 0:
                break
            for i in order[: target - counts[c]]:
                drawn.append(int(i))
                copies[i] += 1
                counts += columns[i]
    return rng.permutation(np.asarray(drawn, dtype=int))


# --------------------------------------------------------------------------------------------
# The network around GoogLeNet


def _network(num_classes: int, config: CWTGoogLeNetConfig):
    """The torch module: mosaic (N, H, W) in [0, 1] -> colour -> ImageNet norm -> GoogLeNet."""
    import torch
    from torch import nn

    from team_code.nn.googlenet import IMAGENET_MEAN, IMAGENET_STD, GoogLeNet

    class ScalogramGoogLeNet(nn.Module):
        """GoogLeNet over scalogram mosaics; training mode returns a plain (main, aux2, aux1)."""

        def __init__(self):
            super().__init__()
            self.color = config.color
            self.net = GoogLeNet(num_classes, aux_logits=True, dropout=config.dropout)
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

        def rgb(self, x):
            """(N, H, W) or (N, 1, H, W) grey in [0, 1] -> (N, 3, H, W) ImageNet-normalised."""
            if x.ndim == 3:
                x = x.unsqueeze(1)
            x = x.float()
            if self.color == "jet":  # piecewise-linear jet: blue -> cyan -> yellow -> red
                centres = x.new_tensor([3.0, 2.0, 1.0]).view(1, 3, 1, 1)
                x = (1.5 - (4.0 * x - centres).abs()).clamp(0.0, 1.0)
            else:
                x = x.expand(-1, 3, -1, -1)
            return (x - self.mean) / self.std

        def forward(self, x):
            return self.net(self.rgb(x))

    return ScalogramGoogLeNet()


def _loss_function(aux_weight: float):
    import torch.nn.functional as F

    def loss(outputs, targets):
        if isinstance(outputs, tuple):
            main, aux2, aux1 = outputs
            value = F.binary_cross_entropy_with_logits(main, targets)
            for aux in (aux1, aux2):
                if aux is not None:
                    value = value + aux_weight * F.binary_cross_entropy_with_logits(aux, targets)
            return value
        return F.binary_cross_entropy_with_logits(outputs, targets)

    return loss


def _json_safe(value):
    """Non-finite floats (a NaN validation loss without a validation set) become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _split(n: int, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) positions; no validation below 2 held-out records."""
    n_val = int(math.floor(n * val_fraction)) if val_fraction > 0 else 0
    if n_val < 2 or n - n_val < 2:
        return np.arange(n), np.zeros(0, dtype=int)
    order = rng.permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class CWTGoogLeNetClassifier(Classifier):
    """Scalogram mosaics classified by a (pretrained) GoogLeNet; see the module docstring."""

    name = "cwt_googlenet"
    Config = CWTGoogLeNetConfig

    def __init__(self, config: CWTGoogLeNetConfig | None = None):
        super().__init__(config)
        if self.config.color not in _COLORS:
            raise ValueError(f"color must be one of {_COLORS}; got {self.config.color!r}")
        if self.config.threshold_method not in _THRESHOLD_METHODS:
            raise ValueError(
                f"threshold_method must be one of {_THRESHOLD_METHODS}; "
                f"got {self.config.threshold_method!r}"
            )
        if self.config.image_size < 32:
            raise ValueError(f"image_size must be at least 32; got {self.config.image_size}")

    @classmethod
    def quick_config(cls) -> CWTGoogLeNetConfig:
        """Tiny images, one epoch, from scratch, in memory: ~20 records in seconds on a CPU."""
        return CWTGoogLeNetConfig(
            image_size=48,
            fs_hz=100.0,
            n_scales=12,
            pretrained_weights="none",
            epochs=1,
            batch_size=8,
            n_max=16,
            max_copies=2,
            val_fraction=0.25,
            patience=0,
            cache_dir="none",
        )

    # -- helpers -------------------------------------------------------------------------
    def _train_config(self):
        from team_code.nn.training import TrainConfig

        return TrainConfig.from_options(self.config)

    def _build_network(self):
        import torch

        torch.manual_seed(self.config.seed)
        return _network(len(self.classes_), self.config)

    def _load_pretrained(self, network, log) -> dict:
        from team_code.nn.googlenet import load_imagenet_weights, pretrained_weights_path

        option = self.config.pretrained_weights
        path = None if option.lower() == "none" else pretrained_weights_path(option or None)
        if path is None:
            log(
                "cwt_googlenet: no ImageNet weights (pretrained_weights option or "
                "$ECG_KIT_GOOGLENET_WEIGHTS): training GoogLeNet from scratch"
            )
            return {"source": "none: trained from scratch"}
        report = load_imagenet_weights(network.net, path)
        replaced = report["replaced_heads"]
        log(f"cwt_googlenet: ImageNet weights from {path}; heads replaced: {replaced}")
        return {"source": "imagenet", **report}

    # -- learning ------------------------------------------------------------------------
    def fit(self, records: Sequence[Record], classes: Sequence[str], log=_say):
        """Cache the mosaics, balance, fine-tune GoogLeNet, choose held-out thresholds."""
        from team_code.nn.cache import SignalDataset
        from team_code.nn.training import fit

        config = self.config
        self.classes_ = tuple(classes)
        truth = self.label_matrix(records)
        self._cache_dir = config.cache_dir  # this training's images (not saved)
        images = images_for(records, config, log)
        if len(images) == 0:
            raise ValueError("cwt_googlenet: no record could be turned into a scalogram")
        y = truth[images.kept].astype(np.float32)
        rng = np.random.default_rng(config.seed)
        train_rows, val_rows = _split(len(images), config.val_fraction, rng)
        drawn = train_rows[balanced_draw(y[train_rows], config.n_max, config.max_copies, rng)]
        if drawn.size == 0:
            raise ValueError("cwt_googlenet: the balanced draw is empty")

        network = self._build_network()
        self.pretrained_ = self._load_pretrained(network, log)
        train_set = SignalDataset(images.items, y[drawn], rows=drawn)
        val_set = SignalDataset(images.items, y[val_rows], rows=val_rows) if val_rows.size else None
        train_config = self._train_config()
        result = fit(
            network,
            train_set,
            val_set,
            _loss_function(config.aux_weight),
            train_config,
            workdir=config.workdir or None,
            resume=config.resume or None,
            log=log,
        )
        network.eval()
        self.network_ = network

        if val_rows.size:
            held_out, held_truth, source = val_rows, y[val_rows] > 0.5, "validation"
        else:
            held_out, held_truth, source = train_rows, y[train_rows] > 0.5, "training"
            log("cwt_googlenet: too few records for a validation split; thresholds on training")
        scores = self._scores(SignalDataset(images.items, rows=held_out), train_config)
        if config.threshold_method == "challenge":
            self.thresholds_ = challenge_thresholds(held_truth, scores, self.classes_)
        else:
            self.thresholds_ = youden_thresholds(held_truth, scores)
        self.training_ = _json_safe(
            {
                "n_records": len(records),
                "n_images": len(images),
                "failures": [list(f) for f in images.failures],
                "n_train_records": int(train_rows.size),
                "n_validation_records": int(val_rows.size),
                "n_balanced_draw": int(drawn.size),
                "draw_class_counts": [int(v) for v in y[drawn].sum(axis=0)],
                "thresholds_from": source,
                "best_epoch": result.best_epoch,
                "best_loss": result.best_loss,
                "stopped_early": result.stopped_early,
                "history": result.history,
                "image_cache": str(images.folder) if images.folder else None,
            }
        )
        return self

    def _scores(self, dataset, train_config=None) -> np.ndarray:
        from team_code.nn.training import predict

        train_config = train_config or self._train_config()
        logits = predict(self.network_, dataset, train_config)
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        """Sigmoid of the main classifier's logits for each record's mosaic."""
        from team_code.nn.cache import SignalDataset

        if len(records) == 0:
            return np.zeros((0, len(self.classes_)))
        return self._scores(SignalDataset(self._images(records)))

    def _images(self, records: Sequence[Record]) -> Sequence[np.ndarray]:
        """Mosaics of ``records``, read one batch at a time: from the training's per-record
        cache when this model was trained in this process (the hybrid's held-out folds, which
        later folds and the refit then reuse), else computed as read."""
        from team_code.data.records import RecordSet
        from team_code.nn.cache import ComputedRows, default_cache_dir

        cache_dir = getattr(self, "_cache_dir", "none")
        if isinstance(records, RecordSet) and default_cache_dir(cache_dir) is not None:
            config = dataclasses.replace(self.config, cache_dir=cache_dir, progress=False)
            images = images_for(records, config, log=None)
            images.raise_failures("cwt_googlenet cannot draw its scalogram")
            return images.items
        compute = functools.partial(
            record_image,
            image_size=self.config.image_size,
            scalograms=scalogram_config(self.config),
        )
        return ComputedRows(records, compute)

    # -- persistence ---------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        import torch

        buffer = io.BytesIO()
        state = {k: v.detach().cpu() for k, v in self.network_.net.state_dict().items()}
        torch.save(state, buffer)
        atomic_write_bytes(folder / STATE_FILE, buffer.getvalue())
        save_json(
            folder / TRAINING_FILE,
            {
                "pretrained": self.pretrained_,
                "transform_input": bool(self.network_.net.transform_input),
                "training": self.training_,
            },
        )

    def _load_state(self, folder: Path) -> None:
        import torch

        meta = load_json(folder / TRAINING_FILE)
        self.pretrained_ = meta["pretrained"]
        self.training_ = meta["training"]
        network = _network(len(self.classes_), self.config)
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        network.net.load_state_dict(state, strict=True)
        network.net.transform_input = bool(meta["transform_input"])
        network.eval()
        self.network_ = network

    # -- description ---------------------------------------------------------------------
    def summary(self) -> dict:
        """Config, where the weights came from (ImageNet or from scratch) and training facts."""
        training = dict(getattr(self, "training_", {}))
        training.pop("history", None)
        return {
            "config": dataclasses.asdict(self.config),
            "pretrained": getattr(self, "pretrained_", None),
            "training": training,
        }
