"""Our k-omega SST on the periodic hill against the Closure Challenge's OpenFOAM SST (issue 16).

The benchmark's metric: the mean over its cell centres of |U_ours - U_bench| (2-D velocity)
divided by the mean of |U_bench|, with our node velocity interpolated linearly to the centres.
"""

import json

import pytest

from tests.cases.test_cli import vcnn

pytest.importorskip("dolfinx")
pytest.importorskip("foamlib")

CASE = "alpha_10_9000_3036"  # alpha 1, the standard length and height


@pytest.mark.slow
def test_alpha_1_sst_matches_the_benchmark_sst(tmp_path, reference_dir):
    from cases.studies.les_targets import first_row_reattachment
    from cases.studies.score import scaled_mae
    from meshes.fields import MeshFields
    from meshes.interpolate import interpolate
    from meshes.openfoam import read_case

    # SST from rest, as this hill converges (the case file's k-omega start doubles the solve; it is
    # tested in test_phll_rans.py), so that the suite's longest test stays well inside its timeout
    out = tmp_path / "sst"
    result = vcnn("solve", "phll-rans", "--geometry", CASE, "--start-model", "rest", "--no-figures", "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    bench = read_case(reference_dir / "closure_challenge" / "PHLL29" / CASE, fields=["U"])
    fields = MeshFields.read(out)
    score = scaled_mae(interpolate(fields, fields["velocity"], bench.points), bench["U"])
    # Measured (96 x 96 cells, first node at y+ <= 0.61, 59 iterations): 0.0151; issue 16 asks <= 0.02.
    assert score < 0.017
    # Reattachment: ours from the wall shear, the benchmark's from the sign of u_x in its first row
    # of cells (120 a row): measured 7.70 and 7.67.
    meta = json.loads((out / "meta.json").read_text())["metadata"]
    assert "continued_from" not in meta["statistics"]
    assert meta["validation"]["reattachment"] == pytest.approx(first_row_reattachment(bench, bench["U"]), abs=0.1)
