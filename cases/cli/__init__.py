"""The `vcnn` command: solve cases, build datasets, train, evaluate, check invariance, run whole studies.

One module per command family (`add_parsers(sub)` declares its commands, each with a `run(args)`);
no work happens here. Errors in the input or a failed solve print one line and exit with code 2;
SIGINT and SIGTERM one line and 130 or 143 (`cases.signals`).
"""

from __future__ import annotations

import argparse
import logging
import os
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
        _leave_process_group(code)
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


def _leave_process_group(code: int) -> None:
    """End a torchrun process here, with `code`, after a run that succeeded, without the
    interpreter's shutdown. Gloo's worker threads drop the last collective's tensors a moment after
    it completes; when that moment falls in the shutdown, the thread that wants the GIL to drop them
    is ended by a forced unwind, which aborts the process (SIGABRT, "terminate called without an
    active exception"). `destroy_process_group` does not stop those threads while DDP still holds
    the group. Beside a one-core load, 3 of 23 two-process runs of DDP aborted so, 5 of 20 with
    the group destroyed first, none of 60 leaving by `os._exit` (docs/results.md). Every output is
    written and closed by now; the logs and standard streams are flushed. Not after a failure:
    the other ranks may still be in a collective."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
