"""report.md of a surrogate study (`vcnn run` on a transport family): data, training, accuracy of
every network, invariance, the frame-rotation and re-sampling studies, figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cases.manifest import load_manifest
from cases.reports.markdown import finish_report, value_list
from cases.study import MAIN, ReportOptions, Study, first_of


def write_report(study: Study, out: Path, results: dict, frames: dict | None, resampling: dict | None, options: ReportOptions) -> Path:
    """report.md with its figures, from the JSON results of every step."""
    from cases.reports.figures import learning_curves_png

    learning_curves_png({label: r["history"] for label, r in results.items()}, out / "learning_curves.png")
    lines = [f"# {study.name}: vector-cloud network report", ""]
    lines += _dataset_section(study)
    lines += _training_section(results)
    lines += _accuracy_section(study, results, options)
    lines += _invariance_section(results, study.family.describe(first_of(options.invariance_case, study.validate)))
    if frames is not None:
        lines += _frames_section(frames, study.family.describe(first_of(options.frame_case, study.test)))
    if resampling is not None:
        lines += _resampling_section(resampling)
    lines += ["## Figures", "", "![learning curves](learning_curves.png)", ""]
    for png in sorted((out / MAIN / "evaluation").glob("*.png")):
        lines += [f"![{png.stem}]({png.relative_to(out)})", ""]
    return finish_report(out, lines)


def _dataset_section(study: Study) -> list[str]:

    manifest, kind = load_manifest(study.dataset)
    cases = {round(c[kind.parameter], 6): c for c in manifest["cases"]}
    used = sorted(set(study.train + study.validate + study.test))
    nodes = [cases[round(v, 6)]["mesh"]["nodes"] for v in used]
    cells = [cases[round(v, 6)]["mesh"]["cells"] for v in used]
    return [
        "## Data",
        "",
        f"- Split: train {kind.label} = {value_list(study.train)} ({len(study.train)} flows), validate {value_list(study.validate)}, test {value_list(study.test)}.",
        f"- Dataset `{study.dataset}` ({kind.name}, resolution {manifest['resolution'] or 'the solver default'}): "
        f"{min(cells)} to {max(cells)} cells, {min(nodes)} to {max(nodes)} nodes per case.",
        f"- Clouds: {json.dumps(study.cloud)}; {study.training.n_points or 'all'} points sampled per cloud in training, full clouds at inference.",
        f"- Features: vectors {list(study.features.vectors)}, scalars {list(study.features.scalars)}.",
        "",
    ]


def _training_section(results: dict) -> list[str]:
    lines = ["## Training", "", "| network | parameters | processes | epochs (best) | wall time (min) | peak memory of the process so far (MB) | best validation error (%) |", "|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        t = r["training"]
        lines.append(
            f"| {label} | {t['parameters']:,} | {t['processes']} | {t['epochs']} ({t['best_epoch'] + 1}) | {t['wall_s'] / 60:.1f} "
            f"| {t['peak_rss_mb_per_process']:.0f} | {100 * t['best_validation_rel_l2']:.2f} |"
        )
    return lines + [""]


def _accuracy_section(study: Study, results: dict, options: ReportOptions) -> list[str]:
    labels = list(results)
    target = next(iter(next(iter(results[MAIN]["evaluation"]["relative_l2"].values()))))
    header = "| case | kind | " + " | ".join(labels) + " |"
    lines = [f"## Accuracy: relative L2 error of {target} (%), full clouds", "", header, "|---|---|" + "---|" * len(labels)]

    def kind(value):
        where = "interpolation" if study.interpolates(value) else "extrapolation"
        return f"validation ({where})" if value in study.validate else where

    def error(label, value, key="relative_l2"):
        return results[label]["evaluation"][key].get(study.family.case_name(value), {}).get(target)

    for value in study.validate + study.test:
        lines.append(f"| {study.family.describe(value)} | {kind(value)} | " + " | ".join(_percent(error(l, value)) for l in labels) + " |")
    interpolation = [v for v in study.test if study.interpolates(v)]
    if interpolation:
        means = [np.mean([error(l, a) for a in interpolation]) for l in labels]
        lines.append("| **mean, interpolation** | | " + " | ".join(_percent(m) for m in means) + " |")
    lines += ["", f"The same cases with the whole field (nodes, velocity, period) turned by {options.rotate_deg:g} degrees:", "", header, "|---|---|" + "---|" * len(labels)]
    for value in options.rotate_cases or study.validate:
        lines.append(f"| {study.family.describe(value)} turned | {kind(value)} | " + " | ".join(_percent(error(l, value, "rotated_relative_l2")) for l in labels) + " |")
    return lines + [""]


def _invariance_section(results: dict, case: str) -> list[str]:
    transforms = list(results[MAIN]["invariance"]["worst_relative_deviation"])
    lines = [f"## Invariance (float64, the whole {case} field)", "", "| network | " + " | ".join(transforms) + " | declared invariant to |", "|---|" + "---|" * (len(transforms) + 1)]
    for label, r in results.items():
        inv = r["invariance"]
        lines.append(f"| {label} | " + " | ".join(f"{inv['worst_relative_deviation'][t]:.1e}" for t in transforms) + f" | {', '.join(inv['declared_invariant_to'])} |")
    return lines + ["", "Relative deviation of the prediction under each transform (worst over trials); a declared invariance passes below 1e-10.", ""]


def _frames_section(frames: dict, case: str) -> list[str]:
    return [
        f"## Frame rotation: the whole {case} problem turned (float32)",
        "",
        "Relative L2 error (%) of each network's prediction in every frame; the spread is (max - min) / min over the angles.",
        "",
        table(frames),
        "",
        "![frames](frames/frames.png)",
        "",
    ]


def _resampling_section(r: dict) -> list[str]:
    lines = ["## Cloud re-sampling on a finer mesh", ""]
    for target, values in r.items():
        if isinstance(values, dict):
            lines.append(
                f"- {r['case']}, {r['coarse_nodes']} -> {r['fine_nodes']} nodes: the {target} prediction changes by "
                f"{100 * values['prediction_change']:.3f} % (relative L2 at the coarse nodes), against a model error of "
                f"{100 * values['model_error_coarse']:.2f} % (coarse) and {100 * values['model_error_fine']:.2f} % (fine)."
            )
    return lines + [""]


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def table(result: dict) -> str:
    """Markdown: relative L2 error (%) of each network's first target in every frame."""
    angles = result["angles"]
    lines = ["| network | " + " | ".join(f"{a:g} deg" for a in angles) + " | spread |", "|---|" + "---|" * (len(angles) + 1)]
    for label, r in result["networks"].items():
        target = next(iter(r["spread"]))
        cells = [f"{100 * r['relative_l2'][f'{a:g}'][target]:.4f}" for a in angles]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {r['spread'][target]:.1e} |")
    return "\n".join(lines)


def evaluation_table(result: dict) -> str:
    """Markdown: the relative L2 error (%) of each case and target of an evaluation, and in the
    turned frame where it was evaluated turned too."""
    errors, rotated = result["relative_l2"], result.get("rotated_relative_l2", {})
    targets = sorted({t for case in errors.values() for t in case})
    columns = [f"{t} rel. L2 (%)" for t in targets]
    if rotated:
        columns += [f"{t} turned {result['rotate_deg']:g} deg (%)" for t in targets]
    lines = ["| case | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for case, values in errors.items():
        cells = [values[t] for t in targets] + ([rotated[case][t] for t in targets] if rotated else [])
        lines.append(f"| {case} | " + " | ".join(f"{100 * v:.3f}" for v in cells) + " |")
    return "\n".join(lines)
