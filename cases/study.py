"""Study files (TOML): the dataset, split, clouds, features, network, training, baselines, report and
coupling of one study, parsed into frozen dataclasses and validated before any work starts.

A study file (see cases/hills_transport.toml) has the sections [dataset], [split], [cloud],
[features], [model] and [training], and optionally [baselines], [report] and, for closure
studies on a RANS family, [coupling]. Relative paths are relative to the current directory.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from cases.errors import CaseError
from cases.flows import family
from cases.flows.families import VECTOR_ARRAYS, Family
from cases.flows.hills_transport import HILLS
from cases.study_schema import Chosen, Named, check_table, keys_of
from vcnn import clouds
from vcnn.checkpoint import data_config
from vcnn.closure import PATIENCE, SMOOTHING
from vcnn.errors import VcnnError
from vcnn.features import DERIVED_SCALARS, FeatureSpec
from vcnn.nn import CloudNetConfig
from vcnn.train import TrainingConfig


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
    report: dict = dataclasses.field(default_factory=dict)  # options of `vcnn run` (cases.studies.surrogate)
    coupling: dict = dataclasses.field(default_factory=dict)  # closure studies: options of the coupled solves (cases.studies.closure)
    robustness: dict = dataclasses.field(default_factory=dict)  # closure studies: the seeds of the robustness study
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

    def interpolates(self, value: float) -> bool:
        """`value` lies within the range of the training values."""
        return min(self.train) <= value <= max(self.train)

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
        split = {"train": list(self.train), "validate": list(self.validate), "test": list(self.test)}
        return data_config(self.cloud, self.features, self.targets, study=self.name, family=self.family.name, resolution=self.resolution, split=split)


def shape_from(cloud: dict):
    """A cloud shape from its table, e.g. {shape = "ellipse", eps = 0.2}; CaseError if invalid."""
    try:
        return clouds.shape_from(cloud)
    except VcnnError as err:
        raise CaseError(str(err)) from None


def load_study(path: str | Path) -> Study:
    """Parse and validate a study file; CaseError with one line on any problem."""
    path = Path(path)
    if path.is_dir():
        raise CaseError(f"study file {path} is a directory")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaseError(f"study file {path} does not exist") from None
    except UnicodeDecodeError:
        raise CaseError(f"study file {path} is not a text (TOML) file") from None
    except OSError as err:
        raise CaseError(f"cannot read study file {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise CaseError(f"{path}: invalid TOML: {err}") from None
    check_table(raw, SCHEMA, path, required=REQUIRED)
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
            robustness=dict(raw.get("robustness", {})),
        )
        for section in ("coupling", "robustness"):
            if getattr(study, section) and not kind.derived:
                raise CaseError(f"{path}: [{section}] needs a RANS dataset family, not {kind.name}")
        for variant in [study] + [study.baseline(name) for name in study.baselines]:
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


def study_as_dict(study: Study) -> dict:
    data = dataclasses.asdict(dataclasses.replace(study, family=None))
    data.update(dataset=str(study.dataset), family=study.family.name)
    return data


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
        options = _table(cls, "report", study.report)
        if options.invariance_trials < 1 or (options.resample_factor and options.resample_factor <= 1):
            raise CaseError("[report]: invariance_trials must be >= 1 and resample_factor > 1 (or 0 to skip)")
        if options.resample_factor and not study.family.resolution:
            raise CaseError(f"[report]: {study.family.name} cases take no resolution, so no resample_factor")
        if options.frame_angles and not study.test:
            raise CaseError("[report]: the frame-rotation study needs a test case")
        named = (options.rotate_cases or ()) + (options.figures or ()) + (options.invariance_case, options.frame_case, options.resample_case)
        _check_held_out(study, "report", named)
        return options


def coupling_device(name: str) -> str:
    """A study's [coupling] device, checked before any work (`vcnn.devices.check_device`)."""
    from vcnn.devices import check_device

    try:
        return check_device(name)
    except VcnnError as err:
        raise CaseError(f"[coupling] {err}") from None


