"""The periodic hills of the Closure Challenge (McConkey et al. 2026): any slope, period and height,
named as the benchmark names them (`alpha_05_10071_4048`; `alpha_AA` alone is the standard hill),
at Re_H = 5600 with the benchmark's k-omega SST by default.

The same solve, wall shear and bubbles as `hills_rans`, on `meshes.hill_geometry.HillGeometry`.
The body force keeps the domain-averaged streamwise velocity at 0.72, as the benchmark's forcing
does, so the crest Reynolds number changes with the domain height.

The SST solve of a benchmark hill starts from a converged solution of the simpler k-omega model
(`start_model`) of the same hill, solved at the height `continuation_height` where the hill is
lower and stretched between the walls onto it (`HillGeometry.corresponding`): from the usual start
(rest, nu_t = 0.01) the SST iteration diverged on the short alpha = 0.5 hill (alpha_05_4071_3036,
a failed momentum Newton solve at iteration 16) and on the 2.024-high hills (alpha_05_10071_2024:
a transient that changed the velocity by 10 to 25 % per iteration, with or without a pseudo-time
step on the momentum), and so did k-omega on the low hills; k-omega converges on the 3.036-high
ones. The continued solve starts at pseudo-time step `CONTINUED_DT` and takes each momentum
solve as one pseudo-time step (`RansParameters.momentum_pseudo_time`); the step stays at most
`CONTINUED_DT_MAX`: with larger steps the loop settled into a cycle on alpha_05_10071_2024
(stretched start; nu_t change 3e-5 to 3e-4 per iteration with a cap of 10 or none; Anderson
mixing over 10 steps was worse) and on alpha_05_4071_4048 (same-hill start; 4.6e-5 after 226
iterations); with 3 it converges, slowly. Measured 2026-12-01, 96 cells across.

The dataset family `phll` (`vcnn dataset phll --geometries alpha_05_10071_4048,...`): our SST
solution of each named hill, carrying the benchmark's SST and the LES of the hill on the same nodes
where PHLL29 holds them (`reference`; `cases.studies.phll_dataset`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from cases.errors import CaseError
from cases.flows import hills_rans
from cases.flows.families import NamedFamily
from cases.flows.hills_rans import (  # noqa: F401  (mesh_fields: this flow's step)
    HillsRansConfig, add_settings_arguments, cells, mesh_fields, settings_values,
)
from cases.studies import phll_dataset

log = logging.getLogger(__name__)

NAME = "phll-rans"
HELP = "a Closure Challenge periodic hill (any alpha, period, height; Re_H = 5600), k-omega SST by default"
MEMORY_PER_CELL = 45e3
"""Bytes of peak memory per cell (`cases.limits`): 0.74 GB for SST with its k-omega start at 85 x 96 cells (`make bench`, phll_sst)."""
DEFAULTS = Path(__file__).parents[1] / "phll_rans.toml"
CONTINUED_DT = 1.0
CONTINUED_DT_MAX = 3.0
REST = "rest"  # start_model: no start model, as ""
REST_HINT = ("from rest: the k-omega start (--start-model k-omega, the case file's) or momentum pseudo-time steps "
             "(momentum_pseudo_time = true and dt_max = 1 in [rans] of a --config file) converged where the steady loop diverged from rest")
"""What a solve from rest that diverged is told (docs/results.md: SST from rest in pseudo-time)."""


@dataclasses.dataclass(frozen=True)
class PhllRansConfig(HillsRansConfig):
    """One benchmark hill. `alpha` follows from the name (`configure` sets it)."""

    geometry: str = "alpha_10"
    start_model: str = ""  # the SST solve starts from this model's solution ("" or "rest": from rest)
    continuation_height: float = 0.0  # lower hills start from the start model's solution at this height
    reference: str = ""  # a PHLL29 directory: the output also carries the benchmark's SST and the LES of the hill (`record`)

    def __post_init__(self):
        from meshes.errors import MeshError
        from meshes.hill_geometry import HillGeometry

        try:
            hill = HillGeometry.parse(self.geometry)
        except MeshError as err:
            raise CaseError(str(err)) from None
        if abs(hill.alpha - self.alpha) > 1e-12:
            raise CaseError(f"geometry {self.geometry} has alpha {hill.alpha:g}, not {self.alpha:g}")
        object.__setattr__(self, "geometry", hill.name)
        if self.start_model == REST:
            object.__setattr__(self, "start_model", "")
        if not (0.0 <= self.continuation_height < 1e3):
            raise CaseError(f"continuation_height must be 0 (off) or a domain height, got {self.continuation_height}")
        if self.reference and self.rotate:
            raise CaseError("a turned phll-rans solve cannot carry the benchmark's fields (they are in the hill's own frame): set reference = \"\"")
        if self.start_model and self.rotate:
            raise CaseError("a turned phll-rans solve cannot start from another model's solution (it is mapped in the hill's own frame): set start_model = \"\"")
        if self.start_model:
            from solvers.errors import SolverError
            from solvers.models import check_model

            try:
                check_model(self.start_model)
            except SolverError as err:
                raise CaseError(f"start_model: {err}") from None
        super().__post_init__()

    @property
    def hill(self):
        from meshes.hill_geometry import HillGeometry

        return HillGeometry.parse(self.geometry)


def start_config(config: PhllRansConfig) -> PhllRansConfig:
    """The configuration of the solve that `config` starts from: its `start_model` on the hill (at the
    `continuation_height` if that is higher), without Anderson mixing (k-omega on
    alpha_05_10071_3036 at 216 x 144: 63 iterations relaxed, 158 mixed over 20)."""
    import dataclasses

    from meshes.hill_geometry import HillGeometry

    hill = config.hill
    height = max(hill.height, config.continuation_height)
    return dataclasses.replace(config, model=config.start_model, geometry=HillGeometry(hill.alpha, hill.length, height).name, anderson=0)


def solve(config: PhllRansConfig, comm=None, msh_path=None, make_closure=None, parameters=None):
    """`hills_rans.solve`, started from the `start_config` solution unless a closure or Picard
    settings are given, or there is no start model: then from rest, and a divergence's message
    names the starts that converged (`REST_HINT`) (collective)."""
    import dataclasses

    from solvers.errors import RansFailure

    hill = config.hill
    if not config.start_model and make_closure is None and parameters is None:
        try:
            return hills_rans.solve(config, comm, msh_path)
        except RansFailure as err:
            if not err.diagnosis and not config.momentum_pseudo_time:  # a divergence, not a stall: say what converged instead
                err.args = (f"{err.args[0]} ({REST_HINT})",)
            raise
    if make_closure is not None or parameters is not None or config.start_model == config.model:
        return hills_rans.solve(config, comm, msh_path, make_closure, parameters)
    first_config = start_config(config)
    log.info("%s: first %s on %s", hill.name, config.start_model, first_config.geometry)
    first = hills_rans.solve(first_config, comm)
    start = first.mesh_fields({})
    continued = dataclasses.replace(config.rans_parameters, dt=CONTINUED_DT, dt_max=CONTINUED_DT_MAX, momentum_pseudo_time=True)
    solution = hills_rans.solve(config, comm, msh_path, stretched_start(start, first_config.hill, hill, first.rans.forcing), continued)
    solution.continued_from = {
        "model": config.start_model, "geometry": first_config.geometry, "iterations": first.rans.iterations,
        "seconds": first.rans.seconds, "dt": CONTINUED_DT, "dt_max": CONTINUED_DT_MAX, "momentum_pseudo_time": True,
    }
    solution.timings["start_model"] = sum(first.timings.values())
    return solution


def record(solution, fields, stage, figures: bool) -> dict:
    """`hills_rans.record`, and with a `reference` directory the benchmark's SST and the LES of the
    hill on our nodes (rank 0, before the staged case is written)."""
    summary = hills_rans.record(solution, fields, stage, figures)
    if solution.config.reference:
        summary["les"] = phll_dataset.add_reference_fields(fields, solution.config.geometry, Path(solution.config.reference))["les"]
    return summary


def unsolved_mesh(config: PhllRansConfig):
    """The nodes, cells and wall distance of the mesh a solve of `config` runs on, without solving
    (serial; MeshFields): e.g. to carry data of the hill on the solver's own nodes."""
    import dataclasses

    from dolfinx import fem

    from meshes.shapes import hill_domain
    from solvers.export import to_mesh_fields
    from solvers.wall_distance import wall_distance

    domain = hill_domain(config.hill, config.resolution)
    distance = wall_distance(domain, fem.FunctionSpace(domain.mesh, ("Lagrange", 1)))
    metadata = {"nu": 1.0 / config.reynolds, "periods": [domain.period.tolist()], "config": dataclasses.asdict(config)}
    return to_mesh_fields(domain, {"wall_distance": distance}, metadata)


