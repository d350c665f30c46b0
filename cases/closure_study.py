"""`vcnn run` for a closure study (a study on a RANS family, e.g. cases/hills_closure.toml):
dataset -> training -> a-priori errors -> coupled solves at the held-out alphas -> report.md.

A-priori: the trained network, called exactly as in the coupled solve (`vcnn.closure.NeuralClosure`,
full clouds, float64), predicts nu_t from the PDE-model mean flow of each validation and test
case. A-posteriori: `vcnn couple` (a subprocess per case, so that one failed solve does not stop
the others) replaces the PDE model by the network at each [coupling] alpha, from the same start,
against the dataset's PDE-model solution. Every step is reused when its output exists, so an
interrupted run is simply run again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from cases.errors import CaseError
from cases.pipeline import MAIN, _cached, _values, finish_report
from cases.training import Study, check_checkpoint_invariance, ensure_dataset, ensure_trained, load_cases

log = logging.getLogger(__name__)

TARGETS = {
    "log_nu_t_ratio": "q = log(1 + nu_t / nu), nu_t = nu (exp(max(q, 0)) - 1)",
    "nu_t_ratio": "q = nu_t / nu, nu_t = nu max(q, 0)",
}
"""How the report describes each `vcnn.closure.INVERSES` target."""


@dataclasses.dataclass(frozen=True)
class CouplingOptions:
    """The [coupling] table of a closure study."""

    alphas: tuple[float, ...] | None = None  # default: the test cases
    blend: int = 0  # iterations of PDE-model blending at the start (0: the network alone)
    invariance_trials: int = 1
    rotate_deg: float = 0.0  # also solve the first coupled case with the whole problem turned (0: skip)
    tolerance: float = 1e-8  # of the coupled solves: relative change per iteration at convergence
    max_iterations: int = 400  # of the coupled solves, before a stall is declared
    anderson: int = 0  # Anderson acceleration of nu_t in the coupled solves (depth; 0: plain relaxation)

    @classmethod
    def of(cls, study: Study) -> "CouplingOptions":
        try:
            options = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in study.coupling.items()})
        except TypeError as err:
            raise CaseError(f"[coupling]: {err}") from None
        if options.blend < 0 or options.anderson < 0 or options.invariance_trials < 1 or not options.tolerance > 0 or options.max_iterations < 1:
            raise CaseError("[coupling]: blend and anderson must be >= 0, invariance_trials and max_iterations >= 1, tolerance > 0")
        known = {round(v, 6) for v in study.validate + study.test}
        for value in options.alphas or ():
            if round(value, 6) not in known:
                raise CaseError(f"[coupling]: {study.family.describe(value)} is not a validation or test case of the study")
        return options


def run_closure_study(study: Study, out: Path, progress: bool = True) -> Path:
    """The whole closure study into `out`; returns the report's path."""
    options = CouplingOptions.of(study)
    ensure_dataset(study, study.train + study.validate + study.test, progress)
    directory = out / MAIN
    ensure_trained(study, directory, progress)
    checkpoint = directory / "best.pt"
    first = study.dataset / "cases" / study.family.case_name(study.validate[0])
    results = {
        "training": json.loads((directory / "training.json").read_text()),
        "apriori": _cached(out / "apriori.json", lambda: a_priori(checkpoint, study)),
        "invariance": _cached(directory / "invariance.json", lambda: check_checkpoint_invariance(checkpoint, first, options.invariance_trials)),
        "coupled": {},
    }
    alphas = options.alphas or study.test
    for alpha in alphas:
        name = study.family.case_name(alpha)
        results["coupled"][name] = couple(checkpoint, study.dataset / "cases" / name, alpha, out / "couple" / name, options)
    if options.rotate_deg:
        name = study.family.case_name(alphas[0])
        turned = out / "couple" / f"{name}_turned"
        results["turned"] = couple(checkpoint, study.dataset / "cases" / name, alphas[0], turned, options, options.rotate_deg)
        results["turned"]["rotate_deg"] = options.rotate_deg
        if results["turned"].get("status") == "converged" and results["coupled"][name].get("status") == "converged":
            results["turned"]["velocity_vs_unturned"] = turned_difference(out / "couple" / name, turned, options.rotate_deg)
    return write_report(study, out, results)


def turned_difference(plain: Path, turned: Path, degrees: float) -> float:
    """Relative L2 difference (node-weighted) of the velocity of a coupled solve in a turned frame,
    turned back, from the same solve in the original frame."""
    from cases.coupling import own_frame
    from meshes.fields import MeshFields
    from vcnn.inference import relative_l2

    a, b = MeshFields.read(plain), own_frame(MeshFields.read(turned), degrees)
    return relative_l2(a, {"velocity": b["velocity"]})["velocity"]


