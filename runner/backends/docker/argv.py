"""The `docker run` argv of a step, from the plan alone: pure (no engine is asked), so that
`plan --backend docker` prints exactly what `run --backend docker` runs.

    docker [--host H] run --detach --init --name mlproject-RUN --label ... --user UID:GID
      --workdir /mlproject/project --volume ROOT:/mlproject/project [--volume ...]
      [--network N] --pull P [--cpus C] [--memory B --memory-swap B] [--gpus N]
      [run_args] [extra_args] -e NAME ... IMAGE [prefix] SHELL -c COMMAND

The project is mounted at a fixed path and is the working directory; the command and every
path into the project are moved there (plancheck.rebase). Path parameters outside the project
and data a link takes outside it are mounted read-only at the same path. Variables are passed
as `-e NAME`, their values only in the environment of the `docker` process. Unlike MLflow,
whose `docker run ...` is one string for `bash -c` (values unquoted: mlflow/mlflow#12475; the
entry point's `&&` and pipes run on the host), the command runs in the container's shell.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlproject.runner.backends.base import RunContext
from mlproject.runner.backends.docker.images import (
    Build,
    ContextError,
    context_digest,
    moving_tag_note,
    pinned,
    tag,
)
from mlproject.runner.plan import Plan, Step, inside
from mlproject.spec.units import format_bytes

CONTAINER_ROOT = "/mlproject/project"  # where the project is mounted, and the step's cwd
PULLS = ("never", "missing", "always")
# `docker run` options mlproject sets itself, or that would lose what it reads from the engine
_OWNED = {"rm": "docker would remove the container at exit, and its exit code and OOMKilled "
                "with it (mlproject removes it once it has read them)",
          "detach": "mlproject detaches it itself", "d": "mlproject detaches it itself",
          "name": "mlproject names the container after the run id",
          "interactive": "a step reads no terminal", "i": "a step reads no terminal",
          "tty": "a terminal would merge stdout and stderr", "t": "a terminal would merge "
          "stdout and stderr", "attach": "mlproject reads the logs itself",
          "a": "mlproject reads the logs itself", "cidfile": "mlproject reads the id itself",
          "pull": "set `pull:` in the environment, or the backend's `pull` setting"}
# run_args that set what a resource declares: one place only
_RESOURCE = {"cpus": "cpu", "memory": "memory", "m": "memory", "memory-swap": "memory",
             "gpus": "gpu"}
_ARG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ArgvError(ValueError):
    """The step cannot be run in a container as declared (preflight says so first)."""


@dataclass(frozen=True)
class DockerRun:
    """What `submit` needs of a step: the argv, the values behind its `-e NAME`s, the image."""
    argv: tuple[str, ...]
    env: Mapping[str, str]
    image: str
    pull: str
    name: str  # the container's
    enforcement: Mapping[str, str]
    notes: tuple[str, ...] = ()
    build: Build | None = None  # an image built from the project: built before it runs
    labels: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None  # why it cannot start after all (a build context gone missing)
    mount: Any = None  # envmount.EnvMount: a python or conda environment built inside


def problems(step: Step, settings: Mapping[str, Any], root: str | None = None,
             environ: Mapping[str, str] = os.environ) -> list[str]:
    """Why the step cannot be planned into a container (each said once, before anything runs).
    Without the project's root, what is read from the project (a build context) is not."""
    try:
        run = plan(step, RunContext.for_plan(root or "/"), settings, environ, read=root is not None)
    except ArgvError as exc:
        return [f"entry point {step.entry_point!r}: {line}" for line in str(exc).splitlines()]
    return [f"entry point {step.entry_point!r}: {run.problem}"] if run.problem else []


