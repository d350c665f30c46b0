"""`vcnn couple`: a trained closure network in place of the turbulence-model PDEs of a RANS solve,
and the comparison with the PDE model it learned from.

The coupled solve starts where the PDE model's does (nu_t = 0.01, the same mesh and Picard
settings), calls the network at every Picard iteration through `solvers.rans.NodeClosure`, and is
compared with the PDE-model solution of the same case: relative L2 difference of the velocity
and of nu_t, separation and reattachment, velocity and nu_t profiles at x/H = 0.5 ... 8. The
PDE-model solution is solved first in the same process (so that the wall times compare on the
same machine and load), or read from `--reference` (a `vcnn solve hills-rans` directory).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cases.errors import CaseError
from cases.families import FAMILIES
from cases.hills_rans import bubbles
from meshes.hill_profile import hill_length

log = logging.getLogger(__name__)

STATIONS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
"""x/H from the hill crest of the compared profiles."""


def load_closure(checkpoint: Path, device: str = "cpu"):
    """(NeuralClosure, checkpoint dict) for a closure checkpoint; CaseError otherwise."""
    from vcnn.closure import NeuralClosure
    from vcnn.errors import VcnnError

    try:
        closure = NeuralClosure(checkpoint, device=device)
    except VcnnError as err:
        raise CaseError(str(err)) from None
    kind = FAMILIES.get(closure.state.get("family"))
    if kind is None or kind.model is None:
        raise CaseError(f"checkpoint {checkpoint} was not trained on RANS solutions (family {closure.state.get('family')!r})")
    return closure, closure.state


def make_closure(network, blend: int):
    """`make_closure(flow, pde)` for `cases.rans_case.solve_case`: the network, with the PDE model
    blended in over the first `blend` iterations if blend > 0."""
    from solvers.rans import BlendedClosure, NodeClosure

    def build(flow, pde):
        neural = NodeClosure(network)
        return BlendedClosure(pde, neural, blend) if blend > 0 else neural

    return build


def own_frame(fields, degrees: float):
    """A solution of a problem turned by `degrees`, turned back (points, vectors, periods)."""
    from vcnn.symmetry import moved, planar_rotation

    return moved(fields, planar_rotation(-degrees)) if degrees else fields


def compare(pde_fields, coupled_fields, pde_separation: dict, coupled_separation: dict) -> dict:
    """How far the coupled solution lies from the PDE model's: velocity and nu_t (relative L2),
    separation, reattachment and the end of the recirculation (x/H) of both. Both in the same frame."""
    if pde_fields.num_nodes != coupled_fields.num_nodes or not np.allclose(pde_fields.points, coupled_fields.points):
        raise CaseError("the reference solution is on another mesh (resolution or alpha differ)")
    from vcnn.inference import relative_l2

    differences = relative_l2(pde_fields, {name: coupled_fields[name] for name in ("velocity", "nu_t")})
    result = {f"{name}_rel_l2": value for name, value in differences.items()}
    for key in ("separation", "reattachment", "recirculation_end"):
        a, b = pde_separation.get(key), coupled_separation.get(key)
        result[key] = {"pde": a, "coupled": b, "difference": None if a is None or b is None else b - a}
    return result


def cost(history: list, network_timings: dict, rans_seconds: float, reference_seconds: float | None) -> dict:
    """Where the coupled solve's time went, and its ratio to the PDE-model solve."""
    momentum = sum(h["momentum_s"] for h in history)
    closure = sum(h["closure_s"] for h in history)
    parts = {"momentum": momentum, "clouds": network_timings.get("clouds", 0.0), "network": network_timings.get("network", 0.0)}
    parts["exchange"] = closure - parts["clouds"] - parts["network"]  # node arrays gathered and scattered, |S| projected
    result = {
        "total_s": rans_seconds,
        "closure_s": closure,
        **{f"{k}_s": v for k, v in parts.items()},
        "shares": {k: v / rans_seconds for k, v in parts.items()},
    }
    if reference_seconds:
        result.update(pde_model_s=reference_seconds, ratio_to_pde_model=rans_seconds / reference_seconds)
    return result


def read_reference(path: Path, alpha: float):
    """A `vcnn solve hills-rans` output at the same alpha: (fields, its validation, RANS seconds)."""
    from meshes.errors import MeshError
    from meshes.fields import MeshFields

    try:
        fields = MeshFields.read(path)
    except MeshError as err:
        raise CaseError(f"reference {path}: {err}") from None
    config = fields.metadata.get("config", {})
    if fields.metadata.get("case") != "hills-rans" or "validation" not in fields.metadata:
        raise CaseError(f"reference {path} is not a vcnn solve hills-rans output")
    if abs(config.get("alpha", np.nan) - alpha) > 1e-9:
        raise CaseError(f"reference {path} is at alpha = {config.get('alpha')}, not {alpha:g}")
    # The bubbles again from the recorded crossings: a reference solved by an older vcnn may lack some.
    validation = {**fields.metadata["validation"], **bubbles(fields.metadata["validation"]["crossings"], hill_length(alpha))}
    return fields, validation, fields.metadata.get("statistics", {}).get("timings_s", {}).get("rans")


def profiles(fields, stations=STATIONS, samples: int = 120) -> dict:
    """u_x and nu_t / nu along vertical lines at the `stations` inside the domain: {x: (y, u, r)}."""
    from matplotlib.tri import LinearTriInterpolator, Triangulation

    points = fields.points
    triangulation = Triangulation(*points.T, fields.triangles())
    u = LinearTriInterpolator(triangulation, fields["velocity"][:, 0])
    ratio = LinearTriInterpolator(triangulation, fields["nu_t"] / fields.metadata["nu"])
    y = np.linspace(points[:, 1].min(), points[:, 1].max(), samples)
    out = {}
    for x0 in stations:
        if x0 >= points[:, 0].max():
            continue
        x = np.full_like(y, x0)
        out[x0] = (y, np.ma.filled(u(x, y), np.nan), np.ma.filled(ratio(x, y), np.nan))
    return out
