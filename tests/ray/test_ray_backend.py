"""`mlproject run --backend ray` against a real Ray head (tests/raycluster.py), through the real
CLI in temporary Git projects: the step runs as a Ray job of the mlproject worker in Ray's
working_dir (the recorded commit), its outputs and metrics come back through the job's log;
exit codes, a time limit enforced by mlproject, cancel, the pending reason and --queue-timeout,
requests no node can meet refused before anything is submitted, dirty trees, and the request
that `plan --backend ray` shows."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlproject.runner.state import records

from tests.conftest import Result, git, git_init

pytestmark = pytest.mark.slow

IGNORED = ".mlproject/\nout/\nmetrics.json\ngo\n"


def _project(project: Callable[..., Path], text: str, **files: str) -> Path:
    return git_init(project({"MLproject": text, ".gitignore": IGNORED, **files}))


def _run(cli: Callable[..., Result], root: Path, *args: str) -> Result:
    return cli("run", str(root), "--backend", "ray", *args)


def _records(root: Path) -> list[dict[str, Any]]:
    return records.list_runs(str(root))


def _only_record(root: Path) -> dict[str, Any]:
    found = _records(root)
    assert len(found) == 1, found
    return found[0]


def _log(root: Path, record: dict[str, Any]) -> str:
    return (root / ".mlproject" / "runs" / record["id"] / "log.txt").read_text()


def _jobs(cluster: Any) -> list[Any]:
    from ray.job_submission import JobSubmissionClient

    return list(JobSubmissionClient(cluster.address).list_jobs())


def _job_logs(cluster: Any, submission_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(cluster.address).get_job_logs(submission_id))


def _job(cluster: Any, submission_id: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(cluster.address).get_job_info(submission_id)


def test_a_step_runs_as_a_ray_job_and_its_outputs_come_back(
        cli: Callable[..., Result], project: Callable[..., Path], ray: Any) -> None:
    root = _project(project, """
        name: onray
        entry_points:
          main:
            parameters: {n: {type: float, default: 2}}
            command: >-
              echo in $(pwd); echo to-err >&2; cat code.txt; mkdir -p out;
              echo {n} > out/r.txt; echo '{{"acc": 0.75}}' > metrics.json
            outputs: [out]
            metrics: metrics.json
            resources: {cpu: 1, memory: 64Mi}
    """, **{"code.txt": "the recorded code\n"})
    done = _run(cli, root, "-P", "n=3")
    assert done.code == 0, done.err
    record = _only_record(root)
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert (root / "out" / "r.txt").read_text() == "3.0\n" or \
        (root / "out" / "r.txt").read_text() == "3\n"
    assert record["metrics"] == {"acc": 0.75}
    engine = record["engine"]
    assert engine["status"] == "SUCCEEDED" and engine["driver_exit_code"] == 0
    assert engine["submission_id"] == f"mlproject-{record['id']}" == record["handle"]["id"]
    assert re.fullmatch(r"gcs://_ray_pkg_[0-9a-f]{40}\.tar\.gz", engine["working_dir"])
    assert engine["reserved"] == {"entrypoint_num_cpus": 1.0, "entrypoint_memory": 64 * 2**20}
    assert engine["address"] == ray.address and engine["finished_at"]
    assert "only a reservation" in record["submission"]["enforcement"]["memory"]
    log = _log(root, record)
    # the step ran in Ray's working_dir (the shipped code), not in this project directory
    assert "working_dir_files/_ray_pkg_" in log and str(root) not in log.split("\n", 1)[0]
    assert "the recorded code" in log and "to-err" in log
    assert "@@mlproject-worker-result" not in log and "Running entrypoint" not in log
    job = _job(ray, engine["submission_id"])
    assert job.metadata["mlproject.run_id"] == record["id"]
    assert job.status.value == "SUCCEEDED"


def test_the_step_s_exit_code_is_passed_through(cli: Callable[..., Result],
                                                project: Callable[..., Path], ray: Any) -> None:
    root = _project(project, """
        entry_points:
          main:
            command: "echo failing; exit 3"
    """)
    done = _run(cli, root)
    assert done.code == 3, done.err
    record = _only_record(root)
    assert record["status"] == "failed" and record["exit_code"] == 3
    assert record["engine"]["status"] == "FAILED" and record["engine"]["driver_exit_code"] == 3
    assert "failing" in _log(root, record)


def test_a_time_limit_is_enforced_by_mlproject(cli: Callable[..., Result],
                                               project: Callable[..., Path], ray: Any) -> None:
    root = _project(project, """
        entry_points:
          main:
            command: "echo started; sleep 60; echo never"
            resources: {timeout: 2}
    """)
    start = time.monotonic()
    done = _run(cli, root)
    took = time.monotonic() - start
    assert done.code == 124, done.err
    assert took < 20, took
    record = _only_record(root)
    assert record["status"] == "timeout"
    assert "enforced by mlproject" in record["submission"]["enforcement"]["timeout"]
    log = _log(root, record)
    assert "started" in log and "never" not in log
    # Ray holds no job of it still running
    assert _job(ray, record["handle"]["id"]).status.is_terminal()


def test_cancel_stops_the_ray_job(project: Callable[..., Path], ray: Any,
                                  supervisors: list[int], tmp_path: Path) -> None:
    gate = tmp_path / "go"  # the job runs on this machine: an absolute path reaches it
    root = _project(project, f"""
        entry_points:
          main:
            command: "echo started; while [ ! -f {gate} ]; do sleep 0.05; done; echo released"
    """)
    env = {**__import__("os").environ, "PYTHONUNBUFFERED": "1"}
    run = [sys.executable, "-m", "mlproject.runner"]
    detached = subprocess.run([*run, "run", str(root), "--backend", "ray", "--detach"], cwd=root,
                              env=env, capture_output=True, text=True, timeout=60)
    assert detached.returncode == 0, detached.stderr
    supervisors.append(int(re.search(r"supervised by process (\d+)", detached.stderr)[1]))  # type: ignore[index]
    run_id = detached.stdout.split()[0]
    deadline = time.monotonic() + 60
    while "started" not in _logs_of(root, run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "started" in _logs_of(root, run_id)
    record = records.list_runs(str(root))[0]
    assert record["status"] == "running" and record["handle"]["id"] == f"mlproject-{run_id}"
    cancelled = subprocess.run([*run, "cancel", run_id], cwd=root, env=env,
                               capture_output=True, text=True, timeout=60)
    assert cancelled.returncode == 0, cancelled.stderr
    waited = subprocess.run([*run, "wait", run_id], cwd=root, env=env, capture_output=True,
                            text=True, timeout=60)
    assert waited.returncode == 130, waited.stderr
    record = _only_record(root)
    assert record["status"] == "cancelled"
    assert _job(ray, f"mlproject-{run_id}").status.value == "STOPPED"
    assert "released" not in _log(root, record)


def _logs_of(root: Path, run_id: str) -> str:
    path = root / ".mlproject" / "runs" / run_id / "log.txt"
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize(("resources", "said"), [
    ("{cpu: 64}", "64 CPUs"),
    ("{gpu: 2}", "2 GPUs"),
    ("{memory: 512Gi}", "512Gi memory"),
])
def test_a_request_no_node_can_meet_is_refused_before_submit(
        cli: Callable[..., Result], project: Callable[..., Path], ray: Any, resources: str,
        said: str) -> None:
    root = _project(project, f"""
        entry_points:
          main:
            command: "echo never"
            resources: {resources}
    """)
    before = len(_jobs(ray))
    done = _run(cli, root)
    assert done.code == 2, done.err
    assert f"asks for {said} on one node" in done.err and "resources_total" in done.err
    assert "2 CPUs" in done.err or "1 GPU" in done.err or "2Gi memory" in done.err
    assert "PENDING" in done.err and "ray start --address" in done.err
    assert len(_jobs(ray)) == before  # nothing was submitted
    assert _records(root) == []


def test_a_pending_job_shows_ray_s_reason_and_queue_timeout_cancels_it(
        cli: Callable[..., Result], project: Callable[..., Path], ray: Any) -> None:
    root = _project(project, """
        entry_points:
          main:
            command: "echo never"
            resources: {cpu: 8}
    """)
    done = cli("run", str(root), "--backend", "ray", "--backend-config",
               '{"check_resources": false}', "--queue-timeout", "3")
    assert done.code != 0, done.err
    assert "queued: Ray: Job has not started yet" in done.err
    record = _only_record(root)
    assert record["status"] == "cancelled", record
    assert "waiting for resources" in (record["reason"] or ""), record["reason"]
    # Ray cannot stop a job it has not started: the record says so, and the job ends at the
    # head's start timeout (tests/raycluster.py), never starting the step
    assert "still pending" in record["engine"]["stop"], record["engine"]
    from tests import raycluster

    job = record["handle"]["id"]
    end = time.monotonic() + raycluster.START_TIMEOUT + 30
    while not _job(ray, job).status.is_terminal():
        assert time.monotonic() < end, f"Ray still holds {job} pending"
        time.sleep(0.5)
    assert _job(ray, job).status.value in ("STOPPED", "FAILED")
    assert "never" not in (_job_logs(ray, job) or "")


def test_a_dirty_tree_is_refused_naming_the_file_and_allow_dirty_ships_it(
        cli: Callable[..., Result], project: Callable[..., Path], ray: Any) -> None:
    root = _project(project, """
        entry_points:
          main:
            command: "cat code.txt"
    """, **{"code.txt": "committed\n"})
    (root / "code.txt").write_text("changed here\n")
    done = _run(cli, root)
    assert done.code == 2 and "code.txt" in done.err and "--allow-dirty" in done.err, done.err
    assert _records(root) == []
    done = _run(cli, root, "--allow-dirty")
    assert done.code == 0, done.err
    record = _only_record(root)
    assert "changed here" in _log(root, record)
    git(root, "checkout", "code.txt")
    done = _run(cli, root, "--force")
    assert done.code == 0, done.err
    last = max(_records(root), key=lambda r: r["id"])
    assert "committed" in _log(root, last)


def test_a_pipeline_gives_each_step_what_its_upstream_step_wrote(
        cli: Callable[..., Result], project: Callable[..., Path], ray: Any) -> None:
    root = _project(project, """
        entry_points:
          prep:
            command: "mkdir -p out && echo rows > out/data.txt"
            outputs: [out/data.txt]
          train:
            needs: [prep]
            command: "mkdir -p out && cat out/data.txt && wc -c < out/data.txt > out/model.txt"
            outputs: [out/model.txt]
    """)
    done = _run(cli, root, "-e", "train")
    assert done.code == 0, done.err
    assert (root / "out" / "model.txt").read_text().strip() == "5"
    by_step = {r["entry_point"]: r for r in _records(root)}
    assert "rows" in _log(root, by_step["train"])


def test_plan_shows_the_ray_request_without_the_worker_request(
        cli: Callable[..., Result], project: Callable[..., Path], ray: Any) -> None:
    root = _project(project, """
        entry_points:
          main:
            command: "echo hi"
            resources: {cpu: 1, gpu: 1, memory: 1Gi, timeout: 30}
    """)
    before = len(_jobs(ray))
    done = cli("plan", str(root), "--backend", "ray", "--json")
    assert done.code == 0, done.err
    shown = json.loads(done.out)
    submission = next(s for s in _submissions(shown))
    request = json.loads(submission["script"])
    assert request["entrypoint"] == "python3 -m mlproject.runner.worker"
    assert request["entrypoint_num_cpus"] == 1.0 and request["entrypoint_num_gpus"] == 1.0
    assert request["entrypoint_memory"] == 2**30
    assert request["submission_id"] == "mlproject-RUN_ID"
    assert request["metadata"] == {"mlproject.run_id": "RUN_ID", "mlproject.entry_point": "main"}
    env_vars = request["runtime_env"]["env_vars"]
    assert env_vars["MLPROJECT_WORKER_REQUEST"].startswith("<")
    assert request["runtime_env"]["working_dir"].startswith("<")
    assert "reservation" in submission["enforcement"]["memory"]
    assert "enforced by mlproject" in submission["enforcement"]["timeout"]
    text = cli("plan", str(root), "--backend", "ray")
    assert text.code == 0 and '"entrypoint_num_gpus": 1.0' in text.out, text.err
    assert len(_jobs(ray)) == before


def _submissions(shown: Any) -> list[dict[str, Any]]:
    """The submissions in `plan --json` output, wherever the plan puts them."""
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("backend") == "ray" and "script" in value:
                found.append(value)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(shown)
    return found


def test_find_and_engine_facts_from_another_process(
        cli: Callable[..., Result], project: Callable[..., Path], ray: Any) -> None:
    root = _project(project, """
        entry_points:
          main:
            command: "echo found"
    """)
    assert _run(cli, root).code == 0
    record = _only_record(root)
    from mlproject.runner import backends

    backend = backends.get("ray", {"address": ray.address})
    run_dir = str(root / ".mlproject" / "runs" / record["id"])
    handle = backend.find(record["id"], run_dir)  # type: ignore[attr-defined]
    assert handle is not None and handle.id == record["handle"]["id"]
    assert backend.find("20000101-000000-000000-000000", run_dir) is None  # type: ignore[attr-defined]
    facts = backend.engine_facts(handle)  # type: ignore[attr-defined]
    assert facts["status"] == "SUCCEEDED" and facts["submission_id"] == handle.id
    assert b"found" in b"".join(backend.logs(handle))
    assert backend.status(handle).status == "succeeded"


def test_a_step_whose_supervisor_was_killed_is_recorded_with_its_outputs(
        project: Callable[..., Path], ray: Any, supervisors: list[int], tmp_path: Path) -> None:
    """The supervisor of a detached run SIGKILLed while Ray runs the step: the next `wait`
    records the end from Ray, with the outputs and the worker's report that came back in the
    job's log, as the supervisor would have."""
    import os
    import signal

    gate = tmp_path / "go"
    root = _project(project, f"""
        entry_points:
          main:
            command: >-
              echo started; while [ ! -f {gate} ]; do sleep 0.05; done;
              mkdir -p out; echo kept > out/r.txt; echo released
            outputs: [out]
    """)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = [sys.executable, "-m", "mlproject.runner"]
    detached = subprocess.run([*run, "run", str(root), "--backend", "ray", "--detach"], cwd=root,
                              env=env, capture_output=True, text=True, timeout=60)
    assert detached.returncode == 0, detached.stderr
    supervisor = int(re.search(r"supervised by process (\d+)", detached.stderr)[1])  # type: ignore[index]
    supervisors.append(supervisor)
    run_id = detached.stdout.split()[0]
    deadline = time.monotonic() + 60
    while "started" not in _logs_of(root, run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "started" in _logs_of(root, run_id)
    os.kill(supervisor, signal.SIGKILL)
    gate.touch()
    while not _job(ray, f"mlproject-{run_id}").status.is_terminal():
        assert time.monotonic() < deadline + 60, "the Ray job did not end"
        time.sleep(0.2)
    waited = subprocess.run([*run, "wait", run_id], cwd=root, env=env, capture_output=True,
                            text=True, timeout=60)
    assert waited.returncode == 0, waited.stderr
    record = _only_record(root)
    assert record["status"] == "succeeded", record
    assert (root / "out" / "r.txt").read_text() == "kept\n"
    assert record["engine"]["worker"]["host"]  # the worker's report was taken
    assert "released" in _log(root, record) and "@@mlproject-worker-result" not in _log(root, record)


def test_a_sweep_runs_its_points_as_ray_jobs_at_once_with_what_they_logged(
        cli: Callable[..., Result], project: Callable[..., Path], ray: Any) -> None:
    root = _project(project, """
        name: raysweep
        entry_points:
          main:
            parameters: {a: {type: float, default: 1}}
            command: "python train.py {a}"
            resources: {cpu: 0.5}
    """, **{"train.py": (
        "import sys, time\nfrom mlproject import log\na = float(sys.argv[1])\n"
        "time.sleep(2)\nfor e in range(3):\n    log.metric('loss', (a - 0.5) ** 2 + e, step=e)\n"
        "log.param('seen', str(a))\n")})
    done = cli("sweep", "-e", "main", "--grid", "a=0.2,0.5,0.9", "--jobs", "3", "--backend",
               "ray", "--metric", "loss", "--json", cwd=root)
    assert done.code == 0, done.err
    data = json.loads(done.out)
    assert [p["parameters"]["a"] for p in data["points"]] == ["0.5", "0.2", "0.9"]
    found = {r["id"]: r for r in _records(root)}
    assert len(found) == 3
    jobs = {r["handle"]["id"] for r in found.values()}
    assert len(jobs) == 3 and all(j.startswith("mlproject-") for j in jobs)  # a Ray job each
    spans = sorted((r["started_at"], r["ended_at"]) for r in found.values())
    assert spans[2][0] < spans[0][1]  # all three submitted before the first ended
    for record in found.values():  # logged on Ray's node, carried back in the worker's result
        a = float(record["parameters"]["a"])
        assert [p[:2] for p in record["series"]["loss"]] == [
            [e, (a - 0.5) ** 2 + e] for e in range(3)]
        assert record["logged_params"] == {"seen": str(a)}
