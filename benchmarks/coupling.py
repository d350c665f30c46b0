"""The cost of a network in the RANS loop: `vcnn couple` with the fixed network of
`../shared/fixtures/stalling-closure` (a k-omega closure trained by cases/hills_closure.toml) at
alpha = 1.125 with Anderson depth 20 (where it converges in 37 iterations; a failed solve is
recorded, not raised), each run solving the PDE model first in the same process (so both run
alone, one after the other): the ratio of their wall times (goal: at most 1), the shares of the
coupled solve spent in the momentum solves, cloud building and features, the network and the
exchange of node arrays. The network runs in each of the precisions of `vcnn couple --precision`
("mixed", the default: float32 until the flow settles, then float64); the converged velocities of
the others against float64's (goal: within 1e-4 relative)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stalling-closure"
SETTINGS = ("--resolution", "64x64", "--tolerance", "1e-8", "--max-iterations", "150", "--no-figures", "-q")
PRECISIONS = ("mixed", "float32", "float64")


def coupling(tmp: Path, measured, alpha: float = 1.125, depth: int = 20) -> dict:
    if not (FIXTURE / "best.pt").is_file():
        print(f"coupling benchmark skipped: no {FIXTURE / 'best.pt'}", flush=True)
        return {"skipped": f"no {FIXTURE / 'best.pt'}"}
    from meshes.fields import MeshFields
    from vcnn.inference import relative_l2

    runs = {}
    for precision in PRECISIONS:
        out = tmp / f"couple_{precision}"
        cmd = [sys.executable, "-m", "cases.cli", "couple", "--model", str(FIXTURE / "best.pt"), "--alpha", str(alpha),
               "--anderson", str(depth), "--precision", precision, *SETTINGS, "--out", str(out)]
        try:
            record = measured(cmd)
        except SystemExit as failed:  # a coupled solve that diverges or stalls is a result here
            runs[precision] = {"alpha": alpha, "anderson": depth, "precision": precision, "failed": str(failed).splitlines()[-1]}
            print(json.dumps(runs[precision]), flush=True)
            continue
        meta = json.loads((out / "meta.json").read_text())["metadata"]
        record.update(alpha=alpha, anderson=depth, precision=precision, iterations=meta["statistics"]["rans_iterations"],
                      cost=meta["cost"], comparison=meta["comparison"])
        runs[precision] = record
        print(json.dumps(record), flush=True)
    result = {"runs": list(runs.values()), "ratio_to_pde_model": {p: r["cost"]["ratio_to_pde_model"] for p, r in runs.items() if "cost" in r}}
    if "cost" in runs["float64"]:
        double = MeshFields.read(tmp / "couple_float64")
        for precision in (p for p in PRECISIONS if p != "float64" and "cost" in runs[p]):
            velocity = MeshFields.read(tmp / f"couple_{precision}")["velocity"]
            result[f"{precision}_vs_float64_velocity_rel_diff"] = relative_l2(double, {"velocity": velocity})["velocity"]
    return result
