"""What a finished study produced, kept as a record beside its study file, so that a rerun that does
not reproduce it says so (`vcnn run`).

`vcnn run STUDY.toml --out OUT` writes OUT/record.json: the fingerprint of every trained network's
best weights (training.json `best_weights_sha256`), every number of OUT/report.json that does not
measure time or memory, and where it ran (torch and its thread count, the machine). Committed as
STUDY.record.json beside the study file, it is what later runs are compared with: the same study
on the same machine gives the same weights bitwise (the seeds and deterministic algorithms of
`vcnn.train`) and the same numbers; another machine or torch build may not, and the differences
then name the recorded and the present machine.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import platform
from pathlib import Path

log = logging.getLogger("vcnn")

CLOCKS = ("seconds", "_s", "_mb")
MEASURED = ("rss", "memory", "timings", "threads", "shares", "ratio_to")
"""Key endings and key parts of measurements that vary from run to run (time, memory, threads, and
shares and ratios of wall times)."""
RELATIVE = 1e-9
"""Numbers this close are the same: a reproduced run agrees to rounding of their printing."""


def record_path(study: Path) -> Path:
    return Path(study).with_suffix(".record.json")


def collect(out: Path) -> dict:
    """The record of a finished run directory."""
    import torch

    out = Path(out)
    weights = {}
    for summary in sorted(Path(p) for p in glob.glob(str(out / "**" / "training.json"), recursive=True)):  # through links too
        sha = json.loads(summary.read_text()).get("best_weights_sha256")
        if sha:
            weights[summary.parent.relative_to(out).as_posix()] = sha
    report = out / "report.json"
    numbers = _numbers(json.loads(report.read_text())) if report.is_file() else {}
    machine = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(), "machine": platform.machine(), "processor": platform.processor() or None}
    return {"weights": weights, "numbers": numbers, "machine": machine}


def differences(recorded: dict, present: dict) -> list[str]:
    """One line per weight fingerprint or number that differs (or is on one side only)."""
    lines = []
    for kind in ("weights", "numbers"):
        old, new = recorded.get(kind, {}), present.get(kind, {})
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key), new.get(key)
            if a is None or b is None:
                lines.append(f"{kind} {key}: {'not recorded' if a is None else 'recorded'}, {'absent' if b is None else 'present'} now")
            elif not _same(a, b):
                lines.append(f"{kind} {key}: recorded {a}, now {b}")
    return lines


def check(study: Path, out: Path) -> list[str]:
    """Write OUT/record.json and compare it with STUDY.record.json, if there is one: the
    differences (logged as warnings with both machines), or [] when it matches or none is kept."""
    from cases.rundir import write_json

    present = collect(out)
    write_json(Path(out) / "record.json", present)
    kept = record_path(study)
    if not kept.is_file():
        log.info("no record of %s is kept (%s); this run's is %s", study, kept, Path(out) / "record.json")
        return []
    recorded = json.loads(kept.read_text())
    found = differences(recorded, present)
    if found:
        log.warning("this run differs from its record %s in %d values (recorded on %s; this machine %s):", kept, len(found), recorded.get("machine"), present["machine"])
        for line in found:
            log.warning("  %s", line)
    else:
        log.info("this run matches its record %s: the same weights and numbers", kept)
    return found


def _numbers(value, prefix: str = "") -> dict:
    """Flattened numeric leaves {dotted key: number} of a report, without clocks and memory."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: value} if isinstance(value, (int, float)) and not isinstance(value, bool) else {}
    found = {}
    for key, item in items:
        key = str(key)
        if key.endswith(CLOCKS) or any(part in key for part in MEASURED):
            continue
        found.update(_numbers(item, f"{prefix}.{key}" if prefix else key))
    return found


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(a, b, rel_tol=RELATIVE, abs_tol=0.0) or (math.isnan(a) and math.isnan(b))
