"""The vector-cloud network's forward pass as a share of what a plain matrix product reaches on
the same cores in the same run (issue 20: at least 30 % in float32).

The network's rate counts the multiply-adds of its matrix products (the embedding layers at every
member, the cloud average, D = L L*^T and the fitting layers; activations count nothing) over the
time of a forward pass on random clouds of `MEMBERS` members, the paper's network (39,553
parameters), in batches of `CLOUDS` clouds; the GEMM rate is a 1024 x 1024 product. Each is the
fastest of its repeats, and the two take turns over `ROUNDS` rounds so that a load that comes and
goes touches both.
"""

from __future__ import annotations

import argparse
import json
import time

MEMBERS = 357  # the full ellipse clouds of the hills-transport case, on average
CLOUDS = (64, 256, 1024)
ROUNDS = 3


def network_flops(config, members: int) -> int:
    """Multiply-adds x 2 of one cloud's forward pass through a `VectorCloudNet`."""
    embed = (config.n_scalars,) + tuple(config.embedding)
    m, width = config.embedding[-1], config.n_vectors * config.dim
    per_member = sum(a * b for a, b in zip(embed[:-1], embed[1:])) + m * width  # layers, then G^T Q
    fit = (m * config.m_prime,) + tuple(config.fitting) + (len(config.outputs),)
    per_cloud = m * config.m_prime * width + sum(a * b for a, b in zip(fit[:-1], fit[1:]))
    return 2 * (members * per_member + per_cloud)


def best_seconds(work, repeats: int, sync=lambda: None) -> float:
    """The fastest of `repeats` runs of `work`; `sync` waits for a GPU's queued kernels."""
    work()  # warm up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def forward_rate(members: int = MEMBERS, clouds=CLOUDS, rounds: int = ROUNDS, dtype: str = "float32", device: str = "cpu") -> dict:
    """On a GPU the matrix product is 8,192 x 8,192 (one of 1,024 is too small to fill it) and
    the clouds go up to 16 times as many."""
    import torch

    from vcnn.nn import CloudNetConfig, build_model

    torch.manual_seed(0)
    kind = getattr(torch, dtype)
    gpu = device != "cpu"
    size, clouds = (8192, tuple(clouds) + (4096, 16384)) if gpu else (1024, clouds)
    sync = torch.cuda.synchronize if gpu else lambda: None
    config = CloudNetConfig()  # the paper's network: 7 scalars, 2 vectors
    model = build_model(config).to(device=device, dtype=kind).eval()
    a, b = (torch.randn(size, size, dtype=kind, device=device) for _ in range(2))
    inputs = {
        n: (torch.randn(n, members, config.n_vectors, config.dim, dtype=kind, device=device),
            torch.randn(n, members, config.n_scalars, dtype=kind, device=device),
            torch.full((n, members), 1.0 / members, dtype=kind, device=device))
        for n in clouds
    }
    gemm, forward = [], {n: [] for n in clouds}
    with torch.inference_mode():
        for _ in range(rounds):
            gemm.append(2 * size**3 / best_seconds(lambda: a @ b, 10, sync) / 1e9)
            for n, (vectors, scalars, weights) in inputs.items():
                seconds = best_seconds(lambda: model(vectors, scalars, weights), 3, sync)
                forward[n].append(n * network_flops(config, members) / seconds / 1e9)
    best_gemm = max(gemm)
    return {
        "dtype": dtype, "device": torch.cuda.get_device_name(device) if gpu else "cpu", "members": members, "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "flops_per_cloud": network_flops(config, members), "gemm_size": size, "gemm_gflops": best_gemm,
        "forward": {str(n): {"gflops": max(r), "share_of_gemm": max(r) / best_gemm} for n, r in forward.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    print(json.dumps(forward_rate(dtype=args.dtype, device=args.device), indent=2))


if __name__ == "__main__":
    main()
