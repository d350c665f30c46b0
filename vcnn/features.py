"""Per-member features of a cloud: vectors (rotate with the frame) and invariant scalars.

Vectors, chosen by name:
  position           member position relative to the query point (periodic shift included)
  velocity           member velocity
  relative_velocity  member velocity minus the query-point velocity (Galilean invariant)
Invariant scalars, chosen by name:
  strain_rate, wall_distance, ...  any scalar point array of the MeshFields, by its name
  speed              |u| of the member;  relative_speed  |u_j - u_i|
  proximity          exp(-|r| / b), b = sqrt(D / zeta): the reaction-diffusion decay length
  upwind_proximity   the 1-D convection-diffusion-reaction Green's function
                     exp(-(r . u_i) / (2 D) - kappa |r|), kappa = sqrt(|u_i|^2 / (4 D^2) + zeta / D):
                     members upstream of the query point weigh more
  node_weight        the member's node weight (its share of the domain)
Cloud averages use quadrature weights: the node weights normalised to sum to one in each cloud,
so that averages approximate integral means over the region and not counts of nodes.

The member features and their padded layout are computed from numpy arrays (datasets, training)
or from torch tensors on the network's device (`PointArrays`, inference): one code for both, so
that a GPU computes its own features instead of waiting on one CPU core for them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from meshes.fields import MeshFields
from vcnn.clouds import Clouds, PaddedClouds
from vcnn.errors import VcnnError

VECTORS = ("position", "velocity", "relative_velocity")
DERIVED_SCALARS = ("speed", "relative_speed", "proximity", "upwind_proximity", "node_weight")


class FeatureError(VcnnError):
    """Unknown feature names, missing or non-finite fields."""


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Which features, and the transport coefficients that set the proximity length scales."""

    vectors: tuple[str, ...] = ("position", "velocity")
    scalars: tuple[str, ...] = ("strain_rate", "wall_distance", "speed", "proximity", "upwind_proximity")
    diffusivity: float = 0.1
    reaction: float = 3.0
    velocity_field: str = "velocity"

    def __post_init__(self):
        object.__setattr__(self, "vectors", tuple(self.vectors))
        object.__setattr__(self, "scalars", tuple(self.scalars))
        unknown = [v for v in self.vectors if v not in VECTORS]
        if unknown:
            raise FeatureError(f"unknown vector features {unknown}; choose from {list(VECTORS)}")
        if not self.vectors:
            raise FeatureError("at least one vector feature is needed")
        if not (self.diffusivity > 0 and self.reaction > 0):
            raise FeatureError("diffusivity and reaction must be positive")

    def inputs(self) -> dict:
        """{name: kind} of the point arrays the features are computed from (node weights aside)."""
        return {self.velocity_field: "vector", **{name: "scalar" for name in self.scalars if name not in DERIVED_SCALARS}}

    def check_fields(self, fields: MeshFields) -> None:
        """Raise FeatureError unless every needed array is present, of the right kind and finite."""
        if not np.isfinite(fields.weights).all():
            raise FeatureError("the node weights ('node_weight') hold NaN or infinite values")
        for name, kind in self.inputs().items():
            if name not in fields.point_data:
                raise FeatureError(f"unknown feature {name!r}: no such point array (have {sorted(fields.point_data)})")
            if fields.kind(name) != kind:
                raise FeatureError(f"feature {name!r} must be a {kind} array, it is a {fields.kind(name)}")
            if not np.isfinite(fields[name]).all():
                raise FeatureError(f"point array {name!r} holds NaN or infinite values")


@dataclasses.dataclass
class CloudFeatures:
    """Flat (CSR, aligned with the clouds) member features."""

    offsets: np.ndarray  # (Q + 1,)
    vectors: np.ndarray  # (M, n_vectors, dim)
    scalars: np.ndarray  # (M, n_scalars)
    weights: np.ndarray  # (M,) normalised to sum to 1 within each cloud


class PointArrays:
    """The point arrays a `FeatureSpec` reads and the node weights, as tensors on one device, for
    `padded_features` in place of the `MeshFields` they come from: uploaded once a call, read by
    every batch of it. From fields that the caller has checked (`FeatureSpec.check_fields`: a
    prediction checks them once a call, a training once)."""

    def __init__(self, fields: MeshFields, spec: FeatureSpec, device: str | torch.device):
        self.arrays = {name: torch.as_tensor(fields[name], device=device) for name in spec.inputs()}
        self.weights = torch.as_tensor(fields.weights, device=device)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.arrays[name]


def clouds_on(clouds: PaddedClouds, device: str | torch.device) -> PaddedClouds:
    """Dense clouds as tensors on `device`, for `padded_features` with a `PointArrays` there."""
    return PaddedClouds(*(torch.as_tensor(a, device=device) for a in (clouds.members, clouds.relative, clouds.padding)))


