"""Turbulence models as PDE closures: Wolfshtein's one-equation k model, Wilcox's (2006) k-omega
and Abe, Kondoh and Nagano's (1994) low-Reynolds-number k-epsilon.

Each model owns P1 fields on the flow's mesh (periodic in x on a `PeriodicDomain`) and, when the
RANS loop calls `update(flow)`, advances them by one implicit pseudo-time step with the velocity
frozen. The step is linearised in delta form, J dphi = -R(phi), with J = M / dt + (advection,
diffusion, the destruction written implicitly) and the diffusivities, sources and destruction
rates taken from the previous step: the matrices stay close to M-matrices, so the fields stay
positive up to a floor that is applied after every step. Convection is SUPG-stabilised, with the
element length along the flow (`streamline_rate`) and across it (`diffusion_rate`).

The models are closures in the sense of `solvers.rans`: `update` returns `nu_t` (and `k`, and
`omega` or `epsilon`) as P1 Functions.
"""

from __future__ import annotations

import dataclasses

import dolfinx.mesh
import dolfinx_mpc
import numpy as np
import ufl
from dolfinx import fem
from petsc4py import PETSc
from scipy.spatial import cKDTree

from meshes.periodic_domain import TAGS, PeriodicDomain
from solvers.errors import SolverError
from solvers.export import set_node_values
from solvers.newton import LinearSystem, unconstrained
from solvers.periodic import periodic_constraint
from solvers.transport import strain_rate_magnitude
from solvers.wall_distance import distance_to_segments, wall_segments


@dataclasses.dataclass(frozen=True)
class KOmegaConstants:
    """Wilcox (2006) k-omega, with the stress limiter; beta = beta0 (f_beta = 1 in 2-D flows)."""

    alpha: float = 13.0 / 25.0
    beta0: float = 0.0708
    beta_star: float = 0.09
    sigma: float = 0.5
    sigma_star: float = 0.6
    sigma_d: float = 0.125
    c_lim: float = 7.0 / 8.0
    wall_factor: float = 10.0  # omega_wall = wall_factor * 6 nu / (beta0 y1^2), Menter's choice


@dataclasses.dataclass(frozen=True)
class OneEquationConstants:
    """Wolfshtein (1969): nu_t = c_mu sqrt(k) l_mu, eps = k^(3/2) / l_eps, l = c_l d (1 - exp(-Re_d / A))
    with Re_d = sqrt(k) d / nu. c_l = kappa c_mu^(-3/4) makes both reproduce the log law."""

    c_mu: float = 0.09
    c_l: float = 2.5
    a_mu: float = 70.0
    a_eps: float = 5.0
    sigma_k: float = 1.0


@dataclasses.dataclass(frozen=True)
class KEpsilonConstants:
    """Abe, Kondoh and Nagano (1994)."""

    c_mu: float = 0.09
    c_1: float = 1.5
    c_2: float = 1.9
    sigma_k: float = 1.4
    sigma_eps: float = 1.4


