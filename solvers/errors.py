"""The exception types of the `solvers` package."""


class SolverError(RuntimeError):
    """A solve that cannot start (bad parameters) or cannot finish."""


class ConvergenceError(SolverError):
    """An iteration that diverged or stalled; the message says where and how far it got."""
