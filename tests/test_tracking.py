"""Tracking without a server: `from mlproject import log` in a step (also in a locked
environment that does not list mlproject), read into the record; hostile tracking files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init
from mlproject.runner import tracking
from mlproject.runner.state import records

PY = ".".join(map(str, sys.version_info[:2]))
TRAIN = """
import multiprocessing, sys, threading
from mlproject import log

def child(k):
    for j in range(50):
        log.metric("child", j, step=j)

if __name__ == "__main__":
    alpha = float(sys.argv[1])
    for epoch in range(5):
        log.metric("loss", 1.0 / (epoch + 1) + alpha, step=epoch)
    log.metrics({"acc": 1 - alpha, "f1": 0.5})
    log.param("optimizer", "adam")
    open("plot.txt", "w").write("a picture")
    log.artifact("plot.txt")
    threads = [threading.Thread(target=lambda: [log.metric("thread", j, step=j) for j in range(100)])
               for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    procs = [multiprocessing.get_context("fork").Process(target=child, args=(k,)) for k in range(3)]
    [p.start() for p in procs]
    [p.join() for p in procs]
"""


def _spec(env: str = "") -> str:
    return f"""
        {env}
        entry_points:
          main:
            parameters: {{alpha: {{type: float, default: 0.1}}}}
            command: "python train.py {{alpha}}"
            metrics: metrics.json
    """


def _record(root: Path) -> dict[str, Any]:
    [run_dir] = list(records.runs_dir(str(root)).iterdir())
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return data


def _check_logged(record: dict[str, Any]) -> None:
    assert record["status"] == "succeeded", record["reason"]
    # the last value of each series is the run's metric; the metrics file wins where it names one
    assert record["metrics"]["loss"] == pytest.approx(0.3) and record["metrics"]["acc"] == 0.99
    assert record["metrics"]["f1"] == 0.5
    assert [p[:2] for p in record["series"]["loss"]] == [[e, 1.0 / (e + 1) + 0.1] for e in range(5)]
    assert len(record["series"]["thread"]) == 400  # four threads, nothing lost or torn
    assert len(record["series"]["child"]) == 150  # three processes, a file each
    assert record["logged_params"] == {"optimizer": "adam"}
    assert record["artifacts"] == [{"path": "artifacts/plot.txt", "size": 9}]
    assert record["metrics_error"] is None


def test_logged_metrics_series_params_and_artifacts_reach_the_record(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": _spec(), "train.py": TRAIN + "\n    open('metrics.json', 'w').write('{\"acc\": 0.99}')\n"}))
    result = cli("run", str(root), "--env", "local")
    assert result.code == 0, result.err
    record = _record(root)
    _check_logged(record)
    run_dir = records.runs_dir(str(root)) / record["id"]
    assert (run_dir / "artifacts" / "plot.txt").read_text() == "a picture"
    (root / "plot.txt").write_text("changed after")  # copied when logged: the run keeps its own
    assert (run_dir / "artifacts" / "plot.txt").read_text() == "a picture"
    lock = (root / "mlproject.lock").read_text()
    assert "loss" in lock and "thread" in lock  # the final metrics reach the lock too


@pytest.mark.slow
def test_log_imports_in_a_locked_environment_that_does_not_list_mlproject(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    env = (f'environments: {{train: {{python: "{PY}", requirements: requirements.txt}}}}\n'
           "        environment: train")
    root = git_init(project({"MLproject": _spec(env), "requirements.txt": "six==1.16.0\n",
                             "train.py": TRAIN + "\n    import six\n    open('metrics.json', 'w').write('{\"acc\": 0.99}')\n"}))
    result = cli("run", str(root))
    assert result.code == 0, result.err
    record = _record(root)
    assert record["environment"]["prefix"]  # its own interpreter, where mlproject is not installed
    probe = subprocess.run([os.path.join(record["environment"]["prefix"], "bin", "python"), "-c",
                            "import mlproject.runner"], capture_output=True)
    assert probe.returncode != 0  # so what imported `log` was the shim on the step's path
    _check_logged(record)


def test_outside_a_run_every_call_does_nothing(tmp_path: Path) -> None:
    code = ("from mlproject import log; log.metric('a', 1); log.param('b', 2); "
            "print(log.artifact('nothing-here'), log.active())")
    env = {k: v for k, v in os.environ.items() if k != "MLPROJECT_RUN_DIR"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "None False\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("call, message", [
    ("log.metric('a', float('nan'))", "not a finite number"),
    ("log.metric('a', 'high')", "must be a number"),
    ("log.metric('a', 1, step=-1)", "non-negative integer"),
    ("log.metric('', 1)", "non-empty string"),
    ("log.artifact('x', name='../out')", "a file name"),
])
def test_a_wrong_call_is_said_where_it_is_made(tmp_path: Path, call: str, message: str) -> None:
    (tmp_path / "x").write_text("x")
    done = subprocess.run([sys.executable, "-c", f"from mlproject import log; {call}"],
                          cwd=tmp_path, env={**os.environ, "MLPROJECT_RUN_DIR": str(tmp_path / "run")},
                          capture_output=True, text=True)
    assert done.returncode == 1 and message in done.stderr


def test_hostile_tracking_files_never_stop_the_record(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    files = run_dir / "tracking"
    files.mkdir(parents=True)
    good = {"v": 1, "kind": "metric", "name": "m", "value": 1.0, "step": 0, "time": 1.0}
    (files / "1-h.jsonl").write_text(
        json.dumps(good) + "\n"
        + '{"v": 1, "kind": "metric", "name": "m", "value": NaN, "step": 1, "time": 2}\n'
        + '{"v": 1, "kind": "metric", "name": "m", "value": 2, "step": "x", "time": 2}\n'
        + "[1, 2]\n" + '{"kind": "param", "name": "p", "value": 3}\n'
        + '{"v": 1, "kind": "metric", "name": "m", "val')  # cut by a kill mid-write
    os.mkfifo(files / "2-h.jsonl")  # would block a reader that opened it plainly
    os.symlink("/etc/passwd", files / "3-h.jsonl")
    (run_dir / "artifacts").mkdir()
    os.symlink("/etc", run_dir / "artifacts" / "etc")  # listed, never followed
    found = tracking.read(run_dir)
    assert found.series == {"m": [[0, 1.0, 1.0]]} and found.params == {}
    assert found.problem is not None
    assert "not a regular file" in found.problem and "could not be read" in found.problem
    assert "left out" in found.problem and "3-h.jsonl cannot be read" in found.problem
    assert [a["path"] for a in found.artifacts] == ["artifacts/etc"]  # the link's own size
    assert found.artifacts[0]["size"] == os.lstat(run_dir / "artifacts" / "etc").st_size


def test_a_flood_of_points_is_thinned_keeping_first_and_last(tmp_path: Path) -> None:
    files = tmp_path / "tracking"
    files.mkdir()
    n = tracking.read.__globals__["MAX_POINTS"] * 3
    with open(files / "1-h.jsonl", "w") as out:
        for i in range(n):
            out.write(json.dumps({"v": 1, "kind": "metric", "name": "m", "value": i, "step": i,
                                  "time": float(i)}) + "\n")
    found = tracking.read(tmp_path)
    points = found.series["m"]
    assert len(points) == tracking.read.__globals__["MAX_POINTS"]
    assert points[0][0] == 0 and points[-1][0] == n - 1 and found.last == {"m": n - 1}
