"""Steady RANS as a Picard iteration between the mean flow and a pluggable closure.

Each iteration solves the momentum equations with nu + nu_t (Newton, `NavierStokes`), asks the
closure for new turbulence fields, and relaxes nu_t towards the closure's value within limits
(0 <= nu_t <= cap * nu), or, with `anderson`, Anderson-mixed (a relaxed loop that settles into
a cycle, `solvers.stall.CycleGuard`, takes up mixing over `rescue` iterations from there for a
network, and cuts its pseudo-time step to a third for a PDE model); a closure that also returns an
extra stress (the `STRESS` components: a network's remainder of the Reynolds stress) has it
relaxed or mixed with nu_t, as one vector, into the flow's frozen stress. The closure's own pseudo-time step
grows from `dt` by `dt_growth` per iteration (continuation); with `momentum_pseudo_time` the
momentum solve takes a pseudo-time step of the same length from the last velocity instead of
jumping to the steady solution for the current nu_t (the steady momentum problem with an early,
far-from-converged nu_t can have no solution near the last one). With `newton_krylov`, a closure
whose fields are a function of the flow alone (`memoryless`: a network, not a PDE model with its
own pseudo-time) is converged by Newton-Krylov steps (`solvers.newton_krylov`) while its relative
nu_t residual is below that threshold: relaxation and Anderson mixing stall where more modes of
the map repel the iteration than the mixing holds. The loop stops when nu_t and the
velocity change by less than `tolerance` (relative, L2) in one iteration (mixed: once
`relaxation` times the nu_t residual is below it too, as a relaxed step would be), and raises
`RansFailure` (a `ConvergenceError` with the history and the worst nodes) when it diverges
(non-finite fields or a failed momentum solve) or stalls (`max_iterations`); the flow then still
holds its last finite velocity and nu_t, and a stall also carries the diagnosis of
`solvers.stall` (cycle or not, the map's repelling modes, where nu_t still moved).

A closure is any object with `names` (the fields it returns, "nu_t" first) and
`update(flow: MeanFlow) -> {name: P1 Function}`, and optionally `residuals` ({equation: norm},
recorded in the history): the PDE models of `solvers.turbulence`, or,
through `NodeClosure`, any callable on `MeshFields` node arrays (a frozen field, a trained network).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Callable, Protocol

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from scipy.spatial import cKDTree

from meshes.fields import MeshFields
from solvers.errors import ConvergenceError, RansFailure, SolverError
from solvers.export import NodeSampler, set_node_values, to_mesh_fields
from solvers.halo import NodeHalo, summed_over_ranks
from solvers.navier_stokes import FlowParameters, NavierStokes
from solvers.newton_krylov import NewtonKrylov
from solvers.stall import CycleGuard, StallWatch
from solvers.transport import strain_rate_magnitude
from solvers.wall_distance import wall_distance

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RansParameters:
    """Limits and controls of the Picard loop."""

    max_iterations: int = 400
    tolerance: float = 1e-6
    relaxation: float = 0.7
    nu_t_cap: float = 1e5
    dt: float = 0.05
    dt_growth: float = 1.3
    dt_max: float = 1e6
    anderson: int = 0  # > 0: Anderson acceleration of nu_t over that many past iterations
    anderson_shrink: float = 0.8  # the mixing's damping (first `relaxation`) times this at each restart; 1: kept
    momentum_pseudo_time: bool = False  # the momentum solve as one pseudo-time step of length dt
    newton_krylov: float = 0.0  # > 0: Newton-Krylov steps while the relative nu_t residual is below this
    krylov: int = 30  # GMRES directions per Newton-Krylov step at most
    rescue: int = 20  # a relaxed loop that settles into a cycle: a network's takes up Anderson mixing over this many iterations, a PDE model's a third of its pseudo-time step (0: neither)

    def __post_init__(self):
        if self.max_iterations < 1 or not (self.tolerance > 0):
            raise SolverError("RANS needs max_iterations >= 1 and a positive tolerance")
        if not (0 < self.relaxation <= 1):
            raise SolverError(f"nu_t relaxation must lie in (0, 1], got {self.relaxation}")
        if self.anderson < 0:
            raise SolverError(f"Anderson depth must be 0 (off) or more, got {self.anderson}")
        if self.rescue < 0:
            raise SolverError(f"the rescue's Anderson depth must be 0 (never) or more, got {self.rescue}")
        if not (0 < self.anderson_shrink <= 1):
            raise SolverError(f"Anderson damping shrink must lie in (0, 1] (1: kept), got {self.anderson_shrink}")
        if not (self.nu_t_cap > 0 and self.dt > 0 and self.dt_growth >= 1 and self.dt_max >= self.dt):
            raise SolverError("RANS needs nu_t_cap > 0, dt > 0, dt_growth >= 1 and dt_max >= dt")
        if not (self.newton_krylov >= 0 and self.krylov >= 1):
            raise SolverError(f"Newton-Krylov needs a threshold >= 0 (0: off) and krylov >= 1, got {self.newton_krylov}, {self.krylov}")
        if self.newton_krylov and self.momentum_pseudo_time:
            raise SolverError("Newton-Krylov needs the steady momentum solve (momentum_pseudo_time off): its map must depend on nu_t alone")


STRESS = ("stress_xx", "stress_xy", "stress_yy")
"""The node arrays of a frozen extra stress (`MeanFlow.freeze_stress`), in the order of `MeanFlow.stress`."""


def stress_components(values) -> dict:
    """{`STRESS` name: (N,) array} of node tensors (N, 2, 2), symmetrised."""
    values = np.asarray(values, dtype=float)
    return dict(zip(STRESS, (values[:, 0, 0], 0.5 * (values[:, 0, 1] + values[:, 1, 0]), values[:, 1, 1])))


class Closure(Protocol):
    names: tuple[str, ...]

    def update(self, flow: "MeanFlow") -> dict: ...


class MeanFlow:
    """The mean-flow state a closure may read, updated in place by the loop.

    velocity (P2), wall distance and nu_t (P1), nu and the pseudo-time step dt; after
    `freeze_stress`, a frozen extra stress (P1) in the momentum equations.
    """

    def __init__(self, domain, params: FlowParameters, walls=("bottom", "top")):
        self.domain, self.params, self.nu = domain, params, params.nu
        p1 = fem.FunctionSpace(domain.mesh, ("Lagrange", 1))
        self.nu_t = fem.Function(p1, name="nu_t")
        self.solver = NavierStokes(domain, params, nu_t=self.nu_t)
        self.velocity = fem.Function(self.solver.velocity_space, name="velocity")
        self.distance = wall_distance(domain, p1, walls)
        self.dt = 0.0
        self.stress: tuple | None = None  # (xx, xy, yy) P1 Functions, after `freeze_stress`
        self.sampler = NodeSampler(domain)  # node values at every iteration, its spaces and projection kept
        self._arrays = {
            "velocity": self.velocity,
            "strain_rate": strain_rate_magnitude(self.velocity),  # one expression, known to the sampler
            "wall_distance": self.distance,
            "nu_t": self.nu_t,
        }

    def freeze_stress(self, values: np.ndarray) -> None:
        """A frozen extra stress a in the momentum equations (`NavierStokes` `stress`), from node
        values (N, 2, 2) in the node order of `mesh_fields`, symmetrised: e.g. the part of an LES
        Reynolds stress that a frozen eddy viscosity does not carry. The first call rebuilds the
        momentum problem with it (call it before `start_from`); later calls only change the values."""
        values = np.asarray(values, dtype=float)
        if self.stress is None:
            space = self.nu_t.function_space
            self.stress = tuple(fem.Function(space, name=name) for name in STRESS)
            xx, xy, yy = self.stress
            self.solver = NavierStokes(self.domain, self.params, nu_t=self.nu_t, stress=ufl.as_matrix([[xx, xy], [xy, yy]]))
        for function, component in zip(self.stress, stress_components(values).values()):
            set_node_values(self.domain, component, function)

    def arrays(self) -> dict:
        """What a closure reads, by point-array name: velocity, |S|, wall distance and nu_t."""
        return dict(self._arrays)

    def metadata(self) -> dict:
        """nu, and the period vectors of a periodic domain (clouds wrap around through them)."""
        period = getattr(self.domain, "period", None)
        return {"nu": self.nu, **({} if period is None else {"periods": [period.tolist()]})}

    def start_from(self, velocity: np.ndarray, forcing: float) -> None:
        """Start the momentum Newton from node velocities (N, 2), in the node order of
        `mesh_fields` (e.g. a converged solution on the same mesh), and that solution's body force."""
        space = self.solver.velocity_space
        start = fem.Function(space)
        for i in range(velocity.shape[1]):
            nodes = fem.Function(self.nu_t.function_space)
            set_node_values(self.domain, np.asarray(velocity[:, i], dtype=float), nodes)
            component, dofs = space.sub(i).collapse()
            part = fem.Function(component)
            part.interpolate(nodes)
            start.x.array[dofs] = part.x.array
        self.velocity.x.array[:] = start.x.array
        self.solver.start_from(start, forcing)

    def mesh_fields(self) -> MeshFields | None:
        """`arrays()` on the nodes, gathered on rank 0 (None elsewhere)."""
        return to_mesh_fields(self.domain, self.arrays(), self.metadata(), self.sampler)


