"""report.md of a PHLL closure study (`cases.studies.phll_closure`): the scores of the coupled
LES-trained closure and of our SST on the validation and test hills, reattachment, convergence and cost."""

from __future__ import annotations

import numpy as np


def report_markdown(report: dict) -> str:
    training = report["training"]
    targets = training.get("targets", ["nu_t_ratio"])
    once = report.get("network_read") == "once"
    lines = [
        f"# {report['study']}: a closure learned from the LES ({' and '.join(targets)}), {'evaluated once on SST' if once else 'coupled into RANS'}",
        "",
        "Score: the Closure Challenge metric (mean |U - U_LES| / mean |U_LES|); validation cases at the shared",
        "cases' 1,000 fixed centres (these cases chose the best epoch), test cases through the benchmark's",
        "package and points (scored once, logged in scores/scores.jsonl). Reattachment x/H from the wall shear",
        "(LES: sign of u_x on its first row of centres).",
        "",
        ("The network reads our SST solution once; its outputs are frozen in the momentum equations." if once
         else "The network reads the loop's own flow at every Picard iteration, from our SST solution."),
        "",
        f"Training: {training['epochs']} epochs, best epoch {training['best_epoch']} (validation relative L2 of "
        f"{', '.join(targets)}, mean: {training['best_validation_rel_l2']:.4f}), {training['parameters']} parameters, {training.get('training_s', training['wall_s']) / 60:.1f} min.",
        *_errors(training.get("validation_errors", {}), targets),
        "",
        "| case | role | SST score | closure score | reattachment SST / closure / LES | iterations | residual reduction | coupled s (SST s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(_row(row))
    for role in ("validation", "test"):
        pairs = [(r["sst"].get("score"), r.get("closure", {}).get("score")) for r in report["rows"] if r["role"] == role and not r["rotate_deg"]]
        if pairs and all(c is not None for _, c in pairs):
            sst, closure = np.mean([s for s, _ in pairs]), np.mean([c for _, c in pairs])
            lines.append(f"\n{role} mean: SST {sst:.4f}, closure {closure:.4f} ({len(pairs)} cases)")
    return "\n".join(lines) + "\n"


def _row(row: dict) -> str:
    name = row["case"] + (f" turned {row['rotate_deg']:g} deg" if row["rotate_deg"] else "")
    sst = row["sst"]
    if "closure" not in row:
        return f"| {name} | {row['role']} | {_f(sst.get('score'))} | failed: {row['error']} | | | | |"
    c = row["closure"]
    if "error" in row:  # stalled: its last state is scored
        name += " (not converged: its last state)"
    bubbles = f"{_f(sst.get('reattachment'), 2)} / {_f(c['reattachment'], 2)} / {_f(row.get('les_reattachment'), 2)}"
    return (
        f"| {name} | {row['role']} | {_f(sst.get('score'))} | {_f(c['score'])} | {bubbles} | {c['iterations']} | "
        f"{c['residual_reduction']:.1e} | {c['seconds']:.0f} ({_f(sst.get('seconds'), 0)}) |"
    )


def _errors(errors: dict, targets) -> list[str]:
    """The a-priori relative L2 error of each target on each validation case."""
    if not errors:
        return []
    lines = ["", "| validation case | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    return lines + [f"| {case} | " + " | ".join(f"{e[t]:.4f}" for t in targets) + " |" for case, e in errors.items()]


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
