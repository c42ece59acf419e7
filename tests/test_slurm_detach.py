"""`run --backend slurm --detach` against a real Slurm (tests/slurmcluster.py): a pipeline
submitted at once, each step held by Slurm (--dependency=afterok) until what it needs has
succeeded; a failing upstream whose dependants Slurm never starts; `mlproject cancel`; a step
that waits in Slurm's queue, with Slurm's pending reason in `runs`, and `--queue-timeout`
giving up on it with that reason recorded; a supervisor killed outright whose job Slurm still
holds. Real mlproject processes throughout (tests/detached.py)."""
from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init
from detached import Mlproject, alive, gated, kill, status_of, until

pytestmark = pytest.mark.slow

TEXT = f"""
    name: chain
    entry_points:
      prep:
        command: "{gated('prep')}; echo rows > data.txt"
        outputs: [data.txt]
      train:
        needs: [prep]
        command: "{gated('train')}; cat data.txt > model.txt"
        outputs: [model.txt]
      report:
        needs: [train]
        command: "{gated('report')}"
      failing:
        command: "echo failing; exit 3"
      never:
        needs: [failing]
        command: "echo never > never.txt"
      hog:
        command: "{gated('hog')}"
        resources: {{cpu: 2}}
      second:
        command: "echo second"
        resources: {{cpu: 2}}
      solo:
        command: "{gated('solo')}"
      forever:
        command: "sleep 300"
"""


@pytest.fixture
def mlp(project: Callable[..., Path], slurm: Any) -> Iterator[Mlproject]:
    root = git_init(project({"MLproject": TEXT, ".gitignore": (
        ".mlproject/\ngo-*\npid-*\ndata.txt\nmodel.txt\nnever.txt\n")}))
    yield Mlproject(root)
    slurm.cancel_all()


def _detach(mlp: Mlproject, supervisors: list[int], *args: str) -> list[str]:
    ids, pid = mlp.detach(*args, "--backend", "slurm")
    supervisors.append(pid)
    return ids


def _go(mlp: Mlproject, name: str) -> None:
    (mlp.root / f"go-{name}").touch()


def _started(mlp: Mlproject, name: str) -> None:
    until(lambda: (mlp.root / f"pid-{name}").exists(), 60, f"{name} to start on the node")


def _stderr_until(process: Any, text: str, timeout: float) -> str:
    """What a running process wrote to stderr, read until `text` appears or `timeout` passes."""
    import os
    import select

    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline:
        if select.select([process.stderr], [], [], 0.2)[0]:
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                break
            seen += chunk.decode(errors="replace")
    return seen


def _jobs_of(slurm: Any, ids: list[str]) -> dict[str, dict[str, str]]:
    """squeue's rows of these runs' jobs, by run id (those it shows)."""
    by_name = {row["name"]: row | {"id": job} for job, row in slurm.jobs().items()}
    return {run: by_name[f"mlproject-{run}"] for run in ids if f"mlproject-{run}" in by_name}


def test_a_detached_pipeline_is_submitted_at_once_and_slurm_runs_it_in_order(
        mlp: Mlproject, slurm: Any, supervisors: list[int]) -> None:
    started = time.monotonic()
    ids = _detach(mlp, supervisors, "-e", "report")
    returned = time.monotonic() - started
    assert len(ids) == 3
    queued = until(lambda: (lambda j: j if len(j) == 3 else None)(_jobs_of(slurm, ids)), 30,
                   "the three jobs to be in squeue")
    print(f"\nrun --detach of 3 steps: returned in {returned:.2f}s, all 3 jobs in squeue "
          f"{time.monotonic() - started:.2f}s after the start", file=sys.stderr)
    prep, train, report = (queued[i] for i in ids)
    assert train["dependency"] == f"afterok:{prep['id']}(unfulfilled)"
    assert report["dependency"] == f"afterok:{train['id']}(unfulfilled)"
    assert train["state"] == report["state"] == "PENDING" and train["reason"] == "Dependency"
    _started(mlp, "prep")
    rows = mlp.runs()
    assert rows["prep"]["status"] == "running"
    assert rows["train"]["status"] == "queued" and "prep" in rows["train"]["reason"]
    for name in ("prep", "train", "report"):
        _go(mlp, name)
    waited = mlp("wait", ids[2], timeout=120)
    assert waited.returncode == 0, waited.stderr
    records = [mlp.record(i) for i in ids]
    assert [r["status"] for r in records] == ["succeeded"] * 3
    assert [r["engine"]["job_id"] for r in records] == [prep["id"], train["id"], report["id"]]
    script = (mlp.root / ".mlproject" / "runs" / ids[1] / "job.sbatch").read_text()
    assert f"#SBATCH --dependency=afterok:{prep['id']}\n" in script
    assert (mlp.root / "model.txt").read_text() == "rows\n"
    assert records[1]["outputs"]["model.txt"]["md5"]
    assert records[0]["engine"]["finished_at"] <= records[1]["engine"]["finished_at"]
    log = (mlp.root / ".mlproject" / "runs" / ids[1] / "log.txt").read_text()
    assert "start-train" in log and "end-train" in log


