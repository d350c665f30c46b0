"""Wall distance: exact on a channel, and equal to brute force on the hill (periodic images too)."""

import numpy as np
import pytest

pytest.importorskip("dolfinx")

from dolfinx import fem  # noqa: E402

from meshes import hill_profile  # noqa: E402
from meshes.periodic_domain import Resolution  # noqa: E402
from meshes.shapes import channel, periodic_hill  # noqa: E402
from solvers.wall_distance import distance_to_segments, wall_distance, wall_segments  # noqa: E402


def test_channel_distance_is_exact():
    domain = channel(3.0, 2.0, Resolution(12, 16, 5.0))
    d = wall_distance(domain, fem.FunctionSpace(domain.mesh, ("Lagrange", 2)))
    y = d.function_space.tabulate_dof_coordinates()[:, 1]
    assert np.max(np.abs(d.x.array - np.minimum(y, 2.0 - y))) < 1e-14


def test_hill_distance_matches_brute_force_including_periodic_images():
    alpha = 1.0
    domain = periodic_hill(alpha, Resolution(90, 30, 10.0))
    segments = wall_segments(domain)
    rng = np.random.default_rng(1)
    length = hill_profile.hill_length(alpha)
    x = rng.uniform(0, length, 400)
    # points near the ends of the period, whose nearest wall is across the periodic boundary
    x[:100] = rng.uniform(0, 0.3, 100)
    y = rng.uniform(hill_profile.hill_height(x, alpha), hill_profile.HEIGHT)
    points = np.c_[x, y]
    fast = distance_to_segments(points, segments)
    a, b = segments[:, 0][None], segments[:, 1][None]
    t = np.clip(np.einsum("nmd,nmd->nm", points[:, None] - a, b - a) / np.einsum("nmd,nmd->nm", b - a, b - a), 0, 1)
    brute = np.linalg.norm(points[:, None] - (a + t[..., None] * (b - a)), axis=2).min(axis=1)
    assert np.array_equal(fast, brute)
    # periodic: the same distance on both ends of the period
    y = np.linspace(1.0, hill_profile.HEIGHT, 50)
    ends = distance_to_segments(np.r_[np.c_[np.zeros(50), y], np.c_[np.full(50, length), y]], segments)
    assert np.allclose(ends[:50], ends[50:], atol=1e-12)


def test_nearest_wall_across_the_periodic_boundary_is_found():
    # a wall segment near the right end only: seen from x = 0.1 through its image at x - L
    domain_length = 4.0
    segment = np.array([[[3.8, 0.0], [3.9, 0.0]]])
    shift = np.array([domain_length, 0.0])
    images = np.concatenate([segment, segment - shift, segment + shift])
    d = distance_to_segments(np.array([[0.1, 0.1]]), images)
    assert d[0] == pytest.approx(np.hypot(0.2, 0.1))
