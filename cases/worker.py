"""The internal entry point of the workers that datasets and studies start: one job from a file.

    python -m cases.worker JOB.json
    JOB: {"solve": {"flow": NAME, "values": {...}, "out": DIR}}           one case of a flow
      or {"couple": {"checkpoint": ..., "alpha": ..., "out": DIR, ...}}   one coupled solve

A job is plain data, so the workflows do not depend on the command line's option names. Errors
print one line and exit with code 2, as the command line does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def solve(flow: str, values: dict, out: str) -> None:
    from cases.flows import flow as named
    from cases.flows.run import solve_into

    case = named(flow)
    solve_into(case, case.configure(**values), Path(out), figures=False, quiet=True)


def couple(checkpoint: str, out: str, blend: int = 0, **options) -> None:
    from cases.studies.coupling import CoupledRun, couple_into, prepare

    config, network, reference = prepare(Path(checkpoint), **options)
    couple_into(CoupledRun(Path(checkpoint), Path(out), blend, quiet=True), config, network, reference)


JOBS = {"solve": solve, "couple": couple}


def start(job: dict, env: dict | None = None) -> str | None:
    """Run `job` in a worker process; its one-line error, or None."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.json"
        path.write_text(json.dumps(job))
        result = subprocess.run([sys.executable, "-m", "cases.worker", str(path)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit code {result.returncode}"
    return None


def main(argv: list[str]) -> int:
    from cases.cli import project_error

    try:
        ((kind, arguments),) = json.loads(Path(argv[0]).read_text()).items()
        JOBS[kind](**arguments)
    except Exception as err:
        if not project_error(err):
            raise
        print(f"vcnn: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
