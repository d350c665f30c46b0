"""One call of the closure network in the coupled loop, on every device torch sees (issue 20: on the
CPU the network and its features are most of the coupled solve's cost).

`NeuralClosure` with the fixed network of ../shared/fixtures/stalling-closure on the k-omega
solution it starts from at alpha = 1.125 (64 x 64, 4,225 nodes), its clouds kept after a first
call as in the loop: the median seconds of a call, split into the features (computed with torch
on the network's device) and the network with its transfers, in float32 and float64; and nu_t
against the CPU's float64 (relative L2). On a GPU the split is loose: its work runs asynchronously,
and what the features leave queued is waited for in the network's part."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.coupling import FIXTURE

CALLS = 10


def closure_calls(fixture: Path = FIXTURE, calls: int = CALLS) -> dict:
    import numpy as np
    import torch

    from meshes.fields import MeshFields
    from vcnn.closure import NeuralClosure

    if not (fixture / "best.pt").is_file():
        return {"skipped": f"no {fixture / 'best.pt'}"}
    fields = MeshFields.read(fixture / "reference" / "alpha_1.1250")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result = {"nodes": fields.num_nodes, "calls": calls, "cpu_threads": torch.get_num_threads(), "devices": {}}
    if "cuda" in devices:
        result["gpu"] = torch.cuda.get_device_name()
    reference = None
    for device in devices:
        for precision in ("float64", "float32"):
            closure = NeuralClosure(fixture / "best.pt", device=device, dtype=precision)
            closure(fields)  # the clouds searched and kept; the device warmed up
            before = dict(closure.timings)
            seconds = []
            for _ in range(calls):
                start = time.perf_counter()
                nu_t = closure(fields)["nu_t"]
                seconds.append(time.perf_counter() - start)
            reference = nu_t if reference is None else reference  # the CPU's float64, first
            record = {
                "call_s": statistics.median(seconds),
                "features_s": (closure.timings["clouds"] - before["clouds"]) / calls,
                "network_s": (closure.timings["network"] - before["network"]) / calls,
                "nu_t_vs_cpu_float64": float(np.linalg.norm(nu_t - reference) / np.linalg.norm(reference)),
            }
            result["devices"].setdefault(device, {})[precision] = record
            print(json.dumps({"device": device, "precision": precision, **record}), file=sys.stderr, flush=True)  # progress
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path, default=FIXTURE, help="a folder holding best.pt and reference/alpha_1.1250")
    parser.add_argument("--calls", type=int, default=CALLS)
    args = parser.parse_args()
    print(json.dumps(closure_calls(args.fixture, args.calls), indent=2))


if __name__ == "__main__":
    main()
