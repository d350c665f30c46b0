"""Versions and git commit recorded next to every run's outputs."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path


def provenance() -> dict:
    versions = {"python": platform.python_version()}
    for package in ("vcnn", "numpy", "scipy", "meshio", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    try:
        import dolfinx
        import gmsh
        from petsc4py import PETSc

        versions.update(
            dolfinx=dolfinx.__version__, gmsh=gmsh.__version__, petsc=".".join(map(str, PETSc.Sys.getVersion()))
        )
    except ImportError:
        pass
    return {"versions": versions, "git_commit": _git_commit()}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
