"""What the two transport flows (hills, airfoil) share: the transport coefficients of their
configurations, the solved case with its statistics, its node fields and its figures."""

from __future__ import annotations

import dataclasses

from cases.errors import CaseError, build_parts

ARRAYS = ("velocity", "pressure", "concentration", "strain_rate", "wall_distance", "mixing_length")
"""The point arrays of every transport case (what a solve writes)."""


@dataclasses.dataclass
class TransportSolution:
    """Mesh, flow, wall distance, mixing length and concentration of one solved case."""

    config: object
    domain: object
    flow: object
    transport: object
    wall_distance: object
    mixing_length: object
    timings: dict

    window = None  # what figures show, ((xmin, xmax), (ymin, ymax)); None: everything

    def extra_metadata(self) -> dict:
        """What the flow adds to meta.json (collective): e.g. the period, a reference comparison."""
        return {}

    def flow_statistics(self) -> dict | list:
        return self.flow.stats.as_dict()

    def statistics(self) -> dict:
        """Newton iterations, residual histories, timings and mesh size, for meta.json."""
        return {
            "navier_stokes": self.flow_statistics(),
            "transport": self.transport.stats.as_dict(),
            "timings_s": self.timings,
            "mesh": {
                "nodes": self.domain.mesh.geometry.index_map().size_global,
                "cells": self.domain.mesh.topology.index_map(2).size_global,
            },
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransportCoefficients:
    """The paper's transport coefficients and mixing length, shared by the case configurations
    (keyword-only, so that each case's own parameters come first).

    Validation builds every part named in `parts` (properties that raise MeshError or
    SolverError on bad input) and turns their errors into one-line CaseErrors."""

    parts = ("transport_parameters",)

    diffusivity: float = 0.1
    reaction: float = 3.0
    production: float = 6.3246
    kappa: float = 0.41
    mixing_length_cap: float = 0.135
    transport_degree: int = 2
    max_newton: int = 25
    reaction_exponent: float = 1.5  # the paper's; the released OpenFOAM data were made with 2

    def __post_init__(self):
        build_parts(self)
        if not (self.kappa > 0 and self.mixing_length_cap > 0):
            raise CaseError("kappa and the mixing-length cap must be positive")
        if self.max_newton < 1:
            raise CaseError(f"max_newton must be at least 1, got {self.max_newton}")

    @property
    def transport_parameters(self):
        """The solver's TransportParameters (SolverError on bad coefficients)."""
        from solvers.transport import TransportParameters

        return TransportParameters(
            self.diffusivity, self.reaction, self.production, self.transport_degree,
            max_iterations=self.max_newton, reaction_exponent=self.reaction_exponent,
        )


def mesh_fields(solution: TransportSolution, metadata: dict, stage):
    """The solution on the mesh nodes as MeshFields (rank 0; None elsewhere), the mesh as XDMF in
    `stage` (collective)."""
    from solvers.export import sampled, to_mesh_fields
    from solvers.transport import strain_rate_magnitude

    solution.domain.write_xdmf(stage / "mesh.xdmf")
    metadata.update(solution.extra_metadata())
    arrays = {
        "velocity": solution.flow.velocity,
        "pressure": solution.flow.pressure,
        "concentration": solution.transport.concentration,
        "strain_rate": strain_rate_magnitude(solution.flow.velocity),
        "wall_distance": solution.wall_distance,
        "mixing_length": sampled(solution.mixing_length, solution.wall_distance.function_space),
    }
    return to_mesh_fields(solution.domain, arrays, metadata)


def record(solution: TransportSolution, fields, stage, figures: bool) -> dict:
    """The figures of velocity and concentration (rank 0); the summary of the solve."""
    if figures:
        from cases.reports.figures import field_png

        field_png(fields, "velocity", stage / "velocity_magnitude.png", "|u|", solution.window)
        field_png(fields, "concentration", stage / "concentration.png", "c", solution.window)
    return {**fields.metadata["statistics"]["timings_s"], **fields.metadata.get("reference_comparison", {})}

