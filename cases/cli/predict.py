"""`vcnn predict` and `vcnn models`: trained networks (shipped or your own) applied to a field made anywhere."""

from __future__ import annotations

import json
from pathlib import Path


def add_parsers(sub) -> None:
    predict = sub.add_parser("predict", help="apply a trained network to a mesh file or solved case; write the mesh with the predictions")
    predict.add_argument("--model", required=True, help="a shipped model's name (vcnn models) or a checkpoint file")
    predict.add_argument("--fields", type=Path, required=True, help="a solved case directory (fields.vtu + meta.json) or any mesh file meshio reads (VTU, XDMF, ...)")
    predict.add_argument("--out", type=Path, required=True, help="output directory: fields.vtu (input + predictions) and meta.json")
    predict.add_argument("--map", action="append", metavar="NAME=ARRAY", help="read the network's input NAME from the file's array ARRAY (e.g. velocity=U); repeatable")
    predict.add_argument("--period", action="append", metavar="X,Y[,Z]", help="a lattice vector of a periodic field (replaces the file's); repeatable")
    predict.add_argument("--nu", type=float, help="kinematic viscosity, for a closure's nu_t (default: the metadata 'nu')")
    predict.add_argument("--device", default="cpu", help="where the network runs: cpu or cuda (default cpu)")
    predict.add_argument("--overwrite", action="store_true", help="replace a previous output in --out")
    predict.set_defaults(run=run_predict)

    models = sub.add_parser("models", help="list the shipped trained networks (name, family, targets, arrays read, size, model card)")
    models.add_argument("--json", action="store_true", help="print the list as JSON")
    models.set_defaults(run=run_models)


def run_predict(args) -> int:
    from cases.studies.predict import parse_map, parse_periods, predict

    summary = predict(args.model, args.fields, args.out, parse_map(args.map), parse_periods(args.period), args.nu, args.device, args.overwrite)
    print(json.dumps(summary))
    return 0


def run_models(args) -> int:
    from cases.models import catalogue, models_dir, table

    models = catalogue()
    if args.json:
        print(json.dumps(models, indent=2))
    elif models:
        print(table(models))
    else:
        print(f"no shipped models in {models_dir()}")
    return 0
