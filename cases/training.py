"""Training studies from TOML: dataset -> vector-cloud network -> checkpoints, evaluation, invariance.

A study file (see cases/hills_transport.toml) has the sections [dataset], [split], [cloud],
[features], [model] and [training]; it is parsed into frozen dataclasses and validated before
any work starts. Relative paths are relative to the current directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tomllib
from pathlib import Path

from cases.dataset import case_values, load_manifest, sweep
from cases.errors import CaseError
from cases.families import HILLS, VECTOR_ARRAYS, Family, family
from cases.rundir import write_json
from vcnn import clouds
from vcnn.errors import VcnnError
from vcnn.features import DERIVED_SCALARS, FeatureSpec
from vcnn.nn import CloudNetConfig
from vcnn.train import TrainingConfig

log = logging.getLogger(__name__)

SECTIONS = {"dataset", "split", "cloud", "features", "model", "training", "baselines", "report", "coupling"}
BASELINE_KEYS = {"model", "cloud", "training"}


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    dataset: Path
    resolution: str | None
    jobs: int
    train: tuple[float, ...]
    validate: tuple[float, ...]
    test: tuple[float, ...]
    cloud: dict
    features: FeatureSpec
    model: dict
    targets: tuple[str, ...]
    training: TrainingConfig
    baselines: dict = dataclasses.field(default_factory=dict)  # name -> {model, cloud, training} overrides
    report: dict = dataclasses.field(default_factory=dict)  # options of `vcnn run` (cases.pipeline)
    coupling: dict = dataclasses.field(default_factory=dict)  # closure studies: options of the coupled solves (cases.closure_study)
    family: Family = HILLS  # what train, validate and test values are values of

    def baseline(self, name: str) -> "Study":
        """The study with baseline `name`'s overrides of [model], [cloud] and [training]."""
        table = self.baselines[name]
        return dataclasses.replace(
            self,
            name=f"{self.name}-{name}",
            cloud=dict(table.get("cloud", self.cloud)),
            model={**self.model, **table.get("model", {})},
            training=dataclasses.replace(self.training, **table.get("training", {})),
            baselines={},
        )

    def shape(self):
        return shape_from(self.cloud)

    def model_config(self) -> CloudNetConfig:
        return CloudNetConfig(
            n_scalars=len(self.features.scalars),
            n_vectors=len(self.features.vectors),
            dim=2,
            outputs=self.targets,
            **{"output_kinds": tuple("vector" if name in VECTOR_ARRAYS else "scalar" for name in self.targets), **self.model},
        )

    def checkpoint_extra(self) -> dict:
        """What evaluation and invariance checks need to rebuild inputs from a checkpoint."""
        return {
            "study": self.name,
            "family": self.family.name,
            "resolution": self.resolution,
            "cloud": dict(self.cloud),
            "features": dataclasses.asdict(self.features),
            "targets": list(self.targets),
            "split": {"train": list(self.train), "validate": list(self.validate), "test": list(self.test)},
        }


def _checked_baseline(study: Study, name: str, path: Path) -> Study:
    table = study.baselines[name]
    if not isinstance(table, dict) or set(table) - BASELINE_KEYS:
        raise CaseError(f"{path}: [baselines.{name}] may only set {sorted(BASELINE_KEYS)}")
    return study.baseline(name)


def shape_from(cloud: dict):
    """A cloud shape from its table, e.g. {shape = "ellipse", eps = 0.2}; CaseError if invalid."""
    try:
        return clouds.shape_from(cloud)
    except VcnnError as err:
        raise CaseError(str(err)) from None


