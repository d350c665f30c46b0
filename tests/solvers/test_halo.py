"""`solvers.halo.NodeHalo` under `mpirun -n 3`: every node owned by exactly one rank, and each
rank's halo exactly the other ranks' nodes within the reach of its own (periodic images included),
with the whole mesh's node weights; checked on rank 0 against a search over the gathered mesh."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

pytest.importorskip("dolfinx")

REACH = 0.6


def check_halo() -> dict:
    """Under mpirun: the halos against a brute-force search on rank 0; the findings, on rank 0."""
    from dolfinx import fem
    from mpi4py import MPI
    from scipy.spatial import cKDTree

    from meshes.periodic_domain import Resolution
    from meshes.shapes import periodic_hill
    from solvers.export import to_mesh_fields
    from solvers.halo import NodeHalo

    comm = MPI.COMM_WORLD
    domain = periodic_hill(1.0, Resolution(16, 12, 10.0), comm)
    period = domain.period
    halo = NodeHalo(fem.FunctionSpace(domain.mesh, ("Lagrange", 1)), REACH, [period.tolist()])
    whole = to_mesh_fields(domain, {})
    parts = comm.gather((halo.ids, halo.owned, halo.points, halo.weights), root=0)
    if comm.rank != 0:
        return {}
    tree = cKDTree(whole.points)
    owners = np.concatenate([ids[:owned] for ids, owned, _, _ in parts])
    findings = {"every_node_owned_once": bool(np.array_equal(np.sort(owners), np.arange(whole.num_nodes))), "halos": []}
    for ids, owned, points, weights in parts:
        near = set()
        for shift in (0 * period, period, -period):
            for members in tree.query_ball_point(whole.points[ids[:owned]] + shift, REACH):
                near.update(members)
        expected = sorted(near - set(ids[:owned].tolist()))
        findings["halos"].append({
            "owned": int(owned), "halo": len(ids) - int(owned),
            "exact": sorted(ids[owned:].tolist()) == expected,
            "points": bool(np.allclose(points, whole.points[ids], atol=1e-12)),
            "weights": float(np.max(np.abs(weights - whole.weights[ids]))),
        })
    return findings


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="mpirun not installed")
def test_three_ranks_find_exactly_the_nodes_within_reach(tmp_path):
    out = tmp_path / "halo.json"
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMP_NUM_THREADS": "1"}
    cmd = [shutil.which("mpirun"), "--oversubscribe", "-n", "3", sys.executable, "-m", "tests.solvers.test_halo", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    findings = json.loads(out.read_text())
    print(findings)
    assert findings["every_node_owned_once"]
    for rank in findings["halos"]:
        assert rank["exact"] and rank["points"] and rank["weights"] < 1e-14
        assert 0 < rank["halo"] < sum(r["owned"] for r in findings["halos"]) - rank["owned"]


if __name__ == "__main__":  # under mpirun, for the test above: OUT (JSON of the findings)
    from pathlib import Path

    from mpi4py import MPI

    result = check_halo()
    if MPI.COMM_WORLD.rank == 0:
        Path(sys.argv[1]).write_text(json.dumps(result))
