"""A Job and its pod, as the API returns them (JSON), as a step's state: pure.

The Job's conditions are the engine's verdict (Complete; Failed with DeadlineExceeded or
BackoffLimitExceeded); the pod says more and says it sooner: why it waits (PodScheduled False,
the scheduler's message; an image it may not pull), and how its container ended (the exit
code, OOMKilled). A pod that the Job controller is deleting (deadline passed) is not an end of
its own: the Job's condition, which follows, says why.
"""
from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from typing import Any

from mlproject.runner.backends.base import StepState
from mlproject.runner.state.status import Status

# a container waiting for one of these never starts by itself: the step failed to start
FATAL_WAITING = ("ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError", "ImageInspectError", "ErrImagePull", "ImagePullBackOff")
# these, though, can be a registry's hiccup: the step fails only after this many seconds of them
PULL_RETRIED = ("ErrImagePull", "ImagePullBackOff")


def condition(doc: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The doc's status condition of that type, where it is True."""
    for found in (doc.get("status") or {}).get("conditions") or ():
        if found.get("type") == kind and found.get("status") == "True":
            return dict(found)
    return None


def latest(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The Job's pod (backoffLimit 0: one; the newest where a node lost one)."""
    return max(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""),
               default=None)


def container(pod: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The step container's status ({} before there is one)."""
    for found in ((pod or {}).get("status") or {}).get("containerStatuses") or ():
        if found.get("name") == "step":
            return dict(found)
    return {}


def state_of(job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]],
             deadline: int | None = None, pull_patience: bool = True) -> StepState:
    """The step's state. `job` None: the Job no longer exists. `deadline`: the Job's
    activeDeadlineSeconds (for the message). `pull_patience`: an image pull that fails is still
    retried by the kubelet (ErrImagePull, ImagePullBackOff) and reported as queued."""
    pod = latest(pods)
    ended = _terminated(pod)
    if job is None:
        if ended is not None:
            return _from_container(ended, pod)
        return StepState(Status.CRASHED, reason="the Job no longer exists (deleted outside "
                         "mlproject, or removed after its ttlSecondsAfterFinished)")
    if condition(job, "Complete"):
        return StepState(Status.SUCCEEDED, 0)
    failed = condition(job, "Failed")
    if failed:
        reason = str(failed.get("reason") or "")
        message = str(failed.get("message") or "").strip()
        if reason == "DeadlineExceeded":
            limit = f" ({deadline}s)" if deadline else ""
            return StepState(Status.TIMEOUT, reason=f"the Job ran past its activeDeadlineSeconds"
                             f"{limit}: DeadlineExceeded: {message or 'stopped by the Job controller'}",
                             signal=signal.SIGTERM)
        if ended is not None:
            return _from_container(ended, pod)
        return StepState(Status.FAILED, reason=f"the Job failed: {reason}: {message}".rstrip(": "))
    if pod is None:
        return StepState(Status.QUEUED, reason="waiting for the Job controller to create its pod")
    if ended is not None and not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return _from_container(ended, pod)
    return _live(pod, pull_patience)


def _terminated(pod: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    state = container(pod).get("state") or {}
    terminated = state.get("terminated")
    return dict(terminated) if isinstance(terminated, Mapping) else None


def _from_container(ended: Mapping[str, Any], pod: Mapping[str, Any] | None) -> StepState:
    """How the step's container ended (exit code, OOMKilled), as the kubelet reported it."""
    code = ended.get("exitCode")
    code = code if isinstance(code, int) else None
    reason = str(ended.get("reason") or "")
    if reason == "OOMKilled":
        limit = ((_spec_container(pod).get("resources") or {}).get("limits") or {}).get("memory")
        return StepState(Status.OOM, code, f"killed: out of memory (the kubelet's OOMKilled"
                         f"{f', limits memory {limit}' if limit else ''})", signal.SIGKILL)
    if code == 0:
        return StepState(Status.SUCCEEDED, 0)
    signum = code - 128 if code is not None and 128 < code < 128 + 65 else None
    said = None
    if signum is not None:
        try:
            said = f"killed by {signal.Signals(signum).name}"
        except ValueError:
            said = None
    message = str(ended.get("message") or "").strip()
    if reason and reason not in ("Error", "Completed"):
        said = f"{said}; {reason}" if said else reason
    if message:
        said = f"{said}: {message}" if said else message
    return StepState(Status.FAILED, code, said, signum)


def _spec_container(pod: Mapping[str, Any] | None) -> Mapping[str, Any]:
    for found in ((pod or {}).get("spec") or {}).get("containers") or ():
        if found.get("name") == "step":
            return dict(found)
    return {}


def _live(pod: Mapping[str, Any], pull_patience: bool) -> StepState:
    """A pod that has not ended: running, or waiting (and why, in the engine's words)."""
    status = pod.get("status") or {}
    if status.get("phase") == "Running" and (container(pod).get("state") or {}).get("running"):
        return StepState(Status.RUNNING)
    for found in status.get("conditions") or ():
        if found.get("type") == "PodScheduled" and found.get("status") == "False":
            reason = found.get("reason") or "not scheduled"
            message = str(found.get("message") or "").strip()
            return StepState(Status.QUEUED, reason=f"{reason}: {message}" if message else reason)
    waiting = (container(pod).get("state") or {}).get("waiting") or {}
    reason = str(waiting.get("reason") or "")
    message = str(waiting.get("message") or "").strip()
    said = f"{reason}: {message}" if message else reason
    if reason in FATAL_WAITING and not (pull_patience and reason in PULL_RETRIED):
        return StepState(Status.FAILED, 127, f"the container cannot start: {said}")
    if said:
        return StepState(Status.QUEUED, reason=said)
    if status.get("phase") == "Pending":
        return StepState(Status.QUEUED, reason="the pod is starting on node "
                         f"{(pod.get('spec') or {}).get('nodeName') or '(none yet)'}")
    return StepState(Status.RUNNING)