class NodeClosure:
    """A closure on node arrays: `function(MeshFields) -> {name: (N,) array}`.

    In serial, and for a function without a `reach`, it is called on rank 0 with the whole mesh's
    nodes gathered there. A function with a `reach` (how far from a node its inputs lie: a network
    on ball clouds) that takes `function(fields, nodes=..., total=...)` is called on every rank
    under MPI, on the rank's own nodes and its halo (`solvers.halo.NodeHalo`, found once per
    mesh), for its own nodes only; `total` adds sums over nodes across ranks.

    A "stress" (N, 2, 2) among the values (a network's remainder of the Reynolds stress beyond its
    nu_t) is returned as the `STRESS` components, which the loop relaxes or mixes with nu_t into the
    flow's frozen stress (`MeanFlow.freeze_stress` must have been called once before `start_from`).
    """

    memoryless = True  # its fields are a function of the flow alone (Newton-Krylov may difference them)

    def __init__(self, function: Callable[[MeshFields], dict], names=("nu_t",)):
        self.function, self.names = function, tuple(names)
        self._out: dict = {}
        self.halo: NodeHalo | None = None  # under MPI, for a function with a reach

    def distributed(self, flow: MeanFlow) -> bool:
        """Whether each rank evaluates its own nodes (MPI, and a function with a bounded reach)."""
        return flow.domain.comm.size > 1 and getattr(self.function, "reach", None) is not None

    def _evaluate_distributed(self, flow: MeanFlow) -> dict:
        """The function on this rank's nodes and halo; values at the owned nodes (every rank
        raises if any failed, so that none is left waiting in a collective call)."""
        comm = flow.domain.comm
        metadata = flow.metadata()
        if self.halo is None:
            self.halo = NodeHalo(flow.nu_t.function_space, self.function.reach, metadata.get("periods"))
        owned = {name: flow.sampler(value)[self.halo.rows] for name, value in flow.arrays().items()}
        fields = self.halo.fields(owned, metadata)
        try:
            values = self.function(fields, nodes=np.arange(self.halo.owned), total=summed_over_ranks(comm))
            failure = None
        except Exception as err:
            values, failure = None, f"the closure failed: {err}"
        failures = [f for f in comm.allgather(failure) if f]
        if failures:
            raise SolverError(failures[0])
        return values

    def full_precision(self) -> None:
        """From now on exact to rounding (a network in mixed precision switches to float64): a
        Newton-Krylov step differentiates the loop's map by differences."""
        getattr(self.function, "full_precision", lambda: None)()

    def _evaluate_on_rank_0(self, flow: MeanFlow) -> dict:
        """The function on the whole mesh, gathered on rank 0; its values broadcast to every rank."""
        fields = flow.mesh_fields()
        comm = flow.domain.comm
        values = None
        if comm.rank == 0:
            try:
                values = self.function(fields)
            except Exception as err:  # raised on every rank, not left waiting in bcast
                values = SolverError(f"the closure failed: {err}")
        values = comm.bcast(values, root=0)
        if isinstance(values, Exception):
            raise values
        return values

    def update(self, flow: MeanFlow) -> dict:
        distributed = self.distributed(flow)
        values = self._evaluate_distributed(flow) if distributed else self._evaluate_on_rank_0(flow)
        missing = [n for n in self.names if n not in values]
        if missing:
            raise SolverError(f"the closure returned no {', '.join(missing)}")
        names = [n for n in self.names if n != "stress"]
        if "stress" in values:
            if flow.stress is None:
                raise SolverError("the closure returns a stress, but the flow has none (MeanFlow.freeze_stress before start_from)")
            values, names = {**values, **stress_components(values["stress"])}, names + list(STRESS)
        for name in names:
            if name not in self._out:
                self._out[name] = fem.Function(flow.nu_t.function_space, name=name)
            out = self._out[name]
            if distributed:  # the owned nodes are the owned dofs, in order
                out.x.array[: self.halo.owned] = np.asarray(values[name], dtype=float)
                out.x.scatter_forward()
            else:
                set_node_values(flow.domain, np.asarray(values[name], dtype=float), out)
        return self._out


