"""Clouds: membership against brute force, periodic images, sampling, frame independence."""

import math

import numpy as np
import pytest

from vcnn.clouds import Ball, Clouds, CloudError, Ellipse, KNearest, MeshGraph, NodeIndex, build_clouds
from vcnn.symmetry import random_orthogonal


@pytest.fixture
def points():
    rng = np.random.default_rng(3)
    nodes = rng.uniform([0, 0], [6, 2], (3000, 2))
    velocity = np.c_[1 + 0.2 * np.sin(nodes[:, 0]), 0.3 * np.cos(nodes[:, 1])]
    return nodes, velocity


def members(clouds, i):
    return set(clouds.members[clouds.offsets[i] : clouds.offsets[i + 1]].tolist())


def test_ellipse_semi_axes_follow_the_paper():
    shape = Ellipse(diffusivity=0.1, reaction=3.0, eps=0.2)
    speed = np.array([0.0, 0.5, 1.3])
    a, b = shape.semi_axes(speed)
    expected_a = np.abs(2 * 0.1 * math.log(0.2) / (speed - np.sqrt(speed**2 + 4 * 0.1 * 3.0)))
    assert np.allclose(a, expected_a) and np.allclose(b, math.sqrt(0.1 / 3) * abs(math.log(0.2)))


def test_ellipse_and_ball_membership_match_brute_force(points):
    nodes, velocity = points
    queries = np.arange(0, 3000, 97)
    shape = Ellipse()
    clouds = build_clouds(nodes, nodes[queries], shape, velocity[queries])
    balls = build_clouds(nodes, nodes[queries], Ball(0.3))
    a, b = shape.semi_axes(np.linalg.norm(velocity[queries], axis=1))
    for i, q in enumerate(queries):
        r = nodes - nodes[q]
        e = velocity[q] / np.linalg.norm(velocity[q])
        along = r @ e
        across = r @ np.array([-e[1], e[0]])
        assert members(clouds, i) == set(np.flatnonzero((along / a[i]) ** 2 + (across / b[i]) ** 2 <= 1).tolist())
        assert members(balls, i) == set(np.flatnonzero(np.linalg.norm(r, axis=1) <= 0.3).tolist())
        assert q in members(clouds, i)


def test_periodic_images_reach_across_the_boundary(points):
    nodes, _ = points
    query = np.array([[0.02, 1.0]])
    plain = build_clouds(nodes, query, Ball(0.2))
    periodic = build_clouds(nodes, query, Ball(0.2), periods=[[6.0, 0.0]])
    across = np.flatnonzero(nodes[:, 0] >= 6.0 - 0.18 - 1e-12)  # within 0.2 of x = 0.02 across x = 0
    wrapped = periodic.members[periodic.relative[:, 0] < -0.02 - 1e-12]
    assert len(wrapped) > 0 and set(wrapped.tolist()) <= set(across.tolist())
    assert len(periodic.members) > len(plain.members)
    assert np.all(np.linalg.norm(periodic.relative, axis=1) <= 0.2)


def test_knn_sampling_and_subsets(points):
    nodes, velocity = points
    rng = np.random.default_rng(0)
    knn = build_clouds(nodes, nodes[:50], KNearest(12))
    assert np.all(knn.sizes == 12)
    clouds = build_clouds(nodes, nodes[:50], Ellipse(), velocity[:50])
    sample = clouds.sample(20, rng)
    assert np.all(sample.sizes == 20)
    for i in range(50):
        got = sample.members[sample.offsets[i] : sample.offsets[i + 1]]
        assert set(got.tolist()) <= members(clouds, i)
        if clouds.sizes[i] >= 20:
            assert len(set(got.tolist())) == 20  # without replacement
    sub = clouds.subset(np.array([7, 3]))
    assert members(sub, 0) == members(clouds, 7) and members(sub, 1) == members(clouds, 3)


