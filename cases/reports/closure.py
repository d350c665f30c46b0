"""report.md of a closure study: data and training, a-priori errors of nu_t, the coupled solves
against the PDE model, frame invariance of the coupled solve and of the network, figures."""

from __future__ import annotations

import json
from pathlib import Path

from cases.reports.markdown import finish_report, value_list
from cases.study import MAIN, Study


TARGETS = {
    "log_nu_t_ratio": "q = log(1 + nu_t / nu), nu_t = nu (exp(max(q, 0)) - 1)",
    "nu_t_ratio": "q = nu_t / nu, nu_t = nu max(q, 0)",
}
"""How the report describes each `vcnn.closure.INVERSES` target."""


def write_report(study: Study, out: Path, results: dict) -> Path:
    """report.md with its figures, from the JSON results of every step."""
    from cases.reports.figures import learning_curves_png

    learning_curves_png({MAIN: json.loads((out / MAIN / "metrics.json").read_text())}, out / "learning_curves.png")
    t = results["training"]
    lines = [
        f"# {study.name}: a neural eddy-viscosity closure in the RANS loop",
        "",
        "## Data and training",
        "",
        f"- Dataset `{study.dataset}` ({study.family.name}, the {study.family.model} model, resolution {study.resolution or 'default'}): "
        f"train alpha = {value_list(study.train)}, validate {value_list(study.validate)}, test {value_list(study.test)}.",
        f"- Target: {TARGETS[study.targets[0]]}, so nu_t >= 0 whatever the network says.",
        f"- Clouds {json.dumps(study.cloud)}; features: vectors {list(study.features.vectors)}, scalars {list(study.features.scalars)}.",
        f"- {t['parameters']:,} parameters, {t['epochs']} epochs (best {t['best_epoch'] + 1}) in {t['wall_s'] / 60:.1f} min; "
        f"best validation error of the target {100 * t['best_validation_rel_l2']:.2f} %.",
        "",
        "## A priori: nu_t from the PDE-model mean flow",
        "",
        "| case | relative L2 error of nu_t (%) | of log(1 + nu_t / nu) (%) | max nu_t / nu | seconds per call |",
        "|---|---|---|---|---|",
    ]
    for name, r in results["apriori"].items():
        kind = "validation" if r["alpha"] in study.validate else "test"
        lines.append(f"| {study.family.describe(r['alpha'])} ({kind}) | {100 * r['nu_t_rel_l2']:.2f} | {100 * r['log_ratio_rel_l2']:.2f} | {r['nu_t_max_ratio']:.1f} | {r['seconds']:.1f} |")
    lines += _a_posteriori_section(results["coupled"])
    lines += _invariance_section(results.get("turned"), results["invariance"])
    lines += _robustness_section(results.get("robustness"))
    lines += ["## Figures", "", "![learning curves](learning_curves.png)", ""]
    for name in results["coupled"]:
        for png in ("profiles", "nu_t", "convergence"):
            if (out / "couple" / name / f"{png}.png").is_file():
                lines += [f"![{name} {png}](couple/{name}/{png}.png)", ""]
    return finish_report(out, lines)


