"""The FEniCSx JIT cache after an interrupted compile.

FFCx claims a form by creating its C file in the cache and marks the compile done with a
`.c.cached` file beside it; it removes the claim when the compile raises an error, but not when it
is interrupted (Ctrl-C, or SIGTERM turned into the same by `cases.signals`) or killed. Every later
compile of that form then waits for the mark and fails ("JIT compilation timed out, probably due
to a failed previous compile"). A run that is stopped removes the claims it left.
"""

from __future__ import annotations

from pathlib import Path


def remove_unfinished(since: float) -> list[Path]:
    """Remove the C files of the cache that have no `.c.cached` mark and were made at or after
    `since` (seconds since the epoch: the stopped process's start); returns them."""
    from dolfinx.jit import get_parameters

    cache = Path(get_parameters({})["cache_dir"])
    removed = []
    for source in cache.glob("*.c") if cache.is_dir() else ():
        try:
            if not source.with_suffix(".c.cached").exists() and source.stat().st_mtime >= since:
                source.unlink()
                removed.append(source)
        except FileNotFoundError:  # finished or removed meanwhile by another process
            continue
    return removed
