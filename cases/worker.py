"""The internal entry point of the workers that datasets and studies start: one job from a file.

    python -m cases.worker JOB.json
    JOB: {"solve": {"flow": NAME, "values": {...}, "out": DIR}}           one case of a flow
      or {"couple": {"checkpoint": ..., "alpha": ..., "out": DIR, ...}}   one coupled solve

A job is plain data, so the workflows do not depend on the command line's option names. Errors
print one line and exit with code 2, as the command line does.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from cases.signals import interruptible, stopped


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


_RUNNING: set[subprocess.Popen] = set()
"""The worker processes of this process that are running now."""


def start(job: dict, env: dict | None = None) -> str | None:
    """Run `job` in a worker process; its one-line error, or None. Interrupted, the worker is
    stopped by SIGTERM (so that it removes its unfinished output) before the interrupt goes on."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.json"
        path.write_text(json.dumps(job))
        process = subprocess.Popen([sys.executable, "-m", "cases.worker", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        _RUNNING.add(process)
        try:
            _, stderr = process.communicate()
        except BaseException:
            _stop(process)
            raise
        finally:
            _RUNNING.discard(process)
    if process.returncode != 0:
        lines = stderr.strip().splitlines()
        return lines[-1] if lines else f"exit code {process.returncode}"
    return None


@contextlib.contextmanager
def pool(workers: int):
    """Yield `submit(job) -> Future` that runs jobs `workers` at a time (each single-threaded when
    several run). Interrupted, the jobs not started are dropped and the running workers stopped
    before the interrupt goes on."""
    env = dict(os.environ, OMP_NUM_THREADS="1") if workers > 1 else None
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
        try:
            yield lambda job: executor.submit(start, job, env)
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            for process in list(_RUNNING):
                _stop(process)
            raise


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def main(argv: list[str]) -> int:
    from cases.cli import project_error

    try:
        ((kind, arguments),) = json.loads(Path(argv[0]).read_text()).items()
        with interruptible():
            JOBS[kind](**arguments)
    except KeyboardInterrupt as err:
        stop = stopped(err)
        print(f"vcnn: stopped by {stop}", file=sys.stderr)
        return stop.exit_code
    except Exception as err:
        if not project_error(err):
            raise
        print(f"vcnn: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
