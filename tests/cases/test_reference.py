"""The hills-transport case against the released OpenFOAM solution (reference README section 2).

Measured at full resolution (200 x 100 at alpha = 1, 286 x 100 at alpha = 2; see `make bench` and
the README): velocity 3.4 % / 4.6 % and concentration 15 % / 17 % relative L2 difference at
alpha = 1 / 2; the issue's goals (2 % / 3 %) are not met.
These tests pin the figures at a moderate resolution (the differences are mesh-converged: they
change by < 0.1 % from 100 x 60 to 200 x 120) and check why the concentration cannot match: the
reference violates the global balance of its own stated equation, which our solution satisfies.
"""

import numpy as np
import pytest

pytest.importorskip("dolfinx")

import ufl  # noqa: E402
from dolfinx import fem  # noqa: E402
from mpi4py import MPI  # noqa: E402

from cases.flows.hills_transport import HillsTransportConfig, compare_with_reference, solve  # noqa: E402
from meshes.hill_profile import hill_length  # noqa: E402
from meshes.periodic_domain import TAGS  # noqa: E402


# Regression bounds just above the measured differences (alpha: velocity, concentration).
BOUNDS = {1: (0.036, 0.155), 2: (0.053, 0.18)}


@pytest.fixture(scope="module", params=[1, 2])
def case(request, reference_dir):
    alpha = request.param
    config = HillsTransportConfig(alpha=alpha, nx=int(np.ceil(hill_length(alpha) / 0.06)), ny=60)
    solution = solve(config)
    return solution, compare_with_reference(solution, reference_dir / "hills_transport" / f"openfoam_alpha{alpha}.npz")


def test_agreement_with_openfoam(case):
    solution, comparison = case
    print(solution.config.alpha, comparison)
    assert comparison["points"] in (40000, 80000)
    velocity, concentration = BOUNDS[solution.config.alpha]
    assert comparison["velocity_rel_l2"] < velocity
    assert comparison["concentration_rel_l2"] < concentration


def test_global_balance_holds_for_ours_and_fails_for_the_reference(case):
    """Integrating the steady equation: mean reaction + wall outflux = mean production.

    The wall outflux -D dc/dn is >= 0 since c = 0 on the walls and c > 0 inside, so the
    reaction can never exceed the production."""
    solution, comparison = case
    mesh = solution.domain.mesh
    config = solution.config
    c = solution.transport.concentration
    u = solution.flow.velocity
    S = ufl.sym(ufl.grad(u))
    dx = ufl.dx(metadata={"quadrature_degree": 8})

    def integral(form):
        return mesh.comm.allreduce(fem.assemble_scalar(fem.form(form)), op=MPI.SUM)

    production = integral(config.production * solution.mixing_length * 2 * ufl.inner(S, S) * dx)
    reaction = integral(config.reaction * ufl.sqrt(abs(c)) * c * dx)
    n = ufl.FacetNormal(mesh)
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=solution.domain.facet_tags)
    walls = ds(TAGS["bottom"]) + ds(TAGS["top"])
    outflux = integral(-config.diffusivity * ufl.dot(ufl.grad(c), n) * walls)
    print(f"alpha {config.alpha:g}: reaction/production {reaction / production:.3f}, "
          f"balance defect {abs(production - reaction - outflux) / production:.2e}")
    assert outflux > 0
    assert abs(production - reaction - outflux) / production < 1e-3
    assert reaction / production < 0.95
    assert comparison["reference_reaction_over_production"] > 1.05
