"""The learned delineator's network: :class:`SegmentNet`, a 1-D encoder-decoder (U-Net
style) of shape :class:`NetConfig`, its weights file (:func:`save`, :func:`load`) and where
the kit's weights lie (:data:`WEIGHTS`, :func:`weights_path`).

The kit's weights are built from the 100 shared LUDB records by :data:`BUILD_COMMAND` into
:data:`WEIGHTS` (or the file ``$ECG_KIT_DELINEATOR_WEIGHTS`` names); they are not kept in git,
and nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from torch import nn

from team_code.nn.delineator.inputs import CLASSES, check_channels

#: Where the kit's weights are built by default (git-ignored: built by
#: :data:`BUILD_COMMAND`, never committed or downloaded); ``$ECG_KIT_DELINEATOR_WEIGHTS``
#: names another file.
WEIGHTS = Path(__file__).parents[1] / "delineator.safetensors"
WEIGHTS_ENV = "ECG_KIT_DELINEATOR_WEIGHTS"
#: How the default weights are built from the shared LUDB records (2.4 min on one thread).
BUILD_COMMAND = (
    "python -m team_code.nn.delineator train --ludb ../shared/data/ludb "
    "--out team_code/nn/delineator.safetensors"
)


@dataclasses.dataclass(frozen=True)
class NetConfig:
    """Shape of :class:`SegmentNet`."""

    widths: tuple[int, ...] = (8, 16, 16, 32)  # channels per level (each level halves time)
    kernel: int = 7  # convolution width at every level
    first_convs: int = 1  # convolutions in the finest level (encoder and decoder)
    dilation: int = 1  # dilation of the coarsest level's second convolution
    lowpass_hz: float = 40.0  # the input's low-pass cut-off (0: none; see prepare)
    input_channels: int = 1  # 1: the lead low-passed at lowpass_hz; 2: that and a second
    second_channel: str = "wide"  # with 2 channels: "wide", the lead without the low-pass;
    # "context", the root mean square of the record's leads (see prepare)
    leads: int = 1  # leads read at once: 1, one lead at a time (the kit's network); 12, the
    # twelve standard leads together, labelling the union of their waves (compared, not shipped)

    def __post_init__(self):
        bad = min(self.widths, default=0) < 1 or self.kernel < 1 or self.kernel % 2 == 0
        if len(self.widths) < 2 or bad or self.dilation < 1:
            raise ValueError(
                f"NetConfig needs at least two positive widths and an odd kernel; got {self}"
            )
        check_channels(self.input_channels, self.lowpass_hz, "NetConfig", self.second_channel)
        if self.leads < 1 or (self.leads > 1 and self.input_channels != 1):
            raise ValueError(
                f"NetConfig: leads {self.leads} with input_channels {self.input_channels} "
                "(one lead, or several leads of one channel each)"
            )

    @property
    def multiple(self) -> int:
        """Input lengths are padded to a multiple of this."""
        return 2 ** (len(self.widths) - 1)


def _block(c_in: int, c_out: int, kernel: int, n: int, dilation: int = 1) -> nn.Sequential:
    """``n`` convolutions (each with batch normalisation and ReLU); the second and later
    ones dilated by ``dilation``."""
    layers: list[nn.Module] = []
    for j in range(n):
        dil = dilation if j else 1
        layers += [
            nn.Conv1d(
                c_in if j == 0 else c_out, c_out, kernel, padding=dil * (kernel // 2), dilation=dil
            ),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class SegmentNet(nn.Module):
    """1-D U-Net: (batch, ``config.input_channels``, n) normalised lead (or (batch,
    ``config.leads``, n) normalised leads read together) -> (batch, 4, n) class logits.

    ``n`` must be a multiple of ``config.multiple`` (:func:`predict_labels` pads)."""

    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = cfg = config or NetConfig()
        w = cfg.widths
        self.down = nn.ModuleList()
        c = cfg.input_channels * cfg.leads
        for i, width in enumerate(w):
            dil = cfg.dilation if i == len(w) - 1 else 1
            self.down.append(_block(c, width, cfg.kernel, cfg.first_convs if i == 0 else 2, dil))
            c = width
        self.up = nn.ModuleList(
            _block(w[i + 1] + w[i], w[i], cfg.kernel, cfg.first_convs if i == 0 else 2)
            for i in range(len(w) - 2, -1, -1)
        )
        self.head = nn.Conv1d(w[0], len(CLASSES), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = nn.functional.max_pool1d(x, 2)
            x = block(x)
            skips.append(x)
        for j, block in enumerate(self.up):
            skip = skips[-2 - j]
            x = nn.functional.interpolate(x, size=skip.shape[-1], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)

    def fuse(self) -> SegmentNet:
        """Fold every batch normalisation into its convolution (inference only; in place)."""
        for seq in [*self.down, *self.up]:
            layers = list(seq)
            fused: list[nn.Module] = []
            for layer in layers:
                if isinstance(layer, nn.BatchNorm1d) and fused and isinstance(fused[-1], nn.Conv1d):
                    conv = fused[-1]
                    s = layer.weight / torch.sqrt(layer.running_var + layer.eps)
                    with torch.no_grad():
                        conv.weight.mul_(s[:, None, None])
                        conv.bias.copy_((conv.bias - layer.running_mean) * s + layer.bias)
                    continue
                fused.append(layer)
            seq._modules.clear()
            for k, layer in enumerate(fused):
                seq.add_module(str(k), layer)
        return self.eval()


def save(model: SegmentNet, path: str | Path, facts: dict | None = None) -> None:
    """Weights as safetensors, with the network's shape (and ``facts``) in the metadata."""
    from safetensors.torch import save_file

    meta = {"net": json.dumps(dataclasses.asdict(model.config))}
    if facts:
        meta["facts"] = json.dumps(facts)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def weights_path() -> Path:
    """The kit's weights: ``$ECG_KIT_DELINEATOR_WEIGHTS`` if set, else :data:`WEIGHTS`; an
    error names the file and how to build it."""
    named = os.environ.get(WEIGHTS_ENV, "")
    path = Path(named) if named else WEIGHTS
    if not path.is_file():
        where = f"${WEIGHTS_ENV}" if named else "the default place"
        raise FileNotFoundError(
            f"delineator weights not found: {path} ({where}); build them with {BUILD_COMMAND}"
        )
    return path


def load(path: str | Path | None = None) -> SegmentNet:
    """The network saved at ``path`` (default: the kit's, :func:`weights_path`), batch
    normalisation folded in, in eval mode. Never downloads."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"delineator weights not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "net" not in meta:
        raise ValueError(f"{path}: not a delineator weights file (no 'net' metadata)")
    raw = json.loads(meta["net"])
    cfg = NetConfig(**{**raw, "widths": tuple(raw["widths"])})
    model = SegmentNet(cfg)
    model.load_state_dict(load_file(str(path)))
    return model.eval().fuse()
