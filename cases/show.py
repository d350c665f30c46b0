"""Pictures of meshes: a field of a run directory or mesh file, drawn by pyvista (VTK) off-screen.

VTK's off-screen rendering crashed (bad_alloc) once the FEniCSx libraries were loaded in the same
process, and the fields are on disk anyway: `show` checks the paths here and draws in a fresh
interpreter (`python -m cases.show`), whose import chain (this module, `cases.errors`,
`cases.rundir`, `meshes.fields`) holds neither dolfinx nor torch; pyvista is imported there only.
The child refuses bad input (an unreadable file, an unknown field) before drawing, with exit code
`EXIT_REFUSED` and the one-line reason as JSON on stdout, which `show` raises as a CaseError.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from cases.errors import CaseError
from cases.rundir import check_output_file
from meshes.fields import VTU_NAME, WEIGHT_NAME

EXIT_REFUSED = 3
"""The drawing process's exit code for refused input (2 is Python's own for a bad command line)."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DRAWN = "vcnn_drawn"
"""The name under which the drawn values ride along when a window cuts the mesh."""
WIDTH = 1200
"""Pixels along the longer side of a 2-D mesh."""
MARGIN, TITLE, BAR = 40, 60, 230
"""Pixels around a 2-D mesh, above it for the title, and right of it for the colour bar."""


def show(source, field: str | None = None, out=None, streamlines: bool = False, compare=None, against: str | None = None,
         window=None, title: str | None = None, timeout: float = 600) -> dict:
    """Draw `field` of `source` (a run directory holding fields.vtu, or a mesh file) into a PNG,
    or with `compare` (a second directory or file on the same mesh) the error map |source - compare|,
    or with `against` (another array of the same file, e.g. a prediction) three panels: `field`,
    `against` on the same colour scale, and `against - field`. `window` ((xmin, xmax), (ymin, ymax))
    draws the cells inside it only; `title` heads the picture. Returns what the drawing process
    reports: input, field, out, range (of the values drawn), arrays."""
    source = mesh_file(source)
    compare = None if compare is None else mesh_file(compare)
    if out is not None:
        check_png(out)
    if compare is not None and against is not None:
        raise CaseError("draw either the error map against another file (--compare) or against another array (--against), not both")
    box = None if window is None else ",".join(f"{float(v):.17g}" for pair in window for v in pair)
    command = [sys.executable, "-P", "-m", "cases.show", str(source), *_options(field=field, out=out, compare=compare, against=against, window=box, title=title)]
    command += ["--streamlines"] if streamlines else []
    root = str(Path(__file__).resolve().parents[1])  # this checkout's packages, not another installed copy nor the working directory's (-P)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    report = _last_json(done.stdout)
    if done.returncode == EXIT_REFUSED and "error" in report:
        raise CaseError(report["error"])
    if done.returncode != 0 or "out" not in report:
        how = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
        tail = "\n".join(done.stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"drawing {source} failed ({how}); without a display VTK draws through libEGL (libegl1) or OSMesa\n{tail}")
    return report


def mesh_file(path) -> Path:
    """The mesh file of a run directory (its fields.vtu) or the file itself; CaseError if missing."""
    path = Path(path)
    if path.is_dir():
        if not (path / VTU_NAME).is_file():
            raise CaseError(f"{path} holds no {VTU_NAME}")
        return path / VTU_NAME
    if not path.is_file():
        raise CaseError(f"no such file or directory: {path}")
    return path


def check_png(out) -> Path:
    """Refuse an output that is not a .png, or would replace a file that is not a PNG."""
    out = check_output_file(out)
    if out.suffix.lower() != ".png":
        raise CaseError(f"{out}: the picture is written as PNG; give a file name ending in .png")
    if out.exists():
        with open(out, "rb") as handle:
            if handle.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                raise CaseError(f"{out} exists and is not a PNG; not overwriting it")
    return out


# --- the drawing process ---------------------------------------------------------------------


