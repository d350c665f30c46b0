"""Periodic hills of any slope, period and height, named as the Closure Challenge names them.

The benchmark (McConkey et al.) names a hill `alpha_AA_LLLLL_HHHH`: the slope alpha written with
its first digit as the integer part (05 = 0.5, 10 = 1.0, 15 = 1.5, so 075 = 0.75 and
125 = 1.25), the period and the domain height in thousandths of H. `alpha_AA` alone is the
standard hill: period Lx(alpha) = 3.857 alpha + 5.143 (`hill_profile.hill_length`; the benchmark
writes it rounded, 3.858 alpha + 5.142) and height 3.036.

A non-standard period lengthens or shortens the flat floor only; both flanks keep their alpha
stretching and the height moves the top wall only. The benchmark's `blockMeshDict` splines were
computed from the exact standard period plus the change written in the name, and the name rounds
the period to 1e-3: so a name's period is read as Lx(alpha) + (LLLLL - round(1000 Lx(alpha))) / 1000.
With that rule the splines of all 23 shared cases match `hill_profile.hill_height` to 2e-14 H.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from meshes import hill_profile
from meshes.errors import MeshError

NAME_FORM = (
    "alpha_AA or alpha_AA_LLLLL_HHHH (e.g. alpha_05, alpha_125, alpha_05_10071_4048: alpha 0.5, 1.25 "
    "with the first digit the integer part, period and height in thousandths of H)"
)
_NAME = re.compile(r"alpha_(\d)(\d+)(?:_(\d+)_(\d+))?")


@dataclasses.dataclass(frozen=True)
class HillGeometry:
    """Slope alpha, period `length` (crest to crest) and domain height, all in hill heights H."""

    alpha: float
    length: float
    height: float = hill_profile.HEIGHT

    def __post_init__(self):
        object.__setattr__(self, "alpha", _checked_alpha(self.alpha))
        object.__setattr__(self, "length", float(self.length))
        object.__setattr__(self, "height", float(self.height))
        flanks = 2 * self.alpha * hill_profile.FLANK
        if not (np.isfinite(self.length) and self.length >= flanks):
            raise MeshError(f"a hill of alpha {self.alpha:g} needs a period >= {flanks:.4f}, got {self.length}")
        if not (np.isfinite(self.height) and self.height > 1.0):
            raise MeshError(f"the domain height must lie above the hill crest (> 1), got {self.height:g}")

    @classmethod
    def standard(cls, alpha: float) -> "HillGeometry":
        """The hill of Xiao et al.: period Lx(alpha), height 3.036."""
        alpha = _checked_alpha(alpha)
        return cls(alpha, hill_profile.hill_length(alpha))

    @classmethod
    def parse(cls, name: str) -> "HillGeometry":
        """`alpha_AA` (standard hill) or `alpha_AA_LLLLL_HHHH`; anything else raises MeshError."""
        match = _NAME.fullmatch(str(name).strip())
        if match is None:
            raise MeshError(f"a hill geometry is named {NAME_FORM}, got {name!r}")
        whole, fraction, length, height = match.groups()
        try:
            standard = cls.standard(float(f"{whole}.{fraction}"))
            if length is None:
                return standard
            change = int(length) - round(1000 * standard.length)
            return cls(standard.alpha, standard.length + change / 1000, int(height) / 1000)
        except MeshError as err:
            raise MeshError(f"hill geometry {name}: {err}") from None

    @property
    def name(self) -> str:
        """The benchmark's spelling, `alpha_AA_LLLLL_HHHH` (period and height rounded to 1e-3)."""
        whole, fraction = f"{self.alpha:.6f}".rstrip("0").split(".")
        return f"alpha_{whole}{fraction or '0'}_{round(1000 * self.length)}_{round(1000 * self.height)}"

    @property
    def is_standard(self) -> bool:
        """The standard hill of its slope (whose DNS facts apply)."""
        return self == HillGeometry.standard(self.alpha)

    @property
    def benchmark_length(self) -> float:
        """The period of the benchmark's OpenFOAM mesh of this hill: `length` rounded to 1e-3.

        Its blockMesh vertices sit there, within 0.0005 of `length`, on the flat top of the crest
        (h = 1 within 0.11 alpha of it), so both periods describe the same wall."""
        return round(1000 * self.length) / 1000

    @property
    def floor_length(self) -> float:
        """Length of the flat floor between the flanks."""
        return self.length - 2 * self.alpha * hill_profile.FLANK

    def corresponding(self, points: np.ndarray, other: "HillGeometry") -> np.ndarray:
        """The points of `other` (a hill of the same slope and period, another height) that match
        `points` (M, 2) of this one: the same x, the same fraction of the way from the lower wall to
        the top wall. A solution of one height, read there, starts the solve of another."""
        if abs(other.alpha - self.alpha) > 1e-12 or abs(other.length - self.length) > 1e-9:
            raise MeshError(f"{other.name} and {self.name} differ in more than their height")
        x, y = np.asarray(points, dtype=float)[:, :2].T
        wall = self.wall(x)
        fraction = (y - wall) / (self.height - wall)
        return np.c_[x, wall + fraction * (other.height - wall)]

    def wall(self, x: np.ndarray) -> np.ndarray:
        """Lower-wall height h(x), periodic in x with period `length`."""
        return hill_profile.hill_height(x, self.alpha, self.length)


def _checked_alpha(alpha: float) -> float:
    try:
        return hill_profile.check_alpha(alpha)
    except ValueError as err:
        raise MeshError(str(err)) from None
