"""`MeshFields`: data on mesh nodes, the one interchange type between solvers and learning.

Imports only numpy at module level (meshio is loaded when reading or writing), so the learning
side can use it on a machine without FEniCSx.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from meshes.errors import MeshError

VTU_NAME = "fields.vtu"
META_NAME = "meta.json"
WEIGHT_NAME = "node_weight"

_CELL_NODES = {"line": 2, "triangle": 3, "quad": 4, "tetra": 4, "hexahedron": 8}


@dataclasses.dataclass
class MeshFields:
    """Named fields on the nodes of an unstructured mesh.

    points:    (N, dim) node coordinates, dim in {2, 3}
    cells:     (C, k) node indices of the cells, all of one `cell_type` (meshio name)
    weights:   (N,) node weights (lumped mass / dual volume): sum(w f) approximates the integral of f
    point_data: name -> (N,) scalar, (N, dim) vector or (N, dim, dim) tensor
    metadata:  JSON-serialisable dict (case, parameters, solver statistics, versions)
    """

    points: np.ndarray
    cells: np.ndarray
    cell_type: str = "triangle"
    weights: np.ndarray | None = None
    point_data: dict = dataclasses.field(default_factory=dict)
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.points = np.ascontiguousarray(self.points, dtype=float)
        self.cells = np.ascontiguousarray(self.cells, dtype=np.int64)
        if self.points.ndim != 2 or self.points.shape[1] not in (2, 3):
            raise MeshError(f"points must be an (N, 2) or (N, 3) array, got shape {self.points.shape}")
        if (
            self.cell_type not in _CELL_NODES
            or self.cells.ndim != 2
            or self.cells.shape[1] != _CELL_NODES[self.cell_type]
        ):
            raise MeshError(
                f"cells of type {self.cell_type!r} must be a (C, {_CELL_NODES.get(self.cell_type, '?')}) array"
            )
        if self.cells.size and (self.cells.min() < 0 or self.cells.max() >= len(self.points)):
            raise MeshError("cells refer to nodes that do not exist")
        if self.weights is None:
            self.weights = lumped_node_weights(self.points, self.cells, self.cell_type)
        self.weights = np.asarray(self.weights, dtype=float)
        if self.weights.shape != (self.num_nodes,):
            raise MeshError(f"weights must have shape ({self.num_nodes},), got {self.weights.shape}")
        for name, values in list(self.point_data.items()):
            self.point_data[name] = self._checked(name, values)

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    @property
    def num_nodes(self) -> int:
        return self.points.shape[0]

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.point_data[name]
        except KeyError:
            raise KeyError(f"no point array {name!r}; have {sorted(self.point_data)}") from None

    def __setitem__(self, name: str, values) -> None:
        self.point_data[name] = self._checked(name, values)

    def kind(self, name: str) -> str:
        """'scalar', 'vector' or 'tensor' (how the array transforms under a rotation)."""
        return {1: "scalar", 2: "vector", 3: "tensor"}[self[name].ndim]

    def triangles(self) -> np.ndarray:
        """(T, 3) node indices of a 2-D mesh as triangles (quads split along a diagonal), for
        plotting and linear interpolation."""
        if self.cell_type == "triangle":
            return self.cells
        if self.cell_type == "quad":
            return np.r_[self.cells[:, [0, 1, 2]], self.cells[:, [0, 2, 3]]]
        raise MeshError(f"{self.cell_type!r} cells are not 2-D cells")

    def integral(self, values: np.ndarray) -> np.ndarray:
        """Quadrature with the node weights: approximates the integral over the domain."""
        return np.tensordot(self.weights, np.asarray(values), axes=(0, 0))

    def _checked(self, name: str, values) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        n, d = self.num_nodes, self.dim
        if values.shape not in ((n,), (n, d), (n, d, d)):
            raise MeshError(
                f"point array {name!r} has shape {values.shape}; expected ({n},), ({n}, {d}) or ({n}, {d}, {d})"
            )
        if name == WEIGHT_NAME:
            raise MeshError(f"{WEIGHT_NAME!r} is reserved for the node weights")
        return values

    # --- disk -------------------------------------------------------------------------------

    def write(self, directory: str | Path) -> Path:
        """Write `directory/fields.vtu` (ParaView/meshio readable) and `directory/meta.json`.

        Each file is written to a temporary name and renamed, so a crash never leaves a
        truncated file behind. Vectors and tensors are padded to 3 components for ParaView.
        """
        import meshio

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        kinds = {name: self.kind(name) for name in self.point_data}
        data = {name: _pad(values, kinds[name]) for name, values in self.point_data.items()}
        data[WEIGHT_NAME] = self.weights
        mesh = meshio.Mesh(_pad(self.points, "vector"), [(self.cell_type, self.cells)], point_data=data)
        _atomic(
            directory / VTU_NAME,
            lambda tmp: meshio.write(tmp, mesh, file_format="vtu", binary=True, compression="zlib"),
        )
        meta = {"dim": self.dim, "arrays": kinds, "metadata": self.metadata}
        text = json.dumps(meta, indent=2, sort_keys=True, default=_json_default)
        _atomic(directory / META_NAME, lambda tmp: Path(tmp).write_text(text + "\n"))
        return directory

    @classmethod
    def read(cls, directory: str | Path) -> "MeshFields":
        """Read what `write` wrote (a directory, or the path of its fields.vtu). MeshError naming the
        file (and the array) if a file is unreadable, an array listed in meta.json or the node
        weights are missing, an array has another shape than its kind, or a weight is not finite."""
        from meshio import vtu as vtu_format  # the reader itself: meshio.read prints and exits on a bad file

        directory = Path(directory)
        if directory.name == VTU_NAME:
            directory = directory.parent
        vtu, meta_path = directory / VTU_NAME, directory / META_NAME
        if not vtu.is_file() or not meta_path.is_file():
            raise MeshError(f"{directory} holds no mesh fields (needs {VTU_NAME} and {META_NAME})")
        try:
            meta = json.loads(meta_path.read_text())
            dim, kinds = int(meta["dim"]), dict(meta["arrays"])
        except (ValueError, OSError, KeyError, TypeError) as err:
            raise MeshError(f"cannot read {meta_path}: {type(err).__name__}: {err}") from None
        try:
            mesh = vtu_format.read(str(vtu))
        except Exception as err:  # a damaged file fails in many ways (XML, base64, zlib, meshio)
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise MeshError(f"cannot read {vtu}: not a readable VTU file ({reason})") from None
        missing = [name for name in (WEIGHT_NAME, *kinds) if name not in mesh.point_data]
        if missing:
            raise MeshError(f"{vtu} lacks the point array(s) {missing} (it has {sorted(mesh.point_data)})")
        if len(mesh.cells) != 1:
            raise MeshError(f"{vtu} holds {len(mesh.cells)} blocks of cells; mesh fields have one")
        data = {}
        for name, kind in kinds.items():
            values = np.asarray(mesh.point_data[name], dtype=float)
            if values.shape[1:] != _STORED.get(kind):
                raise MeshError(f"{vtu}: point array {name!r} has shape {values.shape}, not that of a {kind} (meta.json)")
            data[name] = _unpad(values, kind, dim)
        weights = np.asarray(mesh.point_data[WEIGHT_NAME], dtype=float)
        if not np.isfinite(weights).all():
            raise MeshError(f"{vtu}: the node weights ({WEIGHT_NAME!r}) hold NaN or infinite values")
        try:
            return cls(mesh.points[:, :dim], mesh.cells[0].data, mesh.cells[0].type, weights, data, meta.get("metadata", {}))
        except MeshError as err:
            raise MeshError(f"{vtu}: {err}") from None


def lumped_node_weights(points: np.ndarray, cells: np.ndarray, cell_type: str = "triangle") -> np.ndarray:
    """Row sums of the P1 mass matrix: each cell gives its measure equally to its nodes.

    Exact for simplices; for quads and hexahedra the measure is that of the simplices the
    cell splits into (exact for parallelograms/parallelepipeds, second order otherwise).
    """
    points = np.asarray(points, dtype=float)
    cells = np.asarray(cells)
    if cell_type == "triangle":
        measure = _simplex_measure(points[cells])
    elif cell_type == "quad":
        measure = _simplex_measure(points[cells[:, [0, 1, 2]]]) + _simplex_measure(points[cells[:, [0, 2, 3]]])
    elif cell_type == "tetra":
        measure = _simplex_measure(points[cells])
    elif cell_type == "line":
        measure = np.linalg.norm(points[cells[:, 1]] - points[cells[:, 0]], axis=1)
    else:
        raise MeshError(f"node weights for {cell_type!r} cells are not implemented")
    weights = np.zeros(len(points))
    np.add.at(weights, cells.ravel(), np.repeat(measure / cells.shape[1], cells.shape[1]))
    return weights


def _simplex_measure(vertices: np.ndarray) -> np.ndarray:
    """Area (triangles) or volume (tetrahedra) of simplices given as (C, k, dim) vertices."""
    edges = vertices[:, 1:, :] - vertices[:, :1, :]
    k = edges.shape[1]
    if edges.shape[2] == k:
        return np.abs(np.linalg.det(edges)) / math.factorial(k)
    gram = np.einsum("cid,cjd->cij", edges, edges)  # simplices embedded in a higher dimension
    return np.sqrt(np.abs(np.linalg.det(gram))) / math.factorial(k)


def _pad(values: np.ndarray, kind: str) -> np.ndarray:
    """Pad vectors to 3 and tensors to 3 x 3 (flattened to 9) components."""
    values = np.asarray(values, dtype=float)
    if kind == "scalar":
        return values
    d = values.shape[1]
    if kind == "vector":
        return np.pad(values, ((0, 0), (0, 3 - d)))
    return np.pad(values, ((0, 0), (0, 3 - d), (0, 3 - d))).reshape(len(values), 9)


_STORED = {"scalar": (), "vector": (3,), "tensor": (9,)}
"""Trailing shape of each kind of array in the VTU file (`_pad`)."""


def _unpad(values: np.ndarray, kind: str, dim: int) -> np.ndarray:
    """Undo `_pad`: vectors and tensors back to `dim` components."""
    if kind == "vector":
        return values[:, :dim]
    if kind == "tensor":
        return values.reshape(-1, 3, 3)[:, :dim, :dim]
    return values


def _atomic(path: Path, write) -> None:
    """Call write(tmp_name) on a temporary file next to `path`, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
