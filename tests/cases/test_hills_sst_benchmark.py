"""Our k-omega SST on the periodic hill against the Closure Challenge's OpenFOAM SST (issue 16).

The benchmark's metric: the mean over its cell centres of |U_ours - U_bench| (2-D velocity)
divided by the mean of |U_bench|, with our node velocity interpolated linearly to the centres.
"""

import json
import re

import numpy as np
import pytest

from tests.cases.test_cli import vcnn

pytest.importorskip("dolfinx")

CASE = "alpha_10_9000_3036"  # alpha 1, the standard length and height: the project's hill mesh


def read_internal_field(path) -> np.ndarray:
    """An OpenFOAM ASCII `internalField nonuniform List<...>`: (N,) scalars or (N, 3) vectors."""
    text = path.read_text()
    text = text[text.index("internalField") :]
    header = re.search(r"\n(\d+)\s*\n\(", text)
    count = int(header.group(1))
    body = text[header.end() :]
    values = np.array(body[: body.index("\n)")].replace("(", " ").replace(")", " ").split(), float)
    return values.reshape(count, -1) if values.size != count else values


@pytest.mark.slow
def test_alpha_1_sst_matches_the_benchmark_sst(tmp_path, reference_dir):
    from cases.hills_rans import wall_crossings
    from cases.pipeline import interpolate
    from meshes.fields import MeshFields

    out = tmp_path / "sst"
    result = vcnn("solve", "hills-rans", "--alpha", "1", "--model", "k-omega-sst", "--no-figures", "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    case = reference_dir / "closure_challenge" / "PHLL29" / CASE
    centres = read_internal_field(case / "0" / "C")[:, :2]
    bench = read_internal_field(case / "20000" / "U")[:, :2]
    fields = MeshFields.read(out)
    ours = np.stack([interpolate(fields, fields["velocity"][:, i], centres) for i in range(2)], axis=1)
    score = np.linalg.norm(ours - bench, axis=1).mean() / np.linalg.norm(bench, axis=1).mean()
    # Measured (96 x 96 cells, first node at y+ <= 0.61, 59 iterations): 0.0151; issue 16 asks <= 0.02.
    assert score < 0.017
    # Reattachment: ours from the wall shear, the benchmark's from the sign of u_x in its first row
    # of cells (120 a row): measured 7.70 and 7.67.
    meta = json.loads((out / "meta.json").read_text())["metadata"]
    row = centres[:120]
    theirs = wall_crossings(row[:, 0], bench[:120, 0], fields.points[:, 0].max())["reattachment"]
    assert meta["validation"]["reattachment"] == pytest.approx(theirs, abs=0.1)
