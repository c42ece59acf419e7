"""A step as a Slurm batch job: the sbatch directives and script, and the `sbatch` argv that
submits it. Pure: nothing is asked of Slurm here, so `plan --backend slurm` shows exactly what
`run` submits.

The directives are `#SBATCH` lines of the script (kept in the run directory, `job.sbatch`), so
the script alone says what was asked; the argv is `sbatch --parsable SCRIPT`. The step's
variables travel by name in `--export` (sbatch reads their values from its own environment),
so neither the script nor the plan ever holds a value (a secret may be one).
"""
from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlproject.runner.plan import Step
from mlproject.spec.units import format_seconds

SCRIPT = "job.sbatch"  # the script's name in the run directory
_NAME_OK = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def job_name(run_id: str) -> str:
    """The job's name: how `find` knows a run's job when its record lacks the id."""
    return f"mlproject-{run_id}"


def minutes(seconds: float) -> int:
    """A time limit as Slurm takes it: whole minutes, rounded up (at least one)."""
    return max(1, math.ceil(seconds / 60 - 1e-9))


def mebibytes(size: int) -> int:
    """Memory as `--mem` takes it (M is MiB in Slurm), rounded up."""
    return max(1, math.ceil(size / 2**20))


@dataclass(frozen=True)
class Job:
    """What is submitted: the directives (sbatch options), the script, the argv."""
    directives: tuple[str, ...]
    script: str
    argv: tuple[str, ...]
    enforcement: Mapping[str, str]
    notes: tuple[str, ...]


def directives(step: Step, *, run_id: str, run_dir: str, cwd: str, env_names: Sequence[str],
               settings: Mapping[str, Any], after: Sequence[str] = (),
               inner_timeout: bool = True) -> tuple[list[str], dict[str, str], list[str]]:
    """The sbatch options of a step, how each resource is honoured, and notes.
    `inner_timeout`: the command on the node stops itself at resources.timeout (the worker);
    Slurm's --time is then the outer bound, with the `time_margin` setting added."""
    res = step.resources
    log = f"{run_dir}/log.txt"
    opts = [f"--job-name={job_name(run_id)}", f"--comment=mlproject:{run_id}",
            f"--chdir={cwd}", f"--output={log}", f"--error={log}", "--open-mode=append",
            "--nodes=1", "--ntasks=1", "--no-requeue"]
    enforcement: dict[str, str] = {}
    notes: list[str] = []
    if res.cpu is not None:
        cpus = max(1, math.ceil(res.cpu))
        opts.append(f"--cpus-per-task={cpus}")
        enforcement["cpu"] = (f"{cpus} CPU{'s' if cpus > 1 else ''} allocated by Slurm "
                              "(--cpus-per-task); pinned where the cluster's TaskPlugin binds "
                              "tasks")
        if cpus != res.cpu:
            notes.append(f"cpu {res.cpu:g} is asked of Slurm as {cpus} (whole CPUs)")
    if res.memory is not None:
        mib = mebibytes(res.memory)
        opts.append(f"--mem={mib}M")
        enforcement["memory"] = (f"--mem={mib}M: Slurm kills the job past it (how closely "
                                 "depends on the cluster: a cgroup at once, or OverMemoryKill at "
                                 "each accounting sample)")
    if res.gpu:
        opts.append(f"--gres=gpu:{res.gpu}")
        enforcement["gpu"] = (f"--gres=gpu:{res.gpu}: Slurm allocates the GPUs and sets "
                              "CUDA_VISIBLE_DEVICES (the devices are fenced where the cluster "
                              "constrains devices with cgroups)")
    if res.timeout is not None:
        margin = float(settings.get("time_margin") or 0) if inner_timeout else 0.0
        limit = minutes(res.timeout + margin)
        opts.append(f"--time={limit}")
        if inner_timeout:
            extra = f" + time_margin {format_seconds(margin)}" if margin else ""
            enforcement["timeout"] = (f"{res.timeout:g}s on the node by the mlproject worker "
                                      f"(from the step's start); Slurm's --time={limit} "
                                      f"(minutes: {format_seconds(res.timeout)}{extra}, rounded "
                                      "up) as the outer bound")
        else:
            enforcement["timeout"] = (f"{res.timeout:g}s by the waiting mlproject; Slurm's "
                                      f"--time={limit} (whole minutes, rounded up) if it is gone")
    for key in ("partition", "account", "qos"):
        if settings.get(key):
            opts.append(f"--{key}={settings[key]}")
    if after:
        opts.append(f"--dependency=afterok:{':'.join(after)}")
        opts.append("--kill-on-invalid-dep=yes")
    names = sorted(env_names)
    bad = [n for n in names if not _NAME_OK.fullmatch(n)]
    if bad:  # --export is a comma-separated list: such a name cannot travel in it
        raise ValueError(f"variable name{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}"
                         " cannot be passed through sbatch --export")
    if settings.get("export_env", True):
        opts.append(f"--export={','.join(['ALL', *names])}")
    else:  # only these (and Slurm's own SLURM_* variables)
        opts.append(f"--export={','.join(names) or 'NONE'}")
    opts.extend(str(d) for d in settings.get("directives") or ())
    broken = [o for o in opts if any(c in o for c in "\n\r\0")]
    if broken:  # a line break would end the #SBATCH line and make the rest shell commands
        raise ValueError(f"sbatch option {broken[0]!r:.200} holds a line break or NUL: it "
                         "cannot be a line of the batch script (a project path, a setting, or "
                         "a directive)")
    if res.memory is None:
        notes.append("no memory asked: Slurm gives the cluster's default (DefMemPerCPU or "
                     "DefMemPerNode)")
    return opts, enforcement, notes


