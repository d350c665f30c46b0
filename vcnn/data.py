"""Training data: solved cases (MeshFields) served as batches of clouds, built on the fly.

Each batch takes a shuffled block of query nodes of one case and samples a fixed number of
members from each of their clouds (fresh samples every epoch). A case's clouds are searched once,
at its first batch, with its KD-tree, and kept as 4-byte indices (`vcnn.clouds.KeptClouds`),
unless they would take more than a quarter of the free memory: then each batch searches its own.
The members are drawn on the CPU (numpy's generator: the same batches on every machine); their
features are computed there in numpy, or, for a training on a GPU (`CloudBatches.build_on`), in
torch on the GPU, where numpy's took most of a batch's time.
Whole-mesh networks train on whole cases instead (`GraphBatches`: one batch a case, built once).
"""

from __future__ import annotations

import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from meshes.errors import MeshError
from meshes.fields import MeshFields
from vcnn.clouds import KeptClouds, MeshGraph, NodeIndex, Shape
from vcnn.errors import VcnnError
from vcnn.features import FeatureSpec, PointArrays, cloud_features, clouds_on, flat, padded_features


@dataclasses.dataclass
class Case:
    """One solved case: its fields and period vectors (from the metadata key 'periods')."""

    name: str
    fields: MeshFields

    @property
    def periods(self) -> np.ndarray | None:
        periods = self.fields.metadata.get("periods")
        return None if periods is None else np.asarray(periods, dtype=float)

    @functools.cached_property
    def index(self) -> NodeIndex:
        """The KD-tree of the nodes (and periodic images), built on first use."""
        return NodeIndex(self.fields.points, self.periods)

    @functools.cached_property
    def graph(self) -> MeshGraph:
        """The mesh's edges, for mesh-graph networks, built on first use."""
        return MeshGraph(self.fields.cells, self.fields.num_nodes)


def load_case(path: str | Path, name: str | None = None) -> Case:
    try:
        fields = MeshFields.read(path)
    except MeshError as err:
        raise VcnnError(str(err)) from None
    return Case(name or Path(path).name, fields)


