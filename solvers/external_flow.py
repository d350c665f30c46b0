"""Steady incompressible Navier-Stokes around a body: prescribed inflow, no-slip walls, free outflow.

Taylor-Hood P2/P1 and Newton (`solvers.newton`, with an empty multi-point constraint so that the
same assembly serves periodic and non-periodic problems). The viscous term is nu grad u : grad v,
so the natural condition on the remaining boundary is the do-nothing outflow
nu du/dn - p n = 0 (or a given traction). A Newton start from rest may not converge at the
target Reynolds number for a body at a large angle of attack: the solve walks up in Reynolds
number through `continuation` steps, each started from the previous solution.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from solvers.errors import SolverError
from solvers.newton import LinearSystem, NewtonStats, newton, unconstrained


@dataclasses.dataclass(frozen=True)
class ExternalFlowParameters:
    """Reynolds number U L / nu of the free stream (speed U along +x, reference length L)."""

    reynolds: float = 100.0
    speed: float = 1.0
    length: float = 1.0
    continuation: int = 3  # Newton solves at Reynolds numbers growing geometrically up to `reynolds`
    rtol: float = 1e-10
    max_iterations: int = 25

    def __post_init__(self):
        for name in ("reynolds", "speed", "length"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SolverError(f"{name} must be a positive number, got {value}")
        if self.continuation < 1:
            raise SolverError(f"continuation needs at least 1 step, got {self.continuation}")

    @property
    def nu(self) -> float:
        return self.speed * self.length / self.reynolds

    def reynolds_steps(self) -> list[float]:
        """min(Re, 10) ... Re, geometrically spaced."""
        start = min(self.reynolds, 10.0)
        return list(np.geomspace(start, self.reynolds, self.continuation)) if self.continuation > 1 else [self.reynolds]


@dataclasses.dataclass
class ExternalFlowSolution:
    velocity: fem.Function  # P2 vector
    pressure: fem.Function  # P1
    stats: list[NewtonStats]  # one per continuation step
    seconds: float


def solve_external_flow(
    mesh,
    facet_tags,
    inflow: list[int],
    walls: list[int],
    params: ExternalFlowParameters = ExternalFlowParameters(),
    inflow_velocity: Callable[[np.ndarray], np.ndarray] | None = None,
    source=None,
    traction=None,
) -> ExternalFlowSolution:
    """Solve on `mesh`: velocity `inflow_velocity(x)` (default U e_x) on facets tagged `inflow`,
    no slip on `walls`, do-nothing (or `traction`, a UFL vector) on every other boundary facet.
    `source` is an optional body force (UFL vector), e.g. for manufactured solutions."""
    start = time.perf_counter()
    cell = mesh.ufl_cell()
    element = ufl.MixedElement([ufl.VectorElement("Lagrange", cell, 2), ufl.FiniteElement("Lagrange", cell, 1)])
    space = fem.FunctionSpace(mesh, element)
    V, velocity_dofs = space.sub(0).collapse()
    Q, pressure_dofs = space.sub(1).collapse()
    fdim = mesh.topology.dim - 1
    speed = params.speed
    inflow_velocity = inflow_velocity or (lambda x: np.vstack([np.full(x.shape[1], speed), np.zeros((mesh.geometry.dim - 1, x.shape[1]))]))
    bcs = []
    if not inflow:
        raise SolverError("an external flow needs inflow facets")
    for tags, values in ((inflow, inflow_velocity), (walls, None)):
        if not tags:
            continue
        facets = np.concatenate([facet_tags.find(t) for t in tags])
        if mesh.comm.allreduce(len(facets), op=MPI.SUM) == 0:
            raise SolverError(f"no boundary facets carry the tags {list(tags)}")
        g = fem.Function(V)
        if values is not None:
            g.interpolate(values)
        bcs.append(fem.dirichletbc(g, fem.locate_dofs_topological((space.sub(0), V), fdim, facets), space.sub(0)))

    mpc = unconstrained(space)
    state = fem.Function(mpc.function_space)
    correction = fem.Function(mpc.function_space)
    fem.petsc.set_bc(state.vector, bcs)  # the Newton corrections then vanish on Dirichlet dofs
    state.x.scatter_forward()

    nu = fem.Constant(mesh, params.nu)
    u, p = ufl.split(state)
    v, q = ufl.TestFunctions(space)
    residual = (
        nu * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
        + ufl.inner(ufl.grad(u) * u, v) * ufl.dx
        - p * ufl.div(v) * ufl.dx
        - q * ufl.div(u) * ufl.dx
    )
    if source is not None:
        residual -= ufl.inner(source, v) * ufl.dx
    if traction is not None:
        residual -= ufl.inner(traction, v) * ufl.ds
    residual_form = fem.form(residual)
    system = LinearSystem(fem.form(ufl.derivative(residual, state, ufl.TrialFunction(space))), mpc, bcs)

    def step():
        rhs = system.residual(residual_form)
        norm = rhs.norm()

        def apply():
            system.assemble()
            system.solve(rhs, correction)
            state.vector.axpy(-1.0, correction.vector)
            state.x.scatter_forward()

        held.append(rhs)
        return norm, apply

    stats, held = [], []
    try:
        for reynolds in params.reynolds_steps():
            nu.value = params.speed * params.length / reynolds
            stats.append(newton(step, f"external flow, Re = {reynolds:.4g}", rtol=params.rtol, max_iterations=params.max_iterations))
    finally:
        for vec in held:
            vec.destroy()
        system.destroy()
    velocity = fem.Function(V, name="velocity")
    pressure = fem.Function(Q, name="pressure")
    velocity.x.array[:] = state.x.array[velocity_dofs]
    pressure.x.array[:] = state.x.array[pressure_dofs]
    return ExternalFlowSolution(velocity, pressure, stats, time.perf_counter() - start)
