"""Cost per query point against cloud size n: the vector-cloud network (linear in n) against the
graph kernel network on the fully connected cloud graph (quadratic in n).

Each (network, n) runs in a fresh process: inference on a batch of random clouds, the fastest of
a few repeats, and the growth of the peak resident memory during the forward pass, both divided
by the batch size. Exponents are least-squares slopes in log-log coordinates.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from benchmarks.graph_scaling import exponent, forward_cost

SIZES = (25, 50, 100, 200, 400, 800)
NETWORKS = {
    "vector_cloud": {},  # the paper's 39,553-parameter network
    "graph_kernel": {"embedding": (16, 16), "kernel": (32,), "fitting": (64,)},
}
MAX_ELEMENTS = 2**27  # elements of the largest intermediate per batch


def one(kind: str, n: int, repeats: int = 3) -> dict:
    """Time and memory per query point of one network at cloud size n (in this process)."""
    import torch

    from vcnn.nn import CloudNetConfig, build_model

    torch.manual_seed(0)
    model = build_model(CloudNetConfig(kind=kind, n_scalars=5, **NETWORKS[kind])).eval()
    batch = int(max(1, min(512, MAX_ELEMENTS // model.elements_per_cloud(n))))
    seconds, memory_mb = forward_cost(model, batch, n, repeats=repeats)
    return {
        "network": kind,
        "n": n,
        "batch": batch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(),
        "seconds_per_query": seconds / batch,
        "memory_mb_per_query": memory_mb / batch,
    }


def scaling(sizes=SIZES) -> dict:
    """Every (network, n) in its own process; per-network exponents of time and memory."""
    results: dict = {"sizes": list(sizes), "networks": {}}
    for kind in NETWORKS:
        runs = []
        for n in sizes:
            out = subprocess.run([sys.executable, "-m", "benchmarks.cloud_scaling", "--one", kind, str(n)], capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
        memory = [max(r["memory_mb_per_query"], 1e-9) for r in runs]
        results["networks"][kind] = {
            "runs": runs,
            "time_exponent": exponent(sizes, [r["seconds_per_query"] for r in runs]),
            # the smallest clouds fit in memory the process already had: fit the largest three
            "memory_exponent": exponent(sizes[-3:], memory[-3:]),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, metavar=("NETWORK", "N"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]))))
    else:
        print(json.dumps(scaling(), indent=2))


if __name__ == "__main__":
    main()
