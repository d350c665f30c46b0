"""`vcnn predict`: a trained network applied to a field made anywhere (a solved case directory or
any meshio-readable mesh file), written back as the same mesh with the predictions added.

Everything is checked before the network runs: the arrays the network reads (after `--map`
renames them) are present, of their kind and dimension and finite; the period vectors (the
file's, or `--period`) fit the mesh (`meshes.periodicity`); a closure network has a viscosity.
The prediction runs in float64, so that a field and the same field turned, renamed and re-meshed
into another file give the same numbers to round-off.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

import numpy as np

from cases.errors import CaseError
from meshes.errors import MeshError
from meshes.fields import META_NAME, VTU_NAME, WEIGHT_NAME, MeshFields

PREFIX = "predicted_"
"""Predicted arrays are named PREFIX + target, beside the input's own arrays (the reference, if any)."""


def parse_map(items) -> dict[str, str]:
    """--map NETWORK_NAME=FILE_NAME items as {network name: file name}."""
    mapping = {}
    for item in items or ():
        net, sep, name = item.partition("=")
        if not sep or not net or not name:
            raise CaseError(f"--map takes NAME=ARRAY (the network's name = the file's array), got {item!r}")
        if net in mapping:
            raise CaseError(f"--map names {net!r} twice")
        mapping[net] = name
    return mapping


def parse_periods(items) -> list[list[float]] | None:
    """--period X,Y[,Z] items as a list of lattice vectors (None if none given)."""
    if not items:
        return None
    try:
        return [[float(c) for c in item.split(",")] for item in items]
    except ValueError:
        raise CaseError(f"--period takes numbers separated by commas (X,Y or X,Y,Z), got {items}") from None


def read_input(path: Path) -> tuple[MeshFields, dict, Path]:
    """(fields, left_out, source file): a solved case directory (fields.vtu + meta.json) or any
    mesh file meshio reads; `left_out`: the file's arrays that are no scalar, vector or tensor."""
    from meshes.foreign import read_mesh_file

    path = Path(path)
    try:
        if path.is_dir() or (path.name == VTU_NAME and (path.parent / META_NAME).is_file()):
            directory = path if path.is_dir() else path.parent
            return MeshFields.read(directory), {}, directory / VTU_NAME
        fields, left_out = read_mesh_file(path)
    except MeshError as err:
        raise CaseError(str(err)) from None
    return fields, left_out, path


def network_view(fields: MeshFields, left_out: dict, source: Path, mapping: dict, inputs: dict) -> MeshFields:
    """The field as the network reads it: arrays renamed by `mapping` ({network name: file
    name}, `node_weight` for the node weights); CaseError naming the array and the file when an
    array the network reads (`inputs`, {name: kind}) is missing or could not be read."""
    view = copy.copy(fields)
    view.point_data, view.metadata = dict(fields.point_data), dict(fields.metadata)
    for net, name in mapping.items():
        if name in left_out:
            raise CaseError(f"{source}: point array {name!r} (--map {net}={name}) cannot be read: {left_out[name]}")
        if name not in fields.point_data:
            raise CaseError(f"{source} has no point array {name!r} (--map {net}={name}); it has {sorted(fields.point_data)}")
        if net == WEIGHT_NAME:
            if fields.kind(name) != "scalar":
                raise CaseError(f"{source}: the node weights (--map {net}={name}) must be a scalar array, {name!r} is a {fields.kind(name)}")
            view.weights = fields[name]
        else:
            view.point_data[net] = fields[name]
    for net, kind in inputs.items():
        if net not in view.point_data:
            why = f": {left_out[net]}" if net in left_out else f"; it has {sorted(fields.point_data)} (name one with --map {net}=ARRAY)"
            raise CaseError(f"{source} has no {kind} point array {net!r}, which the network reads{why}")
    return view


@dataclasses.dataclass
class Request:
    """A prediction checked and ready to run: the network, the field as read and as it reads it."""

    checkpoint: Path
    trained: object  # vcnn.checkpoint.Trained
    fields: MeshFields  # as read, the periods set; written out with the predictions
    view: MeshFields  # as the network reads it (--map)
    source: Path
    closure: str | None  # the closure target whose inverse gives nu_t
    nu: float | None

    @property
    def periods(self) -> np.ndarray | None:
        periods = self.fields.metadata.get("periods")
        return None if periods is None else np.asarray(periods, dtype=float)


