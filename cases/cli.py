"""The `vcnn` command: solve cases, build datasets, train, evaluate, check invariance, run whole studies.

Errors in the input or a failed solve print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from cases.errors import CaseError
from cases.families import FAMILIES
from meshes.errors import MeshError

EXIT_USAGE = 2
EXIT_VIOLATION = 1  # check-invariance: a model deviates under a transform it declares invariance to


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code = args.run(args)
        _leave_process_group()
        return code
    except Exception as err:
        # The project's own errors (imported lazily: solvers needs FEniCSx, vcnn needs torch).
        if isinstance(err, (CaseError, MeshError)) or type(err).__module__.split(".")[0] in ("solvers", "vcnn"):
            return _fail(err)
        raise


def _leave_process_group() -> None:
    """Leave a torchrun process group after a run that succeeded: left to the interpreter's
    shutdown, gloo's worker threads now and then abort it (SIGABRT, "terminate called without an
    active exception"; pytorch issue 190489). Not after a failure: the other ranks may still be in
    a collective, and destroying the group would hang them."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _fail(err: Exception) -> int:
    if _rank() == 0:
        print(f"vcnn: error: {err}", file=sys.stderr)
    return EXIT_USAGE


def _rank() -> int:
    """This process's rank under torchrun or mpirun (0 otherwise)."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    try:
        from mpi4py import MPI
    except ImportError:
        return 0
    return MPI.COMM_WORLD.rank


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vcnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    solve = sub.add_parser("solve", help="solve a case with FEniCSx and write MeshFields + figures")
    cases = solve.add_subparsers(dest="case", required=True)
    hills = cases.add_parser("hills-transport", help="periodic hill: Navier-Stokes + nonlinear scalar transport")
    hills.add_argument("--alpha", type=float, required=True, help="hill slope parameter in [0.5, 4]")
    hills.add_argument("--out", type=Path, required=True, help="output directory (must be empty or new)")
    hills.add_argument("--resolution", default=None, help="cells NXxNY (default: ~0.045 streamwise spacing x 100)")
    hills.add_argument("--wall-ratio", type=float, default=10.0, help="centre-to-wall cell height ratio (default 10)")
    hills.add_argument("--degree", type=int, default=2, help="Lagrange degree of the concentration (default 2)")
    hills.add_argument("--max-newton", type=int, default=25, help="Newton iterations before giving up (default 25)")
    hills.add_argument("--reference", type=Path, help="OpenFOAM .npz to compare against (written to meta.json)")
    hills.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    hills.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    hills.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    hills.set_defaults(run=_solve_hills_transport)

    airfoil = cases.add_parser("airfoil-transport", help="NACA airfoil at an angle of attack: Navier-Stokes + the same scalar transport")
    airfoil.add_argument("--aoa", type=float, required=True, help="angle of attack in degrees (airfoil turned nose-up)")
    airfoil.add_argument("--out", type=Path, required=True, help="output directory (must be empty or new)")
    airfoil.add_argument("--code", default="0012", help="NACA 4-digit code (default 0012)")
    airfoil.add_argument("--reynolds", type=float, default=100.0, help="chord Reynolds number (default 100)")
    airfoil.add_argument("--radius", type=float, default=10.0, help="far-field radius in chords (default 10)")
    airfoil.add_argument("--wall-size", type=float, default=0.01, help="cell size on the airfoil in chords (default 0.01)")
    airfoil.add_argument("--far-size", type=float, default=0.5, help="cell size at the far field in chords (default 0.5)")
    airfoil.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    airfoil.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    airfoil.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    airfoil.set_defaults(run=_solve_airfoil_transport, reference=None)

    channel = cases.add_parser("channel-rans", help="turbulent channel (RANS, wall-resolved) against the Lee-Moser DNS")
    channel.add_argument("--re-tau", type=int, required=True, help="friction Reynolds number of the DNS: 180 or 550")
    channel.add_argument("--model", help="closure: one-equation, k-omega or k-epsilon (default from the case file: k-omega)")
    channel.add_argument("--out", type=Path, required=True, help="output directory (must be empty or new)")
    channel.add_argument("--config", type=Path, default=None, help="case file (default cases/channel_rans.toml)")
    channel.add_argument("--ny", type=int, help="cells across the channel (default from the case file)")
    channel.add_argument("--wall-ratio", type=float, help="centre-to-wall cell height ratio (default from the case file)")
    channel.add_argument("--dns", help="directory of the Lee-Moser profiles (default from the case file)")
    channel.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    channel.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    channel.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    channel.set_defaults(run=_solve_channel_rans)

    hills_rans = cases.add_parser("hills-rans", help="periodic hill at Re_H = 5600 (RANS, wall-resolved): separation and reattachment")
    hills_rans.add_argument("--alpha", type=float, required=True, help="hill slope parameter in [0.5, 3]")
    hills_rans.add_argument("--model", help="closure: one-equation, k-omega or k-epsilon (default from the case file: k-omega)")
    hills_rans.add_argument("--out", type=Path, required=True, help="output directory (must be empty or new)")
    hills_rans.add_argument("--config", type=Path, default=None, help="case file (default cases/hills_rans.toml)")
    hills_rans.add_argument("--resolution", default=None, help="cells NXxNY (default from the case file)")
    hills_rans.add_argument("--wall-ratio", type=float, help="centre-to-wall cell height ratio (default from the case file)")
    hills_rans.add_argument("--reynolds", type=float, help="Re_H (default 5600)")
    hills_rans.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    hills_rans.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    hills_rans.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    hills_rans.set_defaults(run=_solve_hills_rans)

    couple = sub.add_parser("couple", help="a trained closure network in the RANS loop, compared with the PDE model it learned from")
    couple.add_argument("--model", type=Path, required=True, help="closure checkpoint (trained on a hills-rans dataset)")
    couple.add_argument("--case", choices=["hills-rans"], default="hills-rans", help="the case (default and only: hills-rans)")
    couple.add_argument("--alpha", type=float, required=True, help="hill slope parameter in [0.5, 3]")
    couple.add_argument("--out", type=Path, required=True, help="output directory (must be empty or new)")
    couple.add_argument("--reference", type=Path, help="the PDE-model solution (a vcnn solve hills-rans output); default: solve it first")
    couple.add_argument("--resolution", default=None, help="cells NXxNY (default: the training dataset's)")
    couple.add_argument("--blend", type=int, default=0, help="iterations over which the PDE model hands over to the network (default 0)")
    couple.add_argument("--rotate", type=float, default=0.0, help="turn the whole problem by DEG degrees (frame-invariance check; default 0)")
    couple.add_argument("--tolerance", type=float, help="relative change of nu_t and velocity per iteration at convergence (default from the case file: 1e-6)")
    couple.add_argument("--relaxation", type=float, help="under-relaxation of nu_t per iteration (default from the case file: 0.7)")
    couple.add_argument("--max-iterations", type=int, help="Picard iterations before a stall is declared (default from the case file: 400)")
    couple.add_argument("--anderson", type=int, help="Anderson acceleration of nu_t over M iterations (default from the case file: 0, off)")
    couple.add_argument("--device", default="cpu", help="where the network runs: cpu or cuda (default cpu)")
    couple.add_argument("--config", type=Path, default=None, help="case file (default cases/hills_rans.toml)")
    couple.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    couple.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    couple.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    couple.set_defaults(run=_couple)

    dataset = sub.add_parser("dataset", help="solve a family of cases into one dataset directory (resumable)")
    families = dataset.add_subparsers(dest="family", required=True)
    for kind in FAMILIES.values():
        sweep = families.add_parser(kind.name, help=f"{kind.name} cases over a list or range of {kind.label}")
        flag = f"--{kind.parameter}s"
        sweep.add_argument(flag, dest="values", action="append", required=True, help="1.0:2.0:0.05 (inclusive) or 0.5,2.5; repeatable")
        sweep.add_argument("--out", type=Path, required=True, help="dataset directory (created or resumed)")
        if kind.resolution:
            sweep.add_argument("--resolution", default=None, help="cells NXxNY for every case (default: vcnn solve's)")
        sweep.add_argument("--jobs", type=int, default=1, help="cases solved at the same time (default 1)")
        sweep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        sweep.set_defaults(run=_dataset, kind=kind, resolution=None)

    train = sub.add_parser("train", help="train the network of a study file (TOML): vector-cloud or a baseline")
    train.add_argument("study", type=Path, help="study file, e.g. cases/hills_transport_demo.toml")
    train.add_argument("--out", type=Path, help="run directory (default runs/<study name>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    train.set_defaults(run=_train)

    run = sub.add_parser("run", help="the whole study: dataset, training (with baselines), evaluation, invariance (closure studies: coupled solves), report.md")
    run.add_argument("study", type=Path, help="study file, e.g. cases/hills_transport.toml")
    run.add_argument("--out", type=Path, help="run directory (default runs/<study name>); rerun to resume")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    run.set_defaults(run=_run)

    evaluate = sub.add_parser("evaluate", help="relative L2 error of a checkpoint on a dataset, with error maps")
    evaluate.add_argument("--model", type=Path, required=True, help="checkpoint (best.pt or last.pt)")
    evaluate.add_argument("--data", type=Path, required=True, help="dataset directory (vcnn dataset)")
    evaluate.add_argument("--values", "--alphas", "--aoas", dest="values", action="append", help="parameter values of the cases to evaluate (default: all in the dataset)")
    evaluate.add_argument("--out", type=Path, help="write evaluation.json and figures (reference, prediction, error) here")
    evaluate.add_argument("--rotate", type=float, metavar="DEG", help="also evaluate every case turned by DEG degrees")
    evaluate.set_defaults(run=_evaluate)

    frames = sub.add_parser("frames", help="turn a whole test field by several angles and compare each network's error")
    frames.add_argument("--model", action="append", required=True, metavar="LABEL=CKPT", help="a network to compare; repeatable")
    frames.add_argument("--fields", type=Path, required=True, help="a solved case directory (fields.vtu + meta.json)")
    frames.add_argument("--angles", default="0,35,70,90,180", help="rotation angles in degrees (default 0,35,70,90,180)")
    frames.add_argument("--out", type=Path, help="write frames.json and frames.png here")
    frames.set_defaults(run=_frames)

    check = sub.add_parser("check-invariance", help="rotate, reflect, translate and permute a field; compare predictions")
    check.add_argument("--model", type=Path, required=True, help="checkpoint")
    check.add_argument("--fields", type=Path, required=True, help="a solved case directory (fields.vtu + meta.json)")
    check.add_argument("--trials", type=int, default=3, help="random transforms of each kind (default 3)")
    check.add_argument("--json", type=Path, help="also write the report as JSON")
    check.set_defaults(run=_check_invariance)
    return parser


def _solve_hills_transport(args) -> int:
    from cases import hills_transport
    from cases.rundir import check_output
    from meshes.periodic_domain import Resolution

    nx = ny = None
    if args.resolution is not None:
        parsed = Resolution.parse(args.resolution, args.wall_ratio)
        nx, ny = parsed.nx, parsed.ny
    config = hills_transport.HillsTransportConfig(
        alpha=args.alpha,
        nx=nx,
        ny=ny or 100,
        wall_ratio=args.wall_ratio,
        transport_degree=args.degree,
        max_newton=args.max_newton,
    )
    check_output(args.out, args.overwrite)
    if args.reference is not None and not args.reference.is_file():
        raise CaseError(f"reference file {args.reference} does not exist")
    return _run_solve(args, config, hills_transport)


def _solve_airfoil_transport(args) -> int:
    from cases import airfoil_transport
    from cases.rundir import check_output

    config = airfoil_transport.AirfoilTransportConfig(
        angle_of_attack=args.aoa,
        code=args.code,
        reynolds=args.reynolds,
        radius=args.radius,
        wall_size=args.wall_size,
        far_size=args.far_size,
    )
    check_output(args.out, args.overwrite)
    return _run_solve(args, config, airfoil_transport)


def _solve_channel_rans(args) -> int:
    from cases import channel_rans

    config = channel_rans.ChannelRansConfig.from_toml(
        args.config or channel_rans.DEFAULTS, re_tau=args.re_tau, model=args.model, ny=args.ny, wall_ratio=args.wall_ratio, dns=args.dns
    )

    def results(solution, fields, stage) -> dict:
        from cases.figures import wall_profiles_png

        result = channel_rans.validation(solution, fields)
        if not args.no_figures:
            profile = (result["profile"]["y_plus"], result["profile"]["u_plus"])
            wall_profiles_png({config.model: profile}, (solution.dns["y_plus"], solution.dns["u_plus"]), stage / "profile.png", title)
        return result

    title = f"channel Re_tau = {config.re_tau}, {config.model}"
    return _run_rans(args, config, channel_rans, results, title)


def _cells(resolution: str | None) -> tuple[int | None, int | None]:
    """(nx, ny) of an NXxNY flag, (None, None) for the case file's."""
    if resolution is None:
        return None, None
    from meshes.periodic_domain import Resolution

    parsed = Resolution.parse(resolution)
    return parsed.nx, parsed.ny