class FrozenClosure:
    """nu_t given on the nodes (e.g. read from a converged solution): the momentum equations alone."""

    names = ("nu_t",)

    def __init__(self, nu_t: np.ndarray):
        self.nu_t = np.asarray(nu_t, dtype=float)

    def __call__(self, fields: MeshFields) -> dict:
        if fields.num_nodes != len(self.nu_t):
            raise SolverError(f"frozen nu_t has {len(self.nu_t)} values for {fields.num_nodes} nodes")
        return {"nu_t": self.nu_t}


class BlendedClosure:
    """Start-up blending: nu_t = w nu_t(start) + (1 - w) nu_t(closure), with w falling linearly
    from 1 to 0 over the first `iterations` updates; after that, `closure` alone (e.g. a PDE model
    carrying a network through the first, far-from-converged iterations)."""

    def __init__(self, start: Closure, closure: Closure, iterations: int):
        if iterations < 1:
            raise SolverError(f"blending needs at least 1 iteration, got {iterations}")
        self.start, self.closure, self.iterations = start, closure, iterations
        self.names = ("nu_t",)
        self.updates = 0
        self._out: fem.Function | None = None

    @property
    def residuals(self) -> dict:
        return getattr(self.closure, "residuals", {})

    @property
    def memoryless(self) -> bool:
        return getattr(self.closure, "memoryless", False)

    def full_precision(self) -> None:
        getattr(self.closure, "full_precision", lambda: None)()

    def update(self, flow: MeanFlow) -> dict:
        weight = max(0.0, 1.0 - self.updates / self.iterations)
        self.updates += 1
        nu_t = self.closure.update(flow)["nu_t"]
        if weight == 0.0:
            return {"nu_t": nu_t}
        if self._out is None:
            self._out = fem.Function(nu_t.function_space, name="nu_t")
        start = self.start.update(flow)["nu_t"]
        self._out.x.array[:] = weight * start.x.array + (1.0 - weight) * nu_t.x.array
        return {"nu_t": self._out}