def draw(source: Path, field: str | None = None, out: Path | None = None, streamlines: bool = False, compare: Path | None = None,
         against: str | None = None, window: tuple | None = None, title: str | None = None) -> dict:
    """Read, check, then render off-screen (in a process without FEniCSx; see the module docstring)."""
    mesh = _read(source)
    arrays = _arrays(mesh)
    field = _field(arrays, field, source)
    values = _magnitude(arrays[field])
    label = f"{field} (magnitude)" if values is not arrays[field] else field  # VTK's text drops "|"
    if compare is not None:
        values, label = _difference(mesh, source, field, _read(compare), compare), f"{field}: size of the difference to {_run_name(compare)}"
    if against is not None:
        other = arrays[_field(arrays, against, source)]
        if arrays[field].ndim > 1 or other.shape != arrays[field].shape:
            raise CaseError(f"--against compares two scalar arrays of one shape; {field!r} and {against!r} of {source} are not")
    if streamlines and not _planar_vector(mesh, arrays[field]):
        raise CaseError(f"--streamlines needs a vector field on a flat 2-D mesh; {field!r} of {source} is not")
    out = check_png(out or _default_out(source, field, compare is not None))
    if window is not None:
        mesh, values = _clip(mesh, values, window, source)
    if against is None:
        pictures = [_picture(mesh, values, title or label, "magma" if compare is not None else "viridis", None, field if streamlines else None)]
    else:
        clipped = _arrays(mesh)
        reference, predicted = clipped[field], clipped[against]
        values = predicted - reference
        limits = (min(reference.min(), predicted.min()), max(reference.max(), predicted.max()))
        bound = float(np.abs(values).max()) or 1.0
        pictures = [
            _picture(mesh, reference, f"{title}: {field}" if title else field, "viridis", limits),
            _picture(mesh, predicted, against, "viridis", limits),
            _picture(mesh, values, f"{against} - {field}", "RdBu_r", (-bound, bound)),
        ]
    _write_png(np.vstack(pictures), out)
    finite = values[np.isfinite(values)]
    span = [float(finite.min()), float(finite.max())] if finite.size else None
    return {"input": str(source), "field": field, "out": str(out), "range": span, "arrays": list(arrays)}


def _clip(mesh, values: np.ndarray, window: tuple, source: Path) -> tuple:
    """The cells whose centres lie in `window` ((xmin, xmax), (ymin, ymax)), and `values` on them."""
    (xmin, xmax), (ymin, ymax) = window
    x, y = mesh.cell_centers().points[:, :2].T
    keep = np.flatnonzero((x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax))
    if not keep.size:
        raise CaseError(f"no cell of {source} lies in the window x {xmin:g}..{xmax:g}, y {ymin:g}..{ymax:g}")
    mesh = mesh.copy()
    on_points = len(values) == mesh.n_points
    (mesh.point_data if on_points else mesh.cell_data)[DRAWN] = values
    part = mesh.extract_cells(keep)
    data = part.point_data if on_points else part.cell_data
    values = np.asarray(data[DRAWN])
    data.remove(DRAWN)
    return part, values


def _read(path: Path):
    """The mesh of any pyvista/meshio-readable file; CaseError if it yields no points."""
    import pyvista
    import vtk

    vtk.vtkObject.GlobalWarningDisplayOff()  # a damaged file: one CaseError, not VTK's pages of errors
    try:
        mesh = pyvista.read(path)
    except Exception as err:  # unknown suffix, or meshio's reader failing in its own ways
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CaseError(f"cannot read {path}: not a readable mesh file ({reason})") from None
    if isinstance(mesh, pyvista.MultiBlock):
        mesh = mesh.combine()
    if mesh.n_points == 0:
        raise CaseError(f"cannot read {path}: not a readable mesh file (no points)")
    return mesh


def _arrays(mesh) -> dict:
    """The numeric point arrays (node weights last), then cell arrays not named like a point array."""
    names = [name for name in mesh.point_data if name != WEIGHT_NAME] + [name for name in mesh.point_data if name == WEIGHT_NAME]
    pairs = [(name, mesh.point_data[name]) for name in names] + [(name, mesh.cell_data[name]) for name in mesh.cell_data]
    arrays = {}
    for name, values in pairs:
        values = np.asarray(values)
        if np.issubdtype(values.dtype, np.number):
            arrays.setdefault(name, values.astype(float))
    return arrays