class ScalarEquation:
    """phi_t + u . grad phi - div(G grad phi) + r phi = s, one implicit pseudo-time step at a time.

    `phi` lives on the equation's own constrained space and keeps its values on `fixed_dofs`
    (Dirichlet). `define` takes G, r and s as UFL expressions of frozen Functions that the caller
    refreshes before each step.
    """

    def __init__(self, domain, space, fixed_dofs: np.ndarray, name: str, initial: float):
        self.domain, self.space = domain, space
        self.bcs = [fem.dirichletbc(0.0, fixed_dofs, space)]  # homogeneous: on the increments
        periodic = isinstance(domain, PeriodicDomain)
        self.mpc = periodic_constraint(domain, space, self.bcs) if periodic else unconstrained(space)
        self.phi = fem.Function(self.mpc.function_space, name=name)
        self.phi.x.array[:] = initial
        self.frozen = fem.Function(space, name=f"{name}_frozen")
        self.fixed_dofs = fixed_dofs
        self.basis_gradients = p1_basis_gradients(domain.mesh)

    def start_from(self, values: np.ndarray) -> None:
        """Start from node values (the full array in `to_mesh_fields` order, on every rank) except
        on the fixed dofs, which keep their (wall) values."""
        nodal = fem.Function(self.space)
        set_node_values(self.domain, values, nodal)
        free = np.setdiff1d(np.arange(len(nodal.x.array)), self.fixed_dofs)
        self.phi.x.array[free] = nodal.x.array[free]
        self.phi.x.scatter_forward()

    def define(self, velocity, diffusivity, reaction, source, dt) -> None:
        phi = self.phi
        v, dphi = ufl.TestFunction(self.space), ufl.TrialFunction(self.space)
        streamline = self.stabilisation(velocity, diffusivity, reaction) * ufl.dot(velocity, ufl.grad(v))
        strong = ufl.dot(velocity, ufl.grad(phi)) + reaction * phi - source  # P1: no second derivatives
        # Mass and destruction are lumped (vertex quadrature): with omega ~ 1 / y^2 at the wall, their
        # consistent forms make negative undershoots on the first cells.
        lumped = ufl.dx(metadata={"quadrature_rule": "vertex", "quadrature_degree": 1})
        # The coefficients are not polynomials (max, sqrt, quotients): a fixed rule, exact for the
        # products of P2 velocities with P1 fields, instead of UFL's estimate (hundreds of points).
        dx = ufl.dx(metadata={"quadrature_degree": 4})
        residual = (
            ufl.dot(velocity, ufl.grad(phi)) * v + diffusivity * ufl.inner(ufl.grad(phi), ufl.grad(v)) - source * v
            + strong * streamline
        ) * dx + reaction * phi * v * lumped
        jacobian = (dphi / dt) * v * lumped + (dphi / dt) * streamline * dx + ufl.derivative(residual, phi, dphi)
        self._residual = fem.form(residual)
        self._system = LinearSystem(fem.form(jacobian), self.mpc, self.bcs)
        self._delta = fem.Function(self.mpc.function_space)

    def stabilisation(self, velocity, diffusivity, reaction):
        """SUPG's tau: the inverse of the root sum of squares of the steady rates, convection over the
        cell's length along the flow and diffusion over its short side, and reaction. It holds no
        pseudo-time rate, so the converged fields do not depend on the step that reached them: a
        loop that cuts its step to leave a cycle lands where a larger step would have."""
        convection = streamline_rate(velocity, self.basis_gradients)
        diffusion = diffusion_rate(diffusivity, self.basis_gradients)
        return (convection**2 + 9.0 * diffusion**2 + reaction**2) ** -0.5

    def freeze(self) -> None:
        self.frozen.x.array[:] = self.phi.x.array[: len(self.frozen.x.array)]

    def step(self, floor: float) -> float:
        """Advance phi one pseudo-time step; return the norm of the steady residual before it."""
        rhs = self._system.residual(self._residual)
        try:
            norm = rhs.norm()
            rhs.scale(-1.0)
            self._system.assemble()
            self._system.solve(rhs, self._delta)
        finally:
            rhs.destroy()
        self.phi.x.array[:] = np.maximum(self.phi.x.array + self._delta.x.array, floor)
        self.phi.x.scatter_forward()
        return norm

    def destroy(self) -> None:
        self._system.destroy()