class AndersonMixing:
    """Anderson acceleration of the fixed point nu_t = closure(velocity(nu_t)) (Walker & Ni 2011;
    x holds a closure's extra stress after nu_t, where it returns one):
    the relaxed step x + b f, f = closure - x, corrected by the combination of the last `depth`
    steps that best cancels f. A network closure has no pseudo-time of its own, and plain
    relaxation can settle into a cycle (the hills at alpha 1.375); the mixing breaks it.
    When the residual grows more than `restart` times in one step, the past steps no longer
    describe the map (a clipped nu_t, a network's kinks): they are dropped and the mixing starts
    again from the relaxed step (without this, the hills stalled at 5e-4 or wandered for 100
    iterations). The depth must exceed the number of modes in which the fixed point repels the
    iteration (Jacobian eigenvalues outside the unit circle, counted by `solvers.stall` when a
    solve stalls): a network sensitive to the flow near the crest gave the hills 8 or more such
    modes at alpha 1.125, where a depth of 5 stalled at a residual of 1e-4 and a depth of 20
    converged in 37 iterations.
    Each restart also shrinks the damping b by `shrink` (not below `floor`): the step after a
    restart is the relaxed one, which amplifies every oscillating mode with an eigenvalue below
    1 - 2 / b (-1.9 at b = 0.7), so a map with such modes restarts again and again. Measured on the
    hills (one-equation networks, Anderson depth 20): seed 2 stalled at alpha 1.125 and 1.375 with
    31 and 42 restarts at b = 0.7; at b = 0.3 throughout both converged, but seed 0 at 0.625 (an
    eigenvalue of -6.2) stalled where 0.7 converged; with the shrink all three converge.
    A solve that never restarts keeps b throughout. A mixed step shorter than `stuck` times the
    relaxed one, each measured where the caller's projection puts it (nu_t clipped at 0), is
    dropped for the relaxed step, and the past steps with it: a healthy step is
    about a Newton step, at least |f| / |J - I|, and one that vanishes beside the residual means
    that the mixing has stopped where the map has not (the loop, which stops on small steps, would
    take it for convergence: a cycle's iterates, with saturated nodes, did this in 2 steps).
    Inner products run over owned dofs (all ranks take the same combination)."""

    def __init__(self, comm, depth: int, damping: float, restart: float = 2.0, shrink: float = 0.8, floor: float = 0.1, stuck: float = 1e-3):
        self.comm, self.depth, self.damping, self.restart, self.stuck = comm, depth, damping, restart, stuck
        self.shrink, self.floor = shrink, floor
        self.x: list = []
        self.f: list = []
        self.norm = np.inf
        self.restarts = 0

    def step(self, x: np.ndarray, g: np.ndarray, owned: int, project=lambda x: x) -> np.ndarray:
        """The next iterate from x and its image g; `project` is what the caller will do to it
        (nu_t clipped to its limits): the step is judged by where it lands."""
        f = g - x
        norm = self._norm(f, owned)
        if norm > self.restart * self.norm:
            growth = f"{norm / self.norm:.1f} times" if self.norm > 0 else "from 0"
            if self.norm > 0:  # a growth from exactly 0 (a hand-over's first step) says nothing of the map
                self.damping = max(self.floor, self.shrink * self.damping)
            log.info("Anderson mixing restarted: the nu_t residual grew %s; damping now %.3g", growth, self.damping)
            self.x, self.f = [], []
            self.restarts += 1
        self.norm = norm
        self.x, self.f = (self.x + [x.copy()])[-(self.depth + 1) :], (self.f + [f])[-(self.depth + 1) :]
        relaxed = x + self.damping * f
        if len(self.f) < 2:
            return relaxed
        dF, dX = np.diff(np.array(self.f), axis=0), np.diff(np.array(self.x), axis=0)
        gram = self.comm.allreduce(dF[:, :owned] @ dF[:, :owned].T, op=MPI.SUM)
        rhs = self.comm.allreduce(dF[:, :owned] @ f[:owned], op=MPI.SUM)
        gamma = np.linalg.lstsq(gram, rhs, rcond=1e-12)[0]
        mixed = relaxed - (dX + self.damping * dF).T @ gamma
        move, relaxed_move = (self._norm(project(y) - x, owned) for y in (mixed, relaxed))
        if move < self.stuck * relaxed_move:
            # The combination cancels the step: the mixing stands still where the map does not
            # (saturated nodes, a cycle's iterates, a step clipped back to where it started: a
            # frozen nu_t handed over from SST's stood so at a residual of 0.1), and the loop
            # would take it for convergence.
            log.info("Anderson mixing restarted: its step (%.2e) vanished beside the relaxed one (%.2e)", move, relaxed_move)
            self.x, self.f = [x.copy()], [f]
            self.restarts += 1
            return relaxed
        return mixed

    def _norm(self, v: np.ndarray, owned: int) -> float:
        return float(np.sqrt(self.comm.allreduce(v[:owned] @ v[:owned], op=MPI.SUM)))


