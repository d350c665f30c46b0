"""`vcnn train` and `vcnn run`: the network of a study file, or the whole study with its report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cases.cli.common import progress_option, rank


def add_parsers(sub) -> None:
    train = sub.add_parser("train", help="train the network of a study file (TOML): vector-cloud or a baseline")
    train.add_argument("study", type=Path, help="study file, e.g. cases/hills_transport_demo.toml")
    train.add_argument("--out", type=Path, help="run directory (default runs/<study name>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    train.add_argument("--accept-changes", action="store_true", help="with --resume: go on with the study's changed [training] settings (recorded in study.json)")
    progress_option(train)
    train.set_defaults(run=run_train)

    study = sub.add_parser("run", help="the whole study: dataset, training (with baselines), evaluation, invariance (closure studies: coupled solves), report.md")
    study.add_argument("study", type=Path, help="study file, e.g. cases/hills_transport.toml")
    study.add_argument("--out", type=Path, help="run directory (default runs/<study name>); rerun to resume")
    progress_option(study)
    study.set_defaults(run=run_study)


def run_train(args) -> int:
    from cases.errors import CaseError
    from cases.flows.run import setup_logging
    from cases.studies.train import train_study
    from cases.study import load_study

    if args.accept_changes and not args.resume:
        raise CaseError("--accept-changes goes with --resume")
    study = load_study(args.study)
    out = args.out or Path("runs") / study.name
    lead = rank() == 0  # under torchrun only rank 0 reports
    setup_logging(None, args.quiet or not lead)
    with _held(out, lead):
        summary = train_study(study, out, args.resume, progress=not args.quiet, accept_changes=args.accept_changes)
    if lead:
        print(json.dumps({"out": str(out), **summary}))
    return 0


def run_study(args) -> int:
    from cases.flows.run import setup_logging
    from cases.studies.closure import run_closure_study
    from cases.studies.surrogate import run_study as run_surrogate_study
    from cases.studies.phll_closure import is_phll_study, load_phll_study, run_phll_study
    from cases.study import load_study

    if is_phll_study(args.study):  # the LES-trained closure of the Closure Challenge hills
        study = load_phll_study(args.study)
        setup_logging(None, args.quiet)
        out = args.out or Path("runs") / study.name
        with _held(out, True):
            print(f"report: {run_phll_study(study, out, progress=not args.quiet)}")
            _against_record(args.study, out)
        return 0
    study = load_study(args.study)
    out = args.out or Path("runs") / study.name
    setup_logging(None, args.quiet or rank() != 0)
    run = run_closure_study if study.family.derived else run_surrogate_study  # closure studies couple the network
    with _held(out, rank() == 0):
        report = run(study, out, progress=not args.quiet)
        if rank() == 0:
            _against_record(args.study, out)
    if report is not None:
        print(f"report: {report}")
    return 0


def _against_record(study: Path, out: Path) -> None:
    """OUT/record.json, compared with the study's kept record (`cases.records`): a rerun that does
    not reproduce it says so on stderr."""
    from cases.records import check, record_path

    differences = check(study, out)
    if differences:
        print(f"vcnn: this run differs from its record {record_path(study)} in {len(differences)} values (see the log above)", file=sys.stderr)


def _held(out: Path, lead: bool):
    """The run directory locked for this run (by rank 0 alone under torchrun)."""
    import contextlib

    from cases.rundir import check_output_directory, run_lock

    check_output_directory(out)
    return run_lock(out) if lead else contextlib.nullcontext()
