"""An eddy-viscosity closure learned from the LES of the Closure Challenge hills (issue 17):
`vcnn run cases/phll_closure.toml`.

The target is the optimal eddy viscosity nu_t* of the LES stress on the LES strain
(`les_targets.optimal_eddy_viscosity`, our SST's nu_t as the prior where the strain vanishes),
learned as nu_t* / nu (`nu_t_ratio`): of the candidates measured by the propagation test it is
the one whose frozen value brings our RANS velocity closest to the LES (docs/results.md).
The network reads the mean flow around each node, and it is trained on the LES mean flow, not on
SST's: in the coupled loop it reads the loop's own velocity, which approaches the LES's where the
closure is right, so the data it learned from and the fixed point it is asked for agree (trained
on SST's flow, only the first Picard iteration would see what it was trained on).
With `[study] target = "optimal_les_strain_plus_force"` (`cases/phll_closure_stress.toml`) the
network also learns the traceless remainder a_perp of the LES stress (a tensor output), and it is
read once on the SST solution: in the loop, the explicit stress made the solves stall.

The steps, each reused when its output is already there (a killed study resumes):
1. training samples (training and validation cases only; nothing is read of a test case but its
   name): DIR/samples/<case>/, our mesh of the hill carrying the LES velocity, |S| of it, the wall
   distance and the target (data only: the LES, and the benchmark's SST nu_t as the prior);
2. the network: DIR/network/ (`vcnn.train`), the best epoch chosen on the validation cases;
3. our SST solution of every validation and test geometry: DIR/sst/<case>/;
4. coupled solves from the SST solution (velocity and nu_t), the network in the Picard loop
   with Anderson mixing, or read once on the SST solution and frozen (a network with a remaining
   stress: `phll_coupling.reads_once`): DIR/coupled/<case>/ (validation and test geometries);
5. scores: validation cases against the LES at the shared cases' 1,000 centres, test cases
   through the benchmark's package, each scored once and logged to DIR/scores.jsonl;
6. DIR/report.md and DIR/report.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tomllib
from pathlib import Path

import numpy as np

from cases.errors import CaseError
from cases.flows.rans_common import cells
from cases.rundir import write_json
from cases.studies import les_targets

log = logging.getLogger("vcnn")

FAMILY = "phll"
TARGET = "nu_t_ratio"
TARGETS = ("optimal_les_strain", "optimal_les_strain_plus_force", "optimal_les_strain_plus_basis")
"""[study] target: nu_t* alone; nu_t* and the traceless remainder a_perp of the LES stress (a
tensor output, frozen in the momentum solves); or nu_t* and beta, a_perp = beta T with T the
dimensionless SW - WS of the flow the network reads (a scalar output: `vcnn.closure.stress_basis`).
les_targets says why."""
INPUTS = ("les", "sst")
"""[study] inputs: the mean flow the network reads in training, the LES's (a closure in the Picard
loop reads a flow that approaches it) or the benchmark's SST (a closure evaluated once on the SST
solution and frozen reads SST's). How a trained network is used: `phll_coupling.reads_once`."""
TEST = ("alpha_15_13929_4048", "alpha_15_13929_2024", "alpha_05_4071_4048", "alpha_05_4071_2024")
"""The benchmark's periodic-hill test cases: solved and scored, never learned from."""


@dataclasses.dataclass(frozen=True)
class PhllStudy:
    """A parsed cases/phll_closure.toml."""

    name: str
    directory: Path
    phll29: Path
    train: tuple[str, ...]
    validate: tuple[str, ...]
    test: tuple[str, ...]
    resolution: str | None  # NXxNY of every solve; None: cases/phll_rans.toml's
    start_model: str | None  # what our SST solves start from ("" or "rest": rest); None: cases/phll_rans.toml's
    jobs: int
    regularisation: float
    basis_damping: float  # of T where the flow is nearly uniform (`vcnn.closure.stress_basis`)
    target: str
    inputs: str  # the flow the network reads in training: "les", or "sst" (the benchmark's)
    cloud: dict
    features: object  # vcnn.features.FeatureSpec
    model: dict
    training: object  # vcnn.train.TrainingConfig
    coupling: dict

    @property
    def outputs(self) -> dict:
        """What the network learns: {array name: kind}."""
        from vcnn.closure import BASIS, STRESS

        return {TARGET: "scalar", **{TARGETS[1]: {STRESS: "tensor"}, TARGETS[2]: {BASIS: "scalar"}}.get(self.target, {})}

    def model_config(self):
        from vcnn.nn import CloudNetConfig

        return CloudNetConfig(
            n_scalars=len(self.features.scalars), n_vectors=len(self.features.vectors), dim=2,
            outputs=tuple(self.outputs), output_kinds=tuple(self.outputs.values()), **self.model,
        )

    def checkpoint_extra(self) -> dict:
        from vcnn.checkpoint import data_config

        split = {"train": list(self.train), "validate": list(self.validate), "test": list(self.test)}
        return data_config(self.cloud, self.features, tuple(self.outputs), study=self.name, family=FAMILY, split=split, target=self.target, inputs=self.inputs, basis_damping=self.basis_damping)


