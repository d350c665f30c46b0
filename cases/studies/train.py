"""Training the network of a study: its dataset solved first, then the network trained (resumable),
and a finished run reused only when it was trained from the same settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from cases.errors import CaseError
from cases.rundir import write_json
from cases.studies.dataset import ensure_dataset, load_cases
from cases.study import Study, study_as_dict

log = logging.getLogger(__name__)


def train_study(study: Study, out: Path, resume: bool = False, progress: bool = True, accept_changes: bool = False) -> dict:
    """Dataset (train + validate cases) -> trained network in `out`; returns a summary.

    A resumed run whose study file changed is refused, unless `accept_changes` and the changes are
    to [training] only: it then goes on with the new settings (learning rate and schedule too),
    and study.json records them and the epoch they took effect at.

    Reproducible on one machine: every random draw comes from the study's seed (initialisation,
    normalisation sample, cloud sampling, batch order), torch runs its deterministic algorithms,
    and the summary records the thread count and a fingerprint of the best weights, so that two
    runs of the same study can be compared bitwise."""
    import resource
    import time

    import torch

    from vcnn.checkpoint import fingerprint, load
    from vcnn.train import init_distributed, train

    if (out / "last.pt").is_file() and not resume:
        raise CaseError(f"{out} already holds a training run (use --resume to continue it)")
    record = _resumed_record(study, out, accept_changes) if resume else study_as_dict(study)
    started = time.perf_counter()
    rank, world = init_distributed(study.training)
    if rank == 0:
        ensure_dataset(study, study.train + study.validate, progress)
    if world > 1:
        torch.distributed.barrier()
    torch.use_deterministic_algorithms(True, warn_only=True)
    model, training = _network(study)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "study.json", record)
    history = train(model, training, load_cases(study.dataset, study.validate), study.training, out, resume, progress, study.checkpoint_extra(),
                    adopt=accept_changes)
    best = min(history, key=lambda h: h["validation_rel_l2"])
    summary = {
        "epochs": len(history),
        "stopped_by": stopped_by(history, study.training),
        "best_epoch": best["epoch"],
        "best_validation_rel_l2": best["validation_rel_l2"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "processes": world,
        "torch_threads": torch.get_num_threads(),
        "wall_s": time.perf_counter() - started,
        "peak_rss_mb_per_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if rank == 0:
        summary["best_weights_sha256"] = fingerprint(load(out / "best.pt")[0])
        write_json(out / "training.json", summary)
    return summary


def stopped_by(history: list, config) -> str:
    """Why a training ended: "epochs" (all it planned), "patience" (no improvement for that many
    epochs) or "max_minutes" (its time budget: where it stops depends on the machine's speed and
    load, so a rerun of the study need not give the same weights)."""
    last, best = history[-1]["epoch"], min(history, key=lambda h: h["validation_rel_l2"])["epoch"]
    if last + 1 >= config.epochs:
        return "epochs"
    return "patience" if last - best >= config.patience else "max_minutes"


def _network(study: Study):
    """(the study's network, initialised and normalised from its seed; its training batches)."""
    import torch

    from vcnn.data import CloudBatches, GraphBatches, feature_statistics
    from vcnn.nn import NETWORKS, build_model

    config, model_config = study.training, study.model_config()
    cases = load_cases(study.dataset, study.train)
    if NETWORKS[model_config.kind].whole_mesh:  # a whole case a batch: batch size and sampling do not apply
        training = GraphBatches(cases, study.shape(), study.features, study.targets)
    else:
        training = CloudBatches(
            cases,
            study.shape(),
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
    return model, training


# What a trained run depends on: a change to any of these (max_minutes and device aside) makes it stale.
TRAINED_FROM = ("dataset", "family", "train", "validate", "cloud", "features", "model", "targets", "training")


def ensure_trained(study: Study, out: Path, progress: bool = True) -> None:
    """Train `study` into `out`, resume it from last.pt, or reuse it when training.json is there;
    refused when `out` was trained from other settings (a silently reused network would not be
    the one the study file describes)."""
    saved = out / "study.json"
    if saved.is_file():
        changed = sorted({key.split(".")[0] for key in _changes(json.loads(saved.read_text()), study)})
        if changed:
            raise CaseError(f"{out} was trained with other {', '.join(changed)} settings: remove it or choose another --out")
    if (out / "training.json").is_file():
        log.info("%s: already trained, reusing it", out)
        return
    log.info("%s: training", out)
    train_study(study, out, resume=(out / "last.pt").is_file(), progress=progress)


def _resumed_record(study: Study, out: Path, accept_changes: bool) -> dict:
    """study.json of a resumed run: the study as it now runs, with every change accepted on the way."""
    saved = out / "study.json"
    if not saved.is_file():
        return study_as_dict(study)
    before = json.loads(saved.read_text())
    changes = _changes(before, study)
    fixed = sorted({key.split(".")[0] for key in changes} - {"training"})
    listed = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())
    if fixed:
        raise CaseError(f"{out} was trained with other {', '.join(fixed)} settings ({listed}): these cannot change in a resumed run; start a new one (another --out)")
    if changes and not accept_changes:
        raise CaseError(f"the study changed since {out} was trained ({listed}): resume with --accept-changes to go on with the new settings, or undo the change")
    accepted = before.get("resumed_with_changes", [])
    if changes:
        epochs = len(json.loads((out / "metrics.json").read_text())) if (out / "metrics.json").is_file() else 0
        accepted = [*accepted, {"from_epoch": epochs, "changes": {key: list(pair) for key, pair in changes.items()}}]
        log.warning("resuming %s with the changed settings from epoch %d: %s", out, epochs, listed)
    return {**study_as_dict(study), **({"resumed_with_changes": accepted} if accepted else {})}


def _changes(before: dict, study: Study) -> dict:
    """{dotted key: (recorded, now)} of the settings a trained network depends on (`TRAINED_FROM`)
    that differ between a recorded study.json and `study`; a key on one side only (written by an
    older or newer vcnn) does not count, nor do the run's time budget and device."""
    now = json.loads(json.dumps(study_as_dict(study)))
    differ = {key: pair for section in TRAINED_FROM if section in before and section in now for key, pair in _diff(before[section], now[section], f"{section}.").items()}
    return {key: pair for key, pair in differ.items() if key not in ("training.max_minutes", "training.device")}


def _diff(before, now, prefix: str) -> dict:
    if isinstance(before, dict) and isinstance(now, dict):
        return {key: pair for name in before.keys() & now.keys() for key, pair in _diff(before[name], now[name], f"{prefix}{name}.").items()}
    return {} if before == now else {prefix.rstrip("."): (before, now)}
