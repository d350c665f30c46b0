"""Output directories that are either complete or absent.

A run writes into a hidden staging directory next to its target and renames it into place at
the end, so an interrupted or failed run leaves neither a half-written directory nor a damaged
previous run behind. Under MPI, rank 0 does the file operations and the others wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cases.errors import CaseError

log = logging.getLogger("vcnn")


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
    existing = nearest_existing(out)
    if not existing.is_dir():
        raise CaseError(f"output path {out} exists and is not a directory" if existing == out else f"cannot make {out}: {existing} is a file")
    return out


def nearest_existing(path: Path) -> Path:
    """`path`, or the nearest folder above it that exists."""
    return next(p for p in (path, *path.absolute().parents) if p.exists())


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
def run_lock(out: str | Path):
    """Hold `out` for this run: a second run into the same place is refused with one line that
    names the first, and what killed runs left there (`.partial` files and folders) is removed.

    The lock is an advisory `flock` on `.NAME.lock` beside `out`, so the kernel releases it when
    the holder dies, even by SIGKILL; no stale lock survives a killed run. Missing folders above
    `out` are made here."""
    out = Path(out)
    path = out.with_name(f".{out.name}.lock")
    while True:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")
        except OSError as err:
            raise CaseError(f"cannot write {out}: {err.strerror} ({err.filename})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise CaseError(f"{out} is being written by another run ({holder}): wait for it to end, or choose another --out") from None
        if _same_file(handle, path):  # not unlinked by a holder that just finished
            break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, {' '.join(['vcnn', *sys.argv[1:]])[:200]}, since {time.strftime('%H:%M:%S')}")
    handle.flush()
    try:
        remove_stale(out)
        yield out
    finally:
        path.unlink(missing_ok=True)
        handle.close()


def _same_file(handle, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def remove_stale(out: Path) -> None:
    """Remove what runs killed before they could clean up left of `out` (its staging folders
    beside it, half-written files in it); only called by the holder of `out`'s lock."""
    stale = [*out.parent.glob(f".{out.name}.partial-*"), *out.parent.glob(f".{out.name}.old-*")]
    if out.is_dir():
        stale += list(out.rglob(".*partial*"))
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if stale:
        log.warning("%s: removed %d unfinished output(s) of an interrupted run", out, len(stale))


@contextlib.contextmanager
def staged_output(out: str | Path, overwrite: bool, comm=None):
    """Yield a staging directory; on success it replaces `out`, on failure it is removed. `out`
    is locked meanwhile (`run_lock`, held by rank 0 under MPI), and checked (`check_output`) once held."""
    out = check_output_directory(out)
    rank = 0 if comm is None else comm.rank
    with contextlib.ExitStack() as held:
        refused = None
        if rank == 0:
            try:
                held.enter_context(run_lock(out))
                check_output(out, overwrite)  # now that `out` is ours: a run may have ended since the callers' check
            except CaseError as err:
                refused = str(err)
        if comm is not None:
            refused = comm.bcast(refused, root=0)
        if refused:
            raise CaseError(refused)
        with _staged(out, rank, comm) as stage:
            yield stage


@contextlib.contextmanager
def _staged(out: Path, rank: int, comm):
    stage = None
    if rank == 0:
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