def is_phll_study(path) -> bool:
    """A study file with a [study] table is a PHLL closure study (the others start with [dataset])."""
    try:
        return "study" in tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # the general loader says what is wrong with it


def schema() -> dict:
    """Every section and key a PHLL closure study may hold, with its type (`cases.study_schema`)."""
    from cases.study import SCHEMA
    from cases.studies.phll_coupling import PhllCoupling
    from cases.study_schema import keys_of

    names = tuple[str, ...]
    study = {"directory": str, "phll29": str, "train": names, "validate": names, "test": names, "resolution": str, "start_model": str, "jobs": int, "regularisation": float, "basis_damping": float, "target": str, "inputs": str}
    return {"study": study, **{k: SCHEMA[k] for k in ("cloud", "features", "training")}, "model": {k: v for k, v in SCHEMA["model"].items() if k != "targets"}, "coupling": keys_of(PhllCoupling)}


def load_phll_study(path) -> PhllStudy:
    """Parse and check a PHLL closure study before any work (CaseError, one line)."""
    from cases.study import shape_from
    from cases.study_schema import check_table
    from meshes.errors import MeshError
    from solvers.errors import SolverError
    from vcnn.errors import VcnnError
    from vcnn.features import FeatureSpec
    from vcnn.train import TrainingConfig

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise CaseError(f"cannot read study {path}: {err}") from None
    check_table(raw, schema(), path)
    table = dict(raw.get("study", {}))
    try:
        study = PhllStudy(
            name=path.stem, directory=Path(table.pop("directory", f"data/{path.stem}")),
            phll29=Path(table.pop("phll29", les_targets.PHLL29)), train=tuple(table.pop("train", ())),
            validate=tuple(table.pop("validate", les_targets.VALIDATION)), test=tuple(table.pop("test", TEST)),
            resolution=table.pop("resolution", None), start_model=table.pop("start_model", None), jobs=int(table.pop("jobs", 1)), regularisation=float(table.pop("regularisation", les_targets.REGULARISATION)),
            basis_damping=float(table.pop("basis_damping", 0.0)),
            target=table.pop("target", TARGETS[0]), inputs=table.pop("inputs", INPUTS[0]),
            cloud=dict(raw.get("cloud", {"shape": "ball", "radius": 0.5})), features=FeatureSpec(**raw.get("features", {})),
            model=dict(raw.get("model", {})), training=TrainingConfig(**raw.get("training", {})), coupling=dict(raw.get("coupling", {})),
        )
        if study.target not in TARGETS or study.inputs not in INPUTS:
            raise ValueError(f"[study] target {study.target!r} / inputs {study.inputs!r}: choose from {', '.join(TARGETS)} / {', '.join(INPUTS)}")
        if not (np.isfinite(study.basis_damping) and study.basis_damping >= 0):
            raise ValueError(f"[study] basis_damping must be a number >= 0, got {study.basis_damping}")
        if study.basis_damping and study.target != TARGETS[2]:
            raise ValueError(f"[study] basis_damping applies to target {TARGETS[2]!r} only, not {study.target!r}")
        shape_from(study.cloud)
        study.model_config()
        if study.resolution is not None:
            cells(study.resolution)
        if study.start_model:
            from cases.flows.phll_rans import REST
            from solvers.models import check_model  # dolfinx: only for a start model

            if study.start_model != REST:
                check_model(study.start_model)
    except (TypeError, ValueError, VcnnError, MeshError, SolverError) as err:
        raise CaseError(f"{path}: {err}") from None
    return dataclasses.replace(study, train=_training_cases(study, path))


