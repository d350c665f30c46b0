"""The cost of a network in the RANS loop: `vcnn couple` with the fixed network of
`../shared/fixtures/stalling-closure` (a k-omega closure trained by cases/hills_closure.toml) at
alpha = 0.625 (in-process runs converged there with Anderson depth 5 and 20; a failed solve is
recorded, not raised): the PDE-model solve of
the same case first in the same process (so both run alone, one after the other), the ratio of
their wall times, the shares of the coupled solve spent in the momentum solves, cloud building,
the network and the exchange of node arrays, and depth 20 (the shipped setting) against depth 5:
iterations, wall time and the difference of the converged velocities."""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stalling-closure"
SETTINGS = ("--resolution", "64x64", "--tolerance", "1e-8", "--max-iterations", "150", "--no-figures", "-q")


def coupling(tmp: Path, measured, alpha: float = 0.625) -> dict:
    if not (FIXTURE / "best.pt").is_file():
        print(f"coupling benchmark skipped: no {FIXTURE / 'best.pt'}", flush=True)
        return {"skipped": f"no {FIXTURE / 'best.pt'}"}
    from meshes.fields import MeshFields
    from vcnn.inference import relative_l2

    runs = {}
    for depth in (5, 20):
        out = tmp / f"couple_anderson{depth}"
        cmd = [sys.executable, "-m", "cases.cli", "couple", "--model", str(FIXTURE / "best.pt"), "--alpha", str(alpha),
               "--anderson", str(depth), *SETTINGS, "--out", str(out)]
        try:
            record = measured(cmd)
        except SystemExit as failed:  # a coupled solve that diverges or stalls is a result here
            runs[depth] = {"alpha": alpha, "anderson": depth, "failed": str(failed).splitlines()[-1]}
            print(json.dumps(runs[depth]), flush=True)
            continue
        meta = json.loads((out / "meta.json").read_text())["metadata"]
        record.update(alpha=alpha, anderson=depth, iterations=meta["statistics"]["rans_iterations"], cost=meta["cost"], comparison=meta["comparison"])
        runs[depth] = record
        print(json.dumps(record), flush=True)
    result = {"runs": list(runs.values())}
    if all("failed" not in run for run in runs.values()):
        shallow, deep = (MeshFields.read(tmp / f"couple_anderson{depth}") for depth in (5, 20))
        result["anderson20_over_5_wall"] = runs[20]["cost"]["total_s"] / runs[5]["cost"]["total_s"]
        result["anderson20_vs_5_velocity_rel_diff"] = relative_l2(shallow, {"velocity": deep["velocity"]})["velocity"]
    return result
