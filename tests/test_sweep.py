"""Sweeps for real: points run as real processes and recorded, resumed by fingerprint, several
at once, stopped by failures and by signals; every value checked before anything runs."""
from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init, mlproject_process, wait_for_logs
from mlproject.runner.state import records

TRAIN = """
import os, sys, time
from mlproject import log
alpha, n = float(sys.argv[1]), int(sys.argv[2])
print(f"point alpha={alpha} n={n}")
time.sleep(float(os.environ.get("SLEEP", "0")))
if os.environ.get("FAIL") == f"{alpha:g}-{n}":
    sys.exit(3)
for epoch in range(3):
    log.metric("loss", (alpha - 0.4) ** 2 + 1 / (n + epoch), step=epoch)
"""
SPEC = """
name: swept
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      n: {type: int, default: 1}
    command: "python train.py {alpha} {n}"
sweeps:
  tune:
    entry_point: main
    grid: {alpha: [0.1, 0.5, 1], n: {range: [1, 3, 1]}}
    metric: loss
  drawn:
    entry_point: main
    random:
      n: 6
      seed: 7
      space: {alpha: {loguniform: [0.001, 1]}, n: {randint: [1, 4]}}
    metric: loss
    goal: maximize
"""


@pytest.fixture
def swept(project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    root = git_init(project({"MLproject": SPEC, "train.py": TRAIN, ".gitignore": ".mlproject/\n"}))
    monkeypatch.chdir(root)
    monkeypatch.delenv("FAIL", raising=False)
    monkeypatch.delenv("SLEEP", raising=False)
    return root


def _records(root: Path) -> list[dict[str, Any]]:
    base = records.runs_dir(str(root))
    if not base.exists():
        return []
    return [json.loads((d / "run.json").read_text()) for d in sorted(base.iterdir())]


def _shown(cli: Callable[..., Any], sweep_id: str) -> dict[str, Any]:
    result = cli("sweep", "show", sweep_id, "--json")
    assert result.code == 0, result.err
    data: dict[str, Any] = json.loads(result.out)
    return data


def test_a_grid_sweep_runs_every_point_and_sorts_them_by_its_metric(
        cli: Callable[..., Any], swept: Path) -> None:
    result = cli("sweep", "tune", "--env", "local", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["status"] == "finished" and data["metric"] == "loss"
    points = data["points"]
    assert len(points) == 9 and all(p["status"] == "succeeded" for p in points)
    losses = [p["metrics"]["loss"] for p in points]
    assert losses == sorted(losses)  # minimize: best first
    assert {(p["parameters"]["alpha"], p["parameters"]["n"]) for p in points} == {
        (a, n) for a in ("0.1", "0.5", "1") for n in ("1", "2", "3")}
    found = _records(swept)
    assert len(found) == 9
    assert {r["sweep"]["index"] for r in found} == set(range(9))
    assert {r["sweep"]["id"] for r in found} == {data["id"]}
    assert all(r["sweep"]["name"] == "tune" and r["series"]["loss"] for r in found)
    assert not (swept / "mlproject.lock").exists()  # points explore: the lock is not theirs
    assert _shown(cli, data["id"]) == data  # `sweep show` prints it again
    assert _shown(cli, "tune")["id"] == data["id"]  # the name: its latest sweep
    table = cli("sweep", "show", data["id"]).out.splitlines()
    assert table[0].startswith(f"sweep {data['id']} (tune: main, 9 points, minimize loss): "
                               "9 succeeded; finished")
    assert table[1].split() == ["#", "STATUS", "LOSS", "alpha", "n", "RUN"]
    assert table[2].split()[:5] == ["5", "succeeded", "0.21", "0.5", "3"]


def test_random_points_are_the_same_for_the_same_seed_and_fit_their_space(
        cli: Callable[..., Any], swept: Path) -> None:
    first = json.loads(cli("sweep", "drawn", "--env", "local", "--json").out)
    second = json.loads(cli("sweep", "drawn", "--env", "local", "--json", "--force").out)
    def drawn(data: dict[str, Any]) -> list[dict[str, str]]:
        return [p["parameters"] for p in sorted(data["points"], key=lambda p: p["index"])]
    assert drawn(first) == drawn(second) and len(drawn(first)) == 6
    for point in drawn(first):
        assert 0.001 <= float(point["alpha"]) <= 1 and point["n"] in ("1", "2", "3", "4")
    losses = [p["metrics"]["loss"] for p in first["points"]]
    assert losses == sorted(losses, reverse=True)  # maximize
    other = json.loads(cli("sweep", "-e", "main", "--random", "6", "--seed", "8", "--space",
                           "alpha=loguniform:0.001:1", "--space", "n=randint:1:4", "--env",
                           "local", "--json").out)
    assert drawn(other) != drawn(first)


def test_an_interrupted_or_failed_sweep_resumes_with_only_what_did_not_succeed(
        cli: Callable[..., Any], swept: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIL", "1-2")
    failed = cli("sweep", "tune", "--env", "local", "--json")
    assert failed.code == 1
    data = json.loads(failed.out)
    [bad] = [p for p in data["points"] if p["status"] != "succeeded"]
    assert bad["status"] == "failed" and bad["parameters"] == {"alpha": "1", "n": "2"}
    assert (swept / bad["log"]).read_text().startswith("point alpha=1.0 n=2")  # its log kept
    assert data["points"][-1] == bad  # without the metric: last
    monkeypatch.delenv("FAIL")
    again = cli("sweep", "tune", "--env", "local", "--json")
    assert again.code == 0
    assert "8 of 9 points succeeded before with the same fingerprint" in again.err
    resumed = json.loads(again.out)
    ran = [p for p in resumed["points"] if p["reused"] is None]
    assert [p["parameters"] for p in ran] == [{"alpha": "1", "n": "2"}]
    assert all(p["status"] == "succeeded" for p in resumed["points"])
    assert len(_records(swept)) == 10
    forced = cli("sweep", "tune", "--env", "local", "--force", "--json")
    assert forced.code == 0 and len(_records(swept)) == 19


def test_max_failures_stops_starting_points(cli: Callable[..., Any], swept: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIL", "0.1-1")
    result = cli("sweep", "tune", "--env", "local", "--max-failures", "1", "--json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["status"] == "stopped after 1 failures"
    assert [p["status"] for p in sorted(data["points"], key=lambda p: p["index"])] == [
        "failed"] + ["not run"] * 8
    assert "sweep stopped: 1 points failed (--max-failures 1); 8 not started" in result.err
    assert len(_records(swept)) == 1


def test_points_run_at_once_each_with_its_own_log(cli: Callable[..., Any], swept: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEP", "0.5")
    result = cli("sweep", "-e", "main", "--grid", "alpha=0.1,0.2,0.3,0.4", "-P", "n=2",
                 "--jobs", "2", "--env", "local", "--metric", "loss", "--json")
    assert result.code == 0, result.err
    found = _records(swept)
    assert len(found) == 4
    spans = sorted((r["started_at"], r["ended_at"]) for r in found)
    assert spans[1][0] < spans[0][1]  # the second started before the first ended
    for record in found:
        log = (records.runs_dir(str(swept)) / record["id"] / "log.txt").read_text()
        assert log == f"point alpha={float(record['parameters']['alpha'])} n=2\n"
    lines = [line for line in result.err.splitlines() if "] point " in line]
    assert len(lines) == 4 and all("succeeded" in line for line in lines)
    assert "point alpha" not in result.err  # the points' output is in their logs, not here


@pytest.mark.parametrize("args, message", [
    (["-e", "main", "--grid", "alpha=0.1,x"], "--grid alpha: 'x' does not fit type float"),
    (["-e", "main", "--grid", "n=range:0:1:0.5"], "--grid n: range gives '0.0' does not fit type int"),
    (["-e", "main", "--grid", "beta=1,2"], "--grid beta: 'beta' is not a parameter of entry point 'main'"),
    (["-e", "main", "--grid", "alpha=1", "--random", "2"], "exactly one of --grid or --random"),
    (["-e", "main", "--space", "alpha=uniform:0:1"], "--space is where --random draws from"),
    (["-e", "main", "--random", "2", "--space", "n=uniform:0:1"], "use randint"),
    (["-e", "main", "--random", "2", "--space", "alpha=normal:0:1"], "expected NAME=uniform"),
    (["-e", "mian", "--grid", "alpha=1"], "-e: no entry point 'mian'"),
    (["-e", "main", "--grid", "alpha=1", "-P", "alpha=2"], "-P alpha: alpha is both fixed and swept"),
    (["nope"], "no sweep 'nope'"),
    (["tune", "--grid", "alpha=1"], "cannot be given with it"),
    (["show"], "sweep show takes the sweep's id"),
    (["show", "../../etc"], "is no sweep id"),
    (["show", "missing"], "no sweep 'missing'"),
])
def test_a_wrong_sweep_is_refused_before_anything_runs(cli: Callable[..., Any], swept: Path,
                                                       args: list[str], message: str) -> None:
    result = cli("sweep", *args, "--env", "local")
    assert result.code == 2 and message in result.err, result.err
    assert "Traceback" not in result.err and _records(swept) == []


def test_a_point_whose_path_is_missing_or_that_writes_shared_files_runs_nothing(
        cli: Callable[..., Any], project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root = git_init(project({"MLproject": """
        entry_points:
          main:
            parameters: {data: {type: path, default: a.csv}}
            command: "cat {data} > out.txt"
            outputs: [out.txt]
    """, "a.csv": "1\n"}))
    monkeypatch.chdir(root)
    missing = cli("sweep", "-e", "main", "--grid", "data=a.csv,missing.csv", "--env", "local")
    assert missing.code == 2 and "parameter data (path): " in missing.err
    assert "missing.csv does not exist" in missing.err
    shared = cli("sweep", "-e", "main", "--grid", "data=a.csv", "--jobs", "2", "--env", "local")
    assert shared.code == 2 and "would write over each other's files" in shared.err
    assert not records.runs_dir(str(root)).exists() or _records(root) == []
    one = cli("sweep", "-e", "main", "--grid", "data=a.csv", "--env", "local")
    assert one.code == 0 and (root / "out.txt").read_text() == "1\n"


def test_what_the_swept_entry_point_needs_runs_once(cli: Callable[..., Any],
                                                    project: Callable[..., Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = git_init(project({"MLproject": """
        entry_points:
          prepare:
            command: "echo prepared >> prepared.txt"
            outputs: [prepared.txt]
          main:
            parameters: {k: {type: int, default: 1}}
            needs: [prepare]
            command: "cat prepared.txt > /dev/null && echo {k}"
    """, ".gitignore": ".mlproject/\nprepared.txt\n"}))
    monkeypatch.chdir(root)
    result = cli("sweep", "-e", "main", "--grid", "k=range:1:4:1", "--env", "local", "--json")
    assert result.code == 0, result.err
    assert (root / "prepared.txt").read_text() == "prepared\n"
    entries = [r["entry_point"] for r in _records(root)]
    assert entries.count("prepare") == 1 and entries.count("main") == 4


def test_a_signal_stops_the_sweep_records_it_and_the_rerun_resumes(
        cli: Callable[..., Any], swept: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEP", "30")
    proc = mlproject_process("sweep", "tune", "--jobs", "2", "--env", "local", cwd=swept,
                             stderr=-1, stdout=-1)
    wait_for_logs(swept, 2)  # both started
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    found = _records(swept)
    assert len(found) == 2 and {r["status"] for r in found} == {"interrupted"}
    assert all(r["ended_at"] for r in found)  # complete records
    [sweep_file] = list((swept / ".mlproject" / "sweeps").iterdir())
    assert json.loads(sweep_file.read_text())["status"] == "interrupted"
    assert b"interrupted" in out.splitlines()[0]
    monkeypatch.setenv("SLEEP", "0")
    again = cli("sweep", "tune", "--env", "local", "--jobs", "2", "--json")
    assert again.code == 0 and len(_records(swept)) == 11  # the two interrupted: run again


def test_a_hostile_sweep_file_is_said_never_a_traceback(cli: Callable[..., Any],
                                                        swept: Path) -> None:
    base = swept / ".mlproject" / "sweeps"
    base.mkdir(parents=True)
    (base / "torn.json").write_text('{"format": "mlproject.sweep/1", "id": "to')
    (base / "shape.json").write_text(json.dumps({"format": "mlproject.sweep/1", "id": "shape",
                                                 "points": [{"index": "0"}]}))
    (base / "other.json").write_text(json.dumps({"format": "mlproject.sweep/9", "id": "other"}))
    os.symlink("/etc/passwd", base / "link.json")
    for sweep_id, message in (("torn", "is not valid JSON"), ("shape", "points of the wrong shape"),
                              ("other", "has format 'mlproject.sweep/9'"), ("link", "cannot be read")):
        result = cli("sweep", "show", sweep_id)
        assert result.code == 2 and message in result.err, result.err


def test_the_html_report_ranks_a_sweep_by_its_declared_metric_and_goal(
        cli: Callable[..., Any], swept: Path, tmp_path: Path) -> None:
    import re

    data = json.loads(cli("sweep", "drawn", "--env", "local", "--json").out)  # maximize loss
    out = tmp_path / "report.html"
    assert cli("report", ".", "--html", str(out)).code == 0
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>',
                      out.read_text(), re.S)
    assert found is not None
    [sweep] = json.loads(found.group(1))["sweeps"]
    assert sweep["id"] == data["id"] and sweep["declared"] is True
    assert (sweep["metric"], sweep["goal"]) == ("loss", "max")  # not "min", as its name suggests
    assert sweep["order"] == [p["run"] for p in data["points"]]


def test_a_sweep_whose_mlproject_was_killed_shows_as_crashed_and_its_points_too(
        cli: Callable[..., Any], swept: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEP", "30")
    proc = mlproject_process("sweep", "tune", "--jobs", "2", "--env", "local", cwd=swept,
                             stderr=-1, stdout=-1)
    wait_for_logs(swept, 2)
    proc.kill()  # no chance to write anything more
    proc.communicate(timeout=30)
    shown = _shown(cli, "tune")
    assert shown["status"] == "crashed (its mlproject ended before it did)"
    assert sorted(p["status"] for p in shown["points"]) == ["crashed", "crashed"] + ["not run"] * 7
    monkeypatch.setenv("SLEEP", "0")
    again = cli("sweep", "tune", "--env", "local", "--jobs", "2", "--json")
    assert again.code == 0 and json.loads(again.out)["status"] == "finished"
