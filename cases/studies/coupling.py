"""`vcnn couple`: a trained closure network in place of the turbulence-model PDEs of a RANS solve,
and the comparison with the PDE model it learned from.

The coupled solve starts where the PDE model's does (nu_t = 0.01, the same mesh and Picard
settings), calls the network at every Picard iteration through `solvers.rans.NodeClosure`, and is
compared with the PDE-model solution of the same case: relative L2 difference of the velocity
and of nu_t, separation and reattachment, velocity and nu_t profiles at x/H = 0.5 ... 8. The
PDE-model solution is solved first in the same process (so that the wall times compare on the
same machine and load), or read from `--reference` (a `vcnn solve hills-rans` directory).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from cases.errors import CaseError
from cases.flows import FAMILIES
from cases.flows.hills_rans import bubbles
from cases.flows.run import run_metadata, setup_logging
from cases.rundir import staged_output
from meshes.hill_profile import hill_length

log = logging.getLogger("vcnn")

STATIONS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
"""x/H from the hill crest of the compared profiles."""


def rank_device(device: str) -> str:
    """Where this rank evaluates the network (each rank on its own nodes, `solvers.rans.NodeClosure`):
    "cuda" without an index means rank mod the GPUs there are; on the CPU, torch's threads are
    limited to this rank's share of the node's cores first (`share_cores`)."""
    import torch
    from mpi4py import MPI

    if device == "cpu":
        share_cores()
    if device != "cuda":
        return device
    count = torch.cuda.device_count()
    return f"cuda:{MPI.COMM_WORLD.rank % count}" if count > 1 else device


def cores_per_rank(cores: int, visible: int, ranks_here: int) -> int:
    """The node's cores over the ranks on it, at most the cores this rank may run on, at least one."""
    return max(1, min(visible, cores // ranks_here))


def share_cores() -> int:
    """Under mpirun, set torch's threads to this rank's share of the node's cores, and return them.
    Under Open MPI torch starts one thread a rank whatever the node holds (measured: torch 2.13 on
    2 cores, `mpirun -n 1` and `-n 2`, bound or not), so that on a node of many cores the ranks'
    network calls leave most of them idle; ranks that mpirun did not bind (`--bind-to none`) all
    see every core, hence the division. OMP_NUM_THREADS, when set, is the user's word and is kept;
    outside mpirun torch's own choice is. Collective."""
    import os

    import torch
    from mpi4py import MPI

    node = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED)
    ranks_here = node.size
    node.Free()
    launched = MPI.COMM_WORLD.size > 1 or "OMPI_COMM_WORLD_SIZE" in os.environ
    if launched and "OMP_NUM_THREADS" not in os.environ:
        cores = os.cpu_count() or 1
        visible = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores  # Linux: the cores mpirun bound us to
        torch.set_num_threads(cores_per_rank(cores, visible, ranks_here))
    return torch.get_num_threads()


def load_closure(checkpoint: Path, device: str = "cpu", precision: str = "mixed", smoothing: float | None = None,
                 patience: int | None = None):
    """(NeuralClosure, checkpoint dict) for a closure checkpoint, the network in `precision`
    ("mixed": float32 until the flow settles, then float64, `vcnn.closure.SETTLED`), its clip at 0
    rounded over `smoothing` until then (after `patience` calls without progress; 0: from the start;
    None: `vcnn.closure.SMOOTHING`, `PATIENCE`); CaseError otherwise."""
    from vcnn.closure import PATIENCE, SMOOTHING, NeuralClosure

    smoothing = SMOOTHING if smoothing is None else smoothing
    patience = PATIENCE if patience is None else patience
    closure = NeuralClosure(checkpoint, device=rank_device(device), dtype=precision, smoothing=smoothing, patience=patience)
    kind = FAMILIES.get(closure.state.get("family"))
    if kind is None or kind.model is None:
        raise CaseError(f"checkpoint {checkpoint} was not trained on RANS solutions (family {closure.state.get('family')!r})")
    return closure, closure.state


def make_closure(network, blend: int):
    """`make_closure(flow, pde)` for `cases.flows.rans_common.solve_case`: the network, with the PDE model
    blended in over the first `blend` iterations if blend > 0."""
    from solvers.rans import BlendedClosure, NodeClosure

    def build(flow, pde):
        neural = NodeClosure(network)
        return BlendedClosure(pde, neural, blend) if blend > 0 else neural

    return build


def own_frame(fields, degrees: float):
    """A solution of a problem turned by `degrees`, turned back (points, vectors, periods)."""
    from vcnn.symmetry import moved, planar_rotation

    return moved(fields, planar_rotation(-degrees)) if degrees else fields


def compare(pde_fields, coupled_fields, pde_separation: dict, coupled_separation: dict) -> dict:
    """How far the coupled solution lies from the PDE model's: velocity and nu_t (relative L2),
    separation, reattachment and the end of the recirculation (x/H) of both. Both in the same frame."""
    if pde_fields.num_nodes != coupled_fields.num_nodes or not np.allclose(pde_fields.points, coupled_fields.points):
        raise CaseError("the reference solution is on another mesh (resolution or alpha differ)")
    from vcnn.inference import relative_l2

    differences = relative_l2(pde_fields, {name: coupled_fields[name] for name in ("velocity", "nu_t")})
    result = {f"{name}_rel_l2": value for name, value in differences.items()}
    for key in ("separation", "reattachment", "recirculation_end"):
        a, b = pde_separation.get(key), coupled_separation.get(key)
        result[key] = {"pde": a, "coupled": b, "difference": None if a is None or b is None else b - a}
    return result


def cost(history: list, network_timings: dict, rans_seconds: float, reference_seconds: float | None) -> dict:
    """Where the coupled solve's time went, and its ratio to the PDE-model solve."""
    momentum = sum(h["momentum_s"] for h in history)
    closure = sum(h["closure_s"] for h in history)
    newton = sum(h.get("newton_s", 0.0) for h in history)  # Newton-Krylov steps: their own momentum solves and network calls
    parts = {"momentum": momentum, "clouds": network_timings.get("clouds", 0.0), "network": network_timings.get("network", 0.0)}
    if newton:  # the network's time then includes the steps' calls: the exchange is not what is left of the closure
        parts["newton"] = newton
    else:
        parts["exchange"] = closure - parts["clouds"] - parts["network"]  # node arrays gathered and scattered (or a halo exchanged), |S| projected
    result = {
        "total_s": rans_seconds,
        "network_calls": network_timings.get("calls", 0),
        "float64_calls": network_timings.get("float64_calls", 0),
        "rounded_calls": network_timings.get("rounded_calls", 0),  # with the clip at 0 rounded (vcnn.closure.SMOOTHING)
        "closure_s": closure,
        **{f"{k}_s": v for k, v in parts.items()},
        "shares": {k: v / rans_seconds for k, v in parts.items()},
    }
    if reference_seconds:
        result.update(pde_model_s=reference_seconds, ratio_to_pde_model=rans_seconds / reference_seconds)
    return result


def read_reference(path: Path, alpha: float):
    """A `vcnn solve hills-rans` output at the same alpha: (fields, its validation, RANS seconds)."""
    from meshes.errors import MeshError
    from meshes.fields import MeshFields

    try:
        fields = MeshFields.read(path)
    except MeshError as err:
        raise CaseError(f"reference {path}: {err}") from None
    config = fields.metadata.get("config", {})
    if fields.metadata.get("case") != "hills-rans" or "validation" not in fields.metadata:
        raise CaseError(f"reference {path} is not a vcnn solve hills-rans output")
    if abs(config.get("alpha", np.nan) - alpha) > 1e-9:
        raise CaseError(f"reference {path} is at alpha = {config.get('alpha')}, not {alpha:g}")
    # The bubbles again from the recorded crossings: a reference solved by an older vcnn may lack some.
    validation = {**fields.metadata["validation"], **bubbles(fields.metadata["validation"]["crossings"], hill_length(alpha))}
    return fields, validation, fields.metadata.get("statistics", {}).get("timings_s", {}).get("rans")


def profiles(fields, stations=STATIONS, samples: int = 120) -> dict:
    """u_x and nu_t / nu along vertical lines at the `stations` inside the domain: {x: (y, u, r)}."""
    from matplotlib.tri import LinearTriInterpolator, Triangulation

    points = fields.points
    triangulation = Triangulation(*points.T, fields.triangles())
    u = LinearTriInterpolator(triangulation, fields["velocity"][:, 0])
    ratio = LinearTriInterpolator(triangulation, fields["nu_t"] / fields.metadata["nu"])
    y = np.linspace(points[:, 1].min(), points[:, 1].max(), samples)
    out = {}
    for x0 in stations:
        if x0 >= points[:, 0].max():
            continue
        x = np.full_like(y, x0)
        out[x0] = (y, np.ma.filled(u(x, y), np.nan), np.ma.filled(ratio(x, y), np.nan))
    return out


def prepare(checkpoint: Path, alpha: float, device: str = "cpu", resolution: str | None = None, case_file: Path | None = None,
            reference: Path | None = None, rotate: float = 0.0, precision: str = "mixed", smoothing: float | None = None, patience: int | None = None, **settings):
    """(configuration, network, reference) of a coupled solve, all checked before any work: the
    checkpoint's family gives the PDE model, its dataset the resolution unless given; `settings`
    are Picard settings of the coupled solve (None: the case file's). The reference is the PDE-model
    solution read from `reference`, or without one the PDE model's own configuration (the case
    file's settings, as `vcnn solve hills-rans` takes them), for `couple_into` to solve first."""
    from cases.flows import hills_rans
    from vcnn.closure import FLOAT32_TOLERANCE

    network, state = load_closure(checkpoint, device, precision, smoothing, patience)
    nx, ny = hills_rans.cells(resolution or state.get("resolution"))
    model = FAMILIES[state["family"]].model
    config = hills_rans.configure(case_file, alpha=alpha, model=model, nx=nx, ny=ny, rotate=rotate, **settings)
    if precision == "float32" and config.tolerance < FLOAT32_TOLERANCE:
        raise CaseError(f"a network in float32 throughout cannot converge to a tolerance of {config.tolerance:g}: its rounding leaves the "
                        f"nu_t residual a floor near 5e-8; give a tolerance of {FLOAT32_TOLERANCE:g} or more, or --precision mixed "
                        "(float64 once the flow settles, the default) or float64")
    if reference is None:
        return config, network, hills_rans.configure(case_file, alpha=alpha, model=model, nx=nx, ny=ny)
    return config, network, read_reference(Path(reference), alpha)


@dataclasses.dataclass(frozen=True)
class CoupledRun:
    """Where and how a coupled solve is written."""

    checkpoint: Path
    out: Path
    blend: int = 0  # iterations over which the PDE model hands over to the network
    overwrite: bool = False
    figures: bool = True
    quiet: bool = False


def couple_into(run: CoupledRun, config, network, reference) -> None:
    """The PDE-model solve (when `reference` is its configuration, not its solution: `prepare`), the coupled solve, the comparison, into
    `run.out` (collective under MPI). On a divergence or stall the last finite state and the
    diagnosis are kept there, and CaseError says so."""
    from mpi4py import MPI

    from cases.flows import hills_rans
    from solvers.errors import RansFailure

    comm = MPI.COMM_WORLD
    failure = None
    with staged_output(run.out, run.overwrite, comm) as stage:
        setup_logging(stage / "run.log" if comm.rank == 0 else None, run.quiet, stderr=comm.rank == 0)
        if not isinstance(reference, tuple):
            reference = _pde_reference(reference, comm, stage)
        facts = {"case": "couple", "checkpoint": str(run.checkpoint), "blend": run.blend, "precision": network.precision,
                 "smoothing": network.smoothing, "patience": network.patience}
        try:
            solution = hills_rans.solve(config, comm, stage / "mesh.msh", make_closure(network, run.blend))
        except RansFailure as err:
            failure = err
            _record_failure(err, config, facts, stage, run.figures, comm)
        else:
            _record_solution(solution, facts, network, reference, stage, run, comm)
        logging.shutdown()
    if failure is not None:
        raise CaseError(f"{failure} (last finite state and diagnosis in {run.out})")


def _title(config) -> str:
    return f"alpha = {config.alpha:g}: network in the loop of {config.model}"


def _pde_reference(config, comm, stage: Path):
    """The PDE model solved in the same process (so that wall times compare), kept in stage/pde."""
    from cases.flows import hills_rans

    log.info("solving the PDE model (%s) for comparison", config.model)
    pde = hills_rans.solve(config, comm)
    pde_fields = pde.mesh_fields(run_metadata(hills_rans.NAME, config, pde.statistics(), comm))
    reference = (pde_fields, hills_rans.separation(pde), pde.rans.seconds)
    if comm.rank == 0:
        pde_fields.metadata["validation"] = reference[1]
        pde_fields.write(stage / "pde")
    return reference


def _record_failure(err, config, facts: dict, stage: Path, figures: bool, comm) -> None:
    """The last finite state of a failed solve and its diagnosis (collective)."""
    from cases.reports.figures import rans_history_png
    from solvers.export import to_mesh_fields

    metadata = run_metadata("couple", config, {"rans_iterations": len(err.history), "history": err.history}, comm)
    metadata.update(facts, status="failed", error=str(err), worst_nodes=err.worst, diagnosis=err.diagnosis)
    arrays = err.flow.arrays() if err.change is None else {**err.flow.arrays(), "nu_t_change_last": err.change}  # where it stalled
    fields = to_mesh_fields(err.flow.domain, arrays, {**err.flow.metadata(), **metadata})
    if comm.rank == 0:
        fields.write(stage)
        if err.history and figures:
            rans_history_png(err.history, stage / "convergence.png", _title(config))


def _record_solution(solution, facts: dict, network, reference, stage: Path, run: CoupledRun, comm) -> None:
    """The converged coupled solution, its comparison with the PDE model and its cost (collective)."""
    from cases.flows import hills_rans

    metadata = run_metadata("couple", solution.config, solution.statistics(), comm)
    metadata.update(facts, status="converged")
    fields = solution.mesh_fields(metadata)
    if comm.rank != 0:
        return
    pde_fields, pde_separation, pde_seconds = reference
    result = hills_rans.separation(solution)
    fields.metadata["validation"] = result
    own = own_frame(fields, solution.config.rotate)  # compared and drawn in the PDE model's frame
    fields.metadata["comparison"] = compare(pde_fields, own, pde_separation, result)
    fields.metadata["cost"] = cost(solution.rans.history, network.timings, solution.rans.seconds, pde_seconds)
    fields.write(stage)
    if run.figures:
        _figures(solution, own, pde_fields, pde_separation, stage)
    summary = {"out": str(run.out), "iterations": solution.rans.iterations, **fields.metadata["comparison"], "cost": fields.metadata["cost"]}
    log.info("done: %s", json.dumps(summary))


def _figures(solution, own, pde_fields, pde_separation: dict, stage: Path) -> None:
    from cases.reports.figures import closure_profiles_png, comparison_png, rans_history_png, streamlines_png, wall_shear_png

    title = _title(solution.config)
    rans_history_png(solution.rans.history, stage / "convergence.png", title)
    streamlines_png(own, stage / "streamlines.png", title)
    marks = {k: (pde_separation[k],) * 2 for k in ("separation", "reattachment") if pde_separation[k] is not None}
    wall_shear_png(solution.wall["x"], solution.wall["shear"], marks, stage / "wall_shear.png", title, "PDE model")
    closure_profiles_png({"PDE model": profiles(pde_fields), "network in the loop": profiles(own)}, stage / "profiles.png", title)
    comparison_png(pde_fields, "nu_t", own["nu_t"], stage / "nu_t.png", f"{title}: nu_t, PDE model / network / difference")
