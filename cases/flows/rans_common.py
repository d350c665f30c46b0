"""What the RANS cases (channel, periodic hill) share: the turbulence model and Picard settings of
their configurations, read from a case file; the solved case and its node fields."""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from pathlib import Path

from cases.errors import CaseError, build_parts

log = logging.getLogger(__name__)

RANS_ARRAYS = ("velocity", "pressure", "strain_rate", "wall_distance", "nu_t", "k")
"""The point arrays of every RANS case, whatever the turbulence model (which adds omega or epsilon)."""
CLOSURE_TARGETS = ("log_nu_t_ratio", "nu_t_ratio")
"""What closure networks may learn from a RANS case (`vcnn.closure.INVERSES`), derived on loading."""

@dataclasses.dataclass(frozen=True, kw_only=True)
class RansSettings:
    """The closure and the Picard loop of a RANS case (keyword-only: each case's own come first)."""

    model: str = "k-omega"
    max_iterations: int = 400
    tolerance: float = 1e-6
    relaxation: float = 0.7
    dt: float = 0.05
    dt_growth: float = 1.3
    dt_max: float = 1e6  # the pseudo-time step grows no further (with momentum_pseudo_time, 1 took SST from rest to convergence on hills where it diverged)
    newton_rtol: float = 1e-3  # momentum Newton per Picard iteration: residual reduction asked for
    newton_keep_factors: float = 0.1  # the momentum's LU kept across steps while each cuts the residual this much (0: refactorised every step)
    anderson: int = 0  # > 0: Anderson acceleration of nu_t over that many iterations (networks; a PDE model's stall in a cycle)
    anderson_shrink: float = 0.8  # the mixing's damping times this at each of its restarts (1: kept)
    rescue: int = 20  # a relaxed solve that settles into a cycle: a network's mixes nu_t over this many iterations, a PDE model's cuts its pseudo-time step to a third (0: neither)
    newton_krylov: float = 0.0  # > 0: Newton-Krylov steps while the relative nu_t residual is below this (network closures)
    momentum_pseudo_time: bool = False  # each momentum solve one pseudo-time step of the loop's dt
    tables = ("mesh", "rans")  # the case file's tables that set fields
    parts = ("rans_parameters",)  # properties built on construction: their errors become CaseErrors

    def __post_init__(self):
        from solvers.errors import SolverError
        from solvers.models import check_model

        try:
            check_model(self.model)
        except SolverError as err:
            raise CaseError(str(err)) from None
        build_parts(self)

    @property
    def rans_parameters(self):
        from solvers.rans import RansParameters

        return RansParameters(
            self.max_iterations, self.tolerance, self.relaxation, dt=self.dt, dt_growth=self.dt_growth, dt_max=self.dt_max, anderson=self.anderson,
            anderson_shrink=self.anderson_shrink, momentum_pseudo_time=self.momentum_pseudo_time, newton_krylov=self.newton_krylov,
            rescue=self.rescue,
        )

    @classmethod
    def from_toml(cls, path: str | Path, **overrides):
        """The file's tables (`tables`), then `overrides` (None = keep the file's value)."""
        try:
            with open(path, "rb") as f:
                document = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise CaseError(f"cannot read {path}: {err}") from None
        values = {}
        for table in cls.tables:
            values.update(document.get(table, {}))
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise CaseError(f"{path}: unknown settings {', '.join(unknown)}")
        try:
            return cls(**values)
        except TypeError as err:  # a required value missing from both the file and the flags
            raise CaseError(f"{path}: {err}") from None


