"""`vcnn solve <flow>`: one case with FEniCSx, written as MeshFields with figures. One sub-command
per flow of `cases.flows.FLOWS`, with the flow's own options."""

from __future__ import annotations

from cases.cli.common import output_options
from cases.flows import FLOWS


def add_parsers(sub) -> None:
    solve = sub.add_parser("solve", help="solve a case with FEniCSx and write MeshFields + figures")
    flows = solve.add_subparsers(dest="case", required=True)
    for name, flow in FLOWS.items():
        parser = flows.add_parser(name, help=flow.HELP)
        flow.add_arguments(parser)
        output_options(parser)
        parser.set_defaults(run=run, flow=flow)


def run(args) -> int:
    from cases.flows.run import solve_into
    from cases.limits import check_solve

    config = args.flow.configure(**args.flow.values(args))  # every check before any work
    check_solve(args.flow, config, args.force)
    solve_into(args.flow, config, args.out, args.overwrite, figures=not args.no_figures, quiet=args.quiet)
    return 0