def _namespace(a):
    """numpy for numpy arrays, torch for tensors: the few functions below exist in both."""
    return np if isinstance(a, np.ndarray) else torch


def _norm(v):
    """|v| over the last axis (einsum: five times faster than np.linalg.norm on (M, 2) arrays)."""
    xp = _namespace(v)
    return xp.sqrt(xp.einsum("...d,...d->...", v, v))


def member_features(fields: MeshFields | PointArrays, members, relative, query_velocity, spec: FeatureSpec) -> tuple[list, list]:
    """The vectors [(..., dim)] and scalars [(...)] of `spec`, in its order, for cloud members in
    any layout: `members` (...) node indices, `relative` (..., dim) their positions from their
    query point, `query_velocity` the velocity there (broadcast against `relative`); numpy arrays,
    or tensors with `fields` a `PointArrays` on their device."""
    xp = _namespace(relative)
    r, ui = relative, query_velocity
    u = fields[spec.velocity_field][members]
    D, zeta = spec.diffusivity, spec.reaction
    distance = _norm(r)
    kappa = xp.sqrt(_norm(ui) ** 2 / (4 * D**2) + zeta / D)
    vectors = {"position": lambda: r, "velocity": lambda: u, "relative_velocity": lambda: u - ui}
    derived = {
        "speed": lambda: _norm(u),
        "relative_speed": lambda: _norm(u - ui),
        "proximity": lambda: xp.exp(-distance / math.sqrt(D / zeta)),
        "upwind_proximity": lambda: xp.exp(-xp.einsum("...d,...d->...", r, ui) / (2 * D) - kappa * distance),
        "node_weight": lambda: fields.weights[members],
    }
    return [vectors[name]() for name in spec.vectors], [derived[name]() if name in derived else fields[name][members] for name in spec.scalars]


def cloud_features(fields: MeshFields, clouds: Clouds, query_velocity: np.ndarray, spec: FeatureSpec) -> CloudFeatures:
    """Features of every cloud member; query_velocity (Q, dim) is the velocity at the query points."""
    spec.check_fields(fields)
    owner = clouds.owner()
    vectors, scalars = member_features(fields, clouds.members, clouds.relative, np.asarray(query_velocity, dtype=float)[owner], spec)
    return CloudFeatures(
        clouds.offsets,
        np.stack(vectors, axis=1),
        np.stack(scalars, axis=1) if scalars else np.zeros((len(clouds.members), 0)),
        _cloud_weights(fields, clouds.members, owner, len(clouds)),
    )


def _cloud_weights(fields: MeshFields, members: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """(M,) the members' node weights normalised to sum to one in each cloud."""
    weights = fields.weights[members]
    return weights / np.bincount(owner, weights, minlength=count)[owner]


def padded_features(fields: MeshFields | PointArrays, clouds: PaddedClouds, query_velocity, spec: FeatureSpec, dtype=np.float64) -> tuple:
    """Dense (Q, n_max, k, dim) vectors, (Q, n_max, f) scalars and (Q, n_max) weights of `dtype`
    (computed in float64), zero in padding: the flat features of `cloud_features` in that layout,
    bit for bit, without the flat arrays and their scatter (a third of the features' time in the
    coupled loop). numpy arrays from `MeshFields`, or tensors on the device of a `PointArrays`
    (`clouds` and `query_velocity` tensors there too, `dtype` a torch type)."""
    if isinstance(fields, MeshFields):
        spec.check_fields(fields)
        query_velocity = np.asarray(query_velocity, dtype=float)
    xp = _namespace(clouds.relative)
    vectors, scalars = member_features(fields, clouds.members, clouds.relative, query_velocity[:, None], spec)
    dense_vectors = xp.stack(vectors, 2)
    dense_scalars = xp.stack(scalars, 2) if scalars else dense_vectors[:, :, 0, :0]  # (q, n, 0), on the vectors' device
    dense_vectors[clouds.padding], dense_scalars[clouds.padding] = 0, 0
    weights = xp.where(clouds.padding, 0.0, fields.weights[clouds.members])
    totals = xp.cumsum(weights, 1)[:, -1:]  # summed in order, as `np.bincount` sums the flat ones
    return tuple(_cast(a, dtype) for a in (dense_vectors, dense_scalars, weights / totals))


def _cast(a, dtype):
    return a.astype(dtype, copy=False) if isinstance(a, np.ndarray) else a.to(dtype)


def flat(features: CloudFeatures, dtype=np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M, k, dim) vectors, (M, f) scalars and (M,) weights of `dtype`, one row per member: the
    edges of a whole-mesh network, whose clouds are the nodes' neighbourhoods."""
    return tuple(a.astype(dtype, copy=False) for a in (features.vectors, features.scalars, features.weights))
