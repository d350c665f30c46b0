"""The symmetry checker: does a model transform as it declares?

A declaration maps each input and output name to 'scalar' (invariant), 'vector' (x -> R x) or
'tensor' (T -> R T R^T). The checker draws random orthogonal matrices (rotations and
reflections), translations and permutations, transforms the inputs, evaluates again and compares
with the transformed outputs, in float64. It reports the worst relative deviation per transform;
a non-finite prediction is refused (VcnnError), since NaN would compare as no deviation at all.

Two levels share the transforms:
- `check_field_model`: a model of a whole field (MeshFields -> named node arrays), the way a
  user applies it (clouds, features and network together): node coordinates are rotated,
  reflected and translated, node order permuted, vector and tensor arrays transformed.
- `check_cloud_model`: a network on cloud tensors (vectors, scalars, weights), with member
  permutations within each cloud, against the kinds its `symmetry` declares.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from meshes.fields import MeshFields
from vcnn.errors import VcnnError

KINDS = ("scalar", "vector", "tensor")
TOLERANCE = 1e-10  # relative deviation (float64) above which a declared invariance fails


def random_orthogonal(dim: int, rng: np.random.Generator, reflect: bool) -> np.ndarray:
    """Haar-random rotation (det +1), or a reflection (det -1) if `reflect`."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if (np.linalg.det(q) < 0) != reflect:
        q[:, 0] = -q[:, 0]
    return q


def planar_rotation(degrees: float) -> np.ndarray:
    """The 2-D rotation by `degrees` (counter-clockwise)."""
    angle = np.deg2rad(degrees)
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def transform(values: np.ndarray, kind: str, rotation: np.ndarray) -> np.ndarray:
    """Apply R to an array of scalars (N,), vectors (N, ..., dim) or tensors (N, dim, dim)."""
    if kind == "scalar":
        return values
    if kind == "vector":
        return values @ rotation.T
    if kind == "tensor":
        return rotation @ values @ rotation.T
    raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")


@dataclasses.dataclass
class SymmetryReport:
    """Worst relative deviation per transform (max over trials and outputs)."""

    deviations: dict

    def worst(self) -> float:
        return max(self.deviations.values())

    def violations(self, declared, tolerance: float = TOLERANCE) -> list[str]:
        """The transforms in `declared` (those the model claims invariance to) it deviates under."""
        return [name for name, value in self.deviations.items() if name in declared and value > tolerance]

    def table(self, declared=None) -> str:
        """Markdown table; with `declared`, a column saying whether each invariance is claimed."""
        header, rule = "| transform | worst relative deviation |", "|---|---|"
        if declared is not None:
            header, rule = header + " declared invariant |", rule + "---|"
        rows = [
            f"| {name} | {value:.2e} |" + ("" if declared is None else f" {'yes' if name in declared else 'no'} |")
            for name, value in self.deviations.items()
        ]
        return "\n".join([header, rule, *rows])

    def as_dict(self) -> dict:
        return {"worst_relative_deviation": dict(self.deviations)}


def _finite(outputs: dict, frame: str) -> dict:
    """`outputs` if every value is finite; VcnnError otherwise (NaN would compare as a deviation of 0)."""
    broken = [name for name, value in outputs.items() if not np.isfinite(np.asarray(value)).all()]
    if broken:
        raise VcnnError(f"the model predicts NaN or infinite {', '.join(broken)} ({frame}): no symmetry can be checked")
    return outputs


def _relative(a: dict, b: dict) -> float:
    worst = 0.0
    for name in a:
        scale = max(np.max(np.abs(a[name])), 1e-300)
        worst = max(worst, float(np.max(np.abs(a[name] - b[name])) / scale))
    return worst


