"""`LinearSystem` reassembles into its matrix and refactorises it: the factors must follow the
coefficients, not keep the first matrix's (MUMPS skips only the symbolic analysis)."""

import numpy as np
import pytest

pytest.importorskip("dolfinx")

import ufl  # noqa: E402
from dolfinx import fem, mesh  # noqa: E402
from mpi4py import MPI  # noqa: E402

from solvers.newton import LinearSystem, unconstrained  # noqa: E402


def test_a_reassembled_system_solves_with_its_new_coefficients():
    domain = mesh.create_unit_square(MPI.COMM_WORLD, 8, 8)
    space = fem.FunctionSpace(domain, ("Lagrange", 1))
    u, v = ufl.TrialFunction(space), ufl.TestFunction(space)
    c = fem.Constant(domain, 1.0)
    x = ufl.SpatialCoordinate(domain)
    # a reaction-diffusion operator whose diffusion and reaction scale differently with c
    system = LinearSystem(fem.form((c * ufl.inner(ufl.grad(u), ufl.grad(v)) + c**2 * u * v) * ufl.dx), unconstrained(space), [])
    rhs_form = fem.form((1 + x[0]) * v * ufl.dx)
    solutions = []
    for value in (1.0, 3.0, 1.0):
        c.value = value
        system.assemble()
        rhs = system.residual(rhs_form)
        solutions.append(system.solve(rhs, fem.Function(space)).x.array.copy())
        rhs.destroy()
    matrix = system.matrix
    system.assemble()
    assert system.matrix is matrix  # the same matrix, filled again
    system.destroy()
    # the first and last solves agree to rounding; the middle one is another solution
    assert np.allclose(solutions[0], solutions[2], rtol=1e-12, atol=1e-14)
    assert np.abs(solutions[1] - solutions[0]).max() > 0.1 * np.abs(solutions[0]).max()
    # c = 3: the same problem solved by a fresh system
    c.value = 3.0
    fresh = LinearSystem(system.form, unconstrained(space), [])
    fresh.assemble()
    rhs = fresh.residual(rhs_form)
    expected = fresh.solve(rhs, fem.Function(space)).x.array
    assert np.allclose(solutions[1], expected, rtol=1e-12, atol=1e-14)
    rhs.destroy()
    fresh.destroy()
