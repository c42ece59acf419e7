"""The kubernetes backend's pure parts: the Job manifest from a step, and a Job's and pod's JSON
as a step's state (no cluster needed)."""
from __future__ import annotations

from typing import Any

from mlproject.runner.backends.kubernetes import manifest
from mlproject.runner.backends.kubernetes.state import state_of
from mlproject.runner.state.status import Status


def _job(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "j"}, "status": {"conditions": list(conditions)}}


def _pod(state: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "creationTimestamp": "2026-12-02T10:00:00Z"},
            "spec": {"containers": [{"name": "step", "resources": {"limits": {"memory": "64Mi"}}}]},
            "status": {"containerStatuses": [{"name": "step", "state": state}], **status}}


def test_names_and_quantities() -> None:
    assert manifest.job_name("20261202-120948-838823-08add7") == \
        "mlproject-20261202-120948-838823-08add7"
    assert manifest.label_value("my entry/point!") == "my-entry-point"
    assert manifest.cpu_quantity(1.5) == "1500m" and manifest.cpu_quantity(2) == "2"


def test_states_map_to_statuses() -> None:
    done = {"type": "Complete", "status": "True"}
    assert state_of(_job(done), []).status == Status.SUCCEEDED
    deadline = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "m"}
    assert state_of(_job(deadline), [], 5).status == Status.TIMEOUT
    oom = _pod({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    found = state_of(_job(), [oom])
    assert found.status == Status.OOM and "64Mi" in str(found.reason)
    failed = state_of(_job(), [_pod({"terminated": {"exitCode": 3, "reason": "Error"}})])
    assert failed.status == Status.FAILED and failed.exit_code == 3
    pending = _pod({}, phase="Pending", conditions=[{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient cpu."}])
    queued = state_of(_job(), [pending])
    assert queued.status == Status.QUEUED and queued.reason == \
        "Unschedulable: 0/1 nodes are available: 1 Insufficient cpu."
    never = _pod({"waiting": {"reason": "ErrImageNeverPull", "message": "no image"}}, phase="Pending")
    assert state_of(_job(), [never]).status == Status.FAILED
    running = _pod({"running": {}}, phase="Running")
    assert state_of(_job(), [running]).status == Status.RUNNING
    assert state_of(None, []).status == Status.CRASHED
