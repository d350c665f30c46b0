"""`vcnn predict` on fields vcnn did not make, and the shipped-model registry (issue 18, items 1-2).

A tiny periodic field (91 nodes) and untrained networks saved as `vcnn train` saves them, in a
registry directory named by VCNN_MODELS; everything runs in-process through `cases.cli.main`.
"""

import json
import types

import meshio
import numpy as np
import pytest
import torch

from cases.cli import main
from cases.models import MODELS_ENV, resolve
from meshes.fields import MeshFields
from vcnn import checkpoint
from vcnn.features import FeatureSpec
from vcnn.nn import CloudNetConfig, build_model

LENGTH = 3.0
SPEC = FeatureSpec(scalars=("strain_rate", "wall_distance", "proximity"))
ANGLE = np.radians(37.0)
TURN = np.array([[np.cos(ANGLE), -np.sin(ANGLE)], [np.sin(ANGLE), np.cos(ANGLE)]])


def periodic_field(nx=12, ny=6, **metadata) -> MeshFields:
    """Triangles on [0, 3] x [0, 1], periodic along x (the nodes at x = 0 and x = 3 face each
    other), interior nodes moved a little so that no two distances tie."""
    x, y = np.meshgrid(np.linspace(0, LENGTH, nx + 1), np.linspace(0, 1, ny + 1), indexing="ij")
    points = np.c_[x.ravel(), y.ravel()]
    inner = (x.ravel() > 0) & (x.ravel() < LENGTH) & (y.ravel() > 0) & (y.ravel() < 1)
    points[inner] += np.random.default_rng(1).uniform(-0.03, 0.03, (int(inner.sum()), 2))
    node = np.arange((nx + 1) * (ny + 1)).reshape(nx + 1, ny + 1)
    a, b, c, d = node[:-1, :-1].ravel(), node[1:, :-1].ravel(), node[1:, 1:].ravel(), node[:-1, 1:].ravel()
    cells = np.r_[np.c_[a, b, c], np.c_[a, c, d]]
    px, py = points.T
    data = {
        "velocity": np.c_[1 + 0.3 * np.sin(2 * np.pi * px / LENGTH) * py, 0.2 * np.cos(2 * np.pi * px / LENGTH) * py * (1 - py)],
        "pressure": np.cos(2 * np.pi * px / LENGTH),
        "concentration": np.sin(np.pi * py) + 0.1 * np.cos(2 * np.pi * px / LENGTH),
        "strain_rate": 1 + np.abs(np.cos(2 * np.pi * px / LENGTH)) + py,
        "wall_distance": np.minimum(py, 1 - py),
        "mixing_length": 0.41 * np.minimum(py, 1 - py),
    }
    return MeshFields(points, cells, "triangle", point_data=data, metadata={"periods": [[LENGTH, 0.0]], "case": "hills-transport", **metadata})


def save_network(path, target="concentration", family="hills-transport"):
    torch.manual_seed(0)
    model = build_model(CloudNetConfig(n_scalars=3, embedding=(4, 4), m_prime=2, fitting=(4,), outputs=(target,)))
    return checkpoint.save(path, model, **checkpoint.data_config({"shape": "ellipse"}, SPEC, [target], family=family))


def write_foreign(path, fields: MeshFields, permutation, **change):
    """The field as another program would write it, with meshio alone: turned by ANGLE, nodes
    in another order, 3-component points and vectors, arrays U, S, d (+ others), no node weights."""
    inverse = np.argsort(permutation)
    points = fields.points[permutation] @ TURN.T
    velocity = fields["velocity"][permutation] @ TURN.T
    data = {
        "U": np.c_[velocity, np.zeros(len(points))],
        "S": fields["strain_rate"][permutation],
        "d": fields["wall_distance"][permutation],
        "C": fields["concentration"][permutation],
    }
    data.update(change)
    meshio.write(path, meshio.Mesh(np.c_[points, np.zeros(len(points))], [("triangle", inverse[fields.cells])], point_data=data))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    models = root / "models"
    save_network(models / "tiny.pt")
    (models / "tiny.md").write_text("# tiny\n\nAn untrained network for tests.\n")
    save_network(models / "tiny-closure.pt", target="nu_t_ratio", family="hills-rans")
    fields = periodic_field()
    fields.write(root / "case")
    permutation = np.random.default_rng(2).permutation(fields.num_nodes)
    foreign = write_foreign(root / "turned.vtu", fields, permutation)
    return types.SimpleNamespace(root=root, models=models, fields=fields, case=root / "case", foreign=foreign, permutation=permutation)


