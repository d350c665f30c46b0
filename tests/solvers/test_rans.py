"""The RANS Picard loop and its closures on a coarse turbulent channel (Re_tau about 180)."""

import numpy as np
import pytest

pytest.importorskip("dolfinx")

from meshes.periodic_domain import Resolution  # noqa: E402
from meshes.shapes import channel  # noqa: E402
from solvers.errors import ConvergenceError, RansFailure, SolverError  # noqa: E402
from solvers.export import node_values, to_mesh_fields  # noqa: E402
from solvers.navier_stokes import FlowParameters  # noqa: E402
from solvers.rans import (  # noqa: E402
    BlendedClosure,
    FrozenClosure,
    MeanFlow,
    NodeClosure,
    RansParameters,
    friction_velocity,
    solve_rans,
)
from solvers.turbulence import KEpsilon, KOmega, OneEquation  # noqa: E402

NU = 1.0 / (182.088 * 15.537)  # the DNS bulk Reynolds number at Re_tau = 180


def coarse_flow() -> MeanFlow:
    domain = channel(0.2, 2.0, Resolution(2, 80, 40.0))
    return MeanFlow(domain, FlowParameters(nu=NU, bulk_velocity=1.0))


@pytest.fixture(scope="module")
def k_omega():
    flow = coarse_flow()
    closure = KOmega(flow, k0=1e-2, omega0=1.0)
    return flow, closure, solve_rans(flow, closure)


def test_k_omega_channel_converges_to_a_turbulent_state(k_omega):
    flow, closure, solution = k_omega
    last = solution.history[-1]
    assert max(last["nu_t_change"], last["velocity_change"]) < 1e-6
    assert solution.iterations < 100
    u_tau = friction_velocity(flow)
    # Turbulent, not laminar: the laminar flow at this bulk Reynolds number has Re_tau = sqrt(3 Re_b) = 91.
    assert 170 < u_tau / NU < 195
    # The wall shear stress balances the driving body force (momentum balance of the periodic channel).
    assert u_tau**2 == pytest.approx(solution.forcing * 1.0, rel=0.01)
    k, omega, nu_t = (closure.k.x.array, closure.omega.x.array, solution.turbulence["nu_t"].x.array)
    assert k.min() >= 0 and omega.min() > 0 and nu_t.min() >= 0
    assert np.all(k[closure.wall_dofs] == 0) and np.all(nu_t[closure.wall_dofs] == 0)
    assert 10 < nu_t.max() / NU < 25  # the DNS (-uv / dU/dy) peaks at nu_t / nu = 16.4, at y+ = 82


def test_a_frozen_closure_reproduces_the_velocity_of_its_nu_t(k_omega):
    flow, _, _ = k_omega
    fields = flow.mesh_fields()
    assert fields.metadata == {"nu": NU, "periods": [[0.2, 0.0]]}  # what a network closure needs besides arrays
    frozen = coarse_flow()
    solution = solve_rans(frozen, NodeClosure(FrozenClosure(fields["nu_t"])), RansParameters(tolerance=1e-9))
    a, b = node_values(flow.domain, flow.velocity), node_values(frozen.domain, frozen.velocity)
    # The reference velocity was solved with the nu_t of one iteration before its last (change < 1e-6).
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 1e-5
    assert solution.history[0]["nu_t_change"] == 1.0  # from a laminar start


def test_one_equation_channel_converges():
    flow = coarse_flow()
    closure = OneEquation(flow, k0=1e-2)
    solve_rans(flow, closure)
    assert 170 < friction_velocity(flow) / NU < 200
    assert closure.k.x.array.min() >= 0


def test_k_epsilon_channel_converges_with_its_wall_dissipation():
    flow = coarse_flow()
    closure = KEpsilon(flow, k0=1e-2, eps0=9e-4)
    solution = solve_rans(flow, closure)
    assert solution.iterations < 100
    assert 178 < friction_velocity(flow) / NU < 186  # measured 181.7 (DNS 182.1)
    k, eps = closure.k.x.array, closure.epsilon.x.array
    assert k.min() >= 0 and eps.min() > 0 and k[closure.wall_dofs].max() < 1e-13
    # eps_wall = 2 nu k1 / y1^2, with k1 at the node right above each wall node (the mesh is structured).
    x = closure.space.tabulate_dof_coordinates()
    for dof in closure.wall_dofs:
        above = np.flatnonzero(np.isclose(x[:, 0], x[dof, 0]) & ~np.isin(np.arange(len(x)), closure.wall_dofs))
        first = above[np.argmin(np.abs(x[above, 1] - x[dof, 1]))]
        y1 = abs(x[first, 1] - x[dof, 1])
        assert eps[dof] == pytest.approx(2 * NU * k[first] / y1**2, rel=1e-12)


