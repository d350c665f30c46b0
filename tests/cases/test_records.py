"""`cases.records`: a finished run's record (weights fingerprints and report numbers, clocks left
out), and a rerun that differs from the record kept beside its study file says so."""

import json
import logging
import shutil

from cases.records import check, collect, differences, record_path


def finished_run(path, sha="ab" * 32, score=0.0820, seconds=12.0):
    (path / "network").mkdir(parents=True)
    (path / "network" / "training.json").write_text(json.dumps({"best_weights_sha256": sha, "wall_s": seconds, "best_epoch": 38}))
    report = {"rows": [{"case": "a", "closure": {"score": score, "iterations": 3, "seconds": seconds, "network_s": 2.0}}], "training": {"peak_rss_mb": 800.0, "torch_threads": 2}}
    (path / "report.json").write_text(json.dumps(report))
    return path


def test_the_record_holds_weights_and_numbers_but_no_clocks(tmp_path):
    record = collect(finished_run(tmp_path / "run"))
    assert record["weights"] == {"network": "ab" * 32}
    assert record["numbers"] == {"rows.0.closure.score": 0.0820, "rows.0.closure.iterations": 3}
    assert record["machine"]["torch"] and record["machine"]["torch_threads"] >= 1


def test_a_rerun_that_differs_from_its_record_says_so(tmp_path, caplog):
    study = tmp_path / "study.toml"
    study.write_text("")
    first = finished_run(tmp_path / "first")
    assert check(study, first) == [] and (first / "record.json").is_file()  # nothing kept yet
    shutil.copy(first / "record.json", record_path(study))
    same = finished_run(tmp_path / "same", seconds=99.0)  # slower, otherwise the same: matches
    assert check(study, same) == []
    other = finished_run(tmp_path / "other", sha="cd" * 32, score=0.0821)
    with caplog.at_level(logging.WARNING, logger="vcnn"):
        found = check(study, other)
    assert len(found) == 2
    assert any(line.startswith("weights network: recorded abab") for line in found)
    assert any("rows.0.closure.score: recorded 0.082, now 0.0821" in line for line in found)
    assert "differs from its record" in caplog.text and "torch_threads" in caplog.text


def test_wall_time_shares_and_ratios_are_not_in_the_record(tmp_path):
    run = finished_run(tmp_path / "run")
    report = json.loads((run / "report.json").read_text())
    report["coupled"] = {"alpha_1.1250": {"iterations": 41, "cost": {"network_calls": 41, "ratio_to_pde_model": 1.2, "shares": {"network": 0.3}}}}
    (run / "report.json").write_text(json.dumps(report))
    numbers = collect(run)["numbers"]
    assert numbers["coupled.alpha_1.1250.iterations"] == 41 and numbers["coupled.alpha_1.1250.cost.network_calls"] == 41
    assert not any("shares" in key or "ratio_to" in key for key in numbers)


def test_values_on_one_side_only_are_differences():
    assert differences({"numbers": {"x": 1.0}}, {"numbers": {"y": 1.0}}) == [
        "numbers x: recorded, absent now", "numbers y: not recorded, present now",
    ]
    assert differences({"numbers": {"x": 1.0}}, {"numbers": {"x": 1.0 + 1e-12}}) == []
