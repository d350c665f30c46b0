"""`vcnn run STUDY.toml`: dataset -> training -> evaluation -> invariance check -> report.md.

The study's network and each of its [baselines] are trained on the same split, evaluated on the
validation and test cases (and on some of them turned by `rotate_deg`, to show what a
frame-dependent network does), checked for their declared symmetries, and compared in
`OUT/report.md` with figures. With `frame_angles`, one test case is turned by each angle and
every network predicts it in every frame (`cases.frames`). With `resample_factor`, one case is
also solved on a mesh that much finer and the network's predictions on both meshes are
compared: cloud averages are quadratures, so the prediction should not depend on which nodes
sample the cloud.

Every step is resumable: cases already solved, runs already trained (training.json), and
evaluations already written are reused, so an interrupted `vcnn run` is simply run again.
Under torchrun, every rank trains; rank 0 alone does the rest.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from cases.dataset import sweep
from cases.errors import CaseError
from cases.frames import frame_study, table
from cases.provenance import provenance
from cases.rundir import write_json
from cases.training import (
    Study,
    check_checkpoint_invariance,
    ensure_dataset,
    ensure_trained,
    evaluate_checkpoint,
    load_cases,
)

log = logging.getLogger(__name__)
MAIN = "vcnn"


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """The [report] table of a study file."""

    rotate_deg: float = 90.0
    rotate_cases: tuple[float, ...] | None = None  # default: the validation cases
    figures: tuple[float, ...] | None = None  # default: validation and extrapolation cases
    invariance_case: float | None = None  # default: the first validation case
    invariance_trials: int = 1
    frame_angles: tuple[float, ...] = ()  # the frame-rotation study's angles (none: skipped)
    frame_case: float | None = None  # default: the first test case
    resample_factor: float = 0.0  # > 1: solve resample_case on a mesh that much finer
    resample_case: float | None = None  # default: the first validation case

    @classmethod
    def of(cls, study: Study) -> "ReportOptions":
        try:
            options = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in study.report.items()})
        except TypeError as err:
            raise CaseError(f"[report]: {err}") from None
        if options.invariance_trials < 1 or (options.resample_factor and options.resample_factor <= 1):
            raise CaseError("[report]: invariance_trials must be >= 1 and resample_factor > 1 (or 0 to skip)")
        if options.resample_factor and not study.family.resolution:
            raise CaseError(f"[report]: {study.family.name} cases take no resolution, so no resample_factor")
        if options.frame_angles and not study.test:
            raise CaseError("[report]: the frame-rotation study needs a test case")
        known = {round(v, 6) for v in study.validate + study.test}
        named = (options.rotate_cases or ()) + (options.figures or ()) + (options.invariance_case, options.frame_case, options.resample_case)
        for value in named:
            if value is not None and round(value, 6) not in known:
                raise CaseError(f"[report]: {study.family.describe(value)} is not a validation or test case of the study")
        return options


def run_study(study: Study, out: Path, progress: bool = True) -> Path | None:
    """The whole study into `out`; returns the report's path (None on ranks other than 0)."""
    from vcnn.train import init_distributed

    options = ReportOptions.of(study)
    rank, _ = init_distributed(study.training)
    if rank == 0:
        ensure_dataset(study, study.train + study.validate + study.test, progress)
    runs = {MAIN: study} | {name: study.baseline(name) for name in study.baselines}
    for label, variant in runs.items():
        ensure_trained(variant, out / label, progress)
    if rank != 0:
        return None

    checked = study.family.case_name(_first(options.invariance_case, study.validate))
    rotated = options.rotate_cases or study.validate
    results = {}
    for label in runs:
        directory = out / label
        results[label] = {
            "training": json.loads((directory / "training.json").read_text()),
            "history": json.loads((directory / "metrics.json").read_text()),
            "evaluation": _evaluation(study, directory, label, options, rotated),
            "invariance": _cached(
                directory / "invariance.json",
                lambda: _invariance(directory / "best.pt", study.dataset / "cases" / checked, options.invariance_trials),
            ),
        }
    frames = None
    if options.frame_angles:
        fields = study.dataset / "cases" / study.family.case_name(_first(options.frame_case, study.test))
        path = out / "frames" / "frames.json"
        frames = json.loads(path.read_text()) if path.is_file() else None
        if frames is None or set(frames["networks"]) != set(runs) or frames["angles"] != [float(a) for a in options.frame_angles]:
            frames = frame_study({label: out / label / "best.pt" for label in runs}, fields, options.frame_angles, out / "frames")
    resampling = None
    if options.resample_factor:
        resampling = _cached(out / "resampling.json", lambda: _resampling(study, out, options))
    return write_report(study, out, results, frames, resampling, options)


def _first(value: float | None, defaults) -> float:
    return defaults[0] if value is None else value


def _cached(path: Path, compute):
    """The JSON at `path`, computed and written first if missing."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, value)
    return value


def _evaluation(study: Study, directory: Path, label: str, options: ReportOptions, rotated) -> dict:
    """The run's evaluation.json (figures for the main network only), computed if missing."""
    out = directory / "evaluation"
    if (out / "evaluation.json").is_file():
        return json.loads((out / "evaluation.json").read_text())
    figures = ()
    if label == MAIN:
        figures = options.figures or tuple(v for v in study.validate + study.test if not _inside(v, study.train))
    return evaluate_checkpoint(directory / "best.pt", study.dataset, study.validate + study.test, out, options.rotate_deg, rotated, figures)


