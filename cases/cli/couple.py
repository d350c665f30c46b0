"""`vcnn couple`: a trained closure network in the RANS loop, compared with the PDE model it learned from."""

from __future__ import annotations

from pathlib import Path

from cases.cli.common import output_options
from cases.errors import CaseError


def add_parsers(sub) -> None:
    couple = sub.add_parser("couple", help="a trained closure network in the RANS loop, compared with the PDE model it learned from")
    couple.add_argument("--model", type=Path, required=True, help="closure checkpoint (trained on a hills-rans dataset) or a shipped model's name")
    couple.add_argument("--case", choices=["hills-rans"], default="hills-rans", help="the case (default and only: hills-rans)")
    couple.add_argument("--alpha", type=float, help="hill slope parameter in [0.5, 3] (closures trained on hills-rans)")
    couple.add_argument("--geometry", help="a Closure Challenge hill, alpha_AA_LLLLL_HHHH (closures trained on the benchmark's LES): started from its SST solution")
    couple.add_argument("--reference", type=Path, help="the PDE-model solution (a vcnn solve hills-rans output, or phll-rans with --geometry); default: solve it first")
    couple.add_argument("--resolution", default=None, help="cells NXxNY (default: the training dataset's)")
    couple.add_argument("--blend", type=int, default=0, help="iterations over which the PDE model hands over to the network (default 0)")
    couple.add_argument("--rotate", type=float, default=0.0, help="turn the whole problem by DEG degrees (frame-invariance check; default 0)")
    couple.add_argument("--tolerance", type=float, help="relative change of nu_t and velocity per iteration at convergence (default from the case file: 1e-6)")
    couple.add_argument("--relaxation", type=float, help="under-relaxation of nu_t per iteration; with --anderson, the mixing's first damping (default from the case file: 0.7)")
    couple.add_argument("--max-iterations", type=int, help="Picard iterations before a stall is declared (default from the case file: 400)")
    couple.add_argument("--anderson", type=int, help="Anderson acceleration of nu_t over M iterations (default from the case file: 0, off)")
    couple.add_argument("--anderson-shrink", type=float, metavar="S",
                        help="the Anderson damping times S at each restart of the mixing (default from the case file: 0.8; 1: kept)")
    couple.add_argument("--newton-krylov", type=float, metavar="R",
                        help="Newton-Krylov steps while the relative nu_t residual is below R (default from the case file: 0, off)")
    couple.add_argument("--device", default="cpu", help="where the network runs: cpu or cuda (default cpu; under mpirun, cuda is each rank's own GPU, rank mod their number)")
    couple.add_argument("--precision", choices=["mixed", "float32", "float64"],
                        help="the network's floating-point type in the loop; mixed: float32 until the flow settles, then float64 (default)")
    couple.add_argument("--smoothing", type=float, metavar="W",
                        help="round the clip of the network's output at 0 over W until the flow settles, then clip hard (0: hard throughout; default 0.05)")
    couple.add_argument("--patience", type=int, metavar="N",
                        help="round the clip only after N iterations without a tenfold fall of the velocity change (0: from the start; default 15)")
    couple.add_argument("--config", type=Path, default=None, help="case file (default cases/hills_rans.toml)")
    output_options(couple)
    couple.set_defaults(run=run)


def run(args) -> int:
    from cases.models import resolve
    from cases.flows import hills_rans
    from cases.limits import check_solve
    from cases.rundir import check_output
    from cases.studies.coupling import CoupledRun, couple_into, prepare

    if args.blend < 0:
        raise CaseError(f"--blend must be 0 or more iterations, got {args.blend}")
    args.model = resolve(args.model)
    if (args.alpha is None) == (args.geometry is None):
        raise CaseError("give --alpha (a closure trained on hills-rans) or --geometry (one trained on the Closure Challenge LES), not both")
    if args.geometry is not None:
        return run_phll(args)
    config, network, reference = prepare(
        args.model, args.alpha, args.device, args.resolution, args.config, args.reference, args.rotate, args.precision or "mixed", args.smoothing, args.patience,
        tolerance=args.tolerance, relaxation=args.relaxation, max_iterations=args.max_iterations, anderson=args.anderson,
        anderson_shrink=args.anderson_shrink, newton_krylov=args.newton_krylov,
    )
    check_output(args.out, args.overwrite)  # every check before any work
    check_solve(hills_rans, config, args.force)
    run = CoupledRun(args.model, args.out, args.blend, args.overwrite, figures=not args.no_figures, quiet=args.quiet)
    couple_into(run, config, network, reference)
    return 0


def run_phll(args) -> int:
    from cases.studies.phll_coupling import PhllCoupling, couple_command

    given = [flag for flag, value in (("--blend", args.blend or None), ("--anderson-shrink", args.anderson_shrink), ("--precision", args.precision),
                                      ("--smoothing", args.smoothing), ("--patience", args.patience), ("--config", args.config)) if value is not None]
    if given:
        raise CaseError(f"{', '.join(given)}: for closures coupled by --alpha; with --geometry the network replaces SST from the first "
                        "iteration in float64 with a hard clip at 0, and the mixing shrinks by the default 0.8")
    settings = {"anderson": args.anderson, "tolerance": args.tolerance, "relaxation": args.relaxation, "max_iterations": args.max_iterations,
                "newton_krylov": args.newton_krylov, "device": args.device}
    options = PhllCoupling.of({k: v for k, v in settings.items() if v is not None})
    couple_command(args.model, args.geometry, args.out, options, sst_run=args.reference, resolution=args.resolution,
                   rotate=args.rotate, overwrite=args.overwrite, quiet=args.quiet, force=args.force)
    return 0
