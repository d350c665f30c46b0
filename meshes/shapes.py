"""Named periodic domains: the parameterized periodic hill and the plane channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from meshes import hill_profile
from meshes.errors import MeshError
from meshes.periodic_domain import PeriodicDomain, Resolution, build_periodic_domain


def periodic_hill(
    alpha: float, resolution: Resolution, comm=None, msh_path: str | Path | None = None
) -> PeriodicDomain:
    """Periodic hill with slope parameter alpha in [0.5, 4], crest at x = 0 and x = Lx(alpha)."""
    try:
        alpha = hill_profile.check_alpha(alpha)
    except ValueError as err:
        raise MeshError(str(err)) from None
    length = hill_profile.hill_length(alpha)
    return build_periodic_domain(
        lambda x: hill_profile.hill_height(x, alpha),
        length,
        hill_profile.HEIGHT,
        resolution,
        {"name": "periodic_hill", "alpha": alpha, "length": length, "height": hill_profile.HEIGHT},
        comm,
        msh_path,
    )


def channel(
    length: float, height: float, resolution: Resolution, comm=None, msh_path: str | Path | None = None
) -> PeriodicDomain:
    """Plane channel [0, length] x [0, height], periodic in x, walls at y = 0 and y = height."""
    if not (length > 0 and height > 0):
        raise MeshError(f"channel length and height must be positive, got {length} x {height}")
    return build_periodic_domain(
        lambda x: np.zeros_like(x),
        length,
        height,
        resolution,
        {"name": "channel", "length": float(length), "height": float(height)},
        comm,
        msh_path,
    )