def check_targets(cases: list[Case], targets: tuple[str, ...], kinds: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The kinds (scalar, vector, tensor) of the targets, the same in every case; VcnnError if a
    target is missing, non-finite, of another kind than in the first case or than `kinds`."""
    for case in cases:
        for name in targets:
            if name not in case.fields.point_data:
                raise VcnnError(f"case {case.name} has no target {name!r}")
            if not np.isfinite(case.fields[name]).all():
                raise VcnnError(f"case {case.name}: target {name!r} holds NaN or infinite values")
        found = tuple(case.fields.kind(name) for name in targets)
        kinds = found if kinds is None else kinds
        if found != kinds:
            raise VcnnError(f"case {case.name}: targets {list(targets)} are {list(found)}, expected {list(kinds)}")
    return tuple(kinds)


@dataclasses.dataclass
class Batch:
    vectors: torch.Tensor  # (B, n, k, dim); a whole case (GraphBatches): (E, k, dim), one row per edge
    scalars: torch.Tensor  # (B, n, f); (E, f)
    weights: torch.Tensor  # (B, n); (E,)
    targets: torch.Tensor  # (B, width): flat, in the layout of `CloudNetConfig.layout`; (N, width)
    node_weights: torch.Tensor  # (B,) for integral-weighted losses and errors; (N,)
    edges: torch.Tensor | None = None  # (2, E) mesh edges among the members (MeshGraph.edges), if asked for; the case's edges
    scales: torch.Tensor | None = None  # (B, width): each cloud's error scale (`CloudBatches.weigh_cases`); None: the network's output scale

    @property
    def inputs(self) -> tuple[torch.Tensor, ...]:
        """What the network takes: vectors, scalars, weights (and the mesh edges, if any)."""
        return (self.vectors, self.scalars, self.weights) + (() if self.edges is None else (self.edges,))

    def to(self, device) -> "Batch":
        # not dataclasses.astuple: it deep-copies every tensor
        return Batch(*(None if (t := getattr(self, f.name)) is None else t.to(device) for f in dataclasses.fields(self)))


class CloudBatches:
    """Iterate over all query nodes of the cases in batches of clouds (training; evaluation
    applies the network to whole fields with `vcnn.inference.predict_fields`)."""

    def __init__(
        self,
        cases: list[Case],
        shape: Shape,
        spec: FeatureSpec,
        targets: tuple[str, ...],
        batch_size: int = 512,
        n_points: int | None = 150,
        dtype: torch.dtype = torch.float32,
        mesh_graph: bool = False,
        batches_per_epoch: int = 0,
        keep_clouds: bool = True,
    ):
        if not cases:
            raise VcnnError("no cases to serve")
        if batch_size < 1 or (n_points is not None and n_points < 1) or batches_per_epoch < 0:
            raise VcnnError("batch size and points per cloud must be positive, batches per epoch positive or 0 (all)")
        for case in cases:
            spec.check_fields(case.fields)
        self.target_kinds = check_targets(cases, targets)
        self.cases, self.shape, self.spec, self.targets = cases, shape, spec, tuple(targets)
        self.batch_size, self.n_points, self.dtype, self.mesh_graph = batch_size, n_points, dtype, mesh_graph
        self.batches_per_epoch = batches_per_epoch  # 0: every node once an epoch
        self.keep_clouds = keep_clouds
        self.kept: dict[int, KeptClouds | None] = {}  # id(case) -> its clouds, searched at its first batch
        self.scales: dict[int, np.ndarray] | None = None  # id(case) -> its error scales, once `weigh_cases` is called
        self.device = torch.device("cpu")  # where the features are computed (`build_on`)
        self.on_device: dict[int, PointArrays] = {}  # id(case) -> its point arrays there

    def build_on(self, device: torch.device) -> None:
        """Batches built on `device` from now on: on a GPU the features are computed there in torch
        (within a few roundings of numpy's, which the CPU keeps, bit for bit as before)."""
        self.device, self.on_device = torch.device(device), {}

    def weigh_cases(self) -> None:
        """From now on each batch carries its case's error scales (`case_scales`): the per_case loss."""
        self.scales = case_scales(self.cases, self.targets, self.target_kinds)

    def __len__(self) -> int:
        """Batches per epoch."""
        every = sum(-(-c.fields.num_nodes // self.batch_size) for c in self.cases)
        return min(every, self.batches_per_epoch) if self.batches_per_epoch else every

    def epoch(self, number: int, seed: int = 0, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        """Pass `number` over every node in shuffled blocks of about `batch_size`, clouds sampled
        afresh (over the first `batches_per_epoch` blocks of the shuffled order, if set).

        The draws depend only on (seed, number, rank, world), so a resumed run sees the batches an
        uninterrupted one would. With data-parallel training every rank walks the same blocks in
        the same order and takes every `world`-th node of each: together they make one batch.
        """
        if self.batch_size < world:
            raise VcnnError(f"batch size {self.batch_size} is smaller than the {world} data-parallel ranks")
        order = np.random.default_rng([seed, number])
        sampling = np.random.default_rng([seed, number, rank, world])
        blocks = []
        for k, case in enumerate(self.cases):
            count = -(-case.fields.num_nodes // self.batch_size)
            blocks += [(k, nodes) for nodes in np.array_split(order.permutation(case.fields.num_nodes), count)]
        for i in order.permutation(len(blocks))[: len(self)]:
            k, nodes = blocks[i]
            yield self.batch(self.cases[k], nodes[rank::world], sampling)

    def batch(self, case: Case, nodes: np.ndarray, rng: np.random.Generator) -> Batch:
        fields = case.fields
        velocity = fields[self.spec.velocity_field]
        if self.keep_clouds and id(case) not in self.kept:
            self.kept[id(case)] = case.index.keep(fields.points, self.shape, velocity)
        if kept := self.kept.get(id(case)):
            clouds = kept.clouds(nodes, self.n_points, rng)
        else:
            clouds = case.index.clouds(fields.points[nodes], self.shape, velocity[nodes])
            if self.n_points is not None:
                clouds = clouds.sample(self.n_points, rng)
        dense = clouds.padded()
        if self.device.type == "cpu":
            vectors, scalars, weights = padded_features(fields, dense, velocity[nodes], self.spec)
        else:
            if id(case) not in self.on_device:
                self.on_device[id(case)] = PointArrays(fields, self.spec, self.device)
            arrays = self.on_device[id(case)]
            query = arrays[self.spec.velocity_field][torch.as_tensor(nodes, device=self.device)]
            vectors, scalars, weights = padded_features(arrays, clouds_on(dense, self.device), query, self.spec, torch.float64)
        targets = flat_targets(fields, nodes, self.targets, self.target_kinds)
        arrays = (vectors, scalars, weights, targets, fields.weights[nodes])
        edges = torch.as_tensor(case.graph.edges(clouds)) if self.mesh_graph else None
        scales = None if self.scales is None else torch.as_tensor(self.scales[id(case)], dtype=self.dtype).expand(len(nodes), -1)
        return Batch(*(torch.as_tensor(a, dtype=self.dtype, device=self.device) for a in arrays), edges, scales)


class GraphBatches(CloudBatches):
    """Whole cases as batches, for whole-mesh networks (`vcnn.nn.whole_mesh`): one batch a case,
    the neighbourhood (cloud) of every node in node order, flat, with its edge index, in a shuffled
    order of cases every epoch. A case's features do not change, so each is built once and kept."""

    def __init__(self, cases: list[Case], shape: Shape, spec: FeatureSpec, targets: tuple[str, ...], dtype: torch.dtype = torch.float32):
        super().__init__(cases, shape, spec, targets, batch_size=1, n_points=None, dtype=dtype)
        self.built: dict[int, Batch] = {}

    def weigh_cases(self) -> None:
        raise VcnnError("the per_case loss weighs the clouds of many cases in a batch; a whole-mesh network's batch is one whole case: use the absolute loss")

    def __len__(self) -> int:
        return len(self.cases)

    def epoch(self, number: int, seed: int = 0, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        if world > 1:
            raise VcnnError("a whole-mesh network trains in one process: its batch is a whole case")
        for k in np.random.default_rng([seed, number]).permutation(len(self.cases)):
            if k not in self.built:
                self.built[k] = self.graph(self.cases[k])
            yield self.built[k]

    def graph(self, case: Case) -> Batch:
        fields = case.fields
        velocity = fields[self.spec.velocity_field]
        clouds = case.index.clouds(fields.points, self.shape, velocity)
        nodes = np.arange(fields.num_nodes)
        arrays = flat(cloud_features(fields, clouds, velocity, self.spec)) + (flat_targets(fields, nodes, self.targets, self.target_kinds), fields.weights)
        return Batch(*(torch.as_tensor(a, dtype=self.dtype) for a in arrays), torch.as_tensor(clouds.edges()))


def built_ahead(batches: Iterator[Batch]) -> Iterator[Batch]:
    """The same batches in the same order, each built in a background thread while the caller
    trains on the one before: the cloud search and features (numpy and scipy, which release the
    GIL for most of their work) overlap the network's step. At most two batches are held."""
    with ThreadPoolExecutor(1, thread_name_prefix="vcnn-batches") as builder:
        following = builder.submit(next, batches, None)
        while (batch := following.result()) is not None:
            following = builder.submit(next, batches, None)
            yield batch


def flat_targets(fields: MeshFields, nodes: np.ndarray, names: tuple[str, ...], kinds: tuple[str, ...]) -> np.ndarray:
    """(len(nodes), width) targets in the networks' flat layout: scalars, vectors, tensors."""
    order = [name for kind in ("scalar", "vector", "tensor") for name, k in zip(names, kinds) if k == kind]
    return np.concatenate([fields[name][nodes].reshape(len(nodes), -1) for name in order], axis=1)


def case_scales(cases: list[Case], names: tuple[str, ...], kinds: tuple[str, ...]) -> dict[int, np.ndarray]:
    """id(case) -> (width,) error scales that make every case count in the loss as it counts in
    validation's mean of per-case relative errors: each target over its node-weighted RMS in that
    case (one value for all components of a vector or tensor), times sqrt(nodes / mean nodes) so
    that a case weighs the same whatever its node count. Without them a family of geometries is
    fitted where its targets are large and its meshes fine. (On the Closure Challenge hills it
    fitted the short hill better, 0.40 against 0.49, but did not lower the validation mean over
    three seeds: docs/results.md.)"""
    mean_nodes = np.mean([case.fields.num_nodes for case in cases])
    order = [name for k in ("scalar", "vector", "tensor") for name, kind in zip(names, kinds) if kind == k]  # the flat layout's
    scales = {}
    for case in cases:
        fields, w = case.fields, case.fields.weights
        columns = []
        for name in order:
            value = fields[name].reshape(fields.num_nodes, -1)
            rms = np.sqrt(w @ (value**2).sum(axis=1) / w.sum())
            if not rms > 0:
                raise VcnnError(f"case {case.name}: target {name!r} is zero everywhere, so its errors cannot be taken relative to it")
            columns += [rms] * value.shape[1]
        scales[id(case)] = np.asarray(columns) * np.sqrt(fields.num_nodes / mean_nodes)
    return scales


def feature_statistics(batches: CloudBatches, max_batches: int = 20, seed: int = 0) -> dict:
    """Mean and standard deviation of the scalar features (weighted) and of the flat targets.

    For a vector target the mean is 0 and one scale serves all components; for a tensor the mean
    is an isotropic c I and one scale serves all: maps that commute with every rotation."""
    scalar_sum = scalar_sq = weight_sum = 0.0
    targets = []
    for i, batch in enumerate(batches.epoch(0, seed)):
        if i == max_batches:
            break
        batch = batch.to("cpu")  # built on a training's GPU, if `build_on` was called
        w = batch.weights.double().reshape(-1, 1)  # clouds (B, n) or a whole mesh's edges (E,)
        s = batch.scalars.double().reshape(len(w), -1)
        scalar_sum = scalar_sum + (w * s).sum(dim=0)
        scalar_sq = scalar_sq + (w * s**2).sum(dim=0)
        weight_sum = weight_sum + w.sum()
        targets.append(batch.targets.double())
    mean_s = scalar_sum / weight_sum
    std = (scalar_sq / weight_sum - mean_s**2).clamp_min(0).sqrt()
    t = torch.cat(targets)
    dim = batch.vectors.shape[-1]
    out_mean, out_std, start = [], [], 0
    for kind in ("scalar", "vector", "tensor"):
        for _ in range(batches.target_kinds.count(kind)):
            width = {"scalar": 1, "vector": dim, "tensor": dim * dim}[kind]
            mean, scale = _output_statistics(t[:, start : start + width], kind, dim)
            out_mean += mean.tolist()
            out_std += [scale if scale > 1e-12 else 1.0] * width
            start += width
    return {
        "scalar_mean": mean_s.tolist(),
        "scalar_std": torch.where(std > 1e-12, std, torch.ones_like(std)).tolist(),
        "output_mean": out_mean,
        "output_std": out_std,
    }


def _output_statistics(block: torch.Tensor, kind: str, dim: int) -> tuple[torch.Tensor, float]:
    """(mean, scale) of one target's columns: for a vector 0, for a tensor c I (both commute with R)."""
    if kind == "scalar":
        return block.mean(0), float(block.std())
    mean = torch.zeros(block.shape[1], dtype=block.dtype)
    if kind == "tensor":
        trace = block.reshape(-1, dim, dim).diagonal(dim1=1, dim2=2).sum(1).mean()
        mean = (trace / dim * torch.eye(dim, dtype=block.dtype)).reshape(-1)
    return mean, float((block - mean).pow(2).mean().sqrt())
