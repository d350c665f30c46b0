"""Why a fixed-point iteration x -> G(x) stalls: where its last changes live, whether its iterates
cycle, and which modes of the map repel it.

`StallWatch` keeps the last iterates x and images G(x) of a field (nu_t on owned dofs, numpy
only) and, when the loop gives up, says
- where the change of the last iterations lives (a per-node map: the RMS of the change over the
  window);
- whether the iterates repeat with a period: x_k close to x_(k-p) for the last p iterations,
  compared with the size of one step (a cycle of period 2 is the over-relaxed oscillation of one
  mode; a longer one, a secant method trapped in a loop; none, a wandering iteration);
- the eigenvalues of the map's Jacobian on the span of the last steps, from the secant pairs
  (G(x_k) - G(x_(k-1)), x_k - x_(k-1)) by Rayleigh-Ritz: eigenvalues outside the unit circle are
  modes in which the fixed point repels the iteration (a network sensitive to the flow it
  shapes); a mixing of too few steps cannot hold them all, and a relaxed iteration converges in
  them only where they turn back and forth (real part below 1) and the relaxation is small enough
  (`relaxation_bound`).

`CycleGuard` tells a relaxed loop, while it runs, that it has settled into such a cycle, so that
it can act (`solvers.rans`: Anderson mixing for a network, a shorter pseudo-time step for a PDE
model) instead of spending its remaining iterations there.
"""

from __future__ import annotations

import math

import numpy as np
from mpi4py import MPI


def find_cycle(iterates: list, comm=MPI.COMM_SELF, max_period: int = 8, closeness: float = 0.1) -> int | None:
    """The smallest period p in [2, max_period] with |x_k - x_(k-p)| <= closeness * (mean step of
    the window) for each of the last p iterates k, or None. `iterates`: owned parts, oldest
    first; the norms are summed over the ranks of `comm`."""

    def norm(a: np.ndarray) -> float:
        return math.sqrt(comm.allreduce(float(a @ a), op=MPI.SUM))

    steps = [norm(b - a) for a, b in zip(iterates[:-1], iterates[1:])]
    for period in range(2, max_period + 1):
        if len(iterates) < 2 * period + 1:
            break
        scale = np.mean(steps[-2 * period :])
        if scale == 0:
            return None  # not moving: a fixed point, not a cycle
        gaps = [norm(iterates[-1 - j] - iterates[-1 - j - period]) for j in range(period)]
        if max(gaps) <= closeness * scale:
            return period
    return None


def secant_eigenvalues(iterates: list, images: list, comm=MPI.COMM_SELF, rcond: float = 1e-10) -> np.ndarray:
    """Ritz values of the Jacobian of G on the span of the steps dX (columns x_k - x_(k-1)), from
    dG = J dX: the generalised eigenproblem (dX^T dG) c = lambda (dX^T dX) c, on the directions
    of dX^T dX above `rcond` times its largest eigenvalue; largest magnitude first."""
    dx, dg = np.diff(np.array(iterates), axis=0), np.diff(np.array(images), axis=0)
    if len(dx) == 0:
        return np.zeros(0, dtype=complex)
    gram = comm.allreduce(dx @ dx.T, op=MPI.SUM)  # dX^T dX
    cross = comm.allreduce(dx @ dg.T, op=MPI.SUM)  # dX^T dG = dX^T J dX
    w, v = np.linalg.eigh(gram)
    keep = w > rcond * max(w.max(), 0.0)
    if not keep.any():
        return np.zeros(0, dtype=complex)
    basis = v[:, keep] / np.sqrt(w[keep])  # coefficients c = basis y make the columns dX c orthonormal
    values = np.linalg.eigvals(basis.T @ cross @ basis)
    return values[np.argsort(-np.abs(values))]