def _field(arrays: dict, field: str | None, source: Path) -> str:
    if field is None:
        if not arrays:
            raise CaseError(f"{source} holds no point or cell arrays to draw")
        return next(iter(arrays))
    if field not in arrays:
        raise CaseError(f"{source} has no array {field!r}; it has {', '.join(arrays) or 'none'}")
    return field


def _magnitude(values: np.ndarray) -> np.ndarray:
    """Vectors and tensors by their (Frobenius) norm; scalars as they are."""
    return np.linalg.norm(values.reshape(len(values), -1), axis=1) if values.ndim > 1 else values


def _difference(mesh, source: Path, field: str, other, compare: Path) -> np.ndarray:
    """|a - b| at each node (the norm of the difference for vectors and tensors), on one mesh."""
    if other.n_points != mesh.n_points or not np.allclose(other.points, mesh.points, rtol=0, atol=1e-9 * _size(mesh)):
        raise CaseError(f"{compare} is not on the mesh of {source} ({other.n_points} and {mesh.n_points} nodes, or other coordinates)")
    arrays, theirs = _arrays(mesh), _arrays(other)
    if field not in theirs or theirs[field].shape != arrays[field].shape:
        raise CaseError(f"{compare} has no array {field!r} of the shape it has in {source}; it has {', '.join(theirs) or 'none'}")
    return np.abs(_magnitude(arrays[field] - theirs[field]))


def _default_out(source: Path, field: str, error_map: bool) -> Path:
    """show_FIELD.png in a run directory, STEM_FIELD.png beside another file (_error for maps)."""
    stem = "show" if source.name == VTU_NAME else source.stem
    return source.parent / f"{stem}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', field)}{'_error' if error_map else ''}.png"


def _run_name(path: Path) -> str:
    """A run directory's name for its fields.vtu, else the file's name."""
    return path.parent.name if path.name == VTU_NAME else path.name


def _size(mesh) -> float:
    lo, hi = np.asarray(mesh.bounds).reshape(3, 2).T
    return float(np.linalg.norm(hi - lo)) or 1.0


def _flat(mesh) -> bool:
    """A 2-D mesh in the z = 0 plane (as MeshFields writes them)."""
    return bool(np.abs(mesh.points[:, 2]).max() <= 1e-12 * _size(mesh))


def _planar_vector(mesh, values: np.ndarray) -> bool:
    return _flat(mesh) and values.ndim == 2 and values.shape[1] in (2, 3) and len(values) == mesh.n_points


def _picture(mesh, values: np.ndarray, label: str, cmap: str, limits: tuple | None = None, streamlines_of: str | None = None) -> np.ndarray:
    """The mesh coloured by `values` (no lighting on 2-D meshes: the colour map's own colours), on
    the colour scale `limits` (default: the values' range), optionally with streamlines, as an
    RGB image."""
    import pyvista

    mesh = mesh.copy()
    on_points = len(values) == mesh.n_points
    (mesh.point_data if on_points else mesh.cell_data)[label] = values
    flat = _flat(mesh)
    plotter = pyvista.Plotter(off_screen=True, window_size=_window(mesh) if flat else (1200, 900))
    plotter.set_background("white")
    bar = dict(title="", color="black", vertical=True, position_x=None, position_y=None, label_font_size=16, n_labels=5, fmt="%.3g")
    if flat:
        width, height = plotter.window_size
        bar.update(position_x=(width - BAR + 20) / width, position_y=MARGIN / height, height=(height - 2 * MARGIN - TITLE) / height, width=60 / width)
    plotter.add_mesh(
        mesh, scalars=label, preference="point" if on_points else "cell", cmap=cmap, clim=limits,
        lighting=not flat, nan_color="lightgrey", scalar_bar_args=bar,
    )
    if streamlines_of is not None:
        plotter.add_mesh(_streamlines(mesh, streamlines_of), color="white", line_width=1.5, lighting=False)
    plotter.add_text(label, position="upper_edge", font_size=14, color="black")
    if flat:
        _camera_2d(plotter, mesh)
    else:
        plotter.view_isometric()
    try:
        return plotter.screenshot(return_img=True)
    finally:
        plotter.close()


