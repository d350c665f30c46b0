"""Checkpoints: the model configuration (plain data) and tensors, loaded with weights_only=True.

Nothing but dicts, lists, numbers, strings and tensors goes on disk, so loading never unpickles
arbitrary objects. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from vcnn.errors import VcnnError
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
        raise VcnnError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise VcnnError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None
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
