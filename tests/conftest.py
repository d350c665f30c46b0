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