def stretched_start(start, source, target, forcing: float):
    """`make_closure(flow, pde)` that starts the flow and the PDE closure from `start` (MeshFields of a
    solve of hill `source`, on rank 0), read at the points of `source` that correspond to the nodes
    of `target` (`HillGeometry.corresponding`), with no slip on the walls; the closure is `pde`."""
    from meshes.interpolate import interpolate
    from solvers.export import set_node_values

    def build(flow, pde):
        fields = flow.mesh_fields()
        values = None
        if fields is not None:
            points = target.corresponding(fields.points, source)
            names = ["velocity", *(n for n in pde.names if n in start.point_data)]
            values = {name: interpolate(start, start[name], points) for name in names}
            values["velocity"][fields["wall_distance"] < 1e-12] = 0.0
        values = flow.domain.comm.bcast(values, root=0)
        set_node_values(flow.domain, values["nu_t"], flow.nu_t)
        pde.start_from(values)
        flow.start_from(values["velocity"][:, :2], forcing)
        return pde

    return build


def add_arguments(parser) -> None:
    parser.add_argument("--geometry", required=True, help="benchmark name: alpha_AA_LLLLL_HHHH (e.g. alpha_05_10071_4048) or alpha_AA (standard hill)")
    add_settings_arguments(parser, "cases/phll_rans.toml")
    parser.add_argument("--resolution", default=None, help="cells NXxNY (default from the case file)")
    parser.add_argument("--wall-ratio", type=float, help="centre-to-wall cell height ratio (default from the case file)")
    parser.add_argument("--start-model", help="the model whose converged solution the solve starts from, or 'rest' (default from the case file)")


