"""Faults and concurrent runs (issue 19): limits on what a command may ask of the machine, a run
directory held by one run at a time, signals that leave nothing half-written, and what killed
runs left behind removed by the next run in the same place.

The solves are tiny (hills-transport, 30 x 12 cells) and run as `vcnn` subprocesses, so that a
signal reaches a real command."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cases import limits
from cases.cli import main
from cases.flows import hills_rans, hills_transport, phll_rans
from cases.rundir import run_lock

SOLVE = ("solve", "hills-transport", "--alpha", "1", "--resolution", "30x12", "--no-figures", "-q")
SLOW = ("solve", "hills-transport", "--alpha", "1", "--resolution", "240x80", "--no-figures", "-q")
"""Seconds of solving after its first Newton iterations: time for a signal to arrive inside the solve."""


def solving(folder, pattern: str = ".run.partial-*"):
    """The run staged in `folder` is inside its flow solve (its log says so)."""
    return lambda: any("navier-stokes: iteration 1" in log.read_text() for log in folder.glob(f"{pattern}/run.log"))


def vcnn(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cases.cli", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(found, process, seconds: float = 120):
    """Poll until `found()` is true (the process still running)."""
    end = time.monotonic() + seconds
    while not found():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def one_line(err: str, start: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith(start), err
    return lines[0]


def refused(capsys, argv, match: str) -> None:
    code = main([str(a) for a in argv])
    line = one_line(capsys.readouterr().err, "vcnn: error:")
    assert code == 2 and match in line, line


# --- limits -------------------------------------------------------------------------------------


def test_a_mesh_larger_than_the_memory_is_refused_before_any_work(tmp_path, capsys):
    refused(capsys, [*SOLVE[:4], "--resolution", "100000000x100000000", "--out", tmp_path / "run"], "100000000 x 100000000 = 10,000,000,000,000,000 cells would need about")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flow", [hills_transport, hills_rans, phll_rans])
def test_the_memory_estimate_scales_with_the_cells_and_force_lifts_it(flow, monkeypatch):
    where = {"geometry": "alpha_10"} if flow is phll_rans else {"alpha": 1.0}
    big, small = flow.configure(**where, nx=1000, ny=1000), flow.configure(**where, nx=40, ny=20)
    monkeypatch.setattr(limits, "available_memory", lambda: int(2e9))
    with pytest.raises(limits.CaseError, match=r"a solve of 1000 x 1000 = 1,000,000 cells would need about [0-9.]+ GB of memory, and this machine has 2 GB free"):
        limits.check_solve(flow, big, force=False)
    limits.check_solve(flow, big, force=True)
    one = limits.PROCESS_BYTES + 800 * flow.MEMORY_PER_CELL
    monkeypatch.setattr(limits, "available_memory", lambda: int(1.5 * one))
    limits.check_solve(flow, small, force=False)
    with pytest.raises(limits.CaseError, match="2 solves at once of 40 x 20 = 800 cells"):
        limits.check_solve(flow, small, force=False, copies=2)


def test_a_dataset_range_is_counted_before_it_is_listed(tmp_path, capsys):
    started = time.perf_counter()
    refused(capsys, ["dataset", "hills-transport", "--alphas", "1:2:1e-9", "--out", tmp_path / "d"], "--alphas 1:2:1e-9 asks for 1,000,000,000 cases; the limit is 1,000")
    assert time.perf_counter() - started < 5 and not (tmp_path / "d").exists()
    refused(capsys, ["dataset", "hills-transport", "--alphas", "1:2:0.0001", "--alphas", "3", "--out", tmp_path / "d"], "the limit is 1,000")


def test_a_dataset_larger_than_the_disk_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "DISK_PER_CELL", 1e12)
    refused(capsys, ["dataset", "hills-transport", "--alphas", "1,1.5", "--resolution", "30x12", "--out", tmp_path / "d"], "2 cases of 360 cells would need about")
    assert not (tmp_path / "d" / "cases").exists()


# --- one run per directory ----------------------------------------------------------------------


def test_a_second_run_into_a_held_directory_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", f"from cases.rundir import run_lock\nwith run_lock({str(out)!r}):\n    print('held', flush=True)\n    input()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = vcnn(*SOLVE, "--out", out)
        _, err = second.communicate(timeout=300)
        line = one_line(err, "vcnn: error:")
        assert second.returncode == 2 and f"is being written by another run (pid {holder.pid}" in line, line
        assert not out.exists()
    finally:
        holder.communicate("\n", timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the lock went with its holder


def test_two_solves_into_one_place_at_once_one_is_refused_and_nothing_is_lost(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "meta.json").write_text('{"earlier": true}')  # a complete earlier result
    first = vcnn(*SLOW, "--out", out, "--overwrite")
    wait_for(solving(tmp_path), first)
    second = vcnn(*SOLVE, "--out", out, "--overwrite")
    _, err = second.communicate(timeout=300)
    assert second.returncode == 2 and f"(pid {first.pid}, vcnn solve hills-transport" in one_line(err, "vcnn: error:")
    first.terminate()
    assert first.wait(timeout=120) == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and json.loads((out / "meta.json").read_text()) == {"earlier": True}


def test_a_lock_dies_with_its_holder(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", f"from cases.rundir import run_lock\nwith run_lock({str(out)!r}):\n    print('held', flush=True)\n    input()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    with run_lock(out):  # the kernel released the killed holder's lock
        assert (tmp_path / ".run.lock").read_text().startswith(f"pid {os.getpid()}")


def test_stale_partial_output_is_removed_by_the_next_holder(tmp_path, caplog):
    out = tmp_path / "run"
    (tmp_path / ".run.partial-abc").mkdir()
    (tmp_path / ".run.partial-abc" / "fields.vtu").write_text("half")
    out.mkdir()
    (out / ".last.pt.x1.partial").write_text("half")
    (out / "kept.json").write_text("{}")
    with run_lock(out):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and [p.name for p in out.iterdir()] == ["kept.json"]
    assert "removed 2 unfinished output(s)" in caplog.text


# --- signals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("number, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_solve_leaves_nothing_and_says_so(tmp_path, number, code):
    previous = tmp_path / "run"
    previous.mkdir()
    (previous / "meta.json").write_text('{"earlier": true}')
    solve = vcnn(*SLOW, "--out", previous, "--overwrite")
    wait_for(solving(tmp_path), solve)
    solve.send_signal(number)
    _, err = solve.communicate(timeout=120)
    assert solve.returncode == code, err
    one_line(err, f"vcnn: stopped by {signal.Signals(number).name}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no partial, no lock
    assert json.loads((previous / "meta.json").read_text()) == {"earlier": True}  # the earlier result kept


def test_sigterm_stops_a_dataset_and_its_workers_and_a_rerun_completes_it(tmp_path):
    data = tmp_path / "d"
    sweep = vcnn("dataset", "hills-transport", "--alphas", "1,1.2,1.4", "--resolution", "120x40", "--jobs", "2", "-q", "--out", data)
    wait_for(solving(data / "cases", ".alpha_*.partial-*"), sweep)
    sweep.send_signal(signal.SIGTERM)
    _, err = sweep.communicate(timeout=120)
    one_line(err, "vcnn: stopped by SIGTERM")
    assert sweep.returncode == 143
    time.sleep(0.5)  # the workers have ended: nothing changes under the dataset any more
    left = sorted(str(p.relative_to(data)) for p in data.rglob("*"))
    assert not [name for name in left if "partial" in name or name.endswith(".lock")], left
    rerun = vcnn("dataset", "hills-transport", "--alphas", "1,1.2,1.4", "--resolution", "120x40", "--jobs", "2", "-q", "--out", data)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert "3 cases complete" in out


def test_a_killed_solve_leaves_a_partial_that_the_next_run_removes(tmp_path):
    solve = vcnn(*SLOW, "--out", tmp_path / "run")
    wait_for(solving(tmp_path), solve)
    solve.kill()
    solve.wait()
    assert list(tmp_path.glob(".run.partial-*"))  # SIGKILL cannot be caught
    again = vcnn(*SOLVE, "--out", tmp_path / "run")
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and (tmp_path / "run" / "fields.vtu").is_file()


def test_a_signal_inside_a_finalizer_is_not_lost():
    """Python drops an exception raised in a finalizer; the interrupt must come again after it."""
    code = """
import gc, os, signal, time, weakref
from cases.signals import interruptible, Interrupted
class Thing: pass
try:
    with interruptible():
        thing = Thing()
        weakref.finalize(thing, lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(0.2)))
        del thing
        gc.collect()
        time.sleep(5)
    print("not stopped")
except Interrupted as err:
    print("stopped", err.exit_code)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "stopped 143" and "Exception ignored" not in result.stderr, result.stdout + result.stderr
