"""Evaluate finite-element functions at arbitrary points, in serial or under MPI."""

from __future__ import annotations

import numpy as np
from dolfinx import fem, geometry
from mpi4py import MPI

from solvers.errors import SolverError


def evaluate(function: fem.Function, points: np.ndarray) -> np.ndarray:
    """Values of `function` at `points` (N, 2 or 3), identical on every rank.

    Each point is evaluated on the rank that owns a cell containing it. Points outside the
    mesh raise SolverError with their count and the first one.
    """
    mesh = function.function_space.mesh
    points = np.asarray(points, dtype=float)
    padded = np.zeros((len(points), 3))
    padded[:, : points.shape[1]] = points
    tree = geometry.BoundingBoxTree(mesh, mesh.topology.dim)
    candidates = geometry.compute_collisions(tree, padded)
    colliding = geometry.compute_colliding_cells(mesh, candidates, padded)
    owned = mesh.topology.index_map(mesh.topology.dim).size_local
    found = np.zeros(len(points), dtype=bool)
    cells = np.zeros(len(points), dtype=np.int32)
    for i in range(len(points)):
        links = colliding.links(i)
        links = links[links < owned]
        if len(links):
            found[i], cells[i] = True, links[0]
    size = int(np.prod(function.ufl_shape)) if function.ufl_shape else 1
    values = np.zeros((len(points), size))
    if found.any():
        values[found] = function.eval(padded[found], cells[found]).reshape(-1, size)
    # A point on an inter-rank boundary is found by several ranks: keep the lowest one's value.
    rank = mesh.comm.rank
    owner = np.empty(len(points), dtype=np.int64)
    mesh.comm.Allreduce(np.where(found, rank, mesh.comm.size).astype(np.int64), owner, op=MPI.MIN)
    values[owner != rank] = 0.0
    total = np.empty_like(values)
    mesh.comm.Allreduce(values, total, op=MPI.SUM)
    values = total
    missing = owner == mesh.comm.size
    if missing.any():
        first = points[np.argmax(missing)]
        raise SolverError(f"{missing.sum()} of {len(points)} points lie outside the mesh (first: {first.tolist()})")
    return values if function.ufl_shape else values[:, 0]
