"""`vcnn run STUDY.toml`: dataset -> training -> evaluation -> invariance check -> report.md.

The study's network and each of its [baselines] are trained on the same split, evaluated on the
validation and test cases (and on some of them turned by `rotate_deg`, to show what a
frame-dependent network does), checked for their declared symmetries, and compared in
`OUT/report.md` with figures. With `frame_angles`, one test case is turned by each angle and
every network predicts it in every frame (`cases.studies.frames`). With `resample_factor`, one case is
also solved on a mesh that much finer and the network's predictions on both meshes are
compared: cloud averages are quadratures, so the prediction should not depend on which nodes
sample the cloud.

Every step is resumable: cases already solved, runs already trained (training.json), and
evaluations already written are reused, so an interrupted `vcnn run` is simply run again.
Under torchrun, every rank trains; rank 0 alone does the rest.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from cases.reports.surrogate import write_report
from meshes.interpolate import interpolate
from cases.rundir import cached_json
from cases.studies.dataset import ensure_dataset, load_cases, sweep
from cases.studies.evaluate import check_checkpoint_invariance, evaluate_checkpoint
from cases.studies.frames import frame_study
from cases.studies.train import ensure_trained
from cases.study import MAIN, ReportOptions, Study, first_of

log = logging.getLogger(__name__)


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

    checked = study.family.case_name(first_of(options.invariance_case, study.validate))
    rotated = options.rotate_cases or study.validate
    results = {}
    for label in runs:
        directory = out / label
        results[label] = {
            "training": json.loads((directory / "training.json").read_text()),
            "history": json.loads((directory / "metrics.json").read_text()),
            "evaluation": _evaluation(study, directory, label, options, rotated),
            "invariance": cached_json(
                directory / "invariance.json",
                lambda: _invariance(directory / "best.pt", study.dataset / "cases" / checked, options.invariance_trials),
            ),
        }
    frames = None
    if options.frame_angles:
        fields = study.dataset / "cases" / study.family.case_name(first_of(options.frame_case, study.test))
        path = out / "frames" / "frames.json"
        frames = json.loads(path.read_text()) if path.is_file() else None
        if frames is None or set(frames["networks"]) != set(runs) or frames["angles"] != [float(a) for a in options.frame_angles]:
            frames = frame_study({label: out / label / "best.pt" for label in runs}, fields, options.frame_angles, out / "frames")
    resampling = None
    if options.resample_factor:
        resampling = cached_json(out / "resampling.json", lambda: _resampling(study, out, options))
    return write_report(study, out, results, frames, resampling, options)


def _evaluation(study: Study, directory: Path, label: str, options: ReportOptions, rotated) -> dict:
    """The run's evaluation.json (figures for the main network only), computed if missing."""
    out = directory / "evaluation"
    if (out / "evaluation.json").is_file():
        return json.loads((out / "evaluation.json").read_text())
    figures = ()
    if label == MAIN:
        figures = options.figures or tuple(v for v in study.validate + study.test if not study.interpolates(v))
    return evaluate_checkpoint(directory / "best.pt", study.dataset, study.validate + study.test, out, options.rotate_deg, rotated, figures)


def _invariance(checkpoint: Path, fields: Path, trials: int) -> dict:
    report = check_checkpoint_invariance(checkpoint, fields, trials)
    report.pop("table")
    return report


def _resampling(study: Study, out: Path, options: ReportOptions) -> dict:
    """Predict one flow on its dataset mesh and on a finer mesh; compare at the coarse nodes."""
    from vcnn.checkpoint import load_trained
    from vcnn.inference import predict_fields, relative_l2

    value = first_of(options.resample_case, study.validate)
    coarse = load_cases(study.dataset, [value])[0]
    config = coarse.fields.metadata["config"]
    nx, ny = (int(round(options.resample_factor * n)) for n in (config["nx"], config["ny"]))
    fine_dir = out / "resampled"
    sweep(fine_dir, [value], f"{nx}x{ny}", jobs=1, progress=False, kind=study.family)
    fine = load_cases(fine_dir, [value])[0]
    trained = load_trained(out / MAIN / "best.pt")
    model, state, shape, spec = trained.model, trained.state, trained.shape, trained.spec
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



