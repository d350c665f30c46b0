"""The laminar scalar-transport case of the VCNN paper on the parameterized periodic hill.

mesh (gmsh) -> Navier-Stokes at the target bulk velocity -> wall distance and mixing length
-> nonlinear transport -> MeshFields (+ optional comparison with the released OpenFOAM data).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from cases.errors import CaseError
from cases.flows.families import Family
from cases.flows.transport_common import ARRAYS, TransportSolution, TransportCoefficients, mesh_fields, record  # noqa: F401
from meshes import hill_profile
from meshes.periodic_domain import Resolution

log = logging.getLogger(__name__)

NAME = "hills-transport"
HELP = "periodic hill: Navier-Stokes + nonlinear scalar transport"
MEMORY_PER_CELL = 45e3
"""Bytes of peak memory per cell (`cases.limits`): 0.92 GB at 200 x 100 cells, 3.62 GB at 400 x 200 (the LU factors grow faster than the cells)."""

REFERENCE_SPACING = 0.045
"""Streamwise cell size of the released OpenFOAM meshes (200 cells over Lx = 9 at alpha = 1)."""


@dataclasses.dataclass(frozen=True)
class HillsTransportConfig(TransportCoefficients):
    """Everything that defines one solve. Validated on construction, before any work."""

    alpha: float
    nx: int | None = None  # default: the reference streamwise spacing, about 200 cells at alpha = 1
    ny: int = 100
    wall_ratio: float = 10.0
    nu: float = 0.01
    bulk_velocity: float = 0.721039
    reference: str | None = None  # a released OpenFOAM solution (.npz) to compare with
    transient: bool = False  # march in time as the released case did (dt 0.1 from c = 0.001 to t = 10)
    parts = ("resolution", "flow_parameters", "transport_parameters")

    def __post_init__(self):
        if self.reference is not None and not Path(self.reference).is_file():
            raise CaseError(f"reference file {self.reference} does not exist")
        try:
            object.__setattr__(self, "alpha", hill_profile.check_alpha(self.alpha))
        except ValueError as err:
            raise CaseError(str(err)) from None
        if self.nx is None:
            object.__setattr__(self, "nx", int(np.ceil(hill_profile.hill_length(self.alpha) / REFERENCE_SPACING)))
        super().__post_init__()

    @property
    def resolution(self) -> Resolution:
        return Resolution(self.nx, self.ny, self.wall_ratio)

    @property
    def flow_parameters(self):
        from solvers.navier_stokes import FlowParameters

        return FlowParameters(nu=self.nu, bulk_velocity=self.bulk_velocity, max_iterations=self.max_newton)


class HillsTransportSolution(TransportSolution):
    def extra_metadata(self) -> dict:
        extra = {"periods": [[self.domain.length, 0.0]]}
        if self.config.reference is not None:
            extra["reference_comparison"] = compare_with_reference(self, self.config.reference)
        return extra

    def flow_statistics(self) -> dict:
        return {**self.flow.stats.as_dict(), "forcing": self.flow.forcing, "bulk_velocity": self.flow.bulk_velocity}

    def statistics(self) -> dict:
        statistics = super().statistics()
        statistics["mesh"].update(nx=self.config.nx, ny=self.config.ny, wall_ratio=self.config.wall_ratio)
        return statistics


def solve(config: HillsTransportConfig, comm=None, msh_path: str | Path | None = None) -> HillsTransportSolution:
    """Mesh, flow, wall distance and transport for one alpha (collective under MPI)."""
    from dolfinx import fem

    from meshes.shapes import periodic_hill
    from solvers.navier_stokes import NavierStokes
    from solvers.transport import TimeStepping, solve_transport
    from solvers.wall_distance import mixing_length, wall_distance

    timings = {}
    start = time.perf_counter()
    domain = periodic_hill(config.alpha, config.resolution, comm, msh_path)
    timings["mesh"] = time.perf_counter() - start
    log.info(
        "mesh: %d cells, alpha = %g, Lx = %.4f",
        domain.mesh.topology.index_map(2).size_global,
        config.alpha,
        domain.length,
    )

    flow = NavierStokes(domain, config.flow_parameters).solve()
    timings["navier_stokes"] = flow.seconds
    log.info(
        "flow: %d Newton iterations, body force %.6g, bulk velocity %.6f",
        flow.stats.iterations,
        flow.forcing,
        flow.bulk_velocity,
    )

    start = time.perf_counter()
    distance = wall_distance(domain, fem.FunctionSpace(domain.mesh, ("Lagrange", config.transport_degree)))
    lm = mixing_length(distance, config.kappa, config.mixing_length_cap)
    timings["wall_distance"] = time.perf_counter() - start

    stepping = TimeStepping() if config.transient else None
    transport = solve_transport(domain, flow.velocity, lm, config.transport_parameters, stepping=stepping)
    timings["transport"] = transport.seconds
    log.info("transport: %d Newton iterations", transport.stats.iterations)
    return HillsTransportSolution(config, domain, flow, transport, distance, lm, timings)


def compare_with_reference(solution: HillsTransportSolution, reference: str | Path) -> dict:
    """Relative L2 differences (cell-volume weighted) to a released OpenFOAM solution.

    The FEniCSx fields are evaluated at the reference cell centres.
    """
    from cases.flows.transport_transient import Reference
    from solvers.probe import evaluate

    ref = Reference.load(reference)
    length = solution.domain.length
    if abs(ref.centres[:, 0].min() + ref.centres[:, 0].max() - length) > 1e-3 * length:
        name = Path(reference).name
        raise CaseError(f"reference {name} is not for alpha = {solution.config.alpha:g} (period differs)")
    u = evaluate(solution.flow.velocity, ref.centres)
    c = evaluate(solution.transport.concentration, ref.centres)
    return {
        "reference": Path(reference).name,
        "points": int(len(ref.centres)),
        "velocity_rel_l2": ref.relative_l2(u, ref.velocity),
        "concentration_rel_l2": ref.relative_l2(c, ref.concentration),
        # Steady balance: mean reaction = mean production - wall flux <= mean production.
        "reference_reaction_over_production": ref.balance(
            ref.concentration, solution.config.reaction, solution.config.reaction_exponent
        ),
    }


def _check_alpha(value: float) -> None:
    try:
        hill_profile.check_alpha(value)
    except ValueError as err:
        raise CaseError(str(err)) from None


HILLS = Family(NAME, "alpha", "alpha", "alpha", "", _check_alpha, resolution=True, arrays=ARRAYS)
FAMILIES = (HILLS,)


def add_arguments(parser) -> None:
    parser.add_argument("--alpha", type=float, required=True, help="hill slope parameter in [0.5, 4]")
    parser.add_argument("--resolution", default=None, help="cells NXxNY (default: ~0.045 streamwise spacing x 100)")
    parser.add_argument("--wall-ratio", type=float, default=10.0, help="centre-to-wall cell height ratio (default 10)")
    parser.add_argument("--degree", type=int, default=2, help="Lagrange degree of the concentration (default 2)")
    parser.add_argument("--max-newton", type=int, default=25, help="Newton iterations before giving up (default 25)")
    parser.add_argument("--reference", type=Path, help="OpenFOAM .npz to compare against (written to meta.json)")
    parser.add_argument(
        "--transient", action="store_true",
        help="c at t = 10 of implicit Euler (dt 0.1) from c = 0.001, as the released case ran",
    )
    parser.add_argument(
        "--reaction-exponent", type=float, default=1.5,
        help="p of the reaction zeta |c|^(p-1) c (default 1.5, the paper's; the released data: 2)",
    )


def values(args) -> dict:
    """The configuration values of the command-line options."""
    nx = ny = None
    if args.resolution is not None:
        parsed = Resolution.parse(args.resolution, args.wall_ratio)
        nx, ny = parsed.nx, parsed.ny
    reference = None if args.reference is None else str(args.reference)
    return dict(
        alpha=args.alpha, nx=nx, ny=ny or 100, wall_ratio=args.wall_ratio, transport_degree=args.degree,
        max_newton=args.max_newton, reference=reference, transient=args.transient,
        reaction_exponent=args.reaction_exponent,
    )


configure = HillsTransportConfig
