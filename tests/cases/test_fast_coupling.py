"""The network of shared/fixtures/stalling-closure (trained on 64 x 64 k-omega hills) coupled on a
24 x 24 mesh in float32, "mixed" and float64: the converged velocities agree within 1e-4 (the
goal of fast inference: the precision changes the cost, not the solution)."""

import numpy as np
import pytest

from tests.conftest import ROOT

pytest.importorskip("dolfinx")

FIXTURE = ROOT.parent / "shared" / "fixtures" / "stalling-closure"


def coupled(precision: str):
    """(velocity dofs, iterations, the closure's timings) of the converged coupled solve."""
    from mpi4py import MPI

    from cases.flows import hills_rans
    from cases.studies.coupling import make_closure, prepare

    if not (FIXTURE / "best.pt").is_file():
        pytest.skip(f"fixture not found at {FIXTURE}")
    config, network, _ = prepare(FIXTURE / "best.pt", 1.125, resolution="24x24", precision=precision,
                                 tolerance=1e-7, max_iterations=60, anderson=20)
    solution = hills_rans.solve(config, MPI.COMM_WORLD, None, make_closure(network, 0))
    return solution.flow.velocity.x.array.copy(), solution.rans.iterations, network.timings


def test_the_precision_of_the_network_leaves_the_coupled_solution_unchanged():
    reference, iterations, timings = coupled("float64")
    assert timings["float64_calls"] == timings["calls"] == iterations
    for precision in ("float32", "mixed"):
        velocity, iterations, timings = coupled(precision)
        difference = np.linalg.norm(velocity - reference) / np.linalg.norm(reference)
        print(precision, "against float64:", difference, "iterations", iterations, timings)
        assert difference < 1e-4
        assert (timings["float64_calls"] > 0) == (precision == "mixed") and timings["float64_calls"] < timings["calls"]
