"""Structured, wall-graded meshes of 2-D domains that are periodic in x, built with gmsh.

The domain lies between a lower wall y = h(x) and a flat upper wall y = Ly, for x in [0, Lx].
Its left and right boundaries carry identical node distributions, so that a periodic
constraint maps nodes onto nodes. Cells are triangles of a transfinite (structured) grid:
uniform along x, geometrically graded towards both walls.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from meshes.errors import MeshError
from meshes.gmsh_io import dolfinx_mesh, write_xdmf

TAGS = {"fluid": 1, "bottom": 1, "top": 2, "left": 3, "right": 4}
"""Physical tags: cells carry 'fluid'; facets 'bottom', 'top', 'left' and 'right'."""


@dataclasses.dataclass(frozen=True)
class Resolution:
    """Cells along x and y and the ratio of the centre cell height to the wall cell height."""

    nx: int
    ny: int
    wall_ratio: float = 10.0

    def __post_init__(self):
        if int(self.nx) != self.nx or int(self.ny) != self.ny or self.nx < 1 or self.ny < 2:
            raise MeshError(f"resolution needs integers nx >= 1 and ny >= 2, got nx={self.nx}, ny={self.ny}")
        if not (self.wall_ratio >= 1.0 and np.isfinite(self.wall_ratio)):
            raise MeshError(f"wall_ratio must be a finite number >= 1, got {self.wall_ratio}")

    @classmethod
    def parse(cls, text: str, wall_ratio: float = 10.0) -> "Resolution":
        """Parse 'NXxNY' (e.g. '200x100')."""
        try:
            nx, ny = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise MeshError(f"resolution must look like NXxNY (e.g. 200x100), got {text!r}") from None
        return cls(nx, ny, wall_ratio)

    def progression(self) -> tuple[int, int, float]:
        """Cells in the lower and upper half of a column and their geometric growth factor."""
        lower = self.ny // 2
        upper = self.ny - lower
        n = max(lower, upper)
        rate = self.wall_ratio ** (1.0 / (n - 1)) if n > 1 else 1.0
        return lower, upper, rate


@dataclasses.dataclass
class PeriodicDomain:
    """A DOLFINx mesh periodic in x with its facet tags and the facts a solver needs.

    `angle`: the domain may be turned (counter-clockwise, degrees, about the origin) as a whole,
    to show that a solve gives the turned solution; lengths and heights stay those of the
    domain's own frame, in which it is periodic in x.
    """

    mesh: object  # dolfinx.mesh.Mesh
    facet_tags: object  # dolfinx.mesh.MeshTags
    length: float
    height: float
    resolution: Resolution
    description: dict
    angle: float = 0.0

    @property
    def comm(self):
        return self.mesh.comm

    @property
    def rotation(self) -> np.ndarray:
        """R: own frame -> mesh coordinates."""
        a = np.deg2rad(self.angle)
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

    @property
    def streamwise(self) -> np.ndarray:
        """The unit vector of the periodic direction, in mesh coordinates."""
        return self.rotation[:, 0]

    @property
    def period(self) -> np.ndarray:
        """The period vector, in mesh coordinates."""
        return self.length * self.streamwise

    def own_frame(self, x: np.ndarray) -> np.ndarray:
        """Points (N, >= 2) in the domain's own frame (periodic in x), as (N, 2)."""
        return np.asarray(x)[:, :2] @ self.rotation

    def turned(self, degrees: float) -> "PeriodicDomain":
        """This domain turned by `degrees` about the origin: the mesh is moved in place (before
        any function space is built on it), the returned domain knows its new angle."""
        a = np.deg2rad(degrees)
        turn = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        self.mesh.geometry.x[:, :2] = self.mesh.geometry.x[:, :2] @ turn.T
        return dataclasses.replace(self, angle=self.angle + degrees)

    def write_xdmf(self, path: str | Path) -> None:
        write_xdmf(self.mesh, self.facet_tags, path)


def build_periodic_domain(
    lower_wall: Callable[[np.ndarray], np.ndarray],
    length: float,
    height: float,
    resolution: Resolution,
    description: dict,
    comm=None,
    msh_path: str | Path | None = None,
) -> PeriodicDomain:
    """Mesh {0 <= x <= length, lower_wall(x) <= y <= height} with gmsh and load it into DOLFINx.

    The mesh is generated on rank 0 of `comm` and distributed. If `msh_path` is given, rank 0
    also writes the gmsh mesh there (via a temporary name, then renamed).
    """
    mesh, facet_tags = dolfinx_mesh(lambda gmsh: _gmsh_model(gmsh, lower_wall, length, height, resolution), comm, msh_path)
    mesh.name = description.get("name", "domain")
    return PeriodicDomain(mesh, facet_tags, float(length), float(height), resolution, dict(description))


def _gmsh_model(gmsh, lower_wall, length, height, resolution):
    """Build the transfinite gmsh model: a polyline lower wall with one segment per column."""
    geo = gmsh.model.geo
    gmsh.model.add("periodic_domain")
    nx = resolution.nx
    xs = np.linspace(0.0, length, nx + 1)
    ys = np.asarray(lower_wall(xs), dtype=float)
    if np.any(ys >= height):
        raise MeshError("the lower wall reaches the upper wall")

    bottom_pts = [geo.addPoint(x, y, 0.0) for x, y in zip(xs, ys)]
    top_left = geo.addPoint(0.0, height, 0.0)
    top_right = geo.addPoint(length, height, 0.0)
    mid_left = geo.addPoint(0.0, 0.5 * (ys[0] + height), 0.0)
    mid_right = geo.addPoint(length, 0.5 * (ys[-1] + height), 0.0)

    bottom = [geo.addLine(a, b) for a, b in zip(bottom_pts[:-1], bottom_pts[1:])]
    # Side halves are oriented away from their wall so that one progression grades both.
    right_low = geo.addLine(bottom_pts[-1], mid_right)
    right_up = geo.addLine(top_right, mid_right)
    top = geo.addLine(top_right, top_left)
    left_up = geo.addLine(top_left, mid_left)
    left_low = geo.addLine(bottom_pts[0], mid_left)

    loop = geo.addCurveLoop(bottom + [right_low, -right_up, top, left_up, -left_low])
    surface = geo.addPlaneSurface([loop])
    geo.synchronize()

    lower, upper, rate = resolution.progression()
    for line in bottom:
        gmsh.model.mesh.setTransfiniteCurve(line, 2)
    gmsh.model.mesh.setTransfiniteCurve(top, nx + 1)
    for line in (right_low, left_low):
        gmsh.model.mesh.setTransfiniteCurve(line, lower + 1, "Progression", rate)
    for line in (right_up, left_up):
        gmsh.model.mesh.setTransfiniteCurve(line, upper + 1, "Progression", rate)
    corners = [bottom_pts[0], bottom_pts[-1], top_right, top_left]
    gmsh.model.mesh.setTransfiniteSurface(surface, "Alternate", corners)

    tags = {
        "bottom": bottom,
        "top": [top],
        "left": [left_low, left_up],
        "right": [right_low, right_up],
    }
    for name, curves in tags.items():
        gmsh.model.addPhysicalGroup(1, curves, TAGS[name])
        gmsh.model.setPhysicalName(1, TAGS[name], name)
    gmsh.model.addPhysicalGroup(2, [surface], TAGS["fluid"])
    gmsh.model.setPhysicalName(2, TAGS["fluid"], "fluid")
    gmsh.model.mesh.generate(2)
