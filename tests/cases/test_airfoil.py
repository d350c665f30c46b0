"""`vcnn solve airfoil-transport`: a coarse NACA 0012 run end to end, and bad input."""

import numpy as np
import pytest

from cases.manifest import load_manifest
from cases.errors import CaseError
from cases.flows.airfoil_transport import AIRFOIL
from cases.studies.dataset import load_cases
from meshes.fields import MeshFields
from tests.cases.test_cli import ARRAYS, assert_one_line_error, vcnn

pytest.importorskip("dolfinx")

COARSE = ["--radius", "5", "--wall-size", "0.03", "--far-size", "1"]


def test_airfoil_run_writes_fields_without_periods_and_joins_a_dataset(tmp_path):
    data = tmp_path / "data"
    out = data / "cases" / AIRFOIL.case_name(10.0)
    result = vcnn("solve", "airfoil-transport", "--aoa", "10", "--out", out, "--no-figures", "-q", *COARSE)
    assert result.returncode == 0, result.stderr
    fields = MeshFields.read(out)
    assert set(fields.point_data) == ARRAYS and "periods" not in fields.metadata
    assert fields.metadata["case"] == "airfoil-transport" and fields.metadata["config"]["angle_of_attack"] == 10.0
    x, speed = fields.points, np.linalg.norm(fields["velocity"], axis=1)
    far = np.linalg.norm(x - (0.5, 0.0), axis=1) > 4.99
    inflow = far & (x[:, 0] < 0.5 - 1e-9)
    assert np.allclose(fields["velocity"][inflow], (1.0, 0.0))  # the free stream at the inflow
    on_airfoil = fields["wall_distance"] < 1e-12
    assert on_airfoil.sum() > 50 and np.allclose(speed[on_airfoil], 0.0, atol=1e-12)  # no slip
    c = fields["concentration"]
    assert np.all(c[on_airfoil | inflow] == pytest.approx(0.0, abs=1e-12)) and c.max() > 0.3
    assert c.min() > -0.05 * c.max()  # SUPG: small undershoots only

    stamp = (out / "fields.vtu").stat().st_mtime_ns
    swept = vcnn("dataset", "airfoil-transport", "--aoas", "10", "--out", data, "-q")  # already complete
    assert swept.returncode == 0, swept.stderr
    assert (out / "fields.vtu").stat().st_mtime_ns == stamp
    manifest, kind = load_manifest(data, "airfoil-transport")
    (entry,) = manifest["cases"]
    assert kind is AIRFOIL and entry["aoa"] == 10.0 and len(entry["newton_iterations"]["navier_stokes"]) == 3
    assert load_cases(data, [10.0])[0].fields.num_nodes == fields.num_nodes
    with pytest.raises(CaseError, match="lacks aoa = 20"):
        load_cases(data, [20.0])
    refused = vcnn("dataset", "hills-transport", "--alphas", "1", "--out", data)
    assert refused.returncode == 2 and "family 'airfoil-transport'" in refused.stderr


@pytest.mark.parametrize(
    "args, match",
    [
        (["--aoa", "120"], "angle of attack"),
        (["--aoa", "10", "--code", "00x2"], "four digits"),
        (["--aoa", "10", "--reynolds", "-5"], "reynolds"),
        (["--aoa", "10", "--wall-size", "3"], "wall_size"),
    ],
)
def test_bad_airfoil_input_fails_fast_with_one_line(tmp_path, args, match):
    out = tmp_path / "run"
    assert_one_line_error(vcnn("solve", "airfoil-transport", *args, "--out", out), match)
    assert not out.exists()
