"""The pairwise networks on a sparse edge index (torch-geometric MessagePassing layers): the same
outputs as the dense (B, n, n) formulas they replace, the same weights and checkpoints, the
declared symmetries in float64, mesh edges among cloud members built without n x n arrays, and
whole meshes as torch-geometric graphs."""

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay
from torch_geometric.data import Batch

from meshes.fields import MeshFields
from vcnn import checkpoint
from vcnn.clouds import Ball, KNearest, MeshGraph, NodeIndex
from vcnn.errors import VcnnError
from vcnn.features import FeatureSpec
from vcnn.graphs import to_pyg
from vcnn.inference import predict_fields
from vcnn.nn import CloudNetConfig, ModelError, build_model
from vcnn.symmetry import check_cloud_model, check_field_model

TOL = 1e-10
KINDS = ["graph_kernel", "graph_kernel_raw", "message_passing"]


def network(kind: str, dim: int, graph: str, seed: int = 0):
    torch.manual_seed(seed)
    kinds = ("scalar", "vector") if kind == "message_passing" else ("scalar", "scalar")
    config = CloudNetConfig(kind=kind, n_scalars=5, dim=dim, embedding=(8, 8), kernel=(8,), fitting=(16,), outputs=("c", "u"), output_kinds=kinds, graph=graph)
    model = build_model(config).double()
    with torch.no_grad():  # normalisation away from the identity (one scale, as vectors need), so that it is exercised
        model.scalar_mean.uniform_(-0.5, 0.5)
        model.output_std.fill_(1.7)
    return model


def random_clouds(dim: int, batch: int = 6, n: int = 20, members: int = 15, seed: int = 0):
    """Padded clouds (the last n - members slots are padding) and a random symmetric mesh-like
    adjacency with self-loops among the members."""
    rng = np.random.default_rng(seed)
    vectors, scalars = rng.normal(size=(batch, n, 2, dim)), rng.normal(size=(batch, n, 5))
    weights = rng.random((batch, n))
    weights[:, members:] = 0
    weights /= weights.sum(axis=1, keepdims=True)
    adjacency = np.triu(rng.random((batch, n, n)) < 0.2, 1).astype(float)
    adjacency += adjacency.transpose(0, 2, 1) + np.eye(n)
    adjacency[:, members:] = adjacency[:, :, members:] = 0
    return vectors, scalars, weights, adjacency


def dense_pair(weights, adjacency, mesh):
    if not mesh:
        return weights[:, None, :]
    pair = weights[:, None, :] * adjacency
    return pair / pair.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(pair.dtype).tiny)


def dense_forward(model, vectors, scalars, weights, adjacency):
    """The dense (B, n, n) formulas the sparse operators replaced: the oracle."""
    batch, n, k, dim = vectors.shape
    pair = dense_pair(weights, adjacency, model.config.graph == "mesh")
    if model.config.kind == "message_passing":
        s = model.lift(model.normalized_scalars(scalars))
        v = model.lift_vectors(vectors.transpose(2, 3)).transpose(2, 3)
        h = s.shape[-1]
        difference = vectors[:, None] - vectors[:, :, None]
        edges = torch.cat([torch.einsum("bikd,bjld->bijkl", vectors, vectors).reshape(batch, n, n, -1), difference.norm(dim=-1)], dim=-1)
        for filters, node_net, mix, gate in zip(model.filters, model.node_nets, model.mix, model.gates):
            ds, dvv, dvs = (filters(edges) * node_net(s)[:, None]).split([h, h, k * h], dim=-1)
            s = s + torch.einsum("bijh,bij->bih", ds, pair)
            v = v + torch.einsum("bijh,bjhd,bij->bihd", dvv, v, pair)
            v = v + torch.einsum("bijhk,bijkd,bij->bihd", dvs.reshape(batch, n, n, h, k), difference, pair)
            uv, wv = mix(v.transpose(2, 3)).transpose(2, 3).split([h, h], dim=2)
            a_vv, a_sv, a_ss = gate(torch.cat([s, wv.norm(dim=-1)], dim=-1)).split([h, h, h], dim=-1)
            v = v + a_vv[..., None] * uv
            s = s + a_sv * (uv * wv).sum(-1) + a_ss
        gated = model.vector_gate(s).reshape(batch, n, -1, h)
        parts = [model.fit(torch.einsum("bn,bnh->bh", weights, s)), torch.einsum("bn,bnoh,bnhd->bod", weights, gated, v).reshape(batch, -1)]
        return model.denormalized(torch.cat(parts, dim=1))
    s = model.normalized_scalars(scalars)
    q = vectors.reshape(batch, n, -1)
    if model.raw:
        nodes, edges = torch.cat([s, q], dim=-1), [q[:, :, None].expand(-1, -1, n, -1), q[:, None].expand(-1, n, -1, -1)]
    else:
        nodes, edges = s, [torch.einsum("bikd,bjld->bijkl", vectors, vectors).reshape(batch, n, n, -1)]
    edges = torch.cat(edges + [s[:, :, None].expand(-1, -1, n, -1), s[:, None].expand(-1, n, -1, -1)], dim=-1)
    v = model.lift(nodes)
    h = v.shape[-1]
    for kernel, linear in zip(model.kernels, model.linears):
        v = model.activation(linear(v) + torch.einsum("bijhg,bjg,bij->bih", kernel(edges).reshape(batch, n, n, h, h), v, pair))
    return model.denormalized(model.fit(torch.einsum("bn,bnh->bh", weights, v)))


