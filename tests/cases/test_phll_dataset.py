"""`vcnn dataset phll`: benchmark hill names, and a case holding our SST, the benchmark's SST and the LES."""

import json

import numpy as np
import pytest

from cases.errors import CaseError
from cases.flows.phll_rans import PHLL
from meshes.fields import MeshFields
from tests.cases.test_cli import assert_one_line_error, vcnn

TEST_CASES = ("alpha_15_13929_4048", "alpha_15_13929_2024", "alpha_05_4071_4048", "alpha_05_4071_2024")


def test_names_are_checked_and_spelt_as_the_benchmark_spells_them():
    assert PHLL.parse(["alpha_10_6000_4048, alpha_10", "alpha_05_10071_4048,alpha_10_9000_3036"]) == [
        "alpha_05_10071_4048", "alpha_10_6000_4048", "alpha_10_9000_3036",  # alpha_10 is the standard hill
    ]
    assert PHLL.case_name("alpha_10_6000_4048") == "alpha_10_6000_4048"
    assert PHLL.option == "--geometries"
    # the memory limit is checked on the longest hill, not on the last name in alphabetical order
    assert PHLL.largest(["alpha_15_13929_4048", "alpha_15_7929_4048"]) == "alpha_15_13929_4048"


@pytest.mark.parametrize("spec, match", [
    ("alpha_1_9000_3036", "a hill geometry is named alpha_AA or alpha_AA_LLLLL_HHHH"),
    ("alpha_10_6000_4048,alpha_05_1007_4048", "needs a period >= 1.9286"),
    ("alpha_10_6000_0900", "the domain height must lie above the hill crest"),
    (" , ", "no geometry names given"),
])
def test_bad_names_are_one_line_errors(spec, match):
    with pytest.raises(CaseError, match=match) as error:
        PHLL.parse([spec])
    assert "\n" not in str(error.value)


def test_bad_names_are_refused_by_the_command_before_any_work(tmp_path):
    out = tmp_path / "never"
    assert_one_line_error(vcnn("dataset", "phll", "--geometries", "alpha_10_6000_4048,hill_3", "--out", out), "a hill geometry is named")
    assert not out.exists()


def test_all_is_the_shared_cases_and_never_a_test_case(reference_dir):
    names = PHLL.parse(["all"])
    assert len(names) == 23 and "alpha_05_10071_4048" in names and not set(TEST_CASES) & set(names)


def test_a_test_case_is_accepted_and_holds_our_sst_only(tmp_path):
    from cases.studies.phll_dataset import add_reference_fields

    assert PHLL.parse(["alpha_05_4071_2024"]) == ["alpha_05_4071_2024"]
    phll29 = tmp_path / "PHLL29"
    (phll29 / "alpha_05_4071_2024" / "0").mkdir(parents=True)
    (phll29 / "alpha_05_4071_2024" / "0" / "U_LES").write_text("not read")  # were it read, the reader would fail
    mesh = MeshFields(np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 2.0]]), np.array([[0, 1, 2]]), "triangle", np.ones(3), {"wall_distance": np.zeros(3)}, {})
    record = add_reference_fields(mesh, "alpha_05_4071_2024", phll29)
    assert record["les"] is False and record["benchmark_sst"] is False and "test case" in record["missing"]
    assert set(mesh.point_data) == {"wall_distance"} and mesh.metadata["reference"] == record
    assert not add_reference_fields(mesh, "alpha_10_6000_3036", phll29)["les"]  # not in this PHLL29


def test_a_case_holds_our_sst_the_benchmark_s_sst_and_the_les_on_one_mesh(tmp_path, reference_dir):
    pytest.importorskip("dolfinx")
    out = tmp_path / "phll"
    result = vcnn("dataset", "phll", "--geometries", "alpha_10_6000_4048", "--resolution", "12x12", "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    (entry,) = manifest["cases"]
    assert manifest["family"] == "phll" and entry["geometry"] == "alpha_10_6000_4048" and entry["les"] and entry["benchmark_sst"]
    fields = MeshFields.read(out / entry["path"])
    assert fields.metadata["config"]["model"] == "k-omega-sst" and fields.metadata["reference"]["les"]
    shapes = {name: values.shape[1:] for name, values in fields.point_data.items()}
    for name, shape in {"velocity": (2,), "velocity_sst_benchmark": (2,), "velocity_les": (2,), "k_les": (), "k_sst_benchmark": (),
                        "nu_t_sst_benchmark": (), "reynolds_stress_les": (2, 2)}.items():
        assert shapes[name] == shape and np.isfinite(fields[name]).all(), name
    stress = fields["reynolds_stress_les"]
    assert np.allclose(stress, stress.transpose(0, 2, 1))
    wall = fields["wall_distance"] < 1e-12
    assert (fields["velocity_les"][wall] == 0).all() and (fields["k_sst_benchmark"][wall] == 0).all()  # no slip

    def bulk_difference(a, b):  # mean |a - b| over the mean |b|, a hill height off the walls
        bulk = fields["wall_distance"] > 0.3
        return np.linalg.norm(fields[a] - fields[b], axis=1)[bulk].mean() / np.linalg.norm(fields[b], axis=1)[bulk].mean()

    assert bulk_difference("velocity_les", "velocity_sst_benchmark") < 0.1  # 0.041 measured (both the benchmark's, interpolated alike)
    assert bulk_difference("velocity", "velocity_sst_benchmark") < 0.25  # 0.126 at 12 x 12: ours is coarse
