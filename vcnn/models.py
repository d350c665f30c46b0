"""Networks on clouds, all with the same inputs (vectors, scalars, weights of each member).

- `VectorCloudNet` (Zhou, Han & Xiao 2022): an embedding network maps each member's invariant
  scalars to G (n x m); the cloud average L = sum_j w_j G_j^T Q_j (m x k dim) of the embedding
  times the member vectors Q_j rotates as L R^T; D = L L*^T with L* the first m' rows of L is
  then invariant (m x m'), and a fitting network maps D to the outputs. Invariance to rotations
  and reflections (R R^T = I), translations (only relative positions enter), permutations and
  the choice of cloud points (a weighted average) holds by construction, not by training.
- `LocalMLP`: a fitting network on the cloud average of the invariant scalars; with a
  one-point cloud (`KNearest(k=1)`: the query node itself) it is the classic local closure.
- `graph_kernel`, `graph_kernel_raw`, `message_passing`: pairwise networks on the cloud graph
  or on the mesh edges among the members (`graph = "mesh"`; `vcnn.graph_models`).
- `RawCloudNet`: the same embedding and average, but each member's raw vector components enter
  the embedding next to its scalars (Deep Sets on raw coordinates). Invariant to translations
  and permutations only: the baseline that shows what a frame-dependent network does.

Outputs are scalars (invariant), vectors (v -> R v) or symmetric tensors (T -> R T R^T), each
named with its kind. The vector-cloud network makes equivariant ones from the rows of L (each row
a vector that turns with the frame), as in the tensorial follow-up of VCNN: a vector is a
combination of the rows with invariant coefficients from the fitting network, or the output of
unitary-equivariant vector layers (Ma & Chan, `vcnn.layers`) on the rows; a tensor is L*^T C L* with C symmetric
and invariant. A network returns one flat (B, width) tensor; `CloudNetConfig.layout` says which
columns hold which output.

Every model declares in `symmetry` how its inputs and outputs transform and which transforms it
respects (`invariant_to`: outputs unchanged, or turned as declared); `vcnn.symmetry` checks the
declaration.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from vcnn.errors import VcnnError
from vcnn.layers import ACTIVATIONS, UnitaryVectorHead, mlp



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
    output_kinds: tuple[str, ...] = ()  # "scalar", "vector" or "tensor" per output; default all scalar
    activation: str = "tanh"
    # VectorCloudNet: LayerNorm on the invariant D before the fitting network. Not in the paper;
    # D is invariant, so any function of it is too. It sped up training a lot here (demo study,
    # 15 epochs: 15.5 % -> 8.3 % validation error).
    invariant_norm: bool = False
    # VectorCloudNet vector outputs: () = invariant coefficients of L's rows; widths = Ma & Chan
    # unitary-equivariant vector layers on L's rows (hidden widths, in vectors).
    vector_head: tuple[int, ...] = ()
    # GraphKernelNet: number of kernel layers (node width = embedding[-1]) and the kernel network's hidden widths
    graph_layers: int = 2
    kernel: tuple[int, ...] = (32,)
    # Pairwise networks: messages between every pair of members ("cloud") or along mesh edges
    # ("mesh": the forward pass takes the members' adjacency, `vcnn.clouds.MeshGraph`)
    graph: str = "cloud"

    def __post_init__(self):
        object.__setattr__(self, "embedding", tuple(int(w) for w in self.embedding))
        object.__setattr__(self, "fitting", tuple(int(w) for w in self.fitting))
        object.__setattr__(self, "vector_head", tuple(int(w) for w in self.vector_head))
        object.__setattr__(self, "kernel", tuple(int(w) for w in self.kernel))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "output_kinds", tuple(self.output_kinds) or ("scalar",) * len(self.outputs))
        if len(self.output_kinds) != len(self.outputs) or set(self.output_kinds) - set(OUTPUT_KINDS):
            raise ModelError(f"output_kinds must give one of {list(OUTPUT_KINDS)} for each of the outputs {list(self.outputs)}")
        if self.kind not in KINDS:
            raise ModelError(f"unknown model kind {self.kind!r}; choose from {sorted(KINDS)}")
        if self.dim not in (2, 3):
            raise ModelError(f"dim must be 2 or 3, got {self.dim}")
        if self.n_scalars < 1 or self.n_vectors < 1 or not self.embedding or not self.outputs:
            raise ModelError("the network needs scalars, vectors, an embedding and at least one output")
        if not 1 <= self.m_prime <= self.embedding[-1]:
            raise ModelError(f"m' must be between 1 and m = {self.embedding[-1]}, got {self.m_prime}")
        if self.activation not in ACTIVATIONS:
            raise ModelError(f"unknown activation {self.activation!r}; choose from {sorted(ACTIVATIONS)}")
        if min(self.embedding + self.fitting + self.vector_head + self.kernel, default=1) < 1 or self.graph_layers < 1:
            raise ModelError("layer widths and graph_layers must be positive")
        if self.graph not in ("cloud", "mesh") or (self.graph == "mesh" and self.kind not in PAIRWISE):
            raise ModelError(f"graph must be 'cloud' or, for the networks {list(PAIRWISE)}, 'mesh'; got {self.graph!r}")
        allowed = {"vector_cloud": OUTPUT_KINDS, "raw_cloud": OUTPUT_KINDS, "message_passing": ("scalar", "vector")}
        if set(self.output_kinds) - set(allowed.get(self.kind, ("scalar",))):
            raise ModelError(f"a {self.kind} network has {' and '.join(allowed.get(self.kind, ('scalar',)))} outputs only")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def names(self, kind: str) -> tuple[str, ...]:
        return tuple(n for n, k in zip(self.outputs, self.output_kinds) if k == kind)

    def layout(self) -> dict[str, tuple[str, slice]]:
        """{output: (kind, its columns in the flat output)}: scalars, then vectors (dim columns
        each), then tensors (dim x dim, row-major), each group in the order of `outputs`."""
        width = {"scalar": 1, "vector": self.dim, "tensor": self.dim**2}
        layout, start = {}, 0
        for kind in OUTPUT_KINDS:
            for name in self.names(kind):
                layout[name] = (kind, slice(start, start + width[kind]))
                start += width[kind]
        return layout

    @property
    def width(self) -> int:
        return max(s.stop for _, s in self.layout().values())


ALL_TRANSFORMS = ("rotation", "reflection", "translation", "permutation")
OUTPUT_KINDS = ("scalar", "vector", "tensor")
KINDS = ("vector_cloud", "local_mlp", "raw_cloud", "graph_kernel", "graph_kernel_raw", "message_passing")
PAIRWISE = ("graph_kernel", "graph_kernel_raw", "message_passing")


class CloudNet(nn.Module):
    """Normalisation buffers and the symmetry declaration shared by the cloud networks."""

    invariant_to: tuple[str, ...] = ALL_TRANSFORMS

    def __init__(self, config: CloudNetConfig):
        super().__init__()
        self.config = config
        # Affine maps of the (invariant) input scalars and of the flat outputs, fitted to the
        # training data and saved with the weights. For vectors and tensors they commute with the
        # frame (`vcnn.data.feature_statistics`): one scale per output, a mean of 0 or c I.
        self.register_buffer("scalar_mean", torch.zeros(config.n_scalars))
        self.register_buffer("scalar_std", torch.ones(config.n_scalars))
        self.register_buffer("output_mean", torch.zeros(config.width))
        self.register_buffer("output_std", torch.ones(config.width))

    def set_normalization(self, statistics: dict) -> None:
        """Set the buffers from `vcnn.data.feature_statistics`."""
        for name in ("scalar_mean", "scalar_std", "output_mean", "output_std"):
            buffer = getattr(self, name)
            buffer.copy_(torch.as_tensor(statistics[name], dtype=buffer.dtype))

    @property
    def symmetry(self) -> dict:
        """How inputs and outputs transform, and the transforms the outputs must not feel."""
        inputs = {"vectors": "vector", "scalars": "scalar", "weights": "scalar"}
        if self.config.graph == "mesh":
            inputs["adjacency"] = "scalar"  # (B, n, n), permuted with the members
        return {
            "inputs": inputs,
            "outputs": dict(zip(self.config.outputs, self.config.output_kinds)),
            "invariant_to": list(self.invariant_to),
        }

    def elements_per_cloud(self, n: int) -> int:
        """Size of the largest intermediate tensor for one cloud of n members (sets batch sizes)."""
        return n * max(self.config.embedding + self.config.fitting)

    def normalized_scalars(self, scalars: torch.Tensor) -> torch.Tensor:
        return (scalars - self.scalar_mean) / self.scalar_std

    def denormalized(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs * self.output_std + self.output_mean

    def split(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """The flat (B, width) outputs as {name: (B,), (B, dim) or (B, dim, dim)}."""
        dim = self.config.dim
        shapes = {"scalar": (), "vector": (dim,), "tensor": (dim, dim)}
        return {name: outputs[:, cols].reshape((-1,) + shapes[kind]) for name, (kind, cols) in self.config.layout().items()}


class VectorCloudNet(CloudNet):
    """Invariant scalars and equivariant vectors and tensors from a cloud of vectors and scalars."""

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        m, rows = config.embedding[-1], config.embedding[-1] * config.n_vectors
        self.n_coefficients = {
            "scalar": len(config.names("scalar")),
            "vector": 0 if config.vector_head else rows * len(config.names("vector")),
            "tensor": (config.m_prime * config.n_vectors) ** 2 * len(config.names("tensor")),
        }
        self.embed = mlp((config.n_scalars,) + config.embedding, config.activation, last_activation=True)
        self.fit = mlp((m * config.m_prime,) + config.fitting + (sum(self.n_coefficients.values()),), config.activation, False)
        self.norm = nn.LayerNorm(m * config.m_prime) if config.invariant_norm else nn.Identity()
        if config.vector_head and config.names("vector"):
            self.vector_head = UnitaryVectorHead((rows,) + config.vector_head + (len(config.names("vector")),))

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """vectors (B, n, k, dim), scalars (B, n, f), weights (B, n) summing to 1 -> (B, width)."""
        batch, n = weights.shape
        dim, m_prime = self.config.dim, self.config.m_prime
        q = vectors.reshape(batch, n, -1)  # each vector's components stay together: Q R~ with R~ orthogonal
        g = self.embed(self.normalized_scalars(scalars))  # (B, n, m)
        moments = torch.einsum("bn,bnm,bnc->bmc", weights, g, q)  # (B, m, k dim)
        invariant = moments @ moments[:, :m_prime].transpose(1, 2)  # (B, m, m')
        coefficients = self.fit(self.norm(invariant.reshape(batch, -1)))
        scalar, vector, tensor = coefficients.split(list(self.n_coefficients.values()), dim=1)
        rows = moments.reshape(batch, -1, dim)  # (B, m k, dim): vectors that turn with the frame
        parts = [scalar]
        if self.config.names("vector"):
            if self.config.vector_head:
                parts.append(self.vector_head(rows).reshape(batch, -1))
            else:
                parts.append((vector.reshape(batch, -1, rows.shape[1]) @ rows).reshape(batch, -1))
        if self.config.names("tensor"):
            first = rows[:, : m_prime * self.config.n_vectors]  # L*: the rows of the first m' embeddings
            c = tensor.reshape(batch, -1, first.shape[1], first.shape[1])
            symmetric = (c + c.transpose(2, 3)) / 2
            parts.append(torch.einsum("zai,ztac,zcj->ztij", first, symmetric, first).reshape(batch, -1))
        return self.denormalized(torch.cat(parts, dim=1))


class LocalMLP(CloudNet):
    """Outputs from the cloud-averaged invariant scalars alone (no vectors)."""

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        widths = (config.n_scalars,) + config.embedding + config.fitting + (config.width,)
        self.fit = mlp(widths, config.activation, False)

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        mean = torch.einsum("bn,bnf->bf", weights, self.normalized_scalars(scalars))
        return self.denormalized(self.fit(mean))


class RawCloudNet(CloudNet):
    """Deep Sets on each member's scalars and raw vector components: not rotation invariant.
    Vector and tensor outputs are raw components, so they do not turn with the frame either."""

    invariant_to = ("translation", "permutation")

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        width = config.n_scalars + config.n_vectors * config.dim
        self.embed = mlp((width,) + config.embedding, config.activation, last_activation=True)
        self.fit = mlp((config.embedding[-1],) + config.fitting + (config.width,), config.activation, False)

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        batch, n = weights.shape
        members = torch.cat([self.normalized_scalars(scalars), vectors.reshape(batch, n, -1)], dim=-1)
        pooled = torch.einsum("bn,bnm->bm", weights, self.embed(members))
        return self.denormalized(self.fit(pooled))


def build_model(config: CloudNetConfig) -> CloudNet:
    """The network of `config.kind`."""
    from vcnn.graph_models import GraphKernelNet, MessagePassingNet, RawGraphKernelNet

    networks = {
        "vector_cloud": VectorCloudNet,
        "local_mlp": LocalMLP,
        "raw_cloud": RawCloudNet,
        "graph_kernel": GraphKernelNet,
        "graph_kernel_raw": RawGraphKernelNet,
        "message_passing": MessagePassingNet,
    }
    return networks[config.kind](config)
