"""A step's python or conda environment built (or reused) inside its container, by the code that
builds one locally (store.EnvStore, python.py, conda.py); then the step runs in it.

    python3 -m mlproject.runner.envs.incontainer [--cache DIR] [--uv PATH] RECIPE_JSON -- ARGV...

The docker backend puts this before the step's command (backends/docker/envmount.py mounts what
it needs). RECIPE_JSON is a file holding the environment as the plan holds it (`{"kind", "data"}`),
or the run's record (run.json), which holds it under "environment". The recipe is made again
for the image's own python, which must be of the X.Y its pins were locked for; the environment is
kept in the mounted cache, in a store of its own for this image's interpreter and C library (a
venv links to its interpreter), keyed inside it as a local environment is. What was used goes to
$MLPROJECT_RUN_DIR/environment.json (`{prefix, built_now, recipe, seconds}`, or `{error}` and exit
2 when it cannot be built: the step never started), then ARGV replaces this process, in the
environment, holding it (store.Hold) until it ends.

This runs under the image's python, which has nothing installed: only the standard library and
mlproject modules that need nothing else are imported (never pyyaml, jsonschema or packaging).
"""
from __future__ import annotations

import json
import os
import platform
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import argparse

# Where envmount.py mounts what this needs; options say otherwise (a hand-made `docker run`).
LIB = "/mlproject/lib"  # mlproject's package (and py-rattler's, for conda), on PYTHONPATH
CACHE = "/mlproject/cache"
SHIM = "/mlproject/shim"  # mlproject.log alone (tracking.SHIM): the step keeps it on its path
UV = "/mlproject/bin/uv"
CERTS = "/mlproject/certs.pem"  # the host's CA bundle: downloads trust what they trust there
REPORT = "environment.json"
EXIT_NOT_BUILT = 2  # as a run that cannot start: nothing of the step ran
FLOOR = (3, 10)  # mlproject's own requires-python


class _Stopped(KeyboardInterrupt):
    """SIGTERM (a cancel, a timeout) while building: the store removes the half-built prefix."""


def _say(text: str) -> None:
    sys.stderr.write(f"mlproject: {text}\n")
    sys.stderr.flush()


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python3 -m mlproject.runner.envs.incontainer",
        description="Build or reuse a step's environment in this container, then run ARGV in it.")
    parser.add_argument("--cache", default=CACHE, help=f"the mounted cache (default {CACHE})")
    parser.add_argument("--uv", default=UV, help=f"uv's binary (default {UV})")
    parser.add_argument("--certs", default=CERTS,
                        help=f"CA certificates for the build's downloads, where it exists (default {CERTS})")
    parser.add_argument("recipe", metavar="RECIPE_JSON",
                        help="the environment as the plan holds it, or the run's run.json")
    if "--" not in argv:
        parser.error("no step to run: ARGV follows `--`")
    cut = argv.index("--")
    command = argv[cut + 1:]
    if not command:
        parser.error("no step to run: ARGV after `--` is empty")
    return parser.parse_args(argv[:cut]), command


def interpreter_store(cache: Path) -> Path:
    """The store of environments made with this interpreter: what a venv depends on beside its
    pins (the interpreter it links to, and the C library its wheels were chosen for)."""
    from mlproject.runner.util.hashing import canonical_digest

    executable = os.path.realpath(sys.executable)
    stat = os.stat(executable)
    libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else None
    identity = {"python": executable, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "version": sys.version, "libc": libc, "machine": platform.machine()}
    return cache / "envs" / canonical_digest(identity)[:16]