def render(opts: Sequence[str], command: Sequence[str], *, shell: str = "/bin/sh") -> str:
    """The batch script: the directives, then the command, exec'd (so that Slurm's signals
    reach it and its exit code is the job's)."""
    lines = [f"#!{shell}", *(f"#SBATCH {shlex.quote(o)}" for o in opts),
             f"exec {shlex.join(command)}", ""]
    return "\n".join(lines)


def job(step: Step, *, run_id: str, run_dir: str, cwd: str, env_names: Sequence[str],
        command: Sequence[str], settings: Mapping[str, Any], after: Sequence[str] = (),
        inner_timeout: bool = True) -> Job:
    opts, enforcement, notes = directives(step, run_id=run_id, run_dir=run_dir, cwd=cwd,
                                          env_names=env_names, settings=settings, after=after,
                                          inner_timeout=inner_timeout)
    sbatch = tool(settings, "sbatch")
    return Job(tuple(opts), render(opts, command), (sbatch, "--parsable", f"{run_dir}/{SCRIPT}"),
               enforcement, tuple(notes))


def tool(settings: Mapping[str, Any], name: str) -> str:
    """A Slurm command: in the `bin` setting's directory, else found on PATH."""
    where = settings.get("bin")
    return f"{str(where).rstrip('/')}/{name}" if where else name


def test_argv(opts: Sequence[str], sbatch: str = "sbatch") -> list[str]:
    """`sbatch --test-only` of the same directives: Slurm's verdict on a request, without a job
    (asked only when mlproject thinks no node can run it, for Slurm's own words). Options that
    name files of a run that does not exist yet are left out."""
    kept = [o for o in opts if not o.startswith(("--output=", "--error=", "--chdir=",
                                                  "--dependency=", "--kill-on-invalid-dep"))]
    return [sbatch, "--test-only", *kept, "--output=/dev/null", "--wrap=true"]


ARRAY_SCRIPT = "array.sbatch"  # in the first point's run directory
REQUEST_FILE = "worker-request"  # a point's request, in its run directory (mode 0600)
_PER_JOB = ("--job-name=", "--comment=", "--output=", "--error=", "--array=")


def array_name(first_run_id: str) -> str:
    return f"mlproject-array-{first_run_id}"


def array_job(opts: Sequence[str], command: Sequence[str], run_dirs: Sequence[str],
              concurrency: int, request_var: str) -> tuple[list[str], str]:
    """One job array for a sweep's points (one step, so one set of directives): task i runs
    the worker on point i, its request read from the point's run directory (an array gives each
    task the same variables) and its output appended to the point's log. The directives and
    the script."""
    kept = [o for o in opts if not o.startswith(_PER_JOB)]
    first = run_dirs[0]
    array = [f"--job-name={array_name(os.path.basename(first))}", "--comment=mlproject:array",
             f"--output={first}/array-%a.log", f"--error={first}/array-%a.log",
             f"--array=0-{len(run_dirs) - 1}%{max(1, concurrency)}", *kept]
    bad = [d for d in run_dirs if any(c in d for c in "\n\r\0")]
    if bad:
        raise ValueError(f"run directory {bad[0]!r:.200} holds a line break: it cannot be a line "
                         "of the batch script")
    cases = [f"{i}) run_dir={shlex.quote(d)} ;;" for i, d in enumerate(run_dirs)]
    lines = ["#!/bin/sh", *(f"#SBATCH {shlex.quote(o)}" for o in array),
             'case "$SLURM_ARRAY_TASK_ID" in', *cases,
             '*) echo "mlproject: no point for array task $SLURM_ARRAY_TASK_ID" >&2; exit 70 ;;',
             "esac", 'exec >>"$run_dir/log.txt" 2>&1',
             f'{request_var}=$(cat "$run_dir/{REQUEST_FILE}") || exit 70',
             f"export {request_var}", f"exec {shlex.join(command)}", ""]
    return array, "\n".join(lines)
