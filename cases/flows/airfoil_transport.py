"""The frame case: laminar flow around a NACA 4-digit airfoil at an angle of attack, and the same
scalar transport as the hills case.

mesh (gmsh, far field at `radius` chords) -> steady Navier-Stokes (uniform inflow along +x,
no slip on the airfoil, do-nothing outflow, Reynolds continuation) -> wall distance to the
airfoil and mixing length -> nonlinear transport with c = 0 on the airfoil and at the inflow
-> MeshFields. Chord 1, free-stream speed 1.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from cases.errors import CaseError
from cases.flows.families import Family
from cases.flows.transport_common import ARRAYS, TransportSolution, TransportCoefficients, mesh_fields, record  # noqa: F401
from meshes.errors import MeshError

log = logging.getLogger(__name__)

NAME = "airfoil-transport"
HELP = "NACA airfoil at an angle of attack: Navier-Stokes + the same scalar transport"

FIGURE_WINDOW = ((-1.0, 5.0), (-1.5, 1.5))
"""What the figures show: the airfoil and its near wake, in chords."""


@dataclasses.dataclass(frozen=True)
class AirfoilTransportConfig(TransportCoefficients):
    """Everything that defines one solve. Validated on construction, before any work."""

    angle_of_attack: float
    code: str = "0012"
    reynolds: float = 100.0  # chord and free-stream speed: nu = 0.01 as in the hills case
    radius: float = 10.0
    wall_size: float = 0.01
    far_size: float = 0.5
    continuation: int = 3
    parts = ("geometry", "flow_parameters", "transport_parameters")

    @property
    def geometry(self):
        from meshes.airfoil import AirfoilGeometry

        return AirfoilGeometry(self.code, self.angle_of_attack, self.radius, self.wall_size, self.far_size)

    @property
    def flow_parameters(self):
        from solvers.external_flow import ExternalFlowParameters

        return ExternalFlowParameters(self.reynolds, continuation=self.continuation, max_iterations=self.max_newton)


class AirfoilSolution(TransportSolution):
    window = FIGURE_WINDOW

    def flow_statistics(self) -> list:
        return [s.as_dict() for s in self.flow.stats]  # one Newton solve per Reynolds step


def solve(config: AirfoilTransportConfig, comm=None, msh_path: str | Path | None = None) -> AirfoilSolution:
    """Mesh, flow, wall distance and transport at one angle of attack (collective under MPI)."""
    import numpy as np
    from dolfinx import fem

    from meshes.airfoil import AIRFOIL_TAGS, airfoil_domain
    from solvers.external_flow import solve_external_flow
    from solvers.transport import solve_transport
    from solvers.wall_distance import mixing_length, wall_distance

    timings = {}
    start = time.perf_counter()
    domain = airfoil_domain(config.geometry, comm, msh_path)
    timings["mesh"] = time.perf_counter() - start
    log.info("mesh: %d cells, NACA %s at %g degrees", domain.mesh.topology.index_map(2).size_global, config.code, config.angle_of_attack)

    tags = domain.facet_tags
    flow = solve_external_flow(domain.mesh, tags, [AIRFOIL_TAGS["inflow"]], [AIRFOIL_TAGS["airfoil"]], config.flow_parameters)
    timings["navier_stokes"] = flow.seconds
    log.info("flow: %s Newton iterations over the Reynolds steps", [s.iterations for s in flow.stats])

    start = time.perf_counter()
    distance = wall_distance(domain, fem.FunctionSpace(domain.mesh, ("Lagrange", config.transport_degree)), walls=("airfoil",))
    lm = mixing_length(distance, config.kappa, config.mixing_length_cap)
    timings["wall_distance"] = time.perf_counter() - start

    zero = np.concatenate([tags.find(AIRFOIL_TAGS["airfoil"]), tags.find(AIRFOIL_TAGS["inflow"])])
    transport = solve_transport(domain, flow.velocity, lm, config.transport_parameters, zero_facets=zero)
    timings["transport"] = transport.seconds
    log.info("transport: %d Newton iterations", transport.stats.iterations)
    return AirfoilSolution(config, domain, flow, transport, distance, lm, timings)


def _check_angle(value: float) -> None:
    from meshes.airfoil import AirfoilGeometry

    try:
        AirfoilGeometry(angle_of_attack=value)
    except MeshError as err:
        raise CaseError(str(err)) from None


AIRFOIL = Family(NAME, "aoa", "angle_of_attack", "AoA", " deg", _check_angle, resolution=False, arrays=ARRAYS, window=FIGURE_WINDOW)
FAMILIES = (AIRFOIL,)


def add_arguments(parser) -> None:
    parser.add_argument("--aoa", type=float, required=True, help="angle of attack in degrees (airfoil turned nose-up)")
    parser.add_argument("--code", default="0012", help="NACA 4-digit code (default 0012)")
    parser.add_argument("--reynolds", type=float, default=100.0, help="chord Reynolds number (default 100)")
    parser.add_argument("--radius", type=float, default=10.0, help="far-field radius in chords (default 10)")
    parser.add_argument("--wall-size", type=float, default=0.01, help="cell size on the airfoil in chords (default 0.01)")
    parser.add_argument("--far-size", type=float, default=0.5, help="cell size at the far field in chords (default 0.5)")


def values(args) -> dict:
    """The configuration values of the command-line options."""
    return dict(angle_of_attack=args.aoa, code=args.code, reynolds=args.reynolds, radius=args.radius, wall_size=args.wall_size, far_size=args.far_size)


configure = AirfoilTransportConfig