@dataclasses.dataclass
class RansSolution:
    flow: MeanFlow
    pressure: fem.Function
    turbulence: dict  # name -> P1 Function, "nu_t" (relaxed and limited) first
    forcing: float
    bulk_velocity: float
    history: list  # one dict per iteration
    seconds: float

    @property
    def iterations(self) -> int:
        return len(self.history)


def solve_rans(flow: MeanFlow, closure: Closure, params: RansParameters = RansParameters()) -> RansSolution:
    """The Picard loop from the flow's current state (laminar if nu_t is zero)."""
    memoryless = getattr(closure, "memoryless", False)  # a network's fields: a function of the flow alone
    if params.newton_krylov and not memoryless:
        raise SolverError(f"Newton-Krylov needs a closure whose fields are a function of the flow (a network), not {type(closure).__name__} with a state of its own")
    start = time.perf_counter()
    comm = flow.domain.comm
    history: list = []
    flow.dt = params.dt
    previous_u = None
    # Changes are measured on owned dofs only: ghosts are copies (and would count twice).
    owned_nu_t = flow.nu_t.function_space.dofmap.index_map.size_local
    velocity_map = flow.velocity.function_space.dofmap
    owned_u = velocity_map.index_map.size_local * velocity_map.index_map_bs
    mixing = AndersonMixing(comm, params.anderson, params.relaxation, shrink=params.anderson_shrink) if params.anderson else None
    newton = NewtonKrylov(comm, params.krylov) if params.newton_krylov else None
    watch = StallWatch(comm, window=25)
    # A network's relaxed loop stuck in a cycle mixes from there on. A PDE model's k and omega cycle
    # on their own (mixing nu_t left the hill SST's residual at 2e-5 to 1e-4): its pseudo-time step
    # is cut to a third instead (the hill SST then converged; docs/results.md).
    guard = CycleGuard() if params.rescue and mixing is None and newton is None else None
    dt_max = params.dt_max

    def project(x: np.ndarray) -> np.ndarray:  # nu_t within its limits; a stress as it is
        x = x.copy()
        x[:owned_nu_t] = np.clip(x[:owned_nu_t], 0.0, params.nu_t_cap * flow.nu)
        return x
    for iteration in range(1, params.max_iterations + 1):
        tic = time.perf_counter()
        try:
            solution = flow.solver.solve(flow.dt if params.momentum_pseudo_time else math.inf)
        except ConvergenceError as err:
            raise _failure(flow, f"RANS diverged at iteration {iteration}: {err}", history, None) from None
        if not _all_finite(comm, solution.velocity.x.array):
            raise _failure(flow, f"RANS diverged at iteration {iteration}: non-finite velocity", history, None)
        flow.velocity.x.array[:] = solution.velocity.x.array
        velocity = flow.velocity.x.array[:owned_u].copy()
        toc = time.perf_counter()
        fields = closure.update(flow)
        # nu_t, and a closure's extra stress where it has one, stepped together (owned dofs)
        names = ["nu_t"] + [name for name in STRESS[: len(flow.stress or ())] if name in fields]
        states = [flow.nu_t, *(flow.stress or ())][: len(names)]
        old = np.concatenate([state.x.array[:owned_nu_t] for state in states])
        new = np.concatenate([fields[name].x.array[:owned_nu_t] for name in names])
        for what, part in zip(("nu_t", "stress", "stress", "stress"), np.split(new, len(names))):
            if not _all_finite(comm, part):
                raise _failure(flow, f"RANS diverged at iteration {iteration}: non-finite {what}", history, part)
        watch.add(old[:owned_nu_t], new[:owned_nu_t])
        step, newton_step, tac = None, None, time.perf_counter()
        # the fixed-point residual |closure(nu_t) - nu_t| / |closure(nu_t)|, whatever the step taken
        residual = _relative_change(comm, new[:owned_nu_t], old[:owned_nu_t])
        period = guard.update(watch, residual) if guard is not None else None
        if period and memoryless:
            log.warning("RANS %d: the relaxed loop cycles with period %d (nu_t residual %.2e): Anderson mixing over %d iterations from here",
                        iteration, period, residual, params.rescue)
            mixing, guard = AndersonMixing(comm, params.rescue, params.relaxation, shrink=params.anderson_shrink), None
        elif period:
            dt_max = min(flow.dt, getattr(closure, "dt_max", math.inf)) / 3.0
            log.warning("RANS %d: the relaxed loop cycles with period %d (nu_t residual %.2e): the closure's pseudo-time step is cut to %.3g",
                        iteration, period, residual, dt_max)
            guard = CycleGuard()  # and cut again if it cycles still
        if newton is not None and residual < params.newton_krylov:  # Newton's model holds close to the fixed point only
            if not newton.steps:
                log.info("RANS %d: Newton-Krylov steps while the nu_t residual stays below %g", iteration, params.newton_krylov)
                getattr(closure, "full_precision", lambda: None)()  # differences of the map need it exact
            loop_map = LoopMap(flow, closure, states, names)
            exact = newton.image_at(old)  # the last step's point: known from its line search
            if exact is None:
                exact = loop_map(old)  # this iterate again, its momentum solved to LoopMap.RTOL
            loop_map.rebase()
            if exact is not None:
                step = newton.step(old, exact, loop_map, project, target=params.tolerance * newton.norm(exact))
                newton_step = newton.steps[-1]
            if step is None:  # no fraction of the Newton direction helped: the loop's own step
                flow.solver.restore(loop_map.base)
        newton_taken = step is not None
        if step is None:
            step = project(old + params.relaxation * (new - old) if mixing is None else mixing.step(old, new, len(old), project))
        _set(states, step, owned_nu_t)
        relaxed, old, new = step[:owned_nu_t], old[:owned_nu_t], new[:owned_nu_t]
        record = {
            "iteration": iteration,
            "dt": flow.dt,
            "newton_iterations": solution.stats.iterations,
            # the momentum residual of the new state with the last nu_t, before Newton: what is left to converge
            "momentum_residual": solution.stats.residuals[0] if solution.stats.residuals else None,
            "nu_t_change": _relative_change(comm, relaxed, old),
            "nu_t_residual": residual,
            "damping": params.relaxation if mixing is None else mixing.damping,  # the relaxation, or the mixing's damping now
            # after a Newton step, the change it made (its point is solved already); else since the last iteration
            "velocity_change": _relative_change(comm, flow.velocity.x.array[:owned_u], velocity) if newton_taken else _relative_change(comm, velocity, previous_u),
            "closure_residuals": {k: float(r) for k, r in getattr(closure, "residuals", {}).items()},
            "forcing": solution.forcing,
            **({"rescued": period} if period else {}),  # the cycle's period, where the loop took up mixing or cut dt
            "capped": comm.allreduce(int(np.sum(relaxed >= params.nu_t_cap * flow.nu)), op=MPI.SUM),
            "momentum_s": toc - tic,
            "closure_s": tac - toc,
            **({} if newton_step is None else {"newton": dataclasses.asdict(newton_step), "newton_s": time.perf_counter() - tac}),
        }
        history.append(record)
        previous_u = flow.velocity.x.array[:owned_u].copy() if newton_taken else velocity
        log.info(
            "RANS %d: dt %.3g, nu_t change %.2e, velocity change %.2e, forcing %.6g",
            iteration, flow.dt, record["nu_t_change"], record["velocity_change"], solution.forcing,
        )
        # A mixed step can be short while nu_t is far from the closure's (steps alternating long and
        # short on a hill SST): mixed, the residual must be as small as a relaxed step's would be.
        unsettled = mixing is not None and not newton_taken and params.relaxation * residual >= params.tolerance
        if max(record["nu_t_change"], record["velocity_change"]) < params.tolerance and not unsettled:
            if newton_taken:  # the flow is at the Newton step's point, solved there
                solution = loop_map.solution
            turbulence = {"nu_t": flow.nu_t, **{k: v for k, v in fields.items() if k != "nu_t"}, **dict(zip(STRESS, flow.stress or ()))}
            return RansSolution(
                flow, solution.pressure, turbulence, solution.forcing, solution.bulk_velocity, history,
                time.perf_counter() - start,
            )
        flow.dt = min(flow.dt * params.dt_growth, dt_max)
    last = history[-1]
    message = (
        f"RANS stalled after {params.max_iterations} iterations "
        f"(nu_t change {last['nu_t_change']:.2e}, velocity change {last['velocity_change']:.2e}, "
        f"tolerance {params.tolerance:.0e}): {watch.summary()}{_hint(watch.diagnosis(), mixing.depth if mixing else 0, params.relaxation, memoryless)}"
    )
    raise _failure(flow, message, history, np.abs(relaxed - old), watch)