def _solve_hills_rans(args) -> int:
    from cases import hills_rans

    nx, ny = _cells(args.resolution)
    config = hills_rans.HillsRansConfig.from_toml(
        args.config or hills_rans.DEFAULTS, alpha=args.alpha, model=args.model, reynolds=args.reynolds, nx=nx, ny=ny, wall_ratio=args.wall_ratio
    )

    def results(solution, fields, stage) -> dict:
        from cases.figures import streamlines_png, wall_shear_png

        result = hills_rans.separation(solution)
        if not args.no_figures:
            streamlines_png(fields, stage / "streamlines.png", title)
            wall_shear_png(solution.wall["x"], solution.wall["shear"], result["dns"] or {}, stage / "wall_shear.png", title)
        return result

    title = f"periodic hill alpha = {config.alpha:g}, Re_H = {config.reynolds:g}, {config.model}"
    return _run_rans(args, config, hills_rans, results, title)


def _metadata(args, config, statistics: dict, comm) -> dict:
    """What every solve records in meta.json: case, resolved configuration, statistics, ranks, versions."""
    from cases.provenance import provenance

    return {
        "case": args.case,
        "config": dataclasses.asdict(config),
        "statistics": statistics,
        "mpi_ranks": comm.size,
        **provenance(),
    }


