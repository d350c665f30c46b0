"""Fields made elsewhere (`meshes.foreign`) and the check of period vectors against a mesh
(`meshes.periodicity`), on tiny meshes written with meshio."""

import meshio
import numpy as np
import pytest

from meshes.errors import MeshError
from meshes.fields import lumped_node_weights
from meshes.foreign import read_mesh_file
from meshes.periodicity import check_periods


def grid(nx=10, ny=4, length=2.0, centred=False):
    """Quads on [0, length] x [0, 1]; `centred`: the nodes are the centres of an nx x ny grid of
    cells (as `vcnn import openfoam` makes them), so the periodic sides stand one cell apart."""
    if centred:
        x, y = (np.arange(nx) + 0.5) * length / nx, (np.arange(ny) + 0.5) / ny
    else:
        x, y = np.linspace(0, length, nx + 1), np.linspace(0, 1, ny + 1)
    X, Y = np.meshgrid(x, y, indexing="ij")
    node = np.arange(X.size).reshape(X.shape)
    cells = np.c_[node[:-1, :-1].ravel(), node[1:, :-1].ravel(), node[1:, 1:].ravel(), node[:-1, 1:].ravel()]
    return np.c_[X.ravel(), Y.ravel()], cells


def turn(degrees):
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


@pytest.mark.parametrize("centred", [False, True])
def test_the_domains_period_fits_turned_with_the_mesh(centred):
    points, cells = grid(centred=centred)
    check_periods(points, cells, "quad", [[2.0, 0.0]], "f")
    check_periods(points, cells, "quad", [[-2.0, 0.0]], "f")  # either direction
    check_periods(points @ turn(30).T, cells, "quad", [turn(30) @ [2.0, 0.0]], "f")


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize(
    "period, match",
    [
        ([2.0, 0.0], "were the periods turned with the field?"),  # on the turned mesh
        (turn(30) @ [1.0, 0.0], "shorter period than the domain's"),  # half the length
        (turn(30) @ [2.6, 0.0], "were the periods turned with the field?"),  # too long
        ([1.0, 2.0, 0.0], "must be finite and have 2 components"),
    ],
)
def test_periods_that_do_not_fit_are_refused(centred, period, match):
    points, cells = grid(centred=centred)
    with pytest.raises(MeshError, match=match) as err:
        check_periods(points @ turn(30).T, cells, "quad", [period], "field.vtu")
    assert str(err.value).startswith("field.vtu")


def test_half_period_with_jittered_interior_is_refused_by_the_walls():
    """Evenly spaced wall nodes map onto wall nodes under half the period; the domain lies on the
    same side of both, so the shift is no lattice vector even where no interior node matches."""
    points, cells = grid(nx=8)
    inner = (points[:, 0] > 0) & (points[:, 0] < 2) & (points[:, 1] > 0) & (points[:, 1] < 1)
    points[inner] += np.random.default_rng(0).uniform(-0.02, 0.02, (int(inner.sum()), 2))
    with pytest.raises(MeshError, match="with the domain on the same side"):
        check_periods(points, cells, "quad", [[1.0, 0.0]], "f")


def test_a_file_from_elsewhere_reads_with_kinds_dimension_and_weights(tmp_path):
    points, quads = grid()
    n = len(points)
    lines = np.c_[np.arange(10), np.arange(1, 11)]
    velocity = np.c_[points[:, 1], -points[:, 0], np.zeros(n)]
    tensor = np.zeros((n, 3, 3))
    tensor[:, :2, :2] = 1.0
    data = {
        "U": velocity,
        "p": points[:, 0][:, None],
        "T": tensor.reshape(n, 9),
        "W": np.c_[velocity[:, :2], np.ones(n)],  # out-of-plane: left out
        "labels": np.arange(n),  # integers are numbers
    }
    meshio.write(tmp_path / "f.vtu", meshio.Mesh(np.c_[points, np.full(n, 0.5)], [("line", lines), ("quad", quads)], point_data=data))
    fields, left_out = read_mesh_file(tmp_path / "f.vtu")
    assert fields.dim == 2 and fields.cell_type == "quad" and len(fields.cells) == len(quads)
    assert {name: fields.kind(name) for name in fields.point_data} == {"U": "vector", "p": "scalar", "T": "tensor", "labels": "scalar"}
    assert list(left_out) == ["W"] and "nonzero third component" in left_out["W"]
    np.testing.assert_allclose(fields.weights, lumped_node_weights(points, quads, "quad"))
    np.testing.assert_array_equal(fields["U"], velocity[:, :2])


def test_mixed_triangles_and_quads_become_triangles_and_weights_are_read(tmp_path):
    points, quads = grid(nx=2, ny=1)
    triangles = np.r_[quads[:1, [0, 1, 2]], quads[:1, [0, 2, 3]]]
    weights = np.arange(len(points), dtype=float) + 1
    meshio.write(tmp_path / "m.vtk", meshio.Mesh(points, [("triangle", triangles), ("quad", quads[1:])], point_data={"node_weight": weights}))
    fields, _ = read_mesh_file(tmp_path / "m.vtk")
    assert fields.cell_type == "triangle" and len(fields.cells) == 4
    np.testing.assert_array_equal(fields.weights, weights)


@pytest.mark.parametrize(
    "write, match",
    [
        (lambda p: p.write_text("garbage"), "cannot read"),
        (lambda p: meshio.write(p, meshio.Mesh(np.eye(3), [("line", np.array([[0, 1], [1, 2]]))])), "holds no triangle, quad, tetra or hexahedron cells"),
        (lambda p: meshio.write(p, meshio.Mesh(np.eye(3), [("triangle", np.array([[0, 1, 2]]))])), "do not lie in one z = const plane"),
    ],
)
def test_unreadable_files_are_one_line(tmp_path, write, match):
    path = tmp_path / "x.vtu"
    write(path)
    with pytest.raises(MeshError, match=match) as err:
        read_mesh_file(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
