"""What a command may ask of this machine, checked before any work (issue 19): the memory that a
solve's cells imply, the cases that a dataset's range expands to, the disk they fill. Each refusal
is one line that says what was asked and what the limit is; `--force` lifts it for a user who
knows better. The costs per cell are measured peaks (docs/errors.md), so the estimates are
upper bounds for the machine they were measured on and good to a factor of about two elsewhere."""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil

from cases.errors import CaseError
from cases.rundir import nearest_existing

PROCESS_BYTES = 400e6
"""A solve's peak memory before its mesh (Python, FEniCSx, PETSc, gmsh): 356 MB measured at 5,000 cells."""
DISK_PER_CELL = 300.0
"""Bytes a solved case keeps per cell (fields.vtu, mesh.h5, mesh.msh: 248 measured), figures aside."""
MAX_CASES = 1000
"""Cases one dataset command may add: more is a typo in a range (1:2:1e-9) more often than a plan."""
FORCE = "use --force to run it anyway"


def available_memory() -> int:
    """Bytes of memory free for a new process now (the kernel's MemAvailable)."""
    return int(psutil.virtual_memory().available)


def check_solve(flow, config, force: bool, copies: int = 1) -> None:
    """Refuse a solve (or `copies` solves at once) whose cells would need more memory than is free.
    A flow without a cell count (`config.resolution`) or cost (`flow.MEMORY_PER_CELL`) is not limited."""
    per_cell = getattr(flow, "MEMORY_PER_CELL", None)
    resolution = getattr(config, "resolution", None)
    if force or per_cell is None or resolution is None:
        return
    cells = resolution.nx * resolution.ny
    need = copies * (PROCESS_BYTES + per_cell * cells)
    free = available_memory()
    if need > free:
        many = f"{copies} solves at once of " if copies > 1 else "a solve of "
        raise CaseError(f"{many}{resolution.nx} x {resolution.ny} = {cells:,} cells would need about {_size(need)} of memory, "
                        f"and this machine has {_size(free)} free ({_size(per_cell)} per cell measured for {flow.NAME}); {FORCE}")


def check_count(what: str, count: int, force: bool, limit: int = MAX_CASES) -> None:
    """Refuse more than `limit` cases (counted before they are listed)."""
    if count > limit and not force:
        raise CaseError(f"{what} asks for {count:,} cases; the limit is {limit:,} at a time; {FORCE}")


def check_disk(where: Path, cases: int, cells: int, force: bool) -> None:
    """Refuse `cases` solves of about `cells` cells each into `where` when the disk has not room for them."""
    folder = nearest_existing(Path(where).absolute())
    need, free = cases * DISK_PER_CELL * cells, shutil.disk_usage(folder).free
    if need > free and not force:
        raise CaseError(f"{cases:,} cases of {cells:,} cells would need about {_size(need)} of disk in {folder}, and {_size(free)} is free; {FORCE}")


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"
