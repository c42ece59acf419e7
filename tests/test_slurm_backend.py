"""`mlproject run --backend slurm` against a real single-node Slurm 22.05 (tests/slurmcluster.py),
through the real CLI as its own process: the step runs as a batch job through the mlproject
worker, and the record holds Slurm's word on it (job id, state, exit code, node, what it
allocated). Exit codes, a memory overrun, the worker's time limit, GPUs, requests the cluster
can never meet (refused before anything is submitted, with Slurm's words), sbatch's own refusal,
a controller that does not answer, `plan --backend slurm`, Ctrl-C."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init
from detached import Mlproject, until

pytestmark = pytest.mark.slow

TEXT = """
    name: hpc
    entry_points:
      hello:
        command: "echo hello from $SLURM_JOB_ID on $SLURMD_NODENAME; echo to-err >&2; mkdir -p out; echo ok > out/r.txt"
        outputs: [out]
      failing:
        command: "echo failing; exit 3"
      hungry:
        command: "python3 -c \\"x = bytearray(400 * 2**20); import time; time.sleep(3)\\""
        resources: {memory: 64Mi}
      slow:
        command: "touch started; sleep 60"
        resources: {timeout: 2}
      gpu:
        command: "echo gpus=$CUDA_VISIBLE_DEVICES"
        resources: {gpu: 1}
      many_cpus:
        command: "true"
        resources: {cpu: 64}
      much_memory:
        command: "true"
        resources: {memory: 64Gi}
      many_gpus:
        command: "true"
        resources: {gpu: 8}
      waits:
        command: "touch started; sleep 60"
      unlimited_hungry:
        command: "python3 -c \\"x = bytearray(400 * 2**20); import time; time.sleep(5)\\""
      sleeper:
        command: "sleep 300"
