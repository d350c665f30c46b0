"""What every cloud network shares: its configuration (kind, sizes, outputs and their kinds), the
normalisation buffers, and the symmetry declaration that `vcnn.symmetry` checks.

All networks take the same inputs (member vectors, scalars and quadrature weights of each cloud)
and return one flat (B, width) tensor; `CloudNetConfig.layout` says which columns hold which
output. Outputs are scalars (invariant), vectors (v -> R v) or symmetric tensors (T -> R T R^T),
each named with its kind. The networks themselves: `vcnn.nn.cloud_nets` (vector-cloud, local MLP,
raw-coordinate baseline), `vcnn.nn.graph_nets` (pairwise networks) and `vcnn.nn.whole_mesh` (one
graph over a whole case, whose "clouds" are the nodes' neighbourhoods, flat), registered by name.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from vcnn.errors import VcnnError
from vcnn.nn.layers import ACTIVATIONS
from vcnn.nn.registry import NETWORKS


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
    # ("mesh": the forward pass takes the mesh edges among the members, `vcnn.clouds.MeshGraph.edges`)
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
        if self.kind not in NETWORKS:
            raise ModelError(f"unknown model kind {self.kind!r}; choose from {sorted(NETWORKS)}")
        network = NETWORKS[self.kind]
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
        if self.graph not in ("cloud", "mesh") or (self.graph == "mesh" and not network.pairwise):
            pairwise = sorted(name for name, net in NETWORKS.items() if net.pairwise)
            raise ModelError(f"graph must be 'cloud' or, for the networks {pairwise}, 'mesh'; got {self.graph!r}")
        if set(self.output_kinds) - set(network.output_kinds):
            raise ModelError(f"a {self.kind} network has {' and '.join(network.output_kinds)} outputs only")

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


class CloudNet(nn.Module):
    """Normalisation buffers and the symmetry declaration shared by the cloud networks."""

    invariant_to: tuple[str, ...] = ALL_TRANSFORMS
    output_kinds: tuple[str, ...] = ("scalar",)  # the kinds of output the network can make
    pairwise: bool = False  # messages between members: may run on the mesh graph (`graph = "mesh"`)
    whole_mesh: bool = False  # one graph over every node of a case (`vcnn.nn.whole_mesh`), not a cloud per node
    sigmoid_training: bool = False  # tanh embeddings trained in their sigmoid form (`TrainingConfig.sigmoid_tanh`)

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
            inputs["edges"] = "scalar"  # (2, E) or a (B, n, n) adjacency, renumbered with the members
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
