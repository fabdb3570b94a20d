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
- Leads: the mosaic's rows are the task's independent leads (I, II, V1-V6 of twelve; I and II
  of the 2021 six- and two-lead sets; :func:`image_leads`).
- Cache: mosaics are computed once per record and image settings and kept as one float16
  ``.npy`` per record in the run's cache folder (``train_model.py``: ``MODEL/.cache`` or
  ``$ECG_KIT_CACHE``; elsewhere ``$ECG_KIT_CACHE``, else in memory). The hybrid's folds,
  cross-validation and retraining all use subsets of the same records: each mosaic is
  computed once, whatever subset asks for it, and nothing is duplicated on disk.
- Scalograms on the device (``scalogram_device``; "auto": when the run trains or predicts on
  CUDA, "device": always, also on a CPU, "cpu": never): the cache holds each record's signal
  components instead (:func:`signal_components`: the filtered rhythm and the average beat of
  each lead, 8 x 2,774 values at the default settings, 44 % of a 224-px mosaic's bytes)
  and the network computes the mosaics batch by batch on its own device
  (:class:`team_code.nn.cwt_torch.TorchMosaic`, within
  :data:`~team_code.nn.cwt_torch.TOLERANCE` of the numpy mosaic from float32 components,
  :data:`~team_code.nn.cwt_torch.TOLERANCE_FLOAT16` from the float16 cache). The weights do
  not depend on the path: a model trained on one runs on the other.
- On CUDA: bf16 autocast (``amp``, ``amp_dtype="auto"``: bf16 where the card supports it,
  else fp16 with a gradient scaler), GoogLeNet's weights and activations in channels_last
  layout (``channels_last``), and a batch size chosen for the card when ``batch_size`` is 0
  (the default; :func:`team_code.nn.training.choose_batch_size`). On a CPU none of the three
  changes anything (the batch size is then 32).
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
- Training, validation split (identical inputs kept together), checkpoints, thresholds (the
  challenge metric searched from the prevalence floor on the held-out split, or Youden's J)
  and safetensors weights: those of every deep engine (:mod:`team_code.classifiers.deep`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from team_code.classifiers.base import Evidence
from team_code.classifiers.deep import DeepClassifier, DeepConfig, record_input
from team_code.context import RunContext, Task
from team_code.data.records import Record
from team_code.dsp import cwt
from team_code.record_cache import PerRecord

TRAINING_FILE = "training.json"
#: Bump when the mosaic computation changes, so that cached images are rebuilt.
IMAGE_VERSION = "cwt_googlenet-image/2"
#: Bump when the components of the device-side mosaic change, so that cached ones are rebuilt.
COMPONENTS_VERSION = "cwt_googlenet-components/1"
_COLORS = ("jet", "gray")
SCALOGRAM_DEVICES = ("auto", "cpu", "device")


@dataclasses.dataclass(frozen=True)
class CWTGoogLeNetConfig(DeepConfig):
    """Options of the ``cwt_googlenet`` classifier: those of every deep engine
    (:class:`~team_code.classifiers.deep.DeepConfig`: epochs, batch size, learning rate,
    thresholds, targets, precision, cache; ``cache_dtype`` applies to the cached mosaics or
    components) and its own."""

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
    # 0 (DeepConfig: 32): GoogLeNet's memory per image grows with image_size, and on a GPU a
    # fixed 32 leaves most of the card idle, so the device chooses (32 off CUDA)
    batch_size: int = 0
    # 1e-4 (DeepConfig: 0): a light pull towards the ImageNet weights being fine-tuned
    weight_decay: float = 1e-4
    n_max: int = 2000  # class balancing: most instances of a class in the training draw
    max_copies: int = 10  # class balancing: most copies of one record in the draw
    # where the scalograms are computed: "cpu" (numpy, mosaics cached), "device" (torch, on the
    # network's device, from cached components), "auto" (the device when training on CUDA)
    scalogram_device: str = "auto"
    channels_last: bool = True  # on CUDA, GoogLeNet's weights in channels_last layout


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


def image_leads(leads: Sequence[str]) -> tuple[str, ...]:
    """The mosaic's rows: the independent leads (:data:`team_code.dsp.cwt.ECG_IMAGE_LEADS`: I,
    II, V1-V6) among ``leads`` (III and the augmented limb leads are combinations of I and II);
    all eight for twelve leads, I and II for the 2021 six- and two-lead sets."""
    rows = tuple(lead for lead in cwt.ECG_IMAGE_LEADS if lead in leads)
    return rows or tuple(leads)


def signal_image(
    signal_mv: np.ndarray, fs: float, image_size: int, scalograms: cwt.ScalogramConfig
) -> np.ndarray:
    """The (image_size, image_size) float32 scalogram mosaic of leads x samples in mV (the
    preprocessing contract of :class:`~team_code.classifiers.deep.DeepClassifier`)."""
    try:
        return cwt.ecg_image(signal_mv, fs, (image_size, image_size), scalograms)
    except ValueError as error:
        raise ValueError(f"no scalogram: {error}") from None


def signal_components(
    signal_mv: np.ndarray, fs: float, scalograms: cwt.ScalogramConfig
) -> np.ndarray:
    """The (leads, rhythm + beat samples) float32 signal components the device-side mosaic is
    computed from (:func:`team_code.nn.cwt_torch.mosaic_components`): the input of
    ``scalogram_device="device"``, cached in place of the mosaic."""
    from team_code.nn.cwt_torch import mosaic_components

    try:
        return mosaic_components(signal_mv, fs, scalograms)
    except ValueError as error:
        raise ValueError(f"no scalogram: {error}") from None


def record_image(
    record: Record,
    image_size: int,
    scalograms: cwt.ScalogramConfig,
    leads: Sequence[str] = cwt.ECG_IMAGE_LEADS,
) -> np.ndarray:
    """The mosaic of one record's ``leads``; raises :class:`RecordError` naming the record when
    a lead is missing or the signal is not finite."""
    transform = functools.partial(signal_image, image_size=image_size, scalograms=scalograms)
    return record_input(record, tuple(leads), transform)


def image_settings(config: CWTGoogLeNetConfig) -> dict:
    """Everything the cached mosaics depend on besides the leads (part of the cache key)."""
    return {
        "kind": IMAGE_VERSION,
        "image_size": config.image_size,
        "scalograms": dataclasses.asdict(scalogram_config(config)),
    }


#: Modules whose source the mosaics are computed with (part of the cache key).
#: The code its cached images and scalogram components come from.
IMAGE_CODE = (
    "team_code.dsp",
    "team_code.classifiers.deep",
    "team_code.classifiers.cwt_googlenet",
    "team_code.nn.cwt_torch",
)


def components_settings(config: CWTGoogLeNetConfig) -> dict:
    """Everything the cached components depend on besides the leads (not the image size)."""
    return {"kind": COMPONENTS_VERSION, "scalograms": dataclasses.asdict(scalogram_config(config))}


def images_for(
    records: Sequence[Record],
    config: CWTGoogLeNetConfig,
    ctx: RunContext | None = None,
    task: Task | None = None,
) -> PerRecord:
    """The mosaics of ``records`` (float16) through ``ctx``'s per-record cache: one ``.npy`` per
    record under ``<cache>/cwt_googlenet-image-...-<digest>/`` (:mod:`team_code.record_cache`),
    so any subset, fold or later run of the same records with the same image settings reuses
    them (and a changed record file gets a new entry); in memory without a cache folder. With
    the scalograms on the device (``scalogram_device``), the components they are computed from.
    Unusable records are logged and left out; the cache remembers them rather than retrying
    unchanged files."""
    model = CWTGoogLeNetClassifier(config)
    model._begin(task, ctx)
    return model.cached_inputs(records)


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


def _network(num_classes: int, config: CWTGoogLeNetConfig, n_leads: int):
    """The torch module: mosaic (N, H, W) in [0, 1], or the components (N, n_leads, samples) it
    computes the mosaic from on its own device (:class:`team_code.nn.cwt_torch.TorchMosaic`),
    -> colour -> ImageNet norm -> GoogLeNet."""
    import torch
    from torch import nn

    from team_code.nn.cwt_torch import TorchMosaic
    from team_code.nn.googlenet import IMAGENET_MEAN, IMAGENET_STD, GoogLeNet

    class ScalogramGoogLeNet(nn.Module):
        """GoogLeNet over scalogram mosaics; training mode returns a plain (main, aux2, aux1).
        The mosaic's filter banks are buffers that are not saved: the weights are the same
        whichever input the network was trained or is run on."""

        def __init__(self):
            super().__init__()
            self.color = config.color
            self.net = GoogLeNet(num_classes, aux_logits=True, dropout=config.dropout)
            self.mosaic = TorchMosaic(config.image_size, n_leads, scalogram_config(config))
            self.components = (n_leads, self.mosaic.n_rhythm + self.mosaic.n_beat)
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

        def image(self, x):
            """The mosaics (N, H, W) of a batch of mosaics or of components."""
            if x.ndim == 3 and tuple(x.shape[1:]) == self.components:
                return self.mosaic(x)
            return x

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
            x = self.rgb(self.image(x))
            if self.net.conv1.conv.weight.is_contiguous(memory_format=torch.channels_last):
                x = x.contiguous(memory_format=torch.channels_last)  # as the weights
            return self.net(x)

    return ScalogramGoogLeNet()


def _loss_function(aux_weight: float):
    from team_code.classifiers.deep import masked_bce_with_logits as bce

    def loss(outputs, targets):
        if isinstance(outputs, tuple):
            main, aux2, aux1 = outputs
            value = bce(main, targets)
            for aux in (aux1, aux2):
                if aux is not None:
                    value = value + aux_weight * bce(aux, targets)
            return value
        return bce(outputs, targets)

    return loss


class CWTGoogLeNetClassifier(DeepClassifier):
    """Scalogram mosaics classified by a (pretrained) GoogLeNet; see the module docstring."""

    name = "cwt_googlenet"
    Config = CWTGoogLeNetConfig
    INPUT_CODE = IMAGE_CODE
    STATE_FILE = TRAINING_FILE
    INPUT_NAME = "scalograms"

    def __init__(self, config: CWTGoogLeNetConfig | None = None):
        super().__init__(config)
        if self.config.color not in _COLORS:
            raise ValueError(f"color must be one of {_COLORS}; got {self.config.color!r}")
        if self.config.image_size < 32:
            raise ValueError(f"image_size must be at least 32; got {self.config.image_size}")
        if self.config.scalogram_device not in SCALOGRAM_DEVICES:
            raise ValueError(
                f"scalogram_device must be one of {SCALOGRAM_DEVICES}; "
                f"got {self.config.scalogram_device!r}"
            )

    def evidence(self, records: Sequence[Record]) -> list[Evidence]:
        """The settings of the scalogram mosaic the network reads, for every record."""
        return [Evidence(scalogram=self.config) for _ in records]

    @classmethod
    def quick_config(cls) -> CWTGoogLeNetConfig:
        """Tiny images, one epoch, from scratch: ~20 records in seconds on a CPU."""
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
        )

    # -- the family's parts of DeepClassifier ----------------------------------------------
    def input_leads(self) -> tuple[str, ...]:
        return image_leads(self.task_.leads)

    def scalograms_on_device(self) -> bool:
        """Whether the mosaics are computed by the network on its device from cached components
        (``scalogram_device``: "device"; "auto" when the run's device is CUDA), rather than
        in numpy and cached whole."""
        from team_code.nn.device import pick_device

        option = self.config.scalogram_device
        if option == "auto":
            return pick_device(self.ctx.device).type == "cuda"
        return option == "device"

    def transform(self):
        if self.scalograms_on_device():
            return functools.partial(signal_components, scalograms=scalogram_config(self.config))
        return functools.partial(
            signal_image,
            image_size=self.config.image_size,
            scalograms=scalogram_config(self.config),
        )

    def window_s(self) -> tuple[float, float]:
        """The rhythm segment and its margins, one every ``rhythm_s``."""
        c = self.config
        return c.rhythm_s + 2 * c.margin_s, c.rhythm_s

    def input_settings(self) -> dict:
        if self.scalograms_on_device():
            return components_settings(self.config)
        return image_settings(self.config)

    def build_network(self):
        import torch

        torch.manual_seed(self.config.seed)
        network = _network(len(self.classes_), self.config, len(self.input_leads()))
        if getattr(self, "transform_input_", None) is not None:
            network.net.transform_input = bool(self.transform_input_)
        return network

    def loss(self):
        return _loss_function(self.config.aux_weight)

    def train_overrides(self) -> dict:
        return {"channels_last": self.config.channels_last}

    def fit(self, records, task, ctx=None):
        """:meth:`DeepClassifier.fit`; the training summary also says where the scalograms
        were computed."""
        from team_code.nn.device import pick_device

        super().fit(records, task, ctx)
        on_device = f"torch on {pick_device(self.ctx.device).type}"
        self.fit_summary_["scalograms"] = on_device if self.scalograms_on_device() else "numpy"
        return self

    def training_draw(self, truth_train: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Class balancing (:func:`balanced_draw`)."""
        return balanced_draw(truth_train, self.config.n_max, self.config.max_copies, rng)

    def prepare_network(self, network, targets_train: np.ndarray) -> None:
        """ImageNet weights when a file is at hand (else from scratch, and said so)."""
        from team_code.nn.googlenet import load_imagenet_weights, pretrained_weights_path

        option = self.config.pretrained_weights
        path = None if option.lower() == "none" else pretrained_weights_path(option or None)
        if path is None:
            self.ctx.log(
                "cwt_googlenet: no ImageNet weights (pretrained_weights option or "
                "$ECG_KIT_GOOGLENET_WEIGHTS): training GoogLeNet from scratch"
            )
            self.pretrained_ = {"source": "none: trained from scratch"}
        else:
            report = load_imagenet_weights(network.net, path)
            replaced = report["replaced_heads"]
            self.ctx.log(f"cwt_googlenet: ImageNet weights from {path}; heads replaced: {replaced}")
            self.pretrained_ = {"source": "imagenet", **report}
        self.transform_input_ = bool(network.net.transform_input)

    def extra_state(self) -> dict:
        return {
            "pretrained": getattr(self, "pretrained_", None),
            "transform_input": getattr(self, "transform_input_", None),
        }

    def set_extra_state(self, state: dict) -> None:
        self.pretrained_ = state.get("pretrained")
        self.transform_input_ = state.get("transform_input")
