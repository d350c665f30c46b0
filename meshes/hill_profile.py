"""The parameterized ERCOFTAC periodic-hill geometry (Xiao et al., Computers & Fluids 2020).

Pure numpy, so that the geometry can be used (plots, tests, reference data) without gmsh.
All lengths are in hill heights H = 1.
"""

from __future__ import annotations

import numpy as np

HEIGHT = 3.036
"""Domain height Ly (from the hill crest level y = 0 of the floor to the top wall)."""

ALPHA_RANGE = (0.5, 4.0)

_FLANK_MM = 54.0
_PERIOD_MM = 252.0
_MM = 28.0

FLANK = _FLANK_MM / _MM
"""Horizontal extent of one flank of the baseline hill (alpha = 1); alpha stretches it."""

# Piecewise cubic coefficients of the baseline hill (x and h in millimetres), x_mm in [0, 54].
_PIECES = (
    (0.0, 9.0, (2.800000000000e01, 0.000000000000e00, 6.775070969851e-03, -2.124527775800e-03)),
    (9.0, 14.0, (2.507355893131e01, 9.754803562315e-01, -1.016116352781e-01, 1.889794677828e-03)),
    (14.0, 20.0, (2.579601052357e01, 8.206693007457e-01, -9.055370274339e-02, 1.626510569859e-03)),
    (20.0, 30.0, (4.046435022819e01, -1.379581654948e00, 1.945884504128e-02, -2.070318932190e-04)),
    (30.0, 40.0, (1.792461334664e01, 8.743920332081e-01, -5.567361123058e-02, 6.277731764683e-04)),
    (40.0, 54.0, (5.639011190988e01, -2.010520359035e00, 1.644919857549e-02, 2.674976141766e-05)),
)


def check_alpha(alpha: float) -> float:
    """Return alpha as float, or raise ValueError if it is outside the supported range."""
    lo, hi = ALPHA_RANGE
    alpha = float(alpha)
    if not (lo <= alpha <= hi):
        raise ValueError(f"alpha must be in [{lo:g}, {hi:g}], got {alpha:g}")
    return alpha


def hill_length(alpha: float) -> float:
    """Period Lx(alpha): both 54 mm flanks stretched by alpha, the flat floor unchanged.

    Equals 3.857 alpha + 5.143 (the reference README rounds this to 3.858 alpha + 5.142;
    the released OpenFOAM meshes follow the exact value used here).
    """
    flank = _FLANK_MM / _MM
    return _PERIOD_MM / _MM + 2.0 * flank * (alpha - 1.0)


def baseline_height_mm(x_mm: np.ndarray) -> np.ndarray:
    """Height of the baseline hill (mm) at abscissa x_mm in [0, 252] (mm)."""
    x = np.asarray(x_mm, dtype=float)
    x = np.where(x > _PERIOD_MM / 2, _PERIOD_MM - x, x)
    h = np.zeros_like(x)
    for lo, hi, (a0, a1, a2, a3) in _PIECES:
        inside = (x >= lo) & ((x < hi) if hi < _FLANK_MM else (x <= hi))
        h = np.where(inside, a0 + x * (a1 + x * (a2 + x * a3)), h)
    return np.clip(h, 0.0, _MM)


def baseline_abscissa(x: np.ndarray, alpha: float, length: float | None = None) -> np.ndarray:
    """Map a parameterized abscissa x in [0, length] back to the baseline one in [0, 9].

    `length` (default: the standard Lx(alpha)) moves the leeward flank; only the flat floor
    between the flanks grows or shrinks, which is how the Closure Challenge varies the period.
    The hill repeats with the period: x outside [0, length] is taken modulo length.
    """
    length = hill_length(alpha) if length is None else float(length)
    x = np.mod(np.asarray(x, dtype=float), length)
    flank = FLANK * alpha
    windward = x / alpha
    floor = np.clip(x + FLANK * (1.0 - alpha), FLANK, _PERIOD_MM / _MM - FLANK)
    leeward = _PERIOD_MM / _MM - (length - x) / alpha
    return np.where(x <= flank, windward, np.where(x <= length - flank, floor, leeward))


def hill_height(x: np.ndarray, alpha: float = 1.0, length: float | None = None) -> np.ndarray:
    """Lower-wall height h(x) (in H) of the hill with slope parameter alpha and period `length`
    (default: the standard Lx(alpha)); crest at x = 0 and x = length."""
    return baseline_height_mm(baseline_abscissa(x, alpha, length) * _MM) / _MM