def p1_basis_gradients(mesh) -> list[fem.Function]:
    """The gradients of a triangle's three P1 basis functions, as cellwise-constant (DG0) vectors:
    one per local vertex, ghost cells included (they are computed from the same geometry)."""
    if mesh.topology.cell_type != dolfinx.mesh.CellType.triangle or mesh.geometry.cmap.degree != 1:
        raise SolverError(
            "the turbulence equations need straight-sided triangles, got "
            f"{mesh.topology.cell_type.name} cells of geometry degree {mesh.geometry.cmap.degree}"
        )
    space = fem.VectorFunctionSpace(mesh, ("DG", 0))
    x = mesh.geometry.x[:, :2]
    vertices = x[mesh.geometry.dofmap.array.reshape(-1, 3)]  # (cells, 3, 2)
    edges = np.stack([vertices[:, 1] - vertices[:, 0], vertices[:, 2] - vertices[:, 0]], axis=-1)
    inverse = np.linalg.inv(edges)  # rows: the gradients of the basis functions of vertices 1 and 2
    gradients = (-inverse.sum(axis=1), inverse[:, 0], inverse[:, 1])
    dofs = space.dofmap.list.array
    functions = []
    for gradient in gradients:
        function = fem.Function(space)
        function.x.array.reshape(-1, 2)[dofs] = gradient
        functions.append(function)
    return functions


def streamline_rate(velocity, basis_gradients):
    """2 |u| / h_u, the sum over a cell's vertices of |u . grad N_a|: h_u is the cell's length along
    the flow (Tezduyar's h_UGN). The cell diameter, used before, is the longest edge whatever the
    flow's direction: on graded, diagonal-split cells it made tau larger, and with it SUPG's
    inconsistency (the P1 strong residual lacks the diffusion). On the 108 x 96 hill mesh that held
    the SST's k 7 to 10 % lower (docs/results.md)."""
    return sum(abs(ufl.dot(velocity, gradient)) for gradient in basis_gradients)


def diffusion_rate(diffusivity, basis_gradients):
    """G sum_a |grad N_a|^2: 4 G / h^2 on an equilateral cell, G (2 / a^2 + 2 / b^2) on a right-angled
    one of legs a and b, so the short side sets it. The diameter, used before, set it by the long
    side; on the hill's cells, long and thin at the walls, that left tau too large where diffusion
    dominates (manufactured errors 25 to 37 % higher, docs/results.md)."""
    return diffusivity * sum(ufl.dot(gradient, gradient) for gradient in basis_gradients)


class NodalAverage:
    """The cell-area-weighted average of an expression around each node (a lumped L2 projection):
    continuous, periodic through the constraint's masters, and independent of the cell order."""

    def __init__(self, expression, space, mpc):
        self.mpc = mpc
        v = ufl.TestFunction(space)  # forms on the unconstrained space, as dolfinx_mpc expects
        dx = ufl.dx(metadata={"quadrature_degree": 4})
        self._numerator = fem.form(expression * v * dx)
        self._weights = self._assemble(fem.form(v * dx))
        self.out = fem.Function(mpc.function_space)

    def _assemble(self, form):
        vec = dolfinx_mpc.assemble_vector(form, self.mpc)
        vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        return vec

    def update(self) -> None:
        numerator = self._assemble(self._numerator)
        try:
            self.out.vector.pointwiseDivide(numerator, self._weights)
        finally:
            numerator.destroy()
        self.out.x.scatter_forward()
        self.mpc.backsubstitution(self.out.vector)


