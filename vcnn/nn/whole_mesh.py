"""A whole-mesh graph operator: one graph over every node of a case, as MeshGraphNet and graph
neural operators work, beside the networks that see one cloud per node.

Each node's neighbourhood is a cloud of the study's shape (a ball or the k nearest, periodic
images included), so its edges carry the cloud features of the members (`vcnn.features`):
position relative to the node, velocity, scalars, quadrature weight. A first layer averages an
embedding of each neighbourhood (a one-hop vector cloud: invariant scalars and equivariant vectors
per node); then `graph_layers` PaiNN-style layers (`EquivariantMessages`) pass messages along the
edges, so that information travels `graph_layers + 1` neighbourhoods far, and every node reads its
own outputs from its own channels. The edge features are invariant (scalars and the dot products of
the member vectors) and the vectors move along member vectors: the outputs transform as declared.

Inputs are flat, one row per edge (member j of node i's neighbourhood): vectors (E, k, dim),
scalars (E, f), weights (E,) summing to 1 over each neighbourhood, and the edge index (2, E) of
(j, i). Every node is a member of its own neighbourhood, so the largest i + 1 is the node count.
Outputs: (N, width) for the N nodes.
"""

from __future__ import annotations

import torch
from torch_geometric.utils import scatter

from vcnn.nn.base import CloudNet, CloudNetConfig, ModelError
from vcnn.nn.layers import mlp
from vcnn.nn.message_passing import EquivariantMessages


class WholeMeshNet(EquivariantMessages, CloudNet):
    """Equivariant message passing over a whole mesh, neighbourhoods of the study's cloud shape."""

    output_kinds = ("scalar", "vector")
    whole_mesh = True

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        f, k, h = config.n_scalars, config.n_vectors, config.embedding[-1]
        edge_in = f + k * k  # the member's scalars and the dot products of its vectors
        self.lift = mlp((edge_in,) + config.embedding, config.activation, last_activation=True)
        self.lift_vectors = mlp((edge_in, h, h * k), config.activation, False)
        self.layers(config, edge_in)

    @property
    def symmetry(self) -> dict:
        declared = super().symmetry
        declared["inputs"]["edges"] = "scalar"  # (2, E) node numbers, renumbered with the nodes
        return declared

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        if edges is None or vectors.dim() != 3 or edges.shape != (2, len(vectors)):
            raise ModelError("a whole_mesh network takes flat edge rows: vectors (E, k, dim), scalars (E, f), weights (E,) and edges (2, E)")
        edges = edges.long()
        target = edges[1]
        nodes = int(target.max()) + 1
        features = torch.cat([self.normalized_scalars(scalars), (vectors @ vectors.transpose(1, 2)).flatten(1)], dim=1)
        s = scatter(weights[:, None] * self.lift(features), target, dim=0, dim_size=nodes, reduce="sum")  # (N, h)
        h = s.shape[-1]
        coefficients = self.lift_vectors(features).reshape(len(vectors), h, -1)  # (E, h, k), invariant
        v = scatter(weights[:, None, None] * (coefficients @ vectors), target, dim=0, dim_size=nodes, reduce="sum")  # (N, h, dim)
        s, v = self.messages(s, v, edges, features, vectors, weights)
        parts = []
        if self.config.names("scalar"):
            parts.append(self.fit(s))
        if self.config.names("vector"):
            gated = self.vector_gate(s).reshape(nodes, -1, h)  # (N, outputs, h), invariant
            parts.append((gated @ v).reshape(nodes, -1))
        return self.denormalized(torch.cat(parts, dim=1))
