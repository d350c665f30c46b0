"""Fully developed turbulent channel flow with a RANS closure, against the Lee & Moser DNS.

A plane channel of half-height 1, periodic in x, wall-resolved (first node at y+ < 1). The bulk
velocity is 1 and nu = 1 / (Re_tau Ub+) with Ub+ the DNS bulk velocity in wall units, so that
the DNS and the RANS solution share the bulk Reynolds number; the uniform pressure gradient that
drives the flow is an unknown of the solve, and the friction Reynolds number it reaches measures
the closure's skin friction. The profile U+(y+) is compared with the DNS for y+ > 5.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import tomllib
from pathlib import Path

import numpy as np

from cases.errors import CaseError

log = logging.getLogger(__name__)

MODELS = ("one-equation", "k-omega")
DNS_FILES = {180: "LM_Channel_0180_mean_prof.dat", 550: "LM_Channel_0550_mean_prof.dat"}
DEFAULTS = Path(__file__).with_name("channel_rans.toml")
HALF_HEIGHT = 1.0


@dataclasses.dataclass(frozen=True)
class ChannelRansConfig:
    """One channel solve. Validated on construction, before any work."""

    re_tau: int
    model: str = "k-omega"
    nx: int = 2
    length: float = 0.2
    ny: int = 160
    wall_ratio: float = 40.0
    max_iterations: int = 400
    tolerance: float = 1e-6
    relaxation: float = 0.7
    dt: float = 0.05
    dt_growth: float = 1.3
    dns: str = "../shared/reference/channel_dns"

    def __post_init__(self):
        from meshes.errors import MeshError
        from solvers.errors import SolverError

        if self.re_tau not in DNS_FILES:
            raise CaseError(f"Re_tau must be one of {sorted(DNS_FILES)} (the Lee-Moser DNS at hand), got {self.re_tau}")
        if self.model not in MODELS:
            raise CaseError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if not self.length > 0:
            raise CaseError(f"channel length must be positive, got {self.length}")
        try:
            self.resolution, self.rans_parameters
        except (MeshError, SolverError) as err:
            raise CaseError(str(err)) from None
        if not self.dns_file.is_file():
            raise CaseError(f"DNS profile {self.dns_file} not found (set [reference] dns or --dns)")

    @classmethod
    def from_toml(cls, path: str | Path = DEFAULTS, **overrides) -> "ChannelRansConfig":
        """The file's [mesh], [rans] and [reference] tables, then `overrides` (None = keep)."""
        try:
            with open(path, "rb") as f:
                tables = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise CaseError(f"cannot read {path}: {err}") from None
        values = {}
        for table in ("mesh", "rans", "reference"):
            values.update(tables.get(table, {}))
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CaseError(f"{path}: unknown settings {', '.join(unknown)}")
        return cls(**values)

    @property
    def resolution(self):
        from meshes.periodic_domain import Resolution

        return Resolution(self.nx, self.ny, self.wall_ratio)

    @property
    def rans_parameters(self):
        from solvers.rans import RansParameters

        return RansParameters(self.max_iterations, self.tolerance, self.relaxation, dt=self.dt, dt_growth=self.dt_growth)

    @property
    def dns_file(self) -> Path:
        return Path(self.dns) / DNS_FILES[self.re_tau]


