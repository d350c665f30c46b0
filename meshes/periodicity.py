"""Whether period vectors fit a mesh: the guard against periods that were not turned with the field.

A periodic field's nodes repeat under each lattice vector p: the nodes of one periodic side,
shifted by p, land on the nodes of the opposite side. Period vectors that do not fit the mesh
(taken from another frame, or of the wrong length) give clouds that reach across a false seam,
and the prediction changes without any error. `check_periods` refuses them:

- some boundary facet (an edge in 2-D, a face in 3-D), shifted by p, must land on a boundary facet
  (every node within `tolerance` of a boundary node) that has the domain on its other side: the
  two periodic sides meet, and the shifted copy of the domain lies beside it;
- no node shifted by p may land on an interior node, and no boundary facet on a boundary facet
  with the domain on the same side: such a shift maps the domain partly onto itself (half the
  period of a channel with evenly spaced wall nodes, say), it is not a lattice vector.

Meshes whose nodes are not periodic themselves (data at cell centres, whose two sides stand one
cell apart) are refused too: their periods cannot be checked this way.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from meshes.errors import MeshError

_FACETS = {
    "triangle": [(0, 1), (1, 2), (2, 0)],
    "quad": [(0, 1), (1, 2), (2, 3), (3, 0)],
    "tetra": [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)],
    "hexahedron": [(0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)],
}
"""Local node indices of each cell's facets (meshio's node order)."""

RELATIVE_TOLERANCE = 1e-3
"""Nodes closer than this fraction of the shortest cell edge are the same node."""


def boundary_facets(cells: np.ndarray, cell_type: str) -> tuple[np.ndarray, np.ndarray]:
    """(F, k) node indices of the facets that belong to one cell only, and (F,) that cell."""
    if cell_type not in _FACETS:
        raise MeshError(f"cannot find the boundary of a mesh of {cell_type!r} cells")
    facets = np.concatenate([cells[:, list(local)] for local in _FACETS[cell_type]])
    owners = np.tile(np.arange(len(cells)), len(_FACETS[cell_type]))
    _, first, counts = np.unique(np.sort(facets, axis=1), axis=0, return_index=True, return_counts=True)
    once = first[counts == 1]
    return facets[once], owners[once]


def shortest_edge(points: np.ndarray, cells: np.ndarray) -> float:
    """The shortest distance between two nodes of one cell."""
    k = cells.shape[1]
    return float(min(np.linalg.norm(points[cells[:, i]] - points[cells[:, j]], axis=1).min() for i in range(k) for j in range(i + 1, k)))


def check_periods(points: np.ndarray, cells: np.ndarray, cell_type: str, periods, source) -> None:
    """MeshError naming `source` unless each row of `periods` (P, dim) is a lattice vector of
    the mesh (see the module docstring)."""
    points = np.asarray(points, dtype=float)
    periods = np.atleast_2d(np.asarray(periods, dtype=float))
    dim = points.shape[1]
    if periods.ndim != 2 or periods.shape[1] != dim or not np.isfinite(periods).all():
        raise MeshError(f"{source}: period vectors must be finite and have {dim} components, got {periods.tolist()}")
    tolerance = RELATIVE_TOLERANCE * shortest_edge(points, cells)
    tree = cKDTree(points)
    facets, owners = boundary_facets(cells, cell_type)
    inward = points[cells[owners]].mean(axis=1) - points[facets].mean(axis=1)  # towards the domain
    on_boundary = np.zeros(len(points), dtype=bool)
    on_boundary[facets.ravel()] = True
    facet_of = {tuple(f): i for i, f in enumerate(np.sort(facets, axis=1))}
    for p in periods:
        text = "(" + ", ".join(f"{c:.6g}" for c in p) + ")"
        distance, nearest = tree.query(points + p)
        landed = distance <= tolerance
        inside = landed & ~(on_boundary & on_boundary[nearest])
        if inside.any():
            node = int(np.argmax(inside))
            raise MeshError(
                f"{source}: the period {text} does not fit the mesh: it maps node {node} at {_point(points[node])} onto node "
                f"{int(nearest[node])} inside the domain (a shorter period than the domain's?)"
            )
        pairs = [(i, facet_of.get(tuple(image))) for i, image in enumerate(np.sort(nearest[facets], axis=1)) if landed[facets[i]].all()]
        pairs = np.array([pair for pair in pairs if pair[1] is not None], dtype=int).reshape(-1, 2)
        beside = np.einsum("fd,fd->f", inward[pairs[:, 0]], inward[pairs[:, 1]]) < 0
        if not beside.all():
            node = int(facets[pairs[np.argmin(beside), 0], 0])
            raise MeshError(
                f"{source}: the period {text} does not fit the mesh: it maps the boundary at {_point(points[node])} onto the "
                f"boundary at {_point(points[node] + p)} with the domain on the same side (a shorter period than the domain's?)"
            )
        if not len(pairs):
            miss = float(distance[on_boundary].min())
            raise MeshError(
                f"{source}: the period {text} does not fit the mesh: no boundary node shifted by it lands on a boundary node "
                f"(the closest misses by {miss:.3g}; tolerance {tolerance:.3g}); were the periods turned with the field?"
            )


def _point(x: np.ndarray) -> str:
    return "(" + ", ".join(f"{c:.4g}" for c in x) + ")"
