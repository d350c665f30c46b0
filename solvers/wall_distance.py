"""Exact distance to the nearest wall facet, periodic images included.

Wall facets (segments in 2-D) are gathered on every rank (there are O(sqrt(cells)) of them)
and, on a `PeriodicDomain`, copied one period left and right. For each query point a KD-tree over the segment
midpoints proposes candidates, the exact point-segment distance is taken over them, and the
candidate set grows until it provably contains the nearest segment: any segment whose midpoint
is farther than d + L/2 (L the longest segment) cannot be closer than d.
"""

from __future__ import annotations

import numpy as np
from dolfinx import fem
from dolfinx.cpp.mesh import entities_to_geometry
from scipy.spatial import cKDTree

from meshes.periodic_domain import TAGS, PeriodicDomain
from solvers.errors import SolverError


def wall_segments(domain, walls=("bottom", "top")) -> np.ndarray:
    """(M, 2, 2) end points of all wall facets, on every rank, with their periodic images on a
    `PeriodicDomain`. `walls` are facet tag names of the domain's tag table."""
    mesh = domain.mesh
    if mesh.topology.dim != 2:
        raise SolverError("wall distance is implemented for 2-D meshes")
    periodic = isinstance(domain, PeriodicDomain)
    tags = TAGS if periodic else domain.tags
    facets = np.concatenate([domain.facet_tags.find(tags[name]) for name in walls])
    nodes = entities_to_geometry(mesh._mesh, 1, facets.astype(np.int32), False)  # the C++ mesh in 0.5.2
    local = mesh.geometry.x[nodes][:, :, :2]
    segments = np.concatenate(mesh.comm.allgather(local))
    if len(segments) == 0:
        raise SolverError(f"no wall facets tagged {walls}")
    if not periodic:
        return segments
    shift = domain.period
    return np.concatenate([segments, segments - shift, segments + shift])


def distance_to_segments(points: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance from each point (N, 2) to the nearest segment (M, 2, 2)."""
    points = np.asarray(points, dtype=float)[:, :2]
    a, b = segments[:, 0], segments[:, 1]
    half = 0.5 * np.linalg.norm(b - a, axis=1).max()
    tree = cKDTree(0.5 * (a + b))
    result = np.full(len(points), np.inf)
    todo = np.arange(len(points))
    k = min(8, len(segments))
    while len(todo):
        mid_dist, idx = tree.query(points[todo], k=k)
        mid_dist, idx = mid_dist.reshape(len(todo), -1), idx.reshape(len(todo), -1)
        p = points[todo][:, None, :]
        sa, sb = a[idx], b[idx]
        ab = sb - sa
        t = np.clip(
            np.einsum("nkd,nkd->nk", p - sa, ab) / np.maximum(np.einsum("nkd,nkd->nk", ab, ab), 1e-300), 0.0, 1.0
        )
        d = np.linalg.norm(p - (sa + t[..., None] * ab), axis=2).min(axis=1)
        result[todo] = d
        proven = (mid_dist[:, -1] >= d + half) | (k == len(segments))
        todo = todo[~proven]
        k = min(2 * k, len(segments))
    return result


def wall_distance(domain, space: fem.FunctionSpace, walls=("bottom", "top")) -> fem.Function:
    """The distance to the nearest wall, interpolated (at the dof points) into a scalar `space`."""
    d = fem.Function(space, name="wall_distance")
    d.x.array[:] = distance_to_segments(space.tabulate_dof_coordinates(), wall_segments(domain, walls))
    return d


def mixing_length(distance, kappa: float = 0.41, cap: float = 0.135):
    """Prandtl's mixing length min(kappa d, cap) as a UFL expression of the wall distance."""
    import ufl

    return ufl.min_value(kappa * distance, cap)
