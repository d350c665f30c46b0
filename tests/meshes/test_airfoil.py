"""NACA 4-digit outlines (thickness, camber, area from the formula's known integral), rotation
about the quarter chord, and the gmsh far-field mesh (tags, boundary nodes on the outline, area)."""

import numpy as np
import pytest

from meshes.airfoil import AIRFOIL_TAGS, AirfoilGeometry, naca4, rotated
from meshes.errors import MeshError


def shoelace(polygon: np.ndarray) -> float:
    x, y = polygon.T
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def test_naca0012_thickness_symmetry_and_area():
    outline = naca4("0012", 400)
    assert outline[:, 0].min() == pytest.approx(0.0) and outline[:, 0].max() == pytest.approx(1.0)
    upper, lower = outline[:400][::-1], np.vstack([outline[399:], outline[:1]])  # both leading -> trailing edge
    assert np.allclose(upper, lower * (1, -1))  # symmetric section
    thickness = 2 * upper[:, 1].max()
    assert thickness == pytest.approx(0.12, rel=2e-3)
    assert upper[np.argmax(upper[:, 1]), 0] == pytest.approx(0.30, abs=0.01)  # NACA 00xx: thickest at 30 % chord
    # area = 2 * integral of the half thickness 5 t (...) over the chord, closed trailing edge
    exact = 10 * 0.12 * (0.2969 * 2 / 3 - 0.1260 / 2 - 0.3516 / 3 + 0.2843 / 4 - 0.1036 / 5)
    assert shoelace(outline) == pytest.approx(exact, rel=1e-3)  # counter-clockwise: positive


def test_naca2412_camber():
    outline = naca4("2412", 400)
    upper = outline[:400][::-1]  # LE -> TE
    lower = np.vstack([outline[399:], outline[:1]])
    mean_line = (upper[:, 1] + lower[:, 1]) / 2
    assert mean_line.max() == pytest.approx(0.02, abs=2e-4)
    assert upper[np.argmax(mean_line), 0] == pytest.approx(0.4, abs=0.02)


def test_rotation_is_nose_up_about_the_quarter_chord():
    outline = naca4("0012")
    turned = rotated(outline, 10.0)
    lead = np.argmin(outline[:, 0])
    assert turned[lead, 1] > 0.04  # leading edge up
    assert np.allclose(np.linalg.norm(turned - (0.25, 0), axis=1), np.linalg.norm(outline - (0.25, 0), axis=1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"code": "12"}, "four digits"),
        ({"code": "0000"}, "thickness"),
        ({"code": "2012"}, "camber"),
        ({"angle_of_attack": 120.0}, "angle of attack"),
        ({"radius": 1.0}, "2 chords"),
        ({"wall_size": 2.0}, "wall_size"),
    ],
)
def test_bad_geometry_is_refused(kwargs, message):
    with pytest.raises(MeshError, match=message):
        AirfoilGeometry(**kwargs)


def test_far_field_mesh_tags_outline_and_area():
    pytest.importorskip("dolfinx")
    pytest.importorskip("gmsh")
    from meshes.airfoil import airfoil_domain

    geometry = AirfoilGeometry(angle_of_attack=20.0, radius=5.0, wall_size=0.02, far_size=0.5)
    domain = airfoil_domain(geometry)
    mesh, tags = domain.mesh, domain.facet_tags
    x = mesh.geometry.x[:, :2]
    mesh.topology.create_connectivity(1, 0)
    facets = mesh.topology.connectivity(1, 0)

    def nodes(name):
        return np.unique(np.concatenate([facets.links(f) for f in tags.indices[tags.values == AIRFOIL_TAGS[name]]]))

    outline = geometry.outline()
    a, b = outline, np.roll(outline, -1, axis=0)
    for p in x[nodes("airfoil")]:  # every airfoil node lies on a segment of the rotated outline
        t = np.clip(np.einsum("sd,sd->s", p - a, b - a) / np.einsum("sd,sd->s", b - a, b - a), 0, 1)
        assert np.min(np.linalg.norm(a + t[:, None] * (b - a) - p, axis=1)) < 1e-9
    for name, side in (("inflow", -1), ("outflow", 1)):
        far = x[nodes(name)] - (0.5, 0.0)
        assert np.allclose(np.linalg.norm(far, axis=1), 5.0)
        assert np.all(side * far[:, 0] >= -1e-9)
    cells = mesh.geometry.dofmap.array.reshape(-1, 3)
    p, q, r = x[cells[:, 0]], x[cells[:, 1]], x[cells[:, 2]]
    area = 0.5 * np.abs(np.cross(q - p, r - p)).sum()
    assert area == pytest.approx(np.pi * 5.0**2 - shoelace(outline), rel=5e-3)  # circle meshed by chords