@dataclasses.dataclass
class RansCaseSolution:
    config: RansSettings
    domain: object
    rans: object  # solvers.rans.RansSolution
    timings: dict
    continued_from: dict | None = None  # the solve this one started from, if any (`phll_rans`)

    def statistics(self) -> dict:
        return {
            "rans_iterations": self.rans.iterations,
            "history": self.rans.history,
            "forcing": self.rans.forcing,
            "bulk_velocity": self.rans.bulk_velocity,
            "timings_s": self.timings,
            **({"continued_from": self.continued_from} if self.continued_from else {}),
            "mesh": {
                "nodes": self.domain.mesh.geometry.index_map().size_global,
                "cells": self.domain.mesh.topology.index_map(2).size_global,
            },
        }

    title = "RANS"  # figure titles

    def validation(self, fields) -> dict:
        """The numbers that judge the solve against its reference data (rank 0)."""
        return {}

    def figures(self, result: dict, fields, stage) -> None:
        """The case's own figures beside the convergence history (rank 0)."""

    def mesh_fields(self, metadata: dict):
        """What a closure reads (velocity, |S|, wall distance, nu_t), the pressure and the closure's
        other fields on the nodes (rank 0): a solved case is a training sample for a closure."""
        from solvers.export import to_mesh_fields

        rans = self.rans
        arrays = {**rans.flow.arrays(), "pressure": rans.pressure, **rans.turbulence}
        return to_mesh_fields(self.domain, arrays, {**rans.flow.metadata(), **metadata})


def solve_case(config: RansSettings, flow, timings: dict, make_closure=None, parameters=None) -> RansCaseSolution:
    """The Picard loop of a case from its mean flow (collective), with the configured PDE closure
    or `make_closure(flow, pde)` (e.g. a network, which may blend in the PDE closure `pde`, or the
    PDE closure started from another solution), from the same start; `parameters` (RansParameters)
    in place of the configuration's."""
    from solvers.rans import solve_rans

    from solvers.models import turbulence_model

    domain = flow.domain
    pde = turbulence_model(flow, config.model)
    name = config.model if make_closure is None else "custom closure"
    log.info("%s: nu = %.4e, %d cells", name, flow.nu, domain.mesh.topology.index_map(2).size_global)
    closure = pde if make_closure is None else make_closure(flow, pde)
    rans = solve_rans(flow, closure, parameters or config.rans_parameters)
    timings["rans"] = rans.seconds
    log.info("RANS converged in %d iterations, %.1f s", rans.iterations, rans.seconds)
    return RansCaseSolution(config, domain, rans, timings)


def first_node_distance(flow) -> float:
    """The smallest wall distance of a node off the wall (over all ranks)."""
    from mpi4py import MPI

    d = flow.distance.x.array
    return flow.domain.comm.allreduce(float(d[d > 1e-12].min()) if (d > 1e-12).any() else float("inf"), op=MPI.MIN)


def mesh_fields(solution: RansCaseSolution, metadata: dict, stage):
    """The solved case on the mesh nodes (collective; MeshFields on rank 0)."""
    return solution.mesh_fields(metadata)


def record(solution: RansCaseSolution, fields, stage, figures: bool) -> dict:
    """Validation numbers into meta.json, the case's figures and the convergence history (rank 0);
    the summary of the solve."""
    result = solution.validation(fields)
    if figures:
        from cases.reports.figures import rans_history_png

        solution.figures(result, fields, stage)
        rans_history_png(solution.rans.history, stage / "convergence.png", solution.title)
    fields.metadata["validation"] = result
    return {"iterations": solution.rans.iterations, **{k: v for k, v in result.items() if k not in ("profile", "crossings")}}


def add_settings_arguments(parser, default: str) -> None:
    """The options every RANS flow takes: the turbulence model, the Anderson mixing and the case file."""
    parser.add_argument("--model", help=f"turbulence model: one-equation, k-omega, k-epsilon or k-omega-sst (default: the model of {default})")
    parser.add_argument("--anderson", type=int, metavar="M",
                        help="Anderson mixing of nu_t over M iterations, for a solve that stalls in a cycle (default from the case file: 0, off)")
    parser.add_argument("--config", type=Path, default=None, help=f"case file (default {default})")


def settings_values(args) -> dict:
    """The configuration values of `add_settings_arguments`' options (None: the case file's)."""
    return dict(config=args.config, model=args.model, anderson=args.anderson)


def cells(resolution: str | None) -> tuple[int | None, int | None]:
    """(nx, ny) of an NXxNY option, (None, None) for the case file's."""
    if resolution is None:
        return None, None
    from meshes.periodic_domain import Resolution

    parsed = Resolution.parse(resolution)
    return parsed.nx, parsed.ny
