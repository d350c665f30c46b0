"""The parameterized hill geometry against the facts of the reference README (section 1)."""

import numpy as np
import pytest

from meshes import hill_profile


def test_crest_floor_and_period():
    for alpha in (0.5, 1.0, 2.0, 4.0):
        length = hill_profile.hill_length(alpha)
        assert hill_profile.hill_height(np.array([0.0, length]), alpha) == pytest.approx([1.0, 1.0])
        assert hill_profile.hill_height(np.array([length / 2]), alpha)[0] == 0.0
    assert hill_profile.hill_length(1.0) == pytest.approx(9.0)
    # README: Lx = 3.858 alpha + 5.142, rounded to 1e-3
    assert hill_profile.hill_length(3.0) == pytest.approx(3.858 * 3 + 5.142, abs=2e-3)


def test_profile_is_continuous_and_monotone_on_the_windward_flank():
    x = np.linspace(0, 54 / 28, 20001)
    h = hill_profile.hill_height(x, 1.0)
    assert np.max(np.abs(np.diff(h))) < 1e-3  # no jumps at the piece boundaries
    assert np.all(np.diff(h) <= 1e-12)


def test_stretching_keeps_heights_and_floor_length():
    x1 = np.linspace(0, 54 / 28, 50)
    for alpha in (0.5, 2.5):
        assert np.allclose(hill_profile.hill_height(x1 * alpha, alpha), hill_profile.hill_height(x1, 1.0))
        floor = hill_profile.hill_length(alpha) - 2 * alpha * 54 / 28
        assert floor == pytest.approx(9 - 2 * 54 / 28)
    x = np.linspace(0, hill_profile.hill_length(1.0), 101)
    assert np.allclose(hill_profile.hill_height(x, 1.0), hill_profile.hill_height(x[::-1], 1.0))  # symmetric


def test_reference_cell_centres_lie_just_above_the_wall(reference_dir):
    for alpha in (1, 2):
        ref = np.load(reference_dir / "hills_transport" / f"openfoam_alpha{alpha}.npz")
        gap = ref["Cy"] - hill_profile.hill_height(ref["Cx"], alpha)
        assert gap.min() > 0
        assert ref["Cx"].max() < hill_profile.hill_length(alpha)
        assert ref["Cx"].min() + ref["Cx"].max() == pytest.approx(hill_profile.hill_length(alpha), abs=1e-4)


@pytest.mark.parametrize("alpha", [0.49, 4.01, float("nan")])
def test_alpha_out_of_range_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha must be in"):
        hill_profile.check_alpha(alpha)
