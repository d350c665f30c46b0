"""Case families: sets of cases that differ by one parameter (the hill slope alpha, the angle of
attack of an airfoil).

A `Family` says how that parameter is named in case directories, manifests, `vcnn solve` flags,
study files and reports, which values are allowed, and whether the cases take a mesh resolution.
Datasets, studies and reports go through it, so adding a family is adding an entry here and a
`vcnn solve` sub-command that writes the same point arrays.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from cases.airfoil_transport import FIGURE_WINDOW
from cases.errors import CaseError
from meshes import hill_profile
from meshes.airfoil import AirfoilGeometry
from meshes.errors import MeshError

ARRAYS = ("velocity", "pressure", "concentration", "strain_rate", "wall_distance", "mixing_length")
"""The point arrays of every transport case (what `vcnn solve` writes)."""
RANS_ARRAYS = ("velocity", "pressure", "strain_rate", "wall_distance", "nu_t", "k")
"""The point arrays of every RANS case, whatever the closure (which adds omega or epsilon)."""
CLOSURE_TARGETS = ("log_nu_t_ratio", "nu_t_ratio")
"""What closure networks may learn from a RANS case (`vcnn.closure.INVERSES`), derived on loading."""
VECTOR_ARRAYS = ("velocity",)


@dataclasses.dataclass(frozen=True)
class Family:
    name: str  # the `vcnn solve` and `vcnn dataset` sub-command, and the manifest's family
    parameter: str  # manifest key, case-directory prefix and `vcnn solve --<parameter>`
    config_key: str  # the parameter's name in a case's meta.json config
    label: str  # how reports write the parameter
    unit: str  # appended to values in reports
    check: Callable[[float], None]  # raises CaseError outside the family
    resolution: bool  # the cases accept --resolution NXxNY
    window: tuple | None = None  # what figures show, ((xmin, xmax), (ymin, ymax)); None: everything
    arrays: tuple[str, ...] = ARRAYS  # the point arrays of every case
    derived: tuple[str, ...] = ()  # closure families: `vcnn.closure.closure_targets`, added on loading
    solve: str | None = None  # the `vcnn solve` sub-command, if not `name`
    model: str | None = None  # RANS families: the closure of the cases (`vcnn solve --model`)

    @property
    def command(self) -> tuple[str, ...]:
        """`vcnn solve` arguments that solve a case of the family, before the parameter's flag."""
        return (self.solve or self.name,) + (() if self.model is None else ("--model", self.model))

    def turning_window(self) -> tuple | None:
        """A square about the origin holding `window` in every frame (the frame study turns fields
        about the origin)."""
        if self.window is None:
            return None
        r = max(abs(v) for pair in self.window for v in pair)
        return ((-r, r), (-r, r))

    def case_name(self, value: float) -> str:
        return f"{self.parameter}_{value:.4f}"

    def describe(self, value: float) -> str:
        return f"{self.label} = {value:g}{self.unit}"

    def parse(self, specs: list[str]) -> list[float]:
        """'1.0:2.0:0.05' (inclusive range) and '0.5,2.5' lists -> sorted unique checked values."""
        values: list[float] = []
        for spec in specs:
            for part in str(spec).split(","):
                part = part.strip()
                try:
                    if ":" in part:
                        start, stop, step = (float(v) for v in part.split(":"))
                        if step <= 0:
                            raise ValueError
                        count = int(np.floor((stop - start) / step + 1e-9)) + 1
                        values.extend(start + step * np.arange(count))
                    elif part:
                        values.append(float(part))
                except ValueError:
                    raise CaseError(f"{self.parameter} values must look like 1.0:2.0:0.05 or 0.5,2.5, got {part!r}") from None
        if not values:
            raise CaseError(f"no {self.parameter} values given")
        values = sorted({round(float(v), 6) for v in values})
        for value in values:
            self.check(value)
        return values


def _check_alpha(value: float) -> None:
    try:
        hill_profile.check_alpha(value)
    except ValueError as err:
        raise CaseError(str(err)) from None


def _check_angle(value: float) -> None:
    try:
        AirfoilGeometry(angle_of_attack=value)
    except MeshError as err:
        raise CaseError(str(err)) from None


def _check_rans_alpha(value: float) -> None:
    from cases.hills_rans import ALPHAS

    if not ALPHAS[0] <= value <= ALPHAS[1]:
        raise CaseError(f"alpha must be in [{ALPHAS[0]:g}, {ALPHAS[1]:g}] for hills-rans, got {value:g}")


HILLS = Family("hills-transport", "alpha", "alpha", "alpha", "", _check_alpha, resolution=True)
AIRFOIL = Family("airfoil-transport", "aoa", "angle_of_attack", "AoA", " deg", _check_angle, resolution=False, window=FIGURE_WINDOW)
HILLS_RANS = Family(
    "hills-rans", "alpha", "alpha", "alpha", "", _check_rans_alpha, resolution=True,
    arrays=RANS_ARRAYS + ("omega",), derived=CLOSURE_TARGETS, model="k-omega",
)
HILLS_RANS_ONE_EQUATION = Family(
    "hills-rans-one-equation", "alpha", "alpha", "alpha", "", _check_rans_alpha, resolution=True,
    arrays=RANS_ARRAYS, derived=CLOSURE_TARGETS, solve="hills-rans", model="one-equation",
)
FAMILIES = {family.name: family for family in (HILLS, AIRFOIL, HILLS_RANS, HILLS_RANS_ONE_EQUATION)}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise CaseError(f"unknown case family {name!r}; choose from {sorted(FAMILIES)}")
    return FAMILIES[name]
