"""Networks on clouds, all with the same inputs (vectors, scalars, weights of each member).

- `VectorCloudNet` (Zhou, Han & Xiao 2022): an embedding network maps each member's invariant
  scalars to G (n x m); the cloud average L = sum_j w_j G_j^T Q_j (m x k dim) of the embedding
  times the member vectors Q_j rotates as L R^T; D = L L*^T with L* the first m' rows of L is
  then invariant (m x m'), and a fitting network maps D to the outputs. Invariance to rotations
  and reflections (R R^T = I), translations (only relative positions enter), permutations and
  the choice of cloud points (a weighted average) holds by construction, not by training.
- `LocalMLP`: a fitting network on the cloud average of the invariant scalars; with a
  one-point cloud (`KNearest(k=1)`: the query node itself) it is the classic local closure.
- `GraphKernelNet` (Li et al. 2020 graph kernel network, an edge-conditioned convolution on the
  fully connected graph of the cloud's members): node features updated by v_i <- act(W v_i +
  sum_j w_j K(e_ij) v_j) with the matrix K(e_ij) from a kernel network. In the frame-invariant form
  of Zafar et al. 2022 (`graph_kernel`) nodes carry invariant scalars and edges the dot products
  of the members' vectors (Q_i Q_j^T) and the scalars of both ends; in the original form
  (`graph_kernel_raw`) nodes and edges carry raw vector components. Cost grows as n^2.
- `MessagePassingNet` (PaiNN / EGNN style): each member carries h invariant scalars and h vectors
  (initially linear in its own vectors); messages on the fully connected, quadrature-weighted
  cloud graph are built from invariants only (dot products, lengths of Q_j - Q_i) and move vectors
  along the other members' vectors and along Q_j - Q_i; a gated update mixes the vector channels.
  Scalar outputs from the pooled scalars, vector outputs from gated pooled vectors.
- `RawCloudNet`: the same embedding and average, but each member's raw vector components enter
  the embedding next to its scalars (Deep Sets on raw coordinates). Invariant to translations
  and permutations only: the baseline that shows what a frame-dependent network does.

Outputs are scalars (invariant), vectors (v -> R v) or symmetric tensors (T -> R T R^T), each
named with its kind. The vector-cloud network makes equivariant ones from the rows of L (each row
a vector that turns with the frame), as in the tensorial follow-up of VCNN: a vector is a
combination of the rows with invariant coefficients from the fitting network, or the output of
unitary-equivariant vector layers (Ma & Chan) on the rows; a tensor is L*^T C L* with C symmetric
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

    def __post_init__(self):
        object.__setattr__(self, "embedding", tuple(int(w) for w in self.embedding))
        object.__setattr__(self, "fitting", tuple(int(w) for w in self.fitting))
        object.__setattr__(self, "vector_head", tuple(int(w) for w in self.vector_head))
        object.__setattr__(self, "kernel", tuple(int(w) for w in self.kernel))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "output_kinds", tuple(self.output_kinds) or ("scalar",) * len(self.outputs))
        if len(self.output_kinds) != len(self.outputs) or set(self.output_kinds) - set(OUTPUT_KINDS):
            raise ModelError(f"output_kinds must give one of {list(OUTPUT_KINDS)} for each of the outputs {list(self.outputs)}")
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
        if min(self.embedding + self.fitting + self.vector_head + self.kernel, default=1) < 1 or self.graph_layers < 1:
            raise ModelError("layer widths and graph_layers must be positive")
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


def mlp(widths: tuple[int, ...], activation: str, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


ALL_TRANSFORMS = ("rotation", "reflection", "translation", "permutation")
OUTPUT_KINDS = ("scalar", "vector", "tensor")


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
        return {
            "inputs": {"vectors": "vector", "scalars": "scalar", "weights": "scalar"},
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


class GraphKernelNet(CloudNet):
    """Edge-conditioned convolution on the fully connected cloud graph, invariant edge features."""

    raw = False

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        f, k, dim, h = config.n_scalars, config.n_vectors, config.dim, config.embedding[-1]
        node_in = f + (k * dim if self.raw else 0)
        edge_in = 2 * f + (2 * k * dim if self.raw else k * k)
        self.lift = mlp((node_in,) + config.embedding, config.activation, last_activation=True)
        self.kernels = nn.ModuleList(mlp((edge_in,) + config.kernel + (h * h,), config.activation, False) for _ in range(config.graph_layers))
        self.linears = nn.ModuleList(nn.Linear(h, h) for _ in range(config.graph_layers))
        self.activation = ACTIVATIONS[config.activation]()
        self.fit = mlp((h,) + config.fitting + (config.width,), config.activation, False)

    def elements_per_cloud(self, n: int) -> int:
        return n * n * self.config.embedding[-1] ** 2  # one h x h kernel matrix per pair of members

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        batch, n = weights.shape
        s = self.normalized_scalars(scalars)
        q = vectors.reshape(batch, n, -1)
        if self.raw:
            nodes, pair = torch.cat([s, q], dim=-1), q
            edges = [pair[:, :, None].expand(-1, -1, n, -1), pair[:, None].expand(-1, n, -1, -1)]
        else:  # Q_i Q_j^T: every dot product between a vector of member i and one of member j
            nodes = s
            edges = [torch.einsum("bikd,bjld->bijkl", vectors, vectors).reshape(batch, n, n, -1)]
        edges = torch.cat(edges + [s[:, :, None].expand(-1, -1, n, -1), s[:, None].expand(-1, n, -1, -1)], dim=-1)
        v = self.lift(nodes)  # (B, n, h)
        h = v.shape[-1]
        for kernel, linear in zip(self.kernels, self.linears):
            matrices = kernel(edges).reshape(batch, n, n, h, h)
            v = self.activation(linear(v) + torch.einsum("bijhg,bjg,bj->bih", matrices, v, weights))
        return self.denormalized(self.fit(torch.einsum("bn,bnh->bh", weights, v)))


class RawGraphKernelNet(GraphKernelNet):
    """The original graph kernel network: raw vector components on nodes and edges."""

    raw = True
    invariant_to = ("translation", "permutation")


class MessagePassingNet(CloudNet):
    """Equivariant message passing on the cloud graph (PaiNN-style scalar and vector channels)."""

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        f, k, h = config.n_scalars, config.n_vectors, config.embedding[-1]
        self.lift = mlp((f,) + config.embedding, config.activation, last_activation=True)
        self.lift_vectors = nn.Linear(k, h, bias=False)
        edge_in = k * k + k  # Q_i Q_j^T and |Q_j - Q_i| per vector feature
        self.filters = nn.ModuleList(mlp((edge_in,) + config.kernel + ((2 + k) * h,), config.activation, False) for _ in range(config.graph_layers))
        self.node_nets = nn.ModuleList(mlp((h, h, (2 + k) * h), config.activation, False) for _ in range(config.graph_layers))
        self.mix = nn.ModuleList(nn.Linear(h, 2 * h, bias=False) for _ in range(config.graph_layers))
        self.gates = nn.ModuleList(mlp((2 * h, h, 3 * h), config.activation, False) for _ in range(config.graph_layers))
        if config.names("scalar"):
            self.fit = mlp((h,) + config.fitting + (len(config.names("scalar")),), config.activation, False)
        if config.names("vector"):
            self.vector_gate = nn.Linear(h, h * len(config.names("vector")))

    def elements_per_cloud(self, n: int) -> int:
        return n * n * (2 + self.config.n_vectors) * self.config.embedding[-1]

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        batch, n, k, dim = vectors.shape
        s = self.lift(self.normalized_scalars(scalars))  # (B, n, h)
        v = self.lift_vectors(vectors.transpose(2, 3)).transpose(2, 3)  # (B, n, h, dim)
        h = s.shape[-1]
        difference = vectors[:, None] - vectors[:, :, None]  # (B, i, j, k, dim): Q_j - Q_i
        edges = torch.cat(
            [torch.einsum("bikd,bjld->bijkl", vectors, vectors).reshape(batch, n, n, -1), difference.norm(dim=-1)], dim=-1
        )
        for filters, node_net, mix, gate in zip(self.filters, self.node_nets, self.mix, self.gates):
            x = filters(edges) * node_net(s)[:, None]  # (B, i, j, (2 + k) h), invariant
            ds, dvv, dvs = x.split([h, h, k * h], dim=-1)
            s = s + torch.einsum("bijh,bj->bih", ds, weights)
            v = v + torch.einsum("bijh,bjhd,bj->bihd", dvv, v, weights)
            v = v + torch.einsum("bijhk,bijkd,bj->bihd", dvs.reshape(batch, n, n, h, k), difference, weights)
            uv, wv = mix(v.transpose(2, 3)).transpose(2, 3).split([h, h], dim=2)  # (B, n, h, dim) each
            a_vv, a_sv, a_ss = gate(torch.cat([s, wv.norm(dim=-1)], dim=-1)).split([h, h, h], dim=-1)
            v = v + a_vv[..., None] * uv
            s = s + a_sv * (uv * wv).sum(-1) + a_ss
        parts = []
        if self.config.names("scalar"):
            parts.append(self.fit(torch.einsum("bn,bnh->bh", weights, s)))
        if self.config.names("vector"):
            gated = self.vector_gate(s).reshape(batch, n, -1, h)  # (B, n, outputs, h), invariant
            parts.append(torch.einsum("bn,bnoh,bnhd->bod", weights, gated, v).reshape(batch, -1))
        return self.denormalized(torch.cat(parts, dim=1))


MODELS = {
    "vector_cloud": VectorCloudNet,
    "local_mlp": LocalMLP,
    "raw_cloud": RawCloudNet,
    "graph_kernel": GraphKernelNet,
    "graph_kernel_raw": RawGraphKernelNet,
    "message_passing": MessagePassingNet,
}


def build_model(config: CloudNetConfig) -> CloudNet:
    """The network of `config.kind`."""
    return MODELS[config.kind](config)