def test_slurm_never_starts_the_dependant_of_a_failed_step(mlp: Mlproject, slurm: Any,
                                                           supervisors: list[int]) -> None:
    ids = _detach(mlp, supervisors, "-e", "never")
    waited = mlp("wait", ids[0], timeout=60)
    assert waited.returncode == 3, waited.stderr
    dependant = mlp("wait", ids[1], timeout=60)
    assert dependant.returncode == 130, dependant.stderr
    record = mlp.record(ids[1])
    assert record["status"] == "cancelled", record
    assert not (mlp.root / "never.txt").exists()
    job = slurm.job(record["handle"]["id"])
    assert job["JobState"] == "CANCELLED"


def test_cancel_stops_the_job_and_its_dependants(mlp: Mlproject, slurm: Any,
                                                 supervisors: list[int]) -> None:
    ids = _detach(mlp, supervisors, "-e", "train")
    _started(mlp, "prep")
    started = time.monotonic()
    cancelled = mlp("cancel", ids[0], timeout=60)
    print(f"\ncancel of a running Slurm job: {time.monotonic() - started:.2f}s", file=sys.stderr)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"run {ids[0]} (prep): cancelled" in cancelled.stderr
    assert mlp("wait", ids[0]).returncode == 130
    assert mlp("wait", ids[1], timeout=60).returncode == 130
    prep, train = mlp.record(ids[0]), mlp.record(ids[1])
    assert prep["status"] == train["status"] == "cancelled"
    assert slurm.job(prep["handle"]["id"])["JobState"] == "CANCELLED"
    assert slurm.job(train["handle"]["id"])["JobState"] == "CANCELLED"
    assert not (mlp.root / "data.txt").exists()


def test_a_queued_step_says_slurm_s_reason_and_queue_timeout_gives_up_on_it(
        mlp: Mlproject, slurm: Any, supervisors: list[int]) -> None:
    (hog,) = _detach(mlp, supervisors, "-e", "hog")  # takes both CPUs of the node
    _started(mlp, "hog")
    (waiting,) = _detach(mlp, supervisors, "-e", "second")
    row = until(lambda: (lambda r: r if r.get("reason") else None)(mlp.runs()["second"]), 30,
                "second's pending reason")
    assert row["status"] == "queued" and row["reason"].startswith("Slurm: "), row
    assert row["reason"].split()[1] in ("Resources", "Priority"), row
    follower = mlp.popen("logs", "-f", waiting)  # says why it waits, then follows
    try:
        said = _stderr_until(follower, " is queued: Slurm: ", 20)
        assert f"run {waiting} (second) is queued: Slurm: " in said, said
    finally:
        follower.kill()
        follower.communicate(timeout=10)
    started = time.monotonic()
    given_up = mlp("run", "-e", "second", "--backend", "slurm", "--queue-timeout", "2",
                   timeout=60)
    assert given_up.returncode == 130, given_up.stderr
    assert time.monotonic() - started < 20
    rows = json.loads(mlp("runs", "--json").stdout)
    latest = next(r for r in rows if r["entry_point"] == "second" and r["id"] != waiting)
    record = mlp.record(latest["id"])
    assert record["status"] == "cancelled"
    assert record["reason"].startswith("still queued after 2s (--queue-timeout): Slurm: ")
    assert slurm.job(record["handle"]["id"])["JobState"] == "CANCELLED"
    _go(mlp, "hog")
    assert mlp("wait", hog, timeout=60).returncode == 0
    assert mlp("wait", waiting, timeout=60).returncode == 0


def test_a_killed_supervisor_s_job_is_recorded_from_slurm_or_cancelled_through_it(
        mlp: Mlproject, slurm: Any, supervisors: list[int]) -> None:
    (solo,) = _detach(mlp, supervisors, "-e", "solo")
    (forever,) = _detach(mlp, supervisors, "-e", "forever")
    _started(mlp, "solo")
    status_of(mlp, "forever", "running")
    for pid in supervisors:
        kill(pid, signal.SIGKILL)
    until(lambda: not any(alive(pid) for pid in supervisors), 10, "the supervisors to end")
    rows = mlp.runs()
    assert rows["solo"]["status"] == rows["forever"]["status"] == "running"
    _go(mlp, "solo")
    job = mlp.record(solo)["handle"]["id"]
    until(lambda: slurm.job(job)["JobState"] == "COMPLETED", 30, "solo's job to complete")
    assert mlp.runs()["solo"]["status"] == "succeeded"
    record = mlp.record(solo)
    assert record["engine"]["state"] == "COMPLETED" and record["engine"]["job_id"] == job
    assert record["ended_at"] == record["engine"]["finished_at"]
    cancelled = mlp("cancel", forever, timeout=60)
    assert cancelled.returncode == 0, cancelled.stderr
    assert mlp("wait", forever, timeout=60).returncode == 130
    assert mlp.record(forever)["status"] == "cancelled"
    until(lambda: slurm.job(mlp.record(forever)["handle"]["id"])["JobState"] == "CANCELLED", 20,
          "forever's job to be cancelled")
