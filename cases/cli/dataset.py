"""`vcnn dataset <family>`: a family of solved cases in one directory (resumable). One sub-command
per family of `cases.flows.FAMILIES`."""

from __future__ import annotations

from pathlib import Path

from cases.cli.common import progress_option
from cases.flows import FAMILIES


def add_parsers(sub) -> None:
    dataset = sub.add_parser("dataset", help="solve a family of cases into one dataset directory (resumable)")
    families = dataset.add_subparsers(dest="family", required=True)
    for kind in FAMILIES.values():
        sweep = families.add_parser(kind.name, help=f"{kind.name} cases, one per {kind.label} listed")
        sweep.add_argument(kind.option, dest="values", action="append", required=True, help=kind.values_help)
        sweep.add_argument("--out", type=Path, required=True, help="dataset directory (created or resumed)")
        if kind.resolution:
            sweep.add_argument("--resolution", default=None, help="cells NXxNY for every case (default: vcnn solve's)")
        sweep.add_argument("--jobs", type=int, default=1, help="cases solved at the same time (default 1)")
        sweep.add_argument("--force", action="store_true", help="run even beyond the limits on cases, memory and disk (docs/errors.md)")
        progress_option(sweep)
        sweep.set_defaults(run=run, kind=kind, resolution=None)


def run(args) -> int:
    from cases.studies.dataset import sweep

    manifest = sweep(args.out, args.kind.parse(args.values, args.force), args.resolution, args.jobs, not args.quiet, args.kind, args.force)
    print(f"{args.out}: {len(manifest['cases'])} cases complete")
    return 0