def _invariance(checkpoint: Path, fields: Path, trials: int) -> dict:
    report = check_checkpoint_invariance(checkpoint, fields, trials)
    report.pop("table")
    return report


def _resampling(study: Study, out: Path, options: ReportOptions) -> dict:
    """Predict one flow on its dataset mesh and on a finer mesh; compare at the coarse nodes."""
    from cases.training import checkpoint_inputs, load_checkpoint
    from vcnn.inference import predict_fields, relative_l2

    value = _first(options.resample_case, study.validate)
    coarse = load_cases(study.dataset, [value])[0]
    config = coarse.fields.metadata["config"]
    nx, ny = (int(round(options.resample_factor * n)) for n in (config["nx"], config["ny"]))
    fine_dir = out / "resampled"
    sweep(fine_dir, [value], f"{nx}x{ny}", jobs=1, progress=False, kind=study.family)
    fine = load_cases(fine_dir, [value])[0]
    model, state = load_checkpoint(out / MAIN / "best.pt")
    shape, spec = checkpoint_inputs(state)
    result = {"case": study.family.describe(value), "coarse_nodes": coarse.fields.num_nodes, "fine_nodes": fine.fields.num_nodes}
    for target in state["targets"]:
        on_coarse = predict_fields(model, coarse.fields, shape, spec, coarse.periods)[target]
        on_fine = predict_fields(model, fine.fields, shape, spec, fine.periods)[target]
        at_coarse = interpolate(fine.fields, on_fine, coarse.fields.points)
        w = coarse.fields.weights
        result[target] = {
            "prediction_change": float(np.sqrt(w @ (at_coarse - on_coarse) ** 2 / (w @ on_coarse**2))),
            "model_error_coarse": relative_l2(coarse.fields, {target: on_coarse})[target],
            "model_error_fine": relative_l2(fine.fields, {target: on_fine})[target],
        }
    return result


def interpolate(fields, values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation of node `values` of a 2-D mesh at `points` (nearest node
    for points just outside the mesh, e.g. on a wall curve the finer polyline cuts)."""
    from matplotlib.tri import LinearTriInterpolator, Triangulation
    from scipy.spatial import cKDTree

    result = LinearTriInterpolator(Triangulation(*fields.points.T, fields.triangles()), values)(*points.T)
    outside = np.ma.getmaskarray(result)
    result = np.ma.filled(result, np.nan)
    if outside.any():
        result[outside] = values[cKDTree(fields.points).query(points[outside])[1]]
    return np.asarray(result)


def _inside(value: float, train) -> bool:
    return min(train) <= value <= max(train)


def write_report(study: Study, out: Path, results: dict, frames: dict | None, resampling: dict | None, options: ReportOptions) -> Path:
    """report.md with its figures, from the JSON results of every step."""
    from cases.figures import learning_curves_png

    learning_curves_png({label: r["history"] for label, r in results.items()}, out / "learning_curves.png")
    lines = [f"# {study.name}: vector-cloud network report", ""]
    lines += _dataset_section(study)
    lines += _training_section(results)
    lines += _accuracy_section(study, results, options)
    lines += _invariance_section(results, study.family.describe(_first(options.invariance_case, study.validate)))
    if frames is not None:
        lines += _frames_section(frames, study.family.describe(_first(options.frame_case, study.test)))
    if resampling is not None:
        lines += _resampling_section(resampling)
    lines += ["## Figures", "", "![learning curves](learning_curves.png)", ""]
    for png in sorted((out / MAIN / "evaluation").glob("*.png")):
        lines += [f"![{png.stem}]({png.relative_to(out)})", ""]
    return finish_report(out, lines)


def finish_report(out: Path, lines: list[str]) -> Path:
    """OUT/report.md: `lines`, then the provenance (written to a temporary name, then renamed)."""
    versions = provenance()
    lines = lines + ["## Provenance", "", f"git commit {versions['git_commit']}; " + ", ".join(f"{k} {v}" for k, v in versions["versions"].items()), ""]
    path = out / "report.md"
    tmp = path.with_name(".report.md.partial")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path


def _dataset_section(study: Study) -> list[str]:
    from cases.dataset import load_manifest

    manifest, kind = load_manifest(study.dataset)
    cases = {round(c[kind.parameter], 6): c for c in manifest["cases"]}
    used = sorted(set(study.train + study.validate + study.test))
    nodes = [cases[round(v, 6)]["mesh"]["nodes"] for v in used]
    cells = [cases[round(v, 6)]["mesh"]["cells"] for v in used]
    return [
        "## Data",
        "",
        f"- Split: train {kind.label} = {_values(study.train)} ({len(study.train)} flows), validate {_values(study.validate)}, test {_values(study.test)}.",
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
        where = "interpolation" if _inside(value, study.train) else "extrapolation"
        return f"validation ({where})" if value in study.validate else where

    def error(label, value, key="relative_l2"):
        return results[label]["evaluation"][key].get(study.family.case_name(value), {}).get(target)

    for value in study.validate + study.test:
        lines.append(f"| {study.family.describe(value)} | {kind(value)} | " + " | ".join(_percent(error(l, value)) for l in labels) + " |")
    interpolation = [v for v in study.test if _inside(v, study.train)]
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


def _values(values) -> str:
    return ", ".join(f"{v:g}" for v in values) if len(values) < 6 else f"{values[0]:g} .. {values[-1]:g}"


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"
