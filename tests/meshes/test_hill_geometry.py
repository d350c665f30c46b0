"""Hills of any slope, period and height: benchmark names, the wall, and the Closure Challenge meshes."""

import re
import time

import numpy as np
import pytest

from meshes import hill_profile
from meshes.errors import MeshError
from meshes.hill_geometry import HillGeometry


@pytest.mark.parametrize(
    "name, alpha, length, height",
    [
        ("alpha_05", 0.5, hill_profile.hill_length(0.5), 3.036),
        ("alpha_075", 0.75, hill_profile.hill_length(0.75), 3.036),
        ("alpha_10", 1.0, 9.0, 3.036),
        ("alpha_125", 1.25, hill_profile.hill_length(1.25), 3.036),
        ("alpha_15", 1.5, hill_profile.hill_length(1.5), 3.036),
        ("alpha_05_7071_3036", 0.5, hill_profile.hill_length(0.5), 3.036),  # the standard hill, rounded
        ("alpha_05_10071_4048", 0.5, hill_profile.hill_length(0.5) + 3, 4.048),
        ("alpha_10_6000_2024", 1.0, 6.0, 2.024),
        ("alpha_15_13929_2024", 1.5, hill_profile.hill_length(1.5) + 3, 2.024),
    ],
)
def test_names_give_slope_period_and_height(name, alpha, length, height):
    geometry = HillGeometry.parse(name)
    assert (geometry.alpha, geometry.length, geometry.height) == (alpha, length, height)
    full_name = name.count("_") == 3
    assert geometry.name == name if full_name else geometry.name.startswith(name + "_")
    assert HillGeometry.parse(geometry.name) == geometry


def test_standard_hill_is_the_alpha_only_hill():
    for alpha in (0.5, 1.0, 2.0, 4.0):
        geometry = HillGeometry.standard(alpha)
        assert geometry == HillGeometry(alpha, hill_profile.hill_length(alpha), hill_profile.HEIGHT)
        x = np.linspace(-1.0, geometry.length + 1.0, 2001)
        inside = (x >= 0) & (x <= geometry.length)
        assert np.array_equal(geometry.wall(x[inside]), hill_profile.hill_height(x[inside], alpha))
    assert HillGeometry.parse("alpha_075").name == "alpha_075_8036_3036"
    assert HillGeometry.parse("alpha_20").name == "alpha_20_12857_3036"


@pytest.mark.parametrize(
    "name",
    ["alpha_5", "alpha_0.5", "beta_05", "alpha_05_10071", "alpha_05_10071_4048_1", "", "alpha_05_x_3036"],
)
def test_malformed_names_are_refused_with_the_valid_form(name):
    with pytest.raises(MeshError, match=r"alpha_AA or alpha_AA_LLLLL_HHHH") as err:
        HillGeometry.parse(name)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "name, message",
    [("alpha_45", "alpha must be in"), ("alpha_05_1000_3036", "period >= 1.9286"), ("alpha_10_9000_0900", "above")],
)
def test_impossible_hills_are_refused(name, message):
    with pytest.raises(MeshError, match=message):
        HillGeometry.parse(name)


def test_a_longer_period_lengthens_the_floor_only():
    standard, longer = HillGeometry.parse("alpha_15"), HillGeometry.parse("alpha_15_13929_3036")
    assert longer.floor_length == pytest.approx(standard.floor_length + 3.0, abs=1e-12)
    flank = np.linspace(0, 1.5 * hill_profile.FLANK, 201)
    assert np.array_equal(longer.wall(flank), standard.wall(flank))  # windward flank unchanged
    assert np.allclose(longer.wall(longer.length - flank), standard.wall(standard.length - flank), atol=1e-14)
    floor = np.linspace(flank[-1], longer.length - flank[-1], 201)
    assert np.all(longer.wall(floor) == 0.0)
    x = np.linspace(0, longer.length, 301)
    assert np.allclose(longer.wall(x + longer.length), longer.wall(x), atol=1e-12)  # periodic in x
    assert np.allclose(longer.wall(x - longer.length), longer.wall(x), atol=1e-12)


def test_coarse_mesh_of_a_benchmark_hill_spans_its_period_and_height():
    pytest.importorskip("dolfinx")
    pytest.importorskip("gmsh")
    from dolfinx.mesh import compute_incident_entities

    from meshes.periodic_domain import TAGS, Resolution
    from meshes.shapes import hill_domain

    geometry = HillGeometry.parse("alpha_10_6000_2024")
    start = time.perf_counter()
    domain = hill_domain(geometry, Resolution(30, 16, 8.0))
    elapsed = time.perf_counter() - start
    assert elapsed < 20.0
    x = domain.mesh.geometry.x
    assert (x[:, 0].min(), x[:, 0].max(), x[:, 1].max()) == (0.0, 6.0, pytest.approx(2.024, abs=1e-12))
    assert (domain.length, domain.height, domain.description["geometry"]) == (6.0, 2.024, "alpha_10_6000_2024")
    assert domain.mesh.topology.index_map(2).size_global == 2 * 30 * 16
    domain.mesh.topology.create_connectivity(1, 0)
    facets = domain.facet_tags.indices[domain.facet_tags.values == TAGS["bottom"]]
    bottom = compute_incident_entities(domain.mesh, facets, 1, 0)
    assert len(bottom) == 31
    assert np.allclose(x[bottom, 1], geometry.wall(x[bottom, 0]), atol=1e-12)


