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
