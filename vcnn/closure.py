"""A trained cloud network as the turbulence closure of a RANS solve (Xu, Zhou, Han, Dwight & Xiao
2022: the PDE-free eddy-viscosity model).

The network maps the mean flow in a cloud around each node to the eddy viscosity there, through
one of two targets, each with an inverse that returns an admissible nu_t >= 0 whatever the
network outputs:
- `LOG_RATIO` = log(1 + nu_t / nu), nu_t = nu (exp(q) - 1) with q clipped at 0: the ratio spans
  five decades between the wall and the shear layers, and the log weighs them alike;
- `RATIO` = nu_t / nu, nu_t = nu max(q, 0): the loss weighs the errors as the relative L2 error
  of nu_t does, dominated by the shear layers, where nu_t is largest.

A network may also predict `STRESS`, a symmetric tensor: the part of the Reynolds stress anisotropy
that its eddy viscosity does not carry (a_perp = a + 2 nu_t S), returned as "stress" and frozen in
the next momentum solve (`solvers.rans.NodeClosure`). It rotates with the frame (R a R^T) by
construction of the network's tensor output.

`NeuralClosure` is a plain callable on `MeshFields` (numpy in, numpy out), as the solver's
`NodeClosure` expects: it computes the features from the current flow at every call and evaluates
the network in batches of clouds of similar size on CPU or GPU, in float64 by default, float32,
or float32 until the flow settles and float64 after ("mixed", `vcnn couple`'s default). The
KD-tree of the nodes is built once per mesh, and so are the clouds when their members do not
depend on the flow (balls, k nearest); ellipse clouds are searched again at every call.
Invariance: the clouds and the scalar features depend on distances only and the output is a
rotation-invariant scalar by construction. Velocities enter as `relative_velocity` (relative to
the query point) and, where the walls are at rest, as `velocity` and `speed`: relative to the
walls, so unchanged by a Galilean change of frame that moves fluid and walls together (not by a
boost of the fluid alone, see the tests).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from meshes.fields import MeshFields
from vcnn.checkpoint import load_trained
from vcnn.clouds import Ball, NodeIndex
from vcnn.devices import check_device
from vcnn.errors import VcnnError
from vcnn.inference import Batch, plan_batches, predict_fields

LOG_RATIO = "log_nu_t_ratio"
RATIO = "nu_t_ratio"
STRESS = "remaining_stress"
"""The optional tensor target beside a nu_t target: a_perp = a + 2 nu_t S, in velocity squared."""
BASIS = "stress_coefficient"
"""Or a scalar beta instead, with a_perp = beta T of the flow read (`stress_basis`)."""
PRECISIONS = {"float32": torch.float32, "float64": torch.float64, "mixed": torch.float32}
"""The network's floating-point types by name (features are computed in float64 either way).
"mixed": float32, and float64 for the calls in which the velocity moved by less than `SETTLED`."""
SETTLED = 1e-6
"""Relative change of the velocity since the last call (L2) below which a "mixed" closure runs in
float64. float32's rounding leaves the Picard iteration a floor near 5e-8 in the relative nu_t
residual (hills, alpha 1.125: 43 iterations to a change of 1e-8 against float64's 37); float64
for the last iterations converges to float64's fixed point."""
FLOAT32_TOLERANCE = 1e-7
"""The smallest Picard tolerance accepted for a closure in float32 throughout (reached on the hills
at 24 x 24 and 64 x 64, alpha 1.125: 32 iterations on the latter). A mixed (Anderson) step
counts as converged only when relaxation x nu_t residual is below the tolerance too, and float32's
floor of about 5e-8 in that residual kept the hills at alpha 1.125 from ever meeting 1e-8 (150
iterations, nu_t and velocity changes at 4e-9, then stalled; docs/results.md)."""


def stress_basis(fields: MeshFields, velocity=None, damping: float = 0.0) -> np.ndarray:
    """T = (SW - WS) / (S:S + W:W + damping median(S:S + W:W)) at the nodes, (N, 2, 2), of
    `velocity` (default the fields' own), S and W its strain and rotation rates. SW - WS is
    symmetric and traceless, and in 2-D every traceless symmetric tensor orthogonal to S is a
    multiple of it; the denominator makes it dimensionless and bounded (T:T <= 1/2, the maximum in
    simple shear), so that its multiple needs no wall-dominated scale. Undamped, T keeps its full
    size where the flow is nearly uniform (a ratio of small quantities); `damping` > 0 lets it fall
    there. It turns as R T R^T with the frame (the median is of invariants)."""
    from meshes.gradients import node_gradients

    if not (np.isfinite(damping) and damping >= 0):
        raise VcnnError(f"the stress basis's damping must be >= 0, got {damping}")
    grad = node_gradients(fields, fields["velocity"][:, :2] if velocity is None else velocity)
    strain, rotation = 0.5 * (grad + grad.transpose(0, 2, 1)), 0.5 * (grad - grad.transpose(0, 2, 1))
    size = np.einsum("nij,nij->n", strain, strain) + np.einsum("nij,nij->n", rotation, rotation)
    size = size + damping * np.median(size)
    return (strain @ rotation - rotation @ strain) / np.where(size > 0, size, 1.0)[:, None, None]


SMOOTHING = 0.05
"""Default width over which the clip of the network's output at q = 0 is rounded until the coupled
solve settles (`NeuralClosure` `smoothing`). With the hard clip max(q, 0), nodes whose q crosses 0
between iterations make the loop's map piecewise smooth, and Anderson mixing, a secant method, can
wander or stall: the k-omega study's seed-0 network at alpha 1.125 wandered between 2e-5 and 8e-5
for 100 iterations (136 in all), the one-equation study's at 0.625 stalled near 1e-3. Rounded
(q -> width log(1 + exp(q / width))) from the first iteration until the velocity moves by less
than `SETTLED` per iteration, then hard, they converge in 52 and 110 iterations, to the hard
clip's solution; but the fixture network at 1.125, 37 iterations hard, then stalls (150), and
solves that converge anyway take 15 to 20 iterations more (docs/results.md)."""
PATIENCE = 15
"""Calls without a tenfold fall of the velocity change (below its smallest before them) after which
a closure with `smoothing` rounds its clip until the flow settles (0: from the first call). With
15, solves that do not stagnate are those of the hard clip bit for bit, and the k-omega seed-0
solve at 1.125 converges in 105 iterations; the one-equation network at 0.625 needs 0."""


def clipped(q: np.ndarray, width: float = 0.0) -> np.ndarray:
    """max(q, 0), or for width > 0 its rounding width log(1 + exp(q / width)): smooth, >= 0, above
    max(q, 0) by at most width log 2 (at q = 0). NaN stays NaN."""
    return np.maximum(q, 0.0) if width == 0 else width * np.logaddexp(0.0, q / width)


def log_ratio(nu_t: np.ndarray, nu: float) -> np.ndarray:
    """The training target: log(1 + nu_t / nu), nu_t clipped at 0."""
    return np.log1p(np.maximum(nu_t, 0.0) / nu)


def eddy_viscosity(q: np.ndarray, nu: float, width: float = 0.0) -> np.ndarray:
    """The inverse of `log_ratio`, admissible for any finite q: nu (exp(max(q, 0)) - 1) >= 0 (NaN
    stays NaN; the clip rounded over `width`, `clipped`)."""
    return nu * np.expm1(clipped(q, width))


INVERSES = {
    LOG_RATIO: eddy_viscosity,
    RATIO: lambda q, nu, width=0.0: nu * clipped(q, width),
}
"""target -> (network output, nu[, width of the clip's rounding]) -> nu_t >= 0."""


def closure_targets(fields: MeshFields) -> dict:
    """The derived point arrays a closure network may learn, from a solved RANS case."""
    if "nu" not in fields.metadata:
        raise VcnnError("the fields carry no viscosity (metadata 'nu'): not a RANS solution")
    nu = float(fields.metadata["nu"])
    return {LOG_RATIO: log_ratio(fields["nu_t"], nu), RATIO: np.maximum(fields["nu_t"], 0.0) / nu}


class NeuralClosure:
    """`fields -> {"nu_t": (N,) array}` from a checkpoint trained on one of the `INVERSES` targets
    (and `{"stress": (N, 2, 2)}` too, if it was trained on `STRESS` or `BASIS` beside it).

    `timings` accumulates the seconds spent building clouds and features and in the network.
    `smoothing` > 0: when the solve stagnates (the velocity change has not fallen tenfold below its
    smallest in `patience` calls; 0: from the first call), the clip at q = 0 is rounded over that
    width (`clipped`) until the flow settles (the velocity moves by less than `SETTLED` between
    calls), and hard from then on, so that the coupled solve converges to the hard clip's solution
    (default 0: hard throughout).
    """

    names = ("nu_t",)

    def __init__(self, checkpoint: str | Path, device: str = "cpu", dtype: torch.dtype | str = torch.float64, batch_size: int = 4096,
                 smoothing: float = 0.0, patience: int = PATIENCE):
        if isinstance(dtype, str) and dtype not in PRECISIONS:
            raise VcnnError(f"unknown precision {dtype!r}; choose from {sorted(PRECISIONS)}")
        if not (np.isfinite(smoothing) and smoothing >= 0):
            raise VcnnError(f"the clip's smoothing must be a width >= 0, got {smoothing}")
        if int(patience) != patience or patience < 0:
            raise VcnnError(f"the patience before the clip is rounded must be a number of calls >= 0, got {patience}")
        self.precision = dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
        self.mixed, self.smoothing = dtype == "mixed", float(smoothing)
        self.patience = int(patience)
        self.rounded = self.smoothing > 0 and self.patience == 0  # the clip rounded now (until the flow settles)
        self._watching = self.smoothing > 0  # for a stagnation (once: after it, the clip stays hard)
        dtype = PRECISIONS.get(dtype, dtype)
        trained = load_trained(checkpoint, map_location=check_device(device))
        self.model, self.state = trained.model, trained.state  # state: family, cloud, features, split, ...
        targets = trained.targets
        if not (targets[0] in INVERSES and targets[1:] in ([], [STRESS], [BASIS])):
            raise VcnnError(f"checkpoint {checkpoint} predicts {targets}, not one closure target of {sorted(INVERSES)} (and {STRESS!r} or {BASIS!r})")
        self.target, self.stress = targets[0], targets[1] if len(targets) > 1 else None
        if self.stress:
            self.names = ("nu_t", "stress")
        self.shape, self.spec = trained.shape, trained.spec
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self.timings = {"clouds": 0.0, "network": 0.0, "calls": 0, "float64_calls": 0, "rounded_calls": 0}
        self._index: NodeIndex | None = None
        self._mesh: tuple | None = None  # the points and periods the index was built for
        self._batches: list[Batch] | None = None  # the clouds of every node, kept for this mesh
        self._velocity: np.ndarray | None = None  # at the last call on this mesh ("mixed", smoothing)
        self._changes: list[float] = []  # the velocity's relative change at every call (smoothing)
        self._queries: np.ndarray | None = None  # the nodes the kept batches evaluate (None: all)

    @property
    def reach(self) -> float | None:
        """How far from a node the inputs of its output lie: a process that evaluates its own nodes
        needs the nodes of others this close (its halo). None where that is not bounded (k nearest,
        ellipses that grow with the speed) or the network needs the whole mesh (mesh graphs, whole-mesh
        networks, the stress basis's gradients)."""
        local = isinstance(self.shape, Ball) and self.model.config.graph != "mesh" and not self.model.whole_mesh and self.stress != BASIS
        return self.shape.radius if local else None

    def index(self, fields: MeshFields) -> NodeIndex:
        """The KD-tree of the nodes, rebuilt only when the mesh (nodes or periods) changes."""
        periods = fields.metadata.get("periods")
        periods = None if periods is None else np.asarray(periods, dtype=float)
        same = self._mesh is not None and np.array_equal(self._mesh[0], fields.points) and np.array_equal(self._mesh[1], periods)
        if not same:
            self._index = NodeIndex(fields.points, periods)
            self._mesh = (fields.points.copy(), periods)
            self._batches = self._velocity = None
        return self._index

    def full_precision(self) -> None:
        """float64 and the hard clip from now on (a Newton-Krylov loop differences the outputs)."""
        self.dtype, self.mixed, self.rounded, self._watching = torch.float64, False, False, False

    def velocity_change(self, fields: MeshFields, nodes: np.ndarray | None = None, total=None) -> float | None:
        """The relative change (L2) of the velocity at `nodes` (default all) since the last call,
        its sums combined by `total` (across processes); None at the first call, and when neither
        "mixed" precision nor smoothing watches it."""
        if not (self.mixed or self._watching):
            return None
        self.spec.check_fields(fields)
        velocity, last = fields[self.spec.velocity_field], self._velocity
        velocity = velocity if nodes is None else velocity[nodes]
        self._velocity = velocity.copy()
        if last is None:
            return None
        sums = np.array([np.sum((velocity - last) ** 2), np.sum(velocity**2)])
        change, size = np.sqrt(sums if total is None else total(sums))
        return float(change / size) if size > 0 else 0.0

    def _watch(self, change: float | None) -> None:
        """Round the clip when the solve stagnates; clip hard for good once it has settled."""
        if change is None or not self._watching:
            return
        self._changes.append(change)
        if self.rounded:
            if change < SETTLED:
                self.rounded = self._watching = False
        elif len(self._changes) >= 2 * self.patience:
            before, recent = min(self._changes[: -self.patience]), min(self._changes[-self.patience :])
            self.rounded = recent > before / 10

    def __call__(self, fields: MeshFields, nodes: np.ndarray | None = None, total=None) -> dict:
        """nu_t (and the stress) at every node of `fields`, or at the nodes `nodes` indexes, the
        others serving as cloud members only: a process's halo (networks with a `reach`). `total`
        combines sums over nodes across processes (an MPI allreduce), for the "mixed" switch."""
        if "nu" not in fields.metadata:
            raise VcnnError("the flow carries no viscosity (metadata 'nu')")
        if nodes is not None and self.reach is None:
            raise VcnnError("this network reads the whole mesh (no bounded reach): it cannot evaluate a subset of nodes")
        start = time.perf_counter()
        index = self.index(fields)
        same = (nodes is None and self._queries is None) or (nodes is not None and self._queries is not None and np.array_equal(nodes, self._queries))
        if not same:
            self._batches, self._queries = None, None if nodes is None else np.array(nodes)
        if self._batches is None and not self.shape.follows_flow:
            self._batches = plan_batches(self.model, fields.points, index, self.shape, batch_size=self.batch_size, queries=nodes, device=self.device)
        self.timings["clouds"] += time.perf_counter() - start
        change = self.velocity_change(fields, nodes, total)
        self._watch(change)
        dtype = torch.float64 if self.mixed and change is not None and change < SETTLED else self.dtype
        predicted = predict_fields(
            self.model, fields, self.shape, self.spec, batch_size=self.batch_size, device=self.device, dtype=dtype,
            index=index, timings=self.timings, batches=self._batches, queries=nodes,
        )
        self.timings["calls"] += 1
        self.timings["float64_calls"] += dtype == torch.float64
        self.timings["rounded_calls"] += self.rounded
        width = self.smoothing if self.rounded else 0.0
        # Non-finite outputs stay non-finite (NaN), so that the RANS loop reports them as a
        # divergence at those nodes.
        nu_t = {"nu_t": INVERSES[self.target](predicted[self.target], float(fields.metadata["nu"]), width)}
        if self.stress == STRESS:
            return {**nu_t, "stress": predicted[STRESS]}
        if self.stress == BASIS:
            return {**nu_t, "stress": predicted[BASIS][:, None, None] * stress_basis(fields, damping=self.state.get("basis_damping", 0.0))}
        return nu_t
