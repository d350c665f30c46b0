"""The stall diagnosis: a cycle's period found from the iterates, none in a converging or wandering
sequence, the map of where the last changes live, and the guard that tells a running loop it cycles."""

import numpy as np
import pytest
from mpi4py import MPI

from solvers.stall import CycleGuard, StallWatch, find_cycle, relaxation_bound, secant_eigenvalues


def orbit(period: int, steps: int, noise: float = 0.0, seed: int = 0) -> list:
    """Iterates going round `period` fixed points of R^50 (plus noise)."""
    rng = np.random.default_rng(seed)
    corners = rng.normal(size=(period, 50))
    return [corners[k % period] + noise * rng.normal(size=50) for k in range(steps)]


def test_a_cycle_is_found_with_its_smallest_period():
    for period in (2, 3, 5):
        assert find_cycle(orbit(period, 20, noise=1e-3)) == period
    assert find_cycle(orbit(4, 20), max_period=3) is None  # longer than looked for


def test_converging_wandering_and_short_sequences_are_no_cycle():
    rng = np.random.default_rng(1)
    converging = [np.full(50, 0.5**k) for k in range(20)]
    wandering = list(np.cumsum(rng.normal(size=(20, 50)), axis=0))
    assert find_cycle(converging) is None and find_cycle(wandering) is None
    assert find_cycle(orbit(3, 6)) is None  # fewer than two periods and one step seen
    assert find_cycle([np.ones(50)] * 10) is None  # standing still


def test_the_watch_reports_where_the_change_lives_and_the_cycle():
    watch = StallWatch(MPI.COMM_SELF, window=9)
    x = np.zeros(4)
    for k in range(30):
        x = x.copy()
        x[2] = (-1) ** k  # node 2 flips between -1 and 1, the others stay put
        watch.add(x)
    change = watch.change_map()
    assert len(watch.iterates) == 9 and np.allclose(change, [0, 0, 2, 0])
    assert watch.diagnosis() == {"cycle": "cycle of period 2", "period": 2, "window": 9}


def trips(contraction: float, steps: int = 60) -> list:
    """The iterations at which a guard trips on x_k = (-contraction)^k x_0: an oscillation that
    shrinks by `contraction` a step (1: a cycle of period 2 that never ends)."""
    watch, guard, found = StallWatch(MPI.COMM_SELF, window=25), CycleGuard(after=20, progress=0.8), []
    x0 = np.random.default_rng(0).normal(size=50)
    for k in range(steps):
        watch.add((-contraction) ** k * x0)
        if guard.update(watch, contraction**k):
            found.append(k)
    return found


def test_the_guard_trips_on_a_lasting_cycle_only():
    """A period-2 cycle trips it once it has been seen for `after` iterations; an oscillation that
    converges does not, though find_cycle sees a period in it, unless it shrinks by less than 0.8 in 20 steps."""
    assert trips(1.0)[0] == 23  # a period from the 5th iterate (k = 4) on, 20 iterations in a row
    assert trips(0.99)[0] == 23 and trips(0.98) == [] and trips(0.9) == []  # 0.99^20 = 0.82 > 0.8; 0.98^20 = 0.67


def test_the_eigenvalues_of_a_linear_map_are_found_from_its_iterates():
    """G(x) = J x + b with J of eigenvalues -2.5, 1.7 +- 0.2i, 0.5 in a skewed basis: the Ritz
    values of the secant pairs of 6 iterates (5 steps spanning R^4) are J's eigenvalues."""
    rng = np.random.default_rng(2)
    basis = rng.normal(size=(4, 4))
    block = np.array([[-2.5, 0, 0, 0], [0, 1.7, 0.2, 0], [0, -0.2, 1.7, 0], [0, 0, 0, 0.5]])
    J, b = basis @ block @ np.linalg.inv(basis), rng.normal(size=4)
    iterates = list(rng.normal(size=(6, 4)))
    values = secant_eigenvalues(iterates, [J @ x + b for x in iterates])
    assert abs(values[0]) == pytest.approx(2.5)  # largest magnitude first
    assert np.allclose(np.sort_complex(values), [-2.5, 0.5, 1.7 - 0.2j, 1.7 + 0.2j], atol=1e-8)
    watch = StallWatch(MPI.COMM_SELF)
    for x in iterates:
        watch.add(x, J @ x + b)
    diagnosis = watch.diagnosis()
    assert diagnosis["unstable_modes"] == 3 and diagnosis["eigenvalues"][0] == pytest.approx([-2.5, 0.0])
    assert diagnosis["relaxation_bound"] is None  # 1.7 +- 0.2i repels every relaxation
    assert watch.summary() == "no cycle found; 3 modes of the map repel the iteration (eigenvalue up to -2.5)"


def test_below_the_relaxation_bound_a_relaxed_iteration_converges_and_above_it_does_not():
    """G(x) = J x + b with modes -1.87 (a period-2 cycle), -1.2 +- 0.9i (a growing spiral) and 0.3:
    x + w (G(x) - x) converges for w just below `relaxation_bound` and grows just above it."""
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(4, 4))
    block = np.array([[-1.87, 0, 0, 0], [0, -1.2, 0.9, 0], [0, -0.9, -1.2, 0], [0, 0, 0, 0.3]])
    J, b = basis @ block @ np.linalg.inv(basis), rng.normal(size=4)
    fixed = np.linalg.solve(np.eye(4) - J, b)
    values = np.linalg.eigvals(J)
    bound = relaxation_bound(values)
    assert bound == pytest.approx(min(2 * 2.87 / 2.87**2, 2 * 2.2 / abs(2.2 - 0.9j) ** 2))
    assert relaxation_bound([0.5, -0.9 + 0.1j]) == 1.0  # nothing repels
    for w, converges in ((0.97 * bound, True), (1.03 * bound, False)):
        x = fixed + rng.normal(size=4)
        for _ in range(2000):
            x = x + w * (J @ x + b - x)
        assert (np.linalg.norm(x - fixed) < 1e-6) == converges
