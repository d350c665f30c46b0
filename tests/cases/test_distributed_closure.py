"""A network closure under `mpirun -n 2`: each rank evaluates the network on its own nodes, reading
the other rank's nodes within the cloud radius (its halo), and the coupled solve gives the serial
solution (the network of shared/fixtures/stalling-closure on 24 x 24 hills, float64)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

pytest.importorskip("dolfinx")

FIXTURE = ROOT.parent / "shared" / "fixtures" / "stalling-closure"


def coupled(precision: str = "float64"):
    """(velocity at the nodes in the serial node order, on rank 0; the closure's halo statistics
    or None; iterations) of the coupled solve at alpha 1.125 on 24 x 24."""
    from mpi4py import MPI

    from cases.flows import hills_rans
    from cases.studies.coupling import make_closure, prepare
    from solvers.export import to_mesh_fields

    config, network, _ = prepare(FIXTURE / "best.pt", 1.125, resolution="24x24", precision=precision,
                                 tolerance=1e-8, max_iterations=80, anderson=20)
    build, built = make_closure(network, 0), []
    solution = hills_rans.solve(config, MPI.COMM_WORLD, None, lambda flow, pde: built.append(build(flow, pde)) or built[-1])
    flow = solution.rans.flow
    fields = to_mesh_fields(flow.domain, {"velocity": flow.velocity, "nu_t": flow.nu_t})
    halo = None if built[0].halo is None else built[0].halo.statistics()
    return fields, halo, solution.rans.iterations


def relative(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="mpirun not installed")
def test_two_ranks_evaluate_their_own_nodes_and_give_the_serial_solution(tmp_path):
    if not (FIXTURE / "best.pt").is_file():
        pytest.skip(f"fixture not found at {FIXTURE}")
    serial, halo, iterations = coupled()
    assert halo is None  # one rank: the whole mesh, no halo
    out = tmp_path / "ranks2"
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMP_NUM_THREADS": "1"}
    cmd = [shutil.which("mpirun"), "-n", "2", sys.executable, "-m", "tests.cases.test_distributed_closure", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    velocity, nu_t = np.load(out.with_suffix(".npy")), np.load(out.with_suffix(".nu_t.npy"))
    report = json.loads(out.with_suffix(".json").read_text())
    print("serial", iterations, "iterations; two ranks:", report, "velocity", relative(velocity, serial["velocity"]),
          "nu_t", relative(nu_t, serial["nu_t"]))
    assert relative(velocity, serial["velocity"]) < 1e-8 and relative(nu_t, serial["nu_t"]) < 1e-8
    owned, halo = report["halo"]["owned"], report["halo"]["halo"]
    assert sum(owned) == serial.num_nodes and min(owned) > 0  # every node evaluated once
    assert all(0 < h < serial.num_nodes - o for o, h in zip(owned, halo))  # a halo, not the whole mesh


if __name__ == "__main__":  # under mpirun, for the test above: OUT.npy, OUT.nu_t.npy and OUT.json
    from pathlib import Path

    from mpi4py import MPI

    fields, halo, iterations = coupled()
    if MPI.COMM_WORLD.rank == 0:
        out = Path(sys.argv[1])
        np.save(out.with_suffix(".npy"), fields["velocity"])
        np.save(out.with_suffix(".nu_t.npy"), fields["nu_t"])
        out.with_suffix(".json").write_text(json.dumps({"halo": halo, "iterations": iterations}))
