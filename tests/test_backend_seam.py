"""The seam for engines: `mlproject run` drives a fake engine (tests/fakebackend.py) through the
backend interface, with the real execute, realize and records, and no processes."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, git_init
from fakebackend import FakeBackend, Script, calls_of, states
from mlproject.runner import backends
from mlproject.runner.backends.base import Handle, HandleError, StepState, Stopper, Submission
from mlproject.runner.backends.local.backend import GRACE, LocalBackend
from mlproject.runner.cli.main import main
from mlproject.runner.state import records
from mlproject.runner.state.status import Status
from mlproject.spec.model import Resources

PIPELINE = """
    name: seam
    entry_points:
      prep:
        command: "make data"
        outputs: [data.txt]
      train:
        needs: [prep]
        resources: {memory: 1G}
        command: "train --on data.txt"
"""


def _records(root: Path) -> list[dict[str, Any]]:
    """The run records, oldest first (run directories are named by time)."""
    return [json.loads(p.read_text()) for p in sorted((root / ".mlproject" / "runs").glob(
        "*/run.json"))]


def _project(project: Callable[..., Path], text: str = PIPELINE) -> Path:
    return git_init(project({"MLproject": text}))


def test_a_pipeline_runs_in_order_through_a_status_that_is_polled(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend) -> None:
    root = _project(project)
    fake.project = root
    fake.scripts = {
        "prep": Script(states("queued", "running", "succeeded"), logs=[b"", b"making\n", b"done\n"],
                       writes={"data.txt": "rows"}),
        "train": Script([StepState(Status.QUEUED, reason="Resources: no node has 1G free"),
                         StepState(Status.QUEUED, reason="Resources: no node has 1G free"),
                         StepState(Status.RUNNING), StepState(Status.SUCCEEDED, 0)],
                        logs=[b"epoch 1\n", b"epoch 2\n"]),
    }
    result = cli("run", str(root), "-e", "train", "--backend", "fake")
    assert result.code == 0, result.err
    assert calls_of(fake, "prep") == ["preflight", "prepare", "submit", "status*3"]
    assert calls_of(fake, "train") == ["preflight", "prepare", "submit", "status*4"]
    order = [(m, ep) for m, ep in fake.calls if m in ("submit", "prepare")]
    assert order == [("prepare", "prep"), ("submit", "prep"), ("prepare", "train"),
                     ("submit", "train")]
    # why it waits is said once, not at every poll
    assert result.err.count("train: queued: Resources: no node has 1G free") == 1
    prep, train = _records(root)
    assert (prep["entry_point"], prep["status"], prep["exit_code"]) == ("prep", "succeeded", 0)
    assert (train["entry_point"], train["status"], train["exit_code"]) == ("train", "succeeded", 0)
    assert prep["backend"] == train["backend"] == "fake"
    assert prep["outputs"]["data.txt"]["md5"] == hashlib.md5(b"rows").hexdigest()  # as written
    # the engine's log, as it came poll after poll, is kept in each run's own log
    runs = root / ".mlproject" / "runs"
    assert (runs / prep["id"] / "log.txt").read_bytes() == b"making\ndone\n"
    assert (runs / train["id"] / "log.txt").read_bytes() == b"epoch 1\nepoch 2\n"
    # what the engine was handed: the run's own variables, the command, the project
    submitted = fake.prepared[1]
    assert submitted.argv == ("fake-engine", "submit", "train --on data.txt")
    assert submitted.cwd == str(root)
    assert submitted.env["MLPROJECT_RUN_ID"] == train["id"]
    assert dict(submitted.enforcement) == {"memory": "not enforced: the fake engine enforces "
                                                     "nothing"}


def test_a_failure_stops_its_dependants_and_says_so(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend) -> None:
    root = _project(project)
    fake.scripts = {"prep": Script(states("running", "failed", exit_code=3,
                                          reason="exit code 3")),
                    "train": Script(states("succeeded"))}
    result = cli("run", str(root), "-e", "train", "--backend", "fake")
    assert result.code == 3
    assert calls_of(fake, "train") == ["preflight"]  # checked before anything ran, never submitted
    assert "mlproject: not run: train (needs prep)\n" in result.err
    [only] = _records(root)
    assert (only["entry_point"], only["status"], only["exit_code"], only["reason"]) == (
        "prep", "failed", 3, "exit code 3")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_step_cancels_it_through_the_engine(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend,
        signum: int) -> None:
    root = _project(project)
    fake.scripts = {"prep": Script(states("running", "running", "running", "succeeded"),
                                   signal_at=2, signum=signum),
                    "train": Script(states("succeeded"))}
    result = cli("run", str(root), "-e", "train", "--backend", "fake")
    assert result.code == 130
    assert calls_of(fake, "prep") == ["preflight", "prepare", "submit", "status*2", "cancel",
                                      "status"]
    assert calls_of(fake, "train") == ["preflight"]
    [only] = _records(root)
    name = signal.Signals(signum).name
    assert (only["status"], only["exit_code"], only["reason"]) == (
        "interrupted", 130, f"interrupted by {name}")


def test_a_step_the_engine_cannot_time_out_is_cancelled_by_mlproject(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend) -> None:
    root = _project(project, """
        entry_points:
          main:
            resources: {timeout: 0.2}
            command: "sleep forever"
    """)
    fake.scripts = {"main": Script(states("queued", "running"))}
    result = cli("run", str(root), "--backend", "fake")
    assert result.code == 124
    assert "main: timeout after 0.2s: stopping the step" in result.err
    assert ("cancel", "main") in fake.calls
    [only] = _records(root)
    assert (only["status"], only["exit_code"], only["reason"]) == (
        "timeout", 124, "the step ran past resources.timeout")


@pytest.mark.parametrize(("end", "code"), [("oom", 137), ("cancelled", 130)])
def test_an_end_the_engine_reports_is_recorded(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend,
        end: str, code: int) -> None:
    root = _project(project, """
        entry_points:
          main: {command: "big"}
    """)
    fake.scripts = {"main": Script(states("running", end, reason=f"the engine says {end}"))}
    result = cli("run", str(root), "--backend", "fake")
    assert result.code == code
    [only] = _records(root)
    assert (only["status"], only["exit_code"], only["reason"]) == (
        end, code, f"the engine says {end}")


def test_a_submission_the_engine_refuses_is_recorded_as_failed(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend) -> None:
    root = _project(project, """
        entry_points:
          main: {command: "big"}
    """)
    fake.scripts = {"main": Script(states("running"), refuse="no such partition 'gpu'")}
    result = cli("run", str(root), "--backend", "fake")
    assert result.code == 2
    assert calls_of(fake, "main") == ["preflight", "prepare", "submit"]
    [only] = _records(root)
    assert (only["status"], only["reason"]) == (
        "failed", "the fake engine refused it: no such partition 'gpu'")


def test_plan_shows_the_submissions_and_submits_nothing(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend) -> None:
    root = _project(project)
    result = cli("plan", str(root), "-e", "train", "--backend", "fake")
    assert result.code == 0, result.err
    assert [m for m, _ in fake.calls if m not in ("preflight", "prepare")] == []
    tail = result.out[result.out.index("submissions to the fake backend"):]
    assert tail.splitlines()[:4] == [
        "submissions to the fake backend (prepared, not submitted):",
        "1. prep",
        "   submission (fake): fake-engine submit 'make data'",
        f"     in {root}; output to {root}/.mlproject/runs/RUN_ID/log.txt",
    ]
    assert "     memory: not enforced: the fake engine enforces nothing" in tail
    as_json = json.loads(cli("plan", str(root), "-e", "train", "--backend", "fake", "--json").out)
    assert (as_json["format"], as_json["backend"]) == ("mlproject.submissions/1", "fake")
    assert [s["entry_point"] for s in as_json["plan"]["steps"]] == ["prep", "train"]
    train = as_json["submissions"][1]
    assert train["entry_point"] == "train" and train["problems"] == []
    assert train["submission"]["argv"] == ["fake-engine", "submit", "train --on data.txt"]
    assert "MLPROJECT_RUN_ID" in train["submission"]["env"]  # names, never values
    assert not (root / ".mlproject" / "runs").exists() or _records(root) == []


def test_the_backends_the_cli_offers_come_from_the_registry(
        capsys: pytest.CaptureFixture[str], fake: FakeBackend) -> None:
    assert backends.names()[:2] == ["local", "docker"] and backends.names()[-1] == "fake"
    assert {"slurm", "kubernetes", "ray"} <= set(backends.names())
    for verb in ("run", "plan"):
        with pytest.raises(SystemExit) as stopped:
            main([verb, ".", "--backend", "nowhere"])
        assert stopped.value.code == 2
        assert capsys.readouterr().err.endswith(
            f"mlproject {verb}: error: argument --backend: invalid choice: 'nowhere' "
            "(choose from 'local', 'docker', 'slurm', 'kubernetes', 'ray', 'fake')\n")
    with pytest.raises(ValueError, match="a backend named 'fake' is already registered"):
        backends.register("fake", FakeBackend)


def test_a_container_environment_runs_on_a_backend_that_runs_containers(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend) -> None:
    root = _project(project, """
        docker_env: {image: "python:3.12-slim"}
        entry_points:
          main: {command: "python train.py"}
    """)
    fake.scripts = {"main": Script(states("running", "succeeded"))}
    assert cli("run", str(root), "--backend", "fake").code == 0
    refused = cli("run", str(root), "--backend", "local")
    assert refused.code == 2
    assert "the local backend runs no containers" in refused.err


def test_a_handle_is_a_value_another_process_can_read_back() -> None:
    handle = Handle("slurm", "20260101-000000-1-ab", "4242", {"cluster": "c1", "array": [1, 2]})
    assert Handle.from_json(json.loads(json.dumps(handle.to_json()))) == handle
    with pytest.raises(HandleError, match="not a handle"):
        Handle.from_json({"backend": "slurm", "id": 4242})


def test_the_local_backend_answers_for_a_step_it_does_not_supervise(tmp_path: Path) -> None:
    """A handle from another mlproject (its supervisor gone): the log is read from the run
    directory; the status says the record holds the end; cancel finds no one to ask."""
    log = tmp_path / "log.txt"
    log.write_bytes(b"line 1\nline 2\n")
    gone = Handle("local", "r1", "1", {"pid": os.getpid(), "pid_start": "0",
                                        "supervisor": os.getpid(), "supervisor_start": "0",
                                        "log": str(log)})
    local = LocalBackend()
    assert b"".join(local.logs(gone, since=7)) == b"line 2\n"
    assert b"".join(local.logs(gone, follow=True)) == b"line 1\nline 2\n"  # it has ended
    assert local.status(gone) == StepState(
        Status.CRASHED, reason="no longer running, and not supervised by this process: its "
                               "record says how it ended")
    local.cancel(gone)  # the pid is alive but is not the supervisor (start times differ)


def test_the_local_backend_is_on_the_same_seam(tmp_path: Path) -> None:
    """A Submission is a value: handed to the local backend, it starts a real process, whose
    status, log and cancel go through the same methods as an engine's."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    local = LocalBackend()
    submission = Submission("local", "main", "r2", ("/bin/sh", "-c", "echo started; exec sleep 30"),
                            str(tmp_path), {"MLPROJECT_RUN_ID": "r2"}, Resources(), {},
                            str(run_dir / "log.txt"), inherits_env=True)
    handle = local.submit(submission)
    assert Handle.from_json(json.loads(json.dumps(handle.to_json()))) == handle
    assert local.status(handle) == StepState(Status.RUNNING)
    stopper = Stopper()
    local.cancel(handle)  # asked before the wait: the wait stops it at once
    started = time.monotonic()
    outcome = local.wait(submission, handle, stopper)
    assert time.monotonic() - started < GRACE
    assert (outcome.status, outcome.exit_code, outcome.signal, outcome.reason) == (
        Status.CANCELLED, 130, signal.SIGTERM, "cancelled")
    assert b"".join(local.logs(handle)) == b"started\n"
    assert records.process_start(int(handle.id)) is None  # the guard is gone, and the step with it
