"""Output directories that are either complete or absent.

A run writes into a hidden staging directory next to its target and renames it into place at
the end, so an interrupted or failed run leaves neither a half-written directory nor a damaged
previous run behind. Under MPI, rank 0 does the file operations and the others wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from cases.errors import CaseError


def check_output(out: str | Path, overwrite: bool) -> Path:
    """Refuse a directory that holds anything (a previous run) unless `overwrite`."""
    out = check_output_directory(out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CaseError(f"output directory {out} already holds a previous run (use --overwrite to replace it)")
    return out


def check_output_directory(out: str | Path) -> Path:
    """Refuse, before any work, a directory that could not be made at the end: a file in its place
    or in place of a folder above it. Missing folders are made when the results are written."""
    out = Path(out)
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise CaseError(f"output path {out} exists and is not a directory" if existing == out else f"cannot make {out}: {existing} is a file")
    return out


def check_output_file(path: str | Path) -> Path:
    """Refuse, before any work, a file that could not be written at the end: its folder missing
    or not writable, or a directory in its place."""
    path = Path(path)
    if path.is_dir():
        raise CaseError(f"{path} is a directory, not a file to write")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise CaseError(f"cannot write {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CaseError(f"cannot write {path}: the directory {folder} is not writable")
    return path


@contextlib.contextmanager
def staged_output(out: str | Path, overwrite: bool, comm=None):
    """Yield a staging directory; on success it replaces `out`, on failure it is removed."""
    out = check_output(out, overwrite)
    rank = 0 if comm is None else comm.rank
    stage = None
    if rank == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
        stage.chmod(0o755)
    if comm is not None:
        stage = comm.bcast(stage, root=0)
    try:
        yield stage
        if comm is not None:
            comm.barrier()
    except BaseException:
        if rank == 0:
            shutil.rmtree(stage, ignore_errors=True)
        raise
    if rank == 0:
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{stage.name.rsplit('-', 1)[-1]}")
            out.rename(old)
        stage.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    if comm is not None:
        comm.barrier()


def write_json(path: Path, data) -> None:
    """Write JSON to a temporary name, then rename: never a half-written file."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def cached_json(path: Path, compute):
    """The JSON at `path`, computed and written first if missing (a resumed run reuses each finished step)."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, value)
    return value
