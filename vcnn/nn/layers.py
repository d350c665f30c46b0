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


def sigmoid_weights(layers: nn.Sequential, mean: torch.Tensor, std: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (bias, weight^T) of each layer of `sigmoid_embedding` for `layers` (an `mlp` of tanh
    layers, the last one too) on inputs normalized as (x - mean) / std. tanh(z) = 2 sigmoid(2 z) - 1,
    and the affine maps (the normalization, 2 S - 1 between layers) are folded into the weights, so
    that each layer is one matrix product and one sigmoid. Folded once a forward pass, not once a
    piece: a dozen small tensor operations a layer, which in a coupled solve's 629 passes ran 4,105
    times and took 5 to 10 % of the network's time (docs/results.md)."""
    linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
    weight, bias = linears[0].weight / std, linears[0].bias - linears[0].weight @ (mean / std)
    folded = []
    for i, layer in enumerate(linears):
        if i:  # the input is S, tanh = 2 S - 1: W (2 S - 1) + b = (2 W) S + (b - W 1)
            weight, bias = 2 * layer.weight, layer.bias - layer.weight.sum(1)
        folded.append((2 * bias, (2 * weight).t()))  # sigmoid(2 z)
    return folded


def sigmoid_embedding(folded: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """S with 2 S - 1 = the tanh layers that `sigmoid_weights` folded, on x: the same function, faster
    on CPU, where the vector-cloud network spends most of its time in the embedding's tanh (torch's
    tanh costs six times its sigmoid here: 1.26 against 0.20 ns an element, float32, AVX-512). Each
    layer is one matrix product and one sigmoid in place; the caller folds the last 2 S - 1 into
    what it does next. Equal to the tanh layers to rounding."""
    s = x.reshape(-1, x.shape[-1])
    for bias, weight in folded:
        s = torch.addmm(bias, s, weight).sigmoid_()
    return s.reshape(*x.shape[:-1], -1)


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
