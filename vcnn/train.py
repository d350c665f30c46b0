"""Training: Adam with an exponential or a cosine learning-rate schedule, validation every epoch, early stopping,
an atomic checkpoint every epoch (`last.pt`, and `best.pt` on improvement), exact resume,
seeds, a progress bar and metrics as CSV and JSON. Device-agnostic (CPU default, CUDA if asked
for or 'auto' and present).

Data-parallel: started under `torchrun --nproc_per_node N`, `init_distributed` joins the
process group (gloo on CPU, NCCL on GPUs) and `train` wraps the model in
DistributedDataParallel. The ranks split every batch (not the epoch), so N processes take the
same optimizer steps on the same batches as one process would; rank 0 validates, writes the
checkpoints and metrics, and tells the others when to stop.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vcnn import checkpoint
from vcnn.clouds import Shape
from vcnn.data import Case, CloudBatches, check_targets
from vcnn.errors import VcnnError
from vcnn.features import FeatureSpec
from vcnn.inference import predict_fields, relative_l2
from vcnn.nn import CloudNet

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 100
    batch_size: int = 512
    n_points: int = 150  # members sampled per training cloud; 0: whole clouds
    batches_per_epoch: int = 0  # 0: every training node once an epoch; N: N random batches (large datasets)
    learning_rate: float = 1e-3
    schedule: str = "exponential"  # or "cosine": anneal per step to 0 at the last epoch
    lr_decay: float = 0.98  # exponential: learning-rate factor per epoch
    warmup: float = 0.0  # epochs of linear warm-up from 0 (both schedules)
    patience: int = 20  # epochs without validation improvement before stopping
    seed: int = 0
    device: str = "auto"
    max_minutes: float | None = None  # stop after the epoch that takes the run past this time (resumes included)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.n_points < 0 or self.batches_per_epoch < 0:
            raise VcnnError("epochs, batch_size and patience must be positive, n_points and batches_per_epoch positive or 0 (all)")
        if not (self.learning_rate > 0 and 0 < self.lr_decay <= 1):
            raise VcnnError("learning_rate must be positive and lr_decay in (0, 1]")
        if self.schedule not in SCHEDULES:
            raise VcnnError(f"unknown schedule {self.schedule!r}; choose from {list(SCHEDULES)}")
        if not 0 <= self.warmup < self.epochs:
            raise VcnnError(f"warmup must be at least 0 and fewer than the {self.epochs} epochs, got {self.warmup}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise VcnnError(f"max_minutes must be positive, got {self.max_minutes}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise VcnnError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")

    def resolved_device(self) -> torch.device:
        """The device of this process (under torchrun on GPUs: the local rank's GPU)."""
        if self.device == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            device = torch.device(self.device)
        if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        return device


SCHEDULES = ("exponential", "cosine")


def lr_factor(config: TrainingConfig, steps_per_epoch: int):
    """The learning-rate factor of optimizer step `step` (counted from 0 over the whole run).

    Cosine annealing over the planned epochs suits a fixed compute budget: the rate is small at
    the end, where an exponential schedule cut short by the budget would still be large.
    """
    total, warm = config.epochs * steps_per_epoch, config.warmup * steps_per_epoch

    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warm) if warm else 1.0
        if config.schedule == "cosine":
            return ramp * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        return ramp * config.lr_decay ** (step // steps_per_epoch)

    return factor


def init_distributed(config: TrainingConfig) -> tuple[int, int]:
    """Join the torchrun process group if started under torchrun; returns (rank, world size)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        device = config.resolved_device()
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # rank 0 may first solve a dataset while the others wait at a barrier: a long timeout
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(hours=6))
    return world_position()


def world_position() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside data-parallel training."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _from_rank0(value):
    """`value` as rank 0 has it, on every rank."""
    if world_position()[1] == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def relative_errors(model: CloudNet, cases: list[Case], shape: Shape, spec: FeatureSpec, device) -> dict:
    """{case: {target: node-weighted relative L2 error}} with full clouds."""
    return {
        case.name: relative_l2(case.fields, predict_fields(model, case.fields, shape, spec, case.periods, device=device))
        for case in cases
    }


def mean_error(errors: dict) -> float:
    return float(np.mean([v for case in errors.values() for v in case.values()]))


def train(
    model: CloudNet,
    training: CloudBatches,
    validation: list[Case],
    config: TrainingConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    extra: dict | None = None,
) -> list[dict]:
    """Train `model` in place; checkpoints and metrics go to `out`. Returns the history.

    Validation: relative L2 error on the `validation` cases with full clouds, every epoch.
    """
    if model.config.outputs != training.targets or model.config.output_kinds != training.target_kinds:
        raise VcnnError(
            f"the network's outputs {dict(zip(model.config.outputs, model.config.output_kinds))} do not match the "
            f"training targets {dict(zip(training.targets, training.target_kinds))}"
        )
    check_targets(validation, training.targets, training.target_kinds)
    out = Path(out)
    rank, world = world_position()
    lead = rank == 0
    if lead:
        out.mkdir(parents=True, exist_ok=True)
    device = config.resolved_device()
    model.to(device)
    net = model if world == 1 else torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, len(training)))  # stepped per batch
    history: list[dict] = []
    best, since_best, start_epoch = math.inf, 0, 0
    extra = dict(extra or {}, training=dataclasses.asdict(config), world_size=world)

    last = out / "last.pt"
    if resume and last.is_file():
        restored, state = checkpoint.load(last, map_location=device)
        if restored.config != model.config:
            raise VcnnError(f"{last} was trained with another model configuration")
        if "lr_lambdas" not in state["scheduler"]:  # schedules stepped per epoch before the cosine option
            raise VcnnError(f"{last} was written by an earlier vcnn whose schedule cannot be resumed; start a new run")
        model.load_state_dict(restored.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, best, since_best = state["history"], state["best"], state["since_best"]
        start_epoch = state["epoch"] + 1
        log.info("resumed from %s at epoch %d", last, start_epoch)
        if since_best >= config.patience:
            return history

    for epoch in range(start_epoch, config.epochs):
        net.train()
        started = time.perf_counter()
        sums = torch.zeros(2, dtype=torch.float64)  # loss x clouds, clouds
        batches = training.epoch(epoch, config.seed, rank, world)
        bar = tqdm(batches, total=len(training), desc=f"epoch {epoch}", disable=not (progress and lead), leave=False)
        for batch in bar:
            batch = batch.to(device)
            prediction = net(*batch.inputs)
            loss = (((prediction - batch.targets) / model.output_std) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            sums += torch.tensor([loss.item() * len(batch.targets), len(batch.targets)], dtype=torch.float64)
            bar.set_postfix(loss=f"{sums[0] / sums[1]:.3e}")
        if world > 1:
            torch.distributed.all_reduce(sums)
        errors = _from_rank0(relative_errors(model, validation, training.shape, training.spec, device) if lead else None)
        score = mean_error(errors)
        record = {
            "epoch": epoch,
            "train_loss": float(sums[0] / sums[1]),
            "validation_rel_l2": score,
            "learning_rate": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        # rank 0's clock decides, so that every rank stops after the same epoch
        spent = _from_rank0(sum(h["seconds"] for h in history))
        out_of_time = config.max_minutes is not None and spent > 60 * config.max_minutes
        improved = score < best
        best, since_best = (score, 0) if improved else (best, since_best + 1)
        if lead:
            log.info("epoch %d: train loss %.3e, validation rel. L2 %.4f%s", epoch, record["train_loss"], score, " (best)" if improved else "")
            state = dict(
                extra,
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                epoch=epoch,
                history=history,
                best=best,
                since_best=since_best,
                validation_errors=errors,
            )
            checkpoint.save(last, model, **state)
            if improved:
                checkpoint.save(out / "best.pt", model, **state)
            write_metrics(out, history)
        if since_best >= config.patience:
            log.info("early stop: no improvement for %d epochs", since_best)
            break
        if out_of_time:
            log.info("stop: the %g minutes of max_minutes are spent", config.max_minutes)
            break
    return history


def write_metrics(out: Path, history: list[dict]) -> None:
    """metrics.csv and metrics.json, each written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    for name, text in (("metrics.csv", buffer.getvalue()), ("metrics.json", json.dumps(history, indent=2) + "\n")):
        tmp = out / f".{name}.partial"
        tmp.write_text(text)
        tmp.replace(out / name)
