"""The nodes a process's closure reads: its own, and the other processes' nodes within reach.

A closure whose output at a node depends on the flow within a distance `reach` of it (a network on
ball clouds) needs, on each MPI rank, the nodes the rank owns and a halo: the nodes of other ranks
within `reach` of them, across periodic boundaries too. `NodeHalo` finds the halo once per mesh
(bounding boxes first, then the exact distances, then each sender told what to send), and then
exchanges only the halo's values at every call: no rank ever holds the whole mesh.
"""

from __future__ import annotations

import numpy as np
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc
from scipy.spatial import cKDTree

from meshes.fields import MeshFields, lumped_node_weights
from solvers.errors import SolverError

MARGIN = 1e-9
"""Relative slack on `reach` when the halo is chosen: a node at the cloud's edge, rounded either
way, is kept (a halo node too many costs nothing but its values)."""


class NodeHalo:
    """This rank's own nodes (`owned`, in the order of the owned P1 dofs) followed by its halo.

    points (owned + halo, dim), weights (the whole mesh's lumped node weights at those nodes),
    ids (their indices in `to_mesh_fields`'s order) are fixed per mesh; `fields(arrays)` makes the
    MeshFields of a call from the owned nodes' values.
    """

    def __init__(self, space: fem.FunctionSpace, reach: float, periods=None):
        """`space`: the P1 space of the closure's fields (its owned dofs are the owned nodes)."""
        if not reach > 0:
            raise SolverError(f"a halo needs a positive reach, got {reach}")
        mesh = space.mesh
        self.comm, self.dim = mesh.comm, mesh.geometry.dim
        self.owned = space.dofmap.index_map.size_local
        rows = np.empty(len(mesh.geometry.x), dtype=np.int64)
        rows[space.dofmap.list.array] = mesh.geometry.dofmap.array  # P1 dof -> geometry row
        self.rows = rows[: self.owned]
        points = mesh.geometry.x[self.rows, : self.dim]
        ids = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)[self.rows]
        weights = self._owned_weights(space, rows)
        shifts = [np.zeros(self.dim)]
        for vector in np.zeros((0, self.dim)) if periods is None else np.atleast_2d(np.asarray(periods, dtype=float)):
            shifts += [vector, -vector]
        self._send = self._find(points, shifts, reach * (1.0 + MARGIN))
        received = self._exchange({"ids": ids, "points": points, "weights": weights})
        self.ids = np.concatenate([ids, received["ids"]])
        self.points = np.concatenate([points, received["points"]])
        self.weights = np.concatenate([weights, received["weights"]])

    @property
    def size(self) -> int:
        """Halo nodes on this rank (not counting its own)."""
        return len(self.ids) - self.owned

    def _owned_weights(self, space, rows) -> np.ndarray:
        """Lumped node weights of the whole mesh at the owned nodes: each rank's own cells add
        theirs, and the ghosts' shares are summed into their owners (PETSc's reverse scatter)."""
        mesh = space.mesh
        tdim = mesh.topology.dim
        per_cell = len(mesh.geometry.dofmap.links(0))
        cells = mesh.geometry.dofmap.array.reshape(-1, per_cell)[: mesh.topology.index_map(tdim).size_local]
        cell_type = {3: "triangle", 4: "quad"}[per_cell] if tdim == 2 else "tetra"
        partial = lumped_node_weights(mesh.geometry.x[:, : self.dim], cells, cell_type)
        function = fem.Function(space)
        function.x.array[:] = partial[rows[: len(function.x.array)]]
        function.vector.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        return function.x.array[: self.owned].copy()

    def _find(self, points: np.ndarray, shifts: list, reach: float) -> list[np.ndarray]:
        """For every rank, the indices of this rank's owned nodes it needs: those within `reach`
        of its owned nodes. Bounding boxes pick the candidates, the receiver keeps the ones truly
        within reach (KD-tree, every periodic shift) and tells the sender."""
        comm = self.comm
        box = (points.min(axis=0), points.max(axis=0)) if len(points) else None
        boxes = comm.allgather(box)
        candidates = []
        for rank, other in enumerate(boxes):
            near = np.zeros(len(points), dtype=bool)
            if rank != comm.rank and other is not None:
                for shift in shifts:
                    moved = points + shift
                    near |= np.all((moved >= other[0] - reach) & (moved <= other[1] + reach), axis=1)
            candidates.append(np.flatnonzero(near))
        offered = comm.alltoall([points[c] for c in candidates])
        tree = cKDTree(points) if len(points) else None
        kept = []
        for theirs in offered:
            keep = np.zeros(len(theirs), dtype=bool)
            if tree is not None and len(theirs):
                for shift in shifts:
                    distance, _ = tree.query(theirs + shift, distance_upper_bound=reach)
                    keep |= np.isfinite(distance)
            kept.append(keep)
        answers = comm.alltoall(kept)
        return [c[keep] for c, keep in zip(candidates, answers)]

    def _exchange(self, owned: dict) -> dict:
        """The halo's values of `owned` ({name: array over the owned nodes}), in halo order."""
        received = self.comm.alltoall([{name: values[send] for name, values in owned.items()} for send in self._send])
        return {name: np.concatenate([part[name] for part in received]) for name in owned}

    def fields(self, owned: dict, metadata: dict) -> MeshFields:
        """MeshFields on the owned nodes and the halo (no cells: weights given), from the owned
        nodes' values {name: array with the owned nodes first}."""
        halo = self._exchange(owned)
        data = {name: np.concatenate([values, halo[name]]) for name, values in owned.items()}
        cells = np.zeros((0, 3 if self.dim == 2 else 4), dtype=np.int64)
        return MeshFields(self.points, cells, "triangle" if self.dim == 2 else "tetra", self.weights, data, dict(metadata))

    def statistics(self) -> dict:
        """Owned and halo nodes per rank, gathered on every rank (for reports and benchmarks)."""
        return {"owned": self.comm.allgather(self.owned), "halo": self.comm.allgather(self.size)}


def summed_over_ranks(comm: MPI.Comm):
    """Sums over nodes split among the ranks, added up: the `total` a distributed closure is given."""
    return lambda values: comm.allreduce(np.asarray(values, dtype=float), op=MPI.SUM)