def _training_cases(study: PhllStudy, path: Path) -> tuple[str, ...]:
    """The [study] train list, or every PHLL29 case that is neither a validation nor a test case."""
    if not study.phll29.is_dir():
        raise CaseError(f"{path}: the PHLL29 directory {study.phll29} does not exist")
    shared = sorted(p.name for p in study.phll29.iterdir() if p.is_dir())
    unknown = [name for name in study.validate + study.train if name not in shared]
    if unknown:
        raise CaseError(f"{path}: cases {unknown} are not in {study.phll29}")
    leaked = sorted(set(study.test) & set(shared))
    if leaked:
        raise CaseError(f"{path}: test cases {leaked} hold data in {study.phll29}: a test case must not be a shared case")
    if set(study.train) & set(study.validate):
        raise CaseError(f"{path}: {sorted(set(study.train) & set(study.validate))} both train and validate")
    train = study.train or tuple(name for name in shared if name not in study.validate)
    if not train:
        raise CaseError(f"{path}: no training cases are left in {study.phll29}")
    return train


def solve_sst(study: PhllStudy, names, progress: bool = True) -> None:
    """Our SST solution of each geometry into DIR/sst/<case> (`jobs` workers); reused when there."""
    import concurrent.futures

    from tqdm import tqdm

    from cases.manifest import is_complete
    from cases.worker import pool

    todo = [name for name in names if not is_complete(study.directory / "sst" / name)]
    values = {} if study.resolution is None else dict(zip(("nx", "ny"), cells(study.resolution)))
    if study.start_model is not None:
        values["start_model"] = study.start_model
    jobs = {name: {"solve": {"flow": "phll-rans", "values": {"geometry": name, **values}, "out": str(study.directory / "sst" / name)}} for name in todo}
    failures = []
    with pool(study.jobs) as submit:
        futures = {submit(job): name for name, job in jobs.items()}
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc="SST solves", disable=not progress):
            if future.result():
                failures.append(f"{futures[future]}: {future.result()}")
    if failures:
        raise CaseError(f"{len(failures)} SST solve(s) failed; rerun to retry: " + "; ".join(failures))


def read_sst(study: PhllStudy, name: str):
    from meshes.errors import MeshError
    from meshes.fields import MeshFields

    try:
        return MeshFields.read(study.directory / "sst" / name)
    except MeshError as err:
        raise CaseError(f"SST solution of {name}: {err}") from None


def training_sample(study: PhllStudy, name: str):
    """Our mesh of a shared case (the one its SST solve runs on, made without solving) carrying what
    the network reads, from the LES (velocity, |S| of it, the wall distance), and the target nu_t* / nu
    with the benchmark's SST nu_t as the prior where the strain vanishes: data only, so that the
    samples do not wait for (or depend on) our solves."""
    from cases.flows import phll_rans
    from meshes.fields import MeshFields
    from meshes.interpolate import interpolate
    from vcnn.closure import BASIS, STRESS, stress_basis

    if name in study.test:
        raise CaseError(f"{name} is a test case: no sample is made of it")
    nx, ny = cells(study.resolution)
    mesh = phll_rans.unsolved_mesh(phll_rans.configure(geometry=name, nx=nx, ny=ny))
    case_dir = study.phll29 / name
    les = les_targets.les_on_mesh(case_dir, mesh)
    bench = les_targets.benchmark_sst(case_dir)
    prior = np.where(mesh["wall_distance"] < les_targets.WALL, 0.0, interpolate(bench, bench["nu_t"], mesh.points))
    strain = les_targets.strain_tensor(mesh, les["U_LES"])
    a = les_targets.anisotropic_stress(les["tauij_LES"], les["k_LES"])
    nu_t = les_targets.optimal_eddy_viscosity(a, strain, prior, mesh.weights, study.regularisation)
    nu = float(mesh.metadata["nu"])
    flow = les["U_LES"][:, :2] if study.inputs == "les" else les_targets.centres_on_mesh(bench, mesh, ["velocity"])["velocity"][:, :2]
    read = strain if study.inputs == "les" else les_targets.strain_tensor(mesh, flow)
    data = {
        "velocity": flow,
        "strain_rate": np.sqrt(2.0 * np.einsum("nij,nij->n", read, read)),
        "wall_distance": mesh["wall_distance"],
        TARGET: nu_t / nu,
        STRESS: les_targets.remaining_stress(a, strain, nu_t, traceless=True),
    }
    data[BASIS] = les_targets.basis_coefficient(data[STRESS], stress_basis(mesh, flow, study.basis_damping), study.regularisation)
    metadata = {"nu": nu, "periods": mesh.metadata["periods"], "case": name, "inputs": study.inputs, "target": "optimal_les_strain", STRESS: "a + 2 nu_t* S of the LES, traceless", "prior": "the benchmark's SST nu_t", "regularisation": study.regularisation, "basis_damping": study.basis_damping}
    return MeshFields(mesh.points, mesh.cells, mesh.cell_type, mesh.weights, data, metadata)


