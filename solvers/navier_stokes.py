"""Steady incompressible Navier-Stokes in a domain periodic in x, driven to a target bulk velocity.

Taylor-Hood P2/P1, no-slip walls, periodicity through dolfinx_mpc, viscous term
2 (nu + nu_t) S(u) : S(v) so that a spatially varying eddy viscosity enters correctly.
The uniform streamwise body force f is an unknown: each Newton step solves the bordered system
for (u, p, f) exactly, using the factorised Jacobian twice (residual and sensitivity du/df),
so that the volume-averaged streamwise velocity hits its target with quadratic convergence.
The load dF/df is constant, so while the factors are kept the sensitivity is too: it is solved
once per factorisation.
`solve(dt)` adds a pseudo-time term (u - u_start) / dt (implicit Euler from the state the solve
starts from): a damped step towards the steady solution where full Newton from that start stalls
(the 2.024-high benchmark hills with an early eddy viscosity); its fixed point is the same.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from meshes.periodic_domain import TAGS, PeriodicDomain
from solvers.errors import SolverError
from solvers.newton import LinearSystem, NewtonStats, newton
from solvers.periodic import periodic_constraint


@dataclasses.dataclass(frozen=True)
class FlowParameters:
    """Kinematic viscosity and target volume-averaged streamwise velocity."""

    nu: float = 0.01
    bulk_velocity: float = 0.721039
    rtol: float = 1e-10
    max_iterations: int = 25
    # Keep the Jacobian's LU factors across Newton steps and solves while each step cuts the
    # residual by at least this factor (a chord step: one back-substitution, the sensitivity kept,
    # instead of an assembly, a factorisation and two); 0: factorise at every step.
    keep_factors: float = 0.0

    def __post_init__(self):
        if not (self.nu > 0 and math.isfinite(self.nu)):
            raise SolverError(f"viscosity nu must be positive, got {self.nu}")
        if not 0.0 <= self.keep_factors < 1.0:
            raise SolverError(f"keep_factors must be in [0, 1), got {self.keep_factors}")
        if not math.isfinite(self.bulk_velocity):
            raise SolverError(f"bulk velocity must be finite, got {self.bulk_velocity}")


@dataclasses.dataclass
class FlowSolution:
    velocity: fem.Function  # P2 vector
    pressure: fem.Function  # P1, zero at the pin point on the upper wall
    forcing: float  # streamwise body force per unit mass
    bulk_velocity: float
    stats: NewtonStats
    seconds: float


class NavierStokes:
    """The discrete problem; `solve()` may be called repeatedly (e.g. as nu_t changes in RANS).

    nu_t: optional eddy viscosity (a UFL expression or Function, updated in place by the caller).
    source: optional extra body force (UFL vector), e.g. for manufactured solutions.
    stress: optional extra stress a (UFL 2 x 2 tensor, e.g. a frozen Reynolds stress or the part an
    eddy viscosity does not carry): u.grad u + grad p = div(2 (nu + nu_t) S) - div(a) + f, in weak
    form (-a : grad v; the test functions vanish on the walls and the periodic ends cancel), so a P1
    or DG tensor enters without being differentiated.
    """

    def __init__(self, domain: PeriodicDomain, params: FlowParameters = FlowParameters(), nu_t=None, source=None, stress=None):
        self.domain, self.params = domain, params
        mesh = domain.mesh
        cell = mesh.ufl_cell()
        element = ufl.MixedElement([ufl.VectorElement("Lagrange", cell, 2), ufl.FiniteElement("Lagrange", cell, 1)])
        space = fem.FunctionSpace(mesh, element)
        # Collapse the unconstrained space once: collapsing the constrained one (whose index
        # map carries extra ghosts) corrupts memory under MPI in DOLFINx 0.5.
        self._velocity_space, self._velocity_dofs = space.sub(0).collapse()
        self._pressure_space, self._pressure_dofs = space.sub(1).collapse()
        self.bcs = _wall_and_pin_bcs(domain, space, self._velocity_space, self._pressure_space)
        self.mpc = periodic_constraint(domain, space, self.bcs)
        W = self.mpc.function_space
        self.state = fem.Function(W)
        self.correction = fem.Function(W)
        self.sensitivity = fem.Function(W)
        self.forcing = fem.Constant(mesh, 0.0)
        self._start = fem.Function(W)  # the state a pseudo-time step starts from
        self._inverse_dt = fem.Constant(mesh, 0.0)

        u, p = ufl.split(self.state)
        # Test and trial functions live on the unconstrained space (as dolfinx_mpc expects,
        # so that the Dirichlet conditions match); the state lives on the constrained one.
        v, q = ufl.TestFunctions(space)
        nu = params.nu if nu_t is None else params.nu + nu_t
        ex = ufl.as_vector(tuple(float(c) for c in domain.streamwise))  # along the period
        body = self.forcing * ex if source is None else self.forcing * ex + source
        residual = (
            2.0 * nu * ufl.inner(ufl.sym(ufl.grad(u)), ufl.sym(ufl.grad(v))) * ufl.dx
            + ufl.inner(ufl.grad(u) * u, v) * ufl.dx
            - p * ufl.div(v) * ufl.dx
            - q * ufl.div(u) * ufl.dx
            - ufl.inner(body, v) * ufl.dx
            + self._inverse_dt * ufl.inner(u - ufl.split(self._start)[0], v) * ufl.dx
        )
        if stress is not None:
            residual -= ufl.inner(stress, ufl.grad(v)) * ufl.dx
        self._residual = fem.form(residual)
        self._load = fem.form(-ufl.inner(ex, v) * ufl.dx)  # dF/df
        self._system = LinearSystem(
            fem.form(ufl.derivative(residual, self.state, ufl.TrialFunction(space))), self.mpc, self.bcs
        )
        self._stale, self._factored_inverse_dt = True, None  # whether the LU factors must be renewed; the 1/dt they hold
        self.factorisations = 0
        self.volume = _assemble(fem.form(fem.Constant(mesh, 1.0) * ufl.dx), mesh.comm)
        streamwise = lambda f: (f[0] * ex[0] + f[1] * ex[1]) / self.volume * ufl.dx  # noqa: E731
        self._bulk = fem.form(streamwise(self.state))
        self._bulk_of = {id(f): fem.form(streamwise(f)) for f in (self.correction, self.sensitivity)}

    @property
    def velocity_space(self) -> fem.FunctionSpace:
        """The (collapsed) P2 space of the velocity that `solve` returns."""
        return self._velocity_space

    def start_from(self, velocity: fem.Function, forcing: float) -> None:
        """The next `solve` starts from `velocity` (on `velocity_space`), zero pressure and the body
        force `forcing`: e.g. a converged solution of a nearby problem, where Newton from rest diverges."""
        self.state.x.array[:] = 0.0
        self.state.x.array[self._velocity_dofs] = velocity.x.array
        self.state.x.scatter_forward()
        self.forcing.value = forcing

    def snapshot(self) -> tuple:
        """The state (u, p) and body force, for `restore`: a Newton-Krylov loop evaluates its map
        at several nu_t from the same start, so that the map is a function of nu_t alone."""
        return self.state.x.array.copy(), float(self.forcing.value)

    def restore(self, snapshot: tuple) -> None:
        self.state.x.array[:] = snapshot[0]
        self.forcing.value = snapshot[1]

    def bulk(self, function: fem.Function | None = None) -> float:
        """Volume-averaged streamwise velocity of the state (or of a correction)."""
        form = self._bulk if function is None else self._bulk_of[id(function)]
        return _assemble(form, self.domain.comm)

    def solve(self, dt: float = math.inf, rtol: float | None = None) -> FlowSolution:
        """Newton on (u, p, f) from the current state, steady (dt infinite) or one pseudo-time step
        of length dt, to a residual reduction of `rtol` (default: the parameters'); raises
        ConvergenceError if it fails."""
        if not dt > 0:
            raise SolverError(f"the pseudo-time step must be positive, got {dt}")
        start = time.perf_counter()
        self._start.x.array[:] = self.state.x.array
        self._inverse_dt.value = 0.0 if math.isinf(dt) else 1.0 / dt
        target = self.params.bulk_velocity
        if self.forcing.value == 0.0:
            # Plane-Poiseuille estimate f = 12 nu U / h^2 for the mean channel height.
            self.forcing.value = 12.0 * self.params.nu * target / (self.volume / self.domain.length) ** 2
        system = self._system
        keep = self.params.keep_factors
        if self._inverse_dt.value != self._factored_inverse_dt:
            self._stale = True
        totals: list[float] = []

        def step():
            rhs = system.residual(self._residual)
            norm = rhs.norm()
            mismatch = abs(self.bulk() - target)
            # The bulk-velocity mismatch is scaled to a residual: the residual of f itself.
            total = math.hypot(norm, mismatch * abs(self.forcing.value) * self.volume / max(abs(target), 1e-300))
            if totals and not total <= keep * totals[-1]:
                self._stale = True  # the kept factors no longer contract enough (or never kept)
            totals.append(total)

            def apply():
                if self._stale or not keep:
                    system.assemble()
                    self._stale, self._factored_inverse_dt = False, float(self._inverse_dt.value)
                    self.factorisations += 1
                    load = system.residual(self._load)
                    system.solve(load, self.sensitivity)  # J s = dF/df  =>  du/df = -s: with these factors
                    load.destroy()
                system.solve(rhs, self.correction)
                ds = -self.bulk(self.sensitivity)
                if ds == 0.0:
                    raise SolverError("the body force does not change the bulk velocity")
                df = (target - (self.bulk() - self.bulk(self.correction))) / ds
                x = self.state.vector
                x.axpy(-1.0, self.correction.vector)
                x.axpy(-df, self.sensitivity.vector)
                self.state.x.scatter_forward()
                self.forcing.value += df

            rhs_holder.append(rhs)
            return total, apply

        rhs_holder: list = []
        try:
            stats = newton(step, "navier-stokes", rtol=self.params.rtol if rtol is None else rtol, max_iterations=self.params.max_iterations)
        finally:
            for vec in rhs_holder:
                vec.destroy()
        u = fem.Function(self._velocity_space, name="velocity")
        p = fem.Function(self._pressure_space, name="pressure")
        u.x.array[:] = self.state.x.array[self._velocity_dofs]
        p.x.array[:] = self.state.x.array[self._pressure_dofs]
        return FlowSolution(u, p, float(self.forcing.value), self.bulk(), stats, time.perf_counter() - start)


def _wall_and_pin_bcs(domain: PeriodicDomain, space, V, Q) -> list:
    """No-slip on both walls; pressure pinned to zero at the upper-wall node nearest mid-period."""
    mesh = domain.mesh
    fdim = mesh.topology.dim - 1
    walls = np.concatenate([domain.facet_tags.find(TAGS["bottom"]), domain.facet_tags.find(TAGS["top"])])
    wall_dofs = fem.locate_dofs_topological((space.sub(0), V), fdim, walls)
    zero = fem.Function(V)
    nx = domain.resolution.nx
    x_pin = (nx // 2) * domain.length / nx
    def at_pin(x):
        own = domain.own_frame(x.T)
        return np.isclose(own[:, 0], x_pin) & np.isclose(own[:, 1], domain.height)

    pin_dofs = fem.locate_dofs_geometrical((space.sub(1), Q), at_pin)
    found = mesh.comm.allreduce(len(pin_dofs[0]), op=MPI.SUM)
    if found == 0:
        raise SolverError("no pressure node on the upper wall at mid-period to pin the pressure")
    return [fem.dirichletbc(zero, wall_dofs, space.sub(0)), fem.dirichletbc(fem.Function(Q), pin_dofs, space.sub(1))]


def _assemble(form, comm) -> float:
    return comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM)
