"""What the RANS cases (channel, periodic hill) share: the closure and Picard settings of their
configurations, read from a case file; the closure by name; the solved case and its node fields."""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from pathlib import Path

from cases.errors import CaseError, build_parts

log = logging.getLogger(__name__)

MODELS = ("one-equation", "k-omega", "k-epsilon", "k-omega-sst")
K0, OMEGA0 = 1e-2, 1.0
EPS0 = 0.09 * K0 * OMEGA0
"""Initial k, omega and epsilon = beta* k omega in units of the bulk velocity and length: nu_t = 0.01
at the start."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RansSettings:
    """The closure and the Picard loop of a RANS case (keyword-only: each case's own come first)."""

    model: str = "k-omega"
    max_iterations: int = 400
    tolerance: float = 1e-6
    relaxation: float = 0.7
    dt: float = 0.05
    dt_growth: float = 1.3
    newton_rtol: float = 1e-3  # momentum Newton per Picard iteration: residual reduction asked for
    anderson: int = 0  # > 0: Anderson acceleration of nu_t over that many iterations (network closures)
    tables = ("mesh", "rans")  # the case file's tables that set fields
    parts = ("rans_parameters",)  # properties built on construction: their errors become CaseErrors

    def __post_init__(self):
        if self.model not in MODELS:
            raise CaseError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        build_parts(self)

    @property
    def rans_parameters(self):
        from solvers.rans import RansParameters

        return RansParameters(self.max_iterations, self.tolerance, self.relaxation, dt=self.dt, dt_growth=self.dt_growth, anderson=self.anderson)

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


def closure(flow, model: str):
    """The named PDE closure on `flow`, started from K0 and OMEGA0 or EPS0, and flow.nu_t set
    to K0 / OMEGA0 = 0.01 for the first momentum solve (a laminar start is hard at Re_H = 5600)."""
    from solvers.turbulence import KEpsilon, KOmega, OneEquation

    flow.nu_t.x.array[:] = K0 / OMEGA0
    if model == "k-epsilon":
        return KEpsilon(flow, k0=K0, eps0=EPS0)
    if model == "k-omega-sst":
        from solvers.k_omega_sst import KOmegaSST

        return KOmegaSST(flow, k0=K0, omega0=OMEGA0)
    return KOmega(flow, k0=K0, omega0=OMEGA0) if model == "k-omega" else OneEquation(flow, k0=K0)


@dataclasses.dataclass
class RansCaseSolution:
    config: RansSettings
    domain: object
    rans: object  # solvers.rans.RansSolution
    timings: dict

    def statistics(self) -> dict:
        return {
            "rans_iterations": self.rans.iterations,
            "history": self.rans.history,
            "forcing": self.rans.forcing,
            "bulk_velocity": self.rans.bulk_velocity,
            "timings_s": self.timings,
            "mesh": {
                "nodes": self.domain.mesh.geometry.index_map().size_global,
                "cells": self.domain.mesh.topology.index_map(2).size_global,
            },
        }

    def mesh_fields(self, metadata: dict):
        """What a closure reads (velocity, |S|, wall distance, nu_t), the pressure and the closure's
        other fields on the nodes (rank 0): a solved case is a training sample for a closure."""
        from solvers.export import to_mesh_fields

        rans = self.rans
        arrays = {**rans.flow.arrays(), "pressure": rans.pressure, **rans.turbulence}
        return to_mesh_fields(self.domain, arrays, {**rans.flow.metadata(), **metadata})


def solve_case(config: RansSettings, flow, timings: dict, make_closure=None) -> RansCaseSolution:
    """The Picard loop of a case from its mean flow (collective), with the configured PDE closure
    or `make_closure(flow, pde)` (e.g. a network, which may blend in the PDE closure `pde`), from
    the same start."""
    from solvers.rans import solve_rans

    domain = flow.domain
    pde = closure(flow, config.model)
    name = config.model if make_closure is None else "custom closure"
    log.info("%s: nu = %.4e, %d cells", name, flow.nu, domain.mesh.topology.index_map(2).size_global)
    rans = solve_rans(flow, pde if make_closure is None else make_closure(flow, pde), config.rans_parameters)
    timings["rans"] = rans.seconds
    log.info("RANS converged in %d iterations, %.1f s", rans.iterations, rans.seconds)
    return RansCaseSolution(config, domain, rans, timings)


def first_node_distance(flow) -> float:
    """The smallest wall distance of a node off the wall (over all ranks)."""
    from mpi4py import MPI

    d = flow.distance.x.array
    return flow.domain.comm.allreduce(float(d[d > 1e-12].min()) if (d > 1e-12).any() else float("inf"), op=MPI.MIN)
