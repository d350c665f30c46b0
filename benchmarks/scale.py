"""The distributed closure at sizes this machine cannot run: a table for 10^5 to 10^7 nodes on 1
to 1024 ranks (issue 20), from measured halo sizes and per-member network costs.

Measured here:
- halo sizes: the hills mesh at alpha = 1.125 (wall ratio 100) at 64, 128 and 256 cells a side,
  partitioned by `mpirun -n P` (P = 2, 4, 8; oversubscribed, only sizes are read) with ball clouds
  whose radius holds the cloud at the same number of members (0.5 H at 64 x 64, halved with the
  spacing): each rank's owned nodes, halo nodes and mean cloud members (`solvers.halo.NodeHalo`);
- the network's cost per cloud and per member (the closure's network size, one process, float32
  and float64) at the closure study's 147 members (MEMBERS).
Model, with no fitted constant: a rank owning n nodes of a compact (square) subdomain, with clouds
of m members (a disc of radius w = sqrt(m / pi) node spacings), has a halo of the nodes within w
of its boundary: 4 w sqrt(n) + 4 w^2; it evaluates n clouds per closure call and keeps their
members (index and offset: 8 + 8 dim bytes each); a call sends and receives HALO_BYTES per halo
node. Each measured run gives its largest halo over the model's (the long, thin hill domain is cut
into strips: fewer neighbours than a square, but longer cuts). The table (m = the closure study's
147 members) is written as JSON and Markdown."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

ALPHA = 1.125
RESOLUTIONS = (64, 128, 256)
RANKS = (2, 4, 8)
RADIUS_AT_64 = 0.5
HALO_BYTES = 5 * 8  # velocity (2), |S|, wall distance, nu_t per halo node and call (float64)
MEMBER_BYTES = (8 + 8 * 2 + 1) * 1.06  # a kept cloud slot (its node index, its offset from the query (2-D), a padding flag), 6 % of slots padding
NODES = (10**5, 10**6, 10**7)
TABLE_RANKS = (1, 4, 16, 64, 256, 1024)
BATCH = 256  # clouds per network call (vcnn.inference.GROUP)
MEMBERS = 147  # mean members of the closure study's clouds (ball of 0.5 H on the 64 x 64 hills)


def probe(cells: int) -> dict:
    """Under mpirun: this mesh's halo on every rank (owned, halo, mean cloud members), on rank 0."""
    import numpy as np
    from dolfinx import fem
    from mpi4py import MPI

    from meshes.periodic_domain import Resolution
    from meshes.shapes import periodic_hill
    from solvers.halo import NodeHalo
    from vcnn.clouds import Ball, NodeIndex

    comm = MPI.COMM_WORLD
    domain = periodic_hill(ALPHA, Resolution(cells, cells, 100.0), comm)
    radius = RADIUS_AT_64 * 64 / cells
    periods = [domain.period.tolist()]
    halo = NodeHalo(fem.FunctionSpace(domain.mesh, ("Lagrange", 1)), radius, periods)
    index = NodeIndex(halo.points, np.asarray(periods))
    members = index.clouds(halo.points[: halo.owned], Ball(radius)).sizes
    stats = halo.statistics()
    total = comm.allreduce(int(members.sum()))
    return {"cells": cells, "ranks": comm.size, "radius": radius, "nodes": sum(stats["owned"]), **stats,
            "mean_members": total / sum(stats["owned"])}


def halos(tmp: Path) -> list[dict]:
    """`probe` at every resolution and rank count, each in its own mpirun."""
    runs = []
    mpirun = shutil.which("mpirun")
    for cells in RESOLUTIONS:
        for ranks in RANKS:
            out = tmp / f"halo_{cells}_{ranks}.json"
            cmd = [mpirun, "--oversubscribe", "-n", str(ranks), sys.executable, "-m", "benchmarks.scale", str(cells), str(out)]
            result = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
            if result.returncode != 0:
                runs.append({"cells": cells, "ranks": ranks, "failed": result.stderr.strip().splitlines()[-1:]})
                continue
            runs.append(json.loads(out.read_text()))
            print(json.dumps(runs[-1]), flush=True)
    return runs


def network_cost(members: int, repeats: int = 3) -> dict:
    """Seconds per cloud of the closure's network at `members` members, float32 and float64 (the
    fastest of `repeats` calls on BATCH random clouds)."""
    import time

    import torch

    from vcnn.nn import CloudNetConfig, build_model

    torch.manual_seed(0)
    costs = {}
    for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        model = build_model(CloudNetConfig(n_scalars=5, n_vectors=3, embedding=(32, 64, 64), m_prime=4, fitting=(128,))).to(dtype).eval()
        inputs = (torch.randn(BATCH, members, 3, 2, dtype=dtype), torch.randn(BATCH, members, 5, dtype=dtype),
                  torch.full((BATCH, members), 1.0 / members, dtype=dtype))
        seconds = []
        with torch.inference_mode():
            for _ in range(repeats):
                start = time.perf_counter()
                model(*inputs)
                seconds.append(time.perf_counter() - start)
        costs[name] = min(seconds) / BATCH
    return costs


def compact_halo(owned: float, members: float) -> float:
    """The halo of a square subdomain of `owned` nodes for clouds of `members` members."""
    width = math.sqrt(members / math.pi)
    return 4 * width * math.sqrt(owned) + 4 * width**2


def table(members: float, per_cloud: float) -> list[dict]:
    """Per rank, per closure call: owned nodes, halo nodes and bytes, network seconds, kept memory."""
    rows = []
    for nodes in NODES:
        for ranks in TABLE_RANKS:
            owned = nodes / ranks
            halo = 0.0 if ranks == 1 else min(compact_halo(owned, members), nodes - owned)
            rows.append({
                "nodes": nodes, "ranks": ranks, "owned": owned, "halo": halo, "halo_over_owned": halo / owned,
                "halo_mb_per_call": halo * HALO_BYTES / 1e6,
                "network_s_per_call": owned * per_cloud,
                "clouds_mb": owned * members * MEMBER_BYTES / 1e6,
            })
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| nodes | ranks | owned per rank | halo per rank | halo / owned | halo MB per call | network s per call (float32) | kept clouds MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['nodes']:.0e} | {r['ranks']} | {r['owned']:.3g} | {r['halo']:.3g} | {r['halo_over_owned']:.2%} | "
                     f"{r['halo_mb_per_call']:.3g} | {r['network_s_per_call']:.3g} | {r['clouds_mb']:.3g} |")
    return "\n".join(lines)


def scale(tmp: Path, members: int = MEMBERS) -> dict:
    if shutil.which("mpirun") is None:
        return {"skipped": "mpirun not installed"}
    runs = halos(tmp)
    for r in (r for r in runs if "failed" not in r):  # the model against the largest halo of each run
        owned, halo = max(zip(r["owned"], r["halo"]), key=lambda pair: pair[1])
        r["largest_halo_over_model"] = halo / compact_halo(owned, r["mean_members"])
    costs = network_cost(members)
    rows = table(members, costs["float32"])
    return {"runs": runs, "members": members, "network_s_per_cloud": costs, "table": rows, "markdown": markdown(rows)}


if __name__ == "__main__":  # under mpirun: CELLS OUT.json
    result = probe(int(sys.argv[1]))
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        Path(sys.argv[2]).write_text(json.dumps(result))