# The Closure Challenge meshes (../shared/reference/closure_challenge/PHLL29): minimal OpenFOAM ASCII reading.

SPLINE_TOLERANCE = 1e-12  # measured: 1.7e-14 H over the 23 cases
FACE_TOLERANCE = 1e-5  # measured: 4.7e-6 H (the benchmark's spline between its points vs our profile)
WALL_MARGIN = 5e-4  # measured: the lowest cell centre sits 7.8e-4 H above the benchmark's polygonal wall
TOP_MARGIN = 1e-3  # measured: the highest cell centre sits 1.22e-3 H below the top wall


def _benchmark_cases(reference_dir):
    cases = sorted(p for p in (reference_dir / "closure_challenge" / "PHLL29").iterdir() if p.is_dir())
    assert len(cases) == 23
    return cases


def _spline(block_mesh: str) -> np.ndarray:
    """The points of the lower-wall spline `spline 0 1 ( (x y z) ... )` of a blockMeshDict."""
    body = re.search(r"^spline 0 1 \(\n(.*?)\n\)", block_mesh, re.S | re.M).group(1)
    return np.array(body.replace("(", " ").replace(")", " ").split(), float).reshape(-1, 3)


def _vertices(block_mesh: str) -> np.ndarray:
    body = re.search(r"^vertices\s*\((.*?)^\);", block_mesh, re.S | re.M).group(1)
    return np.array(re.findall(r"\(\s*(\S+)\s+(\S+)\s+(\S+)\s*\)", body), float)


def _vectors(text: str, after: str) -> np.ndarray:
    """The first `nonuniform List<vector> N ( (x y z) ... )` after the word `after`."""
    match = re.compile(r"nonuniform\s+List<vector>\s*(\d+)\s*\((.*?)\n\)", re.S).search(text, text.index(after))
    values = np.array(match.group(2).replace("(", " ").replace(")", " ").split(), float).reshape(-1, 3)
    assert len(values) == int(match.group(1))
    return values


def test_benchmark_splines_and_vertices_are_our_hills(reference_dir):
    worst = 0.0
    for case in _benchmark_cases(reference_dir):
        geometry = HillGeometry.parse(case.name)
        assert geometry.name == case.name
        block_mesh = (case / "system" / "blockMeshDict").read_text()
        points = _spline(block_mesh)
        assert len(points) >= 600
        worst = max(worst, np.abs(geometry.wall(points[:, 0]) - points[:, 1]).max())
        vertices = _vertices(block_mesh)
        assert len(vertices) == 12
        assert vertices[:, 0].max() == geometry.benchmark_length and vertices[:, 1].max() == geometry.height
    assert worst < SPLINE_TOLERANCE


def test_benchmark_cell_centres_lie_inside_our_hills(reference_dir):
    """The benchmark's wall is the polygon through its wall points, which lie on our profile; every
    cell centre lies above that polygon and below our top wall."""
    for case in _benchmark_cases(reference_dir):
        geometry = HillGeometry.parse(case.name)
        text = (case / "0" / "C").read_text()
        centres, faces = _vectors(text, "internalField"), _vectors(text, "bottomWall")
        assert len(centres) == 15600 and np.all(np.diff(faces[:, 0]) > 0)
        x = np.zeros(len(faces) + 1)  # wall points: each wall face centre is the midpoint of two
        for i, middle in enumerate(faces[:, 0]):
            x[i + 1] = 2 * middle - x[i]
        assert x[-1] == pytest.approx(geometry.benchmark_length, abs=1e-9)
        y = geometry.wall(x)
        assert np.abs(0.5 * (y[1:] + y[:-1]) - faces[:, 1]).max() < FACE_TOLERANCE
        assert np.all((centres[:, 0] > 0) & (centres[:, 0] < geometry.benchmark_length))
        assert (centres[:, 1] - np.interp(centres[:, 0], x, y)).min() > WALL_MARGIN
        assert geometry.height - centres[:, 1].max() > TOP_MARGIN


def test_corresponding_points_keep_x_and_the_fraction_between_the_walls():
    low, tall = HillGeometry.parse("alpha_05_10071_2024"), HillGeometry.parse("alpha_05_10071_3036")
    x = np.linspace(0.0, low.length, 41)
    wall = low.wall(x)
    points = np.r_[np.c_[x, wall], np.c_[x, np.full_like(x, low.height)], np.c_[x, 0.5 * (wall + low.height)]]
    mapped = low.corresponding(points, tall)
    assert np.array_equal(mapped[:, 0], points[:, 0])
    n = len(x)
    assert np.allclose(mapped[:n, 1], wall, atol=1e-14)  # the lower wall onto itself
    assert np.allclose(mapped[n : 2 * n, 1], tall.height)  # the top wall onto the other's
    assert np.allclose(mapped[2 * n :, 1], 0.5 * (wall + tall.height))
    assert np.allclose(tall.corresponding(mapped, low), points)  # and back
    with pytest.raises(MeshError, match="differ in more than their height"):
        low.corresponding(points, HillGeometry.parse("alpha_05_7071_2024"))