@pytest.fixture(autouse=True)
def registry(world, monkeypatch):
    monkeypatch.setenv(MODELS_ENV, str(world.models))


FOREIGN_MAP = ["--map", "velocity=U", "--map", "strain_rate=S", "--map", "wall_distance=d", "--map", "concentration=C"]


def turned_period(length: float = LENGTH) -> str:
    return ",".join(repr(float(c)) for c in TURN @ [length, 0.0])  # float: NumPy 2 writes np.float64(...)


def predicted(capsys, argv) -> tuple[dict, MeshFields]:
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return summary, MeshFields.read(summary["out"])


@pytest.mark.parametrize("suffix", [".vtu", ".vtk"])
def test_a_field_made_with_meshio_alone_gets_the_same_prediction(world, tmp_path, capsys, suffix):
    """The issue's test: other array names, no node weights, nodes reordered, the frame and the
    period turned by 37 degrees, written as VTU or legacy VTK; the prediction equals that on the
    original to 1e-10 (float64)."""
    summary, original = predicted(capsys, ["predict", "--model", "tiny", "--fields", world.case, "--out", tmp_path / "original"])
    assert summary["arrays"] == ["predicted_concentration"] and summary["checkpoint"] == str(world.models / "tiny.pt")
    reference = original["predicted_concentration"]
    assert np.ptp(reference) > 1e-3  # the untrained network does not predict a constant
    np.testing.assert_array_equal(original["concentration"], world.fields["concentration"])  # the input is kept

    foreign = write_foreign(tmp_path / f"turned{suffix}", world.fields, world.permutation)
    argv = ["predict", "--model", "tiny", "--fields", foreign, "--out", tmp_path / "foreign", *FOREIGN_MAP, "--period", turned_period()]
    summary, foreign = predicted(capsys, argv)
    again = foreign["predicted_concentration"][np.argsort(world.permutation)]
    assert np.abs(again - reference).max() <= 1e-10 * np.abs(reference).max()
    assert set(foreign.point_data) == {"U", "S", "d", "C", "predicted_concentration"}  # the file's own names
    np.testing.assert_allclose(foreign.weights[np.argsort(world.permutation)], world.fields.weights, rtol=1e-12)  # computed
    assert summary["relative_l2"]["concentration"] == pytest.approx(original.metadata["prediction"]["relative_l2"]["concentration"], rel=1e-9)
    assert foreign.metadata["prediction"]["map"]["velocity"] == "U"


def test_unturned_periods_on_a_turned_field_are_refused(world, tmp_path, capsys):
    """The pitfall: the period of the original frame on the turned field (a silent error before)."""
    argv = ["predict", "--model", "tiny", "--fields", world.foreign, "--out", tmp_path / "out", *FOREIGN_MAP, "--period", "3,0"]
    line = refused(capsys, argv, "does not fit the mesh")
    assert "turned.vtu" in line and not (tmp_path / "out").exists()


def refused(capsys, argv, match: str) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("vcnn: error:"), err
    assert match in lines[0], lines[0]
    return lines[0]


