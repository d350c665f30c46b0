"""Cloud features: names, validation, quadrature weights, Galilean invariance."""

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

from meshes.fields import MeshFields
from vcnn.clouds import Ellipse, build_clouds
from vcnn.clouds import slots
from vcnn.features import DERIVED_SCALARS, VECTORS, FeatureError, FeatureSpec, PointArrays, cloud_features, padded_features


@pytest.fixture
def fields():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, [3, 1], (300, 2))
    velocity = np.c_[np.ones(300), 0.1 * points[:, 0]]
    return MeshFields(points, Delaunay(points).simplices, point_data={"velocity": velocity, "strain_rate": points[:, 1], "wall_distance": points[:, 1]})


def features_of(fields, spec, velocity=None):
    velocity = fields["velocity"] if velocity is None else velocity
    clouds = build_clouds(fields.points, fields.points, Ellipse(), velocity)
    return clouds, cloud_features(fields, clouds, velocity, spec)


def test_weights_are_quadrature_weights_per_cloud(fields):
    clouds, features = features_of(fields, FeatureSpec())
    sums = np.bincount(clouds.owner(), features.weights)
    assert np.allclose(sums, 1.0)
    vectors, scalars, weights = padded_features(fields, clouds.padded(), fields["velocity"], FeatureSpec())
    assert vectors.shape[:2] == scalars.shape[:2] == weights.shape and np.allclose(weights.sum(axis=1), 1.0)


def test_padded_features_are_the_flat_ones_in_place_and_zero_beyond(fields):
    """Every feature, computed in the dense layout (the coupled loop's), equals the flat one bit for
    bit at its member's (cloud, slot) and is zero in padding; float32 is the float64 rounded."""
    spec = FeatureSpec(vectors=VECTORS, scalars=("strain_rate", "wall_distance") + DERIVED_SCALARS)
    clouds, features = features_of(fields, spec)
    sizes = clouds.sizes
    assert sizes.min() < sizes.max()  # there is padding to check
    vectors, scalars, weights = padded_features(fields, clouds.padded(), fields["velocity"], spec)
    row, slot = clouds.owner(), slots(clouds.offsets)
    np.testing.assert_array_equal(vectors[row, slot], features.vectors)
    np.testing.assert_array_equal(scalars[row, slot], features.scalars)
    np.testing.assert_array_equal(weights[row, slot], features.weights)
    padding = np.arange(vectors.shape[1])[None, :] >= sizes[:, None]
    assert padding.any() and not vectors[padding].any() and not scalars[padding].any() and not weights[padding].any()
    single = padded_features(fields, clouds.padded(), fields["velocity"], spec, np.float32)
    for a, b in zip(single, (vectors, scalars, weights)):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b.astype(np.float32))



def test_features_from_tensors_are_the_numpy_ones(fields):
    """The torch form, which inference runs on the network's device (here the CPU): every feature
    within a few roundings of numpy's (torch's exp and sqrt are not numpy's), zero in padding, of
    the torch type asked for."""
    spec = FeatureSpec(vectors=VECTORS, scalars=("strain_rate", "wall_distance") + DERIVED_SCALARS)
    clouds = features_of(fields, spec)[0].padded()
    expected = padded_features(fields, clouds, fields["velocity"], spec)
    arrays = PointArrays(fields, spec, "cpu")
    there = type(clouds)(*(torch.as_tensor(a) for a in (clouds.members, clouds.relative, clouds.padding)))
    for dtype, tolerance in ((torch.float64, 1e-14), (torch.float32, 1e-6)):
        got = padded_features(arrays, there, arrays["velocity"], spec, dtype)
        for a, b in zip(got, expected):
            assert isinstance(a, torch.Tensor) and a.dtype == dtype and a.shape == b.shape
            np.testing.assert_allclose(a.numpy(), b, rtol=tolerance, atol=tolerance * np.abs(b).max())
            assert not a[there.padding].any()
    bare = FeatureSpec(scalars=())  # no scalars: an empty (Q, n, 0) block on the device
    scalars = padded_features(PointArrays(fields, bare, "cpu"), there, arrays["velocity"], bare, torch.float32)[1]
    assert scalars.shape == expected[1].shape[:2] + (0,) and scalars.dtype == torch.float32


def test_proximities_are_bounded_and_peak_at_the_query(fields):
    spec = FeatureSpec(scalars=("proximity", "upwind_proximity"))
    clouds, features = features_of(fields, spec)
    assert np.all(features.scalars <= 1.0 + 1e-12) and np.all(features.scalars > 0)
    at_query = np.linalg.norm(clouds.relative, axis=1) == 0
    assert np.allclose(features.scalars[at_query], 1.0)


def test_relative_velocity_is_galilean_invariant(fields):
    spec = FeatureSpec(vectors=("position", "relative_velocity"), scalars=("relative_speed", "proximity"))
    _, a = features_of(fields, spec)
    clouds = build_clouds(fields.points, fields.points, Ellipse(), fields["velocity"])  # the same clouds
    boost = np.array([0.7, -0.4])
    moving = MeshFields(fields.points, fields.cells, point_data={**fields.point_data, "velocity": fields["velocity"] + boost})
    b = cloud_features(moving, clouds, moving["velocity"], spec)
    assert np.allclose(a.vectors, b.vectors) and np.allclose(a.scalars, b.scalars)


def test_bad_names_and_values_are_refused(fields):
    with pytest.raises(FeatureError, match="unknown vector features"):
        FeatureSpec(vectors=("position", "vorticity"))
    with pytest.raises(FeatureError, match="unknown feature 'pressure'"):
        features_of(fields, FeatureSpec(scalars=("pressure",)))
    fields["strain_rate"] = np.where(np.arange(300) == 5, np.nan, 1.0)
    with pytest.raises(FeatureError, match="NaN"):
        features_of(fields, FeatureSpec())
