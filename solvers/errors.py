"""The exception types of the `solvers` package."""


class SolverError(RuntimeError):
    """A solve that cannot start (bad parameters) or cannot finish."""


class ConvergenceError(SolverError):
    """An iteration that diverged or stalled; the message says where and how far it got."""


class RansFailure(ConvergenceError):
    """A RANS solve that diverged or stalled, with what it knew then: the per-iteration history,
    the worst nodes ({"x", "y", "value"}: non-finite nu_t first, else the largest last change)
    and the mean flow in its last finite state (`solvers.rans.MeanFlow`), to write out; for a
    stall, the diagnosis of `solvers.stall.StallWatch` (cycle, period, eigenvalues of the map) and
    `change`, the map of the last iterations' nu_t change (a P1 Function "nu_t_change_last")."""

    def __init__(self, message: str, history: list, worst: list, flow=None, diagnosis: dict | None = None, change=None):
        super().__init__(message)
        self.history, self.worst, self.flow = history, worst, flow
        self.diagnosis, self.change = diagnosis or {}, change
