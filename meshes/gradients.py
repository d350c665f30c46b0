"""Node gradients of node data on a 2-D `MeshFields`, numpy only.

The gradient of the piecewise-linear interpolant is constant on each triangle; a node takes the
area-weighted mean over the triangles around it. On a periodic mesh (metadata `periods`, [[Lx, 0]])
the nodes of the two seams are one node: each pair takes the mean over both sides, so the seam is
not one-sided. Used where a field is known only on the nodes (LES velocity interpolated onto our
mesh) and its derivatives are needed without a finite-element library.
"""

from __future__ import annotations

import numpy as np

from meshes.errors import MeshError
from meshes.fields import MeshFields


def node_gradients(fields: MeshFields, values) -> np.ndarray:
    """d values / d x_j at the nodes: (N,) -> (N, 2); (N, d) -> (N, d, 2) (row i: gradient of
    component i, so that a velocity gives grad u with [i, j] = du_i/dx_j)."""
    values = np.asarray(values, dtype=float)
    if fields.dim != 2 or len(values) != fields.num_nodes:
        raise MeshError(f"node gradients need 2-D fields and one value per node, got dim {fields.dim} and {len(values)} values")
    flat = values.reshape(len(values), -1)
    triangles = fields.triangles()
    a, b, c = (fields.points[triangles[:, k]] for k in range(3))
    jacobian = np.stack([b - a, c - a], axis=-1)  # columns: the two edges from a
    area = 0.5 * np.abs(np.linalg.det(jacobian))
    if np.any(area <= 0):
        raise MeshError("node gradients: the mesh has degenerate triangles")
    # values along the edges = grad . edge  ->  grad = J^-T (delta values)
    deltas = np.stack([flat[triangles[:, 1]] - flat[triangles[:, 0]], flat[triangles[:, 2]] - flat[triangles[:, 0]]], axis=1)
    cell_grad = np.einsum("tij,tjc->tci", np.linalg.inv(jacobian).transpose(0, 2, 1), deltas)  # (T, C, 2)
    total = np.zeros((fields.num_nodes,) + cell_grad.shape[1:])
    weight = np.zeros(fields.num_nodes)
    for k in range(3):
        np.add.at(total, triangles[:, k], area[:, None, None] * cell_grad)
        np.add.at(weight, triangles[:, k], area)
    for left, right in _seam_pairs(fields):
        total[left] = total[right] = total[left] + total[right]
        weight[left] = weight[right] = weight[left] + weight[right]
    grad = total / weight[:, None, None]
    return grad.reshape(values.shape + (2,))


def _seam_pairs(fields: MeshFields) -> list[tuple[np.ndarray, np.ndarray]]:
    """(left, right) node indices that coincide after a shift by a period along x."""
    from scipy.spatial import cKDTree

    pairs = []
    for shift in fields.metadata.get("periods") or []:
        shift = np.asarray(shift, dtype=float)
        tree = cKDTree(fields.points)
        distance, partner = tree.query(fields.points + shift)
        scale = np.linalg.norm(shift)
        matched = distance < 1e-9 * max(scale, 1.0)
        if matched.any():
            pairs.append((np.flatnonzero(matched), partner[matched]))
    return pairs
