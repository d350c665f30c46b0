"""`vcnn solve hills-transport` end to end: outputs, bad input, failures, MPI agreement."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from meshes.fields import MeshFields

pytest.importorskip("dolfinx")

SMALL = ["--alpha", "1", "--resolution", "24x16"]
ARRAYS = {"velocity", "pressure", "concentration", "strain_rate", "wall_distance", "mixing_length"}


def vcnn(*args, mpi=0):
    cmd = [sys.executable, "-m", "cases.cli", *map(str, args)]
    env = dict(os.environ)
    if mpi:
        cmd = [shutil.which("mpirun"), "-n", str(mpi), *cmd]
        env.update(
            OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1"
        )
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def assert_one_line_error(result, match):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vcnn: error:") and match in lines[0], result.stderr


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "run"
    result = vcnn("solve", "hills-transport", *SMALL, "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    return out


def test_run_writes_fields_meta_and_figures(serial_run):
    names = {p.name for p in serial_run.iterdir()}
    assert {
        "fields.vtu",
        "meta.json",
        "velocity_magnitude.png",
        "concentration.png",
        "mesh.msh",
        "mesh.xdmf",
        "run.log",
    } <= names
    fields = MeshFields.read(serial_run)
    assert ARRAYS <= set(fields.point_data)
    assert fields.kind("velocity") == "vector"
    meta = json.loads((serial_run / "meta.json").read_text())["metadata"]
    stats = meta["statistics"]
    assert stats["navier_stokes"]["converged"] and stats["transport"]["converged"]
    assert stats["navier_stokes"]["bulk_velocity"] == pytest.approx(0.721039, abs=1e-9)
    assert {"dolfinx", "gmsh", "numpy"} <= set(meta["versions"]) and meta["config"]["alpha"] == 1.0
    # the node-weighted mean streamwise velocity is close to the target (lumped P1 on a coarse mesh)
    u = fields["velocity"][:, 0]
    assert fields.integral(u) / fields.weights.sum() == pytest.approx(0.721039, rel=3e-2)
    assert fields["wall_distance"].min() > -1e-12 and fields["mixing_length"].max() <= 0.135 + 1e-12
    assert fields["concentration"].min() > -1e-6
    # every exported array is periodic: left-boundary nodes equal their right-boundary partners
    x = fields.points[:, 0]
    left, right = np.flatnonzero(np.isclose(x, x.min())), np.flatnonzero(np.isclose(x, x.max()))
    left, right = left[np.argsort(fields.points[left, 1])], right[np.argsort(fields.points[right, 1])]
    assert np.allclose(fields.points[left, 1], fields.points[right, 1])
    for name in ARRAYS:
        scale = np.abs(fields[name]).max()
        assert np.abs(fields[name][left] - fields[name][right]).max() <= 1e-10 * scale, name


@pytest.mark.parametrize(
    "args, match",
    [
        (["--alpha", "5", "--resolution", "10x10"], "alpha must be in [0.5, 4]"),
        (["--alpha", "0.2"], "alpha must be in"),
        (["--alpha", "1", "--resolution", "0x10"], "resolution"),
        (["--alpha", "1", "--resolution", "tenxten"], "resolution must look like"),
        (["--alpha", "1", "--wall-ratio", "0.5"], "wall_ratio"),
        (["--alpha", "1", "--degree", "7"], "degree"),
        (["--alpha", "1", "--reference", "/no/such.npz"], "does not exist"),
    ],
)
def test_bad_input_fails_fast_with_one_line(tmp_path, args, match):
    out = tmp_path / "run"
    result = vcnn("solve", "hills-transport", *args, "--out", out)
    assert_one_line_error(result, match)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_previous_run_is_refused_then_kept_when_a_solve_fails(serial_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(serial_run, out)
    before = sorted((p.name, p.stat().st_size) for p in out.iterdir())
    assert_one_line_error(vcnn("solve", "hills-transport", *SMALL, "--out", out), "already holds a previous run")
    # A Newton solve that stalls: one line, exit 2, the previous run intact, no staging left.
    result = vcnn("solve", "hills-transport", *SMALL, "--out", out, "--overwrite", "--max-newton", "2", "-q")
    assert_one_line_error(result, "Newton stalled after 2 iterations")
    assert sorted((p.name, p.stat().st_size) for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_overwrite_replaces_a_previous_run(serial_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(serial_run, out)
    (out / "stale.txt").write_text("old")
    result = vcnn("solve", "hills-transport", *SMALL, "--out", out, "--overwrite", "--no-figures", "-q")
    assert result.returncode == 0, result.stderr
    assert not (out / "stale.txt").exists() and (out / "fields.vtu").is_file()


@pytest.mark.mpi
def test_mpirun_two_ranks_agrees_with_serial(serial_run, tmp_path):
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun not installed")
    out = tmp_path / "mpi"
    result = vcnn("solve", "hills-transport", *SMALL, "--out", out, "--no-figures", "-q", mpi=2)
    assert result.returncode == 0, result.stderr
    serial, parallel = MeshFields.read(serial_run), MeshFields.read(out)
    assert json.loads((out / "meta.json").read_text())["metadata"]["mpi_ranks"] == 2
    assert np.array_equal(serial.points, parallel.points) and np.array_equal(serial.cells, parallel.cells)
    for name in ARRAYS:
        a, b = serial[name], parallel[name]
        rel = np.linalg.norm(a - b) / np.linalg.norm(a)
        assert rel < 1e-8, (name, rel)


@pytest.mark.parametrize("flow", ["channel-rans", "hills-rans", "phll-rans"])
def test_rans_help_names_every_turbulence_model(flow):
    """`--model`'s help lists what `solvers.models.MODELS` accepts (it is written out, to keep the
    parser free of the solver imports)."""
    from cases.cli import parser
    from solvers.models import MODELS

    solve = parser()._subparsers._group_actions[0].choices["solve"]
    flow_parser = solve._subparsers._group_actions[0].choices[flow]
    text = next(action.help for action in flow_parser._actions if action.dest == "model")
    assert all(name in text for name in MODELS), text
