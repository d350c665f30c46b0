"""Manufactured solutions on a periodic channel: measured L2 convergence orders.

The exact fields are periodic in x and vanish on the walls; the source terms are derived from
them symbolically by UFL, so every term of each operator (convection, variable viscosity,
pressure, nonlinear reaction, production) is exercised.
"""

import numpy as np
import pytest

pytest.importorskip("dolfinx")

import ufl  # noqa: E402
from dolfinx import fem  # noqa: E402
from mpi4py import MPI  # noqa: E402

from meshes.periodic_domain import Resolution  # noqa: E402
from meshes.shapes import channel  # noqa: E402
from solvers.navier_stokes import FlowParameters, NavierStokes  # noqa: E402
from solvers.transport import TransportParameters, solve_transport, strain_rate_magnitude  # noqa: E402
from tests.conftest import convergence_orders  # noqa: E402

BULK = 0.8


def exact_flow(x):
    pi = ufl.pi
    u = ufl.as_vector(
        (
            6 * BULK * x[1] * (1 - x[1]) + 0.3 * pi * ufl.sin(2 * pi * x[0]) * ufl.sin(2 * pi * x[1]),
            -0.6 * pi * ufl.cos(2 * pi * x[0]) * ufl.sin(pi * x[1]) ** 2,
        )
    )
    p = 0.5 * ufl.cos(2 * pi * x[0]) * ufl.sin(2 * pi * x[1])
    nu_t = 0.02 * (1 + ufl.sin(pi * x[1]) * ufl.cos(2 * pi * x[0]))
    return u, p, nu_t


def l2(mesh, expr):
    form = fem.form(ufl.inner(expr, expr) * ufl.dx(metadata={"quadrature_degree": 8}))
    return np.sqrt(mesh.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM))


def mean(mesh, expr):
    integral = mesh.comm.allreduce(fem.assemble_scalar(fem.form(expr * ufl.dx)), op=MPI.SUM)
    area = mesh.comm.allreduce(fem.assemble_scalar(fem.form(fem.Constant(mesh, 1.0) * ufl.dx)), op=MPI.SUM)
    return integral / area


def test_navier_stokes_with_eddy_viscosity_converges_at_taylor_hood_rates():
    nu = 0.05
    sizes, eu, ep, forcing = [], [], [], []
    for n in (8, 16, 32, 64):
        domain = channel(1.0, 1.0, Resolution(n, n, 1.0))
        x = ufl.SpatialCoordinate(domain.mesh)
        u, p, nu_t = exact_flow(x)
        source = ufl.grad(u) * u - ufl.div(2 * (nu + nu_t) * ufl.sym(ufl.grad(u))) + ufl.grad(p)
        problem = NavierStokes(domain, FlowParameters(nu=nu, bulk_velocity=BULK), nu_t=nu_t, source=source)
        solution = problem.solve()
        assert solution.stats.converged
        assert abs(solution.bulk_velocity - BULK) < 1e-10
        sizes.append(1.0 / n)
        eu.append(l2(domain.mesh, solution.velocity - u))
        # The pressure is defined up to a constant (the solver pins one node): compare modulo it.
        shift = mean(domain.mesh, solution.pressure - p)
        ep.append(l2(domain.mesh, solution.pressure - p - shift))
        forcing.append(abs(solution.forcing))  # the exact source carries all the forcing
    velocity_orders = convergence_orders(sizes, eu)
    pressure_orders = convergence_orders(sizes, ep)
    print("velocity errors", eu, "orders", velocity_orders)
    print("pressure errors", ep, "orders", pressure_orders)
    assert abs(velocity_orders[-1] - 3.0) < 0.2
    assert abs(pressure_orders[-1] - 2.0) < 0.2
    assert forcing[-1] < forcing[0] and forcing[-1] < 1e-3


