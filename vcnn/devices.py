"""Where a network runs: a device name checked against what torch sees, before any work (torch's
own errors come late and mislead: a checkpoint loaded onto a missing GPU reads as damaged)."""

from __future__ import annotations

import torch

from vcnn.errors import VcnnError


def check_device(name: str) -> str:
    """`name` (cpu, cuda or cuda:N) if torch can run on it here; else VcnnError, one line."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise VcnnError(f"unknown device {name!r}; choose cpu, cuda or cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            built = "" if torch.version.cuda else " (a build without CUDA)"
            raise VcnnError(f"device {name!r}: torch {torch.__version__}{built} sees no GPU here; use cpu")
        if device.index is not None and device.index >= count:
            raise VcnnError(f"device {name!r}: torch sees {count} GPU(s) here, cuda:0 to cuda:{count - 1}")
    return name
