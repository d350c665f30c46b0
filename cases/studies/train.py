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


def train_study(study: Study, out: Path, resume: bool = False, progress: bool = True) -> dict:
    """Dataset (train + validate cases) -> trained network in `out`; returns a summary.

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
        write_json(out / "study.json", study_as_dict(study))
    history = train(model, training, load_cases(study.dataset, study.validate), study.training, out, resume, progress, study.checkpoint_extra())
    best = min(history, key=lambda h: h["validation_rel_l2"])
    summary = {
        "epochs": len(history),
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


def _network(study: Study):
    """(the study's network, initialised and normalised from its seed; its training batches)."""
    import torch

    from vcnn.data import CloudBatches, feature_statistics
    from vcnn.nn import build_model

    config, model_config = study.training, study.model_config()
    training = CloudBatches(
        load_cases(study.dataset, study.train),
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