def _run_rans(args, config, case, results, title: str) -> int:
    """Collective part of a RANS solve: staged output, the solve, MeshFields, then on rank 0
    `results(solution, fields, stage)` (validation numbers, kept in meta.json, and the case's
    figures) and the convergence figure, all titled `title`."""
    from mpi4py import MPI

    from cases.rundir import check_output, staged_output

    check_output(args.out, args.overwrite)
    comm = MPI.COMM_WORLD
    with staged_output(args.out, args.overwrite, comm) as stage:
        _logging(stage / "run.log" if comm.rank == 0 else None, args.quiet, stderr=comm.rank == 0)
        solution = case.solve(config, comm, msh_path=stage / "mesh.msh")
        fields = solution.mesh_fields(_metadata(args, config, solution.statistics(), comm))
        if comm.rank == 0:
            result = results(solution, fields, stage)
            if not args.no_figures:
                from cases.figures import rans_history_png

                rans_history_png(solution.rans.history, stage / "convergence.png", title)
            fields.metadata["validation"] = result
            fields.write(stage)
            summary = {k: v for k, v in result.items() if k not in ("profile", "crossings")}
            logging.getLogger("vcnn").info("done: %s", json.dumps({"out": str(args.out), "iterations": solution.rans.iterations, **summary}))
        logging.shutdown()
    return 0