class Exploding:
    names = ("nu_t",)

    def __call__(self, fields):
        return {"nu_t": np.full(fields.num_nodes, np.nan)}


class Patchy:
    """nu_t = 1e-3, but NaN at the nodes with x > 0.15 and y > 1.9."""

    names = ("nu_t",)

    def __call__(self, fields):
        bad = (fields.points[:, 0] > 0.15) & (fields.points[:, 1] > 1.9)
        return {"nu_t": np.where(bad, np.nan, 1e-3)}


def test_divergence_and_stall_raise_one_line_errors_that_say_where():
    flow = coarse_flow()
    with pytest.raises(ConvergenceError, match="diverged at iteration 1: non-finite nu_t") as failure:
        solve_rans(flow, NodeClosure(Exploding()))
    assert len(failure.value.worst) == 5 and failure.value.history == []
    flow = coarse_flow()
    with pytest.raises(ConvergenceError, match="diverged at iteration 1: non-finite nu_t; worst node at x = 0.2") as failure:
        solve_rans(flow, NodeClosure(Patchy()))
    assert all(w["x"] > 0.15 and w["y"] > 1.9 and np.isnan(w["value"]) for w in failure.value.worst)
    assert np.all(np.isfinite(flow.nu_t.x.array)) and np.all(np.isfinite(flow.velocity.x.array))  # the last good state
    flow = coarse_flow()
    with pytest.raises(ConvergenceError, match="stalled after 3 iterations") as failure:
        solve_rans(flow, KOmega(flow, k0=1e-2, omega0=1.0), RansParameters(max_iterations=3))
    history, worst = failure.value.history, failure.value.worst
    assert len(history) == 3 and all(h["momentum_s"] > 0 and h["closure_s"] > 0 for h in history)
    assert worst[0]["value"] >= worst[-1]["value"] > 0  # the largest nu_t changes of the last iteration
    # the diagnosis written with the failed state: cycle, Ritz values of the map, where nu_t moved
    diagnosis, change = failure.value.diagnosis, failure.value.change
    assert diagnosis["cycle"] == "no cycle found" and diagnosis["window"] == 3 and len(diagnosis["eigenvalues"]) == 2
    assert change.name == "nu_t_change_last" and change.x.array.min() >= 0 and change.x.array.max() > 0
    assert all(0 < h["nu_t_residual"] < np.inf for h in history)


def test_blending_hands_over_from_the_start_closure():
    flow = coarse_flow()
    constant = lambda value: NodeClosure(lambda fields: {"nu_t": np.full(fields.num_nodes, value)})  # noqa: E731
    blend = BlendedClosure(constant(2e-3), constant(1e-3), iterations=2)
    seen = [blend.update(flow)["nu_t"].x.array.copy() for _ in range(3)]
    assert np.allclose(seen[0], 2e-3) and np.allclose(seen[1], 1.5e-3) and np.allclose(seen[2], 1e-3)
    with pytest.raises(SolverError, match="at least 1 iteration"):
        BlendedClosure(constant(1.0), constant(1.0), iterations=0)


def test_bad_parameters_and_closures_are_refused():
    with pytest.raises(SolverError, match="relaxation"):
        RansParameters(relaxation=0.0)
    with pytest.raises(SolverError, match="dt_growth"):
        RansParameters(dt_growth=0.5)
    flow = coarse_flow()
    with pytest.raises(SolverError, match="the closure failed: frozen nu_t has 3 values"):
        solve_rans(flow, NodeClosure(FrozenClosure(np.zeros(3))))
    with pytest.raises(SolverError, match="returned no nu_t"):
        solve_rans(flow, NodeClosure(lambda fields: {"k": np.zeros(fields.num_nodes)}))


