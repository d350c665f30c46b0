"""Checkpoints: the model configuration (plain data) and tensors, loaded with weights_only=True.

Nothing but dicts, lists, numbers, strings and tensors goes on disk, so loading never unpickles
arbitrary objects. Files are written to a temporary name and renamed.

The schema is vcnn's own: `format`, `model` (class and config), `state_dict`, and for a trained
network its data configuration (`data_config`: cloud table, feature spec, targets, plus plain
context such as the case family and split). `load_trained` is the one loader of trained networks.
"""

from __future__ import annotations

import os
import tempfile
import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import torch

from meshes.fields import MeshFields
from vcnn.clouds import Shape, shape_from
from vcnn.errors import VcnnError
from vcnn.features import FeatureSpec
from vcnn.nn import CloudNet, CloudNetConfig, ModelError, build_model

FORMAT = "vcnn-checkpoint-1"


def save(path: str | Path, model: CloudNet, **extra) -> Path:
    """Write the model (class, config, state dict) and any plain `extra` entries atomically."""
    path = Path(path)
    payload = plain(
        {
            "format": FORMAT,
            "model": {"class": type(model).__name__, "config": model.config.as_dict()},
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            **extra,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def fingerprint(model: CloudNet) -> str:
    """SHA-256 of the model's tensors (names, dtypes, shapes and bytes): equal only for bitwise-equal weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def plain(value):
    """Only what weights_only loading accepts: containers, numbers, strings, None and tensors."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}  # int keys stay ints (optimizer state)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    raise VcnnError(f"cannot store {type(value).__name__} in a checkpoint (plain data and tensors only)")


def load(path: str | Path, map_location="cpu") -> tuple[CloudNet, dict]:
    """(model, the whole checkpoint dict); VcnnError on a missing, foreign or inconsistent file."""
    path = Path(path)
    if not path.is_file():
        raise VcnnError(f"checkpoint {path} {'is a directory' if path.is_dir() else 'does not exist'}")
    if path.stat().st_size == 0:
        raise VcnnError(f"checkpoint {path} is empty (0 bytes)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors come in many types, some with no message
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise VcnnError(f"cannot read checkpoint {path} (truncated, damaged or not a vcnn checkpoint): {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise VcnnError(f"{path} is not a vcnn checkpoint")
    try:
        model = build_model(CloudNetConfig(**payload["model"]["config"]))
        if type(model).__name__ != payload["model"]["class"]:
            raise ValueError(f"config builds {type(model).__name__}, file says {payload['model']['class']}")
        model.load_state_dict(payload["state_dict"])
    except ModelError as err:
        raise VcnnError(f"checkpoint {path}: {err}") from None
    except (TypeError, RuntimeError, ValueError) as err:
        raise VcnnError(f"checkpoint {path}: weights do not match its model config ({str(err).splitlines()[0]})") from None
    return model, payload


DATA_KEYS = ("cloud", "features", "targets")
"""What a trained network's checkpoint carries to rebuild its inputs from a field."""


def data_config(cloud: dict, features: FeatureSpec, targets, **context) -> dict:
    """The checkpoint entries of a trained network: its cloud table, feature spec and targets, and
    plain `context` for the records (study, family, split, resolution, ...)."""
    return {"cloud": dict(cloud), "features": dataclasses.asdict(features), "targets": list(targets), **context}


@dataclasses.dataclass(frozen=True)
class Trained:
    """A trained network and how to feed it: its cloud shape and features."""

    model: CloudNet
    state: dict  # the whole checkpoint: data configuration, context, training state
    shape: Shape
    spec: FeatureSpec

    @property
    def targets(self) -> list[str]:
        return list(self.state["targets"])

    def check_fields(self, fields: MeshFields, source) -> None:
        """Refuse, naming `source` (the file), a field this network cannot read: another
        dimension than it was trained in, an input array missing, of another kind or non-finite."""
        if fields.dim != self.model.config.dim:
            raise VcnnError(f"{source} is a {fields.dim}-D field; the network is {self.model.config.dim}-D")
        try:
            self.spec.check_fields(fields)
        except VcnnError as err:
            raise VcnnError(f"{source}: {err}") from None


def load_trained(path: str | Path, map_location="cpu") -> Trained:
    """A checkpoint written by training (`data_config` entries present, outputs = targets, every
    weight finite); VcnnError with one line otherwise (also for a missing, empty or truncated
    file). Whether a field suits the network: `Trained.check_fields`."""
    model, state = load(path, map_location)
    missing = [key for key in DATA_KEYS if key not in state]
    if missing:
        raise VcnnError(f"checkpoint {path} lacks its data configuration ({', '.join(missing)}); was it saved by vcnn train?")
    broken = [name for name, value in state["state_dict"].items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if broken:
        raise VcnnError(f"checkpoint {path} holds NaN or infinite weights ({', '.join(broken[:3])}{', ...' if len(broken) > 3 else ''})")
    if list(model.config.outputs) != list(state["targets"]):
        raise VcnnError(f"checkpoint {path}: model outputs {list(model.config.outputs)} do not match targets {state['targets']}")
    try:
        spec = FeatureSpec(**state["features"])
    except TypeError as err:
        raise VcnnError(f"checkpoint {path}: unreadable feature spec ({err})") from None
    return Trained(model, state, shape_from(state["cloud"]), spec)
