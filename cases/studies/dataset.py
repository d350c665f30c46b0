"""Datasets: a family of solved cases in one directory, with a manifest (`cases.manifest`).

A sweep runs the missing cases as worker subprocesses (`cases.worker`), several at a time.
Each case directory appears only when complete (staged output), so a killed sweep resumes by
skipping the cases already there, and re-running a finished sweep recomputes nothing.
"""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

from tqdm import tqdm

from cases.errors import CaseError
from cases.flows.families import Family
from cases.flows.hills_transport import HILLS
from cases.study import Study
from cases.manifest import MANIFEST, case_values, is_complete, load_manifest, read_manifest
from cases.provenance import provenance
from cases.rundir import run_lock, write_json
from cases.worker import pool


def sweep(
    out: Path, values: list[float], resolution: str | None = None, jobs: int = 1, progress: bool = True, kind: Family = HILLS,
    force: bool = False,
) -> dict:
    """Solve every missing case of family `kind` (`jobs` at a time) and (re)write the manifest;
    refused before any work when the cases would not fit in the memory or on the disk (`force`
    lifts that), or while another sweep writes `out`."""
    from cases.flows import flow
    from cases.limits import check_disk, check_solve
    from meshes.periodic_domain import Resolution

    out = Path(out)
    cells = None
    if resolution is not None:
        if not kind.resolution:
            raise CaseError(f"{kind.name} cases take no resolution")
        parsed = Resolution.parse(resolution)  # MeshError on a malformed resolution, before any work
        cells = (parsed.nx, parsed.ny)
    manifest = read_manifest(out)
    if manifest and manifest.get("family") != kind.name:
        raise CaseError(f"{out} holds a dataset of family {manifest.get('family')!r}, not {kind.name!r}")
    if manifest and manifest.get("resolution") != resolution:
        raise CaseError(f"{out} was made with resolution {manifest.get('resolution')}, not {resolution}")
    if jobs < 1:
        raise CaseError(f"jobs must be at least 1, got {jobs}")
    if not values:
        raise CaseError(f"no {kind.parameter} values given")
    solver = flow(kind.flow)
    largest = solver.configure(**kind.case_values(kind.largest(values), cells))  # the longest hill has the most cells
    check_solve(solver, largest, force, copies=min(jobs, len(values)))
    with run_lock(out):
        todo = [v for v in values if not is_complete(out / "cases" / kind.case_name(v))]
        if hasattr(largest, "resolution"):
            check_disk(out, len(todo), largest.resolution.nx * largest.resolution.ny, force)
        return _solve_missing(out, values, todo, cells, resolution, jobs, progress, kind)


def _solve_missing(out: Path, values, todo, cells, resolution, jobs: int, progress: bool, kind: Family) -> dict:
    (out / "cases").mkdir(parents=True, exist_ok=True)
    failures = []
    with pool(jobs) as submit:
        pending = {v: {"solve": {"flow": kind.flow, "values": kind.case_values(v, cells), "out": str(out / "cases" / kind.case_name(v))}} for v in todo}
        futures = {submit(job): v for v, job in pending.items()}
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
                **kind.manifest_entry(meta),
                "timings_s": statistics.get("timings_s"),
            }
        )
    manifest = {"family": kind.name, "resolution": resolution, "cases": entries, **provenance()}
    write_json(out / MANIFEST, manifest)
    return manifest


def _iterations(statistics: dict | list):
    """Newton iterations of one solve, or of each solve of a continuation (a list of them)."""
    return [s["iterations"] for s in statistics] if isinstance(statistics, list) else statistics["iterations"]


def ensure_dataset(study: Study, values, progress: bool = True) -> dict:
    """Solve what is missing of the study's dataset (resumable) and return the manifest."""
    return sweep(study.dataset, sorted(set(values)), study.resolution, study.jobs, progress, study.family)


def load_cases(directory: Path, values):
    """The Cases of a dataset for the given parameter values (CaseError if some are missing)."""
    from vcnn.data import load_case

    manifest, kind = load_manifest(directory)
    have = {round(v, 6) for v in case_values(manifest, kind)}
    missing = [v for v in values if round(v, 6) not in have]
    if missing:
        raise CaseError(f"dataset {directory} lacks {kind.parameter} = {', '.join(f'{v:g}' for v in missing)}")
    cases = [load_case(Path(directory) / "cases" / kind.case_name(v)) for v in values]
    if kind.derived:
        from vcnn.closure import closure_targets

        for case in cases:
            for name, values in closure_targets(case.fields).items():
                case.fields[name] = values
    return cases