def test_a_turned_periodic_hill_gives_the_turned_solution():
    """Mesh, periodic direction and forcing turned by 30 degrees: the k-omega solution turns with them."""
    from meshes.shapes import periodic_hill
    from solvers.rans import lower_wall_shear

    solved = {}
    for angle in (0.0, 30.0):
        domain = periodic_hill(1.0, Resolution(24, 24, 20.0))
        domain = domain.turned(angle) if angle else domain
        flow = MeanFlow(domain, FlowParameters(nu=1 / 5600, bulk_velocity=0.72, rtol=1e-3))
        flow.nu_t.x.array[:] = 0.01
        solution = solve_rans(flow, KOmega(flow, k0=1e-2, omega0=1.0))
        velocity = node_values(domain, flow.velocity)[:, :2] @ domain.rotation  # back to the hill's own frame
        solved[angle] = velocity, node_values(domain, flow.nu_t), lower_wall_shear(flow)[1], solution
    (u, nu_t, shear, plain), (u_turned, nu_t_turned, shear_turned, turned) = solved[0.0], solved[30.0]
    assert np.linalg.norm(u_turned - u) < 1e-10 * np.linalg.norm(u)  # measured 3.9e-15
    assert np.linalg.norm(nu_t_turned - nu_t) < 1e-10 * np.linalg.norm(nu_t)
    assert np.abs(shear_turned - shear).max() < 1e-8 * np.abs(shear).max()  # wall shear probed in the own frame
    assert turned.iterations == plain.iterations and turned.forcing == pytest.approx(plain.forcing, rel=1e-12)


def test_anderson_mixing_converges_where_relaxation_spirals_out():
    """x = A x + b with A a rotation by 30 degrees scaled by 1.2: relaxed by 0.7, the iteration grows
    by 1.11 per step; Anderson mixing over 5 steps finds the fixed point."""
    from mpi4py import MPI

    from solvers.rans import AndersonMixing

    angle = np.deg2rad(30.0)
    A = 1.2 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    b = np.array([1.0, 2.0])
    fixed = np.linalg.solve(np.eye(2) - A, b)
    plain, x = np.zeros(2), np.zeros(2)
    mixing = AndersonMixing(MPI.COMM_SELF, depth=5, damping=0.7)
    for _ in range(12):
        plain = plain + 0.7 * (A @ plain + b - plain)
        x = mixing.step(x, A @ x + b, owned=2)
    assert np.linalg.norm(plain - fixed) > np.linalg.norm(fixed)
    assert np.linalg.norm(x - fixed) < 1e-10 * np.linalg.norm(fixed)


def test_anderson_mixing_restarts_when_the_residual_jumps():
    """A residual grown more than twice in one step: the past steps are dropped, the damping
    shrinks, and the step is the relaxed one with the shrunk damping; with a looser restart the
    same step is mixed and the damping kept. Repeated restarts stop shrinking it at the floor."""
    from mpi4py import MPI

    from solvers.rans import AndersonMixing

    steps = [(np.zeros(2), np.ones(2)), (np.array([1.0, 0.0]), np.array([4.0, 3.0]))]  # |f| 1.41, then 4.24
    for restart, restarts, damping in ((2.0, 1, 0.56), (10.0, 0, 0.7)):
        mixing = AndersonMixing(MPI.COMM_SELF, depth=5, damping=0.7, restart=restart, shrink=0.8)
        x = [mixing.step(a, b, owned=2) for a, b in steps][-1]
        relaxed = steps[1][0] + damping * (steps[1][1] - steps[1][0])
        assert mixing.restarts == restarts and mixing.damping == pytest.approx(damping)
        assert np.allclose(x, relaxed) == (restarts == 1)
    mixing = AndersonMixing(MPI.COMM_SELF, depth=5, damping=0.7, shrink=0.5, floor=0.2)
    for k in range(6):  # a residual that triples at every step
        mixing.step(np.zeros(1), np.full(1, 3.0**k), owned=1)
    assert mixing.restarts == 5 and mixing.damping == 0.2
    mixing = AndersonMixing(MPI.COMM_SELF, depth=5, damping=0.7)
    for x, g in ((np.zeros(1), np.zeros(1)), (np.zeros(1), np.ones(1))):  # from a fixed point: restarted, not damped
        mixing.step(x, g, owned=1)
    assert mixing.restarts == 1 and mixing.damping == 0.7


