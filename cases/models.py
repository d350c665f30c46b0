"""Shipped trained networks: `models/NAME.pt` with its model card `models/NAME.md`, found by name.

Every command that takes a checkpoint (`--model`) takes a shipped model's name or a path
(`resolve`). The directory is the repository's `models/`, or the one the environment variable
`VCNN_MODELS` names (tests, a private collection). What a card holds: docs/model-card.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from cases.errors import CaseError

MODELS_ENV = "VCNN_MODELS"
SUFFIX = ".pt"


def models_dir() -> Path:
    """Where the shipped models are: $VCNN_MODELS, else the repository's models/."""
    return Path(os.environ.get(MODELS_ENV) or Path(__file__).resolve().parents[1] / "models")


def shipped(directory: Path | None = None) -> dict[str, Path]:
    """{name: checkpoint} of the models in `directory` (default `models_dir()`), sorted by name."""
    directory = models_dir() if directory is None else Path(directory)
    return {path.stem: path for path in sorted(directory.glob(f"*{SUFFIX}"))} if directory.is_dir() else {}


def resolve(value: str | Path, directory: Path | None = None) -> Path:
    """The checkpoint `value` means: a file, a path (it has a folder or a suffix), or else the name
    of a shipped model. An unknown name is refused with one line that lists the shipped ones."""
    path = Path(value)
    if path.is_file() or len(path.parts) > 1 or path.suffix:
        return path
    models = shipped(directory)
    if path.name in models:
        return models[path.name]
    if path.exists():
        return path  # a directory: the loader says so
    where = models_dir() if directory is None else directory
    raise CaseError(f"unknown model {str(value)!r}: no such checkpoint file, and no shipped model of that name (in {where}: {', '.join(models) or 'none'})")


def describe(path: Path) -> dict:
    """What `vcnn models` shows of a checkpoint: family, targets, the arrays it reads, size, card."""
    from vcnn.checkpoint import load_trained

    trained = load_trained(path)
    card = path.with_suffix(".md")
    return {
        "name": path.stem,
        "family": trained.state.get("family"),
        "dim": trained.model.config.dim,
        "network": type(trained.model).__name__,
        "targets": trained.targets,
        "reads": trained.spec.inputs(),
        "size_bytes": path.stat().st_size,
        "checkpoint": str(path),
        "card": str(card) if card.is_file() else None,
    }


def catalogue(directory: Path | None = None) -> list[dict]:
    """`describe` of every shipped model; a damaged one is refused with one line (VcnnError)."""
    return [describe(path) for path in shipped(directory).values()]


def table(models: list[dict]) -> str:
    """The catalogue as a Markdown table."""
    rows = ["| name | family | targets | reads | size | card |", "|---|---|---|---|---|---|"]
    for m in models:
        reads = ", ".join(f"{name} ({kind})" for name, kind in m["reads"].items())
        rows.append(f"| {m['name']} | {m['family']} | {', '.join(m['targets'])} | {reads} | {m['size_bytes'] / 1024:.0f} KiB | {m['card'] or 'missing'} |")
    return "\n".join(rows)
