"""The ray backend: a step is a Ray job (Ray Jobs through `JobSubmissionClient`).

`prepare` makes the request (request.py, pure: what `plan --backend ray` prints); the job's
entrypoint is the mlproject worker, given the step in MLPROJECT_WORKER_REQUEST, with the step's
resources as the entrypoint's reservations and the project's recorded code (codeship's archive)
as its working_dir. Ray does not share this filesystem: the worker prints the step's outputs and
its report as a bundle at the end of the job's log, which `wait` unpacks into the project.

What Ray does not do, mlproject does: it refuses, before anything is submitted, a request that
no node of the cluster can meet (Ray would leave it pending for ever), and it enforces the time
limit (Ray Jobs have none: the worker's guard, and the waiting mlproject stops the job). Memory
is a reservation in Ray's scheduler, never a limit: the plan and the record say so.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from mlproject.runner import worker
from mlproject.runner.backends.base import (
    Capabilities,
    Handle,
    Outcome,
    Patience,
    RunContext,
    StepState,
    Stopper,
    Submission,
    SubmitError,
)
from mlproject.runner.backends.ray import request as requests
from mlproject.runner.backends.ray.client import Jobs, RayError, installed, step_output, write_code
from mlproject.runner.backends.ray.states import facts_of, state_of
from mlproject.runner.backends.settings import Setting, with_defaults
from mlproject.runner.plan import Step
from mlproject.runner.state.status import Status
from mlproject.runner.util import console
from mlproject.runner.util.exitcodes import USAGE as EXIT_USAGE
from mlproject.spec.units import format_bytes

EXIT_NOT_STARTED = 127  # the job could not be submitted (as a shell says of a command)
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
UNANSWERED = 30.0  # seconds the cluster may not answer about a running job before it is lost
MODULES_PLACEHOLDER = "<mlproject's own package, uploaded at submit>"

SETTINGS: dict[str, Setting] = {
    "address": Setting(str, None, "the Ray cluster's dashboard address (its Jobs API), "
                       "http://HOST:PORT; default: RAY_API_SERVER_ADDRESS, else RAY_ADDRESS "
                       f"where it is an http(s) address, else {DEFAULT_ADDRESS}"),
    "python": Setting(str, "python3", "the Python on the cluster's nodes that runs the "
                      "mlproject worker (mlproject must be importable by it, or see py_modules)"),
    "py_modules": Setting(bool, False, "ship mlproject's own package with every job (runtime_env "
                          "py_modules), for a cluster whose Python lacks mlproject (its "
                          "dependencies must be there: pyyaml, jsonschema, packaging, uv, "
                          "py-rattler)"),
    "check_resources": Setting(bool, True, "refuse a step that no alive node can hold (false: "
                               "an autoscaling cluster whose nodes come when asked for)"),
    "timeout": Setting(float, 10.0, "seconds an answer of the cluster may take"),
}


def address_of(settings: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> str:
    given = settings.get("address")
    if given:
        return str(given).rstrip("/")
    api = environ.get("RAY_API_SERVER_ADDRESS", "")
    if api:
        return api.rstrip("/")
    ray_address = environ.get("RAY_ADDRESS", "")
    if ray_address.startswith(("http://", "https://")):
        return ray_address.rstrip("/")
    return DEFAULT_ADDRESS


@dataclass(frozen=True)
class _Prepared:
    request: requests.RayRequest
    root: str
    allow_dirty: bool
    include: tuple[str, ...]  # upstream steps' outputs the code archive carries


@dataclass
class _Live:
    """A job this process submitted: what it last said, and its log once it had ended."""
    entrypoint: str
    info: dict[str, Any] | None = None
    final_log: bytes | None = None  # the step's output, read after the job ended
    patience: Patience = field(default_factory=lambda: Patience(UNANSWERED))


# Ray's stop of a job still PENDING is a call queued on its supervisor actor, which Ray has not
# scheduled yet (it waits for the job's resources): Ray keeps the job pending until it gets them,
# then stops it at once, before the step can start, or fails it at the cluster's start timeout
# (RAY_JOB_START_TIMEOUT_SECONDS). The record says so rather than wait on Ray for ever.
STOP_PENDING = ("stop requested of Ray while the job was still pending: Ray stops it the moment "
                "it gets its resources (SIGTERM to the entrypoint, at once), or fails it at the "
                "cluster's job start timeout (RAY_JOB_START_TIMEOUT_SECONDS)")


class RayBackend:
    name = "ray"
    capabilities = Capabilities(shares_filesystem=False, builds_environments=True,
                                runs_containers=False, detaches=True, chains_steps=False,
                                writes_log=False, poll_interval=0.25)
    SETTINGS: ClassVar[dict[str, Setting]] = SETTINGS

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings: dict[str, Any] = with_defaults(SETTINGS, settings)
        self.address = address_of(self.settings)
        self.jobs = Jobs(self.address, float(self.settings["timeout"]))
        self._prepared: dict[str, _Prepared] = {}
        self._live: dict[str, _Live] = {}
        self._stop_asked: set[str] = set()  # submission ids this process asked Ray to stop
        self._reachable: str | bool | None = False  # False: not asked yet; None: it answers
        self._nodes: list[dict[str, Any]] | None = None

    # -- before anything runs

    def preflight(self, step: Step, root: str | None = None) -> list[str]:
        """Why the step can never start on this cluster: no Ray client, an address that is
        not the dashboard's, a cluster that does not answer, a request no node can hold."""
        if not self.address.startswith(("http://", "https://")):
            return [f"the ray backend's address {self.address!r} is not the dashboard's http(s) "
                    f"address (e.g. {DEFAULT_ADDRESS}): set it with MLPROJECT_RAY_ADDRESS, "
                    "[backends.ray] address, or --backend-config"]
        if not installed():
            return ["the ray backend needs Ray's client, which is not installed: "
                    "pip install 'mlproject[ray]' (ray[default] of the cluster's version)"]
        unreachable = self._unreachable()
        if unreachable:
            return [unreachable]
        if not self.settings["check_resources"]:
            return []
        return self._beyond_cluster(step)

    def _unreachable(self) -> str | None:
        if self._reachable is False:
            try:
                self.jobs.version()
                self._reachable = None
            except RayError as exc:
                self._reachable = (
                    f"{exc}: start the cluster (`ray start --head --dashboard-host 127.0.0.1`), "
                    f"or point the ray backend at its dashboard (the address setting: "
                    "MLPROJECT_RAY_ADDRESS, [backends.ray] address, --backend-config, or "
                    "RAY_API_SERVER_ADDRESS)")
        return self._reachable if isinstance(self._reachable, str) else None

    def _beyond_cluster(self, step: Step) -> list[str]:
        """The step's entrypoint runs on one node: refused where no alive node has all it asks
        for (Ray would keep it PENDING for ever), with the nodes' resources_total."""
        res = step.resources
        asked = {"CPU": res.cpu, "GPU": float(res.gpu) if res.gpu else None,
                 "memory": float(res.memory) if res.memory is not None else None}
        wanted = {key: value for key, value in asked.items() if value}
        if not wanted:
            return []
        try:
            self._nodes = self._nodes if self._nodes is not None else self.jobs.nodes()
        except RayError as exc:
            return [str(exc)]
        alive = [n for n in self._nodes if n["state"] == "ALIVE"]
        if any(all(float(n["resources_total"].get(key, 0)) >= value
                   for key, value in wanted.items()) for n in alive):
            return []
        said = ", ".join(_amount(key, value) for key, value in wanted.items())
        has = "; ".join(f"{n['name'] or n['node_id'][:12]}: " + ", ".join(
            _amount(key, float(n["resources_total"].get(key, 0))) for key in wanted)
            for n in alive) or "no alive node"
        return [f"entry point {step.entry_point!r} asks for {said} on one node; no alive node "
                f"of the Ray cluster at {self.address} has that (resources_total of its nodes: "
                f"{has}): Ray would leave the job PENDING for ever. Ask for less in the step's "
                "resources, or add a node that has it (`ray start --address HEAD:PORT "
                "--num-cpus N --num-gpus N --memory BYTES`); for an autoscaling cluster, set the "
                "ray backend's check_resources to false"]

    def prepare(self, step: Step, ctx: RunContext) -> Submission:
        env_vars = {worker.REQUEST_VAR: worker.request_for(step, ctx, shared=False),
                    "PYTHONUNBUFFERED": "1"}
        modules = (MODULES_PLACEHOLDER,) if self.settings["py_modules"] else ()
        request = requests.make(step, ctx, worker.argv(str(self.settings["python"])), env_vars,
                                modules)
        include = _upstream_outputs(step, ctx)
        self._prepared[ctx.run_id] = _Prepared(request, ctx.cwd, ctx.allow_dirty, include)
        notes: tuple[str, ...] = requests.NOTES
        if ctx.allow_dirty:
            notes = (*notes, "--allow-dirty: the working tree is shipped as it is, not the "
                     "recorded commit")
        return Submission(self.name, step.entry_point, ctx.run_id, tuple(worker.argv(
            str(self.settings["python"]))), ctx.cwd, env_vars, step.resources,
            requests.enforcement(step), str(ctx.run_dir / "log.txt"), inherits_env=False,
            timeout=step.resources.timeout,
            script=request.render({worker.REQUEST_VAR: worker.PLACEHOLDER}), notes=notes)

    # -- running

    def submit(self, submission: Submission) -> Handle:
        prepared = self._prepared.pop(submission.run_id, None)
        if prepared is None:
            raise SubmitError("the ray backend submits what it prepared itself", EXIT_USAGE)
        from mlproject.runner.worker import codeship

        try:
            archive = codeship.archive(prepared.root, allow_dirty=prepared.allow_dirty,
                                       include=prepared.include)
        except codeship.CodeShipError as exc:
            raise SubmitError(str(exc), EXIT_USAGE) from None
        code = write_code(archive)
        staged = _stage_mlproject() if self.settings["py_modules"] else None
        try:
            request = replace(prepared.request, working_dir=code,
                              py_modules=(staged,) if staged else ())
            submission_id = self.jobs.submit(request.kwargs())
        except RayError as exc:
            raise SubmitError(str(exc), EXIT_NOT_STARTED) from None
        finally:
            os.unlink(code)
            if staged:
                shutil.rmtree(os.path.dirname(staged), ignore_errors=True)
        self._live[submission.run_id] = _Live(request.entrypoint)
        return Handle(self.name, submission.run_id, submission_id, {
            "address": self.address, "entrypoint": request.entrypoint, "log": submission.log,
            "run_dir": os.path.dirname(submission.log), "reserved": request.reserved()})

    def status(self, handle: Handle) -> StepState:
        live = self._live.get(handle.run_id)
        try:
            info = self.jobs.info(handle.id)
        except RayError as exc:
            if live is None:
                return StepState(Status.CRASHED, reason=str(exc))
            return live.patience.unanswered(str(exc), "the Ray cluster stopped answering")
        if live is not None:
            live.patience.answered()
            live.info = info
        foreign = _foreign(info, handle)
        if foreign:
            return StepState(Status.CRASHED, reason=foreign)
        state = state_of(info, handle.id, self.address)
        if state.status == Status.QUEUED and handle.id in self._stop_asked:
            # Ray cannot stop a job it has not started (below): waiting for it would be for ever
            return StepState(Status.CANCELLED, reason=STOP_PENDING)
        return state

    def logs(self, handle: Handle, since: int = 0, follow: bool = False) -> Iterator[bytes]:
        """What the step printed (without Ray's lines or the worker's bundle) after `since`
        bytes; with `follow`, until the job ends."""
        while True:
            ended, output = self._output(handle)
            shown = worker.shown(output)
            if len(shown) > since:
                yield shown[since:]
                since = len(shown)
            if not follow or ended:
                return
            time.sleep(self.capabilities.poll_interval)

    def _output(self, handle: Handle) -> tuple[bool, bytes]:
        """Whether the job had ended when its log was read, and the entrypoint's output."""
        live = self._live.get(handle.run_id)
        if live is not None and live.final_log is not None:
            return True, live.final_log
        info = live.info if live is not None else self.jobs.info(handle.id)
        if info is None or _foreign(info, handle):
            return True, b""
        ended = state_of(info, handle.id, self.address).status.final
        raw = self.jobs.log(handle.id)
        entrypoint = str(handle.data.get("entrypoint") or "") or None
        output = step_output(raw, handle.id, entrypoint)
        if output is None:  # its entrypoint never started: Ray's own lines say why
            output = raw if ended else b""
        if ended and live is not None:
            live.final_log = output
        return ended, output

    def cancel(self, handle: Handle, force: bool = False) -> None:
        """Ray's stop_job: SIGTERM to the worker (it stops the step gracefully), SIGKILL a few
        seconds later; `force` asks again (Ray has no stop without its grace)."""
        if handle.run_id not in self._live:
            try:
                foreign = _foreign(self.jobs.info(handle.id), handle)
            except RayError:
                foreign = None
            if foreign:
                console.say(f"warning: {foreign}")
                return
        try:
            self.jobs.stop(handle.id)
            self._stop_asked.add(handle.id)
        except RayError as exc:
            console.say(f"warning: cannot stop Ray job {handle.id}: {exc}")

    def wait(self, submission: Submission, handle: Handle, stopper: Stopper) -> Outcome:
        from mlproject.runner.backends.wait import poll

        outcome = poll(self, submission, handle, stopper)
        try:
            _, output = self._output(handle)  # poll returns once Ray says it ended
            live = self._live.get(handle.run_id)
            facts = facts_of(live.info if live else self.jobs.info(handle.id), handle.id,
                             self.address, handle.data.get("reserved"))
        except RayError as exc:
            output, facts = b"", {"address": self.address, "submission_id": handle.id,
                                  "error": str(exc)}
            console.say(f"warning: Ray job {handle.id} could not be read after it ended: {exc}")
        self._live.pop(handle.run_id, None)
        if facts.get("status") == "PENDING" and handle.id in self._stop_asked:
            facts["stop"] = STOP_PENDING
        self._stop_asked.discard(handle.id)
        outcome = replace(outcome, enforced=dict(submission.enforcement), engine=facts)
        try:
            report = worker.collect(submission, output)
        except (ValueError, OSError) as exc:  # a bundle that is not this step's: said
            console.say(f"warning: the worker's report of {submission.entry_point!r} cannot be "
                        f"read from the job's log: {exc}")
            report = None
        merged = worker.merged(outcome, report)
        if report is None and merged.status == Status.FAILED and \
                b"No module named mlproject" in output:
            merged = replace(merged, reason=(
                f"the cluster's Python ({self.settings['python']}) cannot import mlproject: "
                "install mlproject there, set the ray backend's python to one that has it, or "
                "set py_modules to true"))
        return merged

    def worker_log(self, handle: Handle) -> bytes:
        """The entrypoint's whole output, the worker's bundle at its end (for reconcile)."""
        return self._output(handle)[1]

    def engine_facts(self, handle: Handle) -> dict[str, Any]:
        """What Ray says of the job (for a record completed by reconcile)."""
        try:
            return facts_of(self.jobs.info(handle.id), handle.id, self.address,
                            handle.data.get("reserved"))
        except RayError as exc:
            return {"address": self.address, "submission_id": handle.id, "error": str(exc)}

    def find(self, run_id: str, run_dir: str) -> Handle | None:
        """The job of a run whose record lacks its handle (the supervisor died right after
        submitting): the one whose submission id is the run's, if its metadata says so."""
        submission_id = requests.submission_id(run_id)
        info = self.jobs.info(submission_id)
        if info is None or (info.get("metadata") or {}).get(requests.RUN_ID_KEY) != run_id:
            return None
        return Handle(self.name, run_id, submission_id, {
            "address": self.address, "entrypoint": info.get("entrypoint"),
            "log": os.path.join(run_dir, "log.txt"), "run_dir": run_dir})