BAD = {
    "missing array": ({}, ["--map", "strain_rate=S", "--map", "wall_distance=d"], "no vector point array 'velocity'"),
    "unknown map target": ({}, ["--map", "velocity=V", "--map", "strain_rate=S", "--map", "wall_distance=d"], "has no point array 'V'"),
    "wrong kind": ({}, ["--map", "velocity=U", "--map", "strain_rate=U", "--map", "wall_distance=d"], "'strain_rate' must be a scalar"),
    "non-finite": ({"S": np.full(91, np.nan)}, FOREIGN_MAP, "'strain_rate' holds NaN"),
    "out-of-plane vector": ({"U": np.ones((91, 3))}, FOREIGN_MAP, "'U' (--map velocity=U) cannot be read: a 3-component vector with a nonzero third"),
    "half period": ({}, [*FOREIGN_MAP, "--period", turned_period(LENGTH / 2)], "a shorter period than the domain"),
    "period of another dimension": ({}, [*FOREIGN_MAP, "--period", "1,2,3"], "must be finite and have 2 components"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_fields_are_one_line(world, tmp_path, capsys, case):
    change, options, match = BAD[case]
    path = write_foreign(tmp_path / "bad.vtu", world.fields, world.permutation, **change)
    periods = [] if "--period" in options else ["--period", turned_period()]
    line = refused(capsys, ["predict", "--model", "tiny", "--fields", path, "--out", tmp_path / "out", *options, *periods], match)
    assert "bad.vtu" in line and not (tmp_path / "out").exists()


def test_a_field_of_another_dimension_is_refused(world, tmp_path, capsys):
    points = np.random.default_rng(0).uniform(size=(20, 3))
    cells = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    meshio.write(tmp_path / "solid.vtu", meshio.Mesh(points, [("tetra", cells)], point_data={"U": points}))
    refused(capsys, ["predict", "--model", "tiny", "--fields", tmp_path / "solid.vtu", "--out", tmp_path / "out", "--map", "velocity=U"], "is a 3-D field; the network is 2-D")


def test_an_unknown_model_name_is_one_line(world, tmp_path, capsys):
    line = refused(capsys, ["predict", "--model", "no-such-model", "--fields", world.case, "--out", tmp_path / "out"], "unknown model 'no-such-model'")
    assert "tiny" in line  # lists the shipped ones
    refused(capsys, ["check-invariance", "--model", "no-such-model", "--fields", world.case], "unknown model")


def test_an_unreadable_file_is_one_line(world, tmp_path, capsys):
    (tmp_path / "junk.vtu").write_text("not a mesh")
    refused(capsys, ["predict", "--model", "tiny", "--fields", tmp_path / "junk.vtu", "--out", tmp_path / "out"], "cannot read")


def test_a_closure_gets_nu_t_from_its_target(world, tmp_path, capsys):
    argv = ["predict", "--model", "tiny-closure", "--fields", world.case, "--out", tmp_path / "out"]
    refused(capsys, argv, "give the viscosity with --nu")
    summary, out = predicted(capsys, [*argv, "--nu", "2e-3"])
    assert summary["arrays"] == ["predicted_nu_t_ratio", "predicted_nu_t"] and summary["nu"] == 2e-3
    np.testing.assert_allclose(out["predicted_nu_t"], 2e-3 * np.maximum(out["predicted_nu_t_ratio"], 0.0))


def test_models_lists_the_registry_and_names_resolve_everywhere(world, capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("| tiny |"))
    assert "hills-transport" in row and "concentration" in row and "velocity (vector)" in row and "strain_rate (scalar)" in row
    assert str(world.models / "tiny.md") in row
    assert "| tiny-closure | hills-rans | nu_t_ratio |" in text and "missing" in text  # no card
    assert main(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["tiny"]["reads"] == {"velocity": "vector", "strain_rate": "scalar", "wall_distance": "scalar"}
    assert main(["check-invariance", "--model", "tiny", "--fields", str(world.case), "--trials", "1"]) == 0
    assert resolve("tiny") == world.models / "tiny.pt" and resolve("runs/x/best.pt").name == "best.pt"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU visible to torch")
def test_the_gpu_predicts_what_the_cpu_does(world, tmp_path, capsys):
    for model, target in (("tiny", "concentration"), ("tiny-closure", "nu_t")):
        outputs = [predicted(capsys, ["predict", "--model", model, "--fields", world.case, "--nu", "1e-3", "--device", device, "--out", tmp_path / f"{model}-{i}"])[1]
                   for i, device in enumerate(("cpu", "cuda"))]
        cpu, gpu = (fields[f"predicted_{target}"] for fields in outputs)
        assert np.ptp(cpu) > 0 and np.abs(gpu - cpu).max() <= 1e-12 * np.abs(cpu).max()
