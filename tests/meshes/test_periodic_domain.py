"""gmsh meshes of the periodic hill: size, tags, grading, periodic matching, files."""

import numpy as np
import pytest

from meshes.errors import MeshError
from meshes.periodic_domain import TAGS, Resolution

pytest.importorskip("dolfinx")
pytest.importorskip("gmsh")

from meshes.shapes import periodic_hill  # noqa: E402


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_hill_mesh_size_tags_and_periodic_nodes(alpha, tmp_path):
    res = Resolution(40, 20, 8.0)
    domain = periodic_hill(alpha, res, msh_path=tmp_path / "hill.msh")
    mesh = domain.mesh
    assert mesh.topology.index_map(2).size_global == 2 * 40 * 20
    values, counts = np.unique(domain.facet_tags.values, return_counts=True)
    assert dict(zip(values, counts)) == {TAGS["bottom"]: 40, TAGS["top"]: 40, TAGS["left"]: 20, TAGS["right"]: 20}
    x = mesh.geometry.x
    left = np.sort(x[np.isclose(x[:, 0], 0.0), 1])
    right = np.sort(x[np.isclose(x[:, 0], domain.length), 1])
    assert len(left) == 21 and np.array_equal(left, right)
    heights = np.diff(left)
    assert heights.max() / heights.min() == pytest.approx(8.0, rel=1e-6)
    assert (tmp_path / "hill.msh").stat().st_size > 0
    domain.write_xdmf(tmp_path / "hill.xdmf")
    assert (tmp_path / "hill.xdmf").is_file() and (tmp_path / "hill.h5").is_file()


@pytest.mark.parametrize("text", ["0x10", "10x1", "ax3", "10", "-5x10"])
def test_bad_resolution_is_refused(text):
    with pytest.raises(MeshError):
        Resolution.parse(text)


def test_bad_alpha_is_refused():
    with pytest.raises(MeshError, match="alpha must be in"):
        periodic_hill(5.0, Resolution(10, 10))


def test_building_a_mesh_leaves_the_openmp_thread_count_as_it_was():
    """gmsh's initialize sets the process's OpenMP threads to 1, and its finalize keeps that: the
    network of a coupled solve (torch) then ran on one thread. `dolfinx_mesh` puts it back."""
    from meshes.gmsh_io import _openmp

    openmp = _openmp()
    if openmp is None:
        pytest.skip("no libgomp in this process")
    before = openmp.omp_get_max_threads()
    openmp.omp_set_num_threads(3)
    try:
        periodic_hill(1.0, Resolution(8, 4, 2.0))
        assert openmp.omp_get_max_threads() == 3
    finally:
        openmp.omp_set_num_threads(before)
