"""NACA 4-digit airfoils and the far-field domain around one, meshed with gmsh.

The frame case turns the airfoil, not the flow: the free stream runs along +x and the airfoil is
rotated nose-up by the angle of attack about its quarter chord. The far field is a circle split
into an inflow half (x below the centre) and an outflow half. Cells are unstructured triangles,
graded from `wall_size` on the airfoil to `far_size` at the far field.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from meshes.errors import MeshError
from meshes.gmsh_io import dolfinx_mesh, write_xdmf

AIRFOIL_TAGS = {"fluid": 1, "airfoil": 1, "inflow": 2, "outflow": 3}
"""Physical tags: cells carry 'fluid'; facets 'airfoil', 'inflow' and 'outflow'."""


def naca4(code: str = "0012", points: int = 100, closed: bool = True) -> np.ndarray:
    """The NACA 4-digit airfoil `code` of unit chord as a polygon (2 points - 2 vertices).

    Cosine spacing along the chord; counter-clockwise from the trailing edge over the upper side
    to the leading edge and back along the lower side. With `closed` the trailing edge is sharp
    (the x^4 coefficient is -0.1036 instead of -0.1015) and appears once.
    """
    if len(code) != 4 or not code.isdigit():
        raise MeshError(f"a NACA 4-digit code has four digits, got {code!r}")
    m, p, t = int(code[0]) / 100, int(code[1]) / 10, int(code[2:]) / 100
    if t <= 0 or (m > 0) != (p > 0):
        raise MeshError(f"NACA {code}: thickness must be positive, and camber and its position both zero or both set")
    if points < 5:
        raise MeshError(f"an airfoil needs at least 5 points per side, got {points}")
    x = (1 - np.cos(np.linspace(0, np.pi, points))) / 2
    a4 = 0.1036 if closed else 0.1015
    yt = 5 * t * (0.2969 * np.sqrt(x) - 0.1260 * x - 0.3516 * x**2 + 0.2843 * x**3 - a4 * x**4)
    yc, slope = np.zeros_like(x), np.zeros_like(x)
    if m > 0:
        front = x < p
        yc = np.where(front, m / p**2 * (2 * p * x - x**2), m / (1 - p) ** 2 * (1 - 2 * p + 2 * p * x - x**2))
        slope = np.where(front, 2 * m / p**2 * (p - x), 2 * m / (1 - p) ** 2 * (p - x))
    theta = np.arctan(slope)
    upper = np.c_[x - yt * np.sin(theta), yc + yt * np.cos(theta)]
    lower = np.c_[x + yt * np.sin(theta), yc - yt * np.cos(theta)]
    polygon = np.vstack([upper[::-1], lower[1:]])  # TE -> upper -> LE -> lower -> TE
    return polygon[:-1] if closed else polygon


def rotated(polygon: np.ndarray, angle_of_attack: float, pivot=(0.25, 0.0)) -> np.ndarray:
    """The polygon turned nose-up by `angle_of_attack` degrees (clockwise) about `pivot`."""
    a = np.deg2rad(angle_of_attack)
    rotation = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    return (polygon - pivot) @ rotation.T + pivot


@dataclasses.dataclass(frozen=True)
class AirfoilGeometry:
    """Airfoil, angle of attack (degrees), far-field radius (chords) and cell sizes (chords)."""

    code: str = "0012"
    angle_of_attack: float = 0.0
    radius: float = 10.0
    wall_size: float = 0.01
    far_size: float = 1.0
    points: int = 120

    def __post_init__(self):
        naca4(self.code, self.points)  # validates the code and point count
        if not (np.isfinite(self.angle_of_attack) and abs(self.angle_of_attack) <= 90):
            raise MeshError(f"angle of attack must be within [-90, 90] degrees, got {self.angle_of_attack}")
        if not self.radius >= 2:
            raise MeshError(f"the far field must lie at least 2 chords away, got radius {self.radius}")
        if not 0 < self.wall_size <= self.far_size <= self.radius:
            raise MeshError(f"need 0 < wall_size <= far_size <= radius, got {self.wall_size}, {self.far_size}, {self.radius}")

    def outline(self) -> np.ndarray:
        return rotated(naca4(self.code, self.points), self.angle_of_attack)


@dataclasses.dataclass
class AirfoilDomain:
    """A DOLFINx mesh around an airfoil with its facet tags (`AIRFOIL_TAGS`)."""

    mesh: object  # dolfinx.mesh.Mesh
    facet_tags: object  # dolfinx.mesh.MeshTags
    geometry: AirfoilGeometry

    tags = AIRFOIL_TAGS

    @property
    def comm(self):
        return self.mesh.comm

    def write_xdmf(self, path: str | Path) -> None:
        write_xdmf(self.mesh, self.facet_tags, path)


def airfoil_domain(geometry: AirfoilGeometry, comm=None, msh_path: str | Path | None = None) -> AirfoilDomain:
    """Mesh the far-field domain around `geometry` with gmsh on rank 0 and load it into DOLFINx."""
    mesh, facet_tags = dolfinx_mesh(lambda gmsh: _gmsh_model(gmsh, geometry), comm, msh_path)
    mesh.name = f"naca{geometry.code}_aoa{geometry.angle_of_attack:g}"
    return AirfoilDomain(mesh, facet_tags, geometry)


def _gmsh_model(gmsh, geometry: AirfoilGeometry) -> None:
    geo = gmsh.model.geo
    gmsh.model.add("airfoil")
    outline = geometry.outline()
    points = [geo.addPoint(x, y, 0.0) for x, y in outline]
    airfoil = [geo.addLine(a, b) for a, b in zip(points, points[1:] + points[:1])]
    centre, r = (0.5, 0.0), geometry.radius
    c = geo.addPoint(*centre, 0.0)
    top, bottom = geo.addPoint(centre[0], r, 0.0), geo.addPoint(centre[0], -r, 0.0)
    front, back = geo.addPoint(centre[0] - r, 0.0, 0.0), geo.addPoint(centre[0] + r, 0.0, 0.0)
    inflow = [geo.addCircleArc(top, c, front), geo.addCircleArc(front, c, bottom)]
    outflow = [geo.addCircleArc(bottom, c, back), geo.addCircleArc(back, c, top)]
    far = geo.addCurveLoop(inflow + outflow)
    hole = geo.addCurveLoop(airfoil)
    surface = geo.addPlaneSurface([far, hole])
    geo.synchronize()

    field = gmsh.model.mesh.field
    distance = field.add("Distance")
    field.setNumbers(distance, "CurvesList", airfoil)
    field.setNumber(distance, "NumPointsPerCurve", 20)
    threshold = field.add("Threshold")
    field.setNumber(threshold, "InField", distance)
    field.setNumber(threshold, "SizeMin", geometry.wall_size)
    field.setNumber(threshold, "SizeMax", geometry.far_size)
    field.setNumber(threshold, "DistMin", 0.0)
    field.setNumber(threshold, "DistMax", 0.5 * geometry.radius)
    field.setAsBackgroundMesh(threshold)
    for option in ("MeshSizeExtendFromBoundary", "MeshSizeFromPoints", "MeshSizeFromCurvature"):
        gmsh.option.setNumber(f"Mesh.{option}", 0)

    for name, curves in {"airfoil": airfoil, "inflow": inflow, "outflow": outflow}.items():
        gmsh.model.addPhysicalGroup(1, curves, AIRFOIL_TAGS[name])
        gmsh.model.setPhysicalName(1, AIRFOIL_TAGS[name], name)
    gmsh.model.addPhysicalGroup(2, [surface], AIRFOIL_TAGS["fluid"])
    gmsh.model.setPhysicalName(2, AIRFOIL_TAGS["fluid"], "fluid")
    gmsh.model.mesh.generate(2)
