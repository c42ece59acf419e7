"""A python or conda environment under the docker backend: what to add to `docker run` so that the
step's locked environment is built inside the container, by the code that builds one locally
(envs/incontainer.py), and kept for the next run.

The step runs in a base image (setting `base_image`, default `python:{python}-slim` for the X.Y
the pins were locked for). Mounted read-only: mlproject's own package, with `packaging` (pure
Python) and, for conda, py-rattler, both mlproject's own dependencies, which the image's python3
runs from PYTHONPATH; uv's binary; this machine's CA bundle (the build's downloads trust what it
trusts). Read-write: a cache directory of the user's (setting `env_cache`, default
<user cache>/docker); the container runs as the user's uid:gid, so what it builds there belongs
to the user. Inside it the environments are kept per interpreter of the image (a venv links to
its interpreter) and keyed as local environments are; uv's cache and mlproject's bytecode sit
beside them. Local sources the lock names (a `--find-links` directory, a file:// package) are
mounted read-only where they are. The recipe is read from the run's record (run.json, in the
mounted project).

Everything else (the project mount, --user, the network) is the docker backend's (argv.py).
"""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproject.runner.backends.base import RunContext
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.incontainer import CACHE, CERTS, FLOOR, LIB, REPORT, SHIM, UV
from mlproject.runner.plan import Step

PROJECT = "/mlproject/project"  # where the docker backend mounts the project (its workdir)
DEFAULT_IMAGE = "python:{python}-slim"
KINDS = ("python", "conda")
MODULE = "mlproject.runner.envs.incontainer"
# where distributions keep their CA bundle: Debian/Ubuntu, Fedora/RHEL, Alpine/macOS
_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem")


@dataclass(frozen=True)
class EnvMount:
    """What `docker run` gets for a step whose environment is built inside the container."""
    image: str
    volumes: tuple[tuple[str, str, bool], ...]  # (host path, container path, read-only)
    env: Mapping[str, str]  # set in the container; over the step's variables of the same name
    prefix: tuple[str, ...]  # argv put before the step's `<shell> -c COMMAND`
    notes: tuple[str, ...]


def builds_inside(step: Step) -> bool:
    """Whether the step's environment is one the container builds (python or conda)."""
    return step.environment.kind in KINDS


def for_step(step: Step, ctx: RunContext, settings: Mapping[str, Any]) -> EnvMount:
    """What to add to the step's `docker run`; pure (nothing is created: see `prepare_host`).
    EnvError: the environment is not one a container builds, or uv cannot be found."""
    choice = step.environment
    if choice.kind not in KINDS:
        raise EnvError(f"a {choice.kind} environment is not built inside a container "
                       "(python and conda are)")
    if not choice.data:
        raise EnvError("the plan holds no recipe for it: make the plan again")
    data = choice.data
    python = _python_of(choice.kind, data)
    if tuple(int(p) for p in python.split(".")) < FLOOR:
        raise EnvError(f"its Python {python} cannot build it in a container: mlproject builds "
                       "it there with the image's own python3, which runs mlproject, so needs "
                       f"Python {'.'.join(map(str, FLOOR))} or newer; run it with --backend local, "
                       "or lock it for a newer Python")
    image = str(settings.get("base_image") or DEFAULT_IMAGE).replace("{python}", python)
    cache = Path(str(settings.get("env_cache") or _default_cache())).expanduser().absolute()
    volumes: list[tuple[str, str, bool]] = [
        (str(_package_dir("mlproject.runner")), f"{LIB}/mlproject", True),
        # pure Python, what complete.py reads requirements and markers with
        (str(_package_dir("packaging", "python environments")), f"{LIB}/packaging", True),
        (_uv_binary(), UV, True),
        (str(cache), CACHE, False),
    ]
    certs = _certificates()
    if certs is not None:
        volumes.append((certs, CERTS, True))
    if choice.kind == "conda":
        volumes.append((str(_package_dir("rattler", "conda environments")), f"{LIB}/rattler", True))
    local = _local_sources(choice.kind, data)
    volumes += [(path, path, True) for path in local]
    from mlproject.runner import tracking

    volumes.append((str(tracking.SHIM), SHIM, True))  # `from mlproject import log`, in the step
    user_path = step.env.get("PYTHONPATH")
    env = {"PYTHONPATH": os.pathsep.join([LIB, SHIM, *([user_path] if user_path else [])])}
    record = _in_container(ctx.run_dir / "run.json", ctx.cwd)
    # -S: nothing of the image's site-packages is wanted; bytecode kept in the cache (the
    # package is mounted read-only), for this process only: the step's python is its own
    prefix = ("python3", "-S", "-X", f"pycache_prefix={CACHE}/pycache", "-m", MODULE, record, "--")
    what = ("its pins" if choice.kind == "python" else "its conda packages")
    notes = [f"environment {choice.name!r} ({choice.kind}) is built inside the container by "
             f"the image's python3 from {what} as the plan holds them, kept in {cache} "
             f"(mounted at {CACHE}) and reused by later runs; {REPORT} in the run directory says "
             "which it used"]
    if _downloads(choice.kind, data):
        notes.append("its first build downloads packages: the container needs network access "
                     "then (a later run reuses the build)")
    return EnvMount(image, tuple(volumes), env, prefix, tuple(notes))