def relaxation_bound(values) -> float | None:
    """The relaxation below which x + w (G(x) - x) contracts in every mode of G outside the unit
    circle: the relaxed eigenvalue 1 - w (1 - mu) lies inside it for w < 2 Re(1 - mu) / |1 - mu|^2,
    and for no w where Re(mu) >= 1 (None: no relaxation converges); 1 when no mode repels."""
    bounds = [1.0]
    for mu in np.asarray(values, dtype=complex):
        if abs(mu) > 1.0:
            if mu.real >= 1.0:
                return None
            bounds.append(2.0 * (1.0 - mu.real) / abs(1.0 - mu) ** 2)
    return min(bounds)


class StallWatch:
    """The last `window` iterates x and images G(x) of a field (owned dofs), for the diagnosis of a
    stalled loop."""

    def __init__(self, comm, window: int = 25, max_period: int = 8):
        self.comm, self.window, self.max_period = comm, window, max_period
        self.iterates: list = []
        self.images: list = []

    def add(self, x: np.ndarray, image: np.ndarray | None = None) -> None:
        self.iterates = (self.iterates + [np.array(x, dtype=float)])[-self.window :]
        if image is not None:
            self.images = (self.images + [np.array(image, dtype=float)])[-self.window :]

    def change_map(self) -> np.ndarray | None:
        """Per node: the RMS over the window of the change between successive iterates (None with fewer than 2)."""
        if len(self.iterates) < 2:
            return None
        return np.sqrt(np.mean(np.diff(np.array(self.iterates), axis=0) ** 2, axis=0))

    def period(self) -> int | None:
        return find_cycle(self.iterates, self.comm, self.max_period)

    def diagnosis(self) -> dict:
        """{"cycle": "cycle of period p" or "no cycle found", "period": p or None, "window":
        iterations seen, "eigenvalues": the 8 largest Ritz values as [re, im], "unstable_modes":
        how many lie outside the unit circle, "relaxation_bound": `relaxation_bound` of them all}
        (the last three only when images were added)."""
        period = self.period()
        cycle = f"cycle of period {period}" if period else "no cycle found"
        result = {"cycle": cycle, "period": period, "window": len(self.iterates)}
        if len(self.images) == len(self.iterates):
            values = secant_eigenvalues(self.iterates, self.images, self.comm)
            result["eigenvalues"] = [[float(v.real), float(v.imag)] for v in values[:8]]
            result["unstable_modes"] = int(np.sum(np.abs(values) > 1.0))
            result["relaxation_bound"] = relaxation_bound(values)
        return result

    def summary(self) -> str:
        """The diagnosis in a few words, for the error message."""
        d = self.diagnosis()
        if not d.get("unstable_modes"):
            return d["cycle"]
        re, im = d["eigenvalues"][0]
        largest = f"{re:.3g}" + (f"{im:+.3g}i" if im else "")
        return f"{d['cycle']}; {d['unstable_modes']} modes of the map repel the iteration (eigenvalue up to {largest})"


class CycleGuard:
    """Whether a loop has settled into a cycle: `StallWatch` found a period at each of the last
    `after` iterations, and the loop's residual fell by less than `progress` over them. A cycle
    that still contracts that slowly (0.8 in 20 iterations) needs about 200 iterations a decade:
    a stall in all but name. A loop that converges, even while it oscillates, does not trip it."""

    def __init__(self, after: int = 20, progress: float = 0.8):
        self.after, self.progress = after, progress
        self.residuals: list = []
        self.found = 0  # consecutive iterations with a period

    def update(self, watch: StallWatch, residual: float) -> int | None:
        """Add this iteration's residual (after `watch.add`); the period when the loop is stuck."""
        period = watch.period()
        self.found = self.found + 1 if period else 0
        self.residuals = (self.residuals + [residual])[-(self.after + 1) :]
        stuck = len(self.residuals) > self.after and self.residuals[-1] > self.progress * self.residuals[0]
        return period if self.found >= self.after and stuck else None
