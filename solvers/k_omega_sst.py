"""Menter's k-omega SST in its 2003 form (Menter, Kuntz and Langtry 2003), as OpenFOAM's `kOmegaSST`.

The baseline model of the Closure Challenge: k-omega near walls and k-epsilon (written in omega)
away from them, blended by F1; the eddy viscosity nu_t = a1 k / max(a1 omega, b1 F2 |S|) (the SST
limiter, |S| = sqrt(2 S:S)); the production of k limited to c1 beta* k omega, and that of omega
to the same limit divided by nu_t (OpenFOAM's `GbyNu`); the cross-diffusion term
(1 - F1) 2 sigma_omega2 grad k . grad omega / omega, taken as a source where positive and as
destruction where negative (OpenFOAM's `SuSp`), so that omega stays positive. Diffusivities are
nu + sigma nu_t, with the blended sigma.

The wall treatment is the low-Reynolds-number limit of OpenFOAM's `omegaWallFunction`: k = 0
and omega fixed to its viscous-sublayer solution 6 nu / (beta1 y^2) on the first layer of nodes off
the wall (OpenFOAM fixes it so in the wall cells), Menter's ten times that on the wall itself
(see `KOmega`). The fields, the pseudo-time steps and the floors are `solvers.turbulence`'s.
"""

from __future__ import annotations

import dataclasses

import ufl
from dolfinx import fem

from solvers.transport import strain_rate_magnitude
from solvers.turbulence import NodalAverage, _TurbulenceModel

TINY_DISTANCE = 1e-12  # the wall distance is zero on the wall nodes: F1 and F2 take their wall limit 1


@dataclasses.dataclass(frozen=True)
class SSTConstants:
    """OpenFOAM's `kOmegaSST` defaults (Menter et al. 2003); set 1 is the inner (k-omega) one."""

    alpha_k1: float = 0.85
    alpha_k2: float = 1.0
    alpha_omega1: float = 0.5
    alpha_omega2: float = 0.856
    gamma1: float = 5.0 / 9.0
    gamma2: float = 0.44
    beta1: float = 0.075
    beta2: float = 0.0828
    beta_star: float = 0.09
    a1: float = 0.31
    b1: float = 1.0
    c1: float = 10.0
    wall_factor: float = 10.0  # omega_wall = wall_factor * 6 nu / (beta1 y1^2), Menter's choice


def blending(k, omega, distance, cross, nu: float, c: SSTConstants = SSTConstants()):
    """(F1, F2) from k, omega, the wall distance and grad k . grad omega (UFL expressions), with
    OpenFOAM's floor 1e-10 on the cross-diffusion in F1's argument."""
    y = ufl.max_value(distance, TINY_DISTANCE)
    root = ufl.sqrt(k)
    viscous = 500.0 * nu / (y**2 * omega)
    cd_plus = ufl.max_value(2.0 * c.alpha_omega2 * cross / omega, 1e-10)
    arg1 = ufl.min_value(ufl.max_value(root / (c.beta_star * omega * y), viscous), 4.0 * c.alpha_omega2 * k / (cd_plus * y**2))
    arg1 = ufl.min_value(arg1, 10.0)
    arg2 = ufl.min_value(ufl.max_value(2.0 * root / (c.beta_star * omega * y), viscous), 100.0)
    return ufl.tanh(arg1**4), ufl.tanh(arg2**2)


def eddy_viscosity(k, omega, strain, f2, c: SSTConstants = SSTConstants()):
    """The SST limiter: nu_t = a1 k / max(a1 omega, b1 F2 |S|)."""
    return c.a1 * k / ufl.max_value(c.a1 * omega, c.b1 * f2 * strain)


def blend(f1, inner: float, outer: float):
    """A constant of the inner (k-omega) set where F1 = 1 and of the outer set where F1 = 0."""
    return f1 * (inner - outer) + outer


class KOmegaSST(_TurbulenceModel):
    """Menter's (2003) k-omega SST, wall-resolved; `update` returns nu_t, k and omega (P1)."""

    names = ("nu_t", "k", "omega")
    floors = (0.0, 1e-8)
    # Past this step the lagged coefficients make each update an undamped fixed-point step of k and
    # omega, and the loop settles into a cycle (hills alpha 0.5, 76 x 96 cells: nu_t change 2-3e-5
    # with a period of 15 iterations, with relaxation 0.7 and 0.5); capped at 10 it converged in 65
    # iterations. Not enough on 144 x 144 at alpha 1: nu_t change 2.2e-5 (velocity 5.5e-7) after 60.
    dt_max = 10.0

    def __init__(self, flow, k0: float, omega0: float, constants=SSTConstants(), walls=("bottom", "top")):
        super().__init__(flow, walls)
        c = self.constants = constants
        nu = flow.nu
        k_eq, omega_eq = self.k_omega_equations(nu, k0, omega0, c.beta1, c.wall_factor, walls)
        k, w = k_eq.frozen, omega_eq.frozen
        strain = strain_rate_magnitude(flow.velocity)
        S2 = strain**2
        cross = ufl.dot(ufl.grad(k), ufl.grad(w))
        f1, f2 = blending(k, w, flow.distance, cross, nu, c)
        nu_t = eddy_viscosity(k, w, strain, f2, c)
        production = ufl.min_value(nu_t * S2, c.c1 * c.beta_star * k * w)
        k_eq.define(flow.velocity, nu + blend(f1, c.alpha_k1, c.alpha_k2) * nu_t, c.beta_star * w, production, self.dt)
        # gamma P / nu_t with P limited as in the k equation: OpenFOAM's GbyNu
        limit = c.c1 / c.a1 * c.beta_star * w * ufl.max_value(c.a1 * w, c.b1 * f2 * strain)
        omega_production = blend(f1, c.gamma1, c.gamma2) * ufl.min_value(S2, limit)
        cd = (1.0 - f1) * 2.0 * c.alpha_omega2 * cross / w
        beta = blend(f1, c.beta1, c.beta2)
        # beta omega^2 linearised about the frozen omega (Newton): rate 2 beta omega, source beta omega^2
        omega_eq.define(
            flow.velocity,
            nu + blend(f1, c.alpha_omega1, c.alpha_omega2) * nu_t,
            2.0 * beta * w + ufl.max_value(-cd, 0.0) / w,
            omega_production + beta * w**2 + ufl.max_value(cd, 0.0),
            self.dt,
        )
        self.equations = [k_eq, omega_eq]
        # As in KOmega: |S|^2 averaged around each node, so that nu_t does not depend on the cell order.
        strain2 = NodalAverage(S2, self.space, k_eq.mpc)
        self.averages = [strain2]
        nodal_strain = ufl.sqrt(strain2.out)
        _, nodal_f2 = blending(k, w, flow.distance, 0.0, nu, c)
        nodal = eddy_viscosity(k, w, nodal_strain, nodal_f2, c)
        self._nu_t_expression = fem.Expression(nodal, self.space.element.interpolation_points())
