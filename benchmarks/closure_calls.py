"""One call of the closure network in the coupled loop, on every device torch sees (issue 20: on the
CPU the network and its features are most of the coupled solve's cost).

`NeuralClosure` with the fixed network of ../shared/fixtures/stalling-closure on the k-omega
solution it starts from at alpha = 1.125 (64 x 64, 4,225 nodes), its clouds kept after a first
call as in the loop: the median seconds of a call, split into the features (computed with torch
on the network's device) and the network with its transfers, in float32 and float64; and nu_t
against the CPU's float64 (relative L2). On a GPU the split is loose: its work runs asynchronously,
and what the features leave queued is waited for in the network's part.

On the CPU, the floor of a call's network: its embedding's matrix products alone and its sigmoids
alone, on as many members as the call's padded clouds hold, in the network's pieces. Every member
of every cloud goes through the embedding at every call, so no form of the same network computes
less; what the call takes beyond the floor is everything else (features, padding, the cloud
average, the fitting network, copies)."""

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
            if device == "cpu":
                record["floor"] = embedding_floor(closure, fields, getattr(torch, precision))
            result["devices"].setdefault(device, {})[precision] = record
            print(json.dumps({"device": device, "precision": precision, **record}), file=sys.stderr, flush=True)  # progress
    return result


def embedding_floor(closure, fields, dtype, repeats: int = 5) -> dict:
    """Median seconds of the embedding's matrix products alone and of its sigmoids alone, for one
    call of `closure` on `fields` (its padded members, in the pieces `VectorCloudNet.moments` takes)."""
    import torch

    from vcnn.inference import plan_batches
    from vcnn.nn.cloud_nets import PIECE, VectorCloudNet
    from vcnn.nn.layers import sigmoid_weights

    model = closure.model
    if not (isinstance(model, VectorCloudNet) and model.config.activation == "tanh"):
        return {"skipped": "the floor is that of a tanh vector-cloud network's embedding (its sigmoid form)"}
    batches = plan_batches(model, fields.points, closure.index(fields), closure.shape, batch_size=closure.batch_size)
    members = sum(batch.clouds.members.size for batch in batches)
    with torch.inference_mode():
        weights = [w.to(dtype) for _, w in sigmoid_weights(model.embed, model.scalar_mean, model.scalar_std)]
        rows = PIECE // torch.empty((), dtype=dtype).element_size()  # members a piece
        inputs = [torch.rand(rows, weights[0].shape[0], dtype=dtype)] + [torch.rand(rows, w.shape[0], dtype=dtype) for w in weights[1:]]
        outputs = [torch.empty(rows, w.shape[1], dtype=dtype) for w in weights]
        pieces, last = divmod(members, rows)

        def products():
            for n in [rows] * pieces + [last] * (last > 0):
                for x, w, out in zip(inputs, weights, outputs):
                    torch.mm(x[:n], w, out=out[:n])

        def sigmoids():
            for n in [rows] * pieces + [last] * (last > 0):
                for out in outputs:
                    out[:n].sigmoid_()

        seconds = {}
        for name, work in (("products_s", products), ("sigmoids_s", sigmoids)):
            work()  # warm up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                work()
                times.append(time.perf_counter() - start)
            seconds[name] = statistics.median(times)
    return {"members": members, **seconds, "floor_s": seconds["products_s"] + seconds["sigmoids_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path, default=FIXTURE, help="a folder holding best.pt and reference/alpha_1.1250")
    parser.add_argument("--calls", type=int, default=CALLS)
    args = parser.parse_args()
    print(json.dumps(closure_calls(args.fixture, args.calls), indent=2))


if __name__ == "__main__":
    main()
