"""Apply a cloud network to a whole field: full clouds around every node, batched evaluation."""

from __future__ import annotations

import time

import numpy as np
import torch

from meshes.fields import MeshFields
from vcnn.clouds import MeshGraph, NodeIndex, Shape
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
    index: NodeIndex | None = None,
    timings: dict | None = None,
) -> dict:
    """Outputs of `model` at every node of `fields`: {name: (N,), (N, dim) or (N, dim, dim) array}.

    Clouds are built `batch_size` query nodes at a time (memory grows with the batch, not with
    the field); a batch is split further when the model's largest intermediate tensor would
    pass `max_elements` (pairwise networks on large clouds). `index`: the nodes' KD-tree, if
    already built (the same mesh queried again). `timings`: seconds added to its "clouds"
    (search and features) and "network" entries.
    """
    spec.check_fields(fields)  # FeatureError, not KeyError, on a missing input array
    velocity = fields[spec.velocity_field]
    index = NodeIndex(fields.points, periods) if index is None else index
    graph = MeshGraph(fields.cells, fields.num_nodes) if model.config.graph == "mesh" else None
    parameter = next(model.parameters())
    model = model.to(device=device, dtype=dtype).eval()
    results = []
    seconds = {"clouds": 0.0, "network": 0.0}
    with torch.no_grad():
        for start in range(0, fields.num_nodes, batch_size):
            tic = time.perf_counter()
            nodes = np.arange(start, min(start + batch_size, fields.num_nodes))
            clouds = index.clouds(fields.points[nodes], shape, velocity[nodes])
            step = max(1, max_elements // model.elements_per_cloud(int(clouds.sizes.max())))
            for first in range(0, len(nodes), step):
                part = np.arange(first, min(first + step, len(nodes)))
                subset = clouds.subset(part)
                arrays = pad(cloud_features(fields, subset, velocity[nodes[part]], spec))
                inputs = [torch.as_tensor(a, dtype=dtype, device=device) for a in arrays]
                inputs += [] if graph is None else [torch.as_tensor(graph.edges(subset), device=device)]
                toc = time.perf_counter()
                results.append(model(*inputs).cpu().double())
                seconds["clouds"] += toc - tic
                tic = time.perf_counter()
                seconds["network"] += tic - toc
    model.to(device=parameter.device, dtype=parameter.dtype)
    if timings is not None:
        for key, value in seconds.items():
            timings[key] = timings.get(key, 0.0) + value
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
