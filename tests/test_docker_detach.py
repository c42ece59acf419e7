"""`run --backend docker --detach`, then `logs -f`, `cancel` and `wait`, against a real Docker
engine (tests/dockerengine.py): a pipeline of two steps in containers, supervised by a process
of its own; output streamed as the container prints it; a cancel that stops the container; the
step's own exit code and the engine's OOM; and a supervisor killed outright, whose step the
engine holds, recorded later from the engine (`runs`) or stopped through it (`cancel`). Real
mlproject processes throughout (tests/detached.py)."""
from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init
from detached import Mlproject, alive, gated, kill, status_of, until

pytestmark = pytest.mark.slow

CONF = json.dumps({"network": "none", "stop_grace": 1.0})


def _pipeline(image: str) -> str:
    return f"""
        name: boxed
        environments:
          box:
            docker: {{image: "{image}"}}
        entry_points:
          prep:
            environment: box
            command: "{gated('prep')}; echo rows > data.txt"
            outputs: [data.txt]
          train:
            needs: [prep]
            environment: box
            command: "{gated('train')}"
          solo:
            environment: box
            command: "{gated('solo')}"
          failing:
            environment: box
            command: "echo failing; exit 3"
          hungry:
            environment: box
            command: "python3 -c \\"x = bytearray(512 * 2**20)\\""
            resources: {{memory: 64Mi}}
    """


@pytest.fixture
def mlp(project: Callable[..., Path], docker: Any) -> Iterator[Mlproject]:
    # the test's flags are no part of the code (which the fingerprints hold)
    root = git_init(project({"MLproject": _pipeline(docker.image),
                             ".gitignore": ".mlproject/\ngo-*\npid-*\n"}))
    yield Mlproject(root)
    # nothing of the test's left on the engine, whatever it asserted
    for container in _ours(docker):
        docker.docker("rm", "-f", container, check=False)


def _ours(docker: Any, run_id: str | None = None) -> list[str]:
    return docker.containers(f"label=mlproject.run_id{'=' + run_id if run_id else ''}")


def _detach(mlp: Mlproject, supervisors: list[int], *args: str) -> list[str]:
    ids, pid = mlp.detach(*args, "--backend", "docker", "--backend-config", CONF)
    supervisors.append(pid)
    return ids


def _go(mlp: Mlproject, name: str) -> None:
    (mlp.root / f"go-{name}").touch()


def _submitted(mlp: Mlproject, run_id: str) -> dict[str, Any]:
    """The run's record once its container runs (a `running` record is written before the
    step is submitted: the handle comes once `docker run` has started the container)."""
    def check() -> dict[str, Any] | None:
        record = mlp.record(run_id)
        return record if record["handle"] else None

    return until(check, 30, f"run {run_id} to be submitted")  # type: ignore[no-any-return]


