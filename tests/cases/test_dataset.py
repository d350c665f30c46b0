"""`vcnn dataset`: alpha parsing, a parallel sweep with manifest, resume without recomputation."""

import json
import subprocess
import sys

import pytest

from cases.manifest import load_manifest
from cases.errors import CaseError
from cases.flows import family
from cases.flows.airfoil_transport import AIRFOIL
from cases.flows.hills_transport import HILLS

pytest.importorskip("dolfinx")


def test_parameter_ranges_and_lists():
    assert HILLS.parse(["1.0:1.2:0.05", "0.5,2.5"]) == [0.5, 1.0, 1.05, 1.1, 1.15, 1.2, 2.5]
    with pytest.raises(CaseError, match="alpha must be in"):
        HILLS.parse(["0.1"])
    with pytest.raises(CaseError, match="look like"):
        HILLS.parse(["1:2:0"])
    assert AIRFOIL.parse(["0:30:10", "-5"]) == [-5.0, 0.0, 10.0, 20.0, 30.0]
    assert AIRFOIL.case_name(-5.0) == "aoa_-5.0000" and AIRFOIL.describe(15.0) == "AoA = 15 deg"
    with pytest.raises(CaseError, match="angle of attack"):
        AIRFOIL.parse(["91"])
    with pytest.raises(CaseError, match="unknown case family"):
        family("channel-rans")


def vcnn(*args):
    return subprocess.run([sys.executable, "-m", "cases.cli", *map(str, args)], capture_output=True, text=True, timeout=600)


def test_sweep_resumes_and_refuses_other_settings(tmp_path):
    out = tmp_path / "data"
    first = vcnn("dataset", "hills-transport", "--alphas", "0.8,1.3", "--out", out, "--resolution", "20x12", "--jobs", "2", "-q")
    assert first.returncode == 0, first.stderr
    manifest, kind = load_manifest(out)
    assert kind is HILLS and [c["alpha"] for c in manifest["cases"]] == [0.8, 1.3]
    assert manifest["cases"][0]["mesh"]["cells"] == 2 * 20 * 12
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("cases/*/fields.vtu")}
    second = vcnn("dataset", "hills-transport", "--alphas", "0.8:1.3:0.5", "--out", out, "--resolution", "20x12", "-q")
    assert second.returncode == 0, second.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("cases/*/fields.vtu")} == stamps  # nothing recomputed
    other = vcnn("dataset", "hills-transport", "--alphas", "1.0", "--out", out, "--resolution", "24x12", "-q")
    assert other.returncode == 2 and "resolution" in other.stderr
    airfoil = vcnn("dataset", "airfoil-transport", "--aoas", "10", "--out", out, "-q")
    assert airfoil.returncode == 2 and "holds a dataset of family 'hills-transport'" in airfoil.stderr
    with pytest.raises(CaseError, match="expected 'airfoil-transport'"):
        load_manifest(out, "airfoil-transport")
    (out / "manifest.json").write_text(json.dumps({"family": "channel-rans"}))
    with pytest.raises(CaseError, match="unknown case family"):
        load_manifest(out)