def first_of(value: float | None, defaults) -> float:
    """`value`, or the first of `defaults` when it is None (a [report] or [coupling] choice left out)."""
    return defaults[0] if value is None else value


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
    newton_krylov: float = 0.0  # Newton-Krylov steps while the relative nu_t residual is below this (0: never)
    smoothing: float = SMOOTHING  # the network's clip at 0 rounded over this width until the solve settles (0: never)
    patience: int = PATIENCE  # round only after this many iterations without a tenfold fall of the velocity change (0: from the start)
    device: str = "cpu"  # where the network runs in the coupled solves: cpu, cuda (under mpirun each rank its own GPU) or cuda:N

    @classmethod
    def of(cls, study: Study) -> "CouplingOptions":
        options = _table(cls, "coupling", study.coupling)
        coupling_device(options.device)
        if (options.blend < 0 or options.anderson < 0 or options.newton_krylov < 0 or options.invariance_trials < 1
                or not options.tolerance > 0 or options.max_iterations < 1 or not options.smoothing >= 0
                or options.patience < 0):
            raise CaseError("[coupling]: blend, anderson, newton_krylov, smoothing and patience must be >= 0, invariance_trials and max_iterations >= 1, tolerance > 0")
        _check_held_out(study, "coupling", options.alphas or ())
        return options


@dataclasses.dataclass(frozen=True)
class RobustnessOptions:
    """The [robustness] table of a closure study: the network trained again with each seed (all
    else the study's) and coupled at every [coupling] alpha, to show convergence and the spread of
    the errors across trainings (the study's own seed reuses its network)."""

    seeds: tuple[int, ...] = ()

    @classmethod
    def of(cls, study: Study) -> "RobustnessOptions":
        options = _table(cls, "robustness", study.robustness)
        if len(set(options.seeds)) != len(options.seeds):
            raise CaseError(f"[robustness] seeds must differ, got {list(options.seeds)}")
        return options


def _table(cls, section: str, table: dict):
    """The options dataclass `cls` of a study file's [section] (lists become tuples)."""
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()})
    except TypeError as err:
        raise CaseError(f"[{section}]: {err}") from None


def _check_held_out(study: Study, section: str, values) -> None:
    """Every value a [section] names is a validation or test case of the study."""
    known = {round(v, 6) for v in study.validate + study.test}
    for value in values:
        if value is not None and round(value, 6) not in known:
            raise CaseError(f"[{section}]: {study.family.describe(value)} is not a validation or test case of the study")


def _cloud_keys(table: dict) -> dict:
    """The keys of a [cloud] table: its shape's parameters (those of every shape if it names none
    known; `clouds.shape_from` then refuses the shape)."""
    shapes = [clouds.SHAPES[table["shape"]]] if table.get("shape") in clouds.SHAPES else clouds.SHAPES.values()
    return {"shape": str, **{k: v for shape in shapes for k, v in keys_of(shape).items()}}


_NETWORK = keys_of(CloudNetConfig, leave_out=("n_scalars", "n_vectors", "dim", "outputs"))  # the study sets these
_TRAINING = keys_of(TrainingConfig)
SCHEMA = {
    "dataset": {"family": str, "directory": str, "resolution": str, "jobs": int},
    "split": dict.fromkeys(("train", "validate", "test"), tuple[float | str, ...]),  # values or "start:stop:step"
    "cloud": Chosen(_cloud_keys),
    "features": keys_of(FeatureSpec),
    "model": {"targets": tuple[str, ...], **_NETWORK},
    "training": _TRAINING,
    "baselines": Named({"model": _NETWORK, "cloud": Chosen(_cloud_keys), "training": _TRAINING}),
    "report": keys_of(ReportOptions),
    "coupling": keys_of(CouplingOptions),
    "robustness": keys_of(RobustnessOptions),
}
"""Every section and key a study file may hold, with its type (`cases.study_schema`)."""

REQUIRED = {"": ("split", "model"), "split": ("train", "validate")}
"""The sections a study file must have (a network with no [model] would be trained on defaults
without a word), and the keys of each."""
