"""cases.studies.score: the benchmark's metric, its CSV, the score log, and the SST baseline of a shared case.

The test cases' ground truth is touched only through the package's scorer (a zero field scores 1)."""

import json

import numpy as np
import pytest

pytest.importorskip("closure_challenge")
pytest.importorskip("foamlib")

from cases.errors import CaseError  # noqa: E402
from cases.studies.score import (  # noqa: E402
    LOG_NAME,
    benchmark_test_cases,
    run_case,
    scaled_mae,
    score_solution,
    score_test_case,
    shared_indices,
)
from meshes.fields import MeshFields  # noqa: E402


def uniform_flow(velocity):
    """A coarse box over every hill domain carrying one velocity."""
    points = np.array([[-1.0, -1.0], [20.0, -1.0], [20.0, 5.0], [-1.0, 5.0]])
    return MeshFields(points, [[0, 1, 2], [0, 2, 3]], point_data={"U": np.tile(velocity, (4, 1))})


def test_metric_known_answers():
    truth = np.random.default_rng(0).normal(size=(50, 3))
    assert scaled_mae(0.9 * truth, truth) == pytest.approx(0.1)
    assert scaled_mae(np.zeros_like(truth), truth) == pytest.approx(1.0)
    shift = np.array([[3.0, 4.0]])
    assert scaled_mae(np.ones((2, 2)) + shift, np.ones((2, 2))) == pytest.approx(5.0 / np.sqrt(2))
    with pytest.raises(CaseError, match="shape"):
        scaled_mae(truth[:, :2], truth)


def test_a_run_is_named_as_the_benchmark_names_its_hill():
    def run(case, **config):
        return MeshFields(np.zeros((3, 2)), [[0, 1, 2]], metadata={"case": case, "config": config})

    assert run_case(run("phll-rans", geometry="alpha_15_13929_4048", alpha=1.5)) == "alpha_15_13929_4048"
    assert run_case(run("hills-rans", alpha=0.5)) == "alpha_05_7071_3036"
    assert run_case(run("couple", alpha=1.0)) == "alpha_10_9000_3036"
    with pytest.raises(CaseError, match="not a periodic-hill RANS solution"):
        run_case(run("hills-transport", alpha=1.0))


def test_test_case_csv_layout_score_and_log(tmp_path):
    cases = benchmark_test_cases()
    assert cases == ["alpha_15_13929_4048", "alpha_15_13929_2024", "alpha_05_4071_4048", "alpha_05_4071_2024"]
    case = cases[0]
    assert score_test_case(uniform_flow([0.0, 0.0]), case, tmp_path, source="zero") == pytest.approx(1.0)
    score_test_case(uniform_flow([0.5, -0.25]), case, tmp_path, source="uniform")
    rows = np.loadtxt(tmp_path / f"{case}.csv", delimiter=",")
    assert rows.shape == (1000, 3) and np.allclose(rows, [0.5, -0.25, 0.0], rtol=0, atol=1e-14)
    log = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    assert [(e["case"], e["source"], e["test_case"]) for e in log] == [(case, "zero", True), (case, "uniform", True)]
    assert log[0]["score"] == pytest.approx(1.0) and log[0]["package"] == "closure-challenge 0.3.1"
    assert score_solution(uniform_flow([0.0, 0.0]), cases[3], tmp_path) == pytest.approx(1.0)
    with pytest.raises(CaseError, match="not a Closure Challenge periodic-hill test case"):
        score_test_case(uniform_flow([0.0, 0.0]), "alpha_10_9000_3036", tmp_path)
    with pytest.raises(CaseError, match="needs the PHLL29 directory"):
        score_solution(uniform_flow([0.0, 0.0]), "alpha_10_9000_3036", tmp_path)
    with pytest.raises(CaseError, match="no velocity vector 'velocity'"):
        score_test_case(uniform_flow([0.0, 0.0]), case, tmp_path, velocity="velocity")