def plan(step: Step, ctx: RunContext, settings: Mapping[str, Any],
         environ: Mapping[str, str] = os.environ, read: bool = True) -> DockerRun:
    """The step's `docker run`; ArgvError when it cannot be one. `read`: the build context
    is hashed (else its tag is a placeholder); a context that cannot be read is `problem`."""
    root = os.path.normpath(ctx.cwd)
    problem = None
    said: list[str] = []
    notes: list[str] = []
    env_choice = step.environment
    # a docker environment's options (python plan data has "options" too: the lock's)
    options: Mapping[str, Any] = dict(env_choice.data.get("options") or {}) \
        if env_choice.kind == "docker" else {}
    mounts: list[tuple[str, str, bool]] = [(root, CONTAINER_ROOT, False)]
    values: dict[str, str] = {}
    prefix: tuple[str, ...] = ()
    build: Build | None = None
    mount = None
    pull = str(settings.get("pull") or "missing")

    if env_choice.kind == "docker":
        pull = str(options.get("pull") or pull)
        if options.get("build") is not None:
            build = Build.of(options["build"])
            image = tag(env_choice.name, "0" * 16)
            try:
                if read:
                    image = tag(env_choice.name, context_digest(root, build))
            except ContextError as exc:
                problem = f"environment {env_choice.name!r}: {exc}"
            pull = "never"  # built here, never pulled
        else:
            image = str(env_choice.data.get("image") or env_choice.detail)
            if not pinned(image):
                notes.append(moving_tag_note(image))
        mounts += _volumes(options.get("volumes") or (), root, environ, said)
        values.update(_environment(options.get("environment") or (), environ, said))
    elif env_choice.kind in ("python", "conda"):
        mount = _envmount(step, ctx, settings, said)
        image = mount.image if mount else "?"
        if mount:
            mounts += [(src, dst, ro) for src, dst, ro in mount.volumes]
            values.update(mount.env)
            prefix = tuple(mount.prefix)
            notes.extend(mount.notes)
            if not pinned(image):
                notes.append(moving_tag_note(image))
    else:  # no environment declared (or --env local): the base image's own Python
        from mlproject.runner import tracking
        from mlproject.runner.envs.incontainer import SHIM

        image = _default_base(step, settings.get("base_image"))
        mounts.append((str(tracking.SHIM), SHIM, True))  # `from mlproject import log`
        user_path = step.env.get("PYTHONPATH")
        values["PYTHONPATH"] = os.pathsep.join([SHIM, *([user_path] if user_path else [])])
        notes.append(f"no environment declared: the step runs in {image} with what it has "
                     "installed (the backend's `base_image` setting)")
        if not pinned(image):
            notes.append(moving_tag_note(image))
    if pull not in PULLS:
        said.append(f"pull {pull!r} is not one of {', '.join(PULLS)}")

    moved = _rebased(step, root)
    mounts += _outside(step, root)
    values = {**_moved_values({**step.env, **ctx.env}, root), **values}
    values.setdefault("PYTHONUNBUFFERED", "1")  # a log that streams, not one at exit
    if os.getuid() != 0 and "HOME" not in values:
        values["HOME"] = "/tmp"  # an unknown uid's HOME is '/', where it can write nothing
        notes.append("HOME=/tmp: the user's uid has no home in the image")
    for name in values:
        if not _ENV_NAME.match(name):
            said.append(f"{name!r} is not a variable name `docker run -e` can pass")

    res = step.resources
    resource_flags, enforcement = _resources(step, settings)
    run_args = _run_args(options.get("run_args") or {}, res, said, enforcement)
    extra = [str(a) for a in settings.get("extra_args") or ()]
    if said:
        raise ArgvError("\n".join(dict.fromkeys(said)))

    name = f"mlproject-{ctx.run_id}"
    labels = {"mlproject.run_id": ctx.run_id, "mlproject.entry_point": step.entry_point,
              "mlproject.project": root}
    docker = str(settings.get("docker") or "docker")
    argv: list[str] = [shutil.which(docker) or docker]
    if settings.get("host"):
        argv += ["--host", str(settings["host"])]
    argv += ["run", "--detach", "--init", "--name", name]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    argv += ["--user", f"{os.getuid()}:{os.getgid()}", "--workdir", CONTAINER_ROOT]
    for src, dst, read_only in _unique(mounts):
        argv += _mount(src, dst, read_only)
    if settings.get("network"):
        argv += ["--network", str(settings["network"])]
    argv += ["--pull", pull, *resource_flags, *run_args, *extra]
    # A variable the docker CLI reads itself (its config under HOME, credential helpers on
    # PATH) cannot be given to it with the container's value: that one is written in the argv.
    own = {k: v for k, v in values.items() if _read_by_cli(k)}
    for variable in sorted(values):
        argv += ["-e", f"{variable}={own[variable]}" if variable in own else variable]
    if own:
        notes.append(f"{', '.join(sorted(own))}: given in the argv with the value (the docker "
                     "CLI reads the variable itself)")
    values = {k: v for k, v in values.items() if k not in own}
    argv += [image, *prefix, str(settings.get("shell") or "/bin/sh"), "-c", moved.command]
    if build is not None:
        notes.append(f"image {image}: built from {build.dockerfile} (context {build.context}, "
                     "its .dockerignore honoured) when the engine does not have it yet")
    notes.append("the container is removed by mlproject once its exit code and OOMKilled are "
                 "read (not --rm: docker would remove them with it)")
    return DockerRun(tuple(argv), values, image, pull, name, enforcement, tuple(notes), build,
                     labels, problem, mount)


