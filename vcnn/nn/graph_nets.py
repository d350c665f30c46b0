"""Pairwise networks: messages between members of a cloud, weighted by the members' quadrature
weights, on a sparse edge index (`vcnn.nn.message_passing`, torch-geometric layers). On the cloud
graph every member is connected to every other: cost and memory grow as n^2 per cloud.

With `graph = "mesh"` the messages run along mesh edges only: the forward pass takes the mesh
edges among the members (`vcnn.clouds.MeshGraph.edges`; a (B, n, n) adjacency also does), and
member i averages over its mesh neighbours and itself, weighted by quadrature weight: cost and
memory grow as n. Sub-sampled clouds lose most mesh edges, so mesh-graph networks want whole
clouds (e.g. `KNearest`, and `n_points = 0` in training).

- `GraphKernelNet` (Li et al. 2020 graph kernel network, an edge-conditioned convolution):
  node features updated by v_i <- act(W v_i + sum_j w_j K(e_ij) v_j) with the matrix K(e_ij)
  from a kernel network. In the frame-invariant form of Zafar et al. 2022 (`graph_kernel`) nodes
  carry invariant scalars and edges the dot products of the members' vectors (Q_i Q_j^T) and the
  scalars of both ends; in the original form (`graph_kernel_raw`) nodes and edges carry raw
  vector components.
- `MessagePassingNet` (PaiNN / EGNN style): each member carries h invariant scalars and h vectors
  (initially linear in its own vectors); messages are built from invariants only (dot products,
  lengths of Q_j - Q_i) and move vectors along the other members' vectors and along Q_j - Q_i; a
  gated update mixes the vector channels. Scalar outputs from the pooled scalars, vector outputs
  from gated pooled vectors.
"""

from __future__ import annotations

import torch
from torch import nn

from vcnn.nn.base import CloudNet, CloudNetConfig
from vcnn.nn.layers import ACTIVATIONS, mlp
from vcnn.nn.message_passing import EquivariantMessages, KernelConv, cloud_edges, edges_per_cloud, pair_weights


class PairwiseNet(CloudNet):
    """What the pairwise networks share: the graph their messages run on."""

    pairwise = True

    def edges(self, weights: torch.Tensor, graph: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(edge index (2, E) over the B n members, pair weights (E,)) of this network's graph."""
        mesh = self.config.graph == "mesh"
        edge_index = cloud_edges(weights, graph, mesh)
        return edge_index, pair_weights(weights.reshape(-1), edge_index, mesh)

    def edges_per_cloud(self, n: int) -> int:
        return edges_per_cloud(n, self.config.graph == "mesh")


class GraphKernelNet(PairwiseNet):
    """Edge-conditioned convolution on the cloud or mesh graph, invariant edge features."""

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
        self.conv = KernelConv()

    def elements_per_cloud(self, n: int) -> int:
        return self.edges_per_cloud(n) * self.config.embedding[-1] ** 2  # one h x h kernel matrix per edge

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor, edges=None) -> torch.Tensor:
        batch, n, k, dim = vectors.shape
        edge_index, pair = self.edges(weights, edges)
        source, target = edge_index
        s = self.normalized_scalars(scalars).reshape(batch * n, -1)
        q = vectors.reshape(batch * n, k, dim)
        if self.raw:
            nodes = torch.cat([s, q.reshape(batch * n, -1)], dim=1)
            ends = [q[target].reshape(len(target), -1), q[source].reshape(len(source), -1)]
        else:  # Q_i Q_j^T: every dot product between a vector of member i and one of member j
            nodes = s
            ends = [(q[target] @ q[source].transpose(1, 2)).reshape(len(target), -1)]
        features = torch.cat(ends + [s[target], s[source]], dim=1)
        v = self.lift(nodes)  # (B n, h)
        h = v.shape[-1]
        for kernel, linear in zip(self.kernels, self.linears):
            v = self.activation(linear(v) + self.conv(v, edge_index, kernel(features).reshape(-1, h, h), pair))
        return self.denormalized(self.fit(torch.einsum("bn,bnh->bh", weights, v.reshape(batch, n, h))))


class RawGraphKernelNet(GraphKernelNet):
    """The original graph kernel network: raw vector components on nodes and edges."""

    raw = True
    invariant_to = ("translation", "permutation")


class MessagePassingNet(EquivariantMessages, PairwiseNet):
    """Equivariant message passing on the cloud or mesh graph (PaiNN-style scalar and vector channels)."""

    output_kinds = ("scalar", "vector")

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        f, k, h = config.n_scalars, config.n_vectors, config.embedding[-1]
        self.lift = mlp((f,) + config.embedding, config.activation, last_activation=True)
        self.lift_vectors = nn.Linear(k, h, bias=False)
        self.layers(config, edge_in=k * k + k)  # Q_i Q_j^T and |Q_j - Q_i| per vector feature

    def elements_per_cloud(self, n: int) -> int:
        return self.edges_per_cloud(n) * (2 + self.config.n_vectors) * self.config.embedding[-1]

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor, edges=None) -> torch.Tensor:
        batch, n, k, dim = vectors.shape
        edge_index, pair = self.edges(weights, edges)
        source, target = edge_index
        s = self.lift(self.normalized_scalars(scalars)).reshape(batch * n, -1)  # (B n, h)
        h = s.shape[-1]
        v = self.lift_vectors(vectors.transpose(2, 3)).transpose(2, 3).reshape(batch * n, h, dim)
        q = vectors.reshape(batch * n, k, dim)
        difference = q[source] - q[target]  # (E, k, dim): Q_j - Q_i
        features = torch.cat([(q[target] @ q[source].transpose(1, 2)).reshape(len(target), -1), difference.norm(dim=-1)], dim=1)
        s, v = self.messages(s, v, edge_index, features, difference, pair)
        s, v = s.reshape(batch, n, h), v.reshape(batch, n, h, dim)
        parts = []
        if self.config.names("scalar"):
            parts.append(self.fit(torch.einsum("bn,bnh->bh", weights, s)))
        if self.config.names("vector"):
            gated = self.vector_gate(s).reshape(batch, n, -1, h)  # (B, n, outputs, h), invariant
            parts.append(torch.einsum("bn,bnoh,bnhd->bod", weights, gated, v).reshape(batch, -1))
        return self.denormalized(torch.cat(parts, dim=1))
