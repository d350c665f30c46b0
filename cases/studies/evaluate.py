"""A trained network judged on solved cases: relative L2 errors (optionally in a turned frame too),
with error maps, and the symmetry checker on a whole field."""

from __future__ import annotations

import logging
from pathlib import Path

from cases.errors import CaseError
from cases.flows.hills_transport import HILLS
from cases.manifest import case_values, load_manifest
from cases.rundir import write_json
from cases.studies.dataset import load_cases
from meshes.fields import VTU_NAME
from vcnn.checkpoint import load_trained

log = logging.getLogger(__name__)


def evaluate_checkpoint(
    checkpoint_path: Path,
    data: Path,
    values=None,
    out: Path | None = None,
    rotate_deg: float | None = None,
    rotate_values=None,
    figures=None,
) -> dict:
    """Relative L2 error per case and target with full clouds: {"relative_l2": {case: {target: e}}}.

    With `rotate_deg`, the cases of `rotate_values` (default: all) are evaluated a second time
    with the whole field (nodes, vectors, period) turned by that angle ("rotated_relative_l2"):
    an invariant network gives the same errors, a frame-dependent one does not. With `out`:
    evaluation.json and, for the cases of `figures` (default: all), a PNG per target of the
    reference, the prediction and their difference.
    """
    from cases.reports.figures import comparison_png
    from vcnn.data import Case, check_targets
    from vcnn.inference import predict_fields, relative_l2
    from vcnn.symmetry import moved, planar_rotation

    trained = load_trained(checkpoint_path)
    model, state, shape, spec = trained.model, trained.state, trained.shape, trained.spec
    manifest, kind = load_manifest(data, state.get("family", HILLS.name))
    if values is None:
        values = case_values(manifest, kind)
    cases = load_cases(data, values)
    for case in cases:
        check_case(trained, checkpoint_path, case.fields, Path(data) / "cases" / case.name / VTU_NAME)
    check_targets(cases, tuple(state["targets"]), model.config.output_kinds)
    result = {"checkpoint": str(checkpoint_path), "data": str(data), "relative_l2": {}}
    if rotate_deg is not None:
        result.update(rotate_deg=rotate_deg, rotated_relative_l2={})
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    rotated = {kind.case_name(v) for v in (values if rotate_values is None else rotate_values)}
    drawn = {kind.case_name(v) for v in (values if figures is None else figures)}
    for case in cases:
        log.info("evaluating %s on %s", checkpoint_path, case.name)
        predicted = predict_fields(model, case.fields, shape, spec, case.periods)
        result["relative_l2"][case.name] = relative_l2(case.fields, predicted)
        if rotate_deg is not None and case.name in rotated:
            turned = Case(case.name, moved(case.fields, planar_rotation(rotate_deg)))
            prediction = predict_fields(model, turned.fields, shape, spec, turned.periods)
            result["rotated_relative_l2"][case.name] = relative_l2(case.fields, prediction)
        if out is not None and case.name in drawn:
            for name, value in predicted.items():
                error = 100 * result["relative_l2"][case.name][name]
                title = f"{case.name}: relative L2 error {error:.2f} %"
                comparison_png(case.fields, name, value, out / f"{case.name}_{name}.png", title, kind.window)
    if out is not None:
        write_json(out / "evaluation.json", result)
    return result


def check_case(trained, checkpoint_path: Path, fields, source: Path) -> None:
    """Refuse, before any prediction, a field (read from `source`) that the network was not trained
    for: of another dimension, with an input array missing, of another kind or non-finite
    (`vcnn.checkpoint.Trained.check_fields`), or not of the kind of the cases of its family
    (their arrays missing: a transport network on a RANS solution)."""
    from cases.flows import FAMILIES

    trained.check_fields(fields, source)
    kind = FAMILIES.get(trained.state.get("family"))
    missing = [name for name in (kind.arrays if kind else ()) if name not in fields.point_data]
    if missing:
        raise CaseError(f"checkpoint {checkpoint_path} was trained on {kind.name} cases; {source} is not one (it has no {', '.join(missing)})")


def fields_file(path: Path) -> Path:
    """The fields.vtu of a solved case given as its directory or as the file."""
    path = Path(path)
    return path if path.name == VTU_NAME else path / VTU_NAME


def check_checkpoint_invariance(checkpoint_path: Path, fields_path: Path, trials: int = 3) -> dict:
    """The symmetry checker on a trained network applied to one solved field, in float64.

    'violations' lists the transforms the model declares invariance to but deviates under by
    more than `vcnn.symmetry.TOLERANCE`."""
    import torch

    from vcnn.data import load_case
    from vcnn.inference import predict_fields
    from vcnn.symmetry import TOLERANCE, check_field_model

    trained = load_trained(checkpoint_path)
    case = load_case(fields_path)
    check_case(trained, checkpoint_path, case.fields, fields_file(fields_path))
    shape, spec = trained.shape, trained.spec
    model = trained.model.double()

    def predict(fields, periods):
        return predict_fields(model, fields, shape, spec, periods, dtype=torch.float64)

    symmetry = model.symmetry
    report = check_field_model(predict, case.fields, symmetry["outputs"], case.periods, trials=trials)
    declared = symmetry["invariant_to"]
    return {
        "table": report.table(declared),
        **report.as_dict(),
        "declared_invariant_to": declared,
        "violations": report.violations(declared, TOLERANCE),
        "tolerance": TOLERANCE,
    }
