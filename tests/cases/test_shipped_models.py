"""Every model in the repository's models/: plain-data checkpoint, a complete card that names these
very weights, and the symmetry its network declares (float64), checked on random clouds."""

import re

import numpy as np
import pytest
import torch

from cases.models import models_dir, shipped
from vcnn.checkpoint import fingerprint, load_trained
from vcnn.symmetry import check_cloud_model

MODELS = shipped(models_dir())
SECTIONS = ["## What it reads and predicts", "## Data", "## Training", "## Metrics", "## Limits"]


def test_the_repository_ships_models():
    assert {"phll-les", "phll-les-stress", "phll-les-basis", "hills-closure-k-omega", "hills-closure-one-equation", "hills-transport"} <= set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_shipped_model_is_plain_data_with_a_card_for_its_weights(name):
    path = MODELS[name]
    torch.load(path, weights_only=True)  # raises on anything but plain data and tensors
    card = path.with_suffix(".md").read_text()
    assert card.startswith(f"# {name}\n")
    assert [s for s in SECTIONS if s not in card] == []
    trained = load_trained(path)
    named = re.search(r"best_weights_sha256\s+([0-9a-f]{64})", card)
    assert named and named.group(1) == fingerprint(trained.model)
    for array in trained.spec.inputs():
        assert f"`{array}`" in card  # the card says what the network reads


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_shipped_model_keeps_its_declared_symmetry(name):
    config = load_trained(MODELS[name]).model.config
    rng = np.random.default_rng(1)
    clouds, members = 4, 30
    vectors = rng.normal(size=(clouds, members, config.n_vectors, config.dim))
    scalars = np.abs(rng.normal(size=(clouds, members, config.n_scalars)))
    weights = rng.random((clouds, members))
    report = check_cloud_model(load_trained(MODELS[name]).model, vectors, scalars, weights)
    assert report.worst() < 1e-10, report.deviations
