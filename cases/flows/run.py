"""One solve of a flow into an output directory: staged (complete or absent), logged, with the
resolved configuration, statistics and versions in meta.json."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path

from cases.provenance import provenance
from cases.rundir import check_output, staged_output

log = logging.getLogger("vcnn")


def solve_into(flow, config, out: Path, overwrite: bool = False, figures: bool = True, quiet: bool = False) -> None:
    """Solve `config` with `flow` into `out` (collective under MPI; rank 0 writes)."""
    from mpi4py import MPI

    check_output(out, overwrite)
    comm = MPI.COMM_WORLD
    with staged_output(out, overwrite, comm) as stage:
        setup_logging(stage / "run.log" if comm.rank == 0 else None, quiet, stderr=comm.rank == 0)
        solution = flow.solve(config, comm, msh_path=stage / "mesh.msh")
        fields = flow.mesh_fields(solution, run_metadata(flow.NAME, config, solution.statistics(), comm), stage)
        if comm.rank == 0:
            summary = flow.record(solution, fields, stage, figures)
            fields.write(stage)
            log.info("done: %s", json.dumps({"out": str(out), **summary}))
        logging.shutdown()


def run_metadata(case: str, config, statistics: dict, comm) -> dict:
    """What every solve records in meta.json: case, resolved configuration, statistics, ranks, versions."""
    return {
        "case": case,
        "config": dataclasses.asdict(config),
        "statistics": statistics,
        "mpi_ranks": comm.size,
        **provenance(),
    }


def setup_logging(path: Path | None, quiet: bool, stderr: bool = True) -> None:
    """Progress on stderr (warnings only if `quiet`) and, with `path`, everything in a log file."""
    handlers: list[logging.Handler] = []
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
        handlers[-1].setLevel(logging.WARNING if quiet else logging.INFO)
    if path is not None:
        handlers.append(logging.FileHandler(path))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        handlers=handlers or [logging.NullHandler()],
        force=True,
    )