def _couple(args) -> int:
    """Validation (checkpoint, alpha, reference, output) before any work, then the collective part."""
    from cases import coupling, hills_rans
    from cases.rundir import check_output

    if args.blend < 0:
        raise CaseError(f"--blend must be 0 or more iterations, got {args.blend}")
    network, state = coupling.load_closure(args.model, args.device)
    nx, ny = _cells(args.resolution or state.get("resolution"))
    model = FAMILIES[state["family"]].model
    config = hills_rans.HillsRansConfig.from_toml(
        args.config or hills_rans.DEFAULTS, alpha=args.alpha, model=model, nx=nx, ny=ny, rotate=args.rotate,
        tolerance=args.tolerance, relaxation=args.relaxation, max_iterations=args.max_iterations, anderson=args.anderson,
    )
    reference = None if args.reference is None else coupling.read_reference(args.reference, args.alpha)
    check_output(args.out, args.overwrite)
    return _run_couple(args, config, network, reference)


def _run_couple(args, config, network, reference) -> int:
    """The PDE-model solve (unless given), the coupled solve, the comparison; on a divergence or
    stall, the last finite state and the diagnosis are kept in --out and the exit code is 2."""
    from mpi4py import MPI

    from cases import coupling, hills_rans
    from cases.figures import closure_profiles_png, comparison_png, rans_history_png, streamlines_png, wall_shear_png
    from cases.rundir import staged_output
    from solvers.errors import RansFailure
    from solvers.export import to_mesh_fields

    comm = MPI.COMM_WORLD
    title = f"alpha = {config.alpha:g}: network in the loop of {config.model}"
    failure = None
    with staged_output(args.out, args.overwrite, comm) as stage:
        _logging(stage / "run.log" if comm.rank == 0 else None, args.quiet, stderr=comm.rank == 0)
        if reference is None:
            logging.getLogger("vcnn").info("solving the PDE model (%s) for comparison", config.model)
            pde = hills_rans.solve(dataclasses.replace(config, rotate=0.0), comm)
            pde_fields = pde.mesh_fields(_metadata(args, config, pde.statistics(), comm))
            reference = (pde_fields, hills_rans.separation(pde), pde.rans.seconds)
            if comm.rank == 0:
                pde_fields.metadata["validation"] = reference[1]
                pde_fields.write(stage / "pde")
        run = {"case": "couple", "checkpoint": str(args.model), "blend": args.blend}
        try:
            solution = hills_rans.solve(config, comm, stage / "mesh.msh", coupling.make_closure(network, args.blend))
        except RansFailure as err:
            failure = err
            metadata = _metadata(args, config, {"rans_iterations": len(err.history), "history": err.history}, comm)
            metadata.update(run, status="failed", error=str(err), worst_nodes=err.worst)
            fields = to_mesh_fields(err.flow.domain, err.flow.arrays(), {**err.flow.metadata(), **metadata})
            if comm.rank == 0:
                fields.write(stage)
                if err.history and not args.no_figures:
                    rans_history_png(err.history, stage / "convergence.png", title)
        else:
            metadata = _metadata(args, config, solution.statistics(), comm)
            metadata.update(run, status="converged")
            fields = solution.mesh_fields(metadata)
            if comm.rank == 0:
                pde_fields, pde_separation, pde_seconds = reference
                result = hills_rans.separation(solution)
                fields.metadata["validation"] = result
                own = coupling.own_frame(fields, config.rotate)  # compared and drawn in the PDE model's frame
                fields.metadata["comparison"] = coupling.compare(pde_fields, own, pde_separation, result)
                fields.metadata["cost"] = coupling.cost(solution.rans.history, network.timings, solution.rans.seconds, pde_seconds)
                fields.write(stage)
                if not args.no_figures:
                    rans_history_png(solution.rans.history, stage / "convergence.png", title)
                    streamlines_png(own, stage / "streamlines.png", title)
                    marks = {k: (pde_separation[k],) * 2 for k in ("separation", "reattachment") if pde_separation[k] is not None}
                    wall_shear_png(solution.wall["x"], solution.wall["shear"], marks, stage / "wall_shear.png", title, "PDE model")
                    closure_profiles_png(coupling.profiles(pde_fields), coupling.profiles(own), stage / "profiles.png", title)
                    comparison_png(pde_fields, "nu_t", own["nu_t"], stage / "nu_t.png", f"{title}: nu_t, PDE model / network / difference")
                summary = {"out": str(args.out), "iterations": solution.rans.iterations, **fields.metadata["comparison"], "cost": fields.metadata["cost"]}
                logging.getLogger("vcnn").info("done: %s", json.dumps(summary))
        logging.shutdown()
    if failure is not None:
        return _fail(CaseError(f"{failure} (last finite state and diagnosis in {args.out})"))
    return 0


