"""The LES-trained closure in the Picard loop on any benchmark hill, started from our SST solution
of that hill, and its Closure Challenge score (`cases.studies.phll_closure`, `vcnn couple
--geometry`).

The coupled solve runs on the SST run's mesh from its velocity, body force and nu_t, in one of two
ways (`reads_once`): a network of nu_t trained on the LES flow replaces the SST equations from the
first iteration, nu_t Anderson-mixed (`[coupling] anderson`); a network that also predicts the
remaining stress, or was trained on the SST flow, is evaluated once on the SST solution and its
outputs frozen in the momentum equations (the propagation test's solve).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from cases.errors import CaseError
from cases.studies.les_targets import solve_frozen

log = logging.getLogger("vcnn")


@dataclasses.dataclass(frozen=True)
class PhllCoupling:
    """The Picard settings of the coupled solves ([coupling] of the study)."""

    anderson: int = 20
    tolerance: float = 1e-6
    max_iterations: int = 200
    relaxation: float = 0.7
    newton_krylov: float = 0.0  # Newton-Krylov steps while the relative nu_t residual is below this (0: never)
    stress_in_loop: bool = False  # a network with a remaining stress read in the loop, not once (stalls: docs/results.md)
    rotate_deg: float = 30.0  # one validation case again, the whole problem turned (0: skip)
    device: str = "cpu"  # where the network runs: cpu, cuda (under mpirun each rank its own GPU) or cuda:N

    @classmethod
    def of(cls, table: dict) -> "PhllCoupling":
        from cases.study import coupling_device

        try:
            options = cls(**table)
        except TypeError as err:
            raise CaseError(f"[coupling]: {err}") from None
        coupling_device(options.device)
        if options.anderson < 0 or options.newton_krylov < 0 or not options.tolerance > 0 or options.max_iterations < 1 or not 0 < options.relaxation <= 1:
            raise CaseError("[coupling]: anderson >= 0, newton_krylov >= 0, tolerance > 0, max_iterations >= 1 and relaxation in (0, 1] are needed")
        return options


def load_phll_closure(checkpoint, device: str = "cpu"):
    """The NeuralClosure of a checkpoint trained by a PHLL closure study; CaseError otherwise."""
    from cases.studies.coupling import rank_device
    from cases.studies.phll_closure import FAMILY
    from vcnn.closure import NeuralClosure

    network = NeuralClosure(checkpoint, device=rank_device(device))
    if network.state.get("family") != FAMILY:
        raise CaseError(f"checkpoint {checkpoint} was not trained on the Closure Challenge hills (family {network.state.get('family')!r}, not {FAMILY!r})")
    return network


def from_sst(sst, network):
    """`make_closure(flow, pde)`: the flow started from the SST run `sst` (same mesh), the network
    as the closure; a network that predicts a remaining stress starts from none."""
    import numpy as np

    from solvers.export import set_node_values
    from solvers.rans import NodeClosure

    def build(flow, pde):
        fields = flow.mesh_fields()
        same = fields is not None and fields.num_nodes == sst.num_nodes and np.allclose(fields.points, sst.points, atol=1e-9)
        if not flow.domain.comm.bcast(same, root=0):
            raise CaseError("the coupled solve's mesh is not the SST run's (another resolution or geometry)")
        set_node_values(flow.domain, sst["nu_t"], flow.nu_t)
        if getattr(network, "stress", False):
            flow.freeze_stress(np.zeros((sst.num_nodes, 2, 2)))
        flow.start_from(sst["velocity"][:, :2], sst.metadata["statistics"]["forcing"])
        return NodeClosure(network, getattr(network, "names", ("nu_t",)))

    return build


def reads_once(network, options: PhllCoupling) -> bool:
    """Whether a network is evaluated once on the SST solution rather than in the Picard loop: when
    it was trained on the SST flow, or when it predicts a remaining stress (read in the loop, the
    explicit stress made the fixed point repel the iteration in up to 18 modes and the solves stall,
    docs/results.md), unless `stress_in_loop`."""
    trained_on_sst = getattr(network, "state", {}).get("inputs") == "sst"
    return trained_on_sst or (getattr(network, "stress", False) and not options.stress_in_loop)


def couple_geometry(network, sst, out: Path, options: PhllCoupling, rotate: float = 0.0, checkpoint: str = ""):
    """The coupled solve of the SST run's hill into `out` (fields.vtu, meta.json with the history,
    the separation and the network's timings): (MeshFields, separation, statistics). A stall or
    divergence raises CaseError after the last state is written."""
    import json

    from mpi4py import MPI

    from cases.flows import phll_rans
    from cases.flows.hills_rans import separation
    from cases.flows.run import run_metadata
    from solvers.errors import RansFailure
    from vcnn.symmetry import moved, planar_rotation

    config = phll_rans.PhllRansConfig(**{
        **sst.metadata["config"], "anderson": options.anderson, "tolerance": options.tolerance,
        "max_iterations": options.max_iterations, "relaxation": options.relaxation, "rotate": rotate,
        "newton_krylov": options.newton_krylov,
        "start_model": "",  # the coupled solve starts from the SST solution itself
    })
    start = moved(sst, planar_rotation(rotate)) if rotate else sst
    comm = MPI.COMM_WORLD
    facts = {"checkpoint": checkpoint, "started_from": "our SST solution", "coupling": dataclasses.asdict(options), "network_read": "once" if reads_once(network, options) else "every iteration"}
    once = facts["network_read"] == "once"
    predicted = network(start) if once else None  # read once: its nu_t (and stress) frozen from the SST state

    try:
        if once:  # straight, else by continuation (`solve_frozen`); a solve that converges directly is not changed
            solution, facts["solved_by"] = solve_frozen(config, start, predicted["nu_t"], predicted.get("stress"), what="the network's values")
        else:
            solution = phll_rans.solve(config, comm, None, from_sst(start, network))
    except RansFailure as err:
        from solvers.export import to_mesh_fields

        metadata = run_metadata("couple", config, {"rans_iterations": len(err.history), "history": err.history}, comm)
        failed = to_mesh_fields(err.flow.domain, err.flow.arrays(), {**err.flow.metadata(), **metadata, **facts, "status": "failed", "error": str(err)})
        if comm.rank == 0:
            failed.write(out)
        raise CaseError(f"{config.geometry}: {err}") from None
    statistics = solution.statistics()
    fields = solution.mesh_fields({**run_metadata("couple", config, statistics, comm), **facts, "status": "converged"})
    bubble = separation(solution)
    if comm.rank == 0:
        fields.metadata["validation"] = bubble
        fields.metadata["network_timings"] = dict(network.timings)
        fields.write(out)
        log.info("%s coupled: %d iterations, %s", config.geometry, solution.rans.iterations, json.dumps({k: bubble[k] for k in ("separation", "reattachment")}))
    return fields, bubble, statistics


def couple_command(checkpoint: Path, geometry: str, out: Path, options: PhllCoupling, *, sst_run: Path | None = None,
                   resolution: str | None = None, rotate: float = 0.0, overwrite: bool = False, quiet: bool = False, force: bool = False):
    """`vcnn couple --geometry NAME`: our SST solution of the hill (solved first into OUT/sst, or
    read from `sst_run`), then the coupled solve from it into OUT. Everything is checked first
    (the memory of the mesh unless `force`)."""
    from mpi4py import MPI

    from cases.flows import phll_rans
    from cases.flows.rans_common import cells
    from cases.flows.run import run_metadata, setup_logging
    from cases.limits import check_solve
    from cases.rundir import check_output, staged_output
    from meshes.errors import MeshError
    from meshes.fields import MeshFields

    network = load_phll_closure(checkpoint, options.device)
    nx, ny = cells(resolution)
    config = phll_rans.configure(geometry=geometry, nx=nx, ny=ny)
    check_solve(phll_rans, config, force)
    sst = None
    if sst_run is not None:
        try:
            sst = MeshFields.read(sst_run)
        except MeshError as err:
            raise CaseError(f"{sst_run}: {err}") from None
        if sst.metadata.get("config", {}).get("geometry") != config.geometry:
            raise CaseError(f"{sst_run} is not a phll-rans solve of {config.geometry}")
    check_output(out, overwrite)
    comm = MPI.COMM_WORLD
    with staged_output(out, overwrite, comm) as stage:
        setup_logging(stage / "run.log" if comm.rank == 0 else None, quiet, stderr=comm.rank == 0)
        if sst is None:
            log.info("solving k-omega SST on %s first: the coupled solve starts from it", config.geometry)
            solution = phll_rans.solve(config, comm)
            sst = solution.mesh_fields(run_metadata(phll_rans.NAME, config, solution.statistics(), comm))
            sst = comm.bcast(sst, root=0)
            if comm.rank == 0:
                sst.write(stage / "sst")
        failure = None
        try:
            couple_geometry(network, sst, stage, options, rotate, str(checkpoint))
        except CaseError as err:  # the last state is kept, and then the error said
            failure = err
        logging.shutdown()
    if failure is not None:
        raise CaseError(f"{failure} (last state in {out})")
