"""Slurm's job states as a step's states (record statuses), from `scontrol show job -o` fields
(or sacct's, which name them the same way), with Slurm's own words for why a job waits or ended.

A job Slurm kills for memory is not always OUT_OF_MEMORY: with JobAcctGatherParams=OverMemoryKill
(no cgroup) Slurm 22.05 says FAILED, Reason=JobLaunchFailure, ExitCode=0:9, and writes
"Exceeded job memory limit" into the job's output: that line, in the log's tail, makes it oom.
"""
from __future__ import annotations

import signal
from collections.abc import Mapping

from mlproject.runner.backends.base import StepState
from mlproject.runner.backends.slurm.ctl import exit_code
from mlproject.runner.state.status import Status

MEMORY_KILLED = (b"exceeded job memory limit", b"exceeded step memory limit",
                 b"detected 1 oom-kill event", b"oom-kill event")

# Slurm's pending reasons a user meets most, said in a few words (the word itself is kept)
PENDING = {
    "None": "submitted, not yet looked at by the scheduler",
    "Priority": "other jobs come first",
    "Resources": "waiting for the resources it asks for to become free",
    "Dependency": "waiting for the upstream steps' jobs to succeed",
    "DependencyNeverSatisfied": "an upstream step's job did not succeed: it will never start",
    "BeginTime": "its start time has not come",
    "JobHeldUser": "held by its user (scontrol release)",
    "JobHeldAdmin": "held by an administrator",
    "PartitionDown": "its partition is down",
    "PartitionInactive": "its partition is inactive",
    "PartitionTimeLimit": "its time limit is over the partition's",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "ReqNodeNotAvail": "a node it needs is down, drained or reserved",
    "NodeDown": "a node it needs is down",
    "BadConstraints": "no node has what it asks for",
    "InvalidAccount": "its account is not valid",
    "InvalidQOS": "its QOS is not valid",
    "Reservation": "waiting for its reservation",
    "Licenses": "waiting for licenses",
}
ACTIVE = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING", "SUSPENDED", "STOPPED"}
WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
           "POWER_UP_NODE"}


def pending_reason(reason: str | None) -> str:
    """Why a job waits, as Slurm says it (its Reason word) with what the word means."""
    word = (reason or "None").strip() or "None"
    meaning = PENDING.get(word)
    return f"Slurm: {word} ({meaning})" if meaning else f"Slurm: {word}"


def memory_killed(log_tail: bytes) -> bool:
    low = log_tail.lower()
    return any(mark in low for mark in MEMORY_KILLED)


def state_of(job: Mapping[str, str], log_tail: bytes = b"") -> StepState:
    """A job's fields (JobState, Reason, ExitCode, TimeLimit, MinMemoryNode) as a step's state;
    `log_tail`: the last bytes of the job's output, where Slurm says it killed it for memory."""
    raw = job.get("JobState") or job.get("State") or ""
    state = raw.split()[0].rstrip("+") if raw else ""  # sacct: "CANCELLED by 0"
    reason = job.get("Reason") or None
    code, sig = exit_code(job.get("ExitCode"))
    signum = sig or None
    if state in WAITING:
        return StepState(Status.QUEUED, reason=pending_reason(reason if state == "PENDING"
                                                              else state))
    if state in ACTIVE:
        return StepState(Status.RUNNING, reason=f"Slurm: {state}" if state != "RUNNING" else None)
    if state == "COMPLETED":
        return StepState(Status.SUCCEEDED, 0)
    memory = job.get("MinMemoryNode") or job.get("mem")
    if state == "OUT_OF_MEMORY" or (state in ("FAILED", "CANCELLED") and memory_killed(log_tail)):
        limit = f" of --mem={memory}" if memory else ""
        return StepState(Status.OOM, 128 + signal.SIGKILL,
                         f"killed by Slurm: out of memory{limit} ({state}"
                         f"{', ' + reason if reason and reason != 'None' else ''})",
                         signal.SIGKILL)
    if state == "TIMEOUT":
        allowed = job.get("TimeLimit") or job.get("Timelimit")
        return StepState(Status.TIMEOUT, code, "Slurm's time limit ended it (TIMEOUT"
                         f"{f', TimeLimit={allowed}' if allowed else ''})", signum)
    if state == "DEADLINE":
        return StepState(Status.TIMEOUT, code, "Slurm ended it at its deadline (DEADLINE)", signum)
    if state == "CANCELLED":
        why = "cancelled through Slurm (scancel)"
        if reason and reason not in ("None", ""):
            why = f"cancelled by Slurm: {pending_reason(reason).removeprefix('Slurm: ')}"
        return StepState(Status.CANCELLED, code, why, signum)
    if state == "FAILED":
        if signum:
            return StepState(Status.FAILED, 128 + signum, f"killed by {_signame(signum)} "
                             f"(Slurm: FAILED, {reason or 'no reason'})", signum)
        return StepState(Status.FAILED, code or 1, None if reason == "NonZeroExitCode"
                         else f"Slurm: FAILED ({reason})" if reason else None)
    if state in ("NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"):
        return StepState(Status.FAILED, code or 1, f"Slurm: {state}"
                         f"{' (' + reason + ')' if reason and reason != 'None' else ''}", signum)
    return StepState(Status.FAILED, code or 1, f"Slurm reported the job as {raw or 'nothing'}",
                     signum)


def _signame(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
