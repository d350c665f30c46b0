"""`vcnn show`: pictures of fields drawn by pyvista off-screen in a process of their own.

The mesh: the unit square in 20 x 20 cells (triangles), a field `step` that is 0 on the left
half and 1 on the right, and a rotating `velocity`. A flat mesh is drawn WIDTH pixels wide from
MARGIN pixels off the left edge, so the left half of the square lies left of 25 % of the picture
(1510 pixels wide) and its right half right of 60 %.
"""

import json
import subprocess
import sys

import meshio
import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.image import imread

from cases import cli
from cases.cli import show as show_command
from cases.errors import CaseError
from cases.show import MARGIN, TITLE, WIDTH, show
from meshes.fields import MeshFields

N = 20


def square():
    x, y = (grid.ravel() for grid in np.meshgrid(np.linspace(0, 1, N + 1), np.linspace(0, 1, N + 1)))
    corner = np.arange((N + 1) ** 2).reshape(N + 1, N + 1)[:-1, :-1].ravel()
    triangles = np.r_[np.c_[corner, corner + 1, corner + N + 2], np.c_[corner, corner + N + 2, corner + N + 1]]
    step = (x > 0.5).astype(float)
    velocity = np.c_[0.5 - y, x - 0.5]
    return np.c_[x, y], triangles, step, velocity


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as the solvers write one (fields.vtu + meta.json)."""
    points, triangles, step, velocity = square()
    return MeshFields(points, triangles, point_data={"step": step, "velocity": velocity}).write(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def mesh_file(tmp_path_factory):
    """A plain meshio VTU file (no meta.json)."""
    points, triangles, step, _ = square()
    path = tmp_path_factory.mktemp("file") / "square.vtu"
    meshio.write(path, meshio.Mesh(np.c_[points, np.zeros(len(points))], [("triangle", triangles)], point_data={"step": step}))
    return path


def picture(path):
    image = imread(path)[..., :3]
    assert image.shape == (WIDTH + 2 * MARGIN + TITLE, WIDTH + 2 * MARGIN + 230, 3)
    return image


def colour_at(image, fraction_x):
    """The colour at `fraction_x` of the picture's width, half way down the mesh."""
    row = TITLE + MARGIN + WIDTH // 2
    return image[row, int(fraction_x * image.shape[1])]


def assert_near(colour, expected):
    assert np.abs(colour - np.asarray(expected)[:3]).max() < 0.03, (colour, expected)


def test_a_field_is_drawn_in_its_colours(mesh_file, tmp_path):
    out = tmp_path / "step.png"
    report = show(mesh_file, field="step", out=out)
    assert report["out"] == str(out) and report["range"] == [0.0, 1.0]
    image = picture(out)
    assert image.std() > 0.1  # not blank
    assert_near(colour_at(image, 0.15), colormaps["viridis"](0.0))  # left half: 0
    assert_near(colour_at(image, 0.70), colormaps["viridis"](1.0))  # right half: 1


def test_default_field_and_picture_of_a_run_directory(run_dir):
    report = show(run_dir)
    assert report["field"] == "step"  # the first point array
    assert report["arrays"] == ["step", "velocity", "node_weight"]
    assert report["out"] == str(run_dir / "show_step.png")
    assert_near(colour_at(picture(run_dir / "show_step.png"), 0.70), colormaps["viridis"](1.0))


def test_streamlines_of_a_vector_field(run_dir, tmp_path):
    plain, lines = tmp_path / "plain.png", tmp_path / "lines.png"
    show(run_dir, field="velocity", out=plain)
    show(run_dir, field="velocity", out=lines, streamlines=True)
    inside = np.s_[TITLE + MARGIN + 5 : TITLE + MARGIN + WIDTH - 5, MARGIN + 5 : MARGIN + WIDTH - 5]
    white = [(picture(path)[inside] > 0.97).all(axis=-1).sum() for path in (plain, lines)]
    assert white[0] == 0 and white[1] > 1000, white  # white streamlines over the coloured square


def test_error_map_against_a_result_on_the_same_mesh(run_dir, tmp_path):
    points, triangles, _, velocity = square()
    other = MeshFields(points, triangles, point_data={"step": np.ones(len(points)), "velocity": velocity}).write(tmp_path / "other")
    out = tmp_path / "error.png"
    report = show(run_dir, field="step", out=out, compare=other)
    assert report["range"] == [0.0, 1.0]
    image = picture(out)
    assert_near(colour_at(image, 0.15), colormaps["magma"](1.0))  # |0 - 1| on the left
    assert_near(colour_at(image, 0.70), colormaps["magma"](0.0))  # |1 - 1| on the right
    moved = MeshFields(points * [2, 1], triangles, point_data={"step": np.zeros(len(points))}).write(tmp_path / "moved")
    with pytest.raises(CaseError, match="is not on the mesh of"):
        show(run_dir, field="step", out=out, compare=moved)


