"""The cost of a network in the RANS loop: `vcnn couple` at a held-out alpha, with the PDE-model
solve of the same case first in the same process (so both run alone, one after the other; the
coupled one with Anderson acceleration, as in cases/hills_closure.toml), the
ratio of their wall times and the shares of the coupled solve spent in the momentum solves,
cloud building, the network and the exchange of node arrays. Needs the closure study's trained
network (`vcnn run cases/hills_closure.toml`); skipped without it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

CHECKPOINT = Path(__file__).resolve().parents[1] / "runs" / "hills_closure" / "vcnn" / "best.pt"


def coupling(tmp: Path, measured, alpha: float = 1.125) -> dict:
    if not CHECKPOINT.is_file():
        print(f"coupling benchmark skipped: no {CHECKPOINT} (run `vcnn run cases/hills_closure.toml` first)", flush=True)
        return {"skipped": f"no {CHECKPOINT}"}
    out = tmp / "couple"
    cmd = [sys.executable, "-m", "cases.cli", "couple", "--model", str(CHECKPOINT), "--alpha", str(alpha), "--anderson", "5", "--out", str(out), "-q"]
    record = measured(cmd)
    meta = json.loads((out / "meta.json").read_text())["metadata"]
    record.update(alpha=alpha, checkpoint=str(CHECKPOINT), iterations=meta["statistics"]["rans_iterations"], cost=meta["cost"], comparison=meta["comparison"])
    print(json.dumps(record), flush=True)
    return record