def _read_by_cli(name: str) -> bool:
    return name in ("HOME", "PATH", "TMPDIR", "XDG_CONFIG_HOME") or name.startswith("DOCKER_")


def _default_base(step: Step, setting: Any) -> str:
    """The base image (`{python}`: the X.Y of the interpreter the step would have run locally)."""
    version = str(step.environment.data.get("version") or "")
    major_minor = ".".join(version.split(".")[:2]) or "{}.{}".format(*sys.version_info[:2])
    return str(setting or "python:{python}-slim").replace("{python}", major_minor)


def _rebased(step: Step, root: str) -> Step:
    """The step with its command and paths moved under the container's project root."""
    from mlproject.runner.plancheck import rebase

    return rebase(Plan(root, root, "", None, step.entry_point, (step,)), CONTAINER_ROOT).steps[0]


def _moved_values(values: Mapping[str, str], root: str) -> dict[str, str]:
    from mlproject.runner.plancheck import moved_path

    def moved(value: str) -> str:
        # a path, or a SQLite URI of one (the run's MLflow store, tracking.mlflowstore)
        scheme = "sqlite:///" if value.startswith("sqlite:///") else ""
        return scheme + moved_path(value[len(scheme):], root, CONTAINER_ROOT)

    return {k: moved(v) for k, v in values.items()}


def _outside(step: Step, root: str) -> list[tuple[str, str, bool]]:
    """Read-only mounts, at the same path, of what the step reads outside the project: path
    parameters, and pinned data that a link places elsewhere."""
    from mlproject.runner.data.pins import workspace_path

    found = []
    for path in step.paths.values():
        path = os.path.normpath(path)
        if not inside(path, [root]) and not inside(root, [path]) and os.path.exists(path):
            found.append((path, path, True))
    for pin in step.pins():
        real = os.path.realpath(workspace_path(root, pin))
        if not inside(real, [os.path.realpath(root)]) and os.path.exists(real):
            found.append((real, real, True))
    return found


def _volumes(volumes: Sequence[Any], root: str, environ: Mapping[str, str],
             said: list[str]) -> list[tuple[str, str, bool]]:
    """The environment's `volumes` (HOST:CONTAINER[:ro|rw]): `~` and $VARIABLES in the host
    part are expanded (MLflow's `bash -c` did), a relative host path is in the project."""
    found = []
    for spec in volumes:
        parts = str(spec).split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/") or (
                len(parts) == 3 and parts[2] not in ("ro", "rw")):
            said.append(f"volume {spec!r} is not HOST:CONTAINER[:ro|rw] (CONTAINER an absolute "
                        "path)")
            continue
        host = _expand(parts[0], environ)
        if "/" in host or host.startswith("."):  # else: a named volume
            host = os.path.normpath(os.path.join(root, host))
        found.append((host, parts[1], len(parts) == 3 and parts[2] == "ro"))
    return found


def _expand(text: str, environ: Mapping[str, str]) -> str:
    if text.startswith("~"):
        text = os.path.join(environ.get("HOME") or os.path.expanduser("~"), text[1:].lstrip("/"))

    def value(match: re.Match[str]) -> str:
        return environ.get(match.group(1) or match.group(2), match.group(0))

    return re.sub(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))", value, text)


def _environment(entries: Sequence[Any], environ: Mapping[str, str],
                 said: list[str]) -> dict[str, str]:
    """MLflow's `environment`: [NAME, value] sets it; NAME copies it from this machine."""
    found: dict[str, str] = {}
    for entry in entries:
        if isinstance(entry, (list, tuple)):
            found[str(entry[0])] = str(entry[1])
        elif str(entry) in environ:
            found[str(entry)] = environ[str(entry)]
        else:
            said.append(f"the environment copies variable {entry} from this machine, where it "
                        "is not set: set it, or give it a value ([NAME, value])")
    return found


