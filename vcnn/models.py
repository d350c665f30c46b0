"""Networks on clouds, all with the same inputs (vectors, scalars, weights of each member).

- `VectorCloudNet` (Zhou, Han & Xiao 2022): an embedding network maps each member's invariant
  scalars to G (n x m); the cloud average L = sum_j w_j G_j^T Q_j (m x k dim) of the embedding
  times the member vectors Q_j rotates as L R^T; D = L L*^T with L* the first m' rows of L is
  then invariant (m x m'), and a fitting network maps D to the outputs. Invariance to rotations
  and reflections (R R^T = I), translations (only relative positions enter), permutations and
  the choice of cloud points (a weighted average) holds by construction, not by training.
- `LocalMLP`: a fitting network on the cloud average of the invariant scalars; with a
  one-point cloud (`KNearest(k=1)`: the query node itself) it is the classic local closure.
- `RawCloudNet`: the same embedding and average, but each member's raw vector components enter
  the embedding next to its scalars (Deep Sets on raw coordinates). Invariant to translations
  and permutations only: the baseline that shows what a frame-dependent network does.

Every model declares in `symmetry` how its inputs and outputs transform and which transforms it
is invariant to; `vcnn.symmetry` checks the declaration.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from vcnn.errors import VcnnError

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "softplus": nn.Softplus}


class ModelError(VcnnError):
    """An invalid model configuration."""


@dataclasses.dataclass(frozen=True)
class CloudNetConfig:
    """Kind and sizes of a cloud network. Defaults: the paper's 39,553-parameter vector-cloud
    network (7 scalars, 2-D). `LocalMLP` uses `embedding + fitting` as its hidden widths."""

    kind: str = "vector_cloud"
    n_scalars: int = 7
    n_vectors: int = 2
    dim: int = 2
    embedding: tuple[int, ...] = (32, 64, 64)  # the last width is m
    m_prime: int = 4
    fitting: tuple[int, ...] = (128,)
    outputs: tuple[str, ...] = ("concentration",)
    activation: str = "tanh"
    # VectorCloudNet: LayerNorm on the invariant D before the fitting network. Not in the paper;
    # D is invariant, so any function of it is too. It sped up training a lot here (demo study,
    # 15 epochs: 15.5 % -> 8.3 % validation error).
    invariant_norm: bool = False

    def __post_init__(self):
        object.__setattr__(self, "embedding", tuple(int(w) for w in self.embedding))
        object.__setattr__(self, "fitting", tuple(int(w) for w in self.fitting))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if self.kind not in MODELS:
            raise ModelError(f"unknown model kind {self.kind!r}; choose from {sorted(MODELS)}")
        if self.dim not in (2, 3):
            raise ModelError(f"dim must be 2 or 3, got {self.dim}")
        if self.n_scalars < 1 or self.n_vectors < 1 or not self.embedding or not self.outputs:
            raise ModelError("the network needs scalars, vectors, an embedding and at least one output")
        if not 1 <= self.m_prime <= self.embedding[-1]:
            raise ModelError(f"m' must be between 1 and m = {self.embedding[-1]}, got {self.m_prime}")
        if self.activation not in ACTIVATIONS:
            raise ModelError(f"unknown activation {self.activation!r}; choose from {sorted(ACTIVATIONS)}")
        if min(self.embedding + self.fitting, default=1) < 1:
            raise ModelError("layer widths must be positive")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def mlp(widths: tuple[int, ...], activation: str, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


ALL_TRANSFORMS = ("rotation", "reflection", "translation", "permutation")


class CloudNet(nn.Module):
    """Normalisation buffers and the symmetry declaration shared by the cloud networks."""

    invariant_to: tuple[str, ...] = ALL_TRANSFORMS

    def __init__(self, config: CloudNetConfig):
        super().__init__()
        self.config = config
        # Affine maps of the (invariant) input scalars and of the outputs, fitted to the training
        # data and saved with the weights.
        self.register_buffer("scalar_mean", torch.zeros(config.n_scalars))
        self.register_buffer("scalar_std", torch.ones(config.n_scalars))
        self.register_buffer("output_mean", torch.zeros(len(config.outputs)))
        self.register_buffer("output_std", torch.ones(len(config.outputs)))

    def set_normalization(self, statistics: dict) -> None:
        """Set the buffers from `vcnn.data.feature_statistics`."""
        for name in ("scalar_mean", "scalar_std", "output_mean", "output_std"):
            buffer = getattr(self, name)
            buffer.copy_(torch.as_tensor(statistics[name], dtype=buffer.dtype))

    @property
    def symmetry(self) -> dict:
        """How inputs and outputs transform, and the transforms the outputs must not feel."""
        return {
            "inputs": {"vectors": "vector", "scalars": "scalar", "weights": "scalar"},
            "outputs": {name: "scalar" for name in self.config.outputs},
            "invariant_to": list(self.invariant_to),
        }

    def normalized_scalars(self, scalars: torch.Tensor) -> torch.Tensor:
        return (scalars - self.scalar_mean) / self.scalar_std

    def denormalized(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs * self.output_std + self.output_mean


class VectorCloudNet(CloudNet):
    """Invariant scalar outputs from a cloud of vectors and scalars."""

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        m = config.embedding[-1]
        self.embed = mlp((config.n_scalars,) + config.embedding, config.activation, last_activation=True)
        self.fit = mlp((m * config.m_prime,) + config.fitting + (len(config.outputs),), config.activation, False)
        self.norm = nn.LayerNorm(m * config.m_prime) if config.invariant_norm else nn.Identity()

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """vectors (B, n, k, dim), scalars (B, n, f), weights (B, n) summing to 1 -> (B, outputs)."""
        batch, n = weights.shape
        q = vectors.reshape(batch, n, -1)  # each vector's components stay together: Q R~ with R~ orthogonal
        g = self.embed(self.normalized_scalars(scalars))  # (B, n, m)
        moments = torch.einsum("bn,bnm,bnc->bmc", weights, g, q)  # (B, m, k dim)
        invariant = moments @ moments[:, : self.config.m_prime].transpose(1, 2)  # (B, m, m')
        return self.denormalized(self.fit(self.norm(invariant.reshape(batch, -1))))


class LocalMLP(CloudNet):
    """Outputs from the cloud-averaged invariant scalars alone (no vectors)."""

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        widths = (config.n_scalars,) + config.embedding + config.fitting + (len(config.outputs),)
        self.fit = mlp(widths, config.activation, False)

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        mean = torch.einsum("bn,bnf->bf", weights, self.normalized_scalars(scalars))
        return self.denormalized(self.fit(mean))


class RawCloudNet(CloudNet):
    """Deep Sets on each member's scalars and raw vector components: not rotation invariant."""

    invariant_to = ("translation", "permutation")

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        width = config.n_scalars + config.n_vectors * config.dim
        self.embed = mlp((width,) + config.embedding, config.activation, last_activation=True)
        self.fit = mlp((config.embedding[-1],) + config.fitting + (len(config.outputs),), config.activation, False)

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        batch, n = weights.shape
        members = torch.cat([self.normalized_scalars(scalars), vectors.reshape(batch, n, -1)], dim=-1)
        pooled = torch.einsum("bn,bnm->bm", weights, self.embed(members))
        return self.denormalized(self.fit(pooled))


MODELS = {"vector_cloud": VectorCloudNet, "local_mlp": LocalMLP, "raw_cloud": RawCloudNet}


def build_model(config: CloudNetConfig) -> CloudNet:
    """The network of `config.kind`."""
    return MODELS[config.kind](config)