def load_dns(path: Path) -> dict:
    """y/delta, y+ and U+ of a Lee & Moser mean profile (header lines and % comments skipped)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            continue
        if len(values) >= 3:
            rows.append(values[:3])
    if len(rows) < 10:
        raise CaseError(f"{path}: no mean profile (columns y/delta, y+, U+) found")
    y, y_plus, u_plus = np.array(rows).T
    return {
        "y": y,
        "y_plus": y_plus,
        "u_plus": u_plus,
        "re_tau": float(y_plus[-1] / y[-1]),
        "bulk_u_plus": float(np.trapz(u_plus, y) / y[-1]),
    }


@dataclasses.dataclass
class ChannelSolution:
    config: ChannelRansConfig
    domain: object
    rans: object  # solvers.rans.RansSolution
    u_tau: float  # from the wall shear stress of the solution
    dns: dict
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


def solve(config: ChannelRansConfig, comm=None, msh_path: str | Path | None = None) -> ChannelSolution:
    """Mesh, RANS with the configured closure (collective under MPI)."""
    from mpi4py import MPI

    from meshes.shapes import channel
    from solvers.navier_stokes import FlowParameters
    from solvers.rans import MeanFlow, friction_velocity, solve_rans
    from solvers.turbulence import KOmega, OneEquation

    dns = load_dns(config.dns_file)
    nu = 1.0 / (dns["re_tau"] * dns["bulk_u_plus"])
    start = time.perf_counter()
    domain = channel(config.length, 2 * HALF_HEIGHT, config.resolution, comm, msh_path)
    timings = {"mesh": time.perf_counter() - start}
    flow = MeanFlow(domain, FlowParameters(nu=nu, bulk_velocity=1.0))
    d = flow.distance.x.array
    first = domain.comm.allreduce(float(d[d > 1e-12].min()), op=MPI.MIN) * dns["re_tau"]  # y+ with the DNS u_tau
    if first > 1.0:
        log.warning("first node off the wall at y+ = %.2f (DNS u_tau) > 1: too coarse near the wall for a wall-resolved model", first)
    # Start from 1 % of the bulk velocity squared and nu_t = 0.01 (about 30 to 100 nu).
    closure = KOmega(flow, k0=1e-2, omega0=1.0) if config.model == "k-omega" else OneEquation(flow, k0=1e-2)
    log.info("channel Re_tau %d, %s: nu = %.4e, %d cells", config.re_tau, config.model, nu, domain.mesh.topology.index_map(2).size_global)
    rans = solve_rans(flow, closure, config.rans_parameters)
    timings["rans"] = rans.seconds
    log.info("RANS converged in %d iterations, %.1f s", rans.iterations, rans.seconds)
    return ChannelSolution(config, domain, rans, friction_velocity(flow), dns, timings)


def validation(solution: ChannelSolution, fields) -> dict:
    """Re_tau reached, first-node y+ and U+ against the DNS (nodes of the lower half at x = 0)."""
    flow, u_tau, dns = solution.rans.flow, solution.u_tau, solution.dns
    on_line = np.isclose(fields.points[:, 0], 0.0) & (fields.points[:, 1] <= HALF_HEIGHT + 1e-12)
    y = fields.points[on_line, 1]
    order = np.argsort(y)
    y_plus = y[order] * u_tau / flow.nu
    u_plus = fields.point_data["velocity"][on_line, 0][order] / u_tau
    reference = np.interp(y_plus, dns["y_plus"], dns["u_plus"])
    outer = y_plus > 5.0
    errors = np.abs(u_plus[outer] - reference[outer]) / reference[outer]
    worst = int(np.argmax(errors))
    first = float(y_plus[1])
    return {
        "u_tau": u_tau,
        "re_tau_target": dns["re_tau"],
        "re_tau_reached": u_tau / flow.nu,
        "re_tau_error": u_tau / flow.nu / dns["re_tau"] - 1.0,
        "first_node_y_plus": first,
        "u_plus_max_rel_error": float(errors[worst]),
        "u_plus_max_rel_error_at_y_plus": float(y_plus[outer][worst]),
        "profile": {"y_plus": y_plus.tolist(), "u_plus": u_plus.tolist()},
    }


def mesh_fields(solution: ChannelSolution, metadata: dict):
    """velocity, pressure, the closure's fields and the wall distance on the nodes (rank 0)."""
    from solvers.export import to_mesh_fields

    rans = solution.rans
    arrays = {"velocity": rans.flow.velocity, "pressure": rans.pressure, **rans.turbulence, "wall_distance": rans.flow.distance}
    return to_mesh_fields(solution.domain, arrays, metadata)