def check_field_model(
    predict: Callable[[MeshFields, np.ndarray | None], dict],
    fields: MeshFields,
    outputs: dict,
    periods: np.ndarray | None = None,
    trials: int = 3,
    seed: int = 0,
) -> SymmetryReport:
    """Check `predict(fields, periods) -> {name: node array}` against `outputs` (name -> kind).

    `periods` (P, dim) are the lattice vectors of periodic data (None if not periodic); they are
    rotated with the field, since a rotated periodic domain is periodic along rotated vectors.
    """
    rng = np.random.default_rng(seed)
    base = _finite(predict(fields, periods), "on the field as given")
    deviations = {"rotation": 0.0, "reflection": 0.0, "translation": 0.0, "permutation": 0.0}
    for _ in range(trials):
        for name in deviations:
            rotation = np.eye(fields.dim)
            shift = np.zeros(fields.dim)
            order = np.arange(fields.num_nodes)
            if name in ("rotation", "reflection"):
                rotation = random_orthogonal(fields.dim, rng, reflect=name == "reflection")
            elif name == "translation":
                shift = rng.normal(scale=10.0, size=fields.dim)
            else:
                order = rng.permutation(fields.num_nodes)
            other = moved(fields, rotation, shift, order)
            other_periods = None if periods is None else np.asarray(periods) @ rotation.T
            result = _finite(predict(other, other_periods), f"after a {name}")
            expected = {k: transform(np.asarray(v)[order], outputs[k], rotation) for k, v in base.items()}
            deviations[name] = max(deviations[name], _relative(expected, result))
    return SymmetryReport(deviations)


def moved(fields: MeshFields, rotation: np.ndarray, shift: np.ndarray | None = None, order: np.ndarray | None = None) -> MeshFields:
    """The field in another frame: x -> R x + t, arrays transformed, nodes renumbered by `order`;
    period vectors in the metadata ('periods') turn with it."""
    shift = np.zeros(fields.dim) if shift is None else shift
    order = np.arange(fields.num_nodes) if order is None else order
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    data = {name: transform(fields[name], fields.kind(name), rotation)[order] for name in fields.point_data}
    metadata = dict(fields.metadata)
    if metadata.get("periods") is not None:
        metadata["periods"] = (np.asarray(metadata["periods"], dtype=float) @ rotation.T).tolist()
    return MeshFields(
        fields.points[order] @ rotation.T + shift,
        inverse[fields.cells],
        fields.cell_type,
        fields.weights[order],
        data,
        metadata,
    )


def check_cloud_model(model, vectors, scalars, weights, trials: int = 3, seed: int = 0, adjacency=None) -> SymmetryReport:
    """Check a torch cloud network against its declared output kinds, in float64.

    vectors (B, n, k, dim), scalars (B, n, f), weights (B, n) and, for mesh-graph networks, the
    members' adjacency (B, n, n): numpy arrays. Scalar outputs must not change, vector outputs
    must turn as R v and tensor outputs as R T R^T.
    """
    import torch

    rng = np.random.default_rng(seed)
    model = model.double().eval()
    kinds = model.symmetry["outputs"]
    dim = vectors.shape[-1]

    def run(v, s, w, a):
        with torch.no_grad():
            out = model(*(torch.from_numpy(x) for x in (v, s, w) + (() if a is None else (a,))))
        return {name: value.numpy() for name, value in model.split(out).items()}

    base = _finite(run(vectors, scalars, weights, adjacency), "on the clouds as given")
    deviations = {"rotation": 0.0, "reflection": 0.0, "permutation": 0.0}
    for _ in range(trials):
        for name in deviations:
            rotation = np.eye(dim)
            if name == "permutation":
                order = np.argsort(rng.random(weights.shape), axis=1)  # a permutation per cloud
                v = np.take_along_axis(vectors, order[:, :, None, None], axis=1)
                s = np.take_along_axis(scalars, order[:, :, None], axis=1)
                w = np.take_along_axis(weights, order, axis=1)
                a = None if adjacency is None else np.take_along_axis(np.take_along_axis(adjacency, order[:, :, None], axis=1), order[:, None, :], axis=2)
            else:
                rotation = random_orthogonal(dim, rng, reflect=name == "reflection")
                v, s, w, a = vectors @ rotation.T, scalars, weights, adjacency
            expected = {k: transform(value, kinds[k], rotation) for k, value in base.items()}
            deviations[name] = max(deviations[name], _relative(expected, _finite(run(v, s, w, a), f"after a {name}")))
    return SymmetryReport(deviations)
