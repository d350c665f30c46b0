"""Piecewise-linear interpolation of node data of a 2-D `MeshFields` at other points, periodic-aware.

One function for node data on our FEniCSx meshes (exact for P1 functions: the mesh's own
triangles are used wherever they hold a point) and for clouds such as the cell centres of an
OpenFOAM case, whose cells leave gaps: the strip across the periodic seam and the half cells at
the walls. Points outside the source cells are interpolated linearly on a Delaunay triangulation
of the source nodes tiled one period to the left and right (metadata `periods`, [[Lx, 0]]), and
points outside that too (next to a wall, beyond the last row of cell centres) take the value of
the nearest node.
"""

from __future__ import annotations

import numpy as np

from meshes.errors import MeshError
from meshes.fields import MeshFields


def interpolate(source: MeshFields, values, points) -> np.ndarray:
    """`values` (node values of `source`: (N,), (N, d) or (N, d, d)) at `points` (M, 2)."""
    values = np.asarray(values, dtype=float)
    points = np.asarray(points, dtype=float)
    if source.dim != 2 or points.ndim != 2 or points.shape[1] != 2:
        raise MeshError(f"interpolation needs a 2-D source and (M, 2) points, got dim {source.dim} and {points.shape}")
    if len(values) != source.num_nodes:
        raise MeshError(f"{len(values)} values for a source of {source.num_nodes} nodes")
    flat = values.reshape(len(values), -1)
    nodes, period = source.points, _period_x(source)
    if period is not None:
        lo = nodes[:, 0].min()
        points = np.c_[lo + np.mod(points[:, 0] - lo, period), points[:, 1]]
    result = np.full((len(points), flat.shape[1]), np.nan)
    todo = np.ones(len(points), bool)
    if source.cells.size:
        triangles = source.triangles()
        found = _find_triangle(nodes, triangles, points)
        todo = found < 0
        result[~todo] = _barycentric(nodes, triangles[found[~todo]], points[~todo], flat)
    if todo.any():
        tiled_nodes, tiled = _tiled(nodes, flat, period)
        from scipy.interpolate import LinearNDInterpolator
        from scipy.spatial import cKDTree

        rest = LinearNDInterpolator(tiled_nodes, tiled)(points[todo])
        outside = np.isnan(rest).any(axis=1)
        rest[outside] = tiled[cKDTree(tiled_nodes).query(points[todo][outside])[1]]
        result[todo] = rest
    return result.reshape((len(points),) + values.shape[1:])


def resample(source: MeshFields, target: MeshFields, names=None) -> MeshFields:
    """`target`'s mesh carrying the point arrays `names` (default all) of `source`, interpolated."""
    names = sorted(source.point_data) if names is None else list(names)
    data = {name: interpolate(source, source[name], target.points) for name in names}
    return MeshFields(
        target.points, target.cells, target.cell_type, target.weights, data,
        {**target.metadata, "interpolated_from": source.metadata.get("case", source.metadata.get("source"))},
    )


def _period_x(fields: MeshFields) -> float | None:
    """Lx of metadata `periods` [[Lx, 0]]; None for a non-periodic mesh."""
    periods = fields.metadata.get("periods") or []
    for shift in periods:
        if shift[0] > 0 and shift[1] == 0:
            return float(shift[0])
    if periods:
        raise MeshError(f"only periods along x ([[Lx, 0]]) are supported, got {periods}")
    return None


def _tiled(nodes: np.ndarray, flat: np.ndarray, period: float | None):
    if period is None:
        return nodes, flat
    shifts = [-period, 0.0, period]
    return np.concatenate([nodes + [s, 0.0] for s in shifts]), np.concatenate([flat] * len(shifts))


def _find_triangle(nodes: np.ndarray, triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    from matplotlib.tri import Triangulation

    return np.asarray(Triangulation(*nodes.T, triangles).get_trifinder()(*points.T))


def _barycentric(nodes: np.ndarray, triangles: np.ndarray, points: np.ndarray, flat: np.ndarray) -> np.ndarray:
    a, b, c = (nodes[triangles[:, k]] for k in range(3))
    jacobian = np.stack([b - a, c - a], axis=-1)
    l1, l2 = np.linalg.solve(jacobian, (points - a)[..., None])[..., 0].T
    weights = np.stack([1 - l1 - l2, l1, l2], axis=-1)
    return np.einsum("mk,mkc->mc", weights, flat[triangles])
