"""Clouds: for each query point, the mesh nodes that influence it.

Three shapes, all defined by distances and by the velocity direction only, so that the cloud of
a point does not depend on the frame of reference:

- `Ellipse`: the VCNN paper's region of influence. A 1-D convection-diffusion-reaction Green's
  function decays to `eps` at a streamwise distance a (upstream, where convection carries
  information from) and a cross-stream distance b:
      b = sqrt(D / zeta) |ln eps|,   a = |2 D ln eps / (|U| - sqrt(|U|^2 + 4 D zeta))|,
  with U the velocity at the query point. The region is the ellipse (ellipsoid in 3-D) with
  semi-axis a along U and b across it, centred at the query point.
- `Ball`: all nodes within a radius.
- `KNearest`: the k nearest nodes.

`MeshGraph` says which members of a cloud are mesh neighbours, for the networks that pass
messages along mesh edges instead of between every pair of members.

Periodic directions are handled with images: nodes are copied one period vector to each side
before the KD-tree search (period vectors, not axes, so that a rotated periodic domain is just as
periodic); a cloud stores node indices into the original nodes together with the
relative positions, which carry the periodic shift.

Clouds are stored flat (CSR): `offsets[i]:offsets[i+1]` are the members of cloud i.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
from scipy.spatial import cKDTree

from vcnn.errors import VcnnError


class CloudError(VcnnError):
    """A cloud that cannot be built (no points, bad parameters)."""


@dataclasses.dataclass(frozen=True)
class Ellipse:
    """Velocity-aligned ellipse of influence (Zhou, Han & Xiao 2022), threshold `eps`."""

    diffusivity: float = 0.1
    reaction: float = 3.0
    eps: float = 0.2
    follows_flow = True  # the members depend on the velocity: rebuilt whenever it changes

    def __post_init__(self):
        if not (self.diffusivity > 0 and self.reaction > 0 and 0 < self.eps < 1):
            raise CloudError("ellipse clouds need diffusivity > 0, reaction > 0 and 0 < eps < 1")

    def semi_axes(self, speed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Streamwise and cross-stream semi-axes (a, b) for the query-point speeds."""
        D, zeta, log_eps = self.diffusivity, self.reaction, abs(math.log(self.eps))
        cross = math.sqrt(D / zeta) * log_eps
        # a = 2 D |ln eps| / (sqrt(U^2 + 4 D zeta) - U), written without cancellation
        root = np.sqrt(speed**2 + 4 * D * zeta)
        stream = 2 * D * log_eps * (root + speed) / (4 * D * zeta)
        return stream, np.full_like(stream, cross)


@dataclasses.dataclass(frozen=True)
class Ball:
    radius: float
    follows_flow = False  # the members depend on the nodes alone: built once per mesh

    def __post_init__(self):
        if not self.radius > 0:
            raise CloudError(f"ball radius must be positive, got {self.radius}")


@dataclasses.dataclass(frozen=True)
class KNearest:
    """The k nearest nodes and every node tied with the k-th (to TIE relative distance): on a
    structured mesh many nodes lie at exactly the k-th distance, and which of them a plain
    k-nearest query keeps depends on round-off and node order, so the cloud would depend on the
    frame. Clouds therefore hold k or more members."""

    k: int
    TIE = 1e-9
    follows_flow = False

    def __post_init__(self):
        if int(self.k) != self.k or self.k < 1:
            raise CloudError(f"k must be a positive integer, got {self.k}")


Shape = Ellipse | Ball | KNearest
SHAPES = {"ellipse": Ellipse, "ball": Ball, "knn": KNearest}


def shape_from(table: dict) -> Shape:
    """A cloud shape from its table (study files, checkpoints), e.g. {shape = "ellipse", eps = 0.2}."""
    params = dict(table)
    kind = params.pop("shape", "ellipse")
    if kind not in SHAPES:
        raise CloudError(f"unknown cloud shape {kind!r}; choose from {sorted(SHAPES)}")
    try:
        return SHAPES[kind](**params)
    except TypeError as err:
        raise CloudError(f"[cloud] {kind}: {err}") from None


