"""The docker backend: a step is a container of a Docker engine.

`prepare` plans the `docker run --detach` argv (argv.py, pure); `submit` builds the image where
the environment is a Dockerfile (images.py, once per content hash), runs that argv with the
`docker` CLI (so what ran is what `plan --backend docker` printed) and keeps the container id;
while it runs, everything else goes through the Engine API (engine.py, ~2 ms a question): one
thread follows the container's log, whose end is also the container's end, so `status` asks the
engine only then. `wait` is the generic poll (timeout, Ctrl-C, `mlproject cancel`), then the
container's last state (ExitCode, OOMKilled, the image id run) goes into the record and
mlproject removes the container: it is not run with --rm, which would lose both.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any, ClassVar

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
from mlproject.runner.backends.docker import images
from mlproject.runner.backends.docker.argv import DockerRun, plan, problems
from mlproject.runner.backends.docker.engine import Engine, EngineError
from mlproject.runner.backends.settings import Setting, with_defaults
from mlproject.runner.plan import Step
from mlproject.runner.state.status import Status
from mlproject.runner.util import console
from mlproject.runner.util.exitcodes import INTERRUPTED as EXIT_INTERRUPTED
from mlproject.runner.util.exitcodes import USAGE as EXIT_USAGE
from mlproject.runner.util.files import read_from
from mlproject.spec.units import format_bytes

EXIT_NOT_STARTED = 127  # the container could not be started (as a shell says of a command)
UNANSWERED = 30.0  # seconds the engine may stop answering a running step's status before it is lost
ASK_ANYWAY = 2.0  # seconds between inspects while the log stream says the container runs
FOLLOW_DRAIN = 2.0  # seconds to wait for the end of a log stream once the container has ended

SETTINGS: dict[str, Setting] = {
    "host": Setting(str, None, "the engine's address (unix:///PATH or tcp://HOST:PORT); "
                    "default: DOCKER_HOST, else unix:///var/run/docker.sock"),
    "docker": Setting(str, "docker", "the docker CLI that runs, builds and pulls (a name on "
                      "PATH, or a path)"),
    "base_image": Setting(str, None, "the image of a step whose environment is python, conda "
                          "or none ({python}: its X.Y); default python:{python}-slim"),
    "env_cache": Setting(str, None, "where environments built inside containers are kept "
                         "(default: mlproject's cache directory /docker)"),
    "network": Setting(str, None, "`docker run --network` (and `docker build --network`): "
                       "none, host, a network's name; default: the engine's"),
    "pull": Setting(str, "missing", "when to pull an image the environment does not say "
                    "`pull:` for: never, missing, always"),
    "stop_grace": Setting(float, 5.0, "seconds between SIGTERM and SIGKILL when a step is "
                          "stopped (timeout, Ctrl-C, cancel)"),
    "shell": Setting(str, "/bin/sh", "the shell in the image that runs the command (-c)"),
    "extra_args": Setting(list, [], "more `docker run` options, each an argument, before the "
                          "image (e.g. [\"--runtime=nvidia\"])"),
    "gpu_check": Setting(bool, True, "refuse a gpu request when the engine lists no nvidia "
                         "runtime (false: leave it to `docker run --gpus`, e.g. for CDI)"),
    "keep_container": Setting(bool, False, "leave the container after the step (docker rm it "
                              "yourself): to look inside"),
}


class _Follower(threading.Thread):
    """Follows one container's log from its start: the bytes, and the stream's end (which is
    the container's end). Its own engine connection: the client is not shared across threads."""

    def __init__(self, host: str | None, container: str) -> None:
        super().__init__(daemon=True, name=f"docker-logs-{container[:12]}")
        self._engine = Engine(host)
        self._container = container
        self._lock = threading.Lock()
        self._data = bytearray()
        self._base = 0  # bytes dropped from the front (already shown)
        self.ended = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            for chunk in self._engine.logs(self._container, follow=True):
                with self._lock:
                    self._data += chunk
        except EngineError as exc:
            self.error = str(exc)
        finally:
            self._engine.close()
            self.ended.set()

    def read(self, since: int) -> bytes:
        with self._lock:
            if since > self._base:  # shown: no longer kept
                del self._data[:since - self._base]
                self._base = since
            data = bytes(self._data[since - self._base:]) if since >= self._base else b""
        return data


@dataclass
class _Live:
    """A container this process submitted."""
    run: DockerRun
    follower: _Follower
    built_now: bool | None = None
    cancelled_at: float | None = None
    forced: bool = False
    final: dict[str, Any] | None = None  # the container's inspect once it has ended
    patience: Patience = field(default_factory=lambda: Patience(UNANSWERED))
    asked: float = field(default_factory=time.monotonic)  # when the engine was last inspected


class DockerBackend:
    name = "docker"
    capabilities = Capabilities(shares_filesystem=True, builds_environments=True,
                                runs_containers=True, detaches=True, chains_steps=False,
                                writes_log=False, poll_interval=0.02)
    SETTINGS: ClassVar[dict[str, Setting]] = SETTINGS

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings: dict[str, Any] = with_defaults(SETTINGS, settings)
        self.engine = Engine(self.settings["host"])
        self._prepared: dict[str, DockerRun] = {}
        self._live: dict[str, _Live] = {}
        self._reachable: str | bool | None = False  # False: not asked yet; None: it answers
        self._info: dict[str, Any] | None = None

    # -- before anything runs

    def preflight(self, step: Step, root: str | None = None) -> list[str]:
        """Why the step cannot start here: its argv (the build context read, given the root),
        the CLI, the engine, what the engine can never meet, an image it may not pull."""
        found = problems(step, self.settings, root)
        docker = str(self.settings["docker"])
        if shutil.which(docker) is None:
            found.append(f"the docker CLI ({docker!r}, the docker backend's `docker` setting) "
                         "is not installed or not on PATH: install Docker "
                         "(https://docs.docker.com/engine/install/), or set `docker` to its path")
        unreachable = self._unreachable()
        if unreachable:
            return found + [unreachable]
        found += self._beyond_engine(step)
        found += self._image_absent(step)
        return found

    def _unreachable(self) -> str | None:
        if self._reachable is False:
            try:
                self.engine.ping()
                self._reachable = None
            except EngineError as exc:
                self._reachable = str(exc)
        return self._reachable if isinstance(self._reachable, str) else None

    def _beyond_engine(self, step: Step) -> list[str]:
        """Resource requests this engine can never meet, with its own figures."""
        res = step.resources
        if res.cpu is None and res.memory is None and not res.gpu:
            return []
        try:
            info = self._info = self._info or self.engine.info()
        except EngineError as exc:
            return [str(exc)]
        said = []
        where = f"the Docker engine at {self.engine.host}"
        cpus, memory = info.get("NCPU"), info.get("MemTotal")
        if res.cpu is not None and isinstance(cpus, int) and res.cpu > cpus:
            said.append(f"entry point {step.entry_point!r} asks for {res.cpu:g} CPUs; {where} "
                        f"has {cpus} (NCPU)")
        if res.memory is not None and isinstance(memory, int) and res.memory > memory:
            said.append(f"entry point {step.entry_point!r} asks for {format_bytes(res.memory)} "
                        f"of memory; {where} has {format_bytes(memory)} (MemTotal)")
        runtimes = sorted(info.get("Runtimes") or {})
        if res.gpu and "nvidia" not in runtimes and self.settings["gpu_check"]:
            said.append(f"entry point {step.entry_point!r} asks for {res.gpu} GPU"
                        f"{'s' if res.gpu > 1 else ''}; {where} has no NVIDIA runtime (its "
                        f"runtimes: {', '.join(runtimes) or 'none'}): install the NVIDIA "
                        "Container Toolkit (`nvidia-ctk runtime configure --runtime=docker`), or set "
                        "the docker backend's `gpu_check` to false if `--gpus` works there")
        return said

    def _image_absent(self, step: Step) -> list[str]:
        """An image the engine lacks that the pull policy forbids pulling."""
        try:
            run = plan(step, RunContext.for_plan("/"), self.settings, read=False)
        except ValueError:
            return []  # said by problems()
        if run.build is not None or run.pull != "never":
            return []
        try:
            if self.engine.image(run.image) is not None:
                return []
        except EngineError as exc:
            return [str(exc)]
        return [f"entry point {step.entry_point!r}: image {run.image} is not on the Docker "
                f"engine at {self.engine.host}, and pull is never: `docker pull {run.image}` "
                "(or build it), or let it be pulled (pull: missing)"]

    def prepare(self, step: Step, ctx: RunContext) -> Submission:
        run = plan(step, ctx, self.settings)
        self._prepared[ctx.run_id] = run
        notes = run.notes + ((f"cannot start: {run.problem}",) if run.problem else ())
        return Submission(self.name, step.entry_point, ctx.run_id, run.argv, ctx.cwd, run.env,
                          step.resources, run.enforcement, str(ctx.run_dir / "log.txt"),
                          inherits_env=False, timeout=step.resources.timeout, notes=notes)

    # -- running

    def submit(self, submission: Submission) -> Handle:
        run = self._prepared.pop(submission.run_id, None)
        if run is None:
            raise SubmitError("the docker backend submits what it prepared itself", EXIT_USAGE)
        if run.problem:
            raise SubmitError(run.problem, EXIT_USAGE)
        environ = {**os.environ, **submission.env}  # `docker run -e NAME` reads the values here
        built_now = self._build(submission, run, os.environ) if run.build else None
        if run.mount is not None:
            from mlproject.runner.backends.docker import envmount
            from mlproject.runner.envs.base import EnvError

            try:
                envmount.prepare_host(run.mount)
            except EnvError as exc:
                raise SubmitError(str(exc), EXIT_NOT_STARTED) from None
        if run.pull != "never" and run.build is None:
            try:
                absent = self.engine.image(run.image) is None
            except EngineError as exc:
                raise SubmitError(str(exc), EXIT_NOT_STARTED) from None
            if run.pull == "always" or absent:
                # pulled here, where its progress shows and Ctrl-C stops it; `docker run
                # --pull` then finds it (or, for always, checks the registry once more)
                console.say(f"{submission.entry_point}: pulling image {run.image}")
                self._tool([*self._cli(run), "pull", run.image], submission, os.environ,
                           f"`docker pull {run.image}`")
        from mlproject.runner.util import proc

        try:
            done = proc.run(submission.argv, cwd=submission.cwd, env=environ, check=False,
                            timeout=None)
        except proc.ProcError as exc:  # the CLI itself could not be started
            raise SubmitError(f"could not start the docker CLI: {exc}", EXIT_NOT_STARTED) from None
        if done.code != 0:
            self._remove_quietly(run.name)  # created, then refused at start (a bad mount)
            said = (done.stderr or done.stdout).decode(errors="replace").strip()
            raise SubmitError(f"docker run failed (exit code {done.code}): {said}",
                              EXIT_NOT_STARTED)
        container = done.stdout.decode().strip().splitlines()[-1]
        follower = _Follower(self.settings["host"], container)
        follower.start()
        self._live[submission.run_id] = _Live(run, follower, built_now)
        return Handle(self.name, submission.run_id, container, {
            "host": self.engine.host, "container": run.name, "image": run.image,
            "log": submission.log, "run_dir": os.path.dirname(submission.log)})

    def _build(self, submission: Submission, run: DockerRun, environ: Mapping[str, str]) -> bool:
        """Build the environment's image unless the engine has it (by its content hash)."""
        assert run.build is not None
        try:
            if self.engine.image(run.image) is not None:
                return False
        except EngineError as exc:
            raise SubmitError(str(exc), EXIT_NOT_STARTED) from None
        argv = [*self._cli(run), "build", "--tag", run.image, "--file", run.build.in_context(),
                "--label", f"mlproject.context_hash={run.image.rpartition(':')[2]}"]
        for key, value in sorted(run.build.args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        if self.settings["network"]:
            argv += ["--network", str(self.settings["network"])]
        argv.append("-")  # the context: the tar of exactly what was hashed
        console.say(f"{submission.entry_point}: building image {run.image} from "
                    f"{run.build.dockerfile}")
        build = run.build
        self._tool(argv, submission, environ, f"`docker build` of {build.dockerfile}",
                   lambda out: images.write_tar(submission.cwd, build, out))
        return True

    def _cli(self, run: DockerRun) -> list[str]:
        return [run.argv[0], *(["--host", str(self.settings["host"])] if self.settings["host"]
                               else [])]

    @staticmethod
    def _tool(argv: list[str], submission: Submission, environ: Mapping[str, str], what: str,
              feed: Callable[[IO[bytes]], None] | None = None) -> None:
        """A `docker pull` or `docker build`: its output on the terminal as it comes (they take
        minutes), in mlproject's process group, so that Ctrl-C stops it too."""
        try:
            child = subprocess.Popen(argv, cwd=submission.cwd, env=dict(environ),
                                     stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
                                     stdout=2, stderr=2)
        except OSError as exc:
            raise SubmitError(f"could not start the docker CLI: {exc}", EXIT_NOT_STARTED) from None
        if feed is not None:
            assert child.stdin is not None
            try:
                feed(child.stdin)
                child.stdin.close()
            except (OSError, images.ContextError) as exc:
                if child.poll() is None:  # a context cut short must not be built
                    child.kill()
                child.wait()
                if isinstance(exc, images.ContextError):
                    raise SubmitError(f"{what}: {exc}", EXIT_USAGE) from None
        code = child.wait()
        if code in (-signal.SIGINT, 130):
            raise SubmitError(f"interrupted: {what}", EXIT_INTERRUPTED)
        if code != 0:
            raise SubmitError(f"{what} failed (exit code {code}; its output is above)",
                              EXIT_NOT_STARTED)

    def status(self, handle: Handle) -> StepState:
        live = self._live.get(handle.run_id)
        now = time.monotonic()
        if live is not None:
            self._escalate(handle, live, now)
            # the log stream ends with the container; asked anyway now and then, in case not
            if not live.follower.ended.is_set() and now - live.asked < ASK_ANYWAY:
                return StepState(Status.RUNNING)
            live.asked = now
        try:
            doc = self.engine.container(handle.id)
        except EngineError as exc:
            if live is None:
                return StepState(Status.CRASHED, reason=str(exc))
            return live.patience.unanswered(str(exc), "the engine stopped answering")
        if live is not None:
            live.patience.answered()
        if doc is None:
            return StepState(Status.CRASHED, reason=f"container {handle.id[:12]} no longer "
                             "exists (removed outside mlproject)")
        foreign = _foreign(doc, handle)
        if foreign:
            return StepState(Status.CRASHED, reason=foreign)
        state = state_of(doc)
        if state.status.final and live is not None:
            live.final = doc
        return state

    def _escalate(self, handle: Handle, live: _Live, now: float) -> None:
        """SIGKILL once the step has had `stop_grace` seconds to end after SIGTERM."""
        if live.cancelled_at is not None and not live.forced and \
                now - live.cancelled_at >= float(self.settings["stop_grace"]):
            self.cancel(handle, force=True)

    def logs(self, handle: Handle, since: int = 0, follow: bool = False) -> Iterator[bytes]:
        live = self._live.get(handle.run_id)
        if live is not None and not follow:
            if live.final is not None:  # ended: the stream's last bytes are on their way
                live.follower.ended.wait(FOLLOW_DRAIN)
            data = live.follower.read(since)
            if data:
                yield data
            return
        yield from self._logs_from_engine(handle, since, follow)

    def _logs_from_engine(self, handle: Handle, since: int, follow: bool) -> Iterator[bytes]:
        skip = since
        try:
            for chunk in self.engine.logs(handle.id, follow=follow):
                if skip >= len(chunk):
                    skip -= len(chunk)
                    continue
                yield chunk[skip:]
                skip = 0
            return
        except EngineError as exc:
            if exc.status != 404:
                raise
        # the container is gone: what mlproject kept of its output
        data = read_from(str(handle.data.get("log")), since)
        if data:
            yield data

    def cancel(self, handle: Handle, force: bool = False) -> None:
        live = self._live.get(handle.run_id)
        if live is None and self._refused(handle):
            return
        try:
            self.engine.kill(handle.id, "SIGKILL" if force else "SIGTERM")
        except EngineError as exc:
            console.say(f"warning: cannot stop container {handle.id[:12]}: {exc}")
            return
        if live is not None:
            live.cancelled_at = live.cancelled_at or time.monotonic()
            live.forced = live.forced or force

    def wait(self, submission: Submission, handle: Handle, stopper: Stopper) -> Outcome:
        from mlproject.runner.backends.wait import poll

        outcome = poll(self, submission, handle, stopper)
        live = self._live.pop(handle.run_id, None)
        doc = live.final if live else None
        try:
            doc = doc or self.engine.container(handle.id)
            facts = self._facts(handle, doc)
            if doc is not None and not self.settings["keep_container"]:
                facts["removed"] = self.engine.remove(handle.id)
        except EngineError as exc:
            facts = {"container": handle.id, "error": str(exc)}
            console.say(f"warning: container {handle.id[:12]} could not be read or removed: "
                        f"{exc}")
        if live is not None:
            live.follower.join(FOLLOW_DRAIN)
        environment, problem = self._environment(submission, live)
        if problem and outcome.status == Status.FAILED:  # the step never ran: why
            outcome = replace(outcome, reason=problem)
        elif problem:
            console.say(f"warning: {problem}")
        if live is not None and live.run.build is None and not images.pinned(live.run.image) \
                and facts.get("image_id"):
            console.say(f"warning: image {live.run.image} is a tag without a digest: this run "
                        f"used {facts.get('repo_digest') or facts['image_id']}")
        return replace(outcome, enforced=dict(submission.enforcement), engine=facts,
                       environment=environment)

    def cleanup(self, handle: Handle) -> None:
        """Remove the container of a step whose end another process recorded (reconcile)."""
        if not self.settings["keep_container"] and not self._refused(handle):
            try:
                self.engine.remove(handle.id)
            except EngineError as exc:
                console.say(f"warning: container {handle.id[:12]} could not be removed: {exc}")

    def find(self, run_id: str, run_dir: str) -> Handle | None:
        """The container of a run whose record lacks its handle (the supervisor died between
        `docker run` and writing the record), found by its name; None when there is none."""
        doc = self.engine.container(f"mlproject-{run_id}")
        if doc is None or (doc.get("Config") or {}).get("Labels", {}).get(
                "mlproject.run_id") != run_id:
            return None
        return Handle(self.name, run_id, str(doc.get("Id")), {
            "host": self.engine.host, "container": f"mlproject-{run_id}",
            "image": str((doc.get("Config") or {}).get("Image") or ""),
            "log": os.path.join(run_dir, "log.txt"), "run_dir": run_dir})

    def _refused(self, handle: Handle) -> bool:
        """Whether a handle from another process names a container that is not its run's
        (said); a container that cannot be looked at is left to the call that follows."""
        try:
            doc = self.engine.container(handle.id)
        except EngineError:
            return False
        foreign = None if doc is None else _foreign(doc, handle)
        if foreign:
            console.say(f"warning: {foreign}")
        return foreign is not None

    def engine_facts(self, handle: Handle) -> dict[str, Any]:
        """What the engine says of the container (for a record completed by reconcile)."""
        try:
            return self._facts(handle, self.engine.container(handle.id))
        except EngineError as exc:
            return {"container": handle.id, "error": str(exc)}

    def _facts(self, handle: Handle, doc: Mapping[str, Any] | None) -> dict[str, Any]:
        """What the engine says of the container that ran: for the record."""
        if doc is None:
            return {"container": handle.id, "host": self.engine.host, "gone": True}
        state = doc.get("State") or {}
        config = doc.get("Config") or {}
        image_id = doc.get("Image")
        digests: list[str] = []
        if isinstance(image_id, str):
            found = self.engine.image(image_id)
            digests = list((found or {}).get("RepoDigests") or [])
        ref = str(config.get("Image") or "")
        match = next((d for d in digests if d.split("@")[0] == _repository(ref)), None)
        return {
            "host": self.engine.host, "container": doc.get("Id"),
            "name": str(doc.get("Name") or "").lstrip("/"), "image": ref,
            "image_id": image_id, "repo_digest": match or (digests[0] if digests else None),
            "repo_digests": digests, "exit_code": state.get("ExitCode"),
            "oom_killed": bool(state.get("OOMKilled")), "error": state.get("Error") or None,
            "started_at": state.get("StartedAt"), "finished_at": state.get("FinishedAt"),
            "runtime": (doc.get("HostConfig") or {}).get("Runtime"),
        }

    def _environment(self, submission: Submission, live: _Live | None
                     ) -> tuple[dict[str, Any] | None, str | None]:
        """The environment built for the step (an image built here, or one the container built:
        its report in the run directory), or why the container could not build it."""
        if live is not None and live.run.build is not None:
            build = live.run.build
            return {"prefix": live.run.image, "built_now": bool(live.built_now), "recipe": {
                "kind": "docker-build", "image": live.run.image, "context": build.context,
                "dockerfile": build.dockerfile, "args": dict(build.args),
                "content_hash": live.run.image.rpartition(":")[2]}}, None
        if live is not None and live.run.mount is not None:
            from pathlib import Path

            from mlproject.runner.backends.docker import envmount

            report, problem = envmount.read_report(Path(submission.log).parent)
            name = submission.entry_point
            return report, (f"the environment of {name!r} could not be built in the container: "
                            f"{problem}" if problem else None)
        return None, None

    def _remove_quietly(self, name: str) -> None:
        try:
            self.engine.remove(name)
        except EngineError:
            pass


def _foreign(doc: Mapping[str, Any], handle: Handle) -> str | None:
    """Why the container a handle names is not that run's (a record copied from elsewhere, or
    written by hand, naming someone else's container), or None: it is never stopped or removed."""
    labels = (doc.get("Config") or {}).get("Labels") or {}
    if labels.get("mlproject.run_id") == handle.run_id:
        return None
    return (f"container {str(doc.get('Id') or handle.id)[:12]} is not run {handle.run_id}'s (its "
            "mlproject.run_id label says otherwise): left alone")


def _repository(ref: str) -> str:
    """`registry:5000/team/app:1.2@sha256:...` -> `registry:5000/team/app`."""
    name = ref.split("@")[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':')[0]}" if head else last.split(":")[0]


def state_of(doc: Mapping[str, Any]) -> StepState:
    """A container's inspect document as a step's state."""
    state = doc.get("State") or {}
    status = state.get("Status")
    code = state.get("ExitCode")
    if status in ("created", "running", "paused", "restarting", "removing"):
        return StepState(Status.RUNNING)
    if status == "exited" and isinstance(code, int):
        if code == 0:
            return StepState(Status.SUCCEEDED, 0)
        if state.get("OOMKilled"):
            memory = (doc.get("HostConfig") or {}).get("Memory")
            limit = f"memory limit {format_bytes(memory)}" if memory else "memory"
            return StepState(Status.OOM, code, f"killed: out of {limit} (the engine's OOMKilled)",
                             signal.SIGKILL)
        signum = code - 128 if 128 < code < 128 + 65 else None
        reason = None
        if signum is not None:
            try:
                reason = f"killed by {signal.Signals(signum).name}"
            except ValueError:
                reason = None
        return StepState(Status.FAILED, code, reason, signum)
    return StepState(Status.CRASHED, code if isinstance(code, int) else None,
                     f"the container is {status}: {state.get('Error') or 'no reason given'}")