@pytest.mark.parametrize("degree, supg", [(1, True), (2, True), (2, False)])
def test_nonlinear_transport_converges_at_lagrange_rates(degree, supg):
    params = TransportParameters(diffusivity=0.05, reaction=3.0, production=6.3246, degree=degree, supg=supg)
    sizes, errors = [], []
    for n in (16, 32, 64):
        domain = channel(1.0, 1.0, Resolution(n, n, 4.0))  # graded: no superconvergent symmetry
        x = ufl.SpatialCoordinate(domain.mesh)
        u, _, _ = exact_flow(x)
        c = ufl.sin(ufl.pi * x[1]) * (1 + 0.5 * ufl.cos(2 * ufl.pi * x[0]) * ufl.cos(3 * ufl.pi * x[1]))
        distance = ufl.min_value(x[1], 1 - x[1])
        lm = ufl.min_value(0.41 * distance, 0.135)
        operator = (
            ufl.dot(u, ufl.grad(c)) - params.diffusivity * ufl.div(ufl.grad(c)) + params.reaction * ufl.sqrt(c) * c
        )
        source = operator - params.production * lm * strain_rate_magnitude(u) ** 2
        solution = solve_transport(domain, u, lm, params, source=source)
        assert solution.stats.converged
        sizes.append(1.0 / n)
        errors.append(l2(domain.mesh, solution.concentration - c))
    orders = convergence_orders(sizes, errors)
    print(f"P{degree} concentration errors", errors, "orders", orders)
    assert abs(orders[-1] - (degree + 1)) < 0.2


def manufactured_turbulence_equation(n: int):
    """A turbulence variable's linear steady problem (SUPG, lumped destruction, variable
    diffusivity) on graded cells, with its exact solution."""
    from solvers.turbulence import ScalarEquation

    domain = channel(1.0, 1.0, Resolution(n, n, 4.0))
    mesh = domain.mesh
    x = ufl.SpatialCoordinate(mesh)
    u, _, _ = exact_flow(x)
    phi = ufl.sin(ufl.pi * x[1]) * (1 + 0.5 * ufl.cos(2 * ufl.pi * x[0]))
    diffusivity = 0.05 * (1 + x[1])
    reaction = 2.0 + ufl.cos(2 * ufl.pi * x[0])
    source = ufl.dot(u, ufl.grad(phi)) - ufl.div(diffusivity * ufl.grad(phi)) + reaction * phi
    space = fem.FunctionSpace(mesh, ("Lagrange", 1))
    walls = np.concatenate([domain.facet_tags.find(t) for t in (1, 2)])
    equation = ScalarEquation(domain, space, fem.locate_dofs_topological(space, 1, walls), "phi", 0.0)
    return equation, (u, diffusivity, reaction, source), phi


def test_turbulence_equation_step_converges_at_p1_rates():
    """One pseudo-time step with an infinite dt solves the linear steady equation of a turbulence
    variable: O(h^2) in L2. The diffusive rate over the cells' short side keeps the error on these
    cells, four times graded, below 6e-4 at n = 64 (7.8e-4 with the diameter's rate)."""
    sizes, errors = [], []
    for n in (16, 32, 64):
        equation, terms, phi = manufactured_turbulence_equation(n)
        equation.define(*terms, fem.Constant(equation.domain.mesh, 1e30))
        residual = equation.step(floor=-np.inf)
        assert equation.step(floor=-np.inf) < 1e-10 * residual  # the first step solved it
        sizes.append(1.0 / n)
        errors.append(l2(equation.domain.mesh, equation.phi - phi))
        equation.destroy()
    orders = convergence_orders(sizes, errors)
    print("turbulence equation errors", errors, "orders", orders)
    assert abs(orders[-1] - 2.0) < 0.2
    assert errors[-1] < 6e-4


def test_a_turbulence_equation_converges_to_the_same_field_whatever_its_pseudo_time_step():
    """SUPG's tau holds no pseudo-time rate: steps of 0.2 reach the field that one infinite step
    solves, to the solver's precision."""
    equation, terms, _ = manufactured_turbulence_equation(16)
    equation.define(*terms, fem.Constant(equation.domain.mesh, 1e30))
    equation.step(floor=-np.inf)
    steady = equation.phi.x.array.copy()
    equation.destroy()
    equation, terms, _ = manufactured_turbulence_equation(16)
    equation.define(*terms, fem.Constant(equation.domain.mesh, 0.2))
    first = equation.step(floor=-np.inf)
    for _ in range(200):
        if equation.step(floor=-np.inf) < 1e-12 * first:
            break
    else:
        raise AssertionError("steps of 0.2 did not converge in 200")
    assert np.abs(equation.phi.x.array - steady).max() < 1e-10 * np.abs(steady).max()
    equation.destroy()
