"""GoogLeNet (Inception v1, Szegedy et al. 2015) laid out exactly as torchvision's.

Module names, parameter names and shapes follow ``torchvision.models.googlenet`` so that its
ImageNet state dict (``googlenet-1378be20.pth``, ported from TensorFlow) loads key for key,
without torchvision being installed:

- ``BasicConv2d`` = bias-free convolution + BatchNorm (eps 0.001) + ReLU, keys ``conv.weight``,
  ``bn.{weight,bias,running_mean,running_var,num_batches_tracked}``;
- the "5x5" branch (``branch3``) uses a 3x3 convolution, torchvision's known deviation from the
  paper (pytorch/vision#906), kept because the weights were trained with it;
- two auxiliary classifiers (``aux1`` after inception4a, ``aux2`` after inception4d) are used
  in training mode only, as in the paper; ``forward`` returns :class:`GoogLeNetOutputs`
  (main, aux2, aux1) in training mode with auxiliaries, and the main logits otherwise;
- ``transform_input``: torchvision's pretrained GoogLeNet expects images normalised with the
  ImageNet mean and std and converts them to the [-1, 1] scaling of the TensorFlow weights
  (``x * std / 0.5 + (mean - 0.5) / 0.5`` per channel); we do the same when the flag is set
  (the classifier sets it whenever ImageNet weights are loaded).

The network accepts any input of at least ~32 x 32 pixels (an adaptive average pool precedes
the classifier and the auxiliary heads pool adaptively to 4 x 4); 224 x 224 is ImageNet's.

Loading ImageNet weights (:func:`load_imagenet_weights`): every backbone key of our model must
be in the file with the same shape, and the file may hold nothing else (strict). The one
exception, documented rule for the heads: ``fc``, ``aux1.fc2`` and ``aux2.fc2`` map 1024
features to ImageNet's 1000 classes, which have nothing to do with ours; when the model's
number of classes differs, those three layers keep their fresh initialisation and the file's
are ignored (with ``num_classes=1000`` they load too). ``num_batches_tracked`` buffers may be
absent from older files (they are then left at 0, as ``BatchNorm`` does for such files).
Auxiliary-head keys of the file are ignored when the model has no auxiliary heads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GoogLeNet",
    "GoogLeNetOutputs",
    "BasicConv2d",
    "Inception",
    "InceptionAux",
    "HEAD_PREFIXES",
    "WEIGHTS_ENV",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "pretrained_weights_path",
    "load_imagenet_weights",
]

#: Environment variable naming torchvision's ImageNet GoogLeNet state dict file.
WEIGHTS_ENV = "ECG_KIT_GOOGLENET_WEIGHTS"
#: Layers replaced for our classes when the class count differs from ImageNet's 1000.
HEAD_PREFIXES: tuple[str, ...] = ("fc.", "aux1.fc2.", "aux2.fc2.")
#: ImageNet channel statistics (RGB) used by torchvision's normalisation.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _init_weight(module: nn.Module) -> None:
    """Weights ~ normal(0, 0.01) folded into +-0.02; bias 0."""
    with torch.no_grad():
        module.weight.normal_().fmod_(2.0).mul_(0.01)
        if module.bias is not None:
            module.bias.zero_()


class GoogLeNetOutputs(NamedTuple):
    """Training-mode outputs, in torchvision's order."""

    logits: Tensor  # main classifier
    aux_logits2: Tensor | None  # auxiliary head after inception4d
    aux_logits1: Tensor | None  # auxiliary head after inception4a


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps 0.001), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_options):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_options)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve, normalise, rectify."""
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches concatenated along channels (1x1; 1x1-3x3; 1x1-3x3; pool-1x1)."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        # The paper's 5x5 branch; 3x3 in torchvision's weights (pytorch/vision#906).
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Concatenate the four branches."""
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4x4 average pool, 1x1 conv to 128, FC 1024, dropout, FC."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the auxiliary head."""
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    """Inception v1 with torchvision's module layout (see the module docstring)."""

    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.aux_logits = bool(aux_logits)
        self.transform_input = bool(transform_input)

        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)

        if self.aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as torchvision: weights ~ normal(0, 0.01) cut at 2 sd, BN weight 1 bias 0.

        The cut folds the tails back (``fmod``), a fast stand-in for the truncated normal.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                _init_weight(module)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def reset_heads(self) -> None:
        """Re-initialise the class heads (fc, aux1.fc2, aux2.fc2) as in :meth:`reset_parameters`."""
        heads = [self.fc] + [aux.fc2 for aux in (self.aux1, self.aux2) if aux is not None]
        for head in heads:
            _init_weight(head)

    def _transform_input(self, x: Tensor) -> Tensor:
        if not self.transform_input:
            return x
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return x * (std / 0.5) + (mean - 0.5) / 0.5

    def features(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Pooled 1024 features and the two auxiliary logits (None outside training)."""
        x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        use_aux = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if use_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if use_aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        return torch.flatten(self.avgpool(x), 1), aux2, aux1

    def forward(self, x: Tensor) -> GoogLeNetOutputs | Tensor:
        """(N, 3, H, W) images -> logits (eval) or GoogLeNetOutputs (training with aux heads)."""
        pooled, aux2, aux1 = self.features(x)
        logits = self.fc(self.dropout(pooled))
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(logits, aux2, aux1)
        return logits


def pretrained_weights_path(option: str | os.PathLike | None = None) -> Path | None:
    """The ImageNet weights file: ``option`` if given, else ``$ECG_KIT_GOOGLENET_WEIGHTS``.

    Returns None when neither names a file (the model then trains from scratch). A name that
    does not point at an existing file raises ``FileNotFoundError``: a misspelt path must not
    silently turn into a from-scratch model.
    """
    text = str(option) if option else os.environ.get(WEIGHTS_ENV, "")
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        source = "pretrained_weights option" if option else f"${WEIGHTS_ENV}"
        raise FileNotFoundError(f"GoogLeNet weights named by {source} not found: {path}")
    return path


def _is_head(key: str) -> bool:
    return key.startswith(HEAD_PREFIXES)


def load_imagenet_weights(model: GoogLeNet, path: str | os.PathLike) -> dict:
    """Load torchvision's ImageNet GoogLeNet state dict into ``model`` (rule: module docstring).

    Sets ``model.transform_input = True`` as torchvision does for its pretrained model, so the
    caller must feed ImageNet-normalised images. Raises ``ValueError`` naming the offending
    keys when the file does not match the architecture. Returns a JSON-able report
    ``{"file", "loaded", "replaced_heads", "ignored"}``.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"{path}: not a state dict (a mapping of names to tensors)")
    own = model.state_dict()
    ignored = sorted(k for k in state if k.startswith(("aux1.", "aux2.")) and k not in own)
    unexpected = sorted(set(state) - set(own) - set(ignored))
    missing = sorted(
        k
        for k in own
        if k not in state and not _is_head(k) and not k.endswith("num_batches_tracked")
    )
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in set(state) & set(own)
        if not _is_head(k) and tuple(state[k].shape) != tuple(own[k].shape)
    )
    if unexpected or missing or wrong:
        raise ValueError(
            f"{path} is not torchvision's GoogLeNet layout: missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}), "
            f"wrong shapes {wrong[:5]} ({len(wrong)})"
        )
    heads_match = all(
        k in state and tuple(state[k].shape) == tuple(own[k].shape) for k in own if _is_head(k)
    )
    replaced = [] if heads_match else sorted({k.rsplit(".", 1)[0] for k in own if _is_head(k)})
    selected = {k: v for k, v in state.items() if k in own and (heads_match or not _is_head(k))}
    result = model.load_state_dict(selected, strict=False)
    leftover = [
        k
        for k in result.missing_keys
        if not k.endswith("num_batches_tracked") and not (replaced and _is_head(k))
    ]
    if leftover or result.unexpected_keys:  # cannot happen after the checks above
        raise ValueError(f"{path}: keys left unloaded {leftover} {result.unexpected_keys}")
    if replaced:
        model.reset_heads()
    model.transform_input = True
    return {
        "file": str(path),
        "loaded": len(selected),
        "replaced_heads": replaced,
        "ignored": ignored,
    }
