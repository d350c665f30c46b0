"""Datasets: a family of solved cases in one directory, with a manifest.

    DIR/manifest.json          family, per-case parameters, mesh sizes, solver statistics, versions
    DIR/cases/alpha_1.0500/    one `vcnn solve` output (fields.vtu, meta.json, mesh, log)

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

import numpy as np
from tqdm import tqdm

from cases.errors import CaseError
from cases.rundir import write_json
from cases.provenance import provenance
from meshes import hill_profile

MANIFEST = "manifest.json"
FAMILY = "hills-transport"
ARRAYS = ("velocity", "pressure", "concentration", "strain_rate", "wall_distance", "mixing_length")
"""The point arrays of every case of the family (what `vcnn solve hills-transport` writes)."""
VECTOR_ARRAYS = ("velocity",)


def parse_alphas(specs: list[str]) -> list[float]:
    """'1.0:2.0:0.05' (inclusive range) and '0.5,2.5' lists -> sorted unique alphas."""
    alphas: list[float] = []
    for spec in specs:
        for part in spec.split(","):
            part = part.strip()
            try:
                if ":" in part:
                    start, stop, step = (float(v) for v in part.split(":"))
                    if step <= 0:
                        raise ValueError
                    count = int(np.floor((stop - start) / step + 1e-9)) + 1
                    alphas.extend(start + step * np.arange(count))
                elif part:
                    alphas.append(float(part))
            except ValueError:
                raise CaseError(f"alphas must look like 1.0:2.0:0.05 or 0.5,2.5, got {part!r}") from None
    if not alphas:
        raise CaseError("no alphas given")
    alphas = sorted({round(float(a), 6) for a in alphas})
    for a in alphas:
        try:
            hill_profile.check_alpha(a)
        except ValueError as err:
            raise CaseError(str(err)) from None
    return alphas


def case_name(alpha: float) -> str:
    return f"alpha_{alpha:.4f}"


def is_complete(directory: Path) -> bool:
    return (directory / "fields.vtu").is_file() and (directory / "meta.json").is_file()


def sweep(out: Path, alphas: list[float], resolution: str | None = None, jobs: int = 1, progress: bool = True) -> dict:
    """Solve every missing case (`jobs` at a time) and (re)write the manifest."""
    from meshes.periodic_domain import Resolution

    out = Path(out)
    if resolution is not None:
        Resolution.parse(resolution)  # MeshError on a malformed resolution, before any work
    manifest = _read_manifest(out)
    if manifest and manifest.get("family") != FAMILY:
        raise CaseError(f"{out} holds a dataset of family {manifest.get('family')!r}, not {FAMILY!r}")
    if manifest and manifest.get("resolution") != resolution:
        raise CaseError(f"{out} was made with resolution {manifest.get('resolution')}, not {resolution}")
    if jobs < 1:
        raise CaseError(f"jobs must be at least 1, got {jobs}")
    (out / "cases").mkdir(parents=True, exist_ok=True)
    todo = [a for a in alphas if not is_complete(out / "cases" / case_name(a))]
    env = dict(os.environ, OMP_NUM_THREADS="1") if jobs > 1 else None
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_solve, out / "cases" / case_name(a), a, resolution, env): a for a in todo}
        bar = tqdm(total=len(alphas), initial=len(alphas) - len(todo), desc="cases", disable=not progress, unit="case")
        for future in concurrent.futures.as_completed(futures):
            error = future.result()
            if error:
                failures.append(f"alpha = {futures[future]:g}: {error}")
            bar.update()
            _write_manifest(out, resolution)
        bar.close()
    manifest = _write_manifest(out, resolution)
    if failures:
        raise CaseError(f"{len(failures)} case(s) failed; rerun to retry: " + "; ".join(failures))
    return manifest


def _solve(directory: Path, alpha: float, resolution: str | None, env) -> str | None:
    """Run one case; return its one-line error, or None."""
    cmd = [sys.executable, "-m", "cases.cli", "solve", FAMILY, "--alpha", repr(alpha), "--out", str(directory)]
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


def _write_manifest(out: Path, resolution: str | None) -> dict:
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
                "alpha": meta["config"]["alpha"],
                "mesh": statistics.get("mesh"),
                "newton_iterations": {k: statistics[k]["iterations"] for k in ("navier_stokes", "transport") if k in statistics},
                "timings_s": statistics.get("timings_s"),
            }
        )
    manifest = {"family": FAMILY, "resolution": resolution, "cases": entries, **provenance()}
    write_json(out / MANIFEST, manifest)
    return manifest


def load_manifest(directory: Path, family: str = FAMILY) -> dict:
    """The manifest of a dataset, checked to be of `family`."""
    manifest = _read_manifest(Path(directory))
    if not manifest:
        raise CaseError(f"{directory} is not a dataset (no {MANIFEST})")
    if manifest.get("family") != family:
        raise CaseError(f"dataset {directory} is of family {manifest.get('family')!r}, expected {family!r}")
    return manifest
