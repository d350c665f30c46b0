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


def test_the_benchmarks_marginal_reattachment_has_its_recirculation_end_beside_it(reference_dir):
    """On alpha_05_10071_2024 the benchmark's first row of u_x turns positive between x 7.83 and 8.61
    (at most 0.0015, 0.2 % of the bulk velocity) and separates again before the next hill: its
    longest bubble ends at 7.83, its recirculation at 9.40, where our SST's single bubble ends
    (9.41). The SST table shows both (docs/results.md)."""
    from cases.studies.les_targets import benchmark_sst

    bench = benchmark_sst(reference_dir / "closure_challenge" / "PHLL29" / "alpha_05_10071_2024")
    validation = bench.metadata["validation"]
    assert validation["separation"] == pytest.approx(1.22, abs=0.01)
    assert validation["reattachment"] == pytest.approx(7.83, abs=0.01)
    assert validation["recirculation_end"] == pytest.approx(9.40, abs=0.01)