def _resources(step: Step, settings: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    res = step.resources
    grace = float(settings.get("stop_grace") or 0)
    flags: list[str] = []
    enforcement: dict[str, str] = {}
    if res.cpu is not None:
        flags += ["--cpus", f"{res.cpu:g}"]
        threads = step.env.get("OMP_NUM_THREADS")
        enforcement["cpu"] = f"--cpus {res.cpu:g} (the engine's CPU quota)" + (
            f"; thread variables set to {threads}" if threads else "")
    if res.memory is not None:
        flags += ["--memory", str(res.memory), "--memory-swap", str(res.memory)]
        enforcement["memory"] = (f"--memory {format_bytes(res.memory)} with --memory-swap equal "
                                 "(no swap): over it the kernel kills the step, recorded as oom")
    if res.gpu:
        flags += ["--gpus", str(res.gpu)]
        enforcement["gpu"] = f"--gpus {res.gpu}: the NVIDIA runtime makes {res.gpu} visible"
    elif res.gpu == 0:
        enforcement["gpu"] = "none: no --gpus, the container sees no GPU"
    if res.timeout is not None:
        enforcement["timeout"] = (f"{res.timeout:g}s, by mlproject: the container is stopped "
                                  f"(SIGTERM, then SIGKILL after {grace:g}s) and removed")
    return flags, enforcement


def _run_args(run_args: Mapping[str, Any], res: Any, said: list[str],
              enforcement: dict[str, str]) -> list[str]:
    """`run_args` ({name: value}; true: a flag) as options, each its own argv element."""
    out: list[str] = []
    for key, value in run_args.items():
        name = str(key)
        if not _ARG_NAME.match(name):
            said.append(f"run_args: {name!r} is not a `docker run` option name")
            continue
        if name in _OWNED:
            said.append(f"run_args: {name} cannot be given: {_OWNED[name]}")
            continue
        resource = _RESOURCE.get(name)
        if resource and getattr(res, resource) is not None:
            said.append(f"run_args: {name} sets what resources.{resource} declares: declare "
                        "it once (resources are mapped to the engine's options by mlproject)")
            continue
        flag = f"-{name}" if len(name) == 1 else f"--{name}"
        for item in value if isinstance(value, list) else [value]:
            if item is True:
                out.append(flag)
            elif item is not False and item is not None:
                out += [flag, str(item)]
        if resource:
            enforcement[resource] = f"run_args: {flag} {value}"
    return out


def docker_args(given: Sequence[str]) -> list[str]:
    """`mlflow run -A NAME[=VALUE]` options as `docker run` arguments, as MLflow makes them
    (`-A gpus=all` is `--gpus all`, `-A t` is `-t`); ArgvError for a name that is not an
    option's, or one mlproject sets itself."""
    out: list[str] = []
    for item in given:
        name, sep, value = item.partition("=")
        if not _ARG_NAME.match(name):
            raise ArgvError(f"-A {item!r}: {name!r} is not a `docker run` option name")
        if name in _OWNED:
            raise ArgvError(f"-A {name}: cannot be given: {_OWNED[name]}")
        if name in _RESOURCE:
            raise ArgvError(f"-A {name}: declare resources.{_RESOURCE[name]} in MLproject "
                            "instead (mlproject maps resources to the engine's options)")
        flag = f"-{name}" if len(name) == 1 else f"--{name}"
        out += [flag, value] if sep else [flag]
    return out


def _envmount(step: Step, ctx: RunContext, settings: Mapping[str, Any],
              said: list[str]) -> Any:
    from mlproject.runner.backends.docker import envmount
    from mlproject.runner.envs.base import EnvError

    try:
        return envmount.for_step(step, ctx, settings)
    except (EnvError, ValueError, OSError) as exc:
        said.append(f"environment {step.environment.name!r}: {exc}")
        return None


def _unique(mounts: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    seen: dict[str, tuple[str, str, bool]] = {}
    for mount in mounts:
        seen.setdefault(mount[1], mount)  # one mount per container path: the first wins
    return list(seen.values())


def _mount(src: str, dst: str, read_only: bool) -> list[str]:
    if ":" in src or ":" in dst or "," in src or "," in dst:
        # --volume splits at ':'; --mount reads CSV, where a quoted field may hold ',' and ':'
        def field_(key: str, value: str) -> str:
            text = f"{key}={value}"
            return '"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text

        spec = ",".join(["type=bind" if "/" in src else "type=volume", field_("source", src),
                         field_("target", dst)] + (["readonly"] if read_only else []))
        return ["--mount", spec]
    return ["--volume", f"{src}:{dst}{':ro' if read_only else ''}"]
