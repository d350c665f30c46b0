"""The RANS Picard loop and its closures on a coarse turbulent channel (Re_tau about 180)."""

import numpy as np
import pytest

pytest.importorskip("dolfinx")

from meshes.periodic_domain import Resolution  # noqa: E402
from meshes.shapes import channel  # noqa: E402
from solvers.errors import ConvergenceError, SolverError  # noqa: E402
from solvers.export import node_values  # noqa: E402
from solvers.navier_stokes import FlowParameters  # noqa: E402
from solvers.rans import FrozenClosure, MeanFlow, NodeClosure, RansParameters, friction_velocity, solve_rans  # noqa: E402
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


def test_divergence_and_stall_raise_one_line_errors():
    flow = coarse_flow()
    with pytest.raises(ConvergenceError, match="diverged at iteration 1: non-finite nu_t"):
        solve_rans(flow, NodeClosure(Exploding()))
    flow = coarse_flow()
    with pytest.raises(ConvergenceError, match="stalled after 3 iterations"):
        solve_rans(flow, KOmega(flow, k0=1e-2, omega0=1.0), RansParameters(max_iterations=3))


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
