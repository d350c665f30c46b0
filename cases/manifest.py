"""The manifest of a dataset directory (DIR/manifest.json): its family, resolution and cases.

    DIR/manifest.json          family, per-case parameters, mesh sizes, solver statistics, versions
    DIR/cases/alpha_1.0500/    one solved case (fields.vtu, meta.json, mesh, log); the prefix is
                               the family's parameter (alpha, aoa)
"""

from __future__ import annotations

import json
from pathlib import Path

from cases.errors import CaseError
from cases.flows import family
from cases.flows.families import Family


MANIFEST = "manifest.json"


def is_complete(directory: Path) -> bool:
    return (directory / "fields.vtu").is_file() and (directory / "meta.json").is_file()


def read_manifest(out: Path) -> dict:
    path = out / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise CaseError(f"unreadable manifest {path}: {err}") from None


def load_manifest(directory: Path, expected: str | None = None) -> tuple[dict, Family]:
    """The manifest of a dataset and its family, checked to be `expected` if given."""
    manifest = read_manifest(Path(directory))
    if not manifest:
        raise CaseError(f"{directory} is not a dataset (no {MANIFEST})")
    if expected is not None and manifest.get("family") != expected:
        raise CaseError(f"dataset {directory} is of family {manifest.get('family')!r}, expected {expected!r}")
    return manifest, family(manifest.get("family"))


def case_values(manifest: dict, kind: Family) -> list[float]:
    """The parameter values of a manifest's cases."""
    return [c[kind.parameter] for c in manifest["cases"]]