def slots(offsets: np.ndarray) -> np.ndarray:
    """Each member's position within its cloud (its column in padded arrays), from CSR offsets."""
    sizes = np.diff(offsets)
    return np.arange(offsets[-1]) - np.repeat(offsets[:-1], sizes)


@dataclasses.dataclass
class Clouds:
    """Members of each cloud: node indices and positions relative to the query point."""

    offsets: np.ndarray  # (Q + 1,)
    members: np.ndarray  # (M,) indices into the nodes
    relative: np.ndarray  # (M, dim) member position - query position (periodic shift included)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def owner(self) -> np.ndarray:
        """(M,) the cloud each member belongs to."""
        return np.repeat(np.arange(len(self)), self.sizes)

    def edges(self) -> np.ndarray:
        """(2, M) the clouds as a graph's edges: (member node, cloud) pairs, PyG's (source, target)
        order. With a cloud around every node, in node order, the graph of the neighbourhoods."""
        return np.stack([self.members, self.owner()])

    def sample(self, n: int, rng: np.random.Generator) -> "Clouds":
        """n members per cloud, drawn without replacement (with replacement for smaller clouds)."""
        picked = sampled(self.offsets, n, rng)
        return Clouds(np.arange(len(self) + 1) * n, self.members[picked], self.relative[picked])

    def padded(self) -> "PaddedClouds":
        """The same clouds as dense (Q, n_max) arrays."""
        q, n = len(self), int(self.sizes.max()) if len(self) else 0
        if n * q == len(self.members):  # all of one size (sampled): a reshape
            return PaddedClouds(self.members.reshape(q, n), self.relative.reshape(q, n, -1), np.zeros((q, n), dtype=bool))
        row, slot = self.owner(), slots(self.offsets)
        members = np.zeros((q, n), dtype=self.members.dtype)
        relative = np.zeros((q, n, self.relative.shape[1]))
        members[row, slot], relative[row, slot] = self.members, self.relative
        padding = np.ones((q, n), dtype=bool)
        padding[row, slot] = False
        return PaddedClouds(members, relative, padding)

    def subset(self, clouds: np.ndarray) -> "Clouds":
        """The clouds with the given indices, in that order."""
        offsets, picked = subset_of(self.offsets, clouds)
        return Clouds(offsets, self.members[picked], self.relative[picked])


