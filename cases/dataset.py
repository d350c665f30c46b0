"""Datasets: a family of solved cases in one directory, with a manifest.

    DIR/manifest.json          family, per-case parameters, mesh sizes, solver statistics, versions
    DIR/cases/alpha_1.0500/    one `vcnn solve` output (fields.vtu, meta.json, mesh, log);
                               the prefix is the family's parameter (alpha, aoa)

A sweep runs the missing cases as `vcnn solve` subprocesses, several at a time. Each case
directory appears only when complete (staged output), so a killed sweep resumes by skipping the
cases already there, and re-running a finished sweep recomputes nothing.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from cases.errors import CaseError
from cases.families import HILLS, Family, family
from cases.provenance import provenance
from cases.rundir import write_json

MANIFEST = "manifest.json"


def is_complete(directory: Path) -> bool:
    return (directory / "fields.vtu").is_file() and (directory / "meta.json").is_file()


def sweep(
    out: Path, values: list[float], resolution: str | None = None, jobs: int = 1, progress: bool = True, kind: Family = HILLS
) -> dict:
    """Solve every missing case of family `kind` (`jobs` at a time) and (re)write the manifest."""
    from meshes.periodic_domain import Resolution

    out = Path(out)
    if resolution is not None:
        if not kind.resolution:
            raise CaseError(f"{kind.name} cases take no resolution")
        Resolution.parse(resolution)  # MeshError on a malformed resolution, before any work
    manifest = _read_manifest(out)
    if manifest and manifest.get("family") != kind.name:
        raise CaseError(f"{out} holds a dataset of family {manifest.get('family')!r}, not {kind.name!r}")
    if manifest and manifest.get("resolution") != resolution:
        raise CaseError(f"{out} was made with resolution {manifest.get('resolution')}, not {resolution}")
    if jobs < 1:
        raise CaseError(f"jobs must be at least 1, got {jobs}")
    (out / "cases").mkdir(parents=True, exist_ok=True)
    todo = [v for v in values if not is_complete(out / "cases" / kind.case_name(v))]
    env = dict(os.environ, OMP_NUM_THREADS="1") if jobs > 1 else None
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_solve, kind, out / "cases" / kind.case_name(v), v, resolution, env): v for v in todo}
        bar = tqdm(total=len(values), initial=len(values) - len(todo), desc="cases", disable=not progress, unit="case")
        for future in concurrent.futures.as_completed(futures):
            error = future.result()
            if error:
                failures.append(f"{kind.describe(futures[future])}: {error}")
            bar.update()
            _write_manifest(out, resolution, kind)
        bar.close()
    manifest = _write_manifest(out, resolution, kind)
    if failures:
        raise CaseError(f"{len(failures)} case(s) failed; rerun to retry: " + "; ".join(failures))
    return manifest


def _solve(kind: Family, directory: Path, value: float, resolution: str | None, env) -> str | None:
    """Run one case; return its one-line error, or None."""
    cmd = [sys.executable, "-m", "cases.cli", "solve", *kind.command, f"--{kind.parameter}", repr(value), "--out", str(directory)]
    cmd += ["--no-figures", "-q"] + (["--resolution", resolution] if resolution else [])
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit code {result.returncode}"
    return None


def _read_manifest(out: Path) -> dict:
    path = out / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise CaseError(f"unreadable manifest {path}: {err}") from None


def _write_manifest(out: Path, resolution: str | None, kind: Family) -> dict:
    """The manifest lists every complete case found on disk (written atomically)."""
    entries = []
    for directory in sorted((out / "cases").iterdir()):
        if not (directory.is_dir() and is_complete(directory)):
            continue
        meta = json.loads((directory / "meta.json").read_text())["metadata"]
        statistics = meta.get("statistics", {})
        entries.append(
            {
                "name": directory.name,
                "path": f"cases/{directory.name}",
                kind.parameter: meta["config"][kind.config_key],
                "mesh": statistics.get("mesh"),
                "newton_iterations": {k: _iterations(statistics[k]) for k in ("navier_stokes", "transport") if k in statistics},
                **{k: statistics[k] for k in ("rans_iterations",) if k in statistics},
                "timings_s": statistics.get("timings_s"),
            }
        )
    manifest = {"family": kind.name, "resolution": resolution, "cases": entries, **provenance()}
    write_json(out / MANIFEST, manifest)
    return manifest


def _iterations(statistics: dict | list):
    """Newton iterations of one solve, or of each solve of a continuation (a list of them)."""
    return [s["iterations"] for s in statistics] if isinstance(statistics, list) else statistics["iterations"]


def load_manifest(directory: Path, expected: str | None = None) -> tuple[dict, Family]:
    """The manifest of a dataset and its family, checked to be `expected` if given."""
    manifest = _read_manifest(Path(directory))
    if not manifest:
        raise CaseError(f"{directory} is not a dataset (no {MANIFEST})")
    if expected is not None and manifest.get("family") != expected:
        raise CaseError(f"dataset {directory} is of family {manifest.get('family')!r}, expected {expected!r}")
    return manifest, family(manifest.get("family"))


def case_values(manifest: dict, kind: Family) -> list[float]:
    """The parameter values of a manifest's cases."""
    return [c[kind.parameter] for c in manifest["cases"]]
