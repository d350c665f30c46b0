"""`vcnn run` for a closure study (a study on a RANS family, e.g. cases/hills_closure.toml):
dataset -> training -> a-priori errors -> coupled solves at the held-out alphas -> report.md.

A-priori: the trained network, called exactly as in the coupled solve (`vcnn.closure.NeuralClosure`,
full clouds, float64), predicts nu_t from the PDE-model mean flow of each validation and test
case. A-posteriori: a coupled solve (a worker process per case, so that one failed solve does not stop
the others) replaces the PDE model by the network at each [coupling] alpha, from the same start,
against the dataset's PDE-model solution. Every step is reused when its output exists, so an
interrupted run is simply run again.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from cases.reports.closure import write_report
from cases.rundir import cached_json, write_json
from cases.studies.dataset import ensure_dataset, load_cases
from cases.studies.evaluate import check_checkpoint_invariance
from cases.studies.train import ensure_trained
from cases.study import MAIN, CouplingOptions, RobustnessOptions, Study
from cases.worker import start

log = logging.getLogger(__name__)


def run_closure_study(study: Study, out: Path, progress: bool = True) -> Path:
    """The whole closure study into `out`; returns the report's path."""
    options, robust = CouplingOptions.of(study), RobustnessOptions.of(study)
    ensure_dataset(study, study.train + study.validate + study.test, progress)
    directory = out / MAIN
    ensure_trained(study, directory, progress)
    checkpoint = directory / "best.pt"
    first = study.dataset / "cases" / study.family.case_name(study.validate[0])
    results = {
        "training": json.loads((directory / "training.json").read_text()),
        "apriori": cached_json(out / "apriori.json", lambda: a_priori(checkpoint, study)),
        "invariance": cached_json(directory / "invariance.json", lambda: check_checkpoint_invariance(checkpoint, first, options.invariance_trials)),
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
    if robust.seeds:
        results["robustness"] = robustness(study, out, alphas, options, robust.seeds, results, progress)
    write_json(out / "report.json", results)  # the numbers a rerun is compared with (`cases.records`)
    return write_report(study, out, results)


def robustness(study: Study, out: Path, alphas, options: CouplingOptions, seeds, results: dict, progress: bool = True) -> dict:
    """{seed: {"training": ..., "coupled": {case: summary}}}: the network trained again with each
    seed into OUT/robustness/seed_S/ and coupled at every alpha (the study's own seed is its main
    run, reused)."""
    import dataclasses

    runs = {}
    for seed in seeds:
        if seed == study.training.seed:
            runs[seed] = {"training": results["training"], "coupled": results["coupled"]}
            continue
        where = out / "robustness" / f"seed_{seed}"
        log.info("robustness: the network with seed %d", seed)
        ensure_trained(dataclasses.replace(study, training=dataclasses.replace(study.training, seed=seed)), where / MAIN, progress)
        checkpoint, coupled = where / MAIN / "best.pt", {}
        for alpha in alphas:
            name = study.family.case_name(alpha)
            coupled[name] = couple(checkpoint, study.dataset / "cases" / name, alpha, where / "couple" / name, options)
        runs[seed] = {"training": json.loads((where / MAIN / "training.json").read_text()), "coupled": coupled}
    return runs


def turned_difference(plain: Path, turned: Path, degrees: float) -> float:
    """Relative L2 difference (node-weighted) of the velocity of a coupled solve in a turned frame,
    turned back, from the same solve in the original frame."""
    from cases.studies.coupling import own_frame
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
    """A coupled solve at one alpha in a worker process (reused if its output exists): its meta.json's findings, or the
    one-line error of a failed solve."""
    if not (out / "meta.json").is_file():
        log.info("coupled solve at alpha %g%s", alpha, f", turned by {rotate:g} degrees" if rotate else "")
        settings = {"tolerance": options.tolerance, "max_iterations": options.max_iterations, "anderson": options.anderson,
                    "newton_krylov": options.newton_krylov, "smoothing": options.smoothing, "patience": options.patience, "device": options.device}
        job = {"checkpoint": str(checkpoint), "alpha": alpha, "reference": str(reference), "out": str(out), "blend": options.blend, "rotate": rotate, **settings}
        error = start({"couple": job})
        if error is not None and not (out / "meta.json").is_file():
            return {"status": "failed", "error": error}
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