def _set(states: list, x: np.ndarray, owned: int) -> None:
    """The owned dofs of `states` (nu_t, then a frozen stress) from one vector, ghosts updated."""
    for k, state in enumerate(states):
        state.x.array[:owned] = x[k * owned : (k + 1) * owned]
        state.x.scatter_forward()


class LoopMap:
    """x -> G(x), the loop's map for Newton-Krylov: the closure's fields (`names`, owned dofs) after
    the steady momentum solve with `states` set to x. Every evaluation starts from the same
    momentum state (`base`, the flow's at construction or at `rebase`) and solves to `rtol`, far
    below the loop's own inexact solves, so that G depends on x alone and its differences over
    1e-7 |x| are not noise. None where the momentum solve or the closure gives no finite values."""

    RTOL = 1e-8

    def __init__(self, flow: MeanFlow, closure: Closure, states: list, names: list):
        self.flow, self.closure, self.states, self.names = flow, closure, states, names
        self.solution = None  # of the last evaluation
        self.owned = flow.nu_t.function_space.dofmap.index_map.size_local
        self.rebase()

    def rebase(self) -> None:
        self.base = self.flow.solver.snapshot()

    def __call__(self, x: np.ndarray) -> np.ndarray | None:
        flow, comm, owned = self.flow, self.flow.domain.comm, self.owned
        flow.solver.restore(self.base)
        _set(self.states, x, owned)
        try:
            solution = flow.solver.solve(math.inf, rtol=self.RTOL)
        except ConvergenceError:
            return None
        if not _all_finite(comm, solution.velocity.x.array):
            return None
        flow.velocity.x.array[:] = solution.velocity.x.array
        self.solution = solution
        fields = self.closure.update(flow)
        image = np.concatenate([fields[name].x.array[:owned] for name in self.names])
        return image if _all_finite(comm, image) else None


