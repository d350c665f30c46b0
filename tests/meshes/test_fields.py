"""MeshFields: lossless VTU round trip, node weights, validation, no FEniCSx needed."""

import json
import subprocess
import sys

import meshio
import numpy as np
import pytest
from scipy.spatial import Delaunay

from meshes.errors import MeshError
from meshes.fields import MeshFields, lumped_node_weights


@pytest.fixture
def fields():
    rng = np.random.default_rng(0)
    corners = np.array([[0, 0], [2, 0], [2, 1], [0, 1]], float)
    points = np.r_[corners, rng.uniform([0, 0], [2, 1], (60, 2))]
    cells = Delaunay(points).simplices
    data = {"c": rng.normal(size=64), "velocity": rng.normal(size=(64, 2)), "stress": rng.normal(size=(64, 2, 2))}
    return MeshFields(points, cells, point_data=data, metadata={"case": "test", "alpha": 1.5})


def test_round_trip_is_lossless(fields, tmp_path):
    fields.write(tmp_path)
    back = MeshFields.read(tmp_path)
    assert np.array_equal(back.points, fields.points) and np.array_equal(back.cells, fields.cells)
    assert np.array_equal(back.weights, fields.weights)
    for name in fields.point_data:
        assert np.array_equal(back[name], fields[name]) and back.kind(name) == fields.kind(name)
    assert back.metadata == fields.metadata
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fields.vtu", "meta.json"]  # no temp files


def test_vtu_is_plain_meshio_with_paraview_friendly_vectors(fields, tmp_path):
    fields.write(tmp_path)
    mesh = meshio.read(tmp_path / "fields.vtu")
    assert mesh.points.shape == (64, 3) and mesh.point_data["velocity"].shape == (64, 3)
    assert mesh.point_data["stress"].shape == (64, 9)
    assert json.loads((tmp_path / "meta.json").read_text())["arrays"]["stress"] == "tensor"


def test_node_weights_integrate_linear_functions_exactly(fields):
    # On a triangle, the integral of a linear f is the area times the mean of its vertex values,
    # which is what the lumped weights (area / 3 per vertex) sum to.
    x, y = fields.points.T
    assert fields.integral(np.ones(fields.num_nodes)) == pytest.approx(2.0, rel=1e-12)
    assert fields.integral(3 * x - y + 1) == pytest.approx(3 * 2.0 - 0.5 * 2 + 2.0, rel=1e-12)


def test_weights_for_quads_and_tets():
    quad = lumped_node_weights(np.array([[0, 0], [2, 0], [2, 3], [0, 3]], float), np.array([[0, 1, 2, 3]]), "quad")
    assert np.allclose(quad, 1.5)
    tet = lumped_node_weights(np.eye(4, 3, k=-1), np.array([[0, 1, 2, 3]]), "tetra")
    assert tet.sum() == pytest.approx(1 / 6)


def test_quads_split_into_triangles_of_the_same_area():
    points = np.array([[0, 0], [2, 0], [2, 3], [0, 3]], float)
    quad = MeshFields(points, np.array([[0, 1, 2, 3]]), "quad")
    triangles = quad.triangles()
    edges = points[triangles[:, 1:]] - points[triangles[:, :1]]
    assert triangles.shape == (2, 3) and np.isclose(np.abs(np.cross(edges[:, 0], edges[:, 1])).sum() / 2, 6.0)
    plain = MeshFields(points, np.array([[0, 1, 2], [0, 2, 3]]))
    assert plain.triangles() is plain.cells


def test_bad_input_is_refused(fields):
    with pytest.raises(MeshError, match="shape"):
        fields["bad"] = np.zeros(3)
    with pytest.raises(MeshError, match="do not exist"):
        MeshFields(fields.points, fields.cells + 100)
    with pytest.raises(MeshError, match="holds no mesh fields"):
        MeshFields.read("/nonexistent")


def test_import_needs_no_fenicsx_or_torch():
    code = (
        "import sys\n"
        "for m in ('dolfinx', 'gmsh', 'torch', 'ufl', 'petsc4py'): sys.modules[m] = None\n"
        "import meshes.fields, meshes.hill_profile\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
