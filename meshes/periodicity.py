"""Whether period vectors fit a mesh: the guard against periods that were not turned with the field.

A periodic field's nodes repeat under each lattice vector p: the nodes of one periodic side,
shifted by p, land on the nodes of the opposite side. Period vectors that do not fit the mesh
(taken from another frame, or of the wrong length) give clouds that reach across a false seam,
and the prediction changes without any error. `check_periods` refuses them:

- no node shifted by p may land on an interior node, and no boundary facet (an edge in 2-D, a
  face in 3-D) on a boundary facet with the domain on the same side: such a shift maps the
  domain partly onto itself (half the period of a channel with evenly spaced wall nodes, say);
- some boundary facet, shifted by p, must land on a boundary facet (every node within
  `tolerance` of a boundary node) that has the domain on its other side: the two periodic sides
  meet, the shifted copy of the domain beside the domain;
- or, for data at cell centres (`vcnn import openfoam`), whose two periodic sides stand one cell
  apart: at least `FACING` boundary facets, shifted by p, must face a boundary facet across a gap
  of 0.5 to 1.5 cells, the domain on its other side. This checks only the component of p across
  the periodic sides: a straight side slides along itself, so a period turned by a few degrees
  passes (at 10 degrees and more it failed on a benchmark hill), and so does a period about one
  cell too long on a mesh with matching sides (geometry cannot tell it from cell-centred data).
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
    boundary = _Boundary(points, cells, cell_type)
    for p in periods:
        text = "(" + ", ".join(f"{c:.6g}" for c in p) + ")"
        try:
            met = boundary.matched_sides(p)
        except MeshError as err:
            raise MeshError(f"{source}: the period {text} does not fit the mesh: {err} (a shorter period than the domain's?)") from None
        if not met and boundary.facing(p) < FACING:
            raise MeshError(
                f"{source}: the period {text} does not fit the mesh: no boundary node shifted by it lands on a boundary node "
                f"(the closest misses by {boundary.miss(p):.3g}; tolerance {boundary.tolerance:.3g}); were the periods turned with the field?"
            )


FACING = 3
"""Facets that must face the other side for data at cell centres (one may by chance)."""


class _Boundary:
    """The boundary facets of a mesh with what the checks need: nodes, inward directions, centres."""

    def __init__(self, points: np.ndarray, cells: np.ndarray, cell_type: str):
        self.points = points
        self.tolerance = RELATIVE_TOLERANCE * shortest_edge(points, cells)
        self.tree = cKDTree(points)
        self.facets, owners = boundary_facets(cells, cell_type)
        self.centres = points[self.facets].mean(axis=1)
        self.inward = points[cells[owners]].mean(axis=1) - self.centres  # to the owner cell's centre
        self.on_boundary = np.zeros(len(points), dtype=bool)
        self.on_boundary[self.facets.ravel()] = True
        self.index = {tuple(f): i for i, f in enumerate(np.sort(self.facets, axis=1))}

    def matched_sides(self, p: np.ndarray) -> bool:
        """Whether some boundary facet lands on one beside it; MeshError if p maps the domain onto itself."""
        distance, nearest = self.tree.query(self.points + p)
        landed = distance <= self.tolerance
        inside = landed & ~(self.on_boundary & self.on_boundary[nearest])
        if inside.any():
            node = int(np.argmax(inside))
            raise MeshError(f"it maps node {node} at {_point(self.points[node])} onto node {int(nearest[node])} inside the domain")
        images = np.sort(nearest[self.facets], axis=1)
        pairs = [(i, self.index.get(tuple(image))) for i, image in enumerate(images) if landed[self.facets[i]].all()]
        pairs = np.array([pair for pair in pairs if pair[1] is not None], dtype=int).reshape(-1, 2)
        beside = np.einsum("fd,fd->f", self.inward[pairs[:, 0]], self.inward[pairs[:, 1]]) < 0
        if not beside.all():
            x = self.centres[pairs[np.argmin(beside), 0]]
            raise MeshError(f"it maps the boundary at {_point(x)} onto the boundary at {_point(x + p)} with the domain on the same side")
        return bool(len(pairs))

    def facing(self, p: np.ndarray) -> int:
        """How many boundary facets, shifted by p, face a boundary facet from outside the domain
        across a gap of 0.5 to 1.5 cells (a cell: twice the distance from facet to cell centre)."""
        depth = np.linalg.norm(self.inward, axis=1)
        normal = self.inward / depth[:, None]
        _, target = cKDTree(self.centres).query(self.centres + p)
        offset = self.centres + p - self.centres[target]
        outside = -np.einsum("fd,fd->f", offset, normal[target])
        across = np.linalg.norm(offset + outside[:, None] * normal[target], axis=1)
        size = np.linalg.norm(self.points[self.facets] - self.centres[:, None, :], axis=2).max(axis=1)
        opposite = np.einsum("fd,fd->f", normal, normal[target]) < 0
        gap = outside / (2 * depth[target])
        return int((opposite & (gap >= 0.5) & (gap <= 1.5) & (across <= size[target])).sum())

    def miss(self, p: np.ndarray) -> float:
        """How far the boundary nodes shifted by p land from the nearest node, at best."""
        return float(self.tree.query(self.points[self.on_boundary] + p)[0].min())


def _point(x: np.ndarray) -> str:
    return "(" + ", ".join(f"{c:.4g}" for c in x) + ")"
