"""Closure Challenge scores of a periodic-hill velocity field (reference README section 5).

The metric is the benchmark's: mean over the evaluation points of |U_pred - U_LES| divided by the
mean of |U_LES| (`closure_challenge.eval.evaluate_individual_case`, package version 0.3.1).

- The four test cases: the solution's velocity, interpolated linearly (periodic in x) to the
  benchmark's evaluation points, is written as the benchmark's CSV (`<case>.csv`: one row per
  point in the package's order, columns Ux, Uy, Uz, no header) and that file is scored by the
  package against the ground truth it ships. The test cases' LES data serve for nothing else.
- The 23 shared cases (PHLL29, no official points): the same metric on 1,000 cell centres drawn
  once with a fixed seed, against U_LES at those centres.

Every score is appended as one JSON line to `scores.jsonl` in the output directory (date, case,
score, source), so that every look at a test case stays on record.

`closure_challenge` may be imported only here (file names containing 'score') and in tests.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from cases.errors import CaseError
from meshes.errors import MeshError
from meshes.fields import MeshFields
from meshes.interpolate import interpolate
from meshes.openfoam import read_case

SHARED_POINTS = 1000
SHARED_SEED = 0
LOG_NAME = "scores.jsonl"
LES_VELOCITY = "U_LES"


def scaled_mae(predicted, truth) -> float:
    """mean |U_pred - U_true| / mean |U_true| over the points (rows), the benchmark's metric."""
    predicted, truth = np.asarray(predicted, float), np.asarray(truth, float)
    if predicted.shape != truth.shape:
        raise CaseError(f"predicted velocities have shape {predicted.shape}, the reference {truth.shape}")
    return float(np.mean(np.linalg.norm(predicted - truth, axis=-1)) / np.mean(np.linalg.norm(truth, axis=-1)))


def benchmark_test_cases() -> list[str]:
    """The benchmark's periodic-hill test cases (the package ships their ground truth)."""
    from closure_challenge import case_names

    return [name for name in case_names() if name.startswith("alpha_")]


def write_csv(path, velocity_xy) -> Path:
    """The benchmark's CSV: one row per evaluation point, Ux, Uy, Uz (zero: the flows are 2-D)."""
    velocity_xy = np.asarray(velocity_xy, float)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.c_[velocity_xy, np.zeros(len(velocity_xy))], delimiter=",")
    return path


def score_test_case(solution: MeshFields, case: str, out_dir, source: str = "", velocity: str = "U") -> float:
    """Score `solution[velocity]` on benchmark test case `case`: OUT/<case>.csv, then the package."""
    from closure_challenge import evaluation_points
    from closure_challenge.eval import evaluate_individual_case

    cases = benchmark_test_cases()
    if case not in cases:
        raise CaseError(f"{case!r} is not a Closure Challenge periodic-hill test case; they are {', '.join(cases)}")
    points = np.asarray(evaluation_points(case))[:, :2]
    csv = write_csv(Path(out_dir) / f"{case}.csv", _velocity_at(solution, velocity, points))
    score = float(evaluate_individual_case(case, np.loadtxt(csv, delimiter=",")))
    _record(out_dir, case, score, source, test=True)
    return score


def shared_indices(num_cells: int) -> np.ndarray:
    """The fixed 1,000 cell indices (sorted) at which a shared case is scored."""
    return np.sort(np.random.default_rng(SHARED_SEED).choice(num_cells, SHARED_POINTS, replace=False))


def score_shared_case(solution: MeshFields, case_dir, out_dir=None, source: str = "", velocity: str = "U", against: str = LES_VELOCITY) -> float:
    """Score `solution[velocity]` against U_LES (or another velocity field, `against`: e.g. U, the
    benchmark's own SST) of PHLL29 case `case_dir` at its fixed cell centres."""
    try:
        reference = read_case(case_dir, fields=[against])
    except MeshError as err:
        raise CaseError(str(err)) from None
    chosen = shared_indices(reference.num_nodes)
    predicted = _velocity_at(solution, velocity, reference.points[chosen])
    score = scaled_mae(predicted, reference[against][chosen])
    if out_dir is not None:
        _record(out_dir, reference.metadata["case"], score, source, test=False, against=against)
    return score


