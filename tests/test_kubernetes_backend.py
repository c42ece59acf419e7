"""`mlproject run --backend kubernetes` against a real single-node Kubernetes 1.20 built here
(tests/kubecluster.py): outputs back into the project, exit codes, OOMKilled, the Job's deadline,
an impossible request refused before anything is submitted, a pod the scheduler cannot place
(its reason shown, --queue-timeout), `mlproject cancel` of a detached run, `plan --backend`, the
TTL."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, git_init
from mlproject.runner.state import records

pytestmark = [pytest.mark.slow, pytest.mark.kubernetes]

TEXT = """
    name: kube
    entry_points:
      main:
        command: "mkdir -p out && echo ok > out/r.txt && echo hello"
        outputs: [out]
      fail:
        command: "exit 3"
      logs:
        parameters: {a: {type: float, default: 1}}
        command: "python3 logs.py {a}"
      oom:
        command: "python3 -c 'x = bytearray(400 * 1024 * 1024)'"
        resources: {memory: 64Mi}
      slow:
        command: "sleep 30"
        resources: {timeout: 2}
      big:
        command: "true"
        resources: {cpu: 64}
      forever:
        command: "echo started > started.txt; sleep 300"
"""


LOGS = """import sys
from mlproject import log
a = float(sys.argv[1])
for e in range(2):
    log.metric("loss", (a - 0.5) ** 2 + e, step=e)
