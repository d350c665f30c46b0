"""Turbulent flow over the periodic hills at Re_H = 5600 with a RANS closure.

nu = 1 / Re_H with unit hill height; the body force is found so that the volume-averaged
streamwise velocity is 0.72 (reference README section 4). The mesh is wall-resolved (first node
at y+ near 1). The separation and reattachment points on the lower wall (sign changes of the
wall shear stress) are compared with the DNS of Xiao et al. (2020).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np

from cases.errors import CaseError
from cases.flows.families import Family
from cases.flows.rans_common import (  # noqa: F401  (mesh_fields, record: this flow's steps)
    CLOSURE_TARGETS, RANS_ARRAYS, RansCaseSolution, RansSettings, add_settings_arguments, cells, mesh_fields, record, settings_values, solve_case,
)

log = logging.getLogger(__name__)

NAME = "hills-rans"
HELP = "periodic hill at Re_H = 5600 (RANS, wall-resolved): separation and reattachment"
MEMORY_PER_CELL = 45e3
"""Bytes of peak memory per cell (`cases.limits`): k-omega at alpha 1, 0.31 GB at 64 x 64 cells, 0.82 GB at 128 x 128."""
DEFAULTS = Path(__file__).parents[1] / "hills_rans.toml"
ALPHAS = (0.5, 3.0)
DNS = {  # x/H from the crest, reference README section 4 (ranges as published)
    0.5: {"reattachment": (6.3, 6.3)},
    1.0: {"separation": (0.16, 0.21), "reattachment": (4.66, 4.68)},
    1.5: {"separation": (0.45, 0.45), "reattachment": (4.1, 4.2)},
}


@dataclasses.dataclass(frozen=True)
class HillsRansConfig(RansSettings):
    """One periodic-hill RANS solve. Validated on construction, before any work."""

    alpha: float
    reynolds: float = 5600.0
    bulk_velocity: float = 0.72
    nx: int | None = None  # default: the spacing of ny cells per 9 hill heights at alpha = 1
    ny: int = 96
    wall_ratio: float = 100.0
    rotate: float = 0.0  # degrees: the whole problem (mesh, periodic direction, forcing) turned
    parts = ("resolution", "rans_parameters")

    def __post_init__(self):
        if not (ALPHAS[0] <= self.alpha <= ALPHAS[1]):
            raise CaseError(f"alpha must be in [{ALPHAS[0]:g}, {ALPHAS[1]:g}] for hills-rans, got {self.alpha:g}")
        if not math.isfinite(self.rotate):
            raise CaseError(f"rotation must be a finite angle in degrees, got {self.rotate}")
        if not (math.isfinite(self.reynolds) and self.reynolds > 0):
            raise CaseError(f"Reynolds number must be positive, got {self.reynolds:g}")
        if self.nx is None:
            object.__setattr__(self, "nx", int(math.ceil(self.ny * self.hill.length / 9.0)))
        super().__post_init__()

    @property
    def hill(self):
        """The geometry: the standard hill of slope alpha."""
        from meshes.hill_geometry import HillGeometry

        return HillGeometry.standard(self.alpha)

    @property
    def resolution(self):
        from meshes.periodic_domain import Resolution

        return Resolution(self.nx, self.ny, self.wall_ratio)


@dataclasses.dataclass
class HillsRansSolution(RansCaseSolution):
    wall: dict = dataclasses.field(default_factory=dict)  # x, wall shear and y+ along the lower wall

    @property
    def title(self) -> str:
        return f"periodic hill alpha = {self.config.alpha:g}, Re_H = {self.config.reynolds:g}, {self.config.model}"

    def validation(self, fields) -> dict:
        return separation(self)

    def figures(self, result: dict, fields, stage) -> None:
        from cases.reports.figures import streamlines_png, wall_shear_png

        streamlines_png(fields, stage / "streamlines.png", self.title)
        wall_shear_png(self.wall["x"], self.wall["shear"], result["dns"] or {}, stage / "wall_shear.png", self.title)


def solve(config: HillsRansConfig, comm=None, msh_path: str | Path | None = None, make_closure=None, parameters=None) -> HillsRansSolution:
    """Mesh, RANS with the configured closure (or `make_closure(flow, pde)`; `parameters` in place of
    the configuration's Picard settings), the lower wall's shear (collective under MPI)."""
    from meshes.shapes import hill_domain
    from solvers.navier_stokes import FlowParameters
    from solvers.rans import MeanFlow, lower_wall_shear

    start = time.perf_counter()
    domain = hill_domain(config.hill, config.resolution, comm, msh_path)
    if config.rotate:
        domain = domain.turned(config.rotate)
    timings = {"mesh": time.perf_counter() - start}
    params = FlowParameters(nu=1.0 / config.reynolds, bulk_velocity=config.bulk_velocity, rtol=config.newton_rtol, keep_factors=config.newton_keep_factors)
    flow = MeanFlow(domain, params)
    log.info("periodic hill %s, Re_H %g", config.hill.name, config.reynolds)
    solution = solve_case(config, flow, timings, make_closure, parameters)
    x, shear, height = lower_wall_shear(flow)
    y_plus = np.sqrt(np.abs(shear)) * height / flow.nu
    if y_plus.max() > 1.0:
        log.warning("first node off the lower wall at y+ up to %.2f > 1: too coarse near the wall for a wall-resolved model", y_plus.max())
    return HillsRansSolution(**vars(solution), wall={"x": x, "shear": shear, "y_plus": y_plus})


def separation(solution: HillsRansSolution) -> dict:
    """The main recirculation bubble on the lower wall: the longest stretch of negative wall shear
    (periodic, so it may start before the crest), from its separation (shear + to -) to its
    reattachment (- to +), and the end of the recirculation region, x/H from the crest; every
    crossing; the DNS values where published."""
    return {
        **wall_crossings(solution.wall["x"], solution.wall["shear"], solution.domain.length),
        "first_node_y_plus_max": float(solution.wall["y_plus"].max()),
        "dns": DNS.get(float(solution.config.alpha)) if solution.config.hill.is_standard else None,
    }


def wall_crossings(x: np.ndarray, shear: np.ndarray, length: float) -> dict:
    """The sign changes of a periodic wall's shear, (x, "separation" or "reattachment") sorted by
    x, and the bubbles they make (`bubbles`)."""
    x, shear = np.r_[x, x[0] + length], np.r_[shear, shear[0]]  # close the period
    crossings = []
    for i in np.flatnonzero(np.sign(shear[:-1]) != np.sign(shear[1:])):
        t = shear[i] / (shear[i] - shear[i + 1])
        crossings.append((float((x[i] + t * (x[i + 1] - x[i])) % length), "separation" if shear[i] > 0 else "reattachment"))
    crossings.sort()
    return {**bubbles(crossings, length), "crossings": crossings}


def bubbles(crossings: list, length: float) -> dict:
    """Separation and reattachment of the longest bubble; the end of the recirculation region: the
    last reattachment downstream of that one before the crest. Where the shear lingers near zero,
    a sign change of 1e-5 cuts the bubble in two and the longest bubble's end jumps; the region's
    end does not."""
    found = []
    for i, (position, kind) in enumerate(crossings):
        if kind == "separation":
            end = next((p for p, k in crossings[i + 1 :] + crossings[: i + 1] if k == "reattachment"), None)
            if end is not None:
                found.append(((end - position) % length, position, end))
    if not found:
        return {"separation": None, "reattachment": None, "recirculation_end": None}
    _, start, end = max(found)
    region_end = max(p for p, k in crossings if k == "reattachment" and p >= end)  # none inside the bubble
    return {"separation": start, "reattachment": end, "recirculation_end": region_end}


def _check_alpha(value: float) -> None:
    if not ALPHAS[0] <= value <= ALPHAS[1]:
        raise CaseError(f"alpha must be in [{ALPHAS[0]:g}, {ALPHAS[1]:g}] for hills-rans, got {value:g}")


HILLS_RANS = Family(
    NAME, "alpha", "alpha", "alpha", "", _check_alpha, resolution=True,
    arrays=RANS_ARRAYS + ("omega",), derived=CLOSURE_TARGETS, model="k-omega",
)
HILLS_RANS_ONE_EQUATION = Family(
    "hills-rans-one-equation", "alpha", "alpha", "alpha", "", _check_alpha, resolution=True,
    arrays=RANS_ARRAYS, derived=CLOSURE_TARGETS, solve=NAME, model="one-equation",
)
FAMILIES = (HILLS_RANS, HILLS_RANS_ONE_EQUATION)


def add_arguments(parser) -> None:
    parser.add_argument("--alpha", type=float, required=True, help="hill slope parameter in [0.5, 3]")
    add_settings_arguments(parser, "cases/hills_rans.toml")
    parser.add_argument("--resolution", default=None, help="cells NXxNY (default from the case file)")
    parser.add_argument("--wall-ratio", type=float, help="centre-to-wall cell height ratio (default from the case file)")
    parser.add_argument("--reynolds", type=float, help="Re_H (default 5600)")


def values(args) -> dict:
    """The configuration values of the command-line options (None: the case file's)."""
    nx, ny = cells(args.resolution)
    return dict(**settings_values(args), alpha=args.alpha, reynolds=args.reynolds, nx=nx, ny=ny, wall_ratio=args.wall_ratio)


def configure(config=None, **values) -> HillsRansConfig:
    """The case file (default `DEFAULTS`), then `values` (None: keep the file's)."""
    return HillsRansConfig.from_toml(config or DEFAULTS, **values)
