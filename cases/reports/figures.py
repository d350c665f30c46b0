"""Off-screen PNG figures of fields on the mesh, written atomically.

The reports' comparisons of a prediction with its reference (`comparison_png`) are drawn by
pyvista, in a process of its own (`cases.show`): VTK's off-screen rendering crashed here
(bad_alloc) once the FEniCSx libraries were loaded in the same process. The other figures (line
plots, and the solves' field pictures) are matplotlib's: its Agg backend needs no OpenGL context.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from meshes.fields import MeshFields


def field_png(fields: MeshFields, name: str, path: str | Path, title: str | None = None, window=None) -> Path:
    """Colour a 2-D mesh by a point array (vectors by their magnitude) and save a PNG; `window`
    ((xmin, xmax), (ymin, ymax)) zooms in (default: the whole mesh)."""
    plt = _pyplot()
    window = _window(fields, window)
    extent = [hi - lo for lo, hi in window]
    fig, ax = plt.subplots(figsize=(12, 12 * extent[1] / extent[0] + 1.2), dpi=120)
    _draw(fig, ax, fields, _magnitude(fields[name]), title or name, "viridis", window=window)
    return _save_png(fig, path)


def comparison_png(fields: MeshFields, name: str, predicted: np.ndarray, path: str | Path, title: str, window=None) -> Path:
    """Three panels on one mesh, drawn by pyvista in a process of its own (`cases.show`): the
    reference `fields[name]`, the prediction on the same colour scale, and their difference
    (vectors and tensors by their magnitudes). `window` ((xmin, xmax), (ymin, ymax)) draws the
    cells inside it only."""
    from cases.show import show

    with tempfile.TemporaryDirectory() as tmp:
        arrays = {name: _magnitude(fields[name]), f"predicted_{name}": _magnitude(predicted)}
        MeshFields(fields.points, fields.cells, fields.cell_type, fields.weights, arrays).write(tmp)
        show(tmp, name, path, against=f"predicted_{name}", window=window, title=title)
    return Path(path)


def _window(fields: MeshFields, window):
    return window or tuple(zip(_check_2d(fields).points.min(axis=0), fields.points.max(axis=0)))


def learning_curves_png(histories: dict, path: str | Path) -> Path:
    """Training loss and validation error per epoch, one line per run ({label: metrics history})."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    for label, history in histories.items():
        epochs = [h["epoch"] + 1 for h in history]
        axes[0].semilogy(epochs, [h["train_loss"] for h in history], label=label)
        axes[1].semilogy(epochs, [100 * h["validation_rel_l2"] for h in history], label=label)
    axes[0].set_ylabel("training loss (normalised MSE)")
    axes[1].set_ylabel("validation relative L2 error (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    return _save_png(fig, path)


def wall_profiles_png(profiles: dict, reference: tuple, path: str | Path, title: str = "") -> Path:
    """U+ against y+ (log axis): one line per {label: (y+, U+)} and the DNS `reference` as points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=110)
    y_plus, u_plus = reference
    keep = y_plus > 0.1  # the DNS files start at y+ = 2e-14
    ax.semilogx(y_plus[keep], u_plus[keep], "k.", ms=3, label="DNS (Lee & Moser 2015)")
    for label, (yp, up) in profiles.items():
        yp, up = np.asarray(yp), np.asarray(up)
        ax.semilogx(yp[yp > 0.1], up[yp > 0.1], "-", label=label)
    _label(ax, "y+", "U+", title)
    return _save_png(fig, path)


def rans_history_png(history: list, path: str | Path, title: str = "") -> Path:
    """The convergence history: relative change of nu_t and of the velocity per Picard iteration,
    and the closure's residuals relative to their first values."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=110)
    iterations = [h["iteration"] for h in history]
    for key, label in (("nu_t_change", "nu_t"), ("velocity_change", "velocity")):
        values = np.array([h[key] for h in history], dtype=float)
        ax.semilogy(iterations, np.where(np.isfinite(values), values, np.nan), label=f"relative change of {label}")
    for name in history[0]["closure_residuals"]:
        values = np.array([h["closure_residuals"][name] for h in history])
        ax.semilogy(iterations, values / values[0], "--", label=f"{name} residual / first")
    _label(ax, "Picard iteration", "relative change, relative residual", title)
    return _save_png(fig, path)


def streamlines_png(fields: MeshFields, path: str | Path, title: str = "") -> Path:
    """Streamlines over the streamwise velocity, with its zero contour (the separation bubble)."""
    from matplotlib.tri import LinearTriInterpolator, Triangulation

    plt = _pyplot()
    fields = _check_2d(fields)
    triangulation = Triangulation(*fields.points.T, fields.triangles())
    u = fields["velocity"]
    lo, hi = fields.points.min(axis=0), fields.points.max(axis=0)
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 120))
    ux, uy = (LinearTriInterpolator(triangulation, u[:, i])(gx, gy) for i in (0, 1))
    fig, ax = plt.subplots(figsize=(11, 3.8), dpi=110)
    shade = ax.tripcolor(triangulation, u[:, 0], shading="gouraud", cmap="RdBu_r", vmin=-np.abs(u[:, 0]).max(), vmax=np.abs(u[:, 0]).max())
    ax.tricontour(triangulation, u[:, 0], levels=[0.0], colors="k", linewidths=1.2)
    ax.streamplot(gx, gy, ux.filled(np.nan), uy.filled(np.nan), color="0.25", density=1.6, linewidth=0.5, arrowsize=0.6)
    fig.colorbar(shade, ax=ax, label="u_x (black line: u_x = 0)")
    ax.set_aspect("equal")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_title(title)
    return _save_png(fig, path)


