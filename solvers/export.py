"""Finite-element solutions -> `MeshFields` on the mesh nodes, gathered on rank 0.

Nodes are ordered by their index in the mesh generator's input, so serial and parallel runs
produce identical files. Lagrange functions are sampled at the nodes (exact: the nodes are
Lagrange points of every degree); scalar UFL expressions (e.g. |S|, discontinuous) are
L2-projected onto P1 first, on a `PeriodicDomain` onto the periodic P1 space, so that a node on
the left boundary and its partner on the right get the same value (a plain projection sees each
of them from one side only); continuous expressions can be passed through `sampled` instead.
`domain` is any object with `mesh` and `comm` (a `PeriodicDomain` or an `AirfoilDomain`).
"""

from __future__ import annotations

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from meshes.fields import MeshFields
from meshes.periodic_domain import PeriodicDomain


def node_values(domain, values) -> np.ndarray:
    """Values of a Function or UFL expression at this rank's mesh (geometry) nodes."""
    sampler = NodeSampler(domain)
    try:
        return sampler(values)
    finally:
        sampler.close()


class NodeSampler:
    """`node_values` for many calls on one mesh (a closure's inputs at every iteration): the P1
    spaces, the periodic projection's factorised mass matrix and the right-hand-side form of each
    expression are built once (they were 45 ms of every call on a 64 x 64 hill, most of the
    exchange between the flow and a network in serial). An expression is known by identity:
    pass the same UFL object again (`MeanFlow.arrays` keeps its own)."""

    def __init__(self, domain):
        self.domain = domain
        self._spaces: dict = {}
        self._projection = None  # (constraint, factorised mass matrix, test function) on a PeriodicDomain
        self._forms: dict = {}  # id(expression) -> (expression, its right-hand-side form)

    def space(self, shape: tuple) -> fem.FunctionSpace:
        if shape not in self._spaces:
            mesh = self.domain.mesh
            if len(shape) == 0:
                self._spaces[shape] = fem.FunctionSpace(mesh, ("Lagrange", 1))
            elif len(shape) == 1:
                self._spaces[shape] = fem.VectorFunctionSpace(mesh, ("Lagrange", 1), dim=shape[0])
            else:
                self._spaces[shape] = fem.TensorFunctionSpace(mesh, ("Lagrange", 1), shape=shape)
        return self._spaces[shape]

    def __call__(self, values) -> np.ndarray:
        mesh = self.domain.mesh
        shape = values.ufl_shape
        space = self.space(shape)
        if isinstance(values, fem.Function):
            p1 = _interpolate(values, space)
        elif len(shape) == 0 and isinstance(self.domain, PeriodicDomain):
            p1 = self._periodic_projection(values, space)
        else:
            p1 = _project(values, space)
        bs = space.dofmap.index_map_bs
        geometry_nodes = mesh.geometry.dofmap.array
        dofs = space.dofmap.list.array
        out = np.zeros((mesh.geometry.x.shape[0], bs))
        out[geometry_nodes] = p1.x.array.reshape(-1, bs)[dofs]
        return out.reshape((-1,) + shape)

    def _periodic_projection(self, expression, space: fem.FunctionSpace) -> fem.Function:
        """L2 projection onto the x-periodic subspace of a scalar `space` (dolfinx_mpc, LU)."""
        from solvers.newton import LinearSystem
        from solvers.periodic import periodic_constraint

        if self._projection is None:
            mpc = periodic_constraint(self.domain, space, [])
            u, v = ufl.TrialFunction(space), ufl.TestFunction(space)
            system = LinearSystem(fem.form(u * v * ufl.dx), mpc, [])
            system.assemble()
            self._projection = (mpc, system, v)
        mpc, system, v = self._projection
        if id(expression) not in self._forms:
            self._forms[id(expression)] = (expression, fem.form(expression * v * ufl.dx))
        rhs = system.residual(self._forms[id(expression)][1])
        solution = system.solve(rhs, fem.Function(mpc.function_space))
        rhs.destroy()
        # The constrained space numbers the dofs of `space` first (it only appends ghosts of masters).
        out = fem.Function(space)
        out.x.array[:] = solution.x.array[: len(out.x.array)]
        return out

    def close(self) -> None:
        """Free the projection's PETSc objects now, on every rank at once (collective), rather than
        whenever each rank's garbage collector gets to them."""
        if self._projection is not None:
            self._projection[1].destroy()
            self._projection = None
            self._forms.clear()


