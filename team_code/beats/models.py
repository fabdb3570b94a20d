"""The three beat-level networks; each maps beats (batch, length) or (batch, 1, length) to logits.

- :class:`KachueeNet` — Kachuee, Fazeli and Sarrafzadeh (IEEE ICHI 2018): a 32-filter k=5
  convolution, five residual blocks (two 32-filter k=5 convolutions, a skip over them, ReLU,
  max-pooling of size 5 and stride 2), two fully connected layers of 32 and a softmax layer.
  :meth:`KachueeNet.prepare_transfer` freezes all but the last two layers (second dense layer
  and a new output layer) for myocardial infarction versus healthy.
- :class:`SkipCNN` — four blocks (32, 64, 128, 256 filters; k=5; BatchNorm; ReLU; max-pool 2;
  dropout 0.2), a 1x1-convolution skip from the input to block 2's output (1 -> 64 channels)
  and from block 1's output to block 3's output (32 -> 128), a 128-unit head with dropout 0.3.
- :class:`ResNetTCN` — Hu et al.'s joint model: a temporal convolutional network (Bai et al.
  2018: four temporal blocks, k=7, dilations 1, 2, 4, 8, 32/64/128/256 channels, weight norm,
  dropout 0.3) ending in a squeeze-and-excitation block, beside a 1D ResNet with an Inception
  stem (1, 3 and 5 convolutions and a max-pool of 3) and six residual modules (32, 32, 48, 48,
  64, 64 filters); both branches are globally averaged, concatenated and fed to one linear
  classifier.

Every model keeps its constructor arguments in ``spec`` (JSON-able), so that
``build(**spec)`` rebuilds it before ``load_state_dict``. Softmax is left to the loss and to
:func:`probabilities`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def _as_channels(x: torch.Tensor) -> torch.Tensor:
    """(batch, length) -> (batch, 1, length); (batch, 1, length) unchanged."""
    if x.ndim == 2:
        return x.unsqueeze(1)
    if x.ndim == 3 and x.shape[1] == 1:
        return x
    raise ValueError(f"beats must be (batch, length) or (batch, 1, length), got {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------
# Kachuee et al. (2018)


class _KachueeBlock(nn.Module):
    """conv-ReLU-conv, skip over both, ReLU, max-pool (5, stride 2)."""

    def __init__(self, channels: int, kernel: int, pool: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(channels, channels, kernel, padding=kernel // 2)
        self.pool = nn.MaxPool1d(pool, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(torch.relu(self.conv1(x)))
        return self.pool(torch.relu(x + y))


class KachueeNet(nn.Module):
    """Kachuee et al.'s (2018) residual CNN for 187-sample beats."""

    def __init__(
        self,
        n_classes: int = 5,
        input_length: int = 187,
        channels: int = 32,
        kernel: int = 5,
        n_blocks: int = 5,
        dense: int = 32,
    ):
        super().__init__()
        self.spec = {
            "name": "kachuee2018",
            "n_classes": n_classes,
            "input_length": input_length,
            "channels": channels,
            "kernel": kernel,
            "n_blocks": n_blocks,
            "dense": dense,
        }
        self.stem = nn.Conv1d(1, channels, kernel, padding=kernel // 2)
        self.blocks = nn.Sequential(
            *[_KachueeBlock(channels, kernel, 5, 2) for _ in range(n_blocks)]
        )
        length = input_length
        for _ in range(n_blocks):
            length = (length - 5) // 2 + 1
        if length < 1:
            raise ValueError(
                f"KachueeNet: input_length {input_length} too short for {n_blocks} blocks"
            )
        self.fc1 = nn.Linear(channels * length, dense)
        self.fc2 = nn.Linear(dense, dense)
        self.out = nn.Linear(dense, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The second dense layer's activations (batch, dense)."""
        x = self.blocks(self.stem(_as_channels(x)))
        x = torch.relu(self.fc1(x.flatten(1)))
        return torch.relu(self.fc2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))

    def prepare_transfer(self, n_classes: int = 2) -> KachueeNet:
        """Freeze every layer but the last two; the output layer is new with ``n_classes``."""
        for param in self.parameters():
            param.requires_grad_(False)
        self.out = nn.Linear(self.fc2.out_features, n_classes)
        for param in self.fc2.parameters():
            param.requires_grad_(True)
        self.spec = {**self.spec, "n_classes": n_classes}
        return self


# --------------------------------------------------------------------------------------------
# Skip-connection CNN


class _ConvBlock(nn.Module):
    """conv (k) - BatchNorm - ReLU - max-pool 2 - dropout."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm1d(c_out)
        self.pool = nn.MaxPool1d(2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pool(torch.relu(self.bn(self.conv(x)))))


class _Skip(nn.Module):
    """Average-pool to the target length, then a 1x1 convolution to the target channels."""

    def __init__(self, c_in: int, c_out: int, factor: int):
        super().__init__()
        self.pool = nn.AvgPool1d(factor)
        self.conv = nn.Conv1d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, length: int) -> torch.Tensor:
        y = self.conv(self.pool(x))
        return y[..., :length]


class SkipCNN(nn.Module):
    """Four conv blocks with skips input -> block 2 and block 1 -> block 3, 128-unit head."""

    def __init__(
        self,
        n_classes: int = 5,
        input_length: int = 187,
        filters: tuple[int, ...] = (32, 64, 128, 256),
        kernel: int = 5,
        dropout: float = 0.2,
        head: int = 128,
        head_dropout: float = 0.3,
    ):
        super().__init__()
        filters = tuple(int(f) for f in filters)
        if len(filters) != 4:
            raise ValueError(f"SkipCNN has four blocks, got filters {filters}")
        self.spec = {
            "name": "skip_cnn",
            "n_classes": n_classes,
            "input_length": input_length,
            "filters": list(filters),
            "kernel": kernel,
            "dropout": dropout,
            "head": head,
            "head_dropout": head_dropout,
        }
        c = (1, *filters)
        self.blocks = nn.ModuleList([_ConvBlock(c[i], c[i + 1], kernel, dropout) for i in range(4)])
        self.skip_in_to_2 = _Skip(1, filters[1], 4)
        self.skip_1_to_3 = _Skip(filters[0], filters[2], 4)
        length = input_length
        for _ in range(4):
            length //= 2
        if length < 1:
            raise ValueError(f"SkipCNN: input_length {input_length} too short for four pools")
        self.fc = nn.Linear(filters[3] * length, head)
        self.head_drop = nn.Dropout(head_dropout)
        self.out = nn.Linear(head, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = _as_channels(x)
        x1 = self.blocks[0](x0)
        x2 = self.blocks[1](x1)
        x2 = x2 + self.skip_in_to_2(x0, x2.shape[-1])
        x3 = self.blocks[2](x2)
        x3 = x3 + self.skip_1_to_3(x1, x3.shape[-1])
        x4 = self.blocks[3](x3)
        h = self.head_drop(torch.relu(self.fc(x4.flatten(1))))
        return self.out(h)


# --------------------------------------------------------------------------------------------
# ResNet-TCN (Hu et al.)


class _TemporalBlock(nn.Module):
    """Two weight-normed causal dilated convolutions with ReLU and dropout, and a residual."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.pad = (kernel - 1) * dilation  # left padding only: causal, no wasted outputs
        self.conv1 = weight_norm(nn.Conv1d(c_in, c_out, kernel, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(c_out, c_out, kernel, dilation=dilation))
        self.drop = nn.Dropout(dropout)
        self.down = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def _causal(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return conv(nn.functional.pad(x, (self.pad, 0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(torch.relu(self._causal(self.conv1, x)))
        y = self.drop(torch.relu(self._causal(self.conv2, y)))
        return torch.relu(y + self.down(x))


class _SqueezeExcite(nn.Module):
    """Channel attention: global average, bottleneck, sigmoid gates (Hu, Shen and Sun 2018)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(-1)))))
        return x * gate.unsqueeze(-1)


class _InceptionStem(nn.Module):
    """Parallel 1, 3 and 5 convolutions and a max-pool of 3 (then 1x1), concatenated."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        if c_out % 4:
            raise ValueError(f"inception stem channels must be a multiple of 4, got {c_out}")
        c = c_out // 4
        self.b1 = nn.Conv1d(c_in, c, 1)
        self.b3 = nn.Conv1d(c_in, c, 3, padding=1)
        self.b5 = nn.Conv1d(c_in, c, 5, padding=2)
        self.pool = nn.Sequential(nn.MaxPool1d(3, 1, padding=1), nn.Conv1d(c_in, c, 1))
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], dim=1)
        return torch.relu(self.bn(y))


class _ResModule(nn.Module):
    """conv3-BN-ReLU-conv3-BN plus shortcut (1x1 conv + BN when the shape changes), ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.short = (
            nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
            )
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.short(x))


class ResNetTCN(nn.Module):
    """Hu et al.'s ResNet-TCN: TCN + squeeze-excitation beside an Inception-stem ResNet."""

    def __init__(
        self,
        n_classes: int = 5,
        input_length: int = 180,
        tcn_channels: tuple[int, ...] = (32, 64, 128, 256),
        tcn_kernel: int = 7,
        tcn_dropout: float = 0.3,
        resnet_filters: tuple[int, ...] = (32, 32, 48, 48, 64, 64),
    ):
        super().__init__()
        tcn_channels = tuple(int(c) for c in tcn_channels)
        resnet_filters = tuple(int(c) for c in resnet_filters)
        self.spec = {
            "name": "resnet_tcn",
            "n_classes": n_classes,
            "input_length": input_length,
            "tcn_channels": list(tcn_channels),
            "tcn_kernel": tcn_kernel,
            "tcn_dropout": tcn_dropout,
            "resnet_filters": list(resnet_filters),
        }
        blocks, c_in = [], 1
        for i, c_out in enumerate(tcn_channels):
            blocks.append(_TemporalBlock(c_in, c_out, tcn_kernel, 2**i, tcn_dropout))
            c_in = c_out
        self.tcn = nn.Sequential(*blocks)
        self.se = _SqueezeExcite(tcn_channels[-1])
        self.stem = _InceptionStem(1, resnet_filters[0])
        modules, c_in = [], resnet_filters[0]
        for c_out in resnet_filters:
            modules.append(_ResModule(c_in, c_out, 2 if c_out != c_in else 1))
            c_in = c_out
        self.resnet = nn.Sequential(*modules)
        self.out = nn.Linear(tcn_channels[-1] + resnet_filters[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_channels(x)
        temporal = self.se(self.tcn(x)).mean(-1)
        spatial = self.resnet(self.stem(x)).mean(-1)
        return self.out(torch.cat([temporal, spatial], dim=1))


# --------------------------------------------------------------------------------------------

MODELS: dict[str, type[nn.Module]] = {
    "kachuee2018": KachueeNet,
    "skip_cnn": SkipCNN,
    "resnet_tcn": ResNetTCN,
}

#: The beat extraction each network was published with.
EXTRACTION: dict[str, str] = {
    "kachuee2018": "kachuee2018",
    "skip_cnn": "kachuee2018",
    "resnet_tcn": "hu_resnet_tcn",
}


def build(name: str, **kwargs) -> nn.Module:
    """A new network by name (``kachuee2018``, ``skip_cnn``, ``resnet_tcn``)."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown beat model {name!r}; known: {', '.join(MODELS)}") from None
    return cls(**kwargs)


def from_spec(spec: dict) -> nn.Module:
    """Rebuild a network from its ``spec`` (the ``name`` key picks the class)."""
    spec = dict(spec)
    return build(spec.pop("name"), **spec)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over classes."""
    return torch.softmax(logits, dim=-1)