def score_solution(solution: MeshFields, case: str, out_dir, phll29_dir=None, source: str = "", velocity: str = "U", against: str = LES_VELOCITY):
    """A test case through the benchmark's points and CSV, any other case against PHLL29_DIR/<case>."""
    if case in benchmark_test_cases():
        if against != LES_VELOCITY:
            raise CaseError(f"{case} is a test case: it is scored against the LES only")
        return score_test_case(solution, case, out_dir, source, velocity)
    return score_shared_case(solution, shared_case_dir(phll29_dir, case), out_dir, source, velocity, against)


def shared_case_dir(phll29_dir, case: str) -> Path:
    """PHLL29_DIR/<case>; CaseError naming what is missing: the directory (a relative default read
    from elsewhere than the project root), or this hill among the shared cases (no LES of it)."""
    if phll29_dir is None:
        raise CaseError(f"{case!r} is not a test case; scoring it needs the PHLL29 directory")
    phll29_dir = Path(phll29_dir)
    if not phll29_dir.is_dir():
        raise CaseError(f"the benchmark's shared cases are not at {phll29_dir} (run from the project root, beside ../shared, or give --phll29)")
    if not (phll29_dir / case).is_dir():
        raise CaseError(f"{case} is neither a test case nor one of the {sum(p.is_dir() for p in phll29_dir.iterdir())} shared cases in {phll29_dir}: there is no LES of that hill to score against")
    return phll29_dir / case


def run_case(solution: MeshFields) -> str:
    """The benchmark name of the hill a vcnn solve ran on (phll-rans: its geometry; hills-rans: the
    standard hill of its alpha)."""
    from meshes.hill_geometry import HillGeometry

    config = solution.metadata.get("config", {})
    if "geometry" in config:
        return HillGeometry.parse(config["geometry"]).name
    if "alpha" in config and solution.metadata.get("case") in ("hills-rans", "couple"):
        return HillGeometry.standard(config["alpha"]).name
    raise CaseError("not a periodic-hill RANS solution (vcnn solve phll-rans or hills-rans): no geometry in its meta.json")


def score_runs(run_dirs, out_dir=None, phll29_dir=None, velocity: str = "velocity", against: str = LES_VELOCITY) -> dict[str, dict]:
    """Score each solved run directory (all read, named and their references found before any
    scoring): {run: {case, score}}; the CSV files and the log go to `out_dir`, or to each run's own
    directory."""
    runs = {}
    for run_dir in run_dirs:
        try:
            solution = MeshFields.read(run_dir)
        except MeshError as err:
            raise CaseError(f"{run_dir}: {err}") from None
        runs[str(run_dir)] = (solution, run_case(solution))
    for _, case in runs.values():
        if case not in benchmark_test_cases():
            shared_case_dir(phll29_dir, case)  # every reference found before any score is written
    return {
        run: {"case": case, "score": score_solution(solution, case, out_dir or run, phll29_dir, run, velocity, against)}
        for run, (solution, case) in runs.items()
    }


def sst_baseline(phll29_dir, out_dir=None) -> dict[str, float]:
    """The benchmark's k-omega SST solution (latest time) scored on every shared case: the baseline."""
    phll29_dir = Path(phll29_dir)
    case_dirs = sorted(path for path in phll29_dir.iterdir() if path.is_dir()) if phll29_dir.is_dir() else []
    if not case_dirs:
        raise CaseError(f"{phll29_dir} holds no PHLL29 cases")
    scores = {}
    for case_dir in case_dirs:
        try:
            sst = read_case(case_dir, fields=["U"])
        except MeshError as err:
            raise CaseError(str(err)) from None
        source = f"benchmark k-omega SST {case_dir}"
        scores[case_dir.name] = score_shared_case(sst, case_dir, out_dir, source=source)
    return scores