def ensure_samples(study: PhllStudy, names) -> list:
    """vcnn Cases of the training samples, written to DIR/samples/<case> once."""
    from vcnn.data import Case, load_case

    cases = []
    for name in names:
        where = study.directory / "samples" / name
        if not (where / "meta.json").is_file():
            training_sample(study, name).write(where)
        case = load_case(where, name)
        if case.fields.metadata.get("inputs", "les") != study.inputs:
            raise CaseError(f"{where} holds the {case.fields.metadata.get('inputs', 'les')} flow, the study reads the {study.inputs}'s: give it another directory")
        if case.fields.metadata.get("basis_damping", 0.0) != study.basis_damping:
            raise CaseError(f"{where} holds targets on a stress basis damped by {case.fields.metadata.get('basis_damping', 0.0)}, the study's is {study.basis_damping}: give it another directory")
        cases.append(case)
    return cases


def train_network(study: PhllStudy, out: Path, progress: bool = True) -> dict:
    """The network trained on the training samples, validated on the validation samples (reused
    when training.json is there)."""
    import resource
    import time

    import torch

    from cases.study import shape_from
    from vcnn.checkpoint import fingerprint, load, load_trained
    from vcnn.data import CloudBatches, feature_statistics
    from vcnn.nn import build_model
    from vcnn.train import relative_errors, train

    if (out / "training.json").is_file():
        return json.loads((out / "training.json").read_text())
    started = time.perf_counter()
    torch.use_deterministic_algorithms(True, warn_only=True)
    config = study.training
    batches = CloudBatches(ensure_samples(study, study.train), shape_from(study.cloud), study.features, tuple(study.outputs), config.batch_size, config.n_points or None, batches_per_epoch=config.batches_per_epoch)
    torch.manual_seed(config.seed)
    model = build_model(study.model_config())
    model.set_normalization(feature_statistics(batches, seed=config.seed))
    history = train(model, batches, ensure_samples(study, study.validate), config, out, (out / "last.pt").is_file(), progress, study.checkpoint_extra())
    best = min(history, key=lambda h: h["validation_rel_l2"])
    trained = load_trained(out / "best.pt")
    summary = {
        "epochs": len(history), "best_epoch": best["epoch"], "best_validation_rel_l2": best["validation_rel_l2"], "targets": list(study.outputs),
        "validation_errors": relative_errors(trained.model, ensure_samples(study, study.validate), trained.shape, trained.spec, "cpu"),
        "parameters": sum(p.numel() for p in model.parameters()), "torch_threads": torch.get_num_threads(),
        "training_s": sum(h["seconds"] for h in history),  # the epochs, over every resumed run
        "wall_s": time.perf_counter() - started, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "best_weights_sha256": fingerprint(load(out / "best.pt")[0]),
    }
    write_json(out / "training.json", summary)
    return summary


def run_phll_study(study: PhllStudy, out: Path, progress: bool = True) -> Path:
    """Every step of the study into `out` (resumable); the path of report.md."""
    from cases.studies.phll_coupling import PhllCoupling, load_phll_closure, reads_once

    options = PhllCoupling.of(study.coupling)  # checked before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    training = train_network(study, out / "network", progress)
    solve_sst(study, study.validate + study.test, progress)
    network = load_phll_closure(out / "network" / "best.pt", options.device)
    rows = [coupled_row(study, network, name, "validation", out, options) for name in study.validate]
    if options.rotate_deg and study.validate:
        rows.append(coupled_row(study, network, study.validate[0], "validation", out, options, options.rotate_deg))
    rows += [coupled_row(study, network, name, "test", out, options) for name in study.test]
    report = {
        "study": study.name, "target": study.target, "inputs": study.inputs, "network_read": "once" if reads_once(network, options) else "every iteration",
        "training": training, "coupling": dataclasses.asdict(options), "rows": rows,
    }
    write_json(out / "report.json", report)
    from cases.reports.phll import report_markdown

    (out / "report.md").write_text(report_markdown(report))
    return out / "report.md"