"""


def _conf(cluster: Any, **more: Any) -> str:
    return json.dumps({"kubeconfig": str(cluster.kubeconfig), "mount_mlproject": True,
                       "host_network": True, "pull": "never", "image": cluster.image,
                       "deadline_margin": 0, **more})


@pytest.fixture
def kube(kube_cluster: Any, project: Callable[..., Path]) -> tuple[Any, Path]:
    root = git_init(project({"MLproject": TEXT, ".gitignore": ".mlproject/\nout/\nstarted.txt\n",
                             "logs.py": LOGS}))
    return kube_cluster, root


def _run(cli: Callable[..., Result], kube: tuple[Any, Path], entry: str, **more: Any) -> Result:
    cluster, root = kube
    return cli("run", str(root), "-e", entry, "--backend", "kubernetes", "--backend-config",
               _conf(cluster, **more))


def _record(root: Path) -> dict[str, Any]:
    found = records.list_runs(str(root))
    assert len(found) == 1, found
    return found[0]


def _jobs(cluster: Any) -> list[str]:
    items = cluster.get("/apis/batch/v1/namespaces/default/jobs")["items"]
    return [j["metadata"]["name"] for j in items if j["metadata"]["name"].startswith("mlproject-")]


def test_a_step_runs_as_a_job_and_its_outputs_come_back(cli: Callable[..., Result],
                                                        kube: tuple[Any, Path]) -> None:
    cluster, root = kube
    done = _run(cli, kube, "main")
    assert done.code == 0, done.err
    assert (root / "out" / "r.txt").read_text() == "ok\n"
    record = _record(root)
    assert record["status"] == "succeeded"
    engine = record["engine"]
    assert engine["job"] == record["handle"]["id"] and engine["state"] == "Complete"
    assert engine["node"] == cluster.node and engine["deleted"] is True
    log = (root / ".mlproject" / "runs" / record["id"] / "log.txt").read_text()
    assert "hello" in log and "@@mlproject-worker-result" not in log
    assert engine["job"] not in _jobs(cluster)


def test_failure_oom_and_deadline_are_mapped(cli: Callable[..., Result],
                                             kube: tuple[Any, Path]) -> None:
    _, root = kube
    assert _run(cli, kube, "fail").code == 3
    oom = _run(cli, kube, "oom")
    assert oom.code == 137 and "OOMKilled" in oom.err
    slow = _run(cli, kube, "slow")
    assert slow.code == 124, slow.err
    statuses = sorted(r["status"] for r in records.list_runs(str(root)))
    assert statuses == ["failed", "oom", "timeout"]


def test_an_impossible_request_is_refused_before_anything_is_submitted(
        cli: Callable[..., Result], kube: tuple[Any, Path]) -> None:
    cluster, root = kube
    before = _jobs(cluster)
    done = _run(cli, kube, "big")
    assert done.code == 2 and "asks for 64 CPUs" in done.err and "status.allocatable cpu" in done.err
    assert _jobs(cluster) == before and records.list_runs(str(root)) == []


def test_plan_shows_the_manifest_and_submits_nothing(cli: Callable[..., Result],
                                                     kube: tuple[Any, Path]) -> None:
    cluster, root = kube
    before = _jobs(cluster)
    done = cli("plan", str(root), "-e", "main", "--backend", "kubernetes", "--backend-config",
               _conf(cluster))
    assert done.code == 0, done.err
    assert "kind: Job" in done.out and "backoffLimit: 0" in done.out
    assert "<the worker request: set at submit>" in done.out
    assert _jobs(cluster) == before


def test_a_kept_job_is_removed_after_its_ttl(cli: Callable[..., Result],
                                             kube: tuple[Any, Path]) -> None:
    cluster, root = kube
    assert _run(cli, kube, "fail", keep_job=True, ttl=1).code == 3
    name = _record(root)["handle"]["id"]
    end = time.monotonic() + 60
    while name in _jobs(cluster) and time.monotonic() < end:
        time.sleep(0.5)
    assert name not in _jobs(cluster)


def test_a_pod_no_node_takes_says_the_scheduler_s_reason_and_queue_timeout_cancels_it(
        cli: Callable[..., Result], kube: tuple[Any, Path]) -> None:
    cluster, root = kube
    done = cli("run", str(root), "-e", "main", "--backend", "kubernetes", "--queue-timeout", "5",
               "--backend-config", _conf(cluster, node_selector=["mlproject-test=nowhere"]))
    assert done.code == 130, done.err
    assert "queued: Unschedulable:" in done.err and "node affinity" in done.err, done.err
    record = _record(root)
    assert record["status"] == "cancelled"
    assert "--queue-timeout" in record["reason"] and "node affinity" in record["reason"], record
    assert record["handle"]["id"] not in _jobs(cluster)
    assert not (root / "out").exists()


def test_cancel_stops_a_detached_step_s_job(kube: tuple[Any, Path]) -> None:
    from detached import Mlproject, until

    cluster, root = kube
    mlp = Mlproject(root)
    ids, _ = mlp.detach("-e", "forever", "--backend", "kubernetes", "--backend-config",
                        _conf(cluster))
    until(lambda: mlp.record(ids[0])["status"] == "running", 120, "the pod to run")
    done = mlp("cancel", ids[0], timeout=120)
    assert done.returncode == 0, done.stderr
    assert mlp("wait", ids[0], timeout=120).returncode == 130
    record = mlp.record(ids[0])
    assert record["status"] == "cancelled", record
    until(lambda: record["handle"]["id"] not in _jobs(cluster), 60, "the Job to be deleted")


def test_a_sweep_runs_its_points_as_jobs_at_once_with_what_they_logged(
        cli: Callable[..., Result], kube: tuple[Any, Path]) -> None:
    """Each point is a Job of its own, `--jobs` at a time (not one Indexed Job yet), and what
    its code logged comes back in the worker's result."""
    cluster, root = kube
    done = cli("sweep", "-e", "logs", "--grid", "a=0.2,0.5,0.9", "--jobs", "3", "--backend",
               "kubernetes", "--backend-config", _conf(cluster), "--metric", "loss", "--json",
               cwd=root)
    assert done.code == 0, done.err
    data = json.loads(done.out)
    assert [p["parameters"]["a"] for p in data["points"]] == ["0.5", "0.2", "0.9"]
    found = [r for r in records.list_runs(str(root)) if r["entry_point"] == "logs"]
    assert len(found) == 3 and len({r["handle"]["id"] for r in found}) == 3
    for record in found:
        a = float(record["parameters"]["a"])
        assert [p[:2] for p in record["series"]["loss"]] == [[e, (a - 0.5) ** 2 + e] for e in range(2)]
    assert _jobs(cluster) == []  # each deleted once its facts were read
