"""Building blocks of the networks: multilayer perceptrons and Ma & Chan's unitary-equivariant
vector layers."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "softplus": nn.Softplus}


def mlp(widths: tuple[int, ...], activation: str, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class UnitaryVectorLayer(nn.Module):
    """Ma & Chan's unitary-equivariant layer on c vectors: y = x W + e B, e_i = x_i / |x_i|.

    x is (B, c_in, dim) with vectors as rows; every term is a linear combination of the input
    vectors or of their directions, so y turns (or reflects) with x.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_in, c_out) / c_in**0.5)
        self.direction = nn.Parameter(torch.zeros(c_in, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.norm(dim=-1, keepdim=True)
        e = x / torch.where(norm > 1e-12, norm, torch.ones_like(norm))
        return torch.einsum("bid,io->bod", x, self.weight) + torch.einsum("bid,io->bod", e, self.direction)


class VectorActivation(nn.Module):
    """sigma(u) = u / (1 + |u|) + a u: scales each vector by a function of its length."""

    def __init__(self, slope: float = 0.1):
        super().__init__()
        self.slope = nn.Parameter(torch.tensor(slope))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u / (1 + u.norm(dim=-1, keepdim=True)) + self.slope * u


class UnitaryVectorHead(nn.Sequential):
    """Unitary-equivariant vector layers of the given widths (in vectors), activations between."""

    def __init__(self, widths: tuple[int, ...]):
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(UnitaryVectorLayer(a, b))
            if i < len(widths) - 2:
                layers.append(VectorActivation())
        super().__init__(*layers)