def load_study(path: str | Path) -> Study:
    """Parse and validate a study file; CaseError with one line on any problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise CaseError(f"study file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise CaseError(f"{path}: invalid TOML: {err}") from None
    unknown = set(raw) - SECTIONS
    if unknown:
        raise CaseError(f"{path}: unknown sections {sorted(unknown)}")
    try:
        dataset, split, model = raw.get("dataset", {}), raw.get("split", {}), dict(raw.get("model", {}))
        targets = tuple(model.pop("targets", ["concentration"]))
        kind = family(dataset.get("family", HILLS.name))
        if dataset.get("resolution") is not None and not kind.resolution:
            raise CaseError(f"{path}: {kind.name} cases take no [dataset] resolution")
        study = Study(
            name=path.stem,
            family=kind,
            dataset=Path(dataset.get("directory", f"data/{path.stem}")),
            resolution=dataset.get("resolution"),
            jobs=int(dataset.get("jobs", 1)),
            train=tuple(kind.parse(split["train"])),
            validate=tuple(kind.parse(split["validate"])),
            test=tuple(kind.parse(split["test"])) if split.get("test") else (),
            cloud=dict(raw.get("cloud", {"shape": "ellipse"})),
            features=FeatureSpec(**raw.get("features", {})),
            model=model,
            targets=targets,
            training=TrainingConfig(**raw.get("training", {})),
            baselines=dict(raw.get("baselines", {})),
            report=dict(raw.get("report", {})),
            coupling=dict(raw.get("coupling", {})),
        )
        if study.coupling and not kind.derived:
            raise CaseError(f"{path}: [coupling] needs a RANS dataset family, not {kind.name}")
        for variant in [study] + [_checked_baseline(study, name, path) for name in study.baselines]:
            variant.shape()
            variant.model_config()
        for name in study.features.scalars:
            if name not in DERIVED_SCALARS + kind.arrays:
                raise CaseError(f"{path}: unknown feature {name!r}; choose from {sorted(DERIVED_SCALARS + kind.arrays)}")
        for name in study.targets:
            if name not in kind.arrays + kind.derived:
                raise CaseError(f"{path}: unknown target {name!r}; the cases hold {list(kind.arrays + kind.derived)}")
    except KeyError as err:
        raise CaseError(f"{path}: missing [split] entry {err}") from None
    except TypeError as err:
        raise CaseError(f"{path}: {err}") from None
    except VcnnError as err:
        raise CaseError(f"{path}: {err}") from None
    return study


def ensure_dataset(study: Study, values, progress: bool = True) -> dict:
    """Solve what is missing of the study's dataset (resumable) and return the manifest."""
    return sweep(study.dataset, sorted(set(values)), study.resolution, study.jobs, progress, study.family)


def load_cases(directory: Path, values):
    """The Cases of a dataset for the given parameter values (CaseError if some are missing)."""
    from vcnn.data import load_case

    manifest, kind = load_manifest(directory)
    have = {round(v, 6) for v in case_values(manifest, kind)}
    missing = [v for v in values if round(v, 6) not in have]
    if missing:
        raise CaseError(f"dataset {directory} lacks {kind.parameter} = {', '.join(f'{v:g}' for v in missing)}")
    cases = [load_case(Path(directory) / "cases" / kind.case_name(v)) for v in values]
    if kind.derived:
        from vcnn.closure import closure_targets

        for case in cases:
            for name, values in closure_targets(case.fields).items():
                case.fields[name] = values
    return cases