def set_node_values(domain, values: np.ndarray, out: fem.Function) -> None:
    """The inverse of `node_values` for a scalar P1 Function: `values` in the node order of
    `to_mesh_fields` (the full array, on every rank) -> this rank's dofs of `out`."""
    mesh = domain.mesh
    index = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
    dofs = out.function_space.dofmap.list.array
    out.x.array[dofs] = values[index[mesh.geometry.dofmap.array]]
    out.x.scatter_forward()


def to_mesh_fields(domain, arrays: dict, metadata: dict | None = None, sampler: NodeSampler | None = None) -> MeshFields | None:
    """Gather named Functions/expressions into a MeshFields on rank 0 (None on other ranks);
    `sampler`: one kept for this mesh (repeated calls)."""
    mesh, comm = domain.mesh, domain.comm
    index = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
    num_nodes = comm.allreduce(int(index.max()) + 1 if len(index) else 0, op=MPI.MAX)
    tdim = mesh.topology.dim
    owned_cells = mesh.topology.index_map(tdim).size_local
    nodes_per_cell = len(mesh.geometry.dofmap.links(0))
    cells = index[mesh.geometry.dofmap.array.reshape(-1, nodes_per_cell)[:owned_cells]]
    own = sampler is None
    sampler = NodeSampler(domain) if own else sampler
    try:
        local = {name: sampler(values) for name, values in arrays.items()}
    finally:
        if own:
            sampler.close()
    gathered = comm.gather((index, mesh.geometry.x[:, : mesh.geometry.dim], cells, local), root=0)
    if comm.rank != 0:
        return None
    points = np.zeros((num_nodes, mesh.geometry.dim))
    data = {name: np.zeros((num_nodes,) + np.shape(v)[1:]) for name, v in local.items()}
    for idx, x, _, values in gathered:
        points[idx] = x
        for name, v in values.items():
            data[name][idx] = v
    cells = np.concatenate([c for _, _, c, _ in gathered])
    cells = cells[np.lexsort(np.sort(cells, axis=1).T[::-1])]
    cell_type = {3: "triangle", 4: "quad"}[nodes_per_cell] if tdim == 2 else "tetra"
    return MeshFields(points, cells, cell_type, point_data=data, metadata=dict(metadata or {}))


def _interpolate(function: fem.Function, space: fem.FunctionSpace) -> fem.Function:
    out = fem.Function(space)
    out.interpolate(function)
    return out


def sampled(expression, space: fem.FunctionSpace) -> fem.Function:
    """A continuous UFL expression sampled at the Lagrange points of `space` (no projection
    overshoot: e.g. a mixing length min(kappa d, cap) stays within [0, cap])."""
    out = fem.Function(space)
    out.interpolate(fem.Expression(expression, space.element.interpolation_points()))
    return out


def _project(expression, space: fem.FunctionSpace) -> fem.Function:
    """L2 projection (CG + Jacobi: the P1 mass matrix is well conditioned)."""
    u, v = ufl.TrialFunction(space), ufl.TestFunction(space)
    out = fem.Function(space)
    problem = fem.petsc.LinearProblem(
        ufl.inner(u, v) * ufl.dx,
        ufl.inner(expression, v) * ufl.dx,
        u=out,
        petsc_options={"ksp_type": "cg", "pc_type": "jacobi", "ksp_rtol": 1e-12},
    )
    problem.solve()
    if problem.solver.getConvergedReason() <= 0:
        raise RuntimeError("L2 projection did not converge")
    return out
