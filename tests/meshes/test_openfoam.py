"""meshes.openfoam: OpenFOAM cases at their cell centres, on small written cases and on PHLL29."""

import numpy as np
import pytest

pytest.importorskip("foamlib")

from meshes.errors import MeshError  # noqa: E402
from meshes.hill_profile import HEIGHT, hill_height  # noqa: E402
from meshes.openfoam import read_case  # noqa: E402

HEADER = "FoamFile\n{{\n    version 2.0;\n    format ascii;\n    class {cls};\n    object {name};\n}}\n"


def write_field(path, cls, kind, rows):
    """A minimal OpenFOAM ASCII field file; rows None writes a uniform field."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = HEADER.format(cls=cls, name=path.name) + "dimensions [0 1 -1 0 0 0 0];\n"
    if rows is None:
        text += "internalField uniform 1;\n"
    else:
        body = "\n".join(f"({' '.join(map(repr, row))})" if np.ndim(row) else repr(row) for row in rows)
        text += f"internalField nonuniform List<{kind}>\n{len(rows)}\n(\n{body}\n)\n;\n"
    path.write_text(text + "boundaryField\n{\n}\n")


@pytest.fixture
def small_case(tmp_path):
    """A 4 x 3 grid of unit-spaced centres, period 4 (from the name), a vector, a symmTensor and a scalar."""
    case = tmp_path / "alpha_10_4000_3000"
    x, y = np.meshgrid(np.arange(4) + 0.5, np.arange(3) + 0.5)
    centres = np.c_[x.ravel(), y.ravel(), np.zeros(12)]
    write_field(case / "0" / "C", "volVectorField", "vector", centres.tolist())
    write_field(case / "0" / "U_LES", "volVectorField", "vector", (centres * [1, -1, 7]).tolist())
    tensors = np.arange(72.0).reshape(12, 6)
    write_field(case / "0" / "tauij_LES", "volSymmTensorField", "symmTensor", tensors.tolist())
    write_field(case / "5" / "k", "volScalarField", "scalar", list(np.arange(12.0)))
    write_field(case / "5" / "nu", "volScalarField", "scalar", None)
    return case


def test_small_case_fields_grid_and_weights(small_case):
    fields = read_case(small_case, fields=["U_LES", "tauij_LES", "k"])
    assert fields.metadata["time"] == "5" and fields.metadata["periods"] == [[4.0, 0.0]]
    assert fields.cell_type == "quad" and fields.cells.shape == (3 * 2, 4)
    assert np.allclose(fields["U_LES"], fields.points * [1, -1])
    xx, xy, yy = np.arange(72.0).reshape(12, 6)[:, [0, 1, 3]].T
    assert np.array_equal(fields["tauij_LES"], np.stack([np.c_[xx, xy], np.c_[xy, yy]], 1))
    assert fields.kind("k") == "scalar" and np.array_equal(fields["k"], np.arange(12.0))
    assert np.allclose(fields.weights, 1.0)  # unit cells, the seam column included (periodic)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fields": ["nope"]}, "no field 'nope' at time 5 or 0; it has C, U_LES, k, nu, tauij_LES"),
        ({"fields": ["nu"]}, "is uniform; a nonuniform internal field is needed"),
        ({"time": "7"}, "has no time 7; it has 0, 5"),
    ],
)
def test_bad_requests_raise_one_line(small_case, kwargs, message):
    with pytest.raises(MeshError, match=message):
        read_case(small_case, **kwargs)


def test_missing_case_unstructured_centres_and_unknown_period(small_case, tmp_path):
    with pytest.raises(MeshError, match="does not exist"):
        read_case(tmp_path / "nowhere")
    other = tmp_path / "my_case"
    rows = np.random.default_rng(0).permutation(np.c_[np.arange(12.0) % 4, np.arange(12) // 4, np.zeros(12)])
    write_field(other / "0" / "C", "volVectorField", "vector", rows.tolist())
    with pytest.raises(MeshError, match="do not form a structured grid"):
        read_case(other, period=4.0)
    (other / "0" / "C").unlink()
    (small_case / "0" / "C").rename(other / "0" / "C")
    with pytest.raises(MeshError, match="pass it explicitly"):
        read_case(other, fields=[])
    assert read_case(other, fields=[], period=4.0).metadata["periods"] == [[4.0, 0.0]]


def test_benchmark_case(reference_dir):
    case = reference_dir / "closure_challenge" / "PHLL29" / "alpha_10_9000_3036"
    fields = read_case(case, fields=["U_LES", "tauij_LES", "k_LES", "U"])
    assert fields.num_nodes == 15600 and fields.metadata["time"] == "20000"
    assert fields.kind("U_LES") == "vector" and fields.kind("tauij_LES") == "tensor"
    assert np.allclose(fields["tauij_LES"][0], [[0.00508441, -0.00006462], [-0.00006462, 0.00002297]])
    x = np.linspace(0.0, 9.0, 90001)
    area = 9.0 * HEIGHT - np.trapz(hill_height(x, 1.0), x)
    assert abs(fields.weights.sum() / area - 1) < 1e-3  # measured 3.6e-5
    corners = fields.points[fields.cells]
    d1, d2 = corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]
    assert (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0] > 0).all()  # counter-clockwise quads
