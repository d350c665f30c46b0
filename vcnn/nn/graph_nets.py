"""Pairwise networks on the cloud graph: every member connected to every other, messages
weighted by the members' quadrature weights. Cost and memory grow as n^2 per cloud.

With `graph = "mesh"` the messages run along mesh edges only: the forward pass takes the
members' adjacency (B, n, n) from `vcnn.clouds.MeshGraph`, and member i averages over its mesh
neighbours and itself, weighted by quadrature weight. Sub-sampled clouds lose most mesh edges,
so mesh-graph networks want whole clouds (e.g. `KNearest`, and `n_points = 0` in training).

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

from vcnn.nn.base import CloudNet, CloudNetConfig, ModelError
from vcnn.nn.layers import ACTIVATIONS, mlp
from vcnn.nn.registry import register


def pair_weights(weights: torch.Tensor, adjacency: torch.Tensor | None, mesh: bool) -> torch.Tensor:
    """The weight of member j in the messages to member i: (B, 1, n) w_j on the cloud graph (they
    sum to 1 over the cloud; einsum broadcasts the 1), (B, n, n) on the mesh graph: w_j over i's
    neighbours and i itself, normalised."""
    if not mesh:
        return weights[:, None, :]
    if adjacency is None:
        raise ModelError("a mesh-graph network needs the members' adjacency (vcnn.clouds.MeshGraph)")
    pair = weights[:, None, :] * adjacency
    return pair / pair.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(pair.dtype).tiny)


@register("graph_kernel")
class GraphKernelNet(CloudNet):
    """Edge-conditioned convolution on the fully connected cloud graph, invariant edge features."""

    raw = False
    pairwise = True

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

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor, adjacency=None) -> torch.Tensor:
        batch, n = weights.shape
        pair = pair_weights(weights, adjacency, self.config.graph == "mesh")
        s = self.normalized_scalars(scalars)
        q = vectors.reshape(batch, n, -1)
        if self.raw:
            nodes = torch.cat([s, q], dim=-1)
            edges = [q[:, :, None].expand(-1, -1, n, -1), q[:, None].expand(-1, n, -1, -1)]
        else:  # Q_i Q_j^T: every dot product between a vector of member i and one of member j
            nodes = s
            edges = [torch.einsum("bikd,bjld->bijkl", vectors, vectors).reshape(batch, n, n, -1)]
        edges = torch.cat(edges + [s[:, :, None].expand(-1, -1, n, -1), s[:, None].expand(-1, n, -1, -1)], dim=-1)
        v = self.lift(nodes)  # (B, n, h)
        h = v.shape[-1]
        for kernel, linear in zip(self.kernels, self.linears):
            matrices = kernel(edges).reshape(batch, n, n, h, h)
            v = self.activation(linear(v) + torch.einsum("bijhg,bjg,bij->bih", matrices, v, pair))
        return self.denormalized(self.fit(torch.einsum("bn,bnh->bh", weights, v)))


@register("graph_kernel_raw")
class RawGraphKernelNet(GraphKernelNet):
    """The original graph kernel network: raw vector components on nodes and edges."""

    raw = True
    invariant_to = ("translation", "permutation")


@register("message_passing")
class MessagePassingNet(CloudNet):
    """Equivariant message passing on the cloud or mesh graph (PaiNN-style scalar and vector channels)."""

    pairwise = True
    output_kinds = ("scalar", "vector")

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

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor, adjacency=None) -> torch.Tensor:
        batch, n, k, dim = vectors.shape
        pair = pair_weights(weights, adjacency, self.config.graph == "mesh")
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
            s = s + torch.einsum("bijh,bij->bih", ds, pair)
            v = v + torch.einsum("bijh,bjhd,bij->bihd", dvv, v, pair)
            v = v + torch.einsum("bijhk,bijkd,bij->bihd", dvs.reshape(batch, n, n, h, k), difference, pair)
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
