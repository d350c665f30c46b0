"""Steady nonlinear scalar transport of the VCNN paper's periodic-hill case.

    u . grad c - D lap c + zeta |c|^(p-1) c = gamma l_m |S|^2 (+ source),   c = 0 on walls,

with the paper's reaction exponent p = 3/2 by default (the released OpenFOAM data satisfy p = 2
instead: `docs/results.md`),

or, with a `TimeStepping`, the same equation with dc/dt added, marched by implicit Euler from a
uniform start (how the released OpenFOAM case ran: dt = 0.1 from c = 0.001 to t = 10), one Newton
solve per step,

periodic in x (on a `PeriodicDomain`; on any other domain c = 0 on the given facets and zero
diffusive flux elsewhere, e.g. at an outflow), Lagrange elements, SUPG-stabilised, solved by Newton. The Jacobian of the
reaction is written out, p zeta |c|^(p-1) dc, because UFL's derivative of sqrt(|c|) c is
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
    """Diffusivity D, reaction zeta, production gamma (the paper's gamma_eff), the reaction exponent
    p (reaction zeta |c|^(p-1) c) and the element degree."""

    diffusivity: float = 0.1
    reaction: float = 3.0
    production: float = 6.3246
    degree: int = 2
    supg: bool = True
    rtol: float = 1e-10
    max_iterations: int = 30
    reaction_exponent: float = 1.5

    def __post_init__(self):
        if not (self.diffusivity > 0 and math.isfinite(self.diffusivity)):
            raise SolverError(f"diffusivity must be positive, got {self.diffusivity}")
        if not (self.reaction >= 0 and self.production >= 0):
            raise SolverError("reaction and production coefficients must be non-negative")
        if not 1.0 <= self.reaction_exponent <= 4.0:
            raise SolverError(f"the reaction exponent must lie in [1, 4], got {self.reaction_exponent}")
        if self.degree not in (1, 2, 3):
            raise SolverError(f"transport element degree must be 1, 2 or 3, got {self.degree}")


@dataclasses.dataclass(frozen=True)
class TimeStepping:
    """Implicit Euler in time, by default the released case's (`system/controlDict`, `0/T`).

    `lagged_reaction`: the reaction linearised inside each step, zeta sqrt(|c_old|) c_new, as a
    segregated finite-volume solver would write it (a variant of the unreleased source)."""

    dt: float = 0.1
    steps: int = 100
    initial: float = 0.001
    lagged_reaction: bool = False

    def __post_init__(self):
        if not (self.dt > 0 and math.isfinite(self.dt)) or self.steps < 1:
            raise SolverError(f"time stepping needs dt > 0 and at least one step, got dt {self.dt}, {self.steps} steps")
        if not (self.initial >= 0 and math.isfinite(self.initial)):
            raise SolverError(f"the initial concentration must be non-negative, got {self.initial}")

    @property
    def end_time(self) -> float:
        return self.dt * self.steps


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
    stepping: TimeStepping | None = None,
    on_step=None,
) -> TransportSolution:
    """Solve for c given a velocity and a mixing length (UFL expressions or Functions).

    c = 0 on `zero_facets` (default: both walls of a `PeriodicDomain`). Steady by default; with
    `stepping`, c at its end time, `on_step(time, c)` called after every step; the stats are
    the last step's, with `iterations` summed over all steps."""
    if stepping is not None and initial is not None:
        raise SolverError("a time-stepped solve starts from its own uniform value: give stepping or initial, not both")
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
    if stepping is not None:
        c.x.array[:] = stepping.initial
        c.x.array[dofs] = 0.0
    elif initial is not None:
        c.interpolate(initial)
        c.x.array[dofs] = 0.0
    old = fem.Function(mpc.function_space)

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
    transport = ufl.dot(u, ufl.grad(c)) - rhs
    if stepping is not None:
        transport += (c - old) / fem.Constant(mesh, stepping.dt)
    linear = transport * v * dx + D * ufl.inner(ufl.grad(c), ufl.grad(v)) * dx
    if params.supg:
        strong = transport - D * ufl.div(ufl.grad(c))
        linear += strong * tau * ufl.dot(u, ufl.grad(v)) * dx
    lagged = stepping is not None and stepping.lagged_reaction
    p = params.reaction_exponent
    rate = zeta * abs(old if lagged else c) ** (p - 1.0)  # the reaction per unit c
    residual = linear + rate * c * weight * dx
    jacobian = ufl.derivative(linear, c, dc) + (1.0 if lagged else p) * rate * dc * weight * dx

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
        if stepping is None:
            stats = newton(step, "transport", rtol=params.rtol, max_iterations=params.max_iterations)
        else:
            iterations = 0
            for n in range(1, stepping.steps + 1):
                old.x.array[:] = c.x.array
                stats = newton(step, "transport", rtol=params.rtol, atol=1e-10, max_iterations=params.max_iterations)
                iterations += stats.iterations
                if on_step is not None:
                    on_step(n * stepping.dt, c)
            stats.iterations = iterations
    finally:
        for vec in vectors:
            vec.destroy()
        system.destroy()
    return TransportSolution(c, stats, time.perf_counter() - start)