def _write_png(image: np.ndarray, out: Path) -> None:
    """Write the RGB image as a PNG under a temporary name first."""
    from PIL import Image

    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".png")
    os.close(fd)
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _window(mesh) -> tuple:
    """Window size that holds a flat mesh at its own aspect ratio, WIDTH pixels along its longer side."""
    dx, dy = _extent(mesh)
    scale = WIDTH / max(dx, dy)
    return (round(dx * scale) + 2 * MARGIN + BAR, max(round(dy * scale), 100) + 2 * MARGIN + TITLE)


def _extent(mesh) -> tuple:
    xmin, xmax, ymin, ymax = mesh.bounds[:4]
    return (xmax - xmin) or 1.0, (ymax - ymin) or 1.0


def _camera_2d(plotter, mesh) -> None:
    """Look down z with a parallel projection, the mesh MARGIN pixels from the lower left corner."""
    width, height = plotter.window_size
    per_pixel = max(_extent(mesh)) / WIDTH
    xmin, ymin = mesh.bounds[0], mesh.bounds[2]
    centre = (xmin + (width / 2 - MARGIN) * per_pixel, ymin + (height / 2 - MARGIN) * per_pixel, 0.0)
    plotter.enable_parallel_projection()
    plotter.camera.focal_point = centre
    plotter.camera.position = (centre[0], centre[1], 10 * _size(mesh))
    plotter.camera.up = (0.0, 1.0, 0.0)
    plotter.camera.parallel_scale = height / 2 * per_pixel
    plotter.camera.clipping_range = (1.0 * _size(mesh), 20 * _size(mesh))


def _streamlines(mesh, field: str, seeds: int = 24):
    """Streamlines of a 2-D vector field through `seeds` points across the middle of the mesh (on
    the line through the centre of the box along its shorter side), traced both ways.
    vtkEvenlySpacedStreamlines2D would space them better but crashed (SIGSEGV) in most runs on a
    PHLL hill in VTK 9.7; vtkStreamTracer (ParaView's Stream Tracer) did not."""
    import pyvista

    vectors = np.asarray(mesh.point_data[field], dtype=float)
    if vectors.shape[1] == 2:  # VTK integrates 3-component vectors
        mesh.point_data[field] = np.c_[vectors, np.zeros(len(vectors))]
    lo, hi = np.asarray(mesh.bounds).reshape(3, 2).T
    across = int(np.argmin((hi - lo)[:2]))
    line = np.tile((lo + hi) / 2, (seeds, 1))
    line[:, across] = np.linspace(lo[across], hi[across], seeds + 2)[1:-1]
    probe = pyvista.PolyData(line).sample(mesh)
    inside = pyvista.PolyData(line[np.asarray(probe.point_data["vtkValidPointMask"], dtype=bool)])
    size = max(_extent(mesh))
    return mesh.streamlines_from_source(
        inside, vectors=field, integration_direction="both", step_unit="l", initial_step_length=size / 1000,
        min_step_length=size / 10000, max_step_length=size / 200, max_steps=20000, max_length=size, compute_vorticity=False,
    )


def _options(**values) -> list:
    return [item for name, value in values.items() if value is not None for item in (f"--{name}", str(value))]


def _last_json(stdout: str) -> dict:
    """The drawing process's report: its last line of output, as JSON (anything else: empty)."""
    lines = stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


def main(argv: list[str] | None = None) -> int:
    """`python -m cases.show FILE [--field F] [--out PNG] [--streamlines] [--compare FILE]`:
    draw, print one JSON line (the report, or {"error": ...} with exit code EXIT_REFUSED)."""
    parser = argparse.ArgumentParser(prog="python -m cases.show", description=main.__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--field")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--streamlines", action="store_true")
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--against")
    parser.add_argument("--window", help="xmin,xmax,ymin,ymax")
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    try:
        compare = None if args.compare is None else mesh_file(args.compare)
        window = None if args.window is None else np.array(args.window.split(","), dtype=float).reshape(2, 2)
        report = draw(mesh_file(args.source), args.field, args.out, args.streamlines, compare, args.against, window, args.title)
    except CaseError as err:
        print(json.dumps({"error": str(err)}))
        return EXIT_REFUSED
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