def test_anderson_mixing_judges_its_step_where_the_projection_puts_it():
    """A frozen nu_t with zeros, handed over from another one in 10 iterations, nu_t clipped at 0:
    the mixed steps after the hand-over go negative and are clipped back to where they started, so
    the iteration stood still at a residual of 4e-3 for 16 iterations, until the hand-over left
    the history (a shipped closure's hand-over on a validation hill stood so at 0.1, then
    diverged). Judged after the projection, such a step is dropped for the relaxed one and the
    iteration reaches the frozen values as soon as the hand-over ends."""
    from mpi4py import MPI

    from solvers.rans import AndersonMixing

    rng = np.random.default_rng(0)
    n = 2000
    frozen = rng.uniform(1e-4, 1e-1, n)
    frozen[: n // 10] = 0.0
    start = frozen * (1 + rng.uniform(-0.5, 0.5, n)) + 1e-3 * (frozen == 0)
    clip = lambda x: np.clip(x, 0.0, None)  # noqa: E731
    for project, stalls in ((lambda x: x, True), (clip, False)):  # judged before the projection, or after it
        mixing, x, residuals = AndersonMixing(MPI.COMM_SELF, depth=20, damping=0.7), start.copy(), []
        for k in range(30):
            w = max(0.0, 1.0 - (k + 1) / 10)
            g = w * start + (1 - w) * frozen
            x = clip(mixing.step(x, g, n, project))
            residuals.append(np.linalg.norm(g - x) / np.linalg.norm(g))
        after = residuals[12:20]
        assert min(after) > 1e-3 if stalls else max(after) < 1e-12


def test_the_loops_mixing_shrinks_its_damping_by_anderson_shrink_at_each_restart():
    """A closure whose nu_t quadruples at every call: from the second iteration on the residual
    grows more than twice per step, so the mixing restarts every time; the history's damping
    falls by `anderson_shrink` each time down to the floor 0.1, or stays with 1."""
    from dolfinx import fem

    class Quadrupling:
        def __init__(self, flow):
            self.out, self.calls = fem.Function(flow.nu_t.function_space), 0

        def update(self, flow):
            self.calls += 1
            self.out.x.array[:] = flow.nu * 4.0**self.calls
            return {"nu_t": self.out}

    for shrink, expected in ((0.5, [0.7, 0.35, 0.175, 0.1, 0.1]), (1.0, [0.7] * 5)):
        flow = coarse_flow()
        with pytest.raises(RansFailure, match="stalled after 5 iterations") as failed:
            solve_rans(flow, Quadrupling(flow), RansParameters(max_iterations=5, anderson=5, anderson_shrink=shrink))
        assert [h["damping"] for h in failed.value.history] == pytest.approx(expected)
    with pytest.raises(SolverError, match="shrink must lie in"):
        RansParameters(anderson=5, anderson_shrink=0.0)


class MixingLength:
    """nu_t = (0.41 min(d, 0.1))^2 |S|, pushed away from the present nu_t by `gain`: the mixing
    length's fixed point, with the map's Jacobian `gain` in every mode beyond its own."""

    names = ("nu_t",)

    def __init__(self, gain: float = 0.0):
        self.gain = gain

    @staticmethod
    def mixing(fields):
        return (0.41 * np.minimum(fields["wall_distance"], 0.1)) ** 2 * fields["strain_rate"]

    def __call__(self, fields):
        mixing = self.mixing(fields)
        return {"nu_t": mixing + self.gain * (fields["nu_t"] - mixing)}


class Overshooting(MixingLength):
    """The mixing length at a gain of -2.5, by at most a fifth of its value: relaxed at 0.7, the
    fixed point repels (1 - 0.7 x 3.5 = -1.45) and the loop settles into a cycle of period 2
    around it."""

    def __init__(self):
        super().__init__(gain=-2.5)

    def __call__(self, fields):
        mixing = self.mixing(fields)
        size = 0.2 * mixing + 1e-12
        return {"nu_t": mixing + size * np.tanh(self.gain * (fields["nu_t"] - mixing) / size)}


def test_a_relaxed_loop_that_cycles_takes_up_anderson_mixing():
    flow = coarse_flow()
    with pytest.raises(RansFailure, match="stalled after 60 iterations .*: cycle of period 2"):
        solve_rans(flow, NodeClosure(Overshooting()), RansParameters(max_iterations=60, rescue=0))
    flow = coarse_flow()
    solution = solve_rans(flow, NodeClosure(Overshooting()), RansParameters(max_iterations=60))
    switched = [h for h in solution.history if "rescued" in h]
    assert len(switched) == 1 and switched[0]["rescued"] == 2 and switched[0]["iteration"] < 30
    assert len(solution.history) < 45
    assert 0.7 * solution.history[-1]["nu_t_residual"] < 1e-6  # mixed, the loop stops on the residual too
    # converged to the closure's fixed point, nu_t = the mixing length's (the mixing once stood
    # still at a residual of 10 % there, which the loop took for convergence)
    fields = flow.mesh_fields()
    assert fields["nu_t"] == pytest.approx(Overshooting.mixing(fields), rel=1e-4)
    with pytest.raises(SolverError, match="rescue's Anderson depth must be 0 \\(never\\) or more, got -1"):
        RansParameters(rescue=-1)


class Overstepping:
    """A closure with a state of its own, stepped in pseudo-time as a PDE model is: nu_t moves
    towards 1e-3 by dt 3 s tanh(e / s) for a distance e (s = 1e-4). At dt = 1 the step overshoots
    (1 - 3 dt < -1) and settles into a cycle of period 2 at e = +-1.28 s; at dt = 1/3 it lands."""

    names = ("nu_t",)
    target, size = 1e-3, 1e-4

    def __init__(self, flow):
        from dolfinx import fem

        self.out = fem.Function(flow.nu_t.function_space)
        self.out.x.array[:] = self.target + 3 * self.size

    def update(self, flow):
        e = self.out.x.array - self.target
        self.out.x.array[:] = self.target + e - flow.dt * 3 * self.size * np.tanh(e / self.size)
        return {"nu_t": self.out}


def test_a_pde_models_cycling_loop_cuts_its_pseudo_time_step():
    """Mixing nu_t cannot reach a cycle in a PDE model's own state: its loop cuts the model's
    pseudo-time step to a third instead, and converges; without the rescue it stalls."""
    steady = dict(dt=1.0, dt_growth=1.0, dt_max=1.0, max_iterations=60)
    flow = coarse_flow()
    with pytest.raises(RansFailure, match="stalled after 60 iterations .*: cycle of period 2"):
        solve_rans(flow, Overstepping(flow), RansParameters(**steady, rescue=0))
    flow = coarse_flow()
    solution = solve_rans(flow, Overstepping(flow), RansParameters(**steady))
    switched = [h for h in solution.history if "rescued" in h]
    assert len(switched) == 1 and switched[0]["rescued"] == 2 and switched[0]["dt"] == 1.0
    after = [h for h in solution.history if h["iteration"] > switched[0]["iteration"]]
    assert after and all(h["dt"] == pytest.approx(1 / 3) and h["damping"] == 0.7 for h in after)  # relaxed still
    assert flow.nu_t.x.array == pytest.approx(Overstepping.target, rel=1e-5)


def test_anderson_mixing_reaches_the_same_channel_solution(k_omega):
    plain, _, _ = k_omega
    flow = coarse_flow()
    solution = solve_rans(flow, KOmega(flow, k0=1e-2, omega0=1.0), RansParameters(anderson=5))
    assert friction_velocity(flow) == pytest.approx(friction_velocity(plain), rel=1e-5)
    assert max(solution.history[-1]["nu_t_change"], solution.history[-1]["velocity_change"]) < 1e-6
    with pytest.raises(SolverError, match="Anderson depth"):
        RansParameters(anderson=-1)


def test_kept_lu_factors_reach_the_same_channel_solution_with_fewer_factorisations(k_omega):
    """The momentum's LU kept while each Newton step cuts the residual tenfold: the RANS loop's
    own Newton tolerance, the plain solve's channel, a fraction of the factorisations."""
    plain, _, _ = k_omega
    flow = MeanFlow(channel(0.2, 2.0, Resolution(2, 80, 40.0)), FlowParameters(nu=NU, bulk_velocity=1.0, rtol=1e-3, keep_factors=0.1))
    system = flow.solver._system
    solves = []
    solve = system.solve
    system.solve = lambda rhs, out: solves.append(out) or solve(rhs, out)
    solution = solve_rans(flow, KOmega(flow, k0=1e-2, omega0=1.0))
    assert friction_velocity(flow) == pytest.approx(friction_velocity(plain), rel=1e-5)
    steps = sum(h["newton_iterations"] for h in solution.history)
    print("factorisations", flow.solver.factorisations, "Newton steps", steps, "iterations", solution.iterations)
    assert flow.solver.factorisations < 0.3 * steps
    # the load dF/df is constant: its sensitivity is solved once per factorisation, not per step
    assert len(solves) == steps + flow.solver.factorisations
    assert sum(out is flow.solver.sensitivity for out in solves) == flow.solver.factorisations
    with pytest.raises(SolverError, match="keep_factors must be in"):
        FlowParameters(keep_factors=1.0)


def test_a_momentum_pseudo_time_step_reaches_the_same_channel_solution(k_omega):
    plain, _, _ = k_omega
    flow = coarse_flow()
    solution = solve_rans(flow, KOmega(flow, k0=1e-2, omega0=1.0), RansParameters(momentum_pseudo_time=True))
    assert friction_velocity(flow) == pytest.approx(friction_velocity(plain), rel=1e-5)
    assert max(solution.history[-1]["nu_t_change"], solution.history[-1]["velocity_change"]) < 1e-6
    # the first momentum solve is one step of 0.05 from rest, not the steady flow: far below the bulk
    # velocity's steady profile, so it is driven harder
    assert solution.history[0]["forcing"] > 10 * solution.forcing
    with pytest.raises(SolverError, match="pseudo-time step must be positive"):
        flow.solver.solve(0.0)


def test_a_closure_started_from_a_converged_state_stays_there(k_omega):
    """`start_from` on the flow and the model: from the converged fields the loop stops at once."""
    plain, closure, _ = k_omega
    fields = plain.mesh_fields()
    flow = coarse_flow()
    model = KOmega(flow, k0=1e-2, omega0=1.0)
    flow.nu_t.x.array[:] = plain.nu_t.x.array
    flow.start_from(fields["velocity"], plain.solver.forcing.value)
    values = to_mesh_fields(plain.domain, {"k": closure.k, "omega": closure.omega}).point_data
    model.start_from(values)
    assert np.all(model.k.x.array[model.wall_dofs] == 0.0)  # the wall values are kept
    solution = solve_rans(flow, model, RansParameters(dt=1e3))
    assert solution.iterations <= 3
    assert friction_velocity(flow) == pytest.approx(friction_velocity(plain), rel=1e-5)


def repelled_map(n: int = 200, seed: int = 0):
    """A fixed-point map like the coupled hills with the fixture network at alpha 1.125: 9 modes in
    which the fixed point repels (eigenvalues -2.5, -2, 1.7 +- 0.2i, -1.5 +- 0.5i, 1.3, -1.2, 1.1),
    the others contracting, a tenth of the values held at the bound 0 (the network's max(q, 0)),
    a mild nonlinearity; and its fixed point."""
    rng = np.random.default_rng(seed)
    block = np.diag(np.r_[-2.5, -2.0, 1.7, 1.7, -1.5, -1.5, 1.3, -1.2, 1.1, rng.uniform(-0.9, 0.9, n - 9)])
    block[2, 3], block[3, 2], block[4, 5], block[5, 4] = 0.2, -0.2, 0.5, -0.5
    basis = np.linalg.qr(rng.normal(size=(n, n)))[0] * rng.uniform(0.5, 2.0, n)
    J = basis @ block @ np.linalg.inv(basis)
    fixed = np.abs(rng.normal(size=n)) + 0.5
    fixed[: n // 10] = 0.0

    def G(x):
        y = fixed + J @ (x - fixed) + 0.05 * np.tanh(x - fixed) ** 2
        y[: n // 10] = np.minimum(y[: n // 10], 0.0)
        return np.maximum(y, 0.0)

    return G, fixed


def test_anderson_mixing_needs_a_memory_longer_than_the_repelling_modes():
    """Anderson over 5 steps stalls (measured: residual 3e-4, error 6e-3 after 150 iterations, as
    the hills wandered at 1e-4), and the stall diagnosis finds more repelling modes than that;
    over 20 steps the same start converges (measured: 108 iterations, residual 1e-9)."""
    from mpi4py import MPI

    from solvers.rans import AndersonMixing, _hint
    from solvers.stall import StallWatch

    G, fixed = repelled_map()
    for depth in (5, 20):
        mixing, watch = AndersonMixing(MPI.COMM_SELF, depth, damping=0.7), StallWatch(MPI.COMM_SELF)
        x = 1.3 * fixed + 0.1
        for iteration in range(1, 151):
            g = G(x)
            watch.add(x, g)
            if np.linalg.norm(g - x) < 1e-9 * np.linalg.norm(g):
                break
            x = np.clip(mixing.step(x, g, owned=len(x)), 0.0, None)
        error = np.linalg.norm(x - fixed) / np.linalg.norm(fixed)
        print(f"Anderson depth {depth}: {iteration} iterations, error {error:.1e}, {watch.summary()}")
        if depth == 5:
            assert error > 1e-5 and watch.diagnosis()["unstable_modes"] > 5
            assert _hint(watch.diagnosis(), depth, 0.7, memoryless=True) == "; more than the Anderson depth 5: raise it"
        else:
            assert iteration < 150 and error < 1e-8


def test_a_stall_names_the_relaxation_that_converges_where_one_does():
    """A network's map with its largest mode at -1.87 cycles at relaxation 0.7: relaxed,
    1 - 0.7 * 2.87 = -1.009, just outside; below 2 / 2.87 = 0.697 it contracts. A mode with real
    part 1 or more repels every relaxation, and a PDE model's nu_t is not a map of the flow alone
    (the hills SST cycled at 0.55 too): then only Anderson mixing is named."""
    from solvers.rans import _hint

    cycling = {"unstable_modes": 4, "relaxation_bound": 2.0 / 2.87}
    assert _hint(cycling, 0, 0.7, memoryless=True) == (
        "; their eigenvalues have real parts below 1: a relaxation below 0.69 (now 0.7) would contract them, "
        "or Anderson mixing over more steps than that"
    )
    assert _hint(cycling, 0, 0.5, memoryless=True) == "; use Anderson mixing over more steps than that"  # contracting there already
    cannot = "; relaxation cannot converge in those: use Anderson mixing over more steps than that"
    assert _hint({"unstable_modes": 2, "relaxation_bound": None}, 0, 0.7, memoryless=True) == cannot
    assert _hint(cycling, 0, 0.7, memoryless=False) == cannot
    assert _hint(cycling, 20, 0.7, memoryless=True) == "" and _hint({"unstable_modes": 0}, 0, 0.7, memoryless=True) == ""


def test_newton_krylov_converges_in_every_repelling_mode():
    """The map on which Anderson over 5 steps stalls (above): Newton-Krylov steps from the same
    start converge whatever the number of repelling modes (measured: 5 steps, 126 evaluations of
    the map, error 9e-12)."""
    from mpi4py import MPI

    from solvers.newton_krylov import NewtonKrylov

    G, fixed = repelled_map()
    newton = NewtonKrylov(MPI.COMM_SELF, krylov=30)
    x = 1.3 * fixed + 0.1
    for _ in range(10):
        g = G(x)
        if np.linalg.norm(g - x) < 1e-9 * np.linalg.norm(g):
            break
        x = newton.step(x, g, G, lambda y: np.clip(y, 0.0, None))
    assert np.linalg.norm(x - fixed) < 1e-8 * np.linalg.norm(fixed)
    assert len(newton.steps) <= 6 and all(s.step_length > 0 and s.residual < np.inf for s in newton.steps)
    assert newton.steps[-1].forcing < newton.steps[0].forcing  # Eisenstat-Walker: tighter as it converges


def test_gmres_solves_to_its_tolerance_and_stops_where_a_product_fails():
    from solvers.newton_krylov import gmres

    rng = np.random.default_rng(1)
    A = np.eye(40) + 0.3 * rng.normal(size=(40, 40)) / np.sqrt(40)
    b = rng.normal(size=40)
    x, residual, used = gmres(lambda v: A @ v, b, np.dot, 1e-10, 40)
    assert residual <= 1e-10 and np.linalg.norm(A @ x - b) <= 1e-9 * np.linalg.norm(b) and used < 40
    calls = []
    failing = lambda v: None if len(calls) >= 3 else calls.append(1) or A @ v  # noqa: E731
    x, residual, used = gmres(failing, b, np.dot, 1e-10, 40)
    assert used == 3 and 0 < residual < 1 and np.linalg.norm(A @ x - b) == pytest.approx(residual * np.linalg.norm(b), rel=1e-8)


def test_a_newton_step_that_helps_nowhere_leaves_the_step_to_the_loop():
    from mpi4py import MPI

    from solvers.newton_krylov import NewtonKrylov

    x = np.ones(5)
    newton = NewtonKrylov(MPI.COMM_SELF)
    assert newton.step(x, 2 * x, lambda y: None, lambda y: y) is None  # every evaluation fails
    assert newton.steps[-1].step_length == 0.0 and newton.steps[-1].residual == np.inf


def test_newton_krylov_in_the_loop_converges_where_relaxation_cannot_and_keeps_the_solution():
    """A closure whose map repels in every mode (gain 1.5): relaxation from a thousandth off its
    fixed point stalls (measured: nu_t change 0.26 after 40 iterations; from nu_t = 0 the clipped
    map pins nu_t at 0, a fixed point of the clipped loop: the laminar flow); Newton-Krylov from
    the start converges (measured: 6 steps) to the velocity of the plain mixing length (measured:
    1.4e-11 apart), and so it does switched on near the plain closure's fixed point (measured:
    1.3e-11)."""
    plain_flow = coarse_flow()
    solve_rans(plain_flow, NodeClosure(MixingLength()), RansParameters(tolerance=1e-10))
    plain = node_values(plain_flow.domain, plain_flow.velocity)
    flow = coarse_flow()
    flow.nu_t.x.array[:] = 0.999 * plain_flow.nu_t.x.array
    with pytest.raises(ConvergenceError, match="stalled after 40 iterations"):
        solve_rans(flow, NodeClosure(MixingLength(1.5)), RansParameters(tolerance=1e-10, max_iterations=40))
    for gain, threshold in ((1.5, 1e9), (0.0, 1e-2)):
        flow = coarse_flow()
        solution = solve_rans(flow, NodeClosure(MixingLength(gain)), RansParameters(tolerance=1e-10, newton_krylov=threshold, max_iterations=60))
        steps = [h["newton"] for h in solution.history if "newton" in h]
        assert steps and all(s["step_length"] > 0 for s in steps)
        assert (gain == 0.0) == ("newton" not in solution.history[0])  # switched on below the threshold only
        u = node_values(flow.domain, flow.velocity)
        assert np.linalg.norm(u - plain) < 1e-9 * np.linalg.norm(plain)
    with pytest.raises(SolverError, match="steady momentum solve"):
        RansParameters(newton_krylov=1e-3, momentum_pseudo_time=True)


def repelling_mixing_length_velocity():
    """The channel with `MixingLength(1.5)` solved by Newton-Krylov steps from the start: the node
    velocity sorted by position (rank 0; None elsewhere) and the GMRES directions of each step."""
    flow = coarse_flow()
    solution = solve_rans(flow, NodeClosure(MixingLength(1.5)), RansParameters(tolerance=1e-10, newton_krylov=1e9, max_iterations=60))
    fields = flow.mesh_fields()
    directions = [h["newton"]["krylov"] for h in solution.history if "newton" in h]
    return (None if fields is None else fields["velocity"][np.lexsort(fields.points.T[::-1])]), directions


@pytest.mark.mpi
def test_newton_krylov_under_mpirun_takes_the_serial_steps(tmp_path):
    """Every rank must take the same Newton step (inner products summed over owned dofs): 2 ranks
    give the serial steps and velocity (measured: the same 6 steps, 8.8e-14 apart)."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("mpirun") is None:
        pytest.skip("mpirun not installed")
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    runs = {}
    for ranks in (1, 2):
        out = tmp_path / f"ranks{ranks}"
        cmd = [shutil.which("mpirun"), "-n", str(ranks), sys.executable, "-m", "tests.solvers.test_rans", str(out)]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr
        runs[ranks] = np.load(out.with_suffix(".npy")), json.loads(out.with_suffix(".json").read_text())
    (serial, steps), (parallel, steps_parallel) = runs[1], runs[2]
    assert steps == steps_parallel and len(steps) >= 3
    assert np.linalg.norm(parallel - serial) < 1e-10 * np.linalg.norm(serial)


if __name__ == "__main__":  # under mpirun, for the test above: OUT.npy (velocity) and OUT.json (steps)
    import json
    import sys
    from pathlib import Path

    from mpi4py import MPI

    velocity, directions = repelling_mixing_length_velocity()
    if MPI.COMM_WORLD.rank == 0:
        out = Path(sys.argv[1])
        np.save(out.with_suffix(".npy"), velocity)
        out.with_suffix(".json").write_text(json.dumps(directions))