def wall_shear_png(x: np.ndarray, shear: np.ndarray, marks: dict, path: str | Path, title: str = "", source: str = "DNS") -> Path:
    """Wall shear stress along the lower wall; `marks` {label: (low, high)} of `source`, shaded as ranges of x."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5), dpi=110)
    ax.plot(x, shear, "-", lw=1.2, label="RANS")
    ax.axhline(0.0, color="k", lw=0.6)
    for (label, (low, high)), color in zip(marks.items(), ("tab:green", "tab:red")):
        ax.axvspan(low - 0.02, high + 0.02, color=color, alpha=0.35, label=f"{source} {label}")
    _label(ax, "x / H from the crest", "wall shear stress", title)
    return _save_png(fig, path)


def frames_png(frames: dict, predictions: dict, path: str | Path, window=None) -> Path:
    """A grid of predictions: one row per network ({label: {angle: values}}), one column per frame
    ({angle: the turned MeshFields}); each row shares one colour scale. `window` as in
    `field_png`, the same in every frame."""
    plt = _pyplot()
    rows, columns = len(predictions), len(frames)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows), dpi=100, squeeze=False)
    for row, (label, values) in enumerate(predictions.items()):
        values = {angle: _magnitude(v) for angle, v in values.items()}  # vectors and tensors by their size
        limits = (min(v.min() for v in values.values()), max(v.max() for v in values.values()))
        for column, (angle, fields) in enumerate(frames.items()):
            ax = axes[row, column]
            _draw(fig, ax, fields, values[angle], f"{label}, {angle:g} deg", "viridis", limits, window)
            ax.set_xlabel("")
            ax.set_ylabel("")
    return _save_png(fig, path)


def _label(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _check_2d(fields: MeshFields) -> MeshFields:
    if fields.dim != 2:
        raise ValueError("field figures are drawn for 2-D meshes")
    return fields


def _magnitude(values: np.ndarray) -> np.ndarray:
    return np.linalg.norm(values.reshape(len(values), -1), axis=1) if values.ndim > 1 else values


def _draw(fig, ax, fields: MeshFields, values: np.ndarray, title: str, cmap: str, limits=None, window=None) -> None:
    from matplotlib.tri import Triangulation

    vmin, vmax = limits or (None, None)
    shading = ax.tripcolor(Triangulation(*fields.points.T, fields.triangles()), values, shading="gouraud", cmap=cmap, vmin=vmin, vmax=vmax)
    fig.colorbar(shading, ax=ax, orientation="vertical", fraction=0.03, pad=0.02)
    ax.set_aspect("equal")
    if window is not None:
        ax.set_xlim(*window[0])
        ax.set_ylim(*window[1])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)


def profiles_png(fields: MeshFields, reference: dict, stations, path: str | Path, halfwidth: float = 0.025) -> Path:
    """Streamwise velocity and concentration profiles at x stations: ours (lines) vs a reference
    given at scattered points (dots: the reference points within `halfwidth` of each station)."""
    from scipy.interpolate import LinearNDInterpolator

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), dpi=120, sharey=True)
    ref_x, ref_y = reference["x"], reference["y"]
    for ax, (name, ref_values, scale, label) in zip(
        axes, [("velocity", reference["u"], 1.0, "u_x"), ("concentration", reference["c"], 1.5, "c")]
    ):
        values = fields[name][:, 0] if name == "velocity" else fields[name]
        interpolate = LinearNDInterpolator(fields.points, values)
        for k, x0 in enumerate(stations):
            column = np.abs(ref_x - x0) <= halfwidth
            ys = np.linspace(ref_y[column].min(), ref_y[column].max(), 200)
            offset = 2.0 * k
            ax.plot(
                offset + scale * interpolate(np.full_like(ys, x0), ys),
                ys,
                "C0-",
                lw=1.2,
                label="vcnn (FEniCSx)" if k == 0 else None,
            )
            ax.plot(
                offset + scale * ref_values[column],
                ref_y[column],
                "C3.",
                ms=2,
                label="OpenFOAM reference" if k == 0 else None,
            )
            ax.axvline(offset, color="0.8", lw=0.5)
        ax.set_xticks([2.0 * k for k in range(len(stations))], [f"x={x0:g}" for x0 in stations])
        ax.set_title(f"{label} profiles (offset 2 per station)")
        ax.set_ylabel("y / H")
        ax.legend(loc="upper right", fontsize=8)
    return _save_png(fig, path)


def closure_profiles_png(sets: dict, path: str | Path, title: str = "") -> Path:
    """u_x and nu_t / nu along vertical lines, each set {x: (y, u_x, nu_t / nu)} under its label
    (the first as dots, the reference; the others as lines), each profile drawn from its station x."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(12, 8), dpi=120, sharex=True)
    reference = next(iter(sets.values()))
    ratio_max = max(np.nanmax(r) for _, _, r in reference.values())
    styles = [dict(ls="none", marker=".", ms=2, color="C3"), dict(lw=1.2, color="C0"), dict(lw=1.0, ls="--", color="k")]
    for (label, profiles), style in zip(sets.items(), styles):
        for k, x0 in enumerate(reference):
            y, u, ratio = profiles[x0]
            for ax, value in ((axes[0], u), (axes[1], ratio / ratio_max)):
                ax.plot(x0 + 0.8 * value, y, label=label if k == 0 else None, **style)
                ax.axvline(x0, color="0.8", lw=0.5)
    _label(axes[0], "", "y / H", f"{title}\nu_x (0.8 u_x per unit of x)")
    _label(axes[1], "x / H", "y / H", f"nu_t / nu (0.8 per {ratio_max:.0f})")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8)
    return _save_png(fig, path)


def _save_png(fig, path: str | Path) -> Path:
    """Save under a temporary name, then rename: a crash never leaves a truncated PNG."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial.png")
    fig.savefig(tmp, bbox_inches="tight", format="png")
    plt.close(fig)
    tmp.replace(path)
    return path
