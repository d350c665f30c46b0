"""`vcnn evaluate`, `vcnn frames` and `vcnn check-invariance`: a trained network judged on solved cases."""

from __future__ import annotations

import sys
from pathlib import Path

from cases.errors import CaseError
from cases.models import resolve

EXIT_VIOLATION = 1  # check-invariance: a model deviates under a transform it declares invariance to


def add_parsers(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="relative L2 error of a checkpoint on a dataset, with error maps")
    evaluate.add_argument("--model", type=Path, required=True, help="checkpoint (best.pt or last.pt) or a shipped model's name")
    evaluate.add_argument("--data", type=Path, required=True, help="dataset directory (vcnn dataset)")
    evaluate.add_argument("--values", "--alphas", "--aoas", dest="values", action="append", help="parameter values of the cases to evaluate (default: all in the dataset)")
    evaluate.add_argument("--out", type=Path, help="write evaluation.json and figures (reference, prediction, error) here")
    evaluate.add_argument("--rotate", type=float, metavar="DEG", help="also evaluate every case turned by DEG degrees")
    evaluate.set_defaults(run=run_evaluate)

    frames = sub.add_parser("frames", help="turn a whole test field by several angles and compare each network's error")
    frames.add_argument("--model", action="append", required=True, metavar="LABEL=CKPT", help="a network to compare (a checkpoint or a shipped model's name); repeatable")
    frames.add_argument("--fields", type=Path, required=True, help="a solved case directory (fields.vtu + meta.json)")
    frames.add_argument("--angles", default="0,35,70,90,180", help="rotation angles in degrees (default 0,35,70,90,180)")
    frames.add_argument("--out", type=Path, help="write frames.json and frames.png here")
    frames.set_defaults(run=run_frames)

    check = sub.add_parser("check-invariance", help="rotate, reflect, translate and permute a field; compare predictions")
    check.add_argument("--model", type=Path, required=True, help="checkpoint or a shipped model's name")
    check.add_argument("--fields", type=Path, required=True, help="a solved case directory (fields.vtu + meta.json)")
    check.add_argument("--trials", type=int, default=3, help="random transforms of each kind (default 3)")
    check.add_argument("--json", type=Path, help="also write the report as JSON")
    check.set_defaults(run=run_check_invariance)


def run_evaluate(args) -> int:
    from cases.manifest import load_manifest
    from cases.reports.surrogate import evaluation_table
    from cases.rundir import check_output_directory
    from cases.studies.evaluate import evaluate_checkpoint

    if args.out is not None:
        check_output_directory(args.out)
    values = load_manifest(args.data)[1].parse(args.values) if args.values else None
    print(evaluation_table(evaluate_checkpoint(resolve(args.model), args.data, values, args.out, args.rotate)))
    return 0


def run_frames(args) -> int:
    from cases.reports.surrogate import table
    from cases.rundir import check_output_directory
    from cases.studies.frames import frame_study

    if args.out is not None:
        check_output_directory(args.out)
    checkpoints = {}
    for item in args.model:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise CaseError(f"--model takes LABEL=CHECKPOINT, got {item!r}")
        checkpoints[label] = resolve(path)
    try:
        angles = [float(a) for a in args.angles.split(",")]
    except ValueError:
        raise CaseError(f"--angles takes numbers separated by commas, got {args.angles!r}") from None
    print(table(frame_study(checkpoints, args.fields, angles, args.out)))
    return 0


def run_check_invariance(args) -> int:
    from cases.rundir import check_output_file, write_json
    from cases.studies.evaluate import check_checkpoint_invariance

    if args.trials < 1:
        raise CaseError("--trials must be at least 1")
    if args.json:
        check_output_file(args.json)
    report = check_checkpoint_invariance(resolve(args.model), args.fields, args.trials)
    print(report["table"])
    if args.json:
        write_json(args.json, {k: v for k, v in report.items() if k != "table"})
    if report["violations"]:
        print(f"vcnn: declared invariance violated: {', '.join(report['violations'])}", file=sys.stderr)
        return EXIT_VIOLATION
    return 0
