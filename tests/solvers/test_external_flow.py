"""The external-flow solver: manufactured solution with inflow, walls and a traction outflow
(measured Taylor-Hood orders), and a laminar flow around a NACA 0012 at 20 degrees."""

import numpy as np
import pytest

pytest.importorskip("dolfinx")

import ufl  # noqa: E402
from dolfinx import fem, mesh as dmesh  # noqa: E402
from mpi4py import MPI  # noqa: E402

from solvers.errors import SolverError  # noqa: E402
from solvers.external_flow import ExternalFlowParameters, solve_external_flow  # noqa: E402
from tests.conftest import convergence_orders  # noqa: E402
from tests.solvers.test_manufactured import l2  # noqa: E402

NU = 0.05


def square(n):
    """Unit square; facets tagged 1 (left), 2 (bottom and top), 3 (right: the outflow)."""
    domain = dmesh.create_unit_square(MPI.COMM_WORLD, n, n)
    fdim = domain.topology.dim - 1
    marks = {1: lambda x: np.isclose(x[0], 0), 2: lambda x: np.isclose(x[1], 0) | np.isclose(x[1], 1), 3: lambda x: np.isclose(x[0], 1)}
    facets = [(dmesh.locate_entities_boundary(domain, fdim, f), tag) for tag, f in marks.items()]
    indices = np.concatenate([f for f, _ in facets])
    values = np.concatenate([np.full(len(f), tag, dtype=np.int32) for f, tag in facets])
    order = np.argsort(indices)
    return domain, dmesh.meshtags(domain, fdim, indices[order], values[order])


def exact(x, lib=ufl):
    """A divergence-free velocity (from the stream function sin(pi x) sin^2(pi y) + y) and a pressure."""
    pi = np.pi
    u = (pi * lib.sin(pi * x[0]) * lib.sin(2 * pi * x[1]) + 1, -pi * lib.cos(pi * x[0]) * lib.sin(pi * x[1]) ** 2)
    return u, lib.cos(pi * x[0]) * lib.cos(pi * x[1])


def test_manufactured_solution_converges_at_taylor_hood_rates():
    sizes, eu, ep = [], [], []
    for n in (8, 16, 32):
        domain, tags = square(n)
        x = ufl.SpatialCoordinate(domain)
        components, p = exact(x)
        u = ufl.as_vector(components)
        source = ufl.grad(u) * u - NU * ufl.div(ufl.grad(u)) + ufl.grad(p)
        normal = ufl.FacetNormal(domain)
        traction = NU * ufl.grad(u) * normal - p * normal
        params = ExternalFlowParameters(reynolds=1 / NU, continuation=1)
        solution = solve_external_flow(
            domain, tags, [1, 2], [], params, inflow_velocity=lambda X: np.vstack(exact(X, np)[0]), source=source, traction=traction
        )
        assert all(s.converged for s in solution.stats)
        sizes.append(1 / n)
        eu.append(l2(domain, solution.velocity - u))
        ep.append(l2(domain, solution.pressure - p))
    orders_u, orders_p = convergence_orders(sizes, eu), convergence_orders(sizes, ep)
    print("velocity", eu, orders_u, "pressure", ep, orders_p)
    assert orders_u[-1] > 2.8 and orders_p[-1] > 1.8


def test_flow_around_naca0012_at_20_degrees():
    pytest.importorskip("gmsh")
    from meshes.airfoil import AIRFOIL_TAGS, AirfoilGeometry, airfoil_domain

    domain = airfoil_domain(AirfoilGeometry(angle_of_attack=20.0, radius=5.0, wall_size=0.02, far_size=0.5))
    tags = domain.facet_tags
    solution = solve_external_flow(domain.mesh, tags, [AIRFOIL_TAGS["inflow"]], [AIRFOIL_TAGS["airfoil"]], ExternalFlowParameters(reynolds=100.0))
    assert [s.converged for s in solution.stats] == [True, True, True]
    n = ufl.FacetNormal(domain.mesh)  # out of the fluid: into the airfoil on its surface
    ds = ufl.Measure("ds", domain.mesh, subdomain_data=tags)(AIRFOIL_TAGS["airfoil"])
    u, p = solution.velocity, solution.pressure
    force = [domain.mesh.comm.allreduce(fem.assemble_scalar(fem.form((p * n[i] - 0.01 * ufl.dot(ufl.grad(u) * n, ufl.as_vector([1.0 * (i == 0), 1.0 * (i == 1)]))) * ds)), op=MPI.SUM) for i in (0, 1)]
    # drag downstream, lift up at a positive angle of attack; measured C_D = 0.58, C_L = 0.78 on
    # this coarse mesh with the far field at 5 chords (a plausibility range, not a validation)
    assert 0.15 < force[0] < 0.5 and 0.2 < force[1] < 0.6
    with pytest.raises(SolverError, match="no boundary facets"):
        solve_external_flow(domain.mesh, tags, [99], [], ExternalFlowParameters())
