"""A step as the Ray Jobs request that runs it: pure, so that `plan --backend ray` shows exactly
what `submit` sends (the keyword arguments of `JobSubmissionClient.submit_job`).

The entrypoint is the mlproject worker, which runs the step itself on the node (environment,
data, the local guard); the step's resources become the entrypoint's reservations. Ray only
schedules by them: it limits neither time nor memory, so the enforcement said here is honest
about what Ray does and what mlproject or its worker does instead."""
from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlproject.runner.backends.base import RunContext
from mlproject.runner.plan import Step
from mlproject.spec.units import format_bytes

PREFIX = "mlproject-"  # a job's submission id is PREFIX + the run id
RUN_ID_KEY = "mlproject.run_id"  # metadata: the run whose job it is (find, and foreign handles)
ENTRY_POINT_KEY = "mlproject.entry_point"
CODE_PLACEHOLDER = "<the project's code as recorded (tar.gz), uploaded at submit as gcs://_ray_pkg_SHA1.tar.gz>"


def submission_id(run_id: str) -> str:
    return PREFIX + run_id


@dataclass(frozen=True)
class RayRequest:
    """What `submit_job` is called with. `env_vars` go into runtime_env; `working_dir` is the
    code's archive (a local .tar.gz that the client uploads), or the placeholder in a plan."""
    submission_id: str
    entrypoint: str
    num_cpus: float | None
    num_gpus: float | None
    memory: int | None
    env_vars: Mapping[str, str]
    working_dir: str = CODE_PLACEHOLDER
    py_modules: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    def runtime_env(self) -> dict[str, Any]:
        env: dict[str, Any] = {"working_dir": self.working_dir, "env_vars": dict(self.env_vars)}
        if self.py_modules:
            env["py_modules"] = list(self.py_modules)
        return env

    def reserved(self) -> dict[str, Any]:
        """The entrypoint's reservations asked of Ray's scheduler."""
        made = {"entrypoint_num_cpus": self.num_cpus, "entrypoint_num_gpus": self.num_gpus,
                "entrypoint_memory": self.memory}
        return {key: value for key, value in made.items() if value is not None}

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of JobSubmissionClient.submit_job (reservations Ray would
        default are left out, as Ray's own CLI leaves them)."""
        return {"entrypoint": self.entrypoint, "submission_id": self.submission_id,
                "runtime_env": self.runtime_env(), "metadata": dict(self.metadata),
                **self.reserved()}

    def render(self, hidden: Mapping[str, str]) -> str:
        """The request as JSON text, the values of the variables in `hidden` replaced by what
        is shown instead (the worker request may hold a secret: it is never printed)."""
        shown = self.kwargs()
        variables = shown["runtime_env"]["env_vars"]
        for name, placeholder in hidden.items():
            if name in variables:
                variables[name] = placeholder
        return json.dumps(shown, indent=2, sort_keys=True)


def make(step: Step, ctx: RunContext, entrypoint: list[str], env_vars: Mapping[str, str],
         py_modules: tuple[str, ...] = ()) -> RayRequest:
    res = step.resources
    return RayRequest(
        submission_id(ctx.run_id), shlex.join(entrypoint),
        num_cpus=res.cpu, num_gpus=float(res.gpu) if res.gpu else None, memory=res.memory,
        env_vars=dict(env_vars), py_modules=py_modules,
        metadata={RUN_ID_KEY: ctx.run_id, ENTRY_POINT_KEY: step.entry_point})


def enforcement(step: Step) -> dict[str, str]:
    """How each requested resource is honoured on Ray (the worker adds what it enforces)."""
    res = step.resources
    said: dict[str, str] = {}
    if res.cpu is not None:
        said["cpu"] = (f"entrypoint_num_cpus={res.cpu:g}: reserved on the node by Ray's "
                       "scheduler; cores not pinned")
    if res.memory is not None:
        said["memory"] = (f"entrypoint_memory={format_bytes(res.memory)}: only a reservation in "
                          "Ray's scheduler, not a limit (Ray does not stop a job that uses "
                          "more); the worker's cgroup limit where the node lets it make one")
    if res.gpu:
        said["gpu"] = (f"entrypoint_num_gpus={res.gpu}: reserved by Ray, which sets "
                       "CUDA_VISIBLE_DEVICES to the GPUs it assigns")
    if res.timeout is not None:
        said["timeout"] = (f"{res.timeout:g}s, enforced by mlproject (Ray Jobs have no time "
                           "limit): the worker's guard, and the waiting mlproject stops the job "
                           "(stop_job)")
    return said


NOTES = (
    "memory is only a reservation in Ray: it schedules by entrypoint_memory and limits nothing",
    "the code reaches Ray as the job's working_dir: an archive of the recorded commit (with "
    "--allow-dirty, of the working tree); the step's outputs come back in the job's log",
    "the cluster's Python runs the mlproject worker: mlproject must be importable there (or "
    "set the ray backend's py_modules to ship it)",
)
