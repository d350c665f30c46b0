"""Apply a cloud network to a whole field: full clouds around every node, batched evaluation."""

from __future__ import annotations

import numpy as np
import torch

from meshes.fields import MeshFields
from vcnn.clouds import MeshGraph, Shape, build_clouds
from vcnn.features import FeatureSpec, cloud_features, pad


def predict_fields(
    model: torch.nn.Module,
    fields: MeshFields,
    shape: Shape,
    spec: FeatureSpec,
    periods: np.ndarray | None = None,
    batch_size: int = 2048,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    max_elements: int = 2**26,
) -> dict:
    """Outputs of `model` at every node of `fields`: {name: (N,), (N, dim) or (N, dim, dim) array}.

    Batches hold at most `batch_size` clouds, fewer when the model's largest intermediate tensor
    would pass `max_elements` (pairwise networks on large clouds).
    """
    velocity = fields[spec.velocity_field]
    clouds = build_clouds(fields.points, fields.points, shape, velocity, periods)
    graph = MeshGraph(fields.cells, fields.num_nodes) if model.config.graph == "mesh" else None
    largest = int(np.diff(clouds.offsets).max())
    batch_size = max(1, min(batch_size, max_elements // model.elements_per_cloud(largest)))
    parameter = next(model.parameters())
    model = model.to(device=device, dtype=dtype).eval()
    results = []
    with torch.no_grad():
        for start in range(0, len(clouds), batch_size):
            index = np.arange(start, min(start + batch_size, len(clouds)))
            subset = clouds.subset(index)
            arrays = pad(cloud_features(fields, subset, velocity[index], spec)) + (() if graph is None else (graph.among(subset),))
            tensors = [torch.as_tensor(a, dtype=dtype, device=device) for a in arrays]
            results.append(model(*tensors).cpu().double())
    model.to(device=parameter.device, dtype=parameter.dtype)
    return {name: value.numpy() for name, value in model.split(torch.cat(results)).items()}


def relative_l2(fields: MeshFields, predictions: dict) -> dict:
    """{name: node-weighted relative L2 error of predictions[name] against fields[name]}
    (for vectors and tensors, of their Euclidean and Frobenius norms)."""
    w = fields.weights

    def squared(a):
        return (np.reshape(a, (len(w), -1)) ** 2).sum(axis=1)

    return {
        name: float(np.sqrt(w @ squared(value - fields[name]) / (w @ squared(fields[name]))))
        for name, value in predictions.items()
    }