def _x(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _a_posteriori_section(coupled: dict) -> list[str]:
    """One row per coupled solve: convergence, distance from the PDE model, bubbles, cost."""
    lines = [
        "",
        "## A posteriori: the network in place of the PDE model",
        "",
        "| case | status | iterations | residual reduction | last nu_t / velocity change | velocity vs PDE model (%) | nu_t vs PDE model (%) | separation: PDE / coupled | reattachment: PDE / coupled | end of the recirculation: PDE / coupled | time: coupled / PDE model |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in coupled.items():
        if r.get("status") != "converged":
            lines.append(f"| {name} | {r.get('status')}: {r.get('error', '')} | {r.get('iterations', '-')} | | | | | | | | |")
            continue
        c, changes = r["comparison"], r["last_changes"]
        ratio = r["cost"].get("ratio_to_pde_model")
        lines.append(
            f"| {name} | converged | {r['iterations']} | {r['residual_reduction']:.1e} | {changes['nu_t_change']:.1e} / {changes['velocity_change']:.1e} "
            f"| {100 * c['velocity_rel_l2']:.2f} | {100 * c['nu_t_rel_l2']:.2f} | {_x(c['separation']['pde'])} / {_x(c['separation']['coupled'])} "
            f"| {_x(c['reattachment']['pde'])} / {_x(c['reattachment']['coupled'])} "
            f"| {_x(c['recirculation_end']['pde'])} / {_x(c['recirculation_end']['coupled'])} | {'-' if ratio is None else f'{ratio:.2f}'} |"
        )
    lines += [
        "",
        "Residual reduction: the momentum residual of the last iteration (the converged velocity with the last nu_t, before "
        "Newton) over the largest one of the solve. The time ratio uses the dataset's PDE-model wall time, solved beside "
        "another case (`jobs`); `make bench` measures both alone. Reattachment: the end of the longest bubble; end of "
        "the recirculation: the last reattachment before the crest.",
        "",
    ]
    return lines


def _robustness_section(runs: dict | None) -> list[str]:
    """One row per seed and coupled case, and the spread across seeds of each case."""
    if not runs:
        return []
    lines = [
        "## Robustness: the network trained with other seeds",
        "",
        "| seed | best validation error (%) | weights (sha256) | case | status | iterations | residual reduction | velocity vs PDE model (%) | reattachment: PDE / coupled |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for seed, run in runs.items():
        training = run["training"]
        for name, r in run["coupled"].items():
            head = f"| {seed} | {100 * training['best_validation_rel_l2']:.2f} | {training.get('best_weights_sha256', '-')[:12]} | {name} | {r.get('status')}"
            if r.get("status") != "converged":
                lines.append(f"{head} | {r.get('iterations', '-')} | | | |")
                continue
            c = r["comparison"]
            lines.append(f"{head} | {r['iterations']} | {r['residual_reduction']:.1e} | {100 * c['velocity_rel_l2']:.2f} | {_x(c['reattachment']['pde'])} / {_x(c['reattachment']['coupled'])} |")
    rows = [r for run in runs.values() for r in run["coupled"].values()]
    converged = [r for r in rows if r.get("status") == "converged"]
    lines += ["", f"Converged: {len(converged)} of {len(rows)} coupled solves."]
    for name in next(iter(runs.values()))["coupled"]:
        done = [run["coupled"][name] for run in runs.values() if run["coupled"].get(name, {}).get("status") == "converged"]
        if done:
            errors = [100 * r["comparison"]["velocity_rel_l2"] for r in done]
            bubbles = [r["comparison"]["reattachment"]["coupled"] for r in done if r["comparison"]["reattachment"]["coupled"] is not None]
            lines.append(f"{name}: velocity vs PDE model {min(errors):.2f} to {max(errors):.2f} %" + (f", reattachment {min(bubbles):.2f} to {max(bubbles):.2f}" if bubbles else "") + f" ({len(done)} seeds).")
    return lines + [""]


def _invariance_section(turned: dict | None, inv: dict) -> list[str]:
    """The coupled solve in a turned frame, and the symmetry checker on the trained network."""
    lines = []
    if turned is not None:
        difference = turned.get("velocity_vs_unturned")
        lines += [
            "## Frame invariance of the coupled solve",
            "",
            f"The whole problem (mesh, periodic direction, forcing) turned by {turned['rotate_deg']:g} degrees: "
            + (f"the coupled velocity, turned back, differs from the unturned one by {difference:.1e} (relative L2)." if difference is not None else f"{turned.get('status')}: {turned.get('error', '')}"),
            "",
        ]
    lines += [
        "## Invariance of the trained network (float64, whole field)",
        "",
        "| " + " | ".join(inv["worst_relative_deviation"]) + " |",
        "|" + "---|" * len(inv["worst_relative_deviation"]),
        "| " + " | ".join(f"{v:.1e}" for v in inv["worst_relative_deviation"].values()) + " |",
        "",
    ]
    return lines