def _hint(diagnosis: dict, depth: int, relaxation: float, memoryless: bool) -> str:
    """What to change when modes of the map repel the iteration: a smaller relaxation where they
    all have real parts below 1 (`solvers.stall.relaxation_bound`), else none converges in them;
    and Anderson mixing needs a memory longer than their number. The bound holds for a closure
    whose nu_t is a function of the flow alone: a PDE model's k and omega move on their own, so the
    secant pairs of nu_t do not give its Jacobian (the hills SST on 216 x 144, before omega's step
    used the new k, cycled with period 2 at relaxation 0.7, largest mode -1.87, which 0.55
    contracts; at 0.55 it stalled the same)."""
    modes = diagnosis.get("unstable_modes", 0)
    if modes and not depth:
        bound = diagnosis.get("relaxation_bound")
        if bound is None or not memoryless:
            return "; relaxation cannot converge in those: use Anderson mixing over more steps than that"
        if relaxation >= bound:
            step = 10.0 ** (math.floor(math.log10(bound)) - 1)
            below = math.floor(bound / step) * step  # two digits, rounded down: the value named is below the bound
            return f"; their eigenvalues have real parts below 1: a relaxation below {below:.2g} (now {relaxation:g}) would contract them, or Anderson mixing over more steps than that"
        return "; use Anderson mixing over more steps than that"
    if modes >= depth > 0:
        return f"; more than the Anderson depth {depth}: raise it"
    return ""


def _all_finite(comm, values: np.ndarray) -> bool:
    return bool(comm.allreduce(bool(np.all(np.isfinite(values))), op=MPI.LAND))


def _failure(
    flow: MeanFlow, message: str, history: list, values: np.ndarray | None, watch: StallWatch | None = None,
    count: int = 5,
) -> RansFailure:
    """The error with the `count` nodes of largest `values` (per owned P1 dof; non-finite ones
    first) over all ranks, and where the first of them lies; with `watch`, its diagnosis and the
    map of the last nu_t changes (a P1 Function "nu_t_change_last")."""
    worst = []
    if values is not None:
        x = flow.nu_t.function_space.tabulate_dof_coordinates()[: len(values)]
        rank = np.where(np.isfinite(values), values, np.inf)
        top = np.argsort(-rank)[:count]
        mine = [(float(rank[i]), float(x[i, 0]), float(x[i, 1]), float(values[i])) for i in top]
        gathered = sorted((item for part in flow.domain.comm.allgather(mine) for item in part), reverse=True)[:count]
        worst = [{"x": px, "y": py, "value": value} for _, px, py, value in gathered]
        if worst:
            message += f"; worst node at x = {worst[0]['x']:.4g}, y = {worst[0]['y']:.4g}"
    change = watch.change_map() if watch is not None else None
    if change is None:
        return RansFailure(message, history, worst, flow)
    change_last = fem.Function(flow.nu_t.function_space, name="nu_t_change_last")
    change_last.x.array[: len(change)] = change
    change_last.x.scatter_forward()
    return RansFailure(message, history, worst, flow, watch.diagnosis(), change_last)


