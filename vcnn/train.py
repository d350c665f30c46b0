"""Training: Adam with an exponential schedule, validation every epoch, early stopping,
an atomic checkpoint every epoch (`last.pt`, and `best.pt` on improvement), exact resume,
seeds, a progress bar and metrics as CSV and JSON. Device-agnostic (CPU default, CUDA if asked
for or 'auto' and present).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
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
from vcnn.models import VectorCloudNet

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 100
    batch_size: int = 512
    n_points: int = 150
    learning_rate: float = 1e-3
    lr_decay: float = 0.98  # learning-rate factor per epoch
    patience: int = 20  # epochs without validation improvement before stopping
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.n_points < 1 or self.patience < 1:
            raise VcnnError("epochs, batch_size, n_points and patience must be positive")
        if not (self.learning_rate > 0 and 0 < self.lr_decay <= 1):
            raise VcnnError("learning_rate must be positive and lr_decay in (0, 1]")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise VcnnError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def relative_errors(model: VectorCloudNet, cases: list[Case], shape: Shape, spec: FeatureSpec, device) -> dict:
    """{case: {target: node-weighted relative L2 error}} with full clouds."""
    return {
        case.name: relative_l2(case.fields, predict_fields(model, case.fields, shape, spec, case.periods, device=device))
        for case in cases
    }


def mean_error(errors: dict) -> float:
    return float(np.mean([v for case in errors.values() for v in case.values()]))


def train(
    model: VectorCloudNet,
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
    check_targets(validation, training.targets)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = config.resolved_device()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    history: list[dict] = []
    best, since_best, start_epoch = math.inf, 0, 0
    extra = dict(extra or {}, training=dataclasses.asdict(config))

    last = out / "last.pt"
    if resume and last.is_file():
        restored, state = checkpoint.load(last, map_location=device)
        if restored.config != model.config:
            raise VcnnError(f"{last} was trained with another model configuration")
        model.load_state_dict(restored.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, best, since_best = state["history"], state["best"], state["since_best"]
        start_epoch = state["epoch"] + 1
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from %s at epoch %d", last, start_epoch)
        if since_best >= config.patience:
            return history

    for epoch in range(start_epoch, config.epochs):
        model.train()
        started = time.perf_counter()
        total, count = 0.0, 0
        bar = tqdm(training.epoch(rng), total=len(training), desc=f"epoch {epoch}", disable=not progress, leave=False)
        for batch in bar:
            batch = batch.to(device)
            prediction = model(batch.vectors, batch.scalars, batch.weights)
            loss = (((prediction - batch.targets) / model.output_std) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch.targets)
            count += len(batch.targets)
            bar.set_postfix(loss=f"{total / count:.3e}")
        scheduler.step()
        errors = relative_errors(model, validation, training.shape, training.spec, device)
        score = mean_error(errors)
        record = {
            "epoch": epoch,
            "train_loss": total / count,
            "validation_rel_l2": score,
            "learning_rate": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        improved = score < best
        best, since_best = (score, 0) if improved else (best, since_best + 1)
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
            numpy_rng=json.dumps(rng.bit_generator.state),
            torch_rng=torch.get_rng_state(),
        )
        checkpoint.save(last, model, **state)
        if improved:
            checkpoint.save(out / "best.pt", model, **state)
        write_metrics(out, history)
        if since_best >= config.patience:
            log.info("early stop: no improvement for %d epochs", since_best)
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