def test_the_reports_comparison_is_three_pyvista_panels(tmp_path):
    """`comparison_png` (the reports' reference / prediction / difference figure) draws through
    `show --against`: three panels stacked, the first two on one colour scale, the difference on a
    symmetric one; a window draws the cells inside it only."""
    from cases.reports.figures import comparison_png

    points, triangles, step, _ = square()
    fields = MeshFields(points, triangles, point_data={"c": step})
    out = comparison_png(fields, "c", np.ones(len(points)), tmp_path / "c.png", "a test")
    image = imread(out)[..., :3]
    height = WIDTH + 2 * MARGIN + TITLE
    assert image.shape[0] == 3 * height
    panels = [image[k * height : (k + 1) * height] for k in range(3)]
    assert_near(colour_at(panels[0], 0.15), colormaps["viridis"](0.0))  # reference 0 on the left
    assert_near(colour_at(panels[0], 0.70), colormaps["viridis"](1.0))  # and 1 on the right
    assert_near(colour_at(panels[1], 0.15), colormaps["viridis"](1.0))  # the prediction is 1 everywhere
    assert_near(colour_at(panels[2], 0.15), colormaps["RdBu_r"](1.0))  # difference +1 on the left
    assert_near(colour_at(panels[2], 0.70), colormaps["RdBu_r"](0.5))  # 0 on the right
    narrow = imread(comparison_png(fields, "c", np.ones(len(points)), tmp_path / "right.png", "right half", window=((0.5, 1.0), (0.0, 1.0))))
    assert narrow.shape[0] == 3 * height and narrow.shape[1] < image.shape[1] - WIDTH // 3  # half as wide a mesh


def test_drawing_works_with_fenicsx_loaded_here(mesh_file, tmp_path):
    """The drawing process is a fresh interpreter: dolfinx in this one does not reach VTK."""
    pytest.importorskip("dolfinx")
    assert "dolfinx" in sys.modules
    show(mesh_file, out=tmp_path / "step.png")
    assert picture(tmp_path / "step.png").std() > 0.1


def test_the_drawing_process_imports_no_fenicsx_nor_torch():
    heavy = "dolfinx", "dolfinx_mpc", "ufl", "basix", "petsc4py", "mpi4py", "gmsh", "torch", "pyvista", "vtk"
    code = f"import sys, cases.show; print([m for m in sys.modules if m.split('.')[0] in {heavy!r}])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"  # pyvista and vtk come in only when drawing


@pytest.mark.parametrize(
    "where, options, message",
    [
        ("missing", {}, "no such file or directory"),
        ("empty_dir", {}, "holds no fields.vtu"),
        ("garbage", {}, "not a readable mesh file"),
        ("text", {}, "not a readable mesh file"),
        ("file", {"field": "pressure"}, "has no array 'pressure'; it has step"),
        ("file", {"out": "picture.jpg"}, "ending in .png"),
        ("file", {"out": "notes.png"}, "exists and is not a PNG"),
        ("file", {"streamlines": True}, "--streamlines needs a vector field"),
        ("file", {"compare": "missing"}, "no such file or directory"),
        ("file", {"against": "pressure"}, "has no array 'pressure'; it has step"),
        ("file", {"window": ((2.0, 3.0), (0.0, 1.0))}, "no cell of"),
    ],
)
def test_bad_input_is_refused_in_one_line(mesh_file, tmp_path, where, options, message):
    paths = {"missing": tmp_path / "nothing.vtu", "empty_dir": tmp_path, "file": mesh_file}
    paths["garbage"] = tmp_path / "broken.vtu"
    paths["garbage"].write_text("<VTKFile> not really")
    paths["text"] = tmp_path / "notes.txt"
    paths["text"].write_text("no mesh here")
    (tmp_path / "notes.png").write_text("my notes, not a picture")
    options = {key: tmp_path / value if key in ("out", "compare") else value for key, value in options.items()}
    with pytest.raises(CaseError, match=message) as refused:
        show(paths[where], **options)
    assert "\n" not in str(refused.value)
    assert (tmp_path / "notes.png").read_text() == "my notes, not a picture"


def test_the_command(mesh_file, tmp_path, monkeypatch, capsys):
    if show_command not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, show_command))
    out = tmp_path / "step.png"
    assert cli.main(["show", str(mesh_file), "--field", "step", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(out) and out.is_file()
    assert cli.main(["show", str(mesh_file), "--field", "nope"]) == 2
    assert capsys.readouterr().err.strip() == f"vcnn: error: {mesh_file} has no array 'nope'; it has step"