class _TurbulenceModel:
    """The shared machinery: a P1 space, its wall dofs, the equations and their pseudo-time steps."""

    names: tuple[str, ...] = ()
    floors: tuple[float, ...] = ()
    dt_max: float = float("inf")  # a cap on the loop's pseudo-time step, where a model needs one
    # With k lagged one update in omega's step, the SST cycled with period 2 on fine hill meshes,
    # the velocity fixed or not; stepped in sequence it converged (docs/results.md).
    sequential: bool = True

    def __init__(self, flow, walls=("bottom", "top")):
        self.domain = domain = flow.domain
        mesh = domain.mesh
        self.space = fem.FunctionSpace(mesh, ("Lagrange", 1))
        tags = TAGS if isinstance(domain, PeriodicDomain) else domain.tags
        self.wall_facets = np.concatenate([domain.facet_tags.find(tags[name]) for name in walls])
        self.wall_dofs = fem.locate_dofs_topological(self.space, mesh.topology.dim - 1, self.wall_facets)
        self.dt = fem.Constant(mesh, 1.0)
        self.equations: list[ScalarEquation] = []
        self.residuals: dict[str, float] = {}  # steady residual norm of each equation, before the last step
        self.averages: list[NodalAverage] = []
        self.nu_t = fem.Function(self.space, name="nu_t")

    def near_wall_dofs(self) -> np.ndarray:
        """The dofs off the wall that share a cell with a wall dof: the first layer of nodes."""
        mesh = self.domain.mesh
        tdim = mesh.topology.dim
        mesh.topology.create_connectivity(tdim - 1, 0)
        mesh.topology.create_connectivity(0, tdim)
        vertices = dolfinx.mesh.compute_incident_entities(mesh, self.wall_facets, tdim - 1, 0)
        cells = dolfinx.mesh.compute_incident_entities(mesh, vertices, 0, tdim)
        return np.setdiff1d(fem.locate_dofs_topological(self.space, tdim, cells), self.wall_dofs)

    def k_omega_equations(self, nu: float, k0: float, omega0: float, beta: float, wall_factor: float, walls):
        """The k and omega equations of a k-omega model, with their wall values: k = 0 on the walls;
        omega fixed to its viscous-sublayer solution 6 nu / (beta y^2) on the first layer of nodes
        off the wall, and to wall_factor times that of the nearest first-layer node on the wall."""
        layer = self.near_wall_dofs()
        x = self.space.tabulate_dof_coordinates()
        y = distance_to_segments(x[layer], wall_segments(self.domain, walls))
        neighbours = WallNeighbours(self.domain.comm, self.space, layer, self.wall_dofs)
        k_eq = ScalarEquation(self.domain, self.space, self.wall_dofs, "k", k0)
        omega_eq = ScalarEquation(self.domain, self.space, np.union1d(self.wall_dofs, layer), "omega", omega0)
        k_eq.phi.x.array[self.wall_dofs] = 0.0
        omega_eq.phi.x.array[layer] = 6.0 * nu / (beta * y**2)
        omega_eq.phi.x.array[self.wall_dofs] = wall_factor * 6.0 * nu / (beta * neighbours.distance**2)
        self.k, self.omega = k_eq.phi, omega_eq.phi
        return k_eq, omega_eq

    def update(self, flow) -> dict:
        """One pseudo-time step of every equation at the flow's dt (at most dt_max), in turn; with
        `sequential`, each with the fields stepped before it (Gauss-Seidel: omega's step sees this
        update's k), else with those of the last update (Jacobi); the new turbulence fields."""
        self.dt.value = min(flow.dt, self.dt_max)
        for eq in self.equations:
            eq.freeze()
        self.residuals = {}
        for eq, floor in zip(self.equations, self.floors):
            self._set_wall_values(eq)
            self.residuals[eq.phi.name] = eq.step(floor)
            if self.sequential:
                eq.freeze()
        return self.fields()

    def start_from(self, values: dict) -> None:
        """Start the equations whose field `values` names (node arrays, every rank) from those
        values: e.g. a converged solution of a nearby problem mapped onto this mesh."""
        for eq in self.equations:
            if eq.phi.name in values:
                eq.start_from(np.asarray(values[eq.phi.name], dtype=float))

    def _set_wall_values(self, equation: ScalarEquation) -> None:
        """Refresh the wall values of `equation` that depend on the fields already stepped (none here)."""

    def fields(self) -> dict:
        """nu_t from the current fields, and the fields themselves."""
        for eq in self.equations:
            eq.freeze()
        for average in self.averages:
            average.update()
        self.nu_t.interpolate(self._nu_t_expression)
        self.nu_t.x.scatter_forward()  # ghosts take their owner's value
        return {"nu_t": self.nu_t, **{eq.phi.name: eq.phi for eq in self.equations}}


