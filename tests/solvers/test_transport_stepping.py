"""Implicit Euler in `solve_transport`: with no walls and a uniform source a uniform start stays
uniform, so every node must follow the scalar implicit-Euler recursion of dc/dt = s - zeta c^p."""

import numpy as np
import pytest

pytest.importorskip("dolfinx")

import ufl  # noqa: E402
from dolfinx import fem  # noqa: E402
from scipy.optimize import brentq  # noqa: E402

from meshes.periodic_domain import Resolution  # noqa: E402
from meshes.shapes import channel  # noqa: E402
from solvers.errors import SolverError  # noqa: E402
from solvers.transport import TimeStepping, TransportParameters, solve_transport  # noqa: E402

SOURCE, ZETA = 1.0, 3.0


def recursion(stepping: TimeStepping, p: float) -> list:
    c, values = stepping.initial, []
    for _ in range(stepping.steps):
        old = c
        if stepping.lagged_reaction:
            c = (old + stepping.dt * SOURCE) / (1 + stepping.dt * ZETA * old ** (p - 1))
        else:
            c = brentq(lambda x: x - old + stepping.dt * (ZETA * x**p - SOURCE), 0.0, 10.0, xtol=1e-15)
        values.append(c)
    return values


@pytest.mark.parametrize("p, lagged", [(1.5, False), (1.5, True), (2.0, False)])
def test_uniform_state_follows_the_implicit_euler_recursion(p, lagged):
    domain = channel(1.0, 1.0, Resolution(4, 4, 1.0))
    params = TransportParameters(reaction=ZETA, production=0.0, reaction_exponent=p)
    stepping = TimeStepping(dt=0.1, steps=15, initial=0.001, lagged_reaction=lagged)
    seen = []
    zero = fem.Constant(domain.mesh, (0.0, 0.0))
    source = fem.Constant(domain.mesh, SOURCE)
    solution = solve_transport(
        domain, zero, fem.Constant(domain.mesh, 0.0), params, source=source,
        zero_facets=np.zeros(0, dtype=np.int32), stepping=stepping,
        on_step=lambda t, c: seen.append((t, c.x.array.min(), c.x.array.max())),
    )
    expected = recursion(stepping, p)
    times, low, high = map(np.array, zip(*seen))
    assert np.allclose(times, 0.1 * np.arange(1, 16))
    assert np.allclose(low, expected, rtol=1e-9, atol=0) and np.allclose(high, expected, rtol=1e-9, atol=0)
    assert solution.concentration.x.array.max() == pytest.approx(expected[-1], rel=1e-9)
    assert expected[4] > 2 * expected[0]  # the test sees the growth, not a state at rest


def test_stepping_and_an_initial_field_are_refused_together():
    domain = channel(1.0, 1.0, Resolution(4, 4, 1.0))
    start = fem.Function(fem.FunctionSpace(domain.mesh, ("Lagrange", 2)))
    with pytest.raises(SolverError, match="not both"):
        solve_transport(domain, ufl.as_vector((0.0, 0.0)), 0.1, stepping=TimeStepping(), initial=start)
