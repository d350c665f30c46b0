"""The frame-rotation study: turn a whole test problem (node coordinates, vector and tensor
arrays, period vectors) by a list of angles, predict with each network, and compare each
prediction with the reference turned the same way.

An invariant (or equivariant) network gives the same error in every frame, to float32
round-off; a frame-dependent one does not.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cases.errors import CaseError
from cases.rundir import write_json
from cases.studies.evaluate import check_case, fields_file
from vcnn.checkpoint import load_trained

log = logging.getLogger(__name__)

ANGLES = (0.0, 35.0, 70.0, 90.0, 180.0)


def frame_study(checkpoints: dict, fields_path: Path, angles=ANGLES, out: Path | None = None) -> dict:
    """{"networks": {label: {"relative_l2": {angle: {target: e}}, "spread": {target: s}}}} where
    `spread` is (max - min) / min of the error over the angles. With `out`: frames.json and
    frames.png (the first target predicted in every frame, one row per network)."""
    from cases.flows import FAMILIES
    from cases.reports.figures import frames_png
    from vcnn.data import Case, load_case
    from vcnn.inference import predict_fields, relative_l2
    from vcnn.symmetry import moved, planar_rotation

    if not checkpoints:
        raise CaseError("give at least one network (--model LABEL=CHECKPOINT)")
    angles = [float(a) for a in angles]
    loaded = {label: load_trained(Path(path)) for label, path in checkpoints.items()}  # all refused before any work
    case = load_case(fields_path)
    for label, trained in loaded.items():
        check_case(trained, Path(checkpoints[label]), case.fields, fields_file(fields_path))
    if case.fields.dim != 2:
        raise CaseError("the frame-rotation study turns 2-D fields")
    frames = {angle: Case(case.name, moved(case.fields, planar_rotation(angle))) for angle in angles}
    result: dict = {"fields": str(fields_path), "angles": angles, "networks": {}}
    drawn: dict = {}
    for label, trained in loaded.items():
        model, shape, spec = trained.model, trained.shape, trained.spec
        first = model.config.outputs[0]
        errors, drawn[label] = {}, {}
        for angle, turned in frames.items():
            log.info("frame study: %s at %g degrees", label, angle)
            predicted = predict_fields(model, turned.fields, shape, spec, turned.periods)
            errors[f"{angle:g}"] = relative_l2(turned.fields, predicted)
            drawn[label][angle] = predicted[first]
        spread = {
            target: (max(e[target] for e in errors.values()) - min(e[target] for e in errors.values()))
            / max(min(e[target] for e in errors.values()), 1e-300)
            for target in model.config.outputs
        }
        result["networks"][label] = {"checkpoint": str(checkpoints[label]), "relative_l2": errors, "spread": spread}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "frames.json", result)
        kind = FAMILIES.get(case.fields.metadata.get("case"))
        frames_png({a: f.fields for a, f in frames.items()}, drawn, out / "frames.png", kind and kind.turning_window())
    return result