def _foreign(info: Mapping[str, Any] | None, handle: Handle) -> str | None:
    """Why the job a handle names is not that run's (a record copied or written by hand), or
    None: such a job is never stopped."""
    if info is None:
        return None
    owner = (info.get("metadata") or {}).get(requests.RUN_ID_KEY)
    if owner == handle.run_id:
        return None
    return (f"Ray job {handle.id} is not run {handle.run_id}'s (its metadata "
            f"{requests.RUN_ID_KEY} says {owner!r}): left alone")


def _amount(key: str, value: float) -> str:
    if key == "memory":
        return f"{format_bytes(int(value))} memory"
    return f"{value:g} {key}{'s' if value != 1 else ''}"


def _upstream_outputs(step: Step, ctx: RunContext) -> tuple[str, ...]:
    """The declared outputs of the steps this one needs: they are in this workspace (their
    bundles brought them back), not in the recorded commit, and the step reads them."""
    if ctx.plan is None:
        return ()
    return tuple(out for s in ctx.plan.steps if s.entry_point in step.needs
                 for out in (*s.outputs, *([s.metrics] if s.metrics else [])))


def _stage_mlproject() -> str:
    """A copy of mlproject's own packages as one `mlproject` directory (its import name), for
    runtime_env py_modules; the caller removes its parent."""
    import mlproject.runner
    import mlproject.spec
    import mlproject.templates

    parent = tempfile.mkdtemp(prefix="mlproject-modules-")
    top = os.path.join(parent, "mlproject")
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc")
    for module in (mlproject.runner, mlproject.spec, mlproject.templates):
        source = os.path.dirname(str(module.__file__))
        shutil.copytree(source, os.path.join(top, module.__name__.rsplit(".", 1)[1]),
                        ignore=ignored)
    return top
