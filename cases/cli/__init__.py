"""The `vcnn` command: solve cases, build datasets, train, evaluate, check invariance, run whole studies.

One module per command family (`add_parsers(sub)` declares its commands, each with a `run(args)`);
no work happens here. Errors in the input or a failed solve print one line and exit with code 2;
SIGINT and SIGTERM one line and 130 or 143 (`cases.signals`).
"""

from __future__ import annotations

import argparse
import sys

from cases.cli import benchmark, couple, dataset, network, predict, show, solve, study
from cases.cli.common import rank
from cases.signals import interruptible, stopped

EXIT_USAGE = 2
COMMANDS = (solve, couple, dataset, study, network, predict, benchmark, show)
ERRORS = {"cases.errors": "CaseError", "meshes.errors": "MeshError", "solvers.errors": "SolverError", "vcnn.errors": "VcnnError"}
"""The project's exception type of each package: input or a solve the user can fix."""


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with interruptible():
            code = args.run(args)
        _leave_process_group()
        return code
    except KeyboardInterrupt as err:
        stop = stopped(err)
        if rank() == 0:
            print(f"vcnn: stopped by {stop}: no unfinished output was left (a dataset, training or study continues when run again)", file=sys.stderr)
        return stop.exit_code
    except Exception as err:
        if not project_error(err):
            raise
        if rank() == 0:
            print(f"vcnn: error: {err}", file=sys.stderr)
        return EXIT_USAGE


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vcnn", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parsers(sub)
    return top


def project_error(err: Exception) -> bool:
    """`err` is one of the project's own errors (a package that raised it has been imported)."""
    return any(module in sys.modules and isinstance(err, getattr(sys.modules[module], name)) for module, name in ERRORS.items())


def _leave_process_group() -> None:
    """Leave a torchrun process group after a run that succeeded: left to the interpreter's
    shutdown, gloo's worker threads now and then abort it (SIGABRT, "terminate called without an
    active exception"; pytorch issue 190489). Not after a failure: the other ranks may still be in
    a collective, and destroying the group would hang them."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
