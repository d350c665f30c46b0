"""A frozen extra stress in the momentum equations (`NavierStokes(stress=...)`,
`MeanFlow.freeze_stress`): its sign, a zero stress changes nothing, and it turns with the frame."""

import numpy as np
import pytest

pytest.importorskip("dolfinx")

import ufl  # noqa: E402
from dolfinx import fem  # noqa: E402

from meshes.periodic_domain import Resolution  # noqa: E402
from meshes.shapes import periodic_hill  # noqa: E402
from solvers.export import node_values, set_node_values  # noqa: E402
from solvers.navier_stokes import FlowParameters, NavierStokes  # noqa: E402
from solvers.rans import FrozenClosure, MeanFlow, NodeClosure, RansParameters, solve_rans  # noqa: E402

PARAMS = FlowParameters(nu=1e-2, bulk_velocity=0.72)
NU_T = 2e-2


def hill(angle=0.0):
    domain = periodic_hill(1.0, Resolution(16, 16, 5.0))
    return domain.turned(angle) if angle else domain


def test_the_stress_of_an_eddy_viscosity_frozen_gives_back_its_velocity():
    """a = -2 nu_t S(u) of the nu_t solution, frozen with no nu_t: the same discrete equations at u,
    so the same velocity (a sign error or a missing factor would move it)."""
    domain = hill()
    reference = NavierStokes(domain, PARAMS, nu_t=fem.Constant(domain.mesh, NU_T)).solve().velocity
    stress = -2.0 * NU_T * ufl.sym(ufl.grad(reference))
    solution = NavierStokes(domain, PARAMS, stress=stress).solve()
    assert np.linalg.norm(solution.velocity.x.array - reference.x.array) < 1e-9 * np.linalg.norm(reference.x.array)
    laminar = NavierStokes(domain, PARAMS).solve().velocity.x.array
    assert np.linalg.norm(laminar - reference.x.array) > 1e-2 * np.linalg.norm(reference.x.array)


def frozen(domain, stress=None) -> np.ndarray:
    """Node velocities (in the hill's own frame) of the uniform NU_T frozen, with `stress(flow)` frozen too."""
    flow = MeanFlow(domain, PARAMS)
    nodes = flow.mesh_fields().num_nodes
    set_node_values(domain, np.full(nodes, NU_T), flow.nu_t)
    if stress is not None:
        flow.freeze_stress(stress(flow))
    solve_rans(flow, NodeClosure(FrozenClosure(np.full(nodes, NU_T))), RansParameters(tolerance=1e-10))
    return node_values(domain, flow.velocity)[:, :2] @ domain.rotation


def wavy(flow) -> np.ndarray:
    """A smooth stress, periodic along the hill, given in the hill's own frame and turned into the domain's."""
    domain = flow.domain
    x, y = domain.own_frame(flow.mesh_fields().points).T
    phase = 2 * np.pi * x / domain.length
    own = np.zeros((len(x), 2, 2))
    own[:, 0, 0], own[:, 1, 1] = 1e-3 * np.cos(phase), -1e-3 * np.cos(phase)
    own[:, 0, 1] = own[:, 1, 0] = 2e-3 * np.sin(phase) * y
    return domain.rotation @ own @ domain.rotation.T


def test_a_zero_stress_changes_nothing_and_a_stress_turns_with_the_frame():
    plain = frozen(hill())
    zero = frozen(hill(), lambda flow: np.zeros((flow.mesh_fields().num_nodes, 2, 2)))
    assert np.linalg.norm(zero - plain) < 1e-10 * np.linalg.norm(plain)
    uniform = frozen(hill(), lambda flow: np.tile([[1e-3, 2e-3], [2e-3, -1e-3]], (flow.mesh_fields().num_nodes, 1, 1)))
    assert np.linalg.norm(uniform - plain) < 1e-9 * np.linalg.norm(plain)  # no divergence, no force
    forced = frozen(hill(), wavy)
    assert np.linalg.norm(forced - plain) > 1e-3 * np.linalg.norm(plain)
    turned = frozen(hill(30.0), wavy)
    assert np.linalg.norm(turned - forced) < 1e-9 * np.linalg.norm(forced)
