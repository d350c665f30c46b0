"""Newton-Krylov steps for the fixed point x = G(x) of a closure loop (nu_t, and a closure's extra
stress, through one momentum solve and one closure call).

Relaxation cannot converge in a mode where the map's Jacobian has an eigenvalue above 1, and
Anderson mixing holds only as many such modes as its depth, and loses them when a restart drops
its history; whether a network gives the hills 8 or 12 of them depends on the training (issue 22,
`solvers.stall`). A Newton step does not care how many there are: it solves
(I - G'(x)) d = G(x) - x by GMRES, each product G'(x) v a finite difference of G (one momentum
solve from the current velocity and one closure call: the network is a black box, whatever it
is), and takes d, or a fraction of it, by a backtracking line search on |G(x) - x| (Armijo).
The linear tolerance follows Eisenstat & Walker (1996, choice 2), so that the steps converge
superlinearly without solving early linear systems more exactly than they deserve.

Inner products run over owned dofs and are summed over ranks: all ranks take the same step.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Callable

import numpy as np
from mpi4py import MPI

log = logging.getLogger(__name__)


def gmres(apply: Callable[[np.ndarray], np.ndarray | None], b: np.ndarray, dot: Callable, rtol: float, max_dim: int):
    """x with |b - A x| <= rtol |b| (or the best over `max_dim` directions), A given by `apply`;
    (x, relative residual, directions used). `apply` may return None (the product failed):
    GMRES then stops with what it has. Arnoldi with modified Gram-Schmidt; x0 = 0."""
    beta = math.sqrt(dot(b, b))
    if beta == 0:
        return np.zeros_like(b), 0.0, 0
    basis = [b / beta]
    hessenberg = np.zeros((max_dim + 1, max_dim))
    y, residual, used = np.zeros(0), 1.0, 0
    for j in range(max_dim):
        w = apply(basis[j])
        if w is None:
            break
        for i in range(j + 1):
            hessenberg[i, j] = dot(w, basis[i])
            w = w - hessenberg[i, j] * basis[i]
        hessenberg[j + 1, j] = math.sqrt(dot(w, w))
        rhs = np.zeros(j + 2)
        rhs[0] = beta
        h = hessenberg[: j + 2, : j + 1]
        y = np.linalg.lstsq(h, rhs, rcond=None)[0]
        residual, used = float(np.linalg.norm(rhs - h @ y)) / beta, j + 1
        if residual <= rtol or hessenberg[j + 1, j] <= 1e-14 * beta:
            break
        basis.append(w / hessenberg[j + 1, j])
    return sum(c * v for c, v in zip(y, basis)) if used else np.zeros_like(b), residual, used


@dataclasses.dataclass
class NewtonStep:
    """What one Newton step did (recorded in the loop's history)."""

    krylov: int  # GMRES directions, one map evaluation each
    linear_residual: float  # |F + J d| / |F| reached
    forcing: float  # the linear tolerance asked for
    step_length: float  # the line search's fraction of d
    evaluations: int  # map evaluations in all (GMRES and line search)
    residual: float  # |G(x) - x| at the accepted point (inf: every try failed)


class NewtonKrylov:
    """x -> the next iterate by an inexact Newton step on F(x) = G(x) - x.

    evaluate(x): G(x), or None when it cannot be computed (a momentum solve failed); called with
    the flow reset to the state of the current x, so that it is a function of x alone.
    project(x): the admissible point nearest x (e.g. nu_t clipped to [0, cap]).
    `step` returns None when no fraction of the Newton direction lowers |G(x) - x|: the loop then
    takes its own (relaxed or mixed) step. Differences are taken over `difference` times |x|.
    """

    def __init__(self, comm, krylov: int = 30, difference: float = 1e-7, backtracks: int = 4, forcing_max: float = 0.1):
        self.comm, self.krylov, self.difference, self.backtracks, self.forcing_max = comm, krylov, difference, backtracks, forcing_max
        self.forcing = forcing_max
        self.last_residual: float | None = None
        self.steps: list[NewtonStep] = []
        self._accepted: tuple | None = None  # (point, image) of the last step's line search

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        return self.comm.allreduce(float(a @ b), op=MPI.SUM)

    def norm(self, a: np.ndarray) -> float:
        return math.sqrt(self.dot(a, a))

    def _forcing(self, residual: float, target: float) -> float:
        """Eisenstat-Walker choice 2 (gamma 0.9, exponent 2) with its safeguard, in [1e-3, forcing_max],
        and no tighter than half the residual `target` needs (Eisenstat & Walker's last safeguard)."""
        if self.last_residual is None:
            return self.forcing_max
        eta = 0.9 * (residual / self.last_residual) ** 2
        safeguard = 0.9 * self.forcing**2
        if safeguard > 0.1:
            eta = max(eta, safeguard)
        return min(self.forcing_max, max(eta, 1e-3, 0.5 * target / residual))

    def image_at(self, x: np.ndarray) -> np.ndarray | None:
        """G(x) if x is the point the last step accepted (evaluated by its line search), else None."""
        if self._accepted is not None and np.array_equal(self._accepted[0], x):
            return self._accepted[1]
        return None

    def step(self, x: np.ndarray, g: np.ndarray, evaluate: Callable, project: Callable, target: float = 0.0) -> np.ndarray | None:
        """The next iterate from x and g = G(x) (None: see the class); `target`: the residual
        |G(x) - x| that counts as converged, which bounds how exactly GMRES solves."""
        f = g - x
        residual = self.norm(f)
        self.forcing = self._forcing(residual, target)
        scale = self.difference * (self.norm(x) or 1.0)
        evaluations = 0

        def jacobian(v: np.ndarray) -> np.ndarray | None:  # (I - G'(x)) v, v of unit norm
            nonlocal evaluations
            evaluations += 1
            image = evaluate(x + scale * v)
            return None if image is None else v - (image - g) / scale

        direction, linear, used = gmres(jacobian, f, self.dot, self.forcing, self.krylov)
        length, accepted, found = 1.0, math.inf, None
        for _ in range(self.backtracks + 1):
            trial = project(x + length * direction)
            evaluations += 1
            image = evaluate(trial)
            accepted = math.inf if image is None else self.norm(image - trial)
            if accepted <= (1.0 - 1e-4 * length) * residual:
                found, self._accepted = trial, (trial, image)
                break
            length *= 0.5
        step = NewtonStep(used, linear, self.forcing, length if found is not None else 0.0, evaluations, accepted)
        self.steps.append(step)
        self.last_residual = residual
        log.info(
            "Newton-Krylov: %d directions (linear residual %.2e, asked %.1e), step %.3g, |G(x) - x| %.3e -> %.3e",
            used, linear, self.forcing, step.step_length, residual, accepted,
        )
        return found
