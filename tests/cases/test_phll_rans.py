"""`vcnn solve phll-rans`: a Closure Challenge hill of any slope, period and height, bad names."""

import json

import numpy as np
import pytest

from meshes.fields import MeshFields
from tests.cases.test_cli import assert_one_line_error, vcnn

pytest.importorskip("dolfinx")


def test_a_shorter_lower_hill_solves_on_its_own_geometry(tmp_path, reference_dir):
    out = tmp_path / "run"
    result = vcnn("solve", "phll-rans", "--geometry", "alpha_10_6000_2024",
                  "--resolution", "24x24", "--wall-ratio", "20", "--no-figures", "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    fields = MeshFields.read(out)
    meta = json.loads((out / "meta.json").read_text())["metadata"]
    assert meta["case"] == "phll-rans" and meta["config"]["geometry"] == "alpha_10_6000_2024" and meta["config"]["alpha"] == 1.0
    x, y = fields.points.T
    assert x.min() == pytest.approx(0.0, abs=1e-12) and x.max() == pytest.approx(6.0, abs=1e-12)
    assert y.max() == pytest.approx(2.024, abs=1e-12)
    assert fields.metadata["periods"] == [[6.0, 0.0]]
    assert meta["validation"]["dns"] is None  # the DNS facts are of the standard hills only
    assert meta["validation"]["reattachment"] is not None and np.isfinite(fields["velocity"]).all()
    # SST, started from k-omega on the same hill at the continuation height 3.036 (it is lower)
    continued = meta["statistics"]["continued_from"]
    assert continued["model"] == "k-omega" and continued["geometry"] == "alpha_10_6000_3036" and continued["iterations"] > 0
    assert meta["config"]["model"] == "k-omega-sst" and "omega" in fields.point_data
    assert meta["config"]["dt"] == 0.05 and meta["config"]["momentum_pseudo_time"] is False  # the case file's, as given
    # the SST table names the start: iterations (those of the start model, and its height)
    from cases.studies.score import sst_table

    started = f"| {meta['statistics']['rans_iterations']} ({continued['iterations']} k-omega at 3036) |"
    assert started in sst_table([out], reference_dir / "closure_challenge" / "PHLL29")


def test_bad_geometry_names_are_refused_before_any_work(tmp_path):
    out = tmp_path / "never"
    cases = [
        (("--geometry", "alpha_1_9000_3036"), "a hill geometry is named alpha_AA or alpha_AA_LLLLL_HHHH"),
        (("--geometry", "alpha_05_1007_4048"), "needs a period >= 1.9286"),
        (("--geometry", "alpha_10", "--model", "k-omega-ss"), "unknown turbulence model"),
        (("--geometry", "alpha_10", "--start-model", "k-omeg"), "start_model: unknown turbulence model 'k-omeg'"),
        (("--geometry", "alpha_10", "--anderson", "-1"), "Anderson depth must be 0 (off) or more, got -1"),
    ]
    for args, match in cases:
        assert_one_line_error(vcnn("solve", "phll-rans", *args, "--out", out), match)
        assert not out.exists()


def test_a_turned_solve_cannot_start_from_another_model():
    from cases.errors import CaseError
    from cases.flows import phll_rans

    with pytest.raises(CaseError, match="turned phll-rans solve"):
        phll_rans.configure(geometry="alpha_10", rotate=30.0)
    assert phll_rans.configure(geometry="alpha_10", rotate=30.0, start_model="").rotate == 30.0
    assert phll_rans.configure(geometry="alpha_10", rotate=30.0, start_model="rest").start_model == ""


def test_anderson_mixing_is_for_the_solve_and_not_its_start():
    """`--anderson M` mixes the SST loop (at 216 x 144 it converged mixed over 20 where relaxed it
    cycled); the k-omega solve it starts from stays relaxed (mixed it took 158 iterations, not 63)."""
    from cases.cli import parser
    from cases.flows import phll_rans

    args = parser().parse_args(["solve", "phll-rans", "--geometry", "alpha_10_6000_2024", "--anderson", "20", "--out", "x"])
    config = args.flow.configure(**args.flow.values(args))
    assert config.anderson == 20 and config.rans_parameters.anderson == 20
    start = phll_rans.start_config(config)
    assert (start.model, start.geometry, start.anderson, start.rans_parameters.anderson) == ("k-omega", "alpha_10_6000_3036", 0, 0)
    assert phll_rans.configure(geometry="alpha_10").anderson == 0  # the case file's: off


def test_a_solve_from_rest_takes_the_case_files_pseudo_time_cap(tmp_path):
    """`dt_max` in `[rans]` caps the pseudo-time step. With `momentum_pseudo_time` and a cap of 1,
    SST from rest converged on the 96-across meshes of alpha_05_10071_2024, alpha_05_4071_3036 and
    alpha_15_7929_2024, where the plain loop from rest diverged (docs/results.md); here the cap's
    way from the case file into the loop, on a coarse mesh."""
    from cases.flows import phll_rans

    text = (phll_rans.DEFAULTS.read_text().replace('start_model = "k-omega"', 'start_model = "rest"')
            .replace("dt_growth = 1.3", "dt_growth = 1.3\ndt_max = 1.0\nmomentum_pseudo_time = true"))
    (tmp_path / "rest.toml").write_text(text)
    out = tmp_path / "run"
    result = vcnn("solve", "phll-rans", "--geometry", "alpha_10_6000_2024", "--config", tmp_path / "rest.toml",
                  "--resolution", "24x24", "--wall-ratio", "20", "--no-figures", "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    meta = json.loads((out / "meta.json").read_text())["metadata"]
    steps = [record["dt"] for record in meta["statistics"]["history"]]
    assert meta["config"]["dt_max"] == 1.0 and meta["config"]["start_model"] == "" and "continued_from" not in meta["statistics"]
    assert max(steps) == 1.0 and steps[0] == 0.05  # grown from the file's dt and held at the cap
    assert phll_rans.configure(geometry="alpha_10").rans_parameters.dt_max == 1e6  # the shipped file: uncapped
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("dt_max = 1.0", "dt_max = 0.01"))
    assert_one_line_error(vcnn("solve", "phll-rans", "--geometry", "alpha_10", "--config", bad, "--out", tmp_path / "no"), "dt_max >= dt")


def test_a_divergence_from_rest_names_the_starts_that_converge(monkeypatch):
    """From rest the steady loop diverged on the low and the short hills; the error then says what
    converged there (a start model, or capped pseudo-time steps). A stall, or a solve already in
    pseudo-time, keeps its own message."""
    from cases.flows import hills_rans, phll_rans
    from solvers.errors import RansFailure

    failure = {}

    def fails(*args, **kwargs):
        raise RansFailure("RANS diverged at iteration 11: navier-stokes: Newton diverged", [], [], diagnosis=failure.get("diagnosis"))

    monkeypatch.setattr(hills_rans, "solve", fails)
    with pytest.raises(RansFailure, match="--start-model k-omega") as raised:
        phll_rans.solve(phll_rans.configure(geometry="alpha_05_10071_2024", start_model="rest"))
    assert str(raised.value).startswith("RANS diverged at iteration 11") and "dt_max = 1" in str(raised.value)
    for config, diagnosis in ((phll_rans.configure(geometry="alpha_05_10071_2024", start_model="rest"), {"period": 2}),
                              (phll_rans.configure(geometry="alpha_05_10071_2024", start_model="rest", momentum_pseudo_time=True), None)):
        failure["diagnosis"] = diagnosis
        with pytest.raises(RansFailure) as raised:
            phll_rans.solve(config)
        assert phll_rans.REST_HINT not in str(raised.value)