def relative(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("graph", ["cloud", "mesh"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dim", [2, 3])
def test_sparse_operators_equal_the_dense_formulas(dim, kind, graph):
    model = network(kind, dim, graph)
    vectors, scalars, weights, adjacency = (torch.from_numpy(a) for a in random_clouds(dim))
    expected = dense_forward(model, vectors, scalars, weights, adjacency)
    inputs = (vectors, scalars, weights) + ((adjacency,) if graph == "mesh" else ())
    got = model(*inputs)
    assert relative(got, expected) < 1e-12
    # and the same gradients, so that training follows the same path
    sparse = torch.autograd.grad(got.square().sum(), list(model.parameters()))
    dense = torch.autograd.grad(expected.square().sum(), list(model.parameters()))
    assert max(relative(a, b) for a, b in zip(sparse, dense) if b.abs().max() > 0) < 1e-10
    if graph == "mesh":  # the edge index itself gives the same, and the graph matters
        batch, n = weights.shape
        b, i, j = adjacency.nonzero(as_tuple=True)
        shuffled = torch.stack([b * n + j, b * n + i])[:, torch.randperm(len(b))]
        assert relative(model(vectors, scalars, weights, shuffled), expected) < 1e-12
        assert relative(model(vectors, scalars, weights, torch.ones_like(adjacency)), expected) > 1e-6


def test_a_mesh_graph_network_refuses_missing_or_malformed_edges():
    model = network("graph_kernel", 2, "mesh")
    vectors, scalars, weights, _ = (torch.from_numpy(a) for a in random_clouds(2))
    with pytest.raises(ModelError, match="mesh edges"):
        model(vectors, scalars, weights)
    with pytest.raises(ModelError, match=r"\(2, E\) integer edge index or a \(6, 20, 20\) adjacency"):
        model(vectors, scalars, weights, torch.zeros(6, 20))
    with pytest.raises(ModelError, match="outside the 6 clouds of 20"):
        model(vectors, scalars, weights, torch.tensor([[0, 120], [1, 2]]))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dim", [2, 3])
def test_symmetry_checker_covers_the_sparse_networks(dim, kind):
    vectors, scalars, weights, adjacency = random_clouds(dim, seed=dim)
    model = network(kind, dim, "mesh")
    report = check_cloud_model(model, vectors, scalars, weights, adjacency=adjacency)
    if kind.endswith("raw"):  # declared not rotation invariant, and measurably not
        assert report.deviations["permutation"] < TOL and report.deviations["rotation"] > 1e-3
    else:
        assert report.worst() < TOL


def test_vector_outputs_on_the_mesh_graph_turn_with_the_field():
    """Whole field, mesh edges among whole k-nearest clouds (MeshGraph.edges in predict_fields):
    rotations, reflections, translations and renumbering of the nodes, in float64."""
    rng = np.random.default_rng(1)
    points = rng.uniform(0, [2.0, 1.0], (150, 2))
    fields = MeshFields(points, Delaunay(points).simplices, point_data={"velocity": np.c_[1 + points[:, 1] ** 2, np.sin(points[:, 0])], "strain_rate": np.cos(points.sum(1))})
    spec = FeatureSpec(scalars=("strain_rate", "speed", "proximity", "upwind_proximity", "node_weight"))
    model = network("message_passing", 2, "mesh")

    def predict(f, periods):
        return predict_fields(model, f, KNearest(12), spec, dtype=torch.float64)

    report = check_field_model(predict, fields, {"c": "scalar", "u": "vector"}, trials=1)
    assert report.worst() < TOL
    assert np.abs(predict(fields, None)["u"]).max() > 1e-3  # not trivially zero


def test_mesh_edges_among_cloud_members_match_the_cells():
    """Sampled clouds (with repeated members, as periodic images and small clouds give) against
    pairs that share a cell, counted one by one."""
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 1, (60, 2))
    cells = Delaunay(points).simplices
    share = {(int(a), int(b)) for cell in cells for a in cell for b in cell}
    clouds = NodeIndex(points).clouds(points[:25], Ball(0.2)).sample(12, rng)
    n = int(clouds.sizes.max())
    source, target = MeshGraph(cells, len(points)).edges(clouds)
    expected = {
        (c * n + a, c * n + b)
        for c in range(len(clouds))
        for a, u in enumerate(clouds.members[clouds.offsets[c] : clouds.offsets[c + 1]])
        for b, v in enumerate(clouds.members[clouds.offsets[c] : clouds.offsets[c + 1]])
        if (int(u), int(v)) in share or u == v
    }
    got = list(zip(source.tolist(), target.tolist()))
    assert len(got) == len(set(got)) and set(got) == expected
    assert any(len(set(clouds.members[clouds.offsets[c] : clouds.offsets[c + 1]])) < 12 for c in range(len(clouds)))


def test_mesh_edges_grow_linearly_with_the_cloud():
    """Edges per member stay bounded (about 7 on a triangle mesh) as clouds grow 16-fold."""
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 1, (3000, 2))
    graph, index = MeshGraph(Delaunay(points).simplices, len(points)), NodeIndex(points)
    per_member = [graph.edges(index.clouds(points[:4], KNearest(k))).shape[1] / (4 * k) for k in (64, 1024)]
    assert all(4 < e < 8 for e in per_member), per_member


def two_by_two(cell_type: str) -> MeshFields:
    """The unit square in 2 x 2 squares (nodes numbered row by row), as quads or split triangles."""
    points = np.array([[x, y] for y in range(3) for x in range(3)], dtype=float) / 2
    squares = np.array([[0, 1, 4, 3], [1, 2, 5, 4], [3, 4, 7, 6], [4, 5, 8, 7]])
    cells = squares if cell_type == "quad" else np.r_[squares[:, [0, 1, 2]], squares[:, [0, 2, 3]]]
    return MeshFields(points, cells, cell_type, point_data={"c": points[:, 0], "u": points[:, ::-1].copy()})


def test_to_pyg_builds_the_mesh_graph_of_a_2x2_mesh():
    sides = {(0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8), (0, 3), (3, 6), (1, 4), (4, 7), (2, 5), (5, 8)}
    diagonals = {(0, 4), (1, 5), (3, 7), (4, 8)}  # the split of each square (node a to node c)
    data = to_pyg(two_by_two("triangle"), features=("c", "u"))
    edges = list(zip(*data.edge_index.tolist()))
    assert len(edges) == len(set(edges)) == 2 * 16
    assert set(edges) == {p for a, b in sides | diagonals for p in ((a, b), (b, a))}
    assert data.x.shape == (9, 3) and torch.equal(data.x[:, 1:], data.u) and data.pos.shape == (9, 2)
    assert torch.isclose(data.weight.sum(), torch.tensor(1.0))
    quads = to_pyg(two_by_two("quad"))  # nodes that share a cell: both diagonals of every square
    assert quads.num_edges == 2 * (12 + 8)
    batch = Batch.from_data_list([data, to_pyg(two_by_two("triangle"), features=("c", "u"))])
    assert batch.num_nodes == 18 and batch.edge_index.max() == 17 and torch.equal(batch.edge_index[:, 32:] - 9, data.edge_index)


def test_to_pyg_radius_and_nearest_graphs():
    fields = two_by_two("quad")
    radius = to_pyg(fields, graph=Ball(0.51))  # the grid spacing is 0.5: the 12 sides
    assert radius.num_edges == 24 and not (radius.edge_index[0] == radius.edge_index[1]).any()
    nearest = to_pyg(fields, graph=KNearest(3))  # itself and the 2 nearest, ties kept: the sides
    assert nearest.num_edges == 24
    periodic = to_pyg(fields, graph=Ball(0.51), periods=np.array([[1.5, 0.0]]))  # x = 1 meets x = 0 (1.5 - 1 = 0.5)
    assert periodic.num_edges == 24 + 2 * 3
    with pytest.raises(VcnnError, match="no point arrays"):
        to_pyg(fields, features=("pressure",))
    with pytest.raises(VcnnError, match="graph must be"):
        to_pyg(fields, graph="delaunay")


def test_checkpoints_keep_their_keys_and_round_trip(tmp_path):
    model = network("graph_kernel", 2, "mesh")
    assert sorted({key.split(".")[0] for key in model.state_dict()}) == ["fit", "kernels", "lift", "linears", "output_mean", "output_std", "scalar_mean", "scalar_std"]
    other = network("message_passing", 2, "mesh")
    assert sorted({key.split(".")[0] for key in other.state_dict()}) == [
        "filters", "fit", "gates", "lift", "lift_vectors", "mix", "node_nets", "output_mean", "output_std", "scalar_mean", "scalar_std", "vector_gate"
    ]
    vectors, scalars, weights, adjacency = (torch.from_numpy(a).float() for a in random_clouds(2))
    for net in (model.float(), other.float()):
        restored, _ = checkpoint.load(checkpoint.save(tmp_path / f"{net.config.kind}.pt", net))
        assert torch.equal(restored(vectors, scalars, weights, adjacency), net(vectors, scalars, weights, adjacency))
