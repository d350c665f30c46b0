"""Apply a cloud network to a whole field: full clouds around every node, batched evaluation.

The work splits into a plan (`plan_batches`: the clouds of every node, grouped into batches of
clouds of similar size) and its evaluation (`predict_fields`: features, padding, the network).
Grouping by size keeps the padding small: on the hills (ball clouds of 27 to 232 members) one
batch of every node padded to the largest cloud spends a third of the network's work on padding.
A whole-mesh network (`vcnn.nn.whole_mesh`) is one batch: the neighbourhood of every node, flat.
When the members do not depend on the flow (`shape.follows_flow` false: balls, k nearest), one
plan serves every call on the same mesh (`vcnn.closure.NeuralClosure` keeps it): only the
features are computed again, with torch on the network's device from the plan's copy there
(`Batch.on`): on a GPU, features computed in numpy on one CPU core took 80 to 90 % of a call.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from meshes.fields import MeshFields
from vcnn.clouds import Clouds, MeshGraph, NodeIndex, PaddedClouds, Shape
from vcnn.errors import VcnnError
from vcnn.features import FeatureSpec, PointArrays, cloud_features, clouds_on, flat, padded_features

GROUP = 256
"""Clouds per network call at most on the CPU: few enough that sorted sizes differ little within a
batch. On a GPU a call is bound by its kernel launches, not by its padding: there a batch is a whole
search (`plan_batches`' `batch_size`). An H200, 4,225 nodes in searches of 4,096: 27 ms a float32
call in 17 batches of 256 (5.6 % padding), 6.9 ms in 5 of 1,024 (22 %), 6.8 ms in 3 (33 %)."""


@dataclasses.dataclass
class Batch:
    """Query nodes evaluated in one network call, and their clouds."""

    nodes: np.ndarray
    clouds: Clouds | PaddedClouds  # dense where the network reads nothing but the members' features
    copies: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def on(self, device: torch.device) -> tuple[torch.Tensor, PaddedClouds]:
        """The nodes and the dense clouds as tensors on `device`, copied there once."""
        if device not in self.copies:
            self.copies[device] = (torch.as_tensor(self.nodes, device=device), clouds_on(self.clouds, device))
        return self.copies[device]


def plan_batches(
    model: torch.nn.Module,
    points: np.ndarray,
    index: NodeIndex,
    shape: Shape,
    velocity: np.ndarray | None = None,
    batch_size: int = 2048,
    max_elements: int = 2**26,
    group: int | None = None,
    queries: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> list[Batch]:
    """The clouds around every point (or the points `queries` index), searched `batch_size`
    queries at a time (memory grows with that, not with the field), each search sorted by cloud
    size and cut into batches of at most `group` clouds (default: `GROUP` on the CPU, the whole
    search on a GPU, the `device` the network runs on) whose largest intermediate tensor in
    `model` stays within `max_elements` (pairwise networks on large clouds). `velocity` (N, dim)
    orients ellipse clouds."""
    if group is None:
        group = GROUP if torch.device(device).type == "cpu" else batch_size
    if model.whole_mesh:  # one graph: every node's neighbourhood, in node order
        if queries is not None and not np.array_equal(queries, np.arange(len(points))):
            raise VcnnError("a whole-mesh network predicts every node of a mesh at once: it cannot evaluate a subset of nodes")
        return [Batch(np.arange(len(points)), index.clouds(points, shape, velocity))]
    queries = np.arange(len(points)) if queries is None else np.asarray(queries, dtype=np.int64)
    batches = []
    for start in range(0, len(queries), batch_size):
        nodes = queries[start : start + batch_size]
        clouds = index.clouds(points[nodes], shape, None if velocity is None else velocity[nodes])
        order = np.argsort(clouds.sizes, kind="stable")
        sizes = clouds.sizes[order]
        first = 0
        while first < len(order):
            last = min(first + group, len(order))
            last = min(last, first + max(1, max_elements // model.elements_per_cloud(int(sizes[last - 1]))))
            picked = clouds.subset(order[first:last])
            batches.append(Batch(nodes[order[first:last]], picked if model.config.graph == "mesh" else picked.padded()))
            first = last
    return batches


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
    batches: list[Batch] | None = None,
    queries: np.ndarray | None = None,
) -> dict:
    """Outputs of `model` at every node of `fields`: {name: (N,), (N, dim) or (N, dim, dim) array},
    or at the nodes `queries` indexes (Q,...), the other nodes serving only as cloud members (a
    process's own nodes, beside the halo of its neighbours' nodes).

    `batches`: the plan of `plan_batches` for this mesh and these queries, if kept from an earlier
    call (clouds that do not follow the flow); otherwise planned here with `batch_size` and
    `max_elements`, on `index` (the nodes' KD-tree) if already built. The features are computed in
    float64 and the network runs in `dtype`. `timings`: seconds added to its "clouds" (search and
    features) and "network" entries.
    """
    spec.check_fields(fields)  # FeatureError, not KeyError, on a missing input array
    velocity = fields[spec.velocity_field]
    tic = time.perf_counter()
    if batches is None:
        index = NodeIndex(fields.points, periods) if index is None else index
        batches = plan_batches(model, fields.points, index, shape, velocity, batch_size, max_elements, queries=queries, device=device)
    seconds = {"clouds": time.perf_counter() - tic, "network": 0.0}
    graph = MeshGraph(fields.cells, fields.num_nodes) if model.config.graph == "mesh" else None
    parameter = next(model.parameters())
    device = torch.device(device)
    model = model.to(device=device, dtype=dtype).eval()
    precision = torch.empty(0, dtype=dtype).numpy().dtype
    outputs = np.empty((fields.num_nodes, model.config.width))
    with torch.inference_mode():
        arrays_there = PointArrays(fields, spec, device) if graph is None and not model.whole_mesh else None
        for batch in batches:
            tic = time.perf_counter()
            if model.whole_mesh:
                arrays = flat(cloud_features(fields, batch.clouds, velocity[batch.nodes], spec), precision) + (batch.clouds.edges(),)
            elif graph is None:
                nodes, dense = batch.on(device)
                arrays = padded_features(arrays_there, dense, arrays_there[spec.velocity_field][nodes], spec, dtype)
            else:
                arrays = padded_features(fields, batch.clouds.padded(), velocity[batch.nodes], spec, precision)
            inputs = [torch.as_tensor(a, device=device) for a in arrays]
            inputs += [] if graph is None else [torch.as_tensor(graph.edges(batch.clouds), device=device)]
            toc = time.perf_counter()
            outputs[batch.nodes] = model(*inputs).cpu().numpy()
            seconds["clouds"] += toc - tic
            seconds["network"] += time.perf_counter() - toc
    model.to(device=parameter.device, dtype=parameter.dtype)
    outputs = outputs if queries is None else outputs[queries]
    if timings is not None:
        for key, value in seconds.items():
            timings[key] = timings.get(key, 0.0) + value
    return {name: value.numpy() for name, value in model.split(torch.from_numpy(outputs)).items()}


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
