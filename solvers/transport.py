"""Steady nonlinear scalar transport of the VCNN paper's periodic-hill case.

    u . grad c - D lap c + zeta sqrt(|c|) c = gamma l_m |S|^2 (+ source),   c = 0 on walls,

periodic in x (on a `PeriodicDomain`; on any other domain c = 0 on the given facets and zero
diffusive flux elsewhere, e.g. at an outflow), Lagrange elements, SUPG-stabilised, solved by Newton. The Jacobian of the
reaction is written out, 1.5 zeta sqrt(|c|) dc, because UFL's derivative of sqrt(|c|) c is
0 * inf at c = 0, which is where Newton starts.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import ufl
from dolfinx import fem

from meshes.periodic_domain import TAGS, PeriodicDomain
from solvers.errors import SolverError
from solvers.newton import LinearSystem, NewtonStats, newton, unconstrained
from solvers.periodic import periodic_constraint


@dataclasses.dataclass(frozen=True)
class TransportParameters:
    """Diffusivity D, reaction zeta, production gamma (the paper's gamma_eff) and the element degree."""

    diffusivity: float = 0.1
    reaction: float = 3.0
    production: float = 6.3246
    degree: int = 2
    supg: bool = True
    rtol: float = 1e-10
    max_iterations: int = 30

    def __post_init__(self):
        if not (self.diffusivity > 0 and math.isfinite(self.diffusivity)):
            raise SolverError(f"diffusivity must be positive, got {self.diffusivity}")
        if not (self.reaction >= 0 and self.production >= 0):
            raise SolverError("reaction and production coefficients must be non-negative")
        if self.degree not in (1, 2, 3):
            raise SolverError(f"transport element degree must be 1, 2 or 3, got {self.degree}")


@dataclasses.dataclass
class TransportSolution:
    concentration: fem.Function
    stats: NewtonStats
    seconds: float


def strain_rate_magnitude(u):
    """|S| = sqrt(2 S:S), S = sym(grad u)."""
    S = ufl.sym(ufl.grad(u))
    return ufl.sqrt(2.0 * ufl.inner(S, S))


def solve_transport(
    domain,
    velocity,
    mixing_length,
    params: TransportParameters = TransportParameters(),
    source=None,
    initial: fem.Function | None = None,
    zero_facets: np.ndarray | None = None,
) -> TransportSolution:
    """Solve for c given a velocity and a mixing length (UFL expressions or Functions).

    c = 0 on `zero_facets` (default: both walls of a `PeriodicDomain`)."""
    start = time.perf_counter()
    mesh = domain.mesh
    periodic = isinstance(domain, PeriodicDomain)
    space = fem.FunctionSpace(mesh, ("Lagrange", params.degree))
    if zero_facets is None:
        if not periodic:
            raise SolverError("give the facets where c = 0 (zero_facets)")
        zero_facets = np.concatenate([domain.facet_tags.find(TAGS["bottom"]), domain.facet_tags.find(TAGS["top"])])
    dofs = fem.locate_dofs_topological(space, mesh.topology.dim - 1, zero_facets)
    bcs = [fem.dirichletbc(0.0, dofs, space)]
    mpc = periodic_constraint(domain, space, bcs) if periodic else unconstrained(space)
    c = fem.Function(mpc.function_space, name="concentration")
    if initial is not None:
        c.interpolate(initial)
        c.x.array[dofs] = 0.0

    v, dc = ufl.TestFunction(space), ufl.TrialFunction(space)
    D = fem.Constant(mesh, params.diffusivity)
    zeta = fem.Constant(mesh, params.reaction)
    gamma = fem.Constant(mesh, params.production)
    u = velocity
    rhs = gamma * mixing_length * strain_rate_magnitude(u) ** 2
    if source is not None:
        rhs = rhs + source
    weight = v
    if params.supg:
        h = ufl.CellDiameter(mesh) / params.degree  # element length per node spacing
        tau = ((2.0 * ufl.sqrt(ufl.dot(u, u)) / h) ** 2 + 9.0 * (4.0 * D / h**2) ** 2) ** -0.5
        weight = v + tau * ufl.dot(u, ufl.grad(v))
    dx = ufl.dx(metadata={"quadrature_degree": 3 * params.degree + 1})
    linear = ufl.dot(u, ufl.grad(c)) * v * dx + D * ufl.inner(ufl.grad(c), ufl.grad(v)) * dx - rhs * v * dx
    if params.supg:
        strong = ufl.dot(u, ufl.grad(c)) - D * ufl.div(ufl.grad(c)) - rhs
        linear += strong * tau * ufl.dot(u, ufl.grad(v)) * dx
    root = ufl.sqrt(abs(c))
    residual = linear + zeta * root * c * weight * dx
    jacobian = ufl.derivative(linear, c, dc) + 1.5 * zeta * root * dc * weight * dx

    system = LinearSystem(fem.form(jacobian), mpc, bcs)
    residual_form = fem.form(residual)
    correction = fem.Function(mpc.function_space)
    vectors = []

    def step():
        vec = system.residual(residual_form)
        vectors.append(vec)

        def apply():
            system.assemble()
            system.solve(vec, correction)
            c.vector.axpy(-1.0, correction.vector)
            c.x.scatter_forward()

        return vec.norm(), apply

    try:
        stats = newton(step, "transport", rtol=params.rtol, max_iterations=params.max_iterations)
    finally:
        for vec in vectors:
            vec.destroy()
        system.destroy()
    return TransportSolution(c, stats, time.perf_counter() - start)
