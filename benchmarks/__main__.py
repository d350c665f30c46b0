"""`make bench`: time and memory of `vcnn solve hills-transport` and its agreement with OpenFOAM,
the speed of vector-cloud inference with full clouds on the alpha = 1 case, the cost per query
point against cloud size of the vector-cloud and graph kernel networks, the RANS cases, and a
trained closure network in the RANS loop against its PDE model.

Writes BENCH_OUT/hills_transport.json, BENCH_OUT/cloud_scaling.json, BENCH_OUT/graph_scaling.json,
BENCH_OUT/rans.json, BENCH_OUT/coupling.json (the fixed closure network of ../shared/fixtures
coupled at alpha = 1.125 with the network in mixed, float32 and float64 precision, and under
mpirun -n 2; and the shipped k-omega closure there with today's coupled solver against the one
it replaced) and BENCH_OUT/scale.json (halo sizes measured up to 8 ranks, and the distributed
closure's table for 10^5 to 10^7 nodes on 1 to 1024 ranks) and BENCH_OUT/training.json (the
paper split's training step: batches built in turn, ahead, from kept clouds, with the sigmoid form
of the embedding, eager and compiled) and
BENCH_OUT/forward_rate.json (the vector-cloud network's forward pass against a matrix product on
the same cores, float32 and float64; on a GPU too, where torch sees one) and
BENCH_OUT/closure_calls.json (one call of the fixed closure network on the state its coupled solve
starts from, features and network apart, on the CPU and on a GPU where there is one; on the CPU
also the floor of its network: the embedding's matrix products and sigmoids alone).
Goals: transport solve under 2 minutes and 4 GB at alpha = 1; cost exponents about 1 (vector
cloud), 2 (graph kernel on the cloud graph) and 1 (pairwise networks on the mesh graph); hills
RANS at alpha = 1 under 10 minutes and 8 GB; the coupled solve at most as long as the PDE-model
solve, its velocity within 1e-4 of float64's; a training step at most half of the batches built in
turn; the forward pass at 30 % or more of the matrix product's rate in float32.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.closure_calls import closure_calls
from benchmarks.cloud_scaling import scaling
from benchmarks.coupling import coupling
from benchmarks.forward_rate import forward_rate
from benchmarks.graph_scaling import scaling as graph_scaling
from benchmarks.rans import rans
from benchmarks.scale import scale

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "hills_transport"


def measured(cmd: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.measure", *cmd], capture_output=True, text=True, cwd=ROOT)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    if record["returncode"] != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return record


def solve(alpha: float, out: Path, ranks: int = 1) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "cases.cli",
        "solve",
        "hills-transport",
        "--alpha",
        str(alpha),
        "--out",
        str(out),
        "-q",
    ]
    reference = REFERENCE / f"openfoam_alpha{alpha:g}.npz"
    if reference.is_file() and ranks == 1:
        cmd += ["--reference", str(reference)]
    if ranks > 1:
        cmd = [shutil.which("mpirun") or "mpirun", "-n", str(ranks), *cmd, "--no-figures"]
    record = measured(cmd)
    meta = json.loads((out / "meta.json").read_text())["metadata"]
    record.update(
        alpha=alpha,
        ranks=ranks,
        mesh=meta["statistics"]["mesh"],
        timings_s=meta["statistics"]["timings_s"],
        newton_iterations={k: meta["statistics"][k]["iterations"] for k in ("navier_stokes", "transport")},
    )
    if "reference_comparison" in meta:
        record["reference_comparison"] = meta["reference_comparison"]
    return record


def profiles(run: Path, alpha: int, png: Path) -> None:
    """Velocity and concentration profiles against the OpenFOAM reference."""
    from cases.reports.figures import profiles_png
    from meshes.fields import MeshFields

    reference = REFERENCE / f"openfoam_alpha{alpha}.npz"
    if not reference.is_file():
        return
    ref = np.load(reference)
    data = {"x": ref["Cx"], "y": ref["Cy"], "u": ref["U"][:, 0], "c": ref["T"]}
    length = ref["Cx"].min() + ref["Cx"].max()
    stations = [round(f * length, 2) for f in (0.05, 0.25, 0.5, 0.75, 0.95)]
    profiles_png(MeshFields.read(run), data, stations, png)


def inference(run: Path) -> dict:
    """Nodes per second of the paper-sized VectorCloudNet on every node with full ellipse clouds."""
    import time

    import torch

    from vcnn.clouds import Ellipse, build_clouds
    from vcnn.data import load_case
    from vcnn.features import FeatureSpec
    from vcnn.inference import predict_fields
    from vcnn.nn import CloudNetConfig
    from vcnn.nn.cloud_nets import VectorCloudNet

    case = load_case(run)
    spec = FeatureSpec(scalars=("strain_rate", "wall_distance", "speed", "proximity", "upwind_proximity", "node_weight", "concentration"))
    model = VectorCloudNet(CloudNetConfig(n_scalars=7))
    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    clouds = build_clouds(case.fields.points, case.fields.points, Ellipse(), case.fields["velocity"], case.periods)
    cloud_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predict_fields(model, case.fields, Ellipse(), spec, case.periods)
    seconds = time.perf_counter() - start
    nodes = case.fields.num_nodes
    return {
        "nodes": nodes,
        "mean_cloud_size": float(clouds.sizes.mean()),
        "cloud_building_s": cloud_seconds,
        "inference_s_including_clouds": seconds,
        "nodes_per_second": nodes / seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(),
    }


def training_alone(tmp: Path) -> dict:
    """`benchmarks.training` on the alpha = 1 case in a process of its own: torch.compile's workers
    and state stay out of this one."""
    cmd = [sys.executable, "-m", "benchmarks.training", str(tmp / "alpha1"), str(tmp / "training")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def agreement(serial: Path, parallel: Path) -> dict:
    from meshes.fields import MeshFields

    a, b = MeshFields.read(serial), MeshFields.read(parallel)
    return {name: float(np.linalg.norm(a[name] - b[name]) / np.linalg.norm(a[name])) for name in a.point_data}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    results = {"benchmark": "vcnn solve hills-transport (default resolution)", "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for alpha in (1, 2):
            results["runs"].append(solve(alpha, tmp / f"alpha{alpha}"))
            print(json.dumps(results["runs"][-1]), flush=True)
        for alpha in (1, 2):
            profiles(tmp / f"alpha{alpha}", alpha, args.out / f"profiles_alpha{alpha}.png")
        results["vcnn_inference_alpha1"] = inference(tmp / "alpha1")
        print(json.dumps(results["vcnn_inference_alpha1"]), flush=True)
        results["runs"].append(solve(1, tmp / "alpha1_mpi2", ranks=2))
        results["serial_vs_mpi2_rel_diff"] = agreement(tmp / "alpha1", tmp / "alpha1_mpi2")
        print(json.dumps(results["runs"][-1]), flush=True)
        write(args.out / "hills_transport.json", results)
        write(args.out / "training.json", training_alone(tmp))
        write(args.out / "rans.json", rans(tmp, measured, agreement))
        write(args.out / "coupling.json", coupling(tmp, measured))
        write(args.out / "scale.json", scale(tmp))
    write(args.out / "forward_rate.json", forward_rates())
    write(args.out / "closure_calls.json", closure_calls())
    write(args.out / "cloud_scaling.json", scaling())
    write(args.out / "graph_scaling.json", graph_scaling())


def forward_rates() -> dict:
    """float32 and float64 on the CPU, and on the GPU where torch sees one ("cuda")."""
    import torch

    rates = {dtype: forward_rate(dtype=dtype) for dtype in ("float32", "float64")}
    if torch.cuda.is_available():
        rates["cuda"] = {dtype: forward_rate(dtype=dtype, device="cuda") for dtype in ("float32", "float64")}
    return rates


def write(target: Path, results: dict) -> None:
    partial = target.with_suffix(".json.partial")
    partial.write_text(json.dumps(results, indent=2) + "\n")
    partial.replace(target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
