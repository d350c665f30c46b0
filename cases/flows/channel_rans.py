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
from pathlib import Path

import numpy as np

from cases.errors import CaseError
from cases.flows.rans_common import (  # noqa: F401  (mesh_fields, record: this flow's steps)
    RansCaseSolution, RansSettings, add_settings_arguments, first_node_distance, mesh_fields, record, settings_values, solve_case,
)

log = logging.getLogger(__name__)

NAME = "channel-rans"
HELP = "turbulent channel (RANS, wall-resolved) against the Lee-Moser DNS"
MEMORY_PER_CELL = 45e3
"""Bytes of peak memory per cell (`cases.limits`): the RANS solver of the hills (`hills_rans.MEMORY_PER_CELL`)."""
FAMILIES = ()  # one case per DNS: no dataset family

DNS_FILES = {180: "LM_Channel_0180_mean_prof.dat", 550: "LM_Channel_0550_mean_prof.dat"}
DEFAULTS = Path(__file__).parents[1] / "channel_rans.toml"
HALF_HEIGHT = 1.0


@dataclasses.dataclass(frozen=True)
class ChannelRansConfig(RansSettings):
    """One channel solve. Validated on construction, before any work."""

    re_tau: int
    nx: int = 2
    length: float = 0.2
    ny: int = 320
    wall_ratio: float = 40.0
    dns: str = "../shared/reference/channel_dns"
    tables = ("mesh", "rans", "reference")
    parts = ("resolution", "rans_parameters")

    def __post_init__(self):
        if self.re_tau not in DNS_FILES:
            raise CaseError(f"Re_tau must be one of {sorted(DNS_FILES)} (the Lee-Moser DNS at hand), got {self.re_tau}")
        if not self.length > 0:
            raise CaseError(f"channel length must be positive, got {self.length}")
        super().__post_init__()
        if not self.dns_file.is_file():
            raise CaseError(f"DNS profile {self.dns_file} not found (set [reference] dns or --dns)")

    @property
    def resolution(self):
        from meshes.periodic_domain import Resolution

        return Resolution(self.nx, self.ny, self.wall_ratio)

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
    # The files stop short of the centreline (y = 0.992 at Re_tau 180), where dU/dy = 0: the last
    # value holds up to y = 1 in the bulk velocity.
    bulk = np.trapz(u_plus, y) + u_plus[-1] * max(1.0 - y[-1], 0.0)
    return {"y": y, "y_plus": y_plus, "u_plus": u_plus, "re_tau": float(y_plus[-1] / y[-1]), "bulk_u_plus": float(bulk)}


@dataclasses.dataclass
class ChannelSolution(RansCaseSolution):
    u_tau: float = 0.0  # from the wall shear stress of the solution
    dns: dict = dataclasses.field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"channel Re_tau = {self.config.re_tau}, {self.config.model}"

    def validation(self, fields) -> dict:
        return validation(self, fields)

    def figures(self, result: dict, fields, stage) -> None:
        from cases.reports.figures import wall_profiles_png

        profile = (result["profile"]["y_plus"], result["profile"]["u_plus"])
        wall_profiles_png({self.config.model: profile}, (self.dns["y_plus"], self.dns["u_plus"]), stage / "profile.png", self.title)


def solve(config: ChannelRansConfig, comm=None, msh_path: str | Path | None = None) -> ChannelSolution:
    """Mesh, RANS with the configured closure (collective under MPI)."""
    from meshes.shapes import channel
    from solvers.navier_stokes import FlowParameters
    from solvers.rans import MeanFlow, friction_velocity

    dns = load_dns(config.dns_file)
    nu = 1.0 / (dns["re_tau"] * dns["bulk_u_plus"])
    start = time.perf_counter()
    domain = channel(config.length, 2 * HALF_HEIGHT, config.resolution, comm, msh_path)
    timings = {"mesh": time.perf_counter() - start}
    flow = MeanFlow(domain, FlowParameters(nu=nu, bulk_velocity=1.0, rtol=config.newton_rtol, keep_factors=config.newton_keep_factors))
    first = first_node_distance(flow) * dns["re_tau"]  # y+ with the DNS u_tau (half-height 1)
    if first > 1.0:
        log.warning("first node off the wall at y+ = %.2f (DNS u_tau) > 1: too coarse near the wall for a wall-resolved model", first)
    log.info("channel Re_tau %d", config.re_tau)
    solution = solve_case(config, flow, timings)
    return ChannelSolution(**vars(solution), u_tau=friction_velocity(flow), dns=dns)


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
    return {
        "u_tau": u_tau,
        "re_tau_target": dns["re_tau"],
        "re_tau_reached": u_tau / flow.nu,
        "re_tau_error": u_tau / flow.nu / dns["re_tau"] - 1.0,
        "first_node_y_plus": float(y_plus[1]),
        "u_plus_max_rel_error": float(errors[worst]),
        "u_plus_max_rel_error_at_y_plus": float(y_plus[outer][worst]),
        "profile": {"y_plus": y_plus.tolist(), "u_plus": u_plus.tolist()},
    }


def add_arguments(parser) -> None:
    parser.add_argument("--re-tau", type=int, required=True, help="friction Reynolds number of the DNS: 180 or 550")
    add_settings_arguments(parser, "cases/channel_rans.toml")
    parser.add_argument("--ny", type=int, help="cells across the channel (default from the case file)")
    parser.add_argument("--wall-ratio", type=float, help="centre-to-wall cell height ratio (default from the case file)")
    parser.add_argument("--dns", help="directory of the Lee-Moser profiles (default from the case file)")


def values(args) -> dict:
    """The configuration values of the command-line options (None: the case file's)."""
    return dict(**settings_values(args), re_tau=args.re_tau, ny=args.ny, wall_ratio=args.wall_ratio, dns=args.dns)


def configure(config=None, **values) -> ChannelRansConfig:
    """The case file (default `DEFAULTS`), then `values` (None: keep the file's)."""
    return ChannelRansConfig.from_toml(config or DEFAULTS, **values)
