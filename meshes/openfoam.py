"""Read a 2-D OpenFOAM case (ASCII fields at the cell centres) into `MeshFields`.

Written for the Closure Challenge periodic hills (reference README section 5): `0/C` holds the
cell centres, `0/*_LES` the LES fields interpolated onto the RANS mesh, a later time directory the
benchmark's k-omega SST solution. The mesh itself (`constant/polyMesh`) is not shipped.

Library: foamlib 1.7.8 (the last release that allows NumPy 1.x, which the system FEniCSx needs;
1.8 and later also need Python 3.12). fluidfoam 0.3.1 was tried too: it fails
with an IndexError in its header parser on three of the four LES files (`nonuniform List<vector>`
followed directly by a newline), while foamlib reads every field, tells uniform from nonuniform
fields and lists a case's time directories. foamlib's parser needs minutes for the 1,900-line
spline `blockMeshDict`, so the period comes from the case name (`alpha_AA_LLLLL_HHHH`: length
LLLLL / 1000), or from the caller.

The nodes are the cell centres. The benchmark's meshes are structured (blocks of 120 cells along x
stacked in y, numbered x fastest), so the cells are the quads joining neighbouring centres: every
cell lies in the fluid (a Delaunay triangulation of the centres would fill the hills), mesh graphs
get the finite-volume neighbours, and figures work. The strip across the periodic seam and the
half cells at the walls carry no cells; the node weights are the cell areas (the Jacobian of the
centre grid, periodic along x), so that `integral` is the finite-volume quadrature.

The flows are 2-D: vectors keep x and y, tensors (symmTensor xx xy xz yy yz zz, or tensor) keep
the in-plane 2 x 2 block; z components, xz, yz and zz are dropped (the turbulent kinetic energy is
a field of its own, `k_LES` / `k`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from meshes.errors import MeshError
from meshes.fields import MeshFields

CENTRES = "C"
INITIAL_TIME = "0"
_HILL_NAME = re.compile(r"alpha_\d+_(\d+)_\d+")


def read_case(case_dir, time: str | None = None, fields=None, period: float | None = None) -> MeshFields:
    """The fields of an OpenFOAM case at its cell centres.

    time:   a time directory name ("20000"); default the latest. A field is read from `time`, or
            else from the initial directory "0" (where the benchmark keeps `C` and the LES fields).
    fields: names to read; default every field in both directories except `C`.
    period: the length Lx of the periodic direction x; default from the case name.
    """
    case_dir = Path(case_dir)
    if not case_dir.is_dir():
        raise MeshError(f"OpenFOAM case directory {case_dir} does not exist")
    times = _time_dirs(case_dir)
    if time is None:
        time = max(times, key=float)
    elif str(time) not in times:
        raise MeshError(f"{case_dir} has no time {time}; it has {', '.join(sorted(times, key=float))}")
    time = str(time)
    available = _field_files(case_dir, time)
    if fields is None:
        fields = sorted(set(available) - {CENTRES})
    for name in [CENTRES, *fields]:
        if name not in available:
            have = ", ".join(sorted(available))
            raise MeshError(f"{case_dir} has no field {name!r} at time {time} or 0; it has {have}")
    centres = _internal_field(available[CENTRES])[:, :2]
    nx = _row_length(centres, case_dir)
    period = _period(case_dir) if period is None else float(period)
    data = {name: _in_plane(_internal_field(available[name])) for name in fields}
    return MeshFields(
        centres,
        _quads(len(centres) // nx, nx),
        "quad",
        _cell_areas(centres.reshape(-1, nx, 2), period).ravel(),
        data,
        {
            "case": case_dir.name,
            "source": str(case_dir.resolve()),
            "time": time,
            "periods": [[period, 0.0]],
            "dropped": "z components of vectors; xz, yz, zz of tensors",
        },
    )


def _time_dirs(case_dir: Path) -> list[str]:
    times = []
    for path in case_dir.iterdir():
        try:
            float(path.name)
        except ValueError:
            continue
        if path.is_dir():
            times.append(path.name)
    if not times:
        raise MeshError(f"{case_dir} holds no OpenFOAM time directory")
    return times


def _field_files(case_dir: Path, time: str) -> dict[str, Path]:
    """name -> file, the files of `time` shadowing those of the initial directory."""
    files = {}
    for directory in (case_dir / INITIAL_TIME, case_dir / time):
        if directory.is_dir():
            files.update({path.name: path for path in directory.iterdir() if path.is_file()})
    return files


def _internal_field(path: Path) -> np.ndarray:
    import foamlib

    try:
        values = foamlib.FoamFieldFile(path).internal_field
    except Exception as err:  # foamlib raises its parser's own exception types
        raise MeshError(f"cannot read OpenFOAM field {path}: {err}") from None
    values = np.asarray(values, dtype=float)
    if values.ndim == 0 or (values.ndim == 1 and len(values) in (3, 6, 9)):
        raise MeshError(f"OpenFOAM field {path} is uniform; a nonuniform internal field is needed")
    return values


def _in_plane(values: np.ndarray) -> np.ndarray:
    """x, y of vectors; the 2 x 2 in-plane block of tensors (symmTensor: xx xy xz yy yz zz)."""
    if values.ndim == 1:
        return values
    columns = values.shape[1]
    if columns == 3:
        return values[:, :2]
    if columns == 6:
        xx, xy, yy = values[:, 0], values[:, 1], values[:, 3]
        return np.stack([np.stack([xx, xy], -1), np.stack([xy, yy], -1)], -2)
    if columns == 9:
        return values.reshape(-1, 3, 3)[:, :2, :2]
    raise MeshError(f"an OpenFOAM field with {columns} components is neither a vector nor a tensor")


def _row_length(centres: np.ndarray, case_dir: Path) -> int:
    """Cells per row of a structured 2-D mesh numbered x fastest, checked on every row and column."""
    backwards = np.flatnonzero(np.diff(centres[:, 0]) < 0)
    nx = int(backwards[0]) + 1 if len(backwards) else len(centres)
    grid = centres.reshape(-1, nx, 2) if len(centres) % nx == 0 and len(centres) > nx else None
    if grid is None or not ((np.diff(grid[..., 0], axis=1) > 0).all() and (np.diff(grid[..., 1], axis=0) > 0).all()):
        raise MeshError(
            f"the cell centres of {case_dir} do not form a structured grid (rows of increasing x stacked in y); "
            "only such 2-D meshes are supported"
        )
    return nx


def _quads(ny: int, nx: int) -> np.ndarray:
    """Counter-clockwise quads joining the centres (j, i), (j, i+1), (j+1, i+1), (j+1, i)."""
    index = np.arange(ny * nx).reshape(ny, nx)
    return np.stack(
        [index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]], axis=-1
    ).reshape(-1, 4)


def _cell_areas(grid: np.ndarray, period: float) -> np.ndarray:
    """|dX/di x dX/dj| of the (ny, nx, 2) centre grid: central differences, periodic along x."""
    shift = np.array([period, 0.0])
    left = np.concatenate([grid[:, -1:] - shift, grid[:, :-1]], axis=1)
    right = np.concatenate([grid[:, 1:], grid[:, :1] + shift], axis=1)
    along = (right - left) / 2
    across = np.gradient(grid, axis=0)
    return np.abs(along[..., 0] * across[..., 1] - along[..., 1] * across[..., 0])


def _period(case_dir: Path) -> float:
    match = _HILL_NAME.fullmatch(case_dir.resolve().name)
    if match is None:
        raise MeshError(
            f"cannot tell the period of {case_dir} from its name (expected alpha_AA_LLLLL_HHHH); pass it explicitly"
        )
    return int(match.group(1)) / 1000.0