@pytest.mark.parametrize("shape", [Ellipse(), Ball(0.3), KNearest(12)])
def test_kept_clouds_give_what_a_search_gives(points, shape, monkeypatch):
    """A training case's clouds searched once and kept (`NodeIndex.keep`): any batch's clouds,
    sampled or whole, are bit for bit those of a search of that batch, with the same draws."""
    nodes, velocity = points
    index = NodeIndex(nodes, [[6.0, 0.0]])
    kept = index.keep(nodes, shape, velocity, chunk=700)  # several chunks
    assert kept.images.dtype == np.int32 and kept.offsets[-1] == len(kept.images)
    batch = np.random.default_rng(5).permutation(len(nodes))[:300]
    searched = index.clouds(nodes[batch], shape, velocity[batch])
    for n in (None, 20, 10_000):  # whole, sampled, sampled with replacement
        got = kept.clouds(batch, n, np.random.default_rng(9))
        want = searched if n is None else searched.sample(n, np.random.default_rng(9))
        for name in ("offsets", "members", "relative"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), (n, name)
    import psutil

    class Scarce:
        available = int(kept.images.nbytes * 3)  # a quarter of it is less than the clouds take

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Scarce)
    assert index.keep(nodes, shape, velocity) is None  # each batch searches its own then


def test_membership_does_not_depend_on_the_frame(points):
    nodes, velocity = points
    rng = np.random.default_rng(1)
    rotation = random_orthogonal(2, rng, reflect=True)
    shift = np.array([3.0, -7.0])
    periods = np.array([[6.0, 0.0]])
    queries = np.arange(0, 3000, 131)
    a = build_clouds(nodes, nodes[queries], Ellipse(), velocity[queries], periods)
    b = build_clouds(
        nodes @ rotation.T + shift, nodes[queries] @ rotation.T + shift, Ellipse(), velocity[queries] @ rotation.T, periods @ rotation.T
    )
    for i in range(len(queries)):
        assert members(a, i) == members(b, i)


def test_bad_input_is_refused(points):
    nodes, velocity = points
    with pytest.raises(CloudError, match="no points"):
        build_clouds(nodes, np.array([[100.0, 100.0]]), Ball(0.1))
    with pytest.raises(CloudError, match="velocity"):
        build_clouds(nodes, nodes[:3], Ellipse())
    with pytest.raises(CloudError, match="not finite"):
        build_clouds(nodes, np.array([[np.nan, 0.0]]), Ball(0.1))
    with pytest.raises(CloudError):
        Ball(-1.0)
    with pytest.raises(CloudError):
        KNearest(0)


def test_mesh_graph_among_cloud_members():
    """Two triangles sharing the edge 1-2 of a unit square; node 3 is not a neighbour of node 0."""
    graph = MeshGraph(np.array([[0, 1, 2], [1, 3, 2]]), 4)
    clouds = Clouds(np.array([0, 3, 5]), np.array([0, 3, 1, 3, 2]), np.zeros((5, 2)))
    source, target = graph.edges(clouds)  # into the clouds padded to 3 members: cloud c's member a is 3 c + a
    adjacency = np.zeros((2, 3, 3))
    adjacency[target // 3, target % 3, source % 3] = 1
    assert np.array_equal(source // 3, target // 3) and len(source) == int(adjacency.sum())  # within clouds, no repeats
    assert np.array_equal(adjacency[0], [[1, 0, 1], [0, 1, 1], [1, 1, 1]])  # members 0, 3, 1
    assert np.array_equal(adjacency[1], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])  # members 3, 2 and padding


def test_clouds_larger_than_the_free_memory_are_refused_before_they_are_built(points, monkeypatch):
    import psutil

    nodes = points[0][:500]
    whole = Ball(10.0)  # every node in every cloud
    assert len(build_clouds(nodes, nodes, whole).members) == 500**2  # fits
    free = 500**2 * 100 / 2  # half of what 100 bytes per member of 500 clouds of 500 members need
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("Memory", (), {"available": free})())
    build_clouds(nodes, nodes, whole)  # below NodeIndex.UNCHECKED_BYTES (256 MB): not checked
    monkeypatch.setattr(NodeIndex, "UNCHECKED_BYTES", 0)
    with pytest.raises(CloudError, match="500 clouds of about 500 members each would need about 0.025 GB"):
        build_clouds(nodes, nodes, whole)
    build_clouds(nodes, nodes, Ball(0.3))  # small clouds still fit
