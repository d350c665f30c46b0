"""The pairwise networks' operators as `torch_geometric.nn.MessagePassing` layers on a sparse edge
index, and the edges they run on.

Members of a batch of B padded clouds of n are the B n nodes of one graph (cloud b's member a is
node b n + a), as in a `torch_geometric.data.Batch` of equal-sized graphs. Edges follow PyG's
convention: `edge_index[0]` the source j, `edge_index[1]` the target i that sums its messages.
Cost and memory grow with the number of edges: n^2 per cloud on the cloud graph (every member to
every member), about 7 n (triangles) or 15 n (tetrahedra) on the mesh graph.

The operators hold no weights: the networks own them (their state-dict keys predate these
layers) and hand the operators the edge and node tensors the weights make.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

from vcnn.nn.base import ModelError
from vcnn.nn.layers import mlp

MESH_DEGREE = 32  # an upper estimate of a node's mesh neighbours, itself included (2-D and 3-D simplices)


def cloud_edges(weights: torch.Tensor, graph: torch.Tensor | None, mesh: bool) -> torch.Tensor:
    """(2, E) edge index over the B n members of `weights` (B, n).

    Cloud graph: every member to every member, among those of positive weight (padding has weight
    0, and a member of weight 0 sends nothing on this graph). Mesh graph: `graph` is the edge index
    itself (`vcnn.clouds.MeshGraph.edges`) or a (B, n, n) adjacency whose nonzero entries are edges.
    """
    batch, n = weights.shape
    if not mesh:
        present = weights > 0
        adjacency = present[:, :, None] & present[:, None, :]
    elif graph is None:
        raise ModelError("a mesh-graph network needs the members' mesh edges: an edge index (vcnn.clouds.MeshGraph.edges) or a (B, n, n) adjacency")
    elif graph.dim() == 2 and graph.shape[0] == 2 and not graph.is_floating_point():
        if graph.numel() and (graph.min() < 0 or graph.max() >= batch * n):
            raise ModelError(f"the edge index refers to members outside the {batch} clouds of {n}")
        return graph.long()
    elif graph.shape == (batch, n, n):
        adjacency = graph != 0
    else:
        raise ModelError(f"mesh edges must be a (2, E) integer edge index or a ({batch}, {n}, {n}) adjacency, got shape {tuple(graph.shape)}")
    cloud, target, source = adjacency.nonzero(as_tuple=True)
    return torch.stack([cloud * n + source, cloud * n + target])


def pair_weights(weights: torch.Tensor, edge_index: torch.Tensor, mesh: bool) -> torch.Tensor:
    """(E,) the weight of source j in the messages to target i: w_j on the cloud graph (they sum to
    1 over the cloud), w_j normalised over i's neighbours (i itself included) on the mesh graph."""
    source, target = edge_index
    pair = weights[source]
    if not mesh:
        return pair
    total = scatter(pair, target, dim=0, dim_size=len(weights), reduce="sum")
    return pair / total[target].clamp_min(torch.finfo(pair.dtype).tiny)


def edges_per_cloud(n: int, mesh: bool) -> int:
    """Edges of one cloud of n members (an upper estimate on the mesh graph), to size batches."""
    return n * (min(n, MESH_DEGREE) if mesh else n)


