"""A neural closure in the RANS loop, end to end on coarse hills: `vcnn run` of a closure study
(dataset -> training -> a priori -> coupled solve -> report), `vcnn couple` in a turned frame,
a stalled coupled solve that keeps its last state, and bad input."""

import json
import shutil

import numpy as np
import pytest

from meshes.fields import MeshFields
from tests.cases.test_cli import assert_one_line_error, vcnn

pytest.importorskip("dolfinx")

STUDY = """
[dataset]
family = "hills-rans"
directory = "{data}"
resolution = "24x24"
jobs = 2

[split]
train = ["1.0", "1.5"]
validate = ["1.25"]
test = ["1.125"]

[cloud]
shape = "ball"
radius = 0.5

[features]
vectors = ["position", "relative_velocity"]
scalars = ["strain_rate", "wall_distance", "relative_speed", "proximity"]

[model]
targets = ["log_nu_t_ratio"]
embedding = [8, 16]
m_prime = 4
fitting = [32]
invariant_norm = true

[training]
epochs = 30
batch_size = 128
n_points = 32
learning_rate = 1e-2
schedule = "cosine"
seed = 0

[coupling]
rotate_deg = 30
anderson = 3

[robustness]
seeds = [0, 1]
"""


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("closure")
    study = root / "closure.toml"
    study.write_text(STUDY.format(data=root / "data"))
    out = root / "run"
    result = vcnn("run", study, "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    return root, out


def test_the_robustness_study_trains_another_seed_and_couples_it(study_run):
    root, out = study_run
    main = json.loads((out / "vcnn" / "training.json").read_text())
    other = json.loads((out / "robustness" / "seed_1" / "vcnn" / "training.json").read_text())
    assert other["best_weights_sha256"] != main["best_weights_sha256"]  # trained again, from its own seed
    assert json.loads((out / "robustness" / "seed_1" / "vcnn" / "study.json").read_text())["training"]["seed"] == 1
    assert not (out / "robustness" / "seed_0").exists()  # the study's own seed is its main run
    seeded = MeshFields.read(out / "robustness" / "seed_1" / "couple" / "alpha_1.1250")
    assert seeded.metadata["status"] == "converged"
    report = (out / "report.md").read_text()
    assert "## Robustness" in report and "Converged: 2 of 2 coupled solves." in report
    record = json.loads((out / "record.json").read_text())  # what a rerun of the study is compared with
    assert set(record["weights"]) == {"vcnn", "robustness/seed_1/vcnn"}
    assert record["numbers"]["robustness.1.coupled.alpha_1.1250.iterations"] == json.loads((out / "report.json").read_text())["robustness"]["1"]["coupled"]["alpha_1.1250"]["iterations"]
    assert f"| 1 | {100 * other['best_validation_rel_l2']:.2f} | {other['best_weights_sha256'][:12]} | alpha_1.1250 | converged" in report


def test_closure_study_trains_couples_and_reports(study_run):
    root, out = study_run
    report = (out / "report.md").read_text()
    assert "A priori" in report and "A posteriori" in report
    apriori = json.loads((out / "apriori.json").read_text())
    assert set(apriori) == {"alpha_1.2500", "alpha_1.1250"}
    for r in apriori.values():
        print(r)
        assert 0 < r["nu_t_rel_l2"] < 0.5  # a 1,000-parameter network, 30 short epochs: measured 0.32
    coupled = MeshFields.read(out / "couple" / "alpha_1.1250")
    meta = coupled.metadata
    print(meta["comparison"], meta["cost"])
    assert meta["status"] == "converged" and coupled["nu_t"].min() >= 0
    history = meta["statistics"]["history"]
    assert max(history[-1]["nu_t_change"], history[-1]["velocity_change"]) < 1e-8  # [coupling] tolerance
    residuals = [h["momentum_residual"] for h in history]
    assert residuals[-1] < 1e-6 * max(residuals)  # the residual reduction
    assert meta["comparison"]["velocity_rel_l2"] < 0.2
    cost = meta["cost"]
    # the four parts cover the loop but for its own bookkeeping (Anderson mixing, residuals): 98.6 %
    # on this small case once the network got faster (99 to 100 % before)
    assert cost["network_s"] > 0 and cost["clouds_s"] > 0 and 0.95 < sum(cost["shares"].values()) < 1.01
    invariance = json.loads((out / "vcnn" / "invariance.json").read_text())
    assert invariance["violations"] == []


def test_the_coupled_solve_in_a_turned_frame_is_the_turned_solution(study_run):
    root, out = study_run
    plain, turned = MeshFields.read(out / "couple" / "alpha_1.1250"), MeshFields.read(out / "couple" / "alpha_1.1250_turned")
    angle = np.deg2rad(30.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert np.allclose(turned.points @ rotation, plain.points, atol=1e-12)
    difference = np.linalg.norm(turned["velocity"] @ rotation - plain["velocity"]) / np.linalg.norm(plain["velocity"])
    print("turned by 30 degrees: velocity differs by", difference)
    assert difference < 1e-6
    # Both solves stop at a change of 1e-8 per iteration, one iteration apart at most: nu_t agrees
    # to that in norm, and node by node except where it is a millionth of its maximum (next to the
    # walls, where 2 of 625 nodes differed by 6e-5 of their 7e-8 on one machine).
    assert np.linalg.norm(turned["nu_t"] - plain["nu_t"]) < 1e-7 * np.linalg.norm(plain["nu_t"])
    assert np.allclose(turned["nu_t"], plain["nu_t"], rtol=1e-6, atol=1e-6 * plain["nu_t"].max())
    assert turned.metadata["comparison"]["velocity_rel_l2"] == pytest.approx(plain.metadata["comparison"]["velocity_rel_l2"], rel=1e-5)
    assert "Frame invariance of the coupled solve" in (out / "report.md").read_text()


def test_a_stalled_coupled_solve_keeps_its_last_state_and_says_where(study_run, tmp_path):
    root, out = study_run
    config = tmp_path / "short.toml"
    config.write_text("[mesh]\nny = 24\nnx = 24\nwall_ratio = 100.0\n[rans]\nmax_iterations = 3\n")
    target = tmp_path / "stalled"
    result = vcnn(
        "couple", "--model", out / "vcnn" / "best.pt", "--alpha", "1.125", "--config", config,
        "--reference", root / "data" / "cases" / "alpha_1.1250", "--anderson-shrink", "0.5", "--out", target, "-q",
    )
    assert_one_line_error(result, "RANS stalled after 3 iterations")
    assert "worst node at x = " in result.stderr and str(target) in result.stderr
    fields = MeshFields.read(target)
    meta = fields.metadata
    assert meta["status"] == "failed" and len(meta["statistics"]["history"]) == 3 and len(meta["worst_nodes"]) == 5
    assert meta["config"]["max_iterations"] == 3 and meta["config"]["alpha"] == 1.125 and meta["blend"] == 0  # what was run
    assert meta["config"]["anderson_shrink"] == 0.5  # the flag reaches the solve's settings (the loop's use of it: tests/solvers)
    assert np.isfinite(fields["velocity"]).all() and np.isfinite(fields["nu_t"]).all()
    assert (target / "convergence.png").is_file()


def test_newton_krylov_steps_reach_the_anderson_solution(study_run, tmp_path):
    """The study's network coupled with Newton-Krylov steps once the nu_t residual is below 1e-2:
    the converged velocity of the study's Anderson solve (both stop at a change of 1e-8)."""
    root, out = study_run
    target = tmp_path / "newton"
    result = vcnn(
        "couple", "--model", out / "vcnn" / "best.pt", "--alpha", "1.125", "--reference", root / "data" / "cases" / "alpha_1.1250",
        "--anderson", "3", "--newton-krylov", "1e-2", "--tolerance", "1e-8", "--max-iterations", "60", "--no-figures", "--out", target, "-q",
    )
    assert result.returncode == 0, result.stderr
    newton, anderson = MeshFields.read(target), MeshFields.read(out / "couple" / "alpha_1.1250")
    steps = [h["newton"] for h in newton.metadata["statistics"]["history"] if "newton" in h]
    print([(s["krylov"], s["step_length"], s["residual"]) for s in steps])
    assert steps and newton.metadata["config"]["newton_krylov"] == 1e-2
    # the steps' time is its own part: the network's includes their calls, so no exchange is left over
    cost = newton.metadata["cost"]
    assert cost["newton_s"] > 0 and "exchange_s" not in cost and min(cost["shares"].values()) > 0
    difference = np.linalg.norm(newton["velocity"] - anderson["velocity"]) / np.linalg.norm(anderson["velocity"])
    print("Newton-Krylov against Anderson: velocity", difference)
    assert difference < 1e-6


def test_the_pde_model_solved_first_keeps_the_case_file_settings(study_run, tmp_path):
    """`vcnn couple` without --reference: --anderson and --tolerance set the coupled solve only (k-omega
    with Anderson mixing at 1e-8 stalled on the 64 x 64 hills and was taken for the network's stall)."""
    root, out = study_run
    config = tmp_path / "coarse.toml"
    config.write_text("[mesh]\nny = 24\nnx = 24\nwall_ratio = 100.0\n")
    target = tmp_path / "solved_first"
    result = vcnn("couple", "--model", out / "vcnn" / "best.pt", "--alpha", "1.125", "--config", config, "--anderson", "3",
                  "--tolerance", "1e-7", "--no-figures", "--out", target, "-q")
    assert result.returncode == 0, result.stderr
    pde, coupled = MeshFields.read(target / "pde").metadata["config"], MeshFields.read(target).metadata["config"]
    assert (pde["anderson"], pde["tolerance"]) == (0, 1e-6) and (coupled["anderson"], coupled["tolerance"]) == (3, 1e-7)


def test_a_reference_without_the_recirculation_end_gets_it_from_its_crossings(study_run, tmp_path):
    """References solved before `recirculation_end` was recorded stay usable."""
    from cases.studies.coupling import read_reference

    root, _ = study_run
    older = tmp_path / "older"
    shutil.copytree(root / "data" / "cases" / "alpha_1.1250", older)
    meta = json.loads((older / "meta.json").read_text())
    recorded = meta["metadata"]["validation"].pop("recirculation_end")
    (older / "meta.json").write_text(json.dumps(meta))
    assert recorded is not None and read_reference(older, 1.125)[1]["recirculation_end"] == recorded


def test_bad_input_is_refused_before_any_work(study_run, tmp_path):
    root, out = study_run
    checkpoint, reference = out / "vcnn" / "best.pt", root / "data" / "cases" / "alpha_1.1250"
    target = tmp_path / "never"
    cases = [
        (("--model", tmp_path / "missing.pt", "--alpha", "1"), "does not exist"),
        (("--model", checkpoint, "--alpha", "5"), "alpha must be in [0.5, 3]"),
        (("--model", checkpoint, "--alpha", "1.0", "--reference", reference), "is at alpha = 1.125, not 1"),
        (("--model", checkpoint, "--alpha", "1.125", "--blend", "-1"), "--blend must be 0 or more"),
        (("--model", checkpoint, "--alpha", "1.125", "--anderson-shrink", "1.5"), "shrink must lie in (0, 1]"),
        (("--model", checkpoint, "--geometry", "alpha_05_10071_4048", "--anderson-shrink", "0.5"), "--anderson-shrink: for closures coupled by --alpha"),
    ]
    for args, match in cases:
        assert_one_line_error(vcnn("couple", *args, "--out", target), match)
        assert not target.exists()


def test_each_rank_takes_its_own_gpu(monkeypatch):
    import torch

    from cases.studies.coupling import rank_device

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert rank_device("cuda") == "cuda:0" and rank_device("cpu") == "cpu" and rank_device("cuda:2") == "cuda:2"  # rank 0 here
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert rank_device("cuda") == "cuda"


def test_each_rank_takes_its_share_of_the_cores():
    from cases.studies.coupling import cores_per_rank

    assert cores_per_rank(2, 2, 2) == 1  # unbound: both ranks see both cores
    assert cores_per_rank(2, 1, 2) == 1  # bound to a core each
    assert cores_per_rank(16, 16, 2) == 8 and cores_per_rank(16, 4, 2) == 4 and cores_per_rank(2, 2, 1) == 2
    assert cores_per_rank(2, 2, 4) == 1  # more ranks than cores: one thread each, not none


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="mpirun not installed")
def test_ranks_take_their_share_of_the_cores_under_mpirun():
    import os
    import subprocess
    import sys

    script = ("import json, torch; from mpi4py import MPI; from cases.studies.coupling import rank_device; "
              "before = torch.get_num_threads(); rank_device('cpu'); "
              "rows = MPI.COMM_WORLD.gather((before, torch.get_num_threads())); MPI.COMM_WORLD.rank or print(json.dumps(rows))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    from cases.studies.coupling import cores_per_rank

    cores, visible = os.cpu_count() or 1, len(os.sched_getaffinity(0))  # unbound ranks see what this process sees
    for ranks, omp, expected in ((1, None, cores_per_rank(cores, visible, 1)), (2, None, cores_per_rank(cores, visible, 2)), (2, "3", None)):  # OMP_NUM_THREADS: torch's choice kept
        cmd = [shutil.which("mpirun"), "-n", str(ranks), "--bind-to", "none", "--oversubscribe", sys.executable, "-c", script]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env if omp is None else {**env, "OMP_NUM_THREADS": omp}, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        rows = json.loads(result.stdout.strip().splitlines()[-1])
        assert [after for _, after in rows] == ([before for before, _ in rows] if expected is None else [expected] * ranks), (ranks, omp, rows)


def test_the_coupling_device_reaches_each_coupled_solve_and_a_bad_one_is_one_line(tmp_path, monkeypatch):
    from cases.studies import closure
    from cases.study import CouplingOptions

    jobs = []
    monkeypatch.setattr(closure, "start", lambda job: jobs.append(job) or "stopped here")
    result = closure.couple(tmp_path / "best.pt", tmp_path / "ref", 1.125, tmp_path / "out", CouplingOptions(device="cuda:1"))
    assert result["status"] == "failed" and jobs[0]["couple"]["device"] == "cuda:1"
    study = tmp_path / "closure.toml"
    study.write_text(STUDY.format(data=tmp_path / "data").replace("anderson = 3", 'anderson = 3\ndevice = "gpu"'))
    assert_one_line_error(vcnn("run", study, "--out", tmp_path / "run"), "[coupling] unknown device 'gpu'")
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()
