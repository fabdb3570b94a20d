"""Layers for running many small networks as one batched computation."""

from __future__ import annotations

import math

import torch
from torch import nn


class GroupedLinear(nn.Module):
    """``groups`` independent dense layers applied at once (an einsum).

    Input ``(batch, groups, in_features)``, output ``(batch, groups, out_features)``: group
    ``g`` is ``x[:, g] @ weight[g] + bias[g]``, exactly what ``groups`` separate
    ``nn.Linear(in_features, out_features)`` layers give (``weight[g]`` is their weight
    transposed). Initialised like ``nn.Linear``.
    """

    def __init__(self, groups: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(groups, out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(in), 1/sqrt(in)) for weights and biases, as ``nn.Linear``."""
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply each group's layer to its slice of ``x``."""
        out = torch.einsum("bgi,gio->bgo", x, self.weight)
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return f"groups={self.groups}, in_features={self.in_features}, out={self.out_features}"


class AmplitudeScale(nn.Module):
    """Divide each record by a robust amplitude: half the spread between the ``1 - quantile``
    and ``quantile`` values over time, of all leads together (``per_lead=False``: the leads'
    ratios, hence the electrical axis, are kept) or of each lead (``per_lead=True``).

    Input ``(batch, leads, samples)``; the amplitude is clamped below at ``floor`` (input
    units) so that a flat lead is not blown up. No parameters: the output of a record does not
    depend on the others in its batch. Amplifier gains and electrode contact differ between
    hospitals; absolute voltage (low QRS voltage) is lost.
    """

    def __init__(self, per_lead: bool = False, quantile: float = 0.99, floor: float = 0.05):
        super().__init__()
        if not 0.5 < quantile <= 1.0:
            raise ValueError(f"quantile must be in (0.5, 1], not {quantile}")
        self.per_lead, self.quantile, self.floor = bool(per_lead), float(quantile), float(floor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` over its robust amplitude."""
        values = x.float() if self.per_lead else x.float().flatten(1).unsqueeze(1)
        q = torch.tensor([1.0 - self.quantile, self.quantile], device=x.device)
        low, high = torch.quantile(values, q, dim=-1, keepdim=True)
        scale = ((high - low) / 2).clamp_min(self.floor)
        return x / scale.to(x.dtype)

    def extra_repr(self) -> str:
        return f"per_lead={self.per_lead}, quantile={self.quantile}, floor={self.floor}"


class MeanLogits(nn.Module):
    """Several networks with the same inputs and outputs as one: the mean of their outputs."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)
        if not len(self.members):
            raise ValueError("MeanLogits needs at least one member")

    def forward(self, *inputs) -> torch.Tensor:
        """The members' outputs, averaged."""
        return torch.stack([member(*inputs) for member in self.members]).mean(dim=0)
