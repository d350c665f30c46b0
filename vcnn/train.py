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
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vcnn import checkpoint
from vcnn.clouds import Shape
from vcnn.data import Batch, Case, CloudBatches, built_ahead, check_targets
from vcnn.devices import check_device
from vcnn.errors import VcnnError
from vcnn.features import FeatureSpec
from vcnn.inference import plan_batches, predict_fields, relative_l2
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
    compile: bool = False  # torch.compile the training step's network: fused kernels, other rounding than eager
    sigmoid_tanh: bool = False  # a vector-cloud network's tanh embedding trained as sigmoids: faster, other rounding
    loss: str = "absolute"  # or "per_case": each case's errors relative to its own targets, every case weighing alike

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
        if self.compile and not any(shutil.which(cxx) for cxx in filter(None, (os.environ.get("CXX"), "g++", "clang++"))):
            raise VcnnError("compile = true needs a C++ compiler (g++ or clang++, or $CXX) on the PATH: install one or set compile = false")
        if self.loss not in LOSSES:
            raise VcnnError(f"unknown loss {self.loss!r}; choose from {list(LOSSES)}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise VcnnError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        if self.device != "auto":
            check_device(self.device)

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
LOSSES = ("absolute", "per_case")


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
        torch.distributed.init_process_group(process_group_backend(device), timeout=datetime.timedelta(hours=6))
    return world_position()


def process_group_backend(device: torch.device) -> str:
    """gloo on the CPU; on GPUs NCCL for the gradients, paired with gloo for what stays on the CPU
    (the epoch's loss sums, rank 0's validation errors): NCCL alone reduces no CPU tensor."""
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


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


def relative_errors(model: CloudNet, cases: list[Case], shape: Shape, spec: FeatureSpec, device, plans: dict | None = None) -> dict:
    """{case: {target: node-weighted relative L2 error}} with full clouds. `plans` keeps the clouds
    of each of these cases (`plan_batches`, by position) from one call to the next: a case's fields
    do not change, so neither do its clouds, and every epoch's validation would search them again."""
    errors = {}
    for k, case in enumerate(cases):
        batches = None
        if plans is not None:
            if k not in plans:
                plans[k] = plan_batches(model, case.fields.points, case.index, shape, case.fields[spec.velocity_field], device=device)
            batches = plans[k]
        errors[case.name] = relative_l2(case.fields, predict_fields(model, case.fields, shape, spec, case.periods, device=device, batches=batches))
    return errors


def mean_error(errors: dict) -> float:
    return float(np.mean([v for case in errors.values() for v in case.values()]))


def batch_loss(prediction: torch.Tensor, batch: Batch, output_std: torch.Tensor) -> torch.Tensor:
    """The mean squared error in units of the network's output scale, or of the batch's per-case
    scales where it carries them (`CloudBatches.weigh_cases`)."""
    scale = output_std if batch.scales is None else batch.scales
    return (((prediction - batch.targets) / scale) ** 2).mean()


class Trainer:
    """Trains a model in place, one epoch of batches at a time: Adam with the configured learning-rate
    schedule (stepped per batch), validation with full clouds after every epoch, checkpoints
    (last.pt every epoch, best.pt on improvement) and metrics in `out`, early stop on patience or on
    the time budget. Under torchrun every rank trains its share of each epoch; rank 0 validates and
    writes."""

    def __init__(self, model: CloudNet, training: CloudBatches, validation: list[Case], config: TrainingConfig,
                 out: str | Path, progress: bool = True, extra: dict | None = None):
        if model.config.outputs != training.targets or model.config.output_kinds != training.target_kinds:
            raise VcnnError(
                f"the network's outputs {dict(zip(model.config.outputs, model.config.output_kinds))} do not match the "
                f"training targets {dict(zip(training.targets, training.target_kinds))}"
            )
        check_targets(validation, training.targets, training.target_kinds)
        if config.loss == "per_case":
            training.weigh_cases()
        self.model, self.training, self.validation, self.config = model, training, validation, config
        self.out, self.progress = Path(out), progress
        self.rank, self.world = world_position()
        self.lead = self.rank == 0
        if self.lead:
            self.out.mkdir(parents=True, exist_ok=True)
        self.device = config.resolved_device()
        training.build_on(self.device)
        model.to(self.device)
        model.sigmoid_training = config.sigmoid_tanh
        self.net = model if self.world == 1 else torch.nn.parallel.DistributedDataParallel(model)
        if config.compile:
            self.net = torch.compile(self.net, dynamic=True)  # batches differ in size; validation stays eager
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(config, len(training)))
        self.history: list[dict] = []
        self.plans: dict = {}  # the validation cases' clouds, searched at the first validation
        self.best, self.since_best, self.start_epoch = math.inf, 0, 0
        self.extra = dict(extra or {}, training=dataclasses.asdict(config), world_size=self.world)

    def resume(self, adopt: bool = False) -> None:
        """Continue from out/last.pt, if there is one: with its learning rate, unless `adopt`
        (the configured rate and schedule from here on: a resumed study whose settings changed)."""
        last = self.out / "last.pt"
        if not last.is_file():
            return
        restored, state = checkpoint.load(last, map_location=self.device)
        if restored.config != self.model.config:
            raise VcnnError(f"{last} was trained with another model configuration")
        if "lr_lambdas" not in state["scheduler"]:  # schedules stepped per epoch before the cosine option
            raise VcnnError(f"{last} was written by an earlier vcnn whose schedule cannot be resumed; start a new run")
        self.model.load_state_dict(restored.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if adopt:
            self.scheduler.base_lrs = [self.config.learning_rate] * len(self.optimizer.param_groups)
            for group, factor in zip(self.optimizer.param_groups, self.scheduler.lr_lambdas):
                group["initial_lr"] = self.config.learning_rate
                group["lr"] = self.config.learning_rate * factor(self.scheduler.last_epoch)
        self.history, self.best, self.since_best = state["history"], state["best"], state["since_best"]
        self.start_epoch = state["epoch"] + 1
        log.info("resumed from %s at epoch %d", last, self.start_epoch)

    def step(self, batch) -> float:
        """One optimizer step on a batch (moved to the trainer's device); its mean loss."""
        batch = batch.to(self.device)
        loss = batch_loss(self.net(*batch.inputs), batch, self.model.output_std)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    def epoch(self, epoch: int) -> tuple[dict, dict]:
        """Train on every batch of one epoch, then validate: (the epoch's record, validation errors)."""
        self.net.train()
        started = time.perf_counter()
        sums = torch.zeros(2, dtype=torch.float64)  # loss x clouds, clouds
        batches = built_ahead(self.training.epoch(epoch, self.config.seed, self.rank, self.world))
        bar = tqdm(batches, total=len(self.training), desc=f"epoch {epoch}", disable=not (self.progress and self.lead), leave=False)
        for batch in bar:
            sums += torch.tensor([self.step(batch) * len(batch.targets), len(batch.targets)], dtype=torch.float64)
            bar.set_postfix(loss=f"{sums[0] / sums[1]:.3e}")
        if self.world > 1:
            torch.distributed.all_reduce(sums)
        training = self.training
        errors = _from_rank0(relative_errors(self.model, self.validation, training.shape, training.spec, self.device, self.plans) if self.lead else None)
        record = {
            "epoch": epoch,
            "train_loss": float(sums[0] / sums[1]),
            "validation_rel_l2": mean_error(errors),
            "learning_rate": self.optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
        }
        return record, errors

    def save(self, epoch: int, errors: dict, improved: bool) -> None:
        """last.pt (and best.pt if `improved`) with the whole training state, and the metrics (rank 0)."""
        state = dict(
            self.extra,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            epoch=epoch,
            history=self.history,
            best=self.best,
            since_best=self.since_best,
            validation_errors=errors,
        )
        checkpoint.save(self.out / "last.pt", self.model, **state)
        if improved:
            checkpoint.save(self.out / "best.pt", self.model, **state)
        write_metrics(self.out, self.history)

    def run(self) -> list[dict]:
        """Train until the last epoch, the patience or the time budget runs out; the history."""
        config = self.config
        for epoch in range(self.start_epoch, config.epochs):
            if self.since_best >= config.patience:
                break
            record, errors = self.epoch(epoch)
            self.history.append(record)
            score = record["validation_rel_l2"]
            improved = score < self.best
            self.best, self.since_best = (score, 0) if improved else (self.best, self.since_best + 1)
            if self.lead:
                log.info("epoch %d: train loss %.3e, validation rel. L2 %.4f%s", epoch, record["train_loss"], score, " (best)" if improved else "")
                self.save(epoch, errors, improved)
            # rank 0's clock decides, so that every rank stops after the same epoch
            spent = _from_rank0(sum(h["seconds"] for h in self.history))
            if self.since_best >= config.patience:
                log.info("early stop: no improvement for %d epochs", self.since_best)
                break
            if config.max_minutes is not None and spent > 60 * config.max_minutes:
                log.info("stop: the %g minutes of max_minutes are spent", config.max_minutes)
                break
        return self.history


def train(
    model: CloudNet,
    training: CloudBatches,
    validation: list[Case],
    config: TrainingConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    extra: dict | None = None,
    adopt: bool = False,
) -> list[dict]:
    """Train `model` in place (`Trainer`); checkpoints and metrics go to `out`. Returns the history.
    `adopt`: a resumed run takes `config`'s learning rate and schedule instead of its own."""
    trainer = Trainer(model, training, validation, config, out, progress, extra)
    if resume:
        trainer.resume(adopt)
    return trainer.run()


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
