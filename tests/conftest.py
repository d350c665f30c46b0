"""Shared test fixtures: the reference data directory and FEniCSx availability."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE}")
    return REFERENCE


def convergence_orders(sizes, errors):
    """Observed orders log(e_i / e_{i+1}) / log(h_i / h_{i+1})."""
    import numpy as np

    sizes, errors = np.asarray(sizes, float), np.asarray(errors, float)
    return np.log(errors[:-1] / errors[1:]) / np.log(sizes[:-1] / sizes[1:])


def pytest_collection_modifyitems(items):
    """Files holding a `slow` test first: `make test` hands whole files to its two workers in this
    order (`--no-loadscope-reorder`), and a 4-minute solve handed out last leaves one worker idle
    while it runs."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