def values(args) -> dict:
    """The configuration values of the command-line options (None: the case file's)."""
    nx, ny = cells(args.resolution)
    return dict(**settings_values(args), geometry=args.geometry, nx=nx, ny=ny, wall_ratio=args.wall_ratio, start_model=args.start_model)


def configure(config=None, geometry: str = "alpha_10", **values) -> PhllRansConfig:
    """The case file (default `DEFAULTS`), then `values` (None: keep the file's); alpha from the name."""
    from meshes.errors import MeshError
    from meshes.hill_geometry import HillGeometry

    try:
        alpha = HillGeometry.parse(geometry).alpha
    except MeshError as err:
        raise CaseError(str(err)) from None
    return PhllRansConfig.from_toml(config or DEFAULTS, geometry=geometry, alpha=alpha, **values)


def geometry_name(name: str) -> str:
    """The benchmark's spelling of a hill name (`alpha_10` -> alpha_10_9000_3036); CaseError if it is none."""
    from meshes.errors import MeshError
    from meshes.hill_geometry import HillGeometry

    try:
        return HillGeometry.parse(name).name
    except MeshError as err:
        raise CaseError(str(err)) from None


def _period(name: str) -> float:
    from meshes.hill_geometry import HillGeometry

    return HillGeometry.parse(name).length


NETWORK_INPUTS = ("velocity", "strain_rate", "wall_distance")
"""The arrays of every phll case that its networks read: also all that a sample of the closure
study holds (`phll_closure.training_sample`), whose checkpoints are of family phll too."""
PHLL = NamedFamily(
    "phll", "geometry", "geometry", "geometry", "", geometry_name, resolution=True, arrays=NETWORK_INPUTS,
    solve=NAME, plural="geometries", manifest_entry=phll_dataset.manifest_entry, everything=phll_dataset.shared_cases,
    settings=phll_dataset.reference_settings, size=_period,
    values_help="benchmark hill names, comma-separated (alpha_05_10071_4048,alpha_10_6000_3036), or all (the shared PHLL29 cases); repeatable",
)
FAMILIES = (PHLL,)