def test_sst_score_of_a_shared_case_by_two_routes(reference_dir, tmp_path):
    """Through read_case and interpolation at the cell centres, and straight from the files' arrays."""
    import foamlib

    from meshes.openfoam import read_case

    case = reference_dir / "closure_challenge" / "PHLL29" / "alpha_10_9000_3036"
    score = score_solution(read_case(case, fields=["U"]), case.name, tmp_path, phll29_dir=case.parent, source="SST")
    chosen = np.random.default_rng(0).choice(15600, 1000, replace=False)
    assert np.array_equal(shared_indices(15600), np.sort(chosen))
    sst, les = (np.asarray(foamlib.FoamFieldFile(case / f).internal_field)[chosen] for f in ("20000/U", "0/U_LES"))
    direct = np.linalg.norm(sst - les, axis=1).mean() / np.linalg.norm(les, axis=1).mean()
    assert score == pytest.approx(direct, rel=1e-9)
    assert score == pytest.approx(0.1225, abs=5e-5)  # the baseline table's entry
    (entry,) = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    assert entry["case"] == case.name and not entry["test_case"] and entry["points"] == "1000 cell centres, seed 0"


def test_import_and_score_from_the_command_line(tmp_path, reference_dir):
    from tests.cases.test_cli import assert_one_line_error, vcnn

    case = reference_dir / "closure_challenge" / "PHLL29" / "alpha_10_9000_3036"
    out = tmp_path / "imported"
    result = vcnn("import", "openfoam", case, "--fields", "U_LES,U", "--out", out)
    assert result.returncode == 0, result.stderr
    fields = MeshFields.read(out)
    assert fields.num_nodes == 15600 and fields.kind("U_LES") == "vector" and fields.metadata["periods"] == [[9.0, 0.0]]
    assert_one_line_error(vcnn("import", "openfoam", tmp_path / "none", "--out", tmp_path / "x"), "does not exist")
    assert_one_line_error(vcnn("import", "openfoam", case, "--fields", "nut_LES", "--out", tmp_path / "x"), "nut_LES")
    # The benchmark's SST relabelled as one of our hills-rans solutions scores as the baseline does.
    fields.point_data["velocity"] = fields["U"]
    fields.metadata.update(case="hills-rans", config={"alpha": 1.0})
    fields.write(tmp_path / "run")
    result = vcnn("score", "closure-challenge", tmp_path / "run", "--phll29", case.parent)
    assert result.returncode == 0, result.stderr
    assert "| alpha_10_9000_3036 | 0.1225 |" in result.stdout
    assert json.loads((tmp_path / "run" / LOG_NAME).read_text().splitlines()[0])["score"] == pytest.approx(0.1225, abs=5e-5)
    assert_one_line_error(vcnn("score", "closure-challenge", out), "not a periodic-hill RANS solution")
    # Against the benchmark's own SST instead of the LES: the same field scores 0.
    result = vcnn("score", "closure-challenge", tmp_path / "run", "--phll29", case.parent, "--against", "U", "--out", tmp_path / "s")
    assert result.returncode == 0 and "| alpha_10_9000_3036 | 0.0000 |" in result.stdout, result.stderr


def test_a_run_without_les_or_a_missing_phll29_is_one_line_before_any_score(tmp_path, reference_dir):
    from tests.cases.test_cli import assert_one_line_error, vcnn

    phll29 = reference_dir / "closure_challenge" / "PHLL29"
    for name, alpha in (("shared", 1.0), ("no_les", 1.125)):  # alpha_10_9000_3036 is shared; 1.125's hill is not
        run = uniform_flow([1.0, 0.0])
        run.point_data["velocity"] = run.point_data.pop("U")
        run.metadata.update(case="hills-rans", config={"alpha": alpha})
        run.write(tmp_path / name)
    result = vcnn("score", "closure-challenge", tmp_path / "shared", tmp_path / "no_les", "--phll29", phll29)
    assert_one_line_error(result, "alpha_1125_9482_3036 is neither a test case nor one of the 23 shared cases")
    assert not (tmp_path / "shared" / LOG_NAME).exists()  # the first run was not scored either
    assert_one_line_error(vcnn("score", "closure-challenge", tmp_path / "shared", "--phll29", tmp_path / "nowhere"),
                          "the benchmark's shared cases are not at")
    assert_one_line_error(vcnn("propagate", "--case", "alpha_05_10071_2024", "--sst", "benchmark", "--out", tmp_path / "p", "--phll29", tmp_path / "nowhere"),
                          "give --phll29")
    assert not (tmp_path / "p").exists()
