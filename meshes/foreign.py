"""Fields made elsewhere: any meshio-readable mesh file (VTU, XDMF, Gmsh, ...) as `MeshFields`.

A file written by another program has no meta.json: its dimension, the kind of each array and its
node weights are inferred here. The dimension is 2 when every cell is 2-D (triangles, quads) and
the third coordinate is constant (ParaView and most writers pad 2-D points to three components).
Arrays become scalars (N values), vectors (dim components, or 3 with a zero third one in 2-D) or
tensors (dim x dim, or 3 x 3 / 9 padded with zeros in 2-D); an array that is none of these (an
out-of-plane velocity in 2-D, 6-component symmetric tensors, ...) is left out and reported, so
that a network that reads it can say why. Node weights are the file's `node_weight` array if it
has one, else the lumped mass of the cells (`lumped_node_weights`).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from meshes.errors import MeshError
from meshes.fields import WEIGHT_NAME, MeshFields

_CELL_DIM = {"line": 1, "triangle": 2, "quad": 2, "tetra": 3, "hexahedron": 3}


def read_mesh_file(path: str | Path) -> tuple[MeshFields, dict]:
    """(fields, left_out): the file's mesh and point arrays; `left_out` maps the name of each
    array that is no scalar, vector or tensor of the mesh's dimension to why. MeshError naming
    the file if it cannot be read or holds no cells of a supported type."""
    import meshio

    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    printed, complained = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(complained):  # meshio prints why it failed, then exits
            mesh = meshio.read(path)
    except (Exception, SystemExit) as err:
        said = printed.getvalue().strip().splitlines() or [" ".join(complained.getvalue().split()).removeprefix("Error: ")]
        reason = said[0] if said[0] and not isinstance(err, Exception) else (str(err).strip() or type(err).__name__)
        raise MeshError(f"cannot read {path}: {reason}") from None
    cell_type, cells = _cells(mesh, path)
    dim = _CELL_DIM[cell_type]
    points = np.asarray(mesh.points, dtype=float)
    if points.shape[1] == 3 and dim == 2:
        if np.ptp(points[:, 2]) > 1e-12 * max(np.ptp(points), 1.0):
            raise MeshError(f"{path}: a mesh of {cell_type} cells whose nodes do not lie in one z = const plane")
        points = points[:, :2]
    data, left_out = {}, {}
    weights = None
    for name, values in mesh.point_data.items():
        try:
            values = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            left_out[name] = "its values are not numbers"
            continue
        converted = _as_kind(values, len(points), dim)
        if name == WEIGHT_NAME:
            if isinstance(converted, str) or converted.ndim != 1:
                raise MeshError(f"{path}: the node weights ({WEIGHT_NAME!r}) must be one number per node, they have shape {values.shape}")
            weights = converted
        elif isinstance(converted, str):
            left_out[name] = converted
        else:
            data[name] = converted
    try:
        return MeshFields(points, cells, cell_type, weights, data), left_out
    except MeshError as err:
        raise MeshError(f"{path}: {err}") from None


def _cells(mesh, path: Path) -> tuple[str, np.ndarray]:
    """The cells of the highest dimension (boundary lines and faces dropped); quads mixed with
    triangles become two triangles each (the same node weights)."""
    blocks = [(b.type, np.asarray(b.data)) for b in mesh.cells if b.type in _CELL_DIM and _CELL_DIM[b.type] >= 2]
    if not blocks:
        raise MeshError(f"{path} holds no triangle, quad, tetra or hexahedron cells (it has {sorted({b.type for b in mesh.cells})})")
    top = max(_CELL_DIM[t] for t, _ in blocks)
    blocks = [(t, c) for t, c in blocks if _CELL_DIM[t] == top]
    types = {t for t, _ in blocks}
    if len(types) == 1:
        return blocks[0][0], np.concatenate([c for _, c in blocks])
    if types == {"triangle", "quad"}:
        split = [c if t == "triangle" else np.r_[c[:, [0, 1, 2]], c[:, [0, 2, 3]]] for t, c in blocks]
        return "triangle", np.concatenate(split)
    raise MeshError(f"{path} mixes {sorted(types)} cells; mesh fields hold one cell type")


def _as_kind(values: np.ndarray, n: int, dim: int):
    """The array as a scalar (n,), vector (n, dim) or tensor (n, dim, dim); a string saying why not."""
    shape = values.shape
    if values.ndim == 0 or shape[0] != n:
        return f"it has {values.size if values.ndim == 0 else shape[0]} values for {n} nodes"
    if values.ndim == 2 and shape[1] == 1:
        return values[:, 0]
    if values.ndim == 1:
        return values
    if values.ndim == 2 and shape[1] == dim:
        return values
    if values.ndim == 2 and shape[1] == dim * dim:
        return values.reshape(n, dim, dim)
    if dim == 2 and values.ndim == 2 and shape[1] == 3:
        if np.abs(values[:, 2]).max() > 0:
            return "a 3-component vector with a nonzero third component in a 2-D field"
        return values[:, :2]
    if dim == 2 and (values.ndim == 2 and shape[1] == 9 or values.shape[1:] == (3, 3)):
        tensor = values.reshape(n, 3, 3)
        if np.abs(tensor[:, 2, :]).max() > 0 or np.abs(tensor[:, :, 2]).max() > 0:
            return "a 3 x 3 tensor with nonzero out-of-plane components in a 2-D field"
        return tensor[:, :2, :2]
    if values.shape[1:] == (dim, dim):
        return values
    return f"shape {shape} is no scalar, vector or tensor of a {dim}-D field"