def sampled(offsets: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(Q n,) positions of n members drawn from each of the clouds that `offsets` (Q + 1) delimit,
    without replacement (with replacement for smaller clouds)."""
    if n < 1:
        raise CloudError(f"cannot sample {n} points per cloud")
    sizes = np.diff(offsets)
    keys = rng.random((len(sizes), max(int(sizes.max()), n)))
    keys[np.arange(keys.shape[1])[None, :] >= sizes[:, None]] = np.inf  # beyond each cloud
    slot = np.argpartition(keys, n - 1, axis=1)[:, :n]
    small = sizes < n
    slot[small] = np.floor(rng.random((int(small.sum()), n)) * sizes[small, None]).astype(slot.dtype)
    return (offsets[:-1, None] + slot).ravel()


def subset_of(offsets: np.ndarray, clouds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, positions) of the clouds with the given indices, in that order."""
    clouds = np.asarray(clouds)
    sizes = np.diff(offsets)[clouds]
    subset = _offsets(sizes)
    return subset, np.repeat(offsets[clouds] - subset[:-1], sizes) + np.arange(subset[-1])


@dataclasses.dataclass
class KeptClouds:
    """The clouds of every node of a field, kept as indices into the images of its `NodeIndex`
    (4 bytes a member): in training every epoch draws from the same clouds (a case's fields do not
    change), so each case is searched once, not at every batch. `clouds` gives a batch's clouds
    bit for bit as a search and `Clouds.sample` would."""

    index: "NodeIndex"
    points: np.ndarray  # (N, dim) the query nodes
    offsets: np.ndarray  # (N + 1,)
    images: np.ndarray  # (M,) int32 image of each member

    def clouds(self, nodes: np.ndarray, n: int | None = None, rng: np.random.Generator | None = None) -> Clouds:
        """The clouds of `nodes`, with n members drawn from each by `rng` if n is given."""
        if n is None:
            offsets, picked = subset_of(self.offsets, nodes)
        else:  # the draws of `sampled` on the subset's offsets, shifted to the kept positions
            local = _offsets(np.diff(self.offsets)[nodes])
            picked = sampled(local, n, rng) + np.repeat(self.offsets[nodes] - local[:-1], n)
            offsets = np.arange(len(nodes) + 1) * n
        image = self.images[picked]
        owner = np.repeat(np.asarray(nodes), np.diff(offsets))
        return Clouds(offsets, self.index.source[image], self.index.images[image] - self.points[owner])


@dataclasses.dataclass
class PaddedClouds:
    """Clouds as dense (Q, n_max) arrays, each cloud's members first: features are computed in
    this layout directly, not computed flat and scattered into it at every call. A padding slot
    holds node 0 at a zero position (finite features, zeroed by `vcnn.features.padded_features`)."""

    members: np.ndarray  # (Q, n) node indices
    relative: np.ndarray  # (Q, n, dim), zero in padding
    padding: np.ndarray  # (Q, n) bool

    @property
    def sizes(self) -> np.ndarray:
        return np.count_nonzero(~self.padding, axis=1)


class MeshGraph:
    """Which nodes share a cell, as sorted (node, neighbour) pairs with every node its own
    neighbour. Nodes matched across a periodic boundary are distinct mesh nodes, so the graph does
    not cross that seam."""

    def __init__(self, cells: np.ndarray, num_nodes: int):
        cells = np.asarray(cells, dtype=np.int64)
        a, b = np.triu_indices(cells.shape[1], 1)
        i, j = cells[:, a].ravel(), cells[:, b].ravel()
        self.num_nodes = n = int(num_nodes)
        loops = np.arange(n, dtype=np.int64) * (n + 1)
        self.nodes, self.neighbours = np.divmod(np.unique(np.concatenate([i * n + j, j * n + i, loops])), n)
        self.starts = np.searchsorted(self.nodes, np.arange(n + 1))  # node u's pairs: starts[u]:starts[u + 1]

    def pairs(self) -> np.ndarray:
        """(2, E) every ordered pair of distinct nodes that share a cell: (source, target) rows."""
        distinct = self.nodes != self.neighbours
        return np.stack([self.neighbours[distinct], self.nodes[distinct]])

    def edges(self, clouds: Clouds) -> np.ndarray:
        """(2, E) mesh edges among the members of each cloud, self-loops included, as an edge index
        (source, target rows) into the clouds padded to n_max members: member a of cloud c is
        c n_max + a. Members that are one node (periodic images) are each other's neighbours.
        Work and memory grow with the members times the mesh degree, never as n_max^2."""
        owner, members = clouds.owner(), clouds.members
        count = self.starts[members + 1] - self.starts[members]
        member = np.repeat(np.arange(len(members)), count)  # each member once per mesh neighbour
        neighbour = self.neighbours[np.repeat(self.starts[members], count) + slots(_offsets(count))]
        keys = owner * self.num_nodes + members
        order = np.argsort(keys, kind="stable")
        wanted = owner[member] * self.num_nodes + neighbour
        first, last = np.searchsorted(keys[order], wanted, "left"), np.searchsorted(keys[order], wanted, "right")
        hits = last - first  # members of the same cloud that hold the neighbour
        target, source = np.repeat(member, hits), order[np.repeat(first, hits) + slots(_offsets(hits))]
        position = owner * int(clouds.sizes.max()) + slots(clouds.offsets)
        return np.stack([position[source], position[target]])


def _offsets(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)])


