"""Whole meshes as torch-geometric graphs: `to_pyg(fields)` turns a MeshFields into a
`torch_geometric.data.Data` (nodes, node weights, point arrays, edges), so that meshes batch with
`torch_geometric.data.Batch` and feed any PyG layer. It lives here, not in `meshes`, which stays
free of torch.

Edges: the mesh graph (nodes that share a cell: a simplex mesh's cell edges), or the neighbours
within a radius (`Ball`) or the k nearest (`KNearest`), found with the clouds' KD-tree, periodic
images included. Both directions, no self-loops, no duplicates.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from meshes.fields import MeshFields
from vcnn.clouds import Ball, KNearest, MeshGraph, NodeIndex
from vcnn.errors import VcnnError

RESERVED = ("x", "pos", "edge_index", "weight", "batch", "ptr")  # Data attributes to_pyg sets or PyG's Batch adds


def to_pyg(
    fields: MeshFields,
    features: tuple[str, ...] = (),
    graph: str | Ball | KNearest = "mesh",
    periods: np.ndarray | None = None,
    dtype: torch.dtype = torch.float32,
) -> Data:
    """The field as a graph: `pos` (N, dim), `weight` (N,) node weights, every point array under its
    own name, `x` (N, F) the named `features` side by side (vectors and tensors flattened), and
    `edge_index` (2, E) of the mesh graph (`graph = "mesh"`) or of a `Ball` / `KNearest` graph
    (`periods`: lattice vectors of periodic directions, for those)."""
    clash = sorted(set(fields.point_data) & set(RESERVED))
    if clash:
        raise VcnnError(f"point arrays {clash} have names torch-geometric reserves ({', '.join(RESERVED)})")
    missing = [name for name in features if name not in fields.point_data]
    if missing:
        raise VcnnError(f"no point arrays {missing} to use as node features; the field has {sorted(fields.point_data)}")
    if graph == "mesh":
        edges = MeshGraph(fields.cells, fields.num_nodes).pairs()
    elif isinstance(graph, (Ball, KNearest)):
        edges = neighbour_pairs(fields.points, graph, periods)
    else:
        raise VcnnError(f"graph must be 'mesh', a Ball or a KNearest, got {graph!r}")
    data = {name: torch.as_tensor(fields[name], dtype=dtype) for name in fields.point_data}
    if features:
        data["x"] = torch.cat([data[name].reshape(fields.num_nodes, -1) for name in features], dim=1)
    return Data(
        pos=torch.as_tensor(fields.points, dtype=dtype),
        weight=torch.as_tensor(fields.weights, dtype=dtype),
        edge_index=torch.as_tensor(edges),
        num_nodes=fields.num_nodes,
        **data,
    )


def neighbour_pairs(points: np.ndarray, shape: Ball | KNearest, periods: np.ndarray | None = None) -> np.ndarray:
    """(2, E) (source, target) pairs: the nodes in the cloud of `shape` around each node (the
    radius or k-nearest graph), both directions, without self-loops or duplicates (images)."""
    clouds = NodeIndex(points, periods).clouds(points, shape)
    n, target, source = len(points), clouds.owner(), clouds.members
    keys = np.unique(np.concatenate([target * n + source, source * n + target]))  # k nearest is not symmetric
    target, source = np.divmod(keys, n)
    keep = target != source
    return np.stack([source[keep], target[keep]])