def prepare(model: str | Path, fields_path: Path, mapping: dict | None = None, periods: list | None = None, nu: float | None = None) -> Request:
    """Every check before the work, each refusal one line naming the file (and the array): the
    model (a shipped name or a checkpoint), the field's dimension and arrays, the periods against
    the mesh, a viscosity for a closure."""
    from cases.models import resolve
    from meshes.periodicity import check_periods
    from vcnn.checkpoint import load_trained
    from vcnn.closure import INVERSES

    checkpoint = resolve(model)
    trained = load_trained(checkpoint)
    fields, left_out, source = read_input(fields_path)
    if fields.dim != trained.model.config.dim:
        raise CaseError(f"{source} is a {fields.dim}-D field; the network is {trained.model.config.dim}-D")
    view = network_view(fields, left_out, source, mapping or {}, trained.spec.inputs())
    trained.check_fields(view, source)
    if periods is not None:
        fields.metadata["periods"] = periods
    if fields.metadata.get("periods") is not None:
        try:
            check_periods(fields.points, fields.cells, fields.cell_type, fields.metadata["periods"], source)
        except MeshError as err:
            raise CaseError(str(err)) from None
    closure = next((t for t in trained.targets if t in INVERSES), None)
    if closure:
        nu = fields.metadata.get("nu") if nu is None else nu
        if nu is None:
            raise CaseError(f"{checkpoint} is a closure ({closure}): give the viscosity with --nu ({source} has no metadata 'nu')")
        if not float(nu) > 0:
            raise CaseError(f"the viscosity must be positive, got {nu}")
    return Request(checkpoint, trained, fields, view, source, closure, None if nu is None else float(nu))


def predict(
    model: str | Path,
    fields_path: Path,
    out: Path,
    mapping: dict | None = None,
    periods: list | None = None,
    nu: float | None = None,
    device: str = "cpu",
    overwrite: bool = False,
) -> dict:
    """Predict the network `model` (a shipped name or a checkpoint) on `fields_path`; write
    `out/fields.vtu` (the input's arrays and PREFIX + each target; `predicted_nu_t` too for a
    closure) and `out/meta.json` (the input's metadata and `prediction`); return the summary
    (also under `prediction`): the model, input, arrays written, periods used, and the relative L2
    error of each target the input also holds."""
    import torch

    from cases.rundir import check_output, staged_output
    from vcnn.closure import INVERSES
    from vcnn.devices import check_device
    from vcnn.errors import VcnnError
    from vcnn.inference import predict_fields, relative_l2

    check_device(device)
    request = prepare(model, fields_path, mapping, periods, nu)
    check_output(out, overwrite)
    tic = time.perf_counter()
    trained, view, fields = request.trained, request.view, request.fields
    try:
        predicted = predict_fields(trained.model.double(), view, trained.shape, trained.spec, request.periods, device=device, dtype=torch.float64)
    except VcnnError as err:
        raise CaseError(f"{request.source}: {err}") from None
    errors = relative_l2(view, {n: v for n, v in predicted.items() if n in view.point_data and view[n].shape == v.shape})
    if request.closure:
        predicted["nu_t"] = INVERSES[request.closure](predicted[request.closure], request.nu)
    fields.weights = view.weights
    for name, value in predicted.items():
        fields[PREFIX + name] = value
    summary = {
        "model": str(model),
        "checkpoint": str(request.checkpoint),
        "family": trained.state.get("family"),
        "input": str(request.source),
        "out": str(out),
        "nodes": fields.num_nodes,
        "map": dict(mapping or {}),
        "periods": fields.metadata.get("periods"),
        "nu": request.nu if request.closure else None,
        "arrays": [PREFIX + name for name in predicted],
        "relative_l2": errors,
        "seconds": round(time.perf_counter() - tic, 3),
    }
    fields.metadata["prediction"] = summary
    with staged_output(out, overwrite) as stage:
        fields.write(stage)
    return summary