def prepare_host(mount: EnvMount) -> None:
    """Create the writable directories it mounts, as this user: a missing one would be made by
    the daemon, owned by root, and the container (run as the user) could not write to it."""
    for host, _, read_only in mount.volumes:
        if not read_only:
            try:
                Path(host).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EnvError(f"cannot create the environment cache {host}: "
                               f"{exc.strerror or exc}; set the docker backend's `env_cache` to "
                               "a directory you can write") from None


def read_report(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """What the container said of its environment (environment.json): the environment used
    ({kind, prefix, built_now, recipe, seconds}; prefix as the container sees it), or why it
    could not be built; (None, None) when it said nothing (it never got that far)."""
    import json

    try:
        found = json.loads((run_dir / REPORT).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, RecursionError) as exc:
        return None, f"{run_dir / REPORT} cannot be read: {exc}"
    if not isinstance(found, dict):
        return None, f"{run_dir / REPORT} is not an object"
    if isinstance(found.get("error"), str):
        return None, found["error"]
    return found, None


def _default_cache() -> Path:
    from mlproject.runner.util.files import cache_root

    return cache_root() / "docker"


def _python_of(kind: str, data: Mapping[str, Any]) -> str:
    """The X.Y of the image's python: the one the pins were locked for (python); for conda,
    which brings its own, the one mlproject runs under (the image's runs mlproject only)."""
    if kind == "python" and isinstance(data.get("version"), str):
        return ".".join(data["version"].split(".")[:2])
    return ".".join(map(str, sys.version_info[:2]))


def _package_dir(module: str, why: str | None = None) -> Path:
    """The directory of a top-level package (mlproject's, py-rattler's), as installed here."""
    import importlib

    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        raise EnvError(f"{module} is needed to build {why} in a container, and cannot be "
                       f"imported here: {exc}") from None
    location = Path(getattr(found, "__file__", None) or next(iter(found.__path__))).resolve()
    depth = module.count(".") + 1  # mlproject.runner/__init__.py: two up is mlproject's own
    return location.parents[depth - 1] if location.name == "__init__.py" else location


def _certificates() -> str | None:
    """This machine's CA bundle, which the build's downloads trust (a proxy's own CA too); and
    py-rattler does not start without one, which a slim image may lack."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), *_BUNDLES):
        if candidate and os.path.isfile(candidate):
            return os.path.realpath(candidate)
    import ssl  # ~15 ms: only where none of the usual places has one

    found = ssl.get_default_verify_paths().cafile
    return os.path.realpath(found) if found and os.path.isfile(found) else None


def _uv_binary() -> str:
    from mlproject.runner.envs.python import uv

    found = shutil.which(uv())
    if found is None:
        raise EnvError("uv is not installed here (it comes with mlproject): it is mounted into the "
                       "container to build the environment; reinstall mlproject")
    return os.path.realpath(found)


def _in_container(path: Path, root: str) -> str:
    """Where a host path under the project is seen in the container."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        return str(path)  # mounted where it is
    return f"{PROJECT}/{relative.as_posix()}" if str(relative) != "." else PROJECT


def _local_sources(kind: str, data: Mapping[str, Any]) -> list[str]:
    """Directories on this machine the lock installs from: mounted read-only where they are."""
    found: list[str] = []
    if kind == "python":
        for option in data.get("options") or ():
            name, _, value = str(option).partition(" ")
            if name == "--find-links" and value:
                found += _local(value.strip(), directory=True)
    else:
        for package in [*(data.get("conda") or ()), *(data.get("pip") or ())]:
            if isinstance(package, Mapping):
                found += _local(str(package.get("url", "")), directory=False)
    return sorted(set(found))


def _local(where: str, directory: bool) -> list[str]:
    import urllib.parse

    parsed = urllib.parse.urlparse(where)
    if parsed.scheme == "file":
        path = urllib.parse.unquote(parsed.path)
    elif not parsed.scheme and os.path.isabs(where):
        path = where
    else:
        return []  # an index, a url, or a path relative to the project (mounted with it)
    return [path if directory and os.path.isdir(path) else os.path.dirname(path)]


def _downloads(kind: str, data: Mapping[str, Any]) -> bool:
    """Whether a build would reach out: packages pinned, and not only from local sources."""
    import urllib.parse

    if kind == "python":
        options = [str(o) for o in data.get("options") or ()]
        return bool(data.get("pins")) and "--no-index" not in options
    urls = [str(p.get("url", "")) for p in [*(data.get("conda") or ()), *(data.get("pip") or ())]
            if isinstance(p, Mapping)]
    return any(urllib.parse.urlparse(u).scheme not in ("", "file") for u in urls)