def _velocity_at(solution: MeshFields, velocity: str, points: np.ndarray) -> np.ndarray:
    if velocity not in solution.point_data or solution.kind(velocity) != "vector":
        raise CaseError(f"the solution has no velocity vector {velocity!r}; it has {sorted(solution.point_data)}")
    return interpolate(solution, solution[velocity], points)


def _record(out_dir, case: str, score: float, source: str, test: bool, against: str = LES_VELOCITY) -> None:
    """Append one JSON line to OUT/scores.jsonl."""
    from importlib.metadata import version

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entry = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "case": case,
        "test_case": test,
        "score": score,
        "points": "the benchmark's evaluation points" if test else f"{SHARED_POINTS} cell centres, seed {SHARED_SEED}",
        "against": against,
        "package": f"closure-challenge {version('closure-challenge')}",
        "source": source,
    }
    with open(out_dir / LOG_NAME, "a") as log:
        log.write(json.dumps(entry) + "\n")


def sst_comparison(run_dir, phll29_dir) -> dict:
    """One row of the SST table: our SST run of a shared case against the benchmark's OpenFOAM SST
    (the metric with U in place of U_LES) and both against the LES, iterations (ours, with those of
    the start model), first-node y+, reattachment and the end of the recirculation of both (they
    differ where the shear lingers near zero: the benchmark's alpha_05_10071_2024 reattaches at 7.83
    with u_x at most 0.0015 and separates again before the next hill), wall time."""
    from cases.studies.les_targets import benchmark_sst

    try:
        ours = MeshFields.read(run_dir)
    except MeshError as err:
        raise CaseError(f"{run_dir}: {err}") from None
    case = run_case(ours)
    case_dir = Path(phll29_dir) / case
    statistics, validation = ours.metadata.get("statistics", {}), ours.metadata.get("validation", {})
    start = statistics.get("continued_from", {})
    bench = benchmark_sst(case_dir)
    return {
        "case": case,
        "cells": f"{ours.metadata['config']['nx']} x {ours.metadata['config']['ny']}",
        "against_benchmark_sst": score_shared_case(ours, case_dir, velocity="velocity", against="U"),
        "ours_against_les": score_shared_case(ours, case_dir, velocity="velocity"),
        "benchmark_against_les": score_shared_case(bench, case_dir, velocity="velocity"),
        "iterations": statistics.get("rans_iterations"),
        "start_model": {k: start[k] for k in ("model", "geometry", "iterations") if k in start} or None,
        "first_node_y_plus_max": validation.get("first_node_y_plus_max"),
        **{what: {"ours": validation.get(what), "benchmark": bench.metadata["validation"][what]} for what in ("reattachment", "recirculation_end")},
        "wall_s": sum(statistics.get("timings_s", {}).values()),
    }


def sst_table(run_dirs, phll29_dir) -> str:
    """`sst_comparison` of each run as a markdown table (all runs read before any scoring)."""
    rows = [sst_comparison(run, phll29_dir) for run in run_dirs]
    lines = [
        "| case | cells | vs benchmark SST | ours vs LES | benchmark vs LES | iterations (start model) | y+ max | reattachment ours / benchmark | recirculation end ours / benchmark | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        start = r["start_model"] or {}
        started = f"{r['iterations']} ({start['iterations']} {start['model']}{' at ' + start['geometry'][-4:] if start.get('geometry') != r['case'] else ''})" if start else str(r["iterations"])
        reattachment, end = (" / ".join("-" if v is None else f"{v:.2f}" for v in r[what].values()) for what in ("reattachment", "recirculation_end"))
        lines.append(
            f"| {r['case']} | {r['cells']} | {r['against_benchmark_sst']:.4f} | {r['ours_against_les']:.4f} | {r['benchmark_against_les']:.4f} | "
            f"{started} | {r['first_node_y_plus_max']:.2f} | {reattachment} | {end} | {r['wall_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"
