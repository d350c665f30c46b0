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
        _end_torchrun_process(code)
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


def _end_torchrun_process(code: int) -> None:
    """End a process of a torchrun group here, with `code`, after its command succeeded, without
    the interpreter's shutdown: gloo's worker threads drop the last collective's tensors a moment
    after it completes, and when that moment falls in the shutdown, the thread that asks for the
    GIL is ended by a forced unwind that aborts the process (SIGABRT). `destroy_process_group` does
    not stop those threads while DDP holds the group (docs/results.md, "A data-parallel test that
    aborted now and then"). Every output is written and closed by now. Not after a failure: the
    other ranks may still be in a collective."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
