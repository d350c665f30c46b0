"""`vcnn train`, `vcnn evaluate` and `vcnn check-invariance` on a tiny study, and bad studies."""

import json
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("dolfinx")

STUDY = """
[dataset]
directory = "{data}"
resolution = "20x12"
jobs = 2

[split]
train = ["1.0,1.5"]
validate = ["0.8"]

[cloud]
shape = "ellipse"

[features]
vectors = ["position", "velocity"]
scalars = {scalars}

[model]
kind = "{kind}"
targets = ["concentration"]
embedding = [8, 16]
m_prime = 2
fitting = [16]

[training]
epochs = {epochs}
batch_size = 128
n_points = 40
seed = 1
"""


def vcnn(*args):
    return subprocess.run([sys.executable, "-m", "cases.cli", *map(str, args)], capture_output=True, text=True, timeout=600)


def write_study(tmp_path, name="study", scalars='["strain_rate", "wall_distance", "proximity"]', epochs=2, kind="vector_cloud"):
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.format(data=tmp_path / "data", scalars=scalars, epochs=epochs, kind=kind))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("study")
    run = tmp_path / "run"
    result = vcnn("train", write_study(tmp_path), "--out", run, "-q")
    assert result.returncode == 0, result.stderr
    return tmp_path, run, json.loads(result.stdout.strip().splitlines()[-1])


def test_train_writes_checkpoints_metrics_and_the_study(trained):
    _, run, summary = trained
    assert summary["epochs"] == 2 and 0 < summary["best_validation_rel_l2"] < 1
    assert {"best.pt", "last.pt", "metrics.csv", "metrics.json", "study.json"} <= {p.name for p in run.iterdir()}


def test_resume_continues_and_a_second_run_is_refused(trained, tmp_path):
    study_dir, run, _ = trained
    refused = vcnn("train", write_study(study_dir), "--out", run, "-q")
    assert refused.returncode == 2 and "--resume" in refused.stderr
    longer = vcnn("train", write_study(study_dir, name="longer", epochs=3), "--out", run, "--resume", "--accept-changes", "-q")
    assert longer.returncode == 0, longer.stderr
    assert len(json.loads((run / "metrics.json").read_text())) == 3


def test_a_resumed_run_refuses_a_changed_study_unless_told_and_then_records_it(trained, tmp_path):
    study_dir, trained_run, _ = trained
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = json.loads((run / "metrics.json").read_text())
    faster = write_study(study_dir, name="faster", epochs=len(before) + 1)
    faster.write_text(faster.read_text().replace("seed = 1", "seed = 1\nlearning_rate = 0.005"))
    refused = vcnn("train", faster, "--out", run, "--resume", "-q")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "training.learning_rate 0.001 -> 0.005" in refused.stderr and "--accept-changes" in refused.stderr
    assert json.loads((run / "metrics.json").read_text()) == before and "0.005" not in (run / "study.json").read_text()
    accepted = vcnn("train", faster, "--out", run, "--resume", "--accept-changes", "-q")
    assert accepted.returncode == 0, accepted.stderr
    after = json.loads((run / "metrics.json").read_text())
    assert len(after) == len(before) + 1 and after[-1]["learning_rate"] > 3 * before[-1]["learning_rate"]  # the new rate runs
    record = json.loads((run / "study.json").read_text())
    assert record["training"]["learning_rate"] == 0.005
    assert record["resumed_with_changes"][-1] == {"from_epoch": len(before), "changes": {"training.learning_rate": [0.001, 0.005], "training.epochs": [len(before), len(before) + 1]}}
    wider = write_study(study_dir, name="wider", epochs=len(after) + 1)
    wider.write_text(wider.read_text().replace("embedding = [8, 16]", "embedding = [8, 32]"))
    refused = vcnn("train", wider, "--out", run, "--resume", "--accept-changes", "-q")
    assert refused.returncode == 2 and "cannot change in a resumed run" in refused.stderr, refused.stderr


def test_evaluate_and_check_invariance(trained, tmp_path):
    study_dir, run, _ = trained
    result = vcnn("evaluate", "--model", run / "best.pt", "--data", study_dir / "data", "--out", tmp_path / "eval", "--rotate", 90)
    assert result.returncode == 0, result.stderr
    assert "| alpha_0.8000 |" in result.stdout and "turned 90 deg" in result.stdout
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    errors, rotated = evaluation["relative_l2"], evaluation["rotated_relative_l2"]
    assert set(errors) == {"alpha_0.8000", "alpha_1.0000", "alpha_1.5000"}
    for case, values in errors.items():  # an invariant network does not notice the turn
        assert abs(rotated[case]["concentration"] - values["concentration"]) < 1e-5 * values["concentration"]
    assert (tmp_path / "eval" / "alpha_0.8000_concentration.png").is_file()
    check = vcnn("check-invariance", "--model", run / "best.pt", "--fields", study_dir / "data/cases/alpha_1.0000", "--json", tmp_path / "inv.json")
    assert check.returncode == 0, check.stderr
    report = json.loads((tmp_path / "inv.json").read_text())
    deviations = report["worst_relative_deviation"]
    assert set(deviations) == {"rotation", "reflection", "translation", "permutation"}
    assert max(deviations.values()) < 1e-10 and report["violations"] == []