def _nonempty(sizes: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The offsets of clouds of these sizes; CloudError if one is empty."""
    if np.any(sizes == 0):
        first = int(np.argmax(sizes == 0))
        raise CloudError(f"{int((sizes == 0).sum())} clouds have no points (first at {queries[first].tolist()})")
    return _offsets(sizes)


class NodeIndex:
    """The nodes of a field with their periodic images in a KD-tree: built once, queried often
    (every training batch of a case queries the same index)."""

    def __init__(self, nodes: np.ndarray, periods: np.ndarray | None = None):
        nodes = np.asarray(nodes, dtype=float)
        if nodes.ndim != 2 or not np.isfinite(nodes).all():
            raise CloudError("nodes must be an (N, dim) array of finite coordinates")
        self.dim = nodes.shape[1]
        self.images, self.source = _periodic_images(nodes, periods)
        self.tree = cKDTree(self.images)
        self._members: dict = {}  # shape -> mean members of a cloud, sampled once (_check_memory)

    def clouds(self, queries: np.ndarray, shape: Shape, query_velocity=None, chunk: int = 4096) -> Clouds:
        """Clouds around `queries` (Q, dim); `query_velocity` (Q, dim) orients ellipse clouds.

        Queries are processed `chunk` at a time to bound memory. Raises CloudError if a cloud
        comes out empty.
        """
        queries, query_velocity = self._checked(queries, shape, query_velocity)
        self._check_memory(queries, shape, query_velocity)
        members, owners = [], []
        for start, flat, owner in self._searched(queries, shape, query_velocity, chunk):
            members.append(flat)
            owners.append(owner + start)
        flat = np.concatenate(members) if members else np.zeros(0, dtype=np.int64)
        owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
        offsets = _nonempty(np.bincount(owner, minlength=len(queries)), queries)
        return Clouds(offsets, self.source[flat], self.images[flat] - queries[owner])

    def _searched(self, queries: np.ndarray, shape: Shape, query_velocity, chunk: int):
        """(start, image index, query index within the chunk) of each `chunk` of queries in turn."""
        for start in range(0, len(queries), chunk):
            block = slice(start, start + chunk)
            yield (start,) + _search(self.tree, self.images, queries[block], shape, None if query_velocity is None else query_velocity[block])

    def _checked(self, queries, shape: Shape, query_velocity) -> tuple[np.ndarray, np.ndarray | None]:
        queries = np.asarray(queries, dtype=float)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise CloudError(f"queries must be a (Q, {self.dim}) array")
        if not np.isfinite(queries).all():
            raise CloudError("query coordinates are not finite")
        if isinstance(shape, Ellipse):
            if query_velocity is None:
                raise CloudError("ellipse clouds need the velocity at the query points")
            query_velocity = np.asarray(query_velocity, dtype=float)
            if query_velocity.shape != queries.shape or not np.isfinite(query_velocity).all():
                raise CloudError("query velocities must be finite and shaped like the queries")
        return queries, query_velocity

    def keep(self, queries: np.ndarray, shape: Shape, query_velocity=None, chunk: int = 4096) -> KeptClouds | None:
        """The clouds of all `queries` as `KeptClouds`, or None if they would take more than a
        quarter of the memory free now (then search each batch's clouds as it comes)."""
        import psutil

        queries, query_velocity = self._checked(queries, shape, query_velocity)
        self._check_memory(queries[:chunk], shape, None if query_velocity is None else query_velocity[:chunk])
        if self._members[shape] * len(queries) * 4 > psutil.virtual_memory().available / 4 or len(self.images) >= 2**31:
            return None
        images, sizes = [], []
        for start, flat, owner in self._searched(queries, shape, query_velocity, chunk):
            images.append(flat.astype(np.int32))
            sizes.append(np.bincount(owner, minlength=min(chunk, len(queries) - start)))
        return KeptClouds(self, queries, _nonempty(np.concatenate(sizes), queries), np.concatenate(images))

    BYTES_PER_MEMBER = 100
    """Memory per cloud member while the clouds are built and their features assembled (the
    search's lists, indices, relative positions, features): a bound, not a measurement of each."""
    UNCHECKED_BYTES = 2**28
    """Clouds needing less than this are not checked against the free memory (a system call)."""

    def _check_memory(self, queries: np.ndarray, shape: Shape, query_velocity) -> None:
        """Refuse clouds that would not fit in the memory free now (a radius as large as the
        domain on a large mesh), from the mean members of up to 32 clouds, sampled on the first
        call with this shape (every training batch and coupled iteration queries the same index)."""
        if shape not in self._members:
            sample = np.linspace(0, len(queries) - 1, min(len(queries), 32)).astype(int)
            velocity = None if query_velocity is None else query_velocity[sample]
            if isinstance(shape, KNearest):
                self._members[shape] = float(min(shape.k, self.tree.n))
            else:
                found = _search(self.tree, self.images, queries[sample], shape, velocity)[1]
                self._members[shape] = float(np.mean(np.bincount(found, minlength=len(sample))))
        members = self._members[shape]
        need = members * len(queries) * self.BYTES_PER_MEMBER
        if need < self.UNCHECKED_BYTES:
            return
        import psutil

        free = psutil.virtual_memory().available
        if need > free:
            raise CloudError(f"{len(queries):,} clouds of about {members:,.0f} members each would need about {need / 1e9:.3g} GB of memory, "
                             f"and {free / 1e9:.3g} GB is free: choose a smaller cloud (radius, k) or fewer nodes per batch")


def build_clouds(
    nodes: np.ndarray,
    queries: np.ndarray,
    shape: Shape,
    query_velocity: np.ndarray | None = None,
    periods: np.ndarray | None = None,
) -> Clouds:
    """Clouds around `queries` (Q, dim) among `nodes` (N, dim), in one call.

    periods (P, dim) are the lattice vectors of the periodic directions (e.g. [[Lx, 0]] for a
    domain periodic in x). To query the same nodes repeatedly, keep a `NodeIndex` instead.
    """
    nodes = np.asarray(nodes, dtype=float)
    queries = np.asarray(queries, dtype=float)
    if nodes.ndim != 2 or queries.ndim != 2 or nodes.shape[1] != queries.shape[1]:
        raise CloudError("nodes and queries must be (N, dim) and (Q, dim) arrays of the same dim")
    return NodeIndex(nodes, periods).clouds(queries, shape, query_velocity)


def _search(tree, images, queries, shape, velocity) -> tuple[np.ndarray, np.ndarray]:
    """(image index, query index) pairs of one block of queries, grouped by query."""
    if isinstance(shape, KNearest):
        k = min(shape.k, tree.n)
        distance, _ = tree.query(queries, k=k)
        kth = np.asarray(distance).reshape(len(queries), -1)[:, -1]
        radius = kth * (1.0 + shape.TIE)
    elif isinstance(shape, Ball):
        radius = np.full(len(queries), shape.radius)
    else:
        speed = np.linalg.norm(velocity, axis=1)
        stream, cross = shape.semi_axes(speed)
        radius = np.maximum(stream, cross)
    lists = tree.query_ball_point(queries, radius)
    sizes = np.fromiter((len(m) for m in lists), dtype=np.int64, count=len(lists))
    flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=int(sizes.sum()))
    owner = np.repeat(np.arange(len(queries)), sizes)
    if isinstance(shape, Ellipse):
        s = images[flat] - queries[owner]
        direction = velocity / np.maximum(speed, 1e-300)[:, None]
        along = np.einsum("md,md->m", s, direction[owner])
        across2 = np.maximum(np.einsum("md,md->m", s, s) - along**2, 0.0)
        inside = (along / stream[owner]) ** 2 + across2 / cross[owner] ** 2 <= 1.0 + 1e-12
        flat, owner = flat[inside], owner[inside]
    return flat, owner


def _periodic_images(nodes: np.ndarray, periods) -> tuple[np.ndarray, np.ndarray]:
    """Nodes with copies shifted by -v and +v for each period vector v, and the original index of each."""
    images, source = nodes, np.arange(len(nodes))
    if periods is None:
        return images, source
    periods = np.atleast_2d(np.asarray(periods, dtype=float))
    if periods.shape[1] != nodes.shape[1] or not np.isfinite(periods).all():
        raise CloudError(f"period vectors must be finite and have {nodes.shape[1]} components, got {periods.shape}")
    for vector in periods:
        images = np.concatenate([images, images - vector, images + vector])
        source = np.tile(source, 3)
    return images, source