def train_study(study: Study, out: Path, resume: bool = False, progress: bool = True) -> dict:
    """Dataset (train + validate cases) -> trained network in `out`; returns a summary."""
    import resource
    import time

    import torch

    from vcnn.data import CloudBatches, feature_statistics
    from vcnn.nn import build_model
    from vcnn.train import init_distributed, train

    if (out / "last.pt").is_file() and not resume:
        raise CaseError(f"{out} already holds a training run (use --resume to continue it)")
    started = time.perf_counter()
    rank, world = init_distributed(study.training)
    if rank == 0:
        ensure_dataset(study, study.train + study.validate, progress)
    if world > 1:
        torch.distributed.barrier()
    training_cases = load_cases(study.dataset, study.train)
    validation_cases = load_cases(study.dataset, study.validate)
    config = study.training
    shape = study.shape()
    model_config = study.model_config()
    training = CloudBatches(
        training_cases,
        shape,
        study.features,
        study.targets,
        config.batch_size,
        config.n_points or None,
        mesh_graph=model_config.graph == "mesh",
        batches_per_epoch=config.batches_per_epoch,
    )
    torch.manual_seed(config.seed)
    model = build_model(model_config)
    model.set_normalization(feature_statistics(training, seed=config.seed))
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "study.json", study_as_dict(study))
    history = train(model, training, validation_cases, config, out, resume, progress, study.checkpoint_extra())
    best = min(history, key=lambda h: h["validation_rel_l2"])
    summary = {
        "epochs": len(history),
        "best_epoch": best["epoch"],
        "best_validation_rel_l2": best["validation_rel_l2"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "processes": world,
        "wall_s": time.perf_counter() - started,
        "peak_rss_mb_per_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if rank == 0:
        write_json(out / "training.json", summary)
    return summary


# What a trained run depends on: a change to any of these (max_minutes and device aside) makes it stale.
TRAINED_FROM = ("dataset", "family", "train", "validate", "cloud", "features", "model", "targets", "training")


def ensure_trained(study: Study, out: Path, progress: bool = True) -> None:
    """Train `study` into `out`, resume it from last.pt, or reuse it when training.json is there;
    refused when `out` was trained from other settings (a silently reused network would not be
    the one the study file describes)."""
    saved = out / "study.json"
    if saved.is_file():
        before, now = json.loads(saved.read_text()), json.loads(json.dumps(study_as_dict(study)))
        for section in (before, now):
            for key in ("max_minutes", "device"):
                section.get("training", {}).pop(key, None)
        changed = [key for key in TRAINED_FROM if key in before and key in now and _differs(before[key], now[key])]
        if changed:
            raise CaseError(f"{out} was trained with other {', '.join(changed)} settings: remove it or choose another --out")
    if (out / "training.json").is_file():
        log.info("%s: already trained, reusing it", out)
        return
    log.info("%s: training", out)
    train_study(study, out, resume=(out / "last.pt").is_file(), progress=progress)


def _differs(before, now) -> bool:
    """Settings differ; a key on one side only (written by an older or newer vcnn) does not count."""
    if isinstance(before, dict) and isinstance(now, dict):
        return any(_differs(before[key], now[key]) for key in before.keys() & now.keys())
    return before != now


def study_as_dict(study: Study) -> dict:
    data = dataclasses.asdict(dataclasses.replace(study, family=None))
    data.update(dataset=str(study.dataset), family=study.family.name)
    return data


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
    from cases.figures import comparison_png
    from vcnn.data import Case, check_targets
    from vcnn.inference import predict_fields, relative_l2
    from vcnn.symmetry import moved, planar_rotation

    model, state = load_checkpoint(checkpoint_path)
    manifest, kind = load_manifest(data, state.get("family", HILLS.name))
    if values is None:
        values = case_values(manifest, kind)
    cases = load_cases(data, values)
    shape, spec = checkpoint_inputs(state)
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


def check_checkpoint_invariance(checkpoint_path: Path, fields_path: Path, trials: int = 3) -> dict:
    """The symmetry checker on a trained network applied to one solved field, in float64.

    'violations' lists the transforms the model declares invariance to but deviates under by
    more than `vcnn.symmetry.TOLERANCE`."""
    import torch

    from vcnn.data import load_case
    from vcnn.inference import predict_fields
    from vcnn.symmetry import TOLERANCE, check_field_model

    model, state = load_checkpoint(checkpoint_path)
    case = load_case(fields_path)
    shape, spec = checkpoint_inputs(state)
    model = model.double()

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


def checkpoint_inputs(state: dict):
    """(cloud shape, FeatureSpec) that a checkpoint's network was trained with."""
    return shape_from(state["cloud"]), FeatureSpec(**state["features"])


def load_checkpoint(path: Path):
    """(model, checkpoint dict) with the data configuration a study run stores; CaseError otherwise."""
    from vcnn import checkpoint

    try:
        model, state = checkpoint.load(path)
    except VcnnError as err:
        raise CaseError(str(err)) from None
    for key in ("cloud", "features", "targets"):
        if key not in state:
            raise CaseError(f"checkpoint {path} lacks its data configuration ({key}); was it saved by vcnn train?")
    if list(model.config.outputs) != list(state["targets"]):
        raise CaseError(f"checkpoint {path}: model outputs {model.config.outputs} do not match targets {state['targets']}")
    return model, state
