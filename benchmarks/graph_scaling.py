"""Cost per cloud against cloud size n of the pairwise networks on the mesh graph: messages along
the mesh edges among the members, on a sparse edge index (linear in n), and, with `--baseline
REV`, the same networks at an older git revision (REV's code, fed a dense (B, n, n) adjacency:
quadratic in n before the sparse operators).

A cloud is a whole random Delaunay mesh of n nodes in the unit square (about 7 edges a node, self
included). Each (network, n, code) runs in a fresh process: inference on a batch of identical
clouds, the fastest of a few repeats, and the growth of the peak resident memory during the
forward passes, both divided by the batch size. Exponents are least-squares slopes in log-log
coordinates.

With the baseline, each network is also trained (20 epochs, whole clouds of the 16 nearest
nodes, the synthetic periodic cases of tests/vcnn/test_train.py) with either code from the same
seed: the test errors should agree to float32 round-off.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZES = (64, 128, 256, 512, 1024)
NETWORKS = {
    "graph_kernel": {"embedding": (16, 16), "kernel": (32,), "fitting": (64,)},
    "message_passing": {"embedding": (16, 16), "kernel": (32,), "fitting": (64,)},
}
MEMBERS = 2**15  # members per batch (B n), within MAX_ELEMENTS
MAX_ELEMENTS = 2**26  # elements of the largest intermediate per batch


def one(kind: str, n: int, form: str, repeats: int = 3) -> dict:
    """Time and memory per cloud of one network at cloud size n (in this process): the mesh edges
    given as an edge index (`form = "edges"`) or as a dense (B, n, n) adjacency."""
    import torch
    from scipy.spatial import Delaunay

    from vcnn.nn import CloudNetConfig, build_model

    torch.manual_seed(0)
    model = build_model(CloudNetConfig(kind=kind, n_scalars=5, graph="mesh", **NETWORKS[kind])).eval()
    batch = int(max(1, min(MEMBERS // n, MAX_ELEMENTS // model.elements_per_cloud(n))))
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 1, (n, 2))
    cells = Delaunay(points).simplices
    tic = time.perf_counter()
    if form == "edges":
        from vcnn.clouds import Clouds, MeshGraph

        clouds = Clouds(np.arange(batch + 1) * n, np.tile(np.arange(n), batch), np.tile(points, (batch, 1)))
        graph = torch.as_tensor(MeshGraph(cells, n).edges(clouds))
        edges = graph.shape[1] / batch
    else:
        adjacency = np.eye(n)
        for a in range(3):
            for b in range(3):
                adjacency[cells[:, a], cells[:, b]] = 1
        graph = torch.as_tensor(adjacency, dtype=torch.float32).expand(batch, n, n).contiguous()
        edges = float(adjacency.sum())
    graph_seconds = time.perf_counter() - tic
    seconds, memory_mb = forward_cost(model, batch, n, graph, repeats=repeats)
    return {
        "network": kind,
        "n": n,
        "form": form,
        "batch": batch,
        "edges_per_cloud": edges,
        "threads": torch.get_num_threads(),
        "graph_seconds_per_cloud": graph_seconds / batch,
        "seconds_per_cloud": seconds / batch,
        "memory_mb_per_cloud": memory_mb / batch,
    }


def accuracy(kind: str) -> dict:
    """Train a mesh-graph network briefly on synthetic cases (in this process); its test error."""
    import tempfile

    import torch

    from tests.vcnn.test_train import SPEC, synthetic_case
    from vcnn.clouds import KNearest
    from vcnn.data import CloudBatches, feature_statistics
    from vcnn.inference import predict_fields, relative_l2
    from vcnn.nn import CloudNetConfig, build_model
    from vcnn.train import TrainingConfig, train

    training = CloudBatches([synthetic_case("a", 0.3, 0), synthetic_case("b", 0.5, 1)], KNearest(16), SPEC, ("concentration",), 64, None, mesh_graph=True)
    torch.manual_seed(0)
    model = build_model(CloudNetConfig(kind=kind, graph="mesh", n_scalars=4, embedding=(16, 16), kernel=(16,), fitting=(32,)))
    model.set_normalization(feature_statistics(training))
    config = TrainingConfig(epochs=20, batch_size=64, n_points=0, learning_rate=5e-3, patience=50, device="cpu")
    test = synthetic_case("t", 0.4, 2)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        history = train(model, training, [test], config, tmp, progress=False)
    seconds = time.perf_counter() - start
    error = relative_l2(test.fields, predict_fields(model, test.fields, KNearest(16), SPEC, test.periods))["concentration"]
    return {"network": kind, "train_loss": [history[0]["train_loss"], history[-1]["train_loss"]], "test_relative_l2": error, "train_seconds": seconds}


def forward_cost(model, batch: int, n: int, *graph, repeats: int = 3) -> tuple[float, float]:
    """(seconds of the fastest of `repeats` forward passes, MB of peak memory growth) of `model`
    on `batch` random 2-D clouds of `n` members with 2 vectors and 5 scalars (and `graph`)."""
    import torch

    vectors, scalars = torch.randn(batch, n, 2, 2), torch.randn(batch, n, 5)
    weights = torch.full((batch, n), 1.0 / n)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            model(vectors, scalars, weights, *graph)
            seconds.append(time.perf_counter() - start)
    return min(seconds), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def exponent(sizes, values) -> float:
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def fresh(args: list[str], code: Path, threads: int) -> dict:
    """This script with `args` in a new process, the project imported from `code` (tests from here)."""
    env = dict(os.environ, PYTHONPATH=f"{code}{os.pathsep}{ROOT}", OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True, check=True, cwd=code, env=env)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(record), flush=True)
    return record


def series(kind: str, form: str, code: Path, sizes, threads: int) -> dict:
    """Every n in its own process, the code imported from `code`; exponents of time and memory."""
    runs = [fresh(["--one", kind, str(n), form], code, threads) for n in sizes]
    memory = [max(r["memory_mb_per_cloud"], 1e-9) for r in runs]
    return {
        "runs": runs,
        "time_exponent": exponent(sizes, [r["seconds_per_cloud"] for r in runs]),
        "memory_exponent": exponent(sizes, memory),
    }


def scaling(sizes=SIZES, baseline: str | None = None, threads: int = 1) -> dict:
    """The mesh-graph networks on sparse edges at this checkout, and at `baseline` (a git revision) if given."""
    results: dict = {"sizes": list(sizes), "threads": threads, "sparse": {}, "baseline": {}}
    for kind in NETWORKS:
        results["sparse"][kind] = series(kind, "edges", ROOT, sizes, threads)
    if baseline:
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline, "vcnn", "meshes"], capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", baseline], capture_output=True, text=True, check=True).stdout.strip()
            results["baseline"] = {"revision": commit}
            for kind in NETWORKS:
                results["baseline"][kind] = series(kind, "adjacency", Path(tmp), sizes, threads)
            results["accuracy"] = {kind: {"sparse": fresh(["--accuracy", kind], ROOT, threads), "baseline": fresh(["--accuracy", kind], Path(tmp), threads)} for kind in NETWORKS}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=3, metavar=("NETWORK", "N", "FORM"))
    parser.add_argument("--accuracy", metavar="NETWORK", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", metavar="REV", help="also measure and train the networks of this git revision (dense adjacency)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1: comparable on a shared machine)")
    parser.add_argument("--out", type=Path, help="write the results here (JSON)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.one[2])))
        return
    if args.accuracy:
        print(json.dumps(accuracy(args.accuracy)))
        return
    results = scaling(tuple(args.sizes), args.baseline, args.threads)
    text = json.dumps(results, indent=2) + "\n"
    if args.out:
        partial = args.out.with_suffix(".json.partial")
        partial.write_text(text)
        partial.replace(args.out)
    print(text if not args.out else f"wrote {args.out}")


if __name__ == "__main__":
    main()