class KOmega(_TurbulenceModel):
    """Wilcox (2006) k-omega with the stress limiter.

    k = 0 on the walls. omega follows its viscous-sublayer solution 6 nu / (beta0 y^2) on the first
    layer of nodes off the wall, and Menter's wall_factor times that of the first layer on the wall
    itself. With the wall value alone, the P1 solution depended on that arbitrary factor (channel,
    Re_tau 180, 160 cells: Re_tau 184.5 with factor 1, 176.5 with 100), since the linear
    interpolant cannot follow 1 / y^2 across the first cell; with the first layer fixed, factors
    1 and 10 give the same Re_tau to 12 digits.
    """

    names = ("nu_t", "k", "omega")
    floors = (0.0, 1e-8)

    def __init__(self, flow, k0: float, omega0: float, constants=KOmegaConstants(), walls=("bottom", "top")):
        super().__init__(flow, walls)
        c = self.constants = constants
        nu = flow.nu
        k_eq, omega_eq = self.k_omega_equations(nu, k0, omega0, c.beta0, c.wall_factor, walls)

        S2 = strain_rate_magnitude(flow.velocity) ** 2
        k, w = k_eq.frozen, omega_eq.frozen
        limited = lambda strain: ufl.max_value(w, c.c_lim * ufl.sqrt(strain / c.beta_star))  # noqa: E731
        w_tilde = limited(S2)
        nu_t = k / w_tilde
        cross = c.sigma_d / w * ufl.max_value(ufl.dot(ufl.grad(k), ufl.grad(w)), 0.0)
        k_eq.define(flow.velocity, nu + c.sigma_star * k / w, c.beta_star * w, nu_t * S2, self.dt)
        omega_eq.define(
            flow.velocity, nu + c.sigma * k / w, 2.0 * c.beta0 * w, c.alpha * w / w_tilde * S2 + c.beta0 * w**2 + cross, self.dt
        )
        self.equations = [k_eq, omega_eq]
        # At the nodes, |S|^2 (discontinuous) is averaged over the cells around each node: taken
        # from one of them, nu_t would depend on the cell order, and so differ between MPI ranks.
        strain = NodalAverage(S2, self.space, k_eq.mpc)
        self.averages = [strain]
        nodal = k / limited(strain.out)
        self._nu_t_expression = fem.Expression(nodal, self.space.element.interpolation_points())


class OneEquation(_TurbulenceModel):
    """Wolfshtein's one-equation model: a transport equation for k, lengths from the wall distance."""

    names = ("nu_t", "k")
    floors = (0.0,)

    def __init__(self, flow, k0: float, constants=OneEquationConstants(), walls=("bottom", "top")):
        super().__init__(flow, walls)
        c = self.constants = constants
        nu, distance = flow.nu, flow.distance
        k_eq = ScalarEquation(self.domain, self.space, self.wall_dofs, "k", k0)
        k_eq.phi.x.array[self.wall_dofs] = 0.0
        self.k = k_eq.phi
        S2 = strain_rate_magnitude(flow.velocity) ** 2
        root = ufl.sqrt(k_eq.frozen)
        re_d = root * distance / nu
        l_mu = c.c_l * distance * (1.0 - ufl.exp(-re_d / c.a_mu))
        l_eps = c.c_l * distance * (1.0 - ufl.exp(-re_d / c.a_eps))
        nu_t = c.c_mu * root * l_mu
        # eps / k = sqrt(k) / l_eps, with a floor on l_eps at the wall (where k = 0 too).
        k_eq.define(flow.velocity, nu + nu_t / c.sigma_k, root / ufl.max_value(l_eps, 1e-12), nu_t * S2, self.dt)
        self.equations = [k_eq]
        self._nu_t_expression = fem.Expression(nu_t, self.space.element.interpolation_points())


