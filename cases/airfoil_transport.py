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

from cases.scalar_transport import CaseSolution, TransportCoefficients

log = logging.getLogger(__name__)

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


class AirfoilSolution(CaseSolution):
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
