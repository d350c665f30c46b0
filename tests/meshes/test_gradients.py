"""meshes.gradients: node gradients of the P1 interpolant, exact for linear fields, seams included."""

import numpy as np
import pytest

from meshes.errors import MeshError
from meshes.fields import MeshFields
from meshes.gradients import node_gradients


def grid(nx=7, ny=5, length=3.0, height=2.0, periodic=False, jitter=0.0):
    x, y = np.meshgrid(np.linspace(0, length, nx), np.linspace(0, height, ny))
    points = np.c_[x.ravel(), y.ravel()]
    inner = (points[:, 0] > 0) & (points[:, 0] < length) & (points[:, 1] > 0) & (points[:, 1] < height)
    points[inner] += jitter * np.random.default_rng(0).uniform(-1, 1, (inner.sum(), 2)) * length / nx
    index = np.arange(nx * ny).reshape(ny, nx)
    quads = np.stack([index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]], -1).reshape(-1, 4)
    metadata = {"periods": [[length, 0.0]]} if periodic else {}
    return MeshFields(points, quads, "quad", metadata=metadata)


def test_linear_fields_have_exact_gradients_on_a_distorted_mesh():
    mesh = grid(jitter=0.2)
    x, y = mesh.points.T
    assert np.allclose(node_gradients(mesh, 2 * x - 3 * y + 1), [2.0, -3.0])
    grad = node_gradients(mesh, np.c_[0.5 * y, -x + 4 * y])  # velocity: [i, j] = du_i / dx_j
    assert grad.shape == (mesh.num_nodes, 2, 2)
    assert np.allclose(grad, [[0.0, 0.5], [-1.0, 4.0]])


def test_periodic_seam_nodes_average_both_sides():
    mesh = grid(nx=61, periodic=True)
    x = mesh.points[:, 0]
    k = 2 * np.pi / 3.0
    values = np.cos(k * x + 1.0)  # periodic, slope -k sin(1) at the seam, not symmetric about it
    grad = node_gradients(mesh, values)
    left, right = np.isclose(x, 0.0), np.isclose(x, 3.0)  # the same rows, in y order
    one_sided = node_gradients(grid(nx=61), values)
    assert np.allclose(grad[left], grad[right])
    exact = -k * np.sin(1.0)
    assert np.all(np.abs(grad[left, 0] - exact) < 0.5 * np.abs(one_sided[left, 0] - exact))


def test_wrong_length_is_one_clear_error():
    with pytest.raises(MeshError, match="one value per node"):
        node_gradients(grid(), np.zeros(3))