"""


@pytest.fixture
def mlp(project: Callable[..., Path], slurm: Any) -> Iterator[Mlproject]:
    root = git_init(project({"MLproject": TEXT, ".gitignore": ".mlproject/\nstarted\nout/\n"}))
    yield Mlproject(root)
    slurm.cancel_all()  # nothing of the test's left queued or running, whatever it asserted


def _run(mlp: Mlproject, entry: str, *args: str, timeout: float = 120
         ) -> subprocess.CompletedProcess[str]:
    return mlp("run", "-e", entry, "--backend", "slurm", *args, timeout=timeout)


def _only(mlp: Mlproject) -> dict[str, Any]:
    rows = json.loads(mlp("runs", "--json").stdout)
    assert len(rows) == 1, rows
    return mlp.record(rows[0]["id"])


def _ours(slurm: Any) -> list[str]:
    return [job for job, row in slurm.jobs().items() if row["name"].startswith("mlproject-")]


def test_a_step_runs_as_a_batch_job_and_is_recorded_with_slurm_s_facts(
        mlp: Mlproject, slurm: Any) -> None:
    started = time.monotonic()
    done = _run(mlp, "hello")
    took = time.monotonic() - started
    print(f"\nrun --backend slurm of one step: {took:.2f}s", file=sys.stderr)
    assert done.returncode == 0, done.stderr
    record = _only(mlp)
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    engine, handle = record["engine"], record["handle"]
    assert handle["backend"] == "slurm" and engine["job_id"] == handle["id"]
    assert engine["state"] == "COMPLETED" and engine["exit_code"] == "0:0"
    assert engine["node"] == slurm.node and engine["partition"] == slurm.partition
    assert engine["name"] == f"mlproject-{record['id']}" and "mem=" in engine["allocated"]
    log = (mlp.root / ".mlproject" / "runs" / record["id"] / "log.txt").read_text()
    assert f"hello from {handle['id']} on {slurm.node}" in log and "to-err" in log
    assert record["outputs"]["out"]["md5"].endswith(".dir")
    assert (mlp.root / "out" / "r.txt").read_text() == "ok\n"
    job = slurm.job(handle["id"])
    assert job["WorkDir"] == str(mlp.root) and job["StdOut"].endswith("/log.txt")


def test_the_step_s_exit_code_is_passed_through(mlp: Mlproject) -> None:
    done = _run(mlp, "failing")
    assert done.returncode == 3, done.stderr
    record = _only(mlp)
    assert record["status"] == "failed" and record["exit_code"] == 3
    assert record["engine"]["state"] == "FAILED" and record["engine"]["exit_code"] == "3:0"


def test_a_memory_overrun_is_oom_137(mlp: Mlproject) -> None:
    done = _run(mlp, "hungry")
    assert done.returncode == 137, done.stderr
    record = _only(mlp)
    assert record["status"] == "oom", record
    assert record["engine"]["memory"] == "64M"


def test_slurm_s_own_memory_kill_is_oom(mlp: Mlproject) -> None:
    """No memory limit of the step's own (the worker sets none): Slurm's --mem, given as a
    directive, is what kills it (OverMemoryKill: FAILED, and its words in the log)."""
    done = _run(mlp, "unlimited_hungry", "--backend-config",
                json.dumps({"directives": ["--mem=64M"]}))
    assert done.returncode == 137, done.stderr
    record = _only(mlp)
    assert record["status"] == "oom", record
    assert record["reason"].startswith("killed by Slurm: out of memory of --mem=64M"), record
    log = (mlp.root / ".mlproject" / "runs" / record["id"] / "log.txt").read_text()
    assert "memory limit" in log


@pytest.mark.slurm_timelimit
def test_slurm_s_own_time_limit_is_timeout_124(mlp: Mlproject) -> None:
    """Slurm's --time (whole minutes; its check runs every ~30 s) ends a step that has no
    timeout of its own: TIMEOUT is a timeout, 124."""
    started = time.monotonic()
    done = _run(mlp, "sleeper", "--backend-config", json.dumps({"directives": ["--time=1"]}),
                timeout=240)
    took = time.monotonic() - started
    print(f"\nSlurm's time limit of 1 minute ended the step after {took:.0f}s", file=sys.stderr)
    assert done.returncode == 124, done.stderr
    record = _only(mlp)
    assert record["status"] == "timeout"
    assert record["engine"]["state"] == "TIMEOUT" and record["engine"]["time_limit"] == "00:01:00"
    assert "Slurm's time limit ended it" in record["reason"]


def test_the_worker_keeps_the_timeout_to_the_second(mlp: Mlproject) -> None:
    started = time.monotonic()
    done = _run(mlp, "slow")
    took = time.monotonic() - started
    assert done.returncode == 124, done.stderr
    assert took < 30, took
    record = _only(mlp)
    assert record["status"] == "timeout"
    assert record["engine"]["time_limit"] == "00:06:00"  # 2 s + the 300 s margin, in minutes


def test_a_gpu_asked_for_is_one_slurm_hands_out(mlp: Mlproject) -> None:
    done = _run(mlp, "gpu")
    assert done.returncode == 0, done.stderr
    record = _only(mlp)
    log = (mlp.root / ".mlproject" / "runs" / record["id"] / "log.txt").read_text()
    assert "gpus=0\n" in log  # Slurm set CUDA_VISIBLE_DEVICES from the node's gres.conf
    assert record["engine"]["gres"] == "gres:gpu:1"


@pytest.mark.parametrize(("entry", "said"), [
    ("many_cpus", "64 CPUs; its nodes have at most 2 (CPUTot)"),
    ("much_memory", "64Gi of memory; its nodes have at most 2048M (RealMemory)"),
    ("many_gpus", "8 GPUs; its nodes have at most 2 (Gres=gpu:2)"),
])
def test_a_request_no_node_can_meet_is_refused_before_anything_is_submitted(
        mlp: Mlproject, slurm: Any, entry: str, said: str) -> None:
    done = _run(mlp, entry)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert "Slurm says: " in done.stderr and "`partition` setting" in done.stderr
    assert "not available" in done.stderr or "More processors requested" in done.stderr
    assert json.loads(mlp("runs", "--json").stdout) == []
    assert _ours(slurm) == []


def test_sbatch_s_own_refusal_is_exit_2_with_its_words(mlp: Mlproject) -> None:
    conf = json.dumps({"directives": ["--constraint=nosuchfeature"]})
    done = _run(mlp, "hello", "--backend-config", conf)
    assert done.returncode == 2, done.stderr
    assert "Invalid feature specification" in done.stderr
    record = _only(mlp)
    assert record["status"] == "failed" and "Slurm refused the job" in record["reason"]


def test_an_unknown_partition_is_said_with_the_ones_there_are(mlp: Mlproject) -> None:
    done = _run(mlp, "gpu", "--backend-config", json.dumps({"partition": "nosuch"}))
    assert done.returncode == 2, done.stderr
    assert "no partition 'nosuch' (its partitions: debug)" in done.stderr


def test_a_controller_that_does_not_answer_is_exit_2_at_once(
        mlp: Mlproject, slurm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = tmp_path / "dead.conf"
    text = Path(slurm.conf).read_text()
    lines = [f"SlurmctldPort={_closed_port()}" if line.startswith("SlurmctldPort=") else line
             for line in text.splitlines()]
    dead.write_text("\n".join(lines) + "\n")
    (tmp_path / "gres.conf").write_text((Path(slurm.conf).parent / "gres.conf").read_text())
    monkeypatch.setenv("SLURM_CONF", str(dead))
    started = time.monotonic()
    done = _run(mlp, "hello")
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert took < 8, took
    assert "the Slurm controller does not answer" in done.stderr and "DOWN" in done.stderr
    assert "start slurmctld" in done.stderr


def test_plan_shows_the_sbatch_script_and_submits_nothing(mlp: Mlproject, slurm: Any) -> None:
    done = mlp("plan", "-e", "gpu", "--backend", "slurm")
    assert done.returncode == 0, done.stderr
    assert "| #SBATCH --gres=gpu:1" in done.stdout and "| #SBATCH --job-name=mlproject-RUN_ID" \
        in done.stdout
    assert "-m mlproject.runner.worker" in done.stdout
    assert _ours(slurm) == [] and json.loads(mlp("runs", "--json").stdout) == []


def test_ctrl_c_cancels_the_job(mlp: Mlproject, slurm: Any) -> None:
    child = mlp.popen("run", "-e", "waits", "--backend", "slurm")
    until(lambda: (mlp.root / "started").exists() or child.poll() is not None, 60,
          "the step to start")
    assert child.poll() is None, child.communicate()
    (job,) = _ours(slurm)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert _only(mlp)["status"] == "interrupted"
    until(lambda: slurm.job(job)["JobState"] == "CANCELLED", 20, "the job to be cancelled")


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
