"""`vcnn import openfoam`, `vcnn score closure-challenge` and `vcnn propagate`: outside data in, benchmark
scores out, and the ceiling of LES-derived targets measured before any training."""

from __future__ import annotations

from pathlib import Path

from cases.cli.common import output_options

PHLL29 = Path("../shared/reference/closure_challenge/PHLL29")


def add_parsers(sub) -> None:
    read = sub.add_parser("import", help="outside data as MeshFields (fields.vtu + meta.json)")
    sources = read.add_subparsers(dest="source", required=True)
    openfoam = sources.add_parser("openfoam", help="a 2-D OpenFOAM case (structured mesh) at its cell centres")
    openfoam.add_argument("case_dir", type=Path, help="the OpenFOAM case directory")
    openfoam.add_argument("--time", help="time directory to read (default: the latest; fields missing there come from 0/)")
    openfoam.add_argument("--fields", help="comma-separated field names (default: every field of that time)")
    openfoam.add_argument("--period", type=float, help="streamwise period (default: from a Closure Challenge case name)")
    output_options(openfoam, figures=False, force=False)
    openfoam.set_defaults(run=run_import)

    score = sub.add_parser("score", help="benchmark scores of solved cases")
    benchmarks = score.add_subparsers(dest="benchmark", required=True)
    challenge = benchmarks.add_parser("closure-challenge", help="the Closure Challenge periodic hills: scaled mean absolute velocity error")
    challenge.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="solved phll-rans, hills-rans or couple directories")
    challenge.add_argument("--out", type=Path, help="where the CSV files and scores.jsonl go (default: each run directory)")
    challenge.add_argument("--phll29", type=Path, default=PHLL29, help=f"the benchmark's shared cases (default {PHLL29})")
    challenge.add_argument("--velocity", default="velocity", help="the velocity array of the runs (default velocity)")
    challenge.add_argument("--against", default="U_LES", help="a shared case's velocity to score against: U_LES, or U (the benchmark's SST) (default U_LES)")
    challenge.add_argument("--compare-sst", action="store_true", help="our SST runs of shared cases against the benchmark's SST: both scores, iterations, y+, reattachment (a markdown table)")
    challenge.set_defaults(run=run_score)

    from cases.studies.les_targets import CANDIDATES, REGULARISATION, VALIDATION

    propagate = sub.add_parser("propagate", help="LES nu_t targets frozen in our RANS of a validation hill, scored against the LES (the propagation test)")
    propagate.add_argument("--case", required=True, choices=VALIDATION, help="a validation hill of the suggested split")
    propagate.add_argument("--sst", required=True, help="our SST solve of that hill (vcnn solve phll-rans --geometry CASE --out DIR), or 'benchmark': the benchmark's SST")
    propagate.add_argument("--out", required=True, type=Path, help="output directory")
    propagate.add_argument("--phll29", type=Path, default=PHLL29, help=f"the benchmark's shared cases (default {PHLL29})")
    propagate.add_argument("--regularisation", type=float, default=REGULARISATION, help=f"s0 / mean S:S of the optimal nu_t (default {REGULARISATION})")
    propagate.add_argument("--targets", nargs="+", default=list(CANDIDATES), help=f"candidates (default all: {' '.join(CANDIDATES)})")
    propagate.set_defaults(run=run_propagate)


def run_import(args) -> int:
    from cases.rundir import check_output, staged_output
    from meshes.openfoam import read_case

    check_output(args.out, args.overwrite)
    names = None if args.fields is None else [name.strip() for name in args.fields.split(",") if name.strip()]
    fields = read_case(args.case_dir, args.time, names, args.period)
    with staged_output(args.out, args.overwrite) as stage:
        fields.write(stage)
    print(f"{args.out}: {fields.num_nodes} points, arrays {', '.join(sorted(fields.point_data))}")
    return 0


def run_score(args) -> int:
    from cases.studies.score import score_runs, sst_table

    if args.compare_sst:
        print(sst_table(args.runs, args.phll29), end="")
        return 0
    scores = score_runs(args.runs, args.out, args.phll29, args.velocity, args.against)
    print("| run | case | score |\n|---|---|---|")
    for run, result in scores.items():
        print(f"| {run} | {result['case']} | {result['score']:.4f} |")
    return 0


def run_propagate(args) -> int:
    from cases.flows.run import setup_logging
    from cases.studies.les_targets import propagation_test, table

    setup_logging(None, quiet=False)
    print(table([propagation_test(args.case, args.sst, args.out, args.phll29, args.targets, args.regularisation)]), end="")
    return 0