def coupled_row(study: PhllStudy, network, name: str, role: str, out: Path, options, rotate: float = 0.0) -> dict:
    """One geometry coupled (or its earlier result reused) and scored with our SST beside it; a
    test case's scores are computed once and kept in its row file."""
    from cases.studies.phll_coupling import couple_geometry
    from vcnn.symmetry import moved, planar_rotation

    where = out / "coupled" / (name if not rotate else f"{name}_turned_{rotate:g}")
    row_file = where / "row.json"
    if row_file.is_file():
        return json.loads(row_file.read_text())
    sst = read_sst(study, name)
    row = {"case": name, "role": role, "rotate_deg": rotate, "sst": _sst_summary(sst)}
    network.timings.update(clouds=0.0, network=0.0, calls=0)
    failed = _last_state(where)  # a failed solve is not repeated (it would fail the same way): its state is scored
    if failed is not None and failed.metadata.get("status") == "failed":
        row["error"] = failed.metadata["error"].splitlines()[0]
        fields, bubble, statistics = failed, {"reattachment": None, "separation": None}, failed.metadata["statistics"]
    else:
        try:
            fields, bubble, statistics = couple_geometry(network, sst, where, options, rotate, str(out / "network" / "best.pt"))
        except CaseError as err:
            log.warning("%s", err)
            row["error"] = str(err).splitlines()[0]
            fields = _last_state(where)
            if fields is None:
                return row
            bubble, statistics = {"reattachment": None, "separation": None}, fields.metadata["statistics"]
    own = moved(fields, planar_rotation(-rotate)) if rotate else fields
    own.metadata["periods"] = sst.metadata["periods"]  # turned back exactly: no 1e-16 cross component
    history = statistics["history"]
    row["closure"] = {
        "reattachment": bubble["reattachment"], "separation": bubble["separation"], "iterations": len(history),
        "residual_reduction": history[-1]["momentum_residual"] / history[0]["momentum_residual"],
        "seconds": sum(h["momentum_s"] + h["closure_s"] for h in history), "network_s": network.timings["network"],
        "clouds_s": network.timings["clouds"], "status": "not converged: its last state scored" if "error" in row else "converged",
    }
    row["closure"]["score"], row["sst"]["score"] = (_score(study, f, name, role, out, source) for f, source in ((own, f"LES closure {where}"), (sst, f"our SST {name}")))
    if role == "validation":
        row["les_reattachment"] = les_targets.les_reattachment(study.phll29 / name)
    _profiles_figure(study, name, role, sst, own, where / "profiles.png")
    write_json(row_file, row)
    return row


def _last_state(where: Path):
    """What a coupled solve wrote in `where`, if anything, and finite (a stall, not a divergence)."""
    from meshes.errors import MeshError
    from meshes.fields import MeshFields

    try:
        fields = MeshFields.read(where)
    except MeshError:
        return None
    return fields if np.isfinite(fields["velocity"]).all() else None


def _profiles_figure(study: PhllStudy, name: str, role: str, sst, coupled, path: Path) -> None:
    """u_x and nu_t / nu at x/H = 0.5 ... 8: the LES and its nu_t* (validation cases), our SST
    and the coupled closure."""
    from cases.reports.figures import closure_profiles_png
    from cases.studies.coupling import profiles

    sets = {}
    if role == "validation":
        sample = training_sample(study, name)
        sample["nu_t"] = sample[TARGET] * sample.metadata["nu"]
        sets["LES (nu_t*)"] = profiles(sample)
    sets.update({"our SST": profiles(sst), "LES-trained closure": profiles(coupled)})
    closure_profiles_png(sets, path, f"{name} ({role})")


def _sst_summary(sst) -> dict:
    statistics = sst.metadata.get("statistics", {})
    return {
        "reattachment": sst.metadata.get("validation", {}).get("reattachment"), "iterations": statistics.get("rans_iterations"),
        "seconds": statistics.get("timings_s", {}).get("rans"), "continued_from": statistics.get("continued_from", {}).get("geometry"),
    }


def _score(study: PhllStudy, fields, name: str, role: str, out: Path, source: str) -> float:
    from cases.studies.score import score_shared_case, score_test_case

    if role == "test":
        return score_test_case(fields, name, out / "scores", source, velocity="velocity")
    return score_shared_case(fields, study.phll29 / name, out / "scores", source, velocity="velocity")
