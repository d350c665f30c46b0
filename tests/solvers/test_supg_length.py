"""The turbulence equations' SUPG: the cell length along the flow, from the P1 basis gradients."""

import numpy as np
import pytest

pytest.importorskip("dolfinx")

import dolfinx.mesh  # noqa: E402
import ufl  # noqa: E402
from dolfinx import fem  # noqa: E402
from mpi4py import MPI  # noqa: E402

from meshes.periodic_domain import Resolution  # noqa: E402
from meshes.shapes import channel  # noqa: E402
from solvers.errors import SolverError  # noqa: E402
from solvers.turbulence import ScalarEquation, p1_basis_gradients  # noqa: E402


def chord(vertices: np.ndarray, direction: np.ndarray) -> float:
    """The longest segment of the triangle parallel to `direction`, by brute force: from each vertex
    along the direction to the opposite edge."""
    longest = 0.0
    for a in range(3):
        p, q = vertices[(a + 1) % 3], vertices[(a + 2) % 3]
        # vertices[a] + t direction = p + s (q - p)
        t, s = np.linalg.solve(np.column_stack([direction, p - q]), p - vertices[a])
        if -1e-12 <= s <= 1 + 1e-12:
            longest = max(longest, abs(t) * np.linalg.norm(direction))
    return longest


def test_the_basis_gradients_measure_each_cell_along_any_direction():
    mesh = dolfinx.mesh.create_rectangle(MPI.COMM_SELF, [[0.0, 0.0], [2.0, 1.0]], [5, 3])
    x = mesh.geometry.x
    x[:, :2] = x[:, :2] @ np.array([[1.0, 0.7], [-0.2, 0.4]]).T  # sheared and stretched cells
    functions = p1_basis_gradients(mesh)
    dofs = functions[0].function_space.dofmap.list.array  # DG0: one dof per cell
    gradients = [g.x.array.reshape(-1, 2)[dofs] for g in functions]
    cells = mesh.geometry.dofmap.array.reshape(-1, 3)
    rng = np.random.default_rng(3)
    for cell in range(len(cells)):
        u = rng.normal(size=2)
        rate = sum(abs(g[cell] @ u) for g in gradients)
        assert rate == pytest.approx(2.0 * np.linalg.norm(u) / chord(x[cells[cell], :2], u), rel=1e-10)


def test_supg_uses_the_cells_length_along_the_flow_not_its_diameter():
    """Flow along x over cells 0.25 long and 1.5 high: tau = h_x / (2 |u|) = 0.125 / |u| with no
    diffusion or reaction (the diameter, 1.52, would give 0.76 / |u|)."""
    domain = channel(1.0, 3.0, Resolution(4, 2, 1.0))
    mesh = domain.mesh
    space = fem.FunctionSpace(mesh, ("Lagrange", 1))
    equation = ScalarEquation(domain, space, np.array([], dtype=np.int32), "phi", 0.0)
    speed = 2.0
    tau = equation.stabilisation(ufl.as_vector((speed, 0.0)), 0.0, 0.0)
    mean = fem.assemble_scalar(fem.form(tau * ufl.dx)) / 3.0
    assert mean == pytest.approx(0.125 / speed, rel=1e-10)


def test_supg_takes_diffusion_over_the_cells_short_side():
    """No flow over the same cells (right-angled, legs a = 0.25 and b = 1.5): the diffusive rate is
    G (2 / a^2 + 2 / b^2), so tau = 1 / (3 G (2 / a^2 + 2 / b^2)); the diameter's 4 G / h^2 would
    make tau 19 times larger."""
    domain = channel(1.0, 3.0, Resolution(4, 2, 1.0))
    mesh = domain.mesh
    space = fem.FunctionSpace(mesh, ("Lagrange", 1))
    equation = ScalarEquation(domain, space, np.array([], dtype=np.int32), "phi", 0.0)
    diffusivity = 0.01
    tau = equation.stabilisation(ufl.as_vector((0.0, 0.0)), diffusivity, 0.0)
    mean = fem.assemble_scalar(fem.form(tau * ufl.dx)) / 3.0
    assert mean == pytest.approx(1.0 / (3.0 * diffusivity * (2 / 0.25**2 + 2 / 1.5**2)), rel=1e-10)


def test_quadrilateral_cells_are_refused():
    mesh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 2, 2, dolfinx.mesh.CellType.quadrilateral)
    with pytest.raises(SolverError, match="straight-sided triangles, got quadrilateral cells of geometry degree 1"):
        p1_basis_gradients(mesh)