def _environment(recipe_file: str) -> tuple[str, Any]:
    """The environment's kind and plan data, from the file the argv names."""
    from mlproject.runner.envs.base import EnvError

    try:
        with open(recipe_file, encoding="utf-8") as handle:
            found = json.load(handle)
    except OSError as exc:
        raise EnvError(f"cannot read {recipe_file}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise EnvError(f"{recipe_file} is not JSON: {exc}") from None
    if isinstance(found, dict) and isinstance(found.get("environment"), dict):
        found = found["environment"]  # a run record
    if not (isinstance(found, dict) and isinstance(found.get("kind"), str)
            and isinstance(found.get("data"), dict)):
        raise EnvError(f"{recipe_file} holds no environment (an object with `kind` and `data`)")
    return found["kind"], found["data"]


def _recipe(kind: str, data: Any) -> Any:
    from mlproject.runner.envs import interpreters
    from mlproject.runner.envs.base import EnvError

    if kind == "python":
        from mlproject.runner.envs import python

        here = interpreters.Interpreter(sys.executable, platform.python_version(),
                                        sys.implementation.name)
        try:
            return python.recipe_for_interpreter(data, here)
        except EnvError as exc:
            xy = ".".join(str(data.get("version", "")).split(".")[:2])
            raise EnvError(f"{exc}: this image's python3 cannot build it; use a base image with "
                           f"Python {xy} (the docker backend's `base_image` setting)") from None
    if kind == "conda":
        from mlproject.runner.envs import conda

        return conda.recipe_from_plan(data)
    raise EnvError(f"a {kind} environment is not built inside a container (python and conda are)")


def _report(path: Path, content: Mapping[str, Any]) -> None:
    from mlproject.runner.util.files import write_atomic

    try:
        write_atomic(path, json.dumps(content, indent=2) + "\n")
    except OSError as exc:
        _say(f"warning: cannot write {path}: {exc.strerror or exc}")


def _fail(report: Path, message: str) -> NoReturn:
    _say(f"environment: {message}")
    _report(report, {"error": message})
    sys.exit(EXIT_NOT_BUILT)


def _step_env(given: Mapping[str, str], activation: Mapping[str, str]) -> dict[str, str]:
    """The step's variables: as the container got them, less what was only for this module (its
    entry on PYTHONPATH), with the environment's activation over them."""
    env = dict(given)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != LIB]
    if rest:
        env["PYTHONPATH"] = os.pathsep.join(rest)
    else:
        env.pop("PYTHONPATH", None)
    env.update(activation)
    return env


def main(argv: list[str]) -> int:
    options, command = _parse(argv)
    if sys.version_info < FLOOR:
        _say(f"environment: this image's python3 is Python {platform.python_version()}, and "
             f"mlproject (which builds the environment with it) needs Python "
             f"{'.'.join(map(str, FLOOR))} or newer: use a base image with a newer python3")
        return EXIT_NOT_BUILT
    given = dict(os.environ)
    run_dir = given.get("MLPROJECT_RUN_DIR") or os.path.dirname(os.path.abspath(options.recipe))
    report = Path(run_dir) / REPORT
    from mlproject.runner.envs.base import EnvError
    from mlproject.runner.envs.store import EnvStore

    cache = Path(options.cache)
    # What the build sees (not the step): the mounted cache (uv's, conda's downloads), uv, and
    # the host's certificates.
    os.environ["MLPROJECT_CACHE_DIR"] = str(cache)
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(options.uv), given.get("PATH", os.defpath)])
    if os.path.isfile(options.certs):  # py-rattler will not even start without certificates
        os.environ["SSL_CERT_FILE"] = options.certs
    started = time.monotonic()

    def stop(signum: int, _frame: Any) -> None:
        raise _Stopped(signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        kind, data = _environment(options.recipe)
        recipe = _recipe(kind, data)
        store = EnvStore(interpreter_store(cache))
        hold = store.hold(recipe.key, _say)
        prefix, built = store.ensure(recipe, _say)
        problem = store.problem(recipe)
        if problem is not None:
            raise EnvError(f"{prefix} cannot be used: {problem}")
    except EnvError as exc:
        _fail(report, str(exc))
    except _Stopped:
        _fail(report, "stopped (SIGTERM) while the environment was being built")
    except OSError as exc:  # the cache not writable by this user, say
        _fail(report, f"{exc.filename or options.cache}: {exc.strerror or exc}")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _report(report, {"kind": kind, "prefix": str(prefix), "built_now": built,
                     "recipe": recipe.describe(), "seconds": round(time.monotonic() - started, 3)})
    hold.inherit()
    env = _step_env(given, recipe.activate(prefix, given))
    sys.stdout.flush()
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        _say(f"cannot run {command[0]}: {exc.strerror or exc}")
        return 127
    raise AssertionError("unreachable")  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