class KernelConv(MessagePassing):
    """Graph kernel operator (Li et al. 2020): out_i = sum_j p_ij K_ij x_j, one (h, h) matrix K_ij
    per edge, made by the network's kernel network from the edge features."""

    def __init__(self):
        super().__init__(aggr="sum", node_dim=0)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, kernel: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        """x (N, h), kernel (E, h, h), pair (E,) -> (N, h)."""
        return self.propagate(edge_index, x=x, kernel=kernel, pair=pair, size=(len(x), len(x)))

    def message(self, x_j: torch.Tensor, kernel: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        return (kernel @ x_j[:, :, None])[:, :, 0] * pair[:, None]


class EquivariantConv(MessagePassing):
    """PaiNN-style equivariant messages: with invariant edge filters f_ij and node gates g_j,
    x_ij = f_ij * g_j split into (a, b, c) of widths h, h, k h,

        ds_i = sum_j p_ij a_ij,    dv_i = sum_j p_ij (b_ij v_j + c_ij (Q_j - Q_i)),

    where v_j are the h vectors of member j and Q_j - Q_i the k differences of the members' vectors:
    scalars stay invariant and vectors turn with the frame."""

    def __init__(self):
        super().__init__(aggr="sum", node_dim=0)

    def forward(self, s, v, edge_index, filters, gates, difference, pair) -> tuple[torch.Tensor, torch.Tensor]:
        """s (N, h), v (N, h, dim), filters (E, (2 + k) h), gates (N, (2 + k) h), difference (E, k, dim),
        pair (E,) -> (ds (N, h), dv (N, h, dim))."""
        n, h, dim = v.shape
        out = self.propagate(edge_index, v=v, filters=filters, gates=gates, difference=difference, pair=pair, size=(n, n))
        ds, dv = out.split([h, h * dim], dim=1)
        return ds, dv.reshape(n, h, dim)

    def message(self, v_j, filters, gates_j, difference, pair) -> torch.Tensor:
        edges, h, dim = v_j.shape
        a, b, c = (filters * gates_j).split([h, h, filters.shape[1] - 2 * h], dim=1)
        dv = b[:, :, None] * v_j + c.reshape(edges, h, -1) @ difference
        return torch.cat([a, dv.reshape(edges, -1)], dim=1) * pair[:, None]


class EquivariantMessages:
    """The layers of a PaiNN-style network (mixed into an `nn.Module`): `layers` makes them,
    `messages` runs them. Each layer sums `EquivariantConv` messages, then a gated update mixes the
    vector channels and feeds their dot products and lengths back into the scalars."""

    def layers(self, config, edge_in: int) -> None:
        """Filters from `edge_in` invariant edge features, node gates, vector mixing and update gates."""
        k, h, layers = config.n_vectors, config.embedding[-1], config.graph_layers
        self.filters = nn.ModuleList(mlp((edge_in,) + config.kernel + ((2 + k) * h,), config.activation, False) for _ in range(layers))
        self.node_nets = nn.ModuleList(mlp((h, h, (2 + k) * h), config.activation, False) for _ in range(layers))
        self.mix = nn.ModuleList(nn.Linear(h, 2 * h, bias=False) for _ in range(layers))
        self.gates = nn.ModuleList(mlp((2 * h, h, 3 * h), config.activation, False) for _ in range(layers))
        if config.names("scalar"):
            self.fit = mlp((h,) + config.fitting + (len(config.names("scalar")),), config.activation, False)
        if config.names("vector"):
            self.vector_gate = nn.Linear(h, h * len(config.names("vector")))
        self.conv = EquivariantConv()

    def messages(self, s, v, edge_index, features, difference, pair) -> tuple[torch.Tensor, torch.Tensor]:
        """s (N, h), v (N, h, dim) after every layer; `features` (E, edge_in) invariant,
        `difference` (E, k, dim) the edge vectors, `pair` (E,) the message weights."""
        h = s.shape[-1]
        for filters, node_net, mix, gate in zip(self.filters, self.node_nets, self.mix, self.gates):
            ds, dv = self.conv(s, v, edge_index, filters(features), node_net(s), difference, pair)
            s, v = s + ds, v + dv
            uv, wv = mix(v.transpose(1, 2)).transpose(1, 2).split([h, h], dim=1)  # (N, h, dim) each
            a_vv, a_sv, a_ss = gate(torch.cat([s, wv.norm(dim=-1)], dim=-1)).split([h, h, h], dim=-1)
            v = v + a_vv[..., None] * uv
            s = s + a_sv * (uv * wv).sum(-1) + a_ss
        return s, v
