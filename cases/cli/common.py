"""What several commands share: the output options, the process's rank."""

from __future__ import annotations

import os
from pathlib import Path


def output_options(parser, figures: bool = True, force: bool = True) -> None:
    """--out, --no-figures, --overwrite, --force and -q of the commands that write one run directory."""
    parser.add_argument("--out", type=Path, required=True, help="output directory (must be empty or new; missing folders above it are made)")
    if figures:
        parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    if force:
        parser.add_argument("--force", action="store_true", help="run even when the mesh would need more memory than is free (docs/errors.md)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")


def progress_option(parser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def rank() -> int:
    """This process's rank under torchrun or mpirun (0 otherwise)."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    try:
        from mpi4py import MPI
    except ImportError:
        return 0
    return MPI.COMM_WORLD.rank
