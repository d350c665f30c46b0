"""meshes.interpolate: exact for P1 data, periodic across the seam, nearest node outside, and the
benchmark cell centres -> a finer hill grid -> cell centres round trip."""

import numpy as np
import pytest
from scipy.spatial import Delaunay

from meshes.errors import MeshError
from meshes.fields import MeshFields
from meshes.hill_profile import HEIGHT, hill_height
from meshes.interpolate import interpolate, resample


def grid(x, y_of_column, periods=None):
    """Structured quad MeshFields: columns at abscissae x, rows y_of_column (ny, nx)."""
    ny, nx = y_of_column.shape
    index = np.arange(ny * nx).reshape(ny, nx)
    quads = np.stack([index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]], -1).reshape(-1, 4)
    points = np.c_[np.broadcast_to(x, (ny, nx)).ravel(), y_of_column.ravel()]
    return MeshFields(points, quads, "quad", metadata={"periods": periods} if periods else {})


def test_linear_data_is_reproduced_exactly_inside_the_mesh():
    rng = np.random.default_rng(0)
    points = np.r_[[[0, 0], [2, 0], [2, 1], [0, 1]], rng.uniform([0, 0], [2, 1], (80, 2))]
    mesh = MeshFields(points, Delaunay(points).simplices)
    linear = np.c_[1 + 2 * points[:, 0] - 3 * points[:, 1], points[:, 1]]
    queries = rng.uniform([0, 0], [2, 1], (200, 2))
    expected = np.c_[1 + 2 * queries[:, 0] - 3 * queries[:, 1], queries[:, 1]]
    assert np.allclose(interpolate(mesh, linear, queries), expected, atol=1e-12)
    tensors = np.einsum("ni,nj->nij", linear, linear)
    assert interpolate(mesh, tensors, queries).shape == (200, 2, 2)


def test_periodic_seam_and_nearest_node_outside():
    """Centres of unit columns in [0, 4): the seam x = 0 = 4 lies between the last and the first column."""
    x = np.arange(4) + 0.5
    mesh = grid(x, np.broadcast_to(np.arange(3.0)[:, None], (3, 4)), periods=[[4.0, 0.0]])
    column_values = np.array([1.0, 2.0, 5.0, 9.0])
    values = np.broadcast_to(column_values, (3, 4)).ravel()
    seam = interpolate(mesh, values, np.array([[0.0, 1.0], [4.0, 1.0], [3.75, 1.5], [8.25, 0.5]]))
    assert np.allclose(seam, [5.0, 5.0, 9.0 + 0.25 * (1.0 - 9.0), 9.0 + 0.75 * (1.0 - 9.0)])
    below = interpolate(mesh, values, np.array([[2.4, -5.0]]))
    assert below[0] == 5.0  # nearest node (2.5, 0)
    unperiodic = grid(x, np.broadcast_to(np.arange(3.0)[:, None], (3, 4)))
    assert interpolate(unperiodic, values, np.array([[0.0, 1.0]]))[0] == 1.0


def test_bad_input_raises_one_line():
    mesh = grid(np.arange(3.0), np.broadcast_to(np.arange(2.0)[:, None], (2, 3)), periods=[[0.0, 2.0]])
    with pytest.raises(MeshError, match="only periods along x"):
        interpolate(mesh, np.zeros(6), np.zeros((1, 2)))
    with pytest.raises(MeshError, match="5 values for a source of 6 nodes"):
        interpolate(mesh, np.zeros(5), np.zeros((1, 2)))


def test_benchmark_centres_round_trip_through_a_finer_grid(reference_dir):
    """U_LES of alpha_10_9000_3036 -> a 240 x 260 wall-graded hill grid -> the cell centres.
    Measured relative L2 error 0.14 % where walldist > 0.02 (0.30 % over all cells)."""
    pytest.importorskip("foamlib")
    from meshes.openfoam import read_case

    case = reference_dir / "closure_challenge" / "PHLL29" / "alpha_10_9000_3036"
    centres = read_case(case, fields=["U_LES", "walldist"])
    x = np.arange(240) * 9.0 / 240
    across = (1 - np.cos(np.pi * np.linspace(0, 1, 260))) / 2
    fine = grid(x, hill_height(x, 1.0) + (HEIGHT - hill_height(x, 1.0)) * across[:, None], periods=[[9.0, 0.0]])
    there = resample(centres, fine, ["U_LES"])
    assert there.metadata["interpolated_from"] == "alpha_10_9000_3036"
    back = interpolate(there, there["U_LES"], centres.points)
    away = centres["walldist"] > 0.02
    error = np.linalg.norm(back[away] - centres["U_LES"][away]) / np.linalg.norm(centres["U_LES"][away])
    assert error < 0.01