def raw_cloud_checkpoint(trained, tmp_path):
    """A one-epoch raw_cloud network on the tiny study, and a field to check it on."""
    study_dir, _, _ = trained
    run = tmp_path / "raw"
    assert vcnn("train", write_study(study_dir, name="raw", kind="raw_cloud", epochs=1), "--out", run, "-q").returncode == 0
    return run / "last.pt", study_dir / "data/cases/alpha_1.0000"


def test_a_frame_dependent_baseline_is_reported_but_not_flagged(trained, tmp_path):
    """raw_cloud declares only translation and permutation invariance: the checker measures its
    rotation deviation and exits 0; the same network claiming rotation invariance exits 1."""
    checkpoint, fields = raw_cloud_checkpoint(trained, tmp_path)
    check = vcnn("check-invariance", "--model", checkpoint, "--fields", fields, "--json", tmp_path / "inv.json")
    assert check.returncode == 0, check.stderr
    report = json.loads((tmp_path / "inv.json").read_text())
    assert report["declared_invariant_to"] == ["translation", "permutation"]
    assert report["worst_relative_deviation"]["rotation"] > 1e-6
    assert "| rotation |" in check.stdout and "| no |" in check.stdout


def test_frame_rotation_study(trained, tmp_path):
    """`vcnn frames`: the invariant network's error is the same in every frame (float32), the
    frame-dependent one's is not; JSON, figure and table are written; bad input exits 2."""
    _, run, _ = trained
    raw, fields = raw_cloud_checkpoint(trained, tmp_path)
    out = tmp_path / "frames"
    result = vcnn("frames", "--model", f"vcnn={run / 'best.pt'}", "--model", f"raw={raw}", "--fields", fields, "--angles", "0,35,90,180", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "| vcnn |" in result.stdout and "35 deg" in result.stdout
    study = json.loads((out / "frames.json").read_text())
    vcnn_errors = [e["concentration"] for e in study["networks"]["vcnn"]["relative_l2"].values()]
    raw_errors = [e["concentration"] for e in study["networks"]["raw"]["relative_l2"].values()]
    assert len(vcnn_errors) == 4 and study["networks"]["vcnn"]["spread"]["concentration"] < 1e-5
    assert study["networks"]["raw"]["spread"]["concentration"] > 1e-3
    assert max(vcnn_errors) - min(vcnn_errors) < 1e-5 * min(vcnn_errors) and max(raw_errors) > min(raw_errors)
    assert (out / "frames.png").stat().st_size > 10_000
    bad = vcnn("frames", "--model", "no-label", "--fields", fields)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "LABEL=CHECKPOINT" in bad.stderr
    missing = vcnn("frames", "--model", f"x={tmp_path / 'none.pt'}", "--fields", fields, "--out", tmp_path / "never")
    assert missing.returncode == 2 and not (tmp_path / "never").exists()


def test_a_violated_declaration_exits_1(trained, tmp_path, monkeypatch, capsys):
    from cases.cli import main
    from vcnn.nn import ALL_TRANSFORMS
    from vcnn.nn.cloud_nets import RawCloudNet

    checkpoint, fields = raw_cloud_checkpoint(trained, tmp_path)
    monkeypatch.setattr(RawCloudNet, "invariant_to", ALL_TRANSFORMS)  # a false claim
    assert main(["check-invariance", "--model", str(checkpoint), "--fields", str(fields)]) == 1
    assert "declared invariance violated: rotation, reflection" in capsys.readouterr().err


def test_data_parallel_training_under_torchrun(trained, tmp_path):
    """Two gloo processes take the same steps as one process and end in the same error band."""
    study_dir, _, _ = trained
    study = write_study(study_dir, name="ddp", epochs=4)
    single = vcnn("train", study, "--out", tmp_path / "single", "-q")
    assert single.returncode == 0, single.stderr
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cases.cli"]
    ddp = subprocess.run([*command, "train", str(study), "--out", str(tmp_path / "ddp"), "-q"], capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr
    one, two = json.loads(single.stdout.splitlines()[-1]), json.loads(ddp.stdout.splitlines()[-1])
    assert two["processes"] == 2 and one["epochs"] == two["epochs"] == 4
    print("single", one["best_validation_rel_l2"], "ddp", two["best_validation_rel_l2"])
    assert abs(two["best_validation_rel_l2"] - one["best_validation_rel_l2"]) < 0.25 * one["best_validation_rel_l2"]
    assert json.loads((tmp_path / "ddp" / "training.json").read_text())["processes"] == 2


def test_a_data_parallel_process_that_succeeded_ends_without_the_interpreter_shutdown(monkeypatch, capsys):
    """In the shutdown gloo's worker threads can abort the process (cases.cli._end_torchrun_process):
    a process of a torchrun group leaves by os._exit with its code, its output flushed first."""
    import logging
    import os

    import torch

    from cases.cli import main

    exits = []
    monkeypatch.setattr(logging, "shutdown", lambda: None)  # would close the handlers of the tests that follow
    monkeypatch.setattr(os, "_exit", lambda code: exits.append((code, capsys.readouterr().out)))
    assert main(["models"]) == 0 and exits == []  # no process group: the usual return
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    main(["models"])
    assert [code for code, _ in exits] == [0] and "hills-transport" in exits[0][1]


def test_unknown_feature_fails_with_one_line_before_any_solve(tmp_path):
    result = vcnn("train", write_study(tmp_path, scalars='["strain_rate", "vorticity"]'), "--out", tmp_path / "run", "-q")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vcnn: error:") and "unknown feature 'vorticity'" in lines[0]
    assert not (tmp_path / "data").exists()


def test_bad_study_and_checkpoint_fail_before_work(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nm_prime = 0\n[split]\ntrain=['1.0']\nvalidate=['0.5']\n")
    result = vcnn("train", bad, "--out", tmp_path / "run")
    assert result.returncode == 2 and "m'" in result.stderr and not (tmp_path / "run").exists()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    result = vcnn("evaluate", "--model", tmp_path / "junk.pt", "--data", tmp_path)
    assert result.returncode == 2 and "cannot read checkpoint" in result.stderr


RUN_EXTRA = """
[baselines.local_mlp]
model = { kind = "local_mlp" }
cloud = { shape = "knn", k = 1 }
training = { epochs = 1 }

[report]
rotate_deg = 90
resample_factor = 2
frame_angles = [0, 70]
"""


def test_run_pipeline_writes_a_report_and_resumes(trained, tmp_path):
    study_dir, _, _ = trained
    study = write_study(study_dir, name="pipeline", epochs=2)
    study.write_text(study.read_text().replace('validate = ["0.8"]', 'validate = ["0.8"]\ntest = ["1.25"]') + RUN_EXTRA)
    out = tmp_path / "run"
    first = vcnn("run", study, "--out", out, "-q")
    assert first.returncode == 0, first.stderr
    report = (out / "report.md").read_text()
    for heading in ("## Data", "## Training", "## Accuracy", "## Invariance", "## Frame rotation", "## Cloud re-sampling", "## Figures"):
        assert heading in report
    assert "| alpha = 1.25 | interpolation |" in report and "| vcnn | local_mlp |" in report.replace(" | kind", "").replace("| case", "")
    assert (out / "learning_curves.png").is_file() and (out / "vcnn/evaluation/alpha_0.8000_concentration.png").is_file()
    evaluation = json.loads((out / "vcnn/evaluation/evaluation.json").read_text())
    assert set(evaluation["relative_l2"]) == {"alpha_0.8000", "alpha_1.2500"} and set(evaluation["rotated_relative_l2"]) == {"alpha_0.8000"}
    resampling = json.loads((out / "resampling.json").read_text())
    assert resampling["fine_nodes"] > 3 * resampling["coarse_nodes"]
    assert json.loads((out / "vcnn/invariance.json").read_text())["violations"] == []
    frames = json.loads((out / "frames/frames.json").read_text())
    assert frames["fields"].endswith("alpha_1.2500") and set(frames["networks"]) == {"vcnn", "local_mlp"}
    assert frames["networks"]["vcnn"]["spread"]["concentration"] < 1e-5 and (out / "frames/frames.png").is_file()
    trained_at = (out / "vcnn/training.json").stat().st_mtime
    stale = dict(frames, networks={"vcnn": frames["networks"]["vcnn"]})  # as if made before local_mlp existed
    (out / "frames/frames.json").write_text(json.dumps(stale))
    again = vcnn("run", study, "--out", out, "-q")  # everything is reused: nothing retrained
    assert again.returncode == 0, again.stderr
    assert (out / "vcnn/training.json").stat().st_mtime == trained_at
    assert set(json.loads((out / "frames/frames.json").read_text())["networks"]) == {"vcnn", "local_mlp"}  # the stale study redone
    # A time limit is not a setting the network depends on; the epochs are: the trained run is not
    # silently reused then, and nothing is touched.
    study.write_text(study.read_text().replace("seed = 1", "seed = 1\nmax_minutes = 5"))
    assert vcnn("run", study, "--out", out, "-q").returncode == 0
    study.write_text(study.read_text().replace("epochs = 2", "epochs = 3"))
    changed = vcnn("run", study, "--out", out, "-q")
    assert changed.returncode == 2 and "was trained with other training settings" in changed.stderr, changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1 and (out / "vcnn/training.json").stat().st_mtime == trained_at


def test_run_refuses_a_bad_report_table_before_any_work(tmp_path):
    study = write_study(tmp_path, name="bad")
    study.write_text(study.read_text() + "\n[report]\nfigures = [7.5]\n")
    result = vcnn("run", study, "--out", tmp_path / "run")
    assert result.returncode == 2 and "alpha = 7.5" in result.stderr and not (tmp_path / "data").exists()
    study.write_text(study.read_text().replace("figures = [7.5]", "resample_factor = 2").replace('resolution = "20x12"', ""))
    study.write_text(study.read_text().replace("[dataset]", '[dataset]\nfamily = "airfoil-transport"').replace('["1.0,1.5"]', '["0,10"]').replace('["0.8"]', '["5"]'))
    result = vcnn("run", study, "--out", tmp_path / "run")
    assert result.returncode == 2 and "no resample_factor" in result.stderr and not (tmp_path / "data").exists()
    study.write_text(study.read_text().replace('["5"]', '["95"]'))
    result = vcnn("run", study, "--out", tmp_path / "run")
    assert result.returncode == 2 and "angle of attack must be within" in result.stderr


def test_the_same_study_trains_the_same_network_bitwise(trained, tmp_path):
    """Every random draw comes from the study's seed: a second run of the study (on the dataset the
    first one solved) gives the same weights and the same history; a case solved again, one job at
    a time instead of two, gives the same fields."""
    import numpy as np

    from meshes.fields import MeshFields

    study_dir, run, summary = trained
    again = vcnn("train", write_study(study_dir), "--out", tmp_path / "again", "-q")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout.strip().splitlines()[-1])
    assert second["best_weights_sha256"] == summary["best_weights_sha256"] and summary["torch_threads"] >= 1
    assert summary["stopped_by"] == "epochs"  # not by its time budget, which no rerun need reproduce
    first_history = json.loads((run / "metrics.json").read_text())[:2]
    assert [h["train_loss"] for h in json.loads((tmp_path / "again" / "metrics.json").read_text())] == [h["train_loss"] for h in first_history]
    resolved = vcnn("dataset", "hills-transport", "--alphas", "0.8", "--resolution", "20x12", "--out", tmp_path / "data", "-q")
    assert resolved.returncode == 0, resolved.stderr
    a, b = (MeshFields.read(d / "cases" / "alpha_0.8000") for d in (study_dir / "data", tmp_path / "data"))
    for name in a.point_data:
        assert np.array_equal(a[name], b[name]), name


def test_a_training_says_what_stopped_it():
    from types import SimpleNamespace

    from cases.studies.train import stopped_by

    config = SimpleNamespace(epochs=10, patience=3)
    history = lambda errors: [{"epoch": k, "validation_rel_l2": e} for k, e in enumerate(errors)]  # noqa: E731
    assert stopped_by(history([5, 4, 3, 2, 1, 1, 1, 1, 1, 1]), config) == "epochs"
    assert stopped_by(history([5, 1, 2, 2, 2]), config) == "patience"
    assert stopped_by(history([5, 4, 3]), config) == "max_minutes"


def test_a_whole_mesh_network_through_train_evaluate_and_check_invariance(trained, tmp_path):
    """The whole-mesh operator goes through the same commands: trained one case a batch (2 cases,
    2 steps an epoch), evaluated (turned too) and checked on whole fields."""
    study_dir, _, _ = trained
    run = tmp_path / "whole"
    result = vcnn("train", write_study(study_dir, name="whole", kind="whole_mesh"), "--out", run, "-q")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 2 and 0 < summary["best_validation_rel_l2"] < 1
    result = vcnn("evaluate", "--model", run / "best.pt", "--data", study_dir / "data", "--values", "0.8", "--rotate", 90, "--out", tmp_path / "eval")
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    error = evaluation["relative_l2"]["alpha_0.8000"]["concentration"]
    assert error == pytest.approx(summary["best_validation_rel_l2"], rel=1e-6)
    assert evaluation["rotated_relative_l2"]["alpha_0.8000"]["concentration"] == pytest.approx(error, rel=1e-5)
    check = vcnn("check-invariance", "--model", run / "best.pt", "--fields", study_dir / "data/cases/alpha_1.0000", "--trials", 1, "--json", tmp_path / "inv.json")
    assert check.returncode == 0, check.stderr
    assert max(json.loads((tmp_path / "inv.json").read_text())["worst_relative_deviation"].values()) < 1e-10
