"""`vcnn show`: a quick look at any result, one field of a run directory or mesh file as a PNG
(pyvista, off-screen, in a process of its own; `cases.show`)."""

from __future__ import annotations

import json
from pathlib import Path


def add_parsers(sub) -> None:
    show = sub.add_parser("show", help="draw a field of a run directory or mesh file as a PNG (pyvista, off-screen)")
    show.add_argument("source", type=Path, metavar="DIR_OR_FILE", help="a run directory (its fields.vtu) or any mesh file pyvista or meshio reads")
    show.add_argument("--field", metavar="NAME", help="the point or cell array to draw; vectors and tensors by their magnitude (default: the first point array)")
    show.add_argument("--out", type=Path, metavar="PNG", help="the PNG to write (default: beside the input, show_FIELD.png in a run directory)")
    show.add_argument("--streamlines", action="store_true", help="draw streamlines of the field (a vector field on a flat 2-D mesh) through the middle of the mesh")
    show.add_argument("--compare", type=Path, metavar="DIR_OR_FILE", help="draw the error map |A - B| of the field against this result on the same mesh")
    show.add_argument("--against", metavar="NAME", help="three panels: the field, this array of the same file on the same colour scale (e.g. predicted_concentration after vcnn predict), and their difference")
    show.set_defaults(run=run)


def run(args) -> int:
    from cases.show import show

    print(json.dumps(show(args.source, args.field, args.out, args.streamlines, args.compare, args.against)))
    return 0