class _Lines:
    """A process's stdout, line by line as it comes, read with a deadline (a `logs -f` that
    hangs fails the test instead of hanging it)."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        self.child = child
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.child.stdout is not None
        for line in self.child.stdout:
            self._lines.put(line)
        self._lines.put("")  # the end

    def next(self, timeout: float = 30) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout}s") from None

    def rest(self, timeout: float = 30) -> tuple[str, str]:
        """Everything after what was read, and stderr, once the process has ended."""
        try:
            self.child.wait(timeout)
        finally:
            if self.child.poll() is None:
                self.child.kill()
        assert self.child.stderr is not None
        err = self.child.stderr.read()
        lines = []
        while (line := self.next()) != "":
            lines.append(line)
        return "".join(lines), err


def test_a_detached_pipeline_runs_in_containers_in_order(mlp: Mlproject, docker: Any,
                                                         supervisors: list[int]) -> None:
    started = time.monotonic()
    done = mlp("run", "-e", "train", "--backend", "docker", "--backend-config", CONF, "--detach")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) == 2 and done.stdout == f"{ids[0]}\n{ids[1]}\n"
    supervisors.append(int(done.stderr.split("supervised by process ")[1].split()[0]))
    print(f"\nrun --detach --backend docker of two steps returned in {took:.2f}s",
          file=sys.stderr)
    assert took < 10, took  # sanity only: both steps block on files this test has not written
    prep = status_of(mlp, "prep", "running")
    train = mlp.runs()["train"]
    assert (prep["id"], train["id"]) == tuple(ids)
    assert train["status"] == "queued" and train["reason"] == "waiting for prep"
    queued = _Lines(mlp.popen("logs", "-f", ids[1]))  # waits for train to start, then follows
    record = _submitted(mlp, ids[0])
    container = record["handle"]["id"]
    assert record["handle"]["backend"] == "docker"
    assert _ours(docker, ids[0]) == [container]
    assert docker.docker("inspect", "-f", "{{.State.Status}}", container).stdout.strip() \
        == "running"
    _go(mlp, "prep")
    status_of(mlp, "train", "running")
    assert mlp.runs()["prep"]["status"] == "succeeded"
    _go(mlp, "train")
    waited = mlp("wait", ids[1])
    assert waited.returncode == 0, waited.stderr
    rows = mlp.runs()
    assert [rows["prep"]["status"], rows["train"]["status"]] == ["succeeded", "succeeded"]
    image_id = docker.docker("image", "inspect", "-f", "{{.Id}}", docker.image).stdout.strip()
    prep_record, train_record = mlp.record(ids[0]), mlp.record(ids[1])
    assert prep_record["outputs"]["data.txt"]["md5"]  # hashed
    assert (mlp.root / "data.txt").read_text() == "rows\n"
    for one in (prep_record, train_record):
        assert one["engine"]["container"] == one["handle"]["id"]
        assert one["engine"]["image_id"] == image_id and one["engine"]["exit_code"] == 0
        assert one["engine"]["removed"] is True
    assert prep_record["ended_at"] <= train_record["started_at"]
    assert (mlp.root / ".mlproject" / "runs" / ids[1] / "log.txt").read_text() \
        == "start-train\nend-train\n"
    out, err = queued.rest()
    assert queued.child.returncode == 0, err
    assert out == "start-train\nend-train\n"
    assert f"run {ids[1]} (train) is queued: waiting for prep; its output follows" in err
    assert _ours(docker) == []


def test_logs_follow_streams_the_container_s_lines_as_they_come(
        mlp: Mlproject, supervisors: list[int]) -> None:
    (run_id,) = _detach(mlp, supervisors, "-e", "solo")
    follower = _Lines(mlp.popen("logs", "-f", run_id))
    started = time.monotonic()
    first = follower.next()
    print(f"\nlogs -f: the first line after {time.monotonic() - started:.2f}s", file=sys.stderr)
    assert first == "start-solo\n"
    # the step has not ended: it waits for the file this test writes next
    assert mlp.runs()["solo"]["status"] == "running"
    assert follower.child.poll() is None
    _go(mlp, "solo")
    rest, err = follower.rest()
    assert follower.child.returncode == 0, err
    assert rest == "end-solo\n"
    assert f"run {run_id} (solo): succeeded, exit code 0" in err
    assert mlp.runs()["solo"]["status"] == "succeeded"


def test_cancel_stops_the_container_and_the_dependant_never_starts(
        mlp: Mlproject, docker: Any, supervisors: list[int]) -> None:
    ids = _detach(mlp, supervisors, "-e", "train")
    _submitted(mlp, ids[0])
    assert len(_ours(docker, ids[0])) == 1
    started = time.monotonic()
    cancelled = mlp("cancel", ids[0])
    print(f"\ncancel of a running container: {time.monotonic() - started:.2f}s", file=sys.stderr)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"run {ids[0]} (prep): cancelled" in cancelled.stderr
    waited = mlp("wait", ids[0])
    assert waited.returncode == 130, waited.stderr
    record = mlp.record(ids[0])
    assert record["status"] == "cancelled" and record["exit_code"] == 130
    assert _ours(docker, ids[0]) == []
    train = mlp("wait", ids[1])
    assert train.returncode == 130, train.stderr
    dependant = mlp.record(ids[1])
    assert (dependant["status"], dependant["reason"]) == (
        "cancelled", "not run: needs prep, which was cancelled")
    assert dependant["handle"] is None  # never submitted
    assert _ours(docker) == []
    assert not (mlp.root / "data.txt").exists()


def test_wait_exits_with_the_step_s_code_and_137_for_a_memory_overrun(
        mlp: Mlproject, docker: Any, supervisors: list[int]) -> None:
    (failing,) = _detach(mlp, supervisors, "-e", "failing")
    (hungry,) = _detach(mlp, supervisors, "-e", "hungry")
    waited = mlp("wait", failing)
    assert waited.returncode == 3, waited.stderr
    assert f"run {failing} (failing): failed, exit code 3" in waited.stderr
    oom = mlp("wait", hungry)
    assert oom.returncode == 137, oom.stderr
    record = mlp.record(hungry)
    assert record["status"] == "oom" and record["engine"]["oom_killed"] is True
    assert mlp.record(failing)["engine"]["exit_code"] == 3
    assert _ours(docker) == []


def test_a_killed_supervisor_s_step_is_recorded_or_cancelled_through_the_engine(
        mlp: Mlproject, docker: Any, supervisors: list[int]) -> None:
    (prep,) = _detach(mlp, supervisors, "-e", "prep")
    (solo,) = _detach(mlp, supervisors, "-e", "solo")
    container = _submitted(mlp, prep)["handle"]["id"]
    _submitted(mlp, solo)
    for pid in supervisors:
        kill(pid, signal.SIGKILL)
    until(lambda: not any(alive(pid) for pid in supervisors), 10, "the supervisors to end")
    # the engine holds both steps: running, not crashed
    rows = mlp.runs()
    assert rows["prep"]["status"] == rows["solo"]["status"] == "running"
    assert len(_ours(docker, prep)) == len(_ours(docker, solo)) == 1
    # prep ends with nobody watching it: `runs` records it from the engine
    _go(mlp, "prep")
    until(lambda: docker.docker("inspect", "-f", "{{.State.Status}}", container).stdout.strip()
          == "exited", 30, "prep's container to exit")
    assert mlp.runs()["prep"]["status"] == "succeeded"
    record = mlp.record(prep)
    assert record["exit_code"] == 0 and record["outputs"]["data.txt"]["md5"]
    assert record["engine"]["container"] == container and record["engine"]["exit_code"] == 0
    # its end is when the engine says it ended, not when `runs` came to read it
    assert record["ended_at"] == datetime.fromisoformat(record["engine"]["finished_at"]).isoformat()
    assert (mlp.root / ".mlproject" / "runs" / prep / "log.txt").read_text() \
        == "start-prep\nend-prep\n"
    assert _ours(docker, prep) == []
    # solo has no supervisor either: cancel asks the engine to stop its container
    cancelled = mlp("cancel", solo)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"run {solo} (solo): cancelled" in cancelled.stderr
    assert mlp("wait", solo).returncode == 130
    record = mlp.record(solo)
    assert record["status"] == "cancelled" and record["reason"] == "cancelled (mlproject cancel)"
    assert _ours(docker) == []


def test_a_step_whose_record_never_got_its_handle_is_found_by_its_container(
        mlp: Mlproject, docker: Any, supervisors: list[int]) -> None:
    """The supervisor died between `docker run` and writing the handle into the record: the
    container (named and labelled with the run id) is found, not left running unwatched."""
    (prep,) = _detach(mlp, supervisors, "-e", "prep")
    container = _submitted(mlp, prep)["handle"]["id"]
    kill(supervisors[0], signal.SIGKILL)
    until(lambda: not alive(supervisors[0]), 10, "the supervisor to end")
    path = mlp.root / ".mlproject" / "runs" / prep / "run.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "handle": None}))  # as if killed before writing it
    assert mlp.runs()["prep"]["status"] == "running"  # found on the engine, not crashed
    assert mlp.record(prep)["handle"]["id"] == container
    _go(mlp, "prep")
    until(lambda: docker.docker("inspect", "-f", "{{.State.Status}}", container).stdout.strip()
          == "exited", 30, "prep's container to exit")
    assert mlp.runs()["prep"]["status"] == "succeeded"
    assert mlp.record(prep)["outputs"]["data.txt"]["md5"]
    assert _ours(docker, prep) == []


def test_a_record_naming_someone_else_s_container_never_stops_or_removes_it(
        mlp: Mlproject, docker: Any) -> None:
    """A run.json copied from elsewhere or written by hand whose handle names a container that
    is not its run's (its label says so): its end recorded as failed, saying why, and the
    container left alone."""
    done = mlp("run", "-e", "failing", "--backend", "docker", "--backend-config", CONF)
    assert done.returncode == 3, done.stderr
    (run_id,) = [r["id"] for r in json.loads(mlp("runs", "--json").stdout)]
    theirs = docker.docker("run", "-d", "--network", "none", docker.image,
                           "sleep", "300").stdout.strip()
    try:
        path = mlp.root / ".mlproject" / "runs" / run_id / "run.json"
        record = json.loads(path.read_text())
        record.update(status="running", exit_code=None, ended_at=None,
                      handle={**record["handle"], "id": theirs},
                      host={**record["host"], "pid": 1, "pid_start": "not-pid-1"})
        path.write_text(json.dumps(record))
        row = mlp.runs()["failing"]
        assert row["status"] == "failed", row
        assert "is not run" in row["reason"] and "left alone" in row["reason"]
        path.write_text(json.dumps(record))  # forged again: `cancel` asks the engine first
        cancelled = mlp("cancel", run_id, "--no-wait")
        assert cancelled.returncode == 0 and "has already ended: failed" in cancelled.stderr
        state = docker.docker("inspect", "-f", "{{.State.Status}}", theirs).stdout.strip()
        assert state == "running"  # neither stopped nor removed
    finally:
        docker.docker("rm", "-f", theirs, check=False)