class KEpsilon(_TurbulenceModel):
    """Abe, Kondoh and Nagano's (1994) low-Reynolds-number k-epsilon.

    Its damping functions use the Kolmogorov velocity (nu eps)^(1/4) instead of the friction
    velocity, so they stay defined through separation and reattachment. k = 0 on the walls and
    eps_wall = 2 nu k1 / y1^2 (the limit of 2 nu (d sqrt(k) / dy)^2), from k at the nearest node
    off the wall after each k step. The destruction of eps is taken implicitly at its previous
    rate (Picard): its Newton form, a doubled rate against a source c2 f_e eps^2 / k, put the
    source's consistent quadrature against the lumped rate where k ~ y^2, and diverged.
    """

    names = ("nu_t", "k", "epsilon")
    floors = (1e-14, 1e-14)
    # eps stepped with this update's k (its source c2 f_e eps^2 / k) cycled with period 2 on the
    # coarse channel (nu_t change 0.6 after 400 iterations); with the last update's k it converges.
    sequential = False

    def __init__(self, flow, k0: float, eps0: float, constants=KEpsilonConstants(), walls=("bottom", "top")):
        super().__init__(flow, walls)
        c = self.constants = constants
        nu = self.nu = flow.nu
        self._neighbours = WallNeighbours(self.domain.comm, self.space, self.near_wall_dofs(), self.wall_dofs)
        k_eq = ScalarEquation(self.domain, self.space, self.wall_dofs, "k", k0)
        eps_eq = ScalarEquation(self.domain, self.space, self.wall_dofs, "epsilon", eps0)
        k_eq.phi.x.array[self.wall_dofs] = 0.0
        self.k, self.epsilon = k_eq.phi, eps_eq.phi
        self._set_wall_values(eps_eq)

        S2 = strain_rate_magnitude(flow.velocity) ** 2
        k, e = k_eq.frozen, eps_eq.frozen
        y_star = (nu * e) ** 0.25 * flow.distance / nu
        r_t = ufl.max_value(k**2 / (nu * e), 1e-10)
        f_mu = (1.0 - ufl.exp(-y_star / 14.0)) ** 2 * (1.0 + 5.0 / r_t**0.75 * ufl.exp(-((r_t / 200.0) ** 2)))
        f_e = (1.0 - ufl.exp(-y_star / 3.1)) ** 2 * (1.0 - 0.3 * ufl.exp(-((r_t / 6.5) ** 2)))
        nu_t = c.c_mu * f_mu * k**2 / e
        rate = e / ufl.max_value(k, 1e-14)  # eps / k
        k_eq.define(flow.velocity, nu + nu_t / c.sigma_k, rate, nu_t * S2, self.dt)
        # c1 eps / k P with P = nu_t |S|^2, written without the quotient
        eps_eq.define(flow.velocity, nu + nu_t / c.sigma_eps, c.c_2 * f_e * rate, c.c_1 * c.c_mu * f_mu * k * S2, self.dt)
        self.equations = [k_eq, eps_eq]
        self._nu_t_expression = fem.Expression(nu_t, self.space.element.interpolation_points())

    def _set_wall_values(self, equation: ScalarEquation) -> None:
        if equation.phi is self.epsilon:
            k1 = self._neighbours.values(self.k.x.array)
            self.epsilon.x.array[self.wall_dofs] = np.maximum(2.0 * self.nu * k1 / self._neighbours.distance**2, self.floors[1])


class WallNeighbours:
    """Each wall dof's nearest node of the first layer off the wall, over all ranks (the layer's
    owned nodes are gathered, so that ghosts and owners see the same neighbour and value)."""

    def __init__(self, comm, space, layer: np.ndarray, wall_dofs: np.ndarray):
        self.comm = comm
        self.owned = layer[layer < space.dofmap.index_map.size_local]
        x = space.tabulate_dof_coordinates()[:, :2]
        gathered = np.concatenate(comm.allgather(x[self.owned]))
        if len(wall_dofs) and not len(gathered):
            raise SolverError("no nodes off the wall next to it")
        self.distance, self.index = cKDTree(gathered).query(x[wall_dofs]) if len(wall_dofs) else (np.zeros(0), np.zeros(0, int))

    def values(self, array: np.ndarray) -> np.ndarray:
        """`array` (a dof array of the layer's space) at each wall dof's neighbour."""
        return np.concatenate(self.comm.allgather(array[self.owned]))[self.index]