def _dataset(args) -> int:
    from cases.dataset import sweep

    manifest = sweep(args.out, args.kind.parse(args.values), args.resolution, args.jobs, not args.quiet, args.kind)
    print(f"{args.out}: {len(manifest['cases'])} cases complete")
    return 0


def _train(args) -> int:
    from cases.training import load_study, train_study

    study = load_study(args.study)
    out = args.out or Path("runs") / study.name
    lead = _rank() == 0  # under torchrun only rank 0 reports
    _logging(None, args.quiet or not lead)
    summary = train_study(study, out, args.resume, progress=not args.quiet)
    if lead:
        print(json.dumps({"out": str(out), **summary}))
    return 0


def _run(args) -> int:
    from cases.closure_study import run_closure_study
    from cases.pipeline import run_study
    from cases.training import load_study

    study = load_study(args.study)
    out = args.out or Path("runs") / study.name
    _logging(None, args.quiet or _rank() != 0)
    if study.family.derived:  # a closure study: the network goes back into the RANS loop
        report = run_closure_study(study, out, progress=not args.quiet)
    else:
        report = run_study(study, out, progress=not args.quiet)
    if report is not None:
        print(f"report: {report}")
    return 0


def _evaluate(args) -> int:
    from cases.dataset import load_manifest
    from cases.training import evaluate_checkpoint

    values = load_manifest(args.data)[1].parse(args.values) if args.values else None
    result = evaluate_checkpoint(args.model, args.data, values, args.out, args.rotate)
    errors, rotated = result["relative_l2"], result.get("rotated_relative_l2", {})
    targets = sorted({t for case in errors.values() for t in case})
    columns = [f"{t} rel. L2 (%)" for t in targets] + [f"{t} turned {args.rotate:g} deg (%)" for t in targets if rotated]
    print("| case | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for case, values in errors.items():
        cells = [values[t] for t in targets] + [rotated[case][t] for t in targets if rotated]
        print(f"| {case} | " + " | ".join(f"{100 * v:.3f}" for v in cells) + " |")
    return 0


def _frames(args) -> int:
    from cases.frames import frame_study, table

    checkpoints = {}
    for item in args.model:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise CaseError(f"--model takes LABEL=CHECKPOINT, got {item!r}")
        checkpoints[label] = Path(path)
    try:
        angles = [float(a) for a in args.angles.split(",")]
    except ValueError:
        raise CaseError(f"--angles takes numbers separated by commas, got {args.angles!r}") from None
    print(table(frame_study(checkpoints, args.fields, angles, args.out)))
    return 0


def _check_invariance(args) -> int:
    from cases.training import check_checkpoint_invariance

    if args.trials < 1:
        raise CaseError("--trials must be at least 1")
    from cases.rundir import write_json

    report = check_checkpoint_invariance(args.model, args.fields, args.trials)
    print(report["table"])
    if args.json:
        write_json(args.json, {k: v for k, v in report.items() if k != "table"})
    if report["violations"]:
        print(f"vcnn: declared invariance violated: {', '.join(report['violations'])}", file=sys.stderr)
        return EXIT_VIOLATION
    return 0


def _run_solve(args, config, case) -> int:
    """Collective part: everything after validation (FEniCSx imported only here). `case` is
    the case module (`hills_transport` or `airfoil_transport`)."""
    from mpi4py import MPI

    from cases import hills_transport
    from cases.figures import field_png
    from cases.rundir import staged_output
    from cases.scalar_transport import mesh_fields

    comm = MPI.COMM_WORLD
    with staged_output(args.out, args.overwrite, comm) as stage:
        _logging(stage / "run.log" if comm.rank == 0 else None, args.quiet, stderr=comm.rank == 0)
        solution = case.solve(config, comm, msh_path=stage / "mesh.msh")
        solution.domain.write_xdmf(stage / "mesh.xdmf")
        metadata = _metadata(args, config, solution.statistics(), comm)
        if solution.periods is not None:
            metadata["periods"] = solution.periods
        if args.reference is not None:
            metadata["reference_comparison"] = hills_transport.compare_with_reference(solution, args.reference)
        fields = mesh_fields(solution, metadata)
        if comm.rank == 0:
            fields.write(stage)
            if not args.no_figures:
                window = getattr(case, "FIGURE_WINDOW", None)
                field_png(fields, "velocity", stage / "velocity_magnitude.png", "|u|", window)
                field_png(fields, "concentration", stage / "concentration.png", "c", window)
            summary = {"out": str(args.out), **metadata["statistics"]["timings_s"]}
            if "reference_comparison" in metadata:
                summary.update(metadata["reference_comparison"])
            logging.getLogger("vcnn").info("done: %s", json.dumps(summary))
        logging.shutdown()
    return 0


def _logging(path: Path | None, quiet: bool, stderr: bool = True) -> None:
    """Progress on stderr (warnings only if `quiet`) and, with `path`, everything in a log file."""
    handlers: list[logging.Handler] = []
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
        handlers[-1].setLevel(logging.WARNING if quiet else logging.INFO)
    if path is not None:
        handlers.append(logging.FileHandler(path))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        handlers=handlers or [logging.NullHandler()],
        force=True,
    )


if __name__ == "__main__":
    sys.exit(main())