def a_priori(checkpoint: Path, study: Study) -> dict:
    """Relative L2 error of nu_t (and of log(1 + nu_t / nu)) predicted from each validation and
    test case's PDE-model mean flow, and the seconds one call took."""
    import numpy as np

    from vcnn.closure import LOG_RATIO, NeuralClosure, log_ratio
    from vcnn.inference import relative_l2

    closure = NeuralClosure(checkpoint)
    result = {}
    for value, case in zip(study.validate + study.test, load_cases(study.dataset, study.validate + study.test)):
        start = time.perf_counter()
        nu_t = closure(case.fields)["nu_t"]
        seconds = time.perf_counter() - start
        nu = float(case.fields.metadata["nu"])
        errors = relative_l2(case.fields, {"nu_t": nu_t, LOG_RATIO: log_ratio(nu_t, nu)})
        result[case.name] = {
            "alpha": value,
            "nu_t_rel_l2": errors["nu_t"],
            "log_ratio_rel_l2": errors[LOG_RATIO],
            "nu_t_max_ratio": float(np.max(nu_t) / nu),
            "seconds": seconds,
        }
    return result


def couple(checkpoint: Path, reference: Path, alpha: float, out: Path, options: CouplingOptions, rotate: float = 0.0) -> dict:
    """`vcnn couple` at one alpha (reused if its output exists): its meta.json's findings, or the
    one-line error of a failed solve."""
    if not (out / "meta.json").is_file():
        log.info("coupled solve at alpha %g%s", alpha, f", turned by {rotate:g} degrees" if rotate else "")
        cmd = [sys.executable, "-m", "cases.cli", "couple", "--model", str(checkpoint), "--alpha", repr(alpha), "--reference", str(reference)]
        cmd += ["--out", str(out), "--blend", str(options.blend), "--rotate", repr(rotate), "--tolerance", repr(options.tolerance)]
        cmd += ["--max-iterations", str(options.max_iterations), "--anderson", str(options.anderson), "-q"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 and not (out / "meta.json").is_file():
            lines = result.stderr.strip().splitlines()
            return {"status": "failed", "error": lines[-1] if lines else f"exit code {result.returncode}"}
    meta = json.loads((out / "meta.json").read_text())["metadata"]
    keys = ("status", "error", "worst_nodes", "comparison", "cost", "validation")
    summary = {k: meta[k] for k in keys if k in meta}
    history = meta["statistics"]["history"]
    summary["iterations"] = len(history)
    if history:
        summary["last_changes"] = {k: history[-1][k] for k in ("nu_t_change", "velocity_change")}
        residuals = [h["momentum_residual"] for h in history if h.get("momentum_residual")]
        summary["residual_reduction"] = residuals[-1] / max(residuals) if residuals else None
    return summary


def write_report(study: Study, out: Path, results: dict) -> Path:
    """report.md with its figures, from the JSON results of every step."""
    from cases.figures import learning_curves_png

    learning_curves_png({MAIN: json.loads((out / MAIN / "metrics.json").read_text())}, out / "learning_curves.png")
    t = results["training"]
    lines = [
        f"# {study.name}: a neural eddy-viscosity closure in the RANS loop",
        "",
        "## Data and training",
        "",
        f"- Dataset `{study.dataset}` ({study.family.name}, the {study.family.model} model, resolution {study.resolution or 'default'}): "
        f"train alpha = {_values(study.train)}, validate {_values(study.validate)}, test {_values(study.test)}.",
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
    lines += ["", "## A posteriori: the network in place of the PDE model", ""]
    lines += [
        "| case | status | iterations | residual reduction | last nu_t / velocity change | velocity vs PDE model (%) | nu_t vs PDE model (%) | separation: PDE / coupled | reattachment: PDE / coupled | end of the recirculation: PDE / coupled | time: coupled / PDE model |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["coupled"].items():
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
    turned = results.get("turned")
    if turned is not None:
        difference = turned.get("velocity_vs_unturned")
        lines += [
            "## Frame invariance of the coupled solve",
            "",
            f"The whole problem (mesh, periodic direction, forcing) turned by {turned['rotate_deg']:g} degrees: "
            + (f"the coupled velocity, turned back, differs from the unturned one by {difference:.1e} (relative L2)." if difference is not None else f"{turned.get('status')}: {turned.get('error', '')}"),
            "",
        ]
    inv = results["invariance"]
    lines += [
        "## Invariance of the trained network (float64, whole field)",
        "",
        "| " + " | ".join(inv["worst_relative_deviation"]) + " |",
        "|" + "---|" * len(inv["worst_relative_deviation"]),
        "| " + " | ".join(f"{v:.1e}" for v in inv["worst_relative_deviation"].values()) + " |",
        "",
        "## Figures",
        "",
        "![learning curves](learning_curves.png)",
        "",
    ]
    for name in results["coupled"]:
        for png in ("profiles", "nu_t", "convergence"):
            if (out / "couple" / name / f"{png}.png").is_file():
                lines += [f"![{name} {png}](couple/{name}/{png}.png)", ""]
    return finish_report(out, lines)


def _x(value) -> str:
    return "-" if value is None else f"{value:.2f}"
