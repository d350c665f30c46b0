"""The periodic hills of the Closure Challenge (McConkey et al. 2026): any slope, period and height,
named as the benchmark names them (`alpha_05_10071_4048`; `alpha_AA` alone is the standard hill),
at Re_H = 5600 with the benchmark's k-omega SST by default.

The same solve, wall shear and bubbles as `hills_rans`, on `meshes.hill_geometry.HillGeometry`.
The body force keeps the domain-averaged streamwise velocity at 0.72, as the benchmark's forcing
does, so the crest Reynolds number changes with the domain height.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cases.errors import CaseError
from cases.flows.hills_rans import (  # noqa: F401  (solve, mesh_fields, record: this flow's steps)
    HillsRansConfig, add_settings_arguments, cells, mesh_fields, record, solve,
)

NAME = "phll-rans"
HELP = "a Closure Challenge periodic hill (any alpha, period, height; Re_H = 5600), k-omega SST by default"
DEFAULTS = Path(__file__).parents[1] / "phll_rans.toml"
FAMILIES = ()


@dataclasses.dataclass(frozen=True)
class PhllRansConfig(HillsRansConfig):
    """One benchmark hill. `alpha` follows from the name (`configure` sets it)."""

    geometry: str = "alpha_10"

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
        super().__post_init__()

    @property
    def hill(self):
        from meshes.hill_geometry import HillGeometry

        return HillGeometry.parse(self.geometry)


def add_arguments(parser) -> None:
    parser.add_argument("--geometry", required=True, help="benchmark name: alpha_AA_LLLLL_HHHH (e.g. alpha_05_10071_4048) or alpha_AA (standard hill)")
    add_settings_arguments(parser, "cases/phll_rans.toml")
    parser.add_argument("--resolution", default=None, help="cells NXxNY (default from the case file)")
    parser.add_argument("--wall-ratio", type=float, help="centre-to-wall cell height ratio (default from the case file)")


def values(args) -> dict:
    """The configuration values of the command-line options (None: the case file's)."""
    nx, ny = cells(args.resolution)
    return dict(config=args.config, geometry=args.geometry, model=args.model, nx=nx, ny=ny, wall_ratio=args.wall_ratio)


def configure(config=None, geometry: str = "alpha_10", **values) -> PhllRansConfig:
    """The case file (default `DEFAULTS`), then `values` (None: keep the file's); alpha from the name."""
    from meshes.errors import MeshError
    from meshes.hill_geometry import HillGeometry

    try:
        alpha = HillGeometry.parse(geometry).alpha
    except MeshError as err:
        raise CaseError(str(err)) from None
    return PhllRansConfig.from_toml(config or DEFAULTS, geometry=geometry, alpha=alpha, **values)
