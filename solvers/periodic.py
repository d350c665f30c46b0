"""Periodicity in x through dolfinx_mpc: right-boundary dofs are slaves of left-boundary dofs
(x in the domain's own frame, so that a turned domain stays periodic along its period vector).

The domains of `meshes.periodic_domain` carry identical node distributions on their left and
right boundaries, so each slave dof has exactly one master at the mapped position. The pairs
are matched here by coordinates (owned masters gathered on every rank, a KD-tree per scalar
component) and handed to dolfinx_mpc as explicit constraints, ghost slaves included: a rank
that sees a slave only as a ghost (a partition cut across the periodic boundary, as in a tall,
narrow channel) must still know its master, or its cells assemble into the slave's row and
Newton stalls. dolfinx_mpc 0.5's own
`create_periodic_constraint_*` is not used: it finds no slaves for a vector sub-space of a
mixed space, and under MPI it aborts (`num_found == num_unique`) when master points lie on
partition boundaries.
"""

from __future__ import annotations

import dolfinx_mpc
import numpy as np
from scipy.spatial import cKDTree

from meshes.periodic_domain import PeriodicDomain
from solvers.errors import SolverError


def periodic_constraint(domain: PeriodicDomain, space, bcs) -> dolfinx_mpc.MultiPointConstraint:
    """A finalized constraint u(x = Lx) = u(x = 0) on every component of a scalar or mixed `space`.

    Dofs carrying a Dirichlet condition in `bcs` (the wall corners) stay Dirichlet dofs.
    """
    if space.dofmap.index_map_bs != 1:
        raise SolverError("periodic constraints are built for scalar and mixed spaces (block size 1)")
    comm = domain.comm
    index_map = space.dofmap.index_map
    owned = index_map.size_local
    offset = index_map.local_range[0]
    tol = 1e-8 * max(domain.length, domain.height)
    dirichlet = np.unique(np.concatenate([bc.dof_indices()[0] for bc in bcs] or [np.zeros(0, np.int32)]))

    slaves, masters, owners = [], [], []
    for leaf in _scalar_leaves(space):
        if leaf is space:
            x = space.tabulate_dof_coordinates()
            parent = np.arange(len(x), dtype=np.int64)
        else:
            collapsed, parent = leaf.collapse()
            parent = np.asarray(parent, dtype=np.int64)
            x = collapsed.tabulate_dof_coordinates()
        x = domain.own_frame(x)
        is_owned = parent < owned
        on_left = is_owned & (np.abs(x[:, 0]) < tol)
        # Ghost slaves too: dolfinx_mpc expects every slave a rank sees, with its masters.
        on_right = (np.abs(x[:, 0] - domain.length) < tol) & ~np.isin(parent, dirichlet)
        candidates = comm.allgather((x[on_left], parent[on_left] + offset))
        cx = np.concatenate([c[0] for c in candidates])
        cglobal = np.concatenate([c[1] for c in candidates])
        crank = np.concatenate([np.full(len(c[1]), r, dtype=np.int32) for r, c in enumerate(candidates)])
        image = x[on_right].copy()
        image[:, 0] -= domain.length
        if len(image):
            if len(cx) == 0:
                raise SolverError("no dofs on the left boundary to match the right boundary against")
            distance, nearest = cKDTree(cx).query(image)
            if distance.max() > tol:
                raise SolverError(f"left and right boundary nodes do not match (gap {distance.max():.2e})")
            slaves.append(parent[on_right])
            masters.append(cglobal[nearest])
            owners.append(crank[nearest])

    mpc = dolfinx_mpc.MultiPointConstraint(space)
    slaves = np.concatenate(slaves).astype(np.int32) if slaves else np.zeros(0, np.int32)
    masters = np.concatenate(masters).astype(np.int64) if masters else np.zeros(0, np.int64)
    owners = np.concatenate(owners).astype(np.int32) if owners else np.zeros(0, np.int32)
    mpc.add_constraint(space, slaves, masters, np.ones(len(slaves)), owners, np.arange(len(slaves) + 1, dtype=np.int32))
    mpc.finalize()
    return mpc


def _scalar_leaves(space) -> list:
    if space.num_sub_spaces == 0:
        return [space]
    return [leaf for i in range(space.num_sub_spaces) for leaf in _scalar_leaves(space.sub(i))]