def _relative_change(comm, new: np.ndarray, old: np.ndarray | None) -> float:
    if old is None:
        return math.inf
    num = comm.allreduce(float(np.sum((new - old) ** 2)), op=MPI.SUM)
    den = comm.allreduce(float(np.sum(new**2)), op=MPI.SUM)
    return math.sqrt(num / den) if den > 0 else (0.0 if num == 0 else math.inf)


def friction_velocity(flow: MeanFlow, walls=("bottom", "top")) -> float:
    """u_tau = sqrt(tau_w) from the mean streamwise wall shear stress -nu du_x/dn of the solution
    (not from the momentum balance, so that it measures what the discrete flow reached)."""
    from meshes.periodic_domain import TAGS

    mesh = flow.domain.mesh
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=flow.domain.facet_tags)
    n = ufl.FacetNormal(mesh)
    shear = -flow.nu * ufl.dot(ufl.grad(flow.velocity[0]), n)
    one = fem.Constant(mesh, 1.0)
    tau = sum(_assemble(mesh.comm, fem.form(shear * ds(TAGS[name]))) for name in walls)
    length = sum(_assemble(mesh.comm, fem.form(one * ds(TAGS[name]))) for name in walls)
    return math.sqrt(abs(tau) / length)


def lower_wall_shear(flow: MeanFlow, offset: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, wall shear stress nu du_t/dn, first-cell height) at the midpoints of the lower wall's
    facets in [0, Lx] (x in the domain's own frame), sorted by x (t the wall tangent pointing downstream), on every rank. The
    shear comes from the velocity a tiny `offset` (relative to the facet length) inside the fluid;
    its sign changes mark separation and reattachment. The height is that of the facet's cell
    normal to the wall, so sqrt(|shear|) height / nu is the local first-node y+."""
    from solvers.probe import evaluate
    from solvers.wall_distance import wall_segments

    domain = flow.domain
    rotation = domain.rotation  # everything below in the domain's own frame, then turned back
    segments = wall_segments(domain, ("bottom",)) @ rotation
    middle = segments.mean(axis=1)
    segments = segments[(middle[:, 0] >= 0.0) & (middle[:, 0] < domain.length)]
    segments = segments[np.argsort(segments.mean(axis=1)[:, 0])]
    along = segments[:, 1] - segments[:, 0]
    length = np.linalg.norm(along, axis=1)
    tangent = along / length[:, None] * np.sign(along[:, :1])
    inward = np.c_[-tangent[:, 1], tangent[:, 0]]  # the fluid lies above the lower wall
    eps = offset * length
    points = segments.mean(axis=1) + eps[:, None] * inward
    velocity = evaluate(flow.velocity, points @ rotation.T)[:, :2] @ rotation
    shear = flow.nu * np.sum(velocity * tangent, axis=1) / eps
    middles, heights = _cell_heights(domain, "bottom")
    height = heights[cKDTree(middles).query(segments.mean(axis=1) @ rotation.T)[1]]
    return points[:, 0], shear, height


def _cell_heights(domain, wall: str) -> tuple[np.ndarray, np.ndarray]:
    """Midpoints (M, 2) of a wall's facets and the heights of their cells normal to the wall
    (the farthest vertex from the facet's line), gathered on every rank."""
    from dolfinx.cpp.mesh import entities_to_geometry

    from meshes.periodic_domain import TAGS

    mesh = domain.mesh
    tdim = mesh.topology.dim
    mesh.topology.create_connectivity(tdim - 1, tdim)
    to_cell = mesh.topology.connectivity(tdim - 1, tdim)
    facets = domain.facet_tags.find(TAGS[wall]).astype(np.int32)
    cells = np.array([to_cell.links(f)[0] for f in facets], dtype=np.int32)
    ends = mesh.geometry.x[entities_to_geometry(mesh._mesh, tdim - 1, facets, False)][:, :, :2]
    corners = mesh.geometry.x[entities_to_geometry(mesh._mesh, tdim, cells, False)][:, :, :2]
    direction = ends[:, 1] - ends[:, 0]
    direction /= np.linalg.norm(direction, axis=1)[:, None]
    relative = corners - ends[:, :1]
    heights = np.abs(direction[:, None, 0] * relative[..., 1] - direction[:, None, 1] * relative[..., 0]).max(axis=1)
    gathered = domain.comm.allgather((ends.mean(axis=1), heights))
    return np.concatenate([m for m, _ in gathered]), np.concatenate([h for _, h in gathered])


def _assemble(comm, form) -> float:
    return comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM)
