"""Turbulence models by name: what `--model` and the case files accept.

A new model is one new module (a class with `update(flow)` returning nu_t and its own fields, as
`solvers.turbulence` shows) and one line in `MODELS`.
"""

from __future__ import annotations

from solvers.errors import SolverError
from solvers.k_omega_sst import KOmegaSST
from solvers.turbulence import KEpsilon, KOmega, OneEquation

K0, OMEGA0 = 1e-2, 1.0
EPS0 = 0.09 * K0 * OMEGA0
"""Initial k, omega and epsilon = beta* k omega in units of the bulk velocity and length: nu_t = 0.01
at the start (a laminar start is hard at Re_H = 5600)."""

MODELS = {
    "one-equation": lambda flow: OneEquation(flow, k0=K0),
    "k-omega": lambda flow: KOmega(flow, k0=K0, omega0=OMEGA0),
    "k-epsilon": lambda flow: KEpsilon(flow, k0=K0, eps0=EPS0),
    "k-omega-sst": lambda flow: KOmegaSST(flow, k0=K0, omega0=OMEGA0),
}
"""name -> the model on a flow, started from K0 and OMEGA0 (or EPS0)."""


def check_model(name: str) -> str:
    if name not in MODELS:
        raise SolverError(f"unknown turbulence model {name!r}; choose from {', '.join(MODELS)}")
    return name


def turbulence_model(flow, name: str):
    """The named model on `flow`, and flow.nu_t set to K0 / OMEGA0 = 0.01 for the first momentum solve."""
    build = MODELS[check_model(name)]
    flow.nu_t.x.array[:] = K0 / OMEGA0
    return build(flow)
