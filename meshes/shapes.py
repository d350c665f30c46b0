"""Named periodic domains: the parameterized periodic hill (any slope, period, height) and the plane channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from meshes.errors import MeshError
from meshes.hill_geometry import HillGeometry
from meshes.periodic_domain import PeriodicDomain, Resolution, build_periodic_domain


def periodic_hill(
    alpha: float, resolution: Resolution, comm=None, msh_path: str | Path | None = None
) -> PeriodicDomain:
    """Periodic hill with slope parameter alpha in [0.5, 4], crest at x = 0 and x = Lx(alpha)."""
    return hill_domain(HillGeometry.standard(alpha), resolution, comm, msh_path)


def hill_domain(
    geometry: HillGeometry, resolution: Resolution, comm=None, msh_path: str | Path | None = None
) -> PeriodicDomain:
    """Periodic hill of any slope, period and height (e.g. `HillGeometry.parse("alpha_05_10071_4048")`),
    crest at x = 0 and x = geometry.length, top wall at y = geometry.height."""
    return build_periodic_domain(
        geometry.wall,
        geometry.length,
        geometry.height,
        resolution,
        {
            "name": "periodic_hill",
            "alpha": geometry.alpha,
            "length": geometry.length,
            "height": geometry.height,
            "geometry": geometry.name,
        },
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
