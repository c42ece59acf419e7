"""Python environments: a virtual environment made by uv from a lock, for one interpreter.

What gets installed comes from, in order: a requirements file that pins everything (it is the
lock), the environment's lock file (`lock:`, or `<stem>.lock` beside the requirements), or a
resolution made now with `uv pip compile` (cached, warned about, and recorded in the run).
"""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlproject.runner.envs import bytecode, complete, interpreters, plandata, reqsyntax, requirements
from mlproject.runner.envs.base import INPUT_MARK, EnvError, Log, env_key
from mlproject.runner.envs.pyinputs import Inputs as Inputs  # re-exported: callers ask here
from mlproject.runner.envs.pyinputs import digest as digest
from mlproject.runner.envs.pyinputs import inputs as inputs
from mlproject.runner.envs.requirements import Requirements
from mlproject.runner.util import proc
from mlproject.runner.util.files import cache_root, write_atomic
from mlproject.runner.util.hashing import canonical_digest
from mlproject.spec.model import Environment

LOCK_HEADER = "# Written by `mlproject lock`"


def uv_env() -> dict[str, str]:
    """uv with its cache beside the environments (hard links, not copies) and no downloads
    of Python."""
    return {**os.environ, "UV_CACHE_DIR": str(cache_root() / "uv"), "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_CONFIG": "1"}


def uv() -> str:
    """uv's binary: the one installed with mlproject (a dependency), else on PATH."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,import-untyped,unused-ignore]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return "uv"


@dataclass(frozen=True)
class PythonRecipe:
    interpreter: interpreters.Interpreter
    lock: Requirements
    source: str  # where the pins come from, for people
    key: str = ""
    kind: str = "python"
    resolved: bool = False  # pins resolved now, not read from a lock in the project
    warnings: tuple[str, ...] = field(default=(), compare=False)
    request: str | None = field(default=None, compare=False)  # `python:` as declared
    # a conda file built as a uv environment (condatranslate): (conda spec, requirement) pairs
    translated: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def describe(self) -> dict[str, Any]:
        found = {"python": self.interpreter.path, "version": self.interpreter.version,
                 "lock": self.source, "resolved_now": self.resolved,
                 "require_hashes": self.lock.hashed,
                 "pins": [p.requirement + (f"; {p.marker}" if p.marker else "")
                          for p in self.lock.pins]}
        if self.translated:
            found["translated"] = [{"conda": spec, "requirement": requirement}
                                   for spec, requirement in self.translated]
        return found

    def build(self, prefix: Path, log: Log) -> None:
        env = uv_env()
        _uv(["venv", "--quiet", "--allow-existing", "--python", self.interpreter.path, str(prefix)], env)
        if not self.lock.pins:
            return
        lock_file = prefix / ".mlproject-lock.txt"
        lock_file.write_text(self.lock.as_lock())
        log(f"installing {len(self.lock.pins)} packages from {self.source}")
        python = str(prefix / "bin" / "python")
        sync = ["pip", "sync", "--quiet", "--python", python, str(lock_file)]
        if self.lock.hashed:
            sync.insert(2, "--require-hashes")
        _uv(sync, env)
        # Bytecode: compiled once into uv's cache and linked from there (see bytecode.py);
        # whatever did not come from the cache (or a layout uv changed) is compiled in place.
        site = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
        site_packages = site.stdout.decode().strip()
        wheels = bytecode.wheel_dirs(Path(env["UV_CACHE_DIR"]), self.lock.pins)
        done = _run([python, "-c", bytecode.compile_script(), site_packages, *wheels])
        cached, linked, in_place = done.stdout.decode().split()
        log(f"bytecode: {cached} files compiled into uv's cache, {linked} linked from it, "
            f"{in_place} compiled in place")
        # uv syncs exactly what the lock lists: a lock of the top level alone builds without a
        # word and fails at import time. Fail here instead, naming what is missing.
        lacking = complete.missing(python, self.lock)
        if lacking:
            raise EnvError(f"{self.source} is not a complete lock: what it pins needs "
                           f"{', '.join(lacking)}; run `mlproject lock` to resolve it into a "
                           "complete lock (or pin those too)")

    def unhealthy(self, prefix: Path) -> str | None:
        python = prefix / "bin" / "python"
        if not os.path.exists(python):  # follows the link to the base interpreter
            try:
                base = os.readlink(python)
            except OSError:
                base = "bin/python"
            return f"its interpreter {base} is gone"
        return None

    def activate(self, prefix: Path, env: Mapping[str, str]) -> dict[str, str]:
        path = os.pathsep.join([str(prefix / "bin"), env.get("PATH", os.defpath)])
        return {"PATH": path, "VIRTUAL_ENV": str(prefix)}


def _uv(args: list[str], env: dict[str, str]) -> proc.Result:
    return _run([uv(), *args], env)


def _run(args: list[str], env: dict[str, str] | None = None) -> proc.Result:
    try:
        return proc.run(args, env=env, timeout=1800)
    except proc.ProcError as exc:
        raise EnvError(str(exc)) from None


def _with_key(recipe: PythonRecipe) -> PythonRecipe:
    content = {"python": {"version": recipe.interpreter.version,
                          "implementation": recipe.interpreter.implementation,
                          "platform": f"{sys.platform}-{os.uname().machine}"},
               "pins": [p.to_json() for p in recipe.lock.pins]}
    return PythonRecipe(recipe.interpreter, recipe.lock, recipe.source, env_key("python", content),
                        resolved=recipe.resolved, warnings=recipe.warnings, request=recipe.request,
                        translated=recipe.translated)


def observed_recipe(root: str, env: Environment, log: Log) -> PythonRecipe | str:
    """The recipe as the project and the cache have it now, writing nothing; for an unlocked
    environment not resolved yet, what `run` would do instead (`plan` resolves nothing)."""
    return _recipe(root, env, log, resolve=False)


def acquired_recipe(root: str, env: Environment, log: Log) -> PythonRecipe:
    """The recipe, resolving an unlocked environment with uv now (cached) where it must."""
    found = _recipe(root, env, log, resolve=True)
    assert isinstance(found, PythonRecipe)  # resolving is what it may do
    return found


def translated_recipe(root: str, env: Environment, log: Log, *,
                      resolve: bool) -> PythonRecipe | str:
    """The recipe of a conda environment file built as a uv environment (condatranslate): its
    `source` names each conda spec and the requirement it became, so the record holds them."""
    from mlproject.runner.envs import condatranslate

    wanted, found = condatranslate.inputs(root, env)
    try:
        got = _recipe(root, env, log, resolve=resolve, wanted=wanted)
    except EnvError as exc:
        if not found.unmapped:
            raise
        # a conda name in neither of condatranslate's lists is taken to be the same on PyPI,
        # and uv's resolution is what checks it: say so where it fails
        raise EnvError(f"{env.file} translated for uv, its conda names {', '.join(found.unmapped)} "
                       f"taken as PyPI names (give pip names under `pip:` where they differ): "
                       f"{exc}") from None
    if isinstance(got, str):
        return got
    source = found.source(str(env.file)) + (", resolved by uv" if got.resolved else "")
    return replace(got, source=source, warnings=found.notes, translated=found.translated)


def _recipe(root: str, env: Environment, log: Log, *, resolve: bool,
            wanted: Inputs | None = None) -> PythonRecipe | str:
    wanted = wanted or inputs(root, env)
    interpreter = interpreters.locate(wanted.python)
    if interpreter.version.split(".")[0] == "2":
        raise EnvError(f"Python {interpreter.version} is installed ({interpreter.path}), but uv "
                       "makes environments for Python 3 only: use a Python 3 (`python:`), or "
                       "--env local to run with the current interpreter")
    if wanted.origin is None:
        return _with_key(PythonRecipe(interpreter, Requirements((), ()), "no requirements",
                                      request=env.python))
    if wanted.origin.name.startswith("pylock.") and wanted.origin.suffix == ".toml":
        return _with_key(PythonRecipe(interpreter, requirements.read(wanted.origin, Path(root)),
                                      str(wanted.origin), request=env.python))
    asked = wanted.parse()
    if asked.is_lock and not env.lock:
        # pinned and hashed: a lock as pip's hash-checking mode takes one (checked when built)
        return _with_key(PythonRecipe(interpreter, asked, str(wanted.origin), request=env.python))
    assert wanted.default_lock is not None
    lock = wanted.default_lock
    if lock.exists():
        return _from_lock(wanted, asked, lock, interpreter, env.python)
    cached = _resolution_file(wanted.digest(asked), interpreter)
    pins = _cached_resolution(cached, log, heal=resolve)
    if pins is None:
        if not resolve:
            return (f"would resolve {wanted.origin.name} with uv for Python {interpreter.version}"
                    f" (`mlproject lock` writes {lock.name} ahead)")
        why = "is not locked" if not asked.locked else "pins without hashes, so it is not a lock"
        log(f"{wanted.origin.name} {why}: resolving it with uv for Python {interpreter.version}")
        write_atomic(cached, compile_lock(wanted, interpreter))
        pins = _cached_resolution(cached, log)
        if pins is None:
            raise EnvError(f"uv's resolution of {wanted.origin.name} ({cached}) cannot be read")
    note = (f"{wanted.origin.name} is not a lock (every requirement pinned with == and hashed): "
            f"installed pins resolved by uv (recorded in the run); run `mlproject lock` to write "
            f"{lock.name} and commit it")
    return _with_key(PythonRecipe(interpreter, pins, f"{wanted.origin.name}, resolved by uv",
                                  resolved=True, warnings=(note,), request=env.python))


def _from_lock(wanted: Inputs, asked: Requirements, lock: Path,
               interpreter: interpreters.Interpreter, request: str | None) -> PythonRecipe:
    assert wanted.origin is not None and wanted.root is not None
    try:
        text = reqsyntax.decode(lock.read_bytes(), lock.name)
    except OSError as exc:
        raise EnvError(f"cannot read {lock.name}: {exc.strerror}") from None
    pins = requirements.parse(text, lock, root=wanted.root)
    if not pins.locked:
        raise EnvError(f"{lock} is not a lock: {', '.join(pins.loose[:3])} not pinned with ==")
    warnings: list[str] = []
    lacking = sorted(set(asked.names) - {p.name for p in pins.pins})
    if INPUT_MARK in text and INPUT_MARK + wanted.digest(asked) not in text:
        warnings.append(f"{lock.name} was locked from a different {wanted.origin.name}: "
                        "run `mlproject lock` to update it")
    if lacking:
        warnings.append(f"{lock.name} is stale: it has no pin for {', '.join(lacking)}, which "
                        f"{wanted.origin.name} asks for: run `mlproject lock` to update it")
    return _with_key(PythonRecipe(interpreter, pins, str(lock), warnings=tuple(warnings),
                                  request=request))


def _cached_resolution(cached: Path, log: Log, *, heal: bool = True) -> Requirements | None:
    """A resolution made earlier, or None; one that cannot be read is removed (and said so)
    where `heal` (`run`: it resolves again; `plan` writes nothing)."""
    try:
        data = cached.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log(f"warning: cannot read the cached resolution {cached}: {exc.strerror}")
        return None
    try:
        pins = requirements.parse(reqsyntax.decode(data, str(cached)), cached, shown=str(cached))
        if not pins.is_lock and pins.pins + tuple(pins.loose):
            raise EnvError(f"{cached}: not a complete lock")
    except EnvError as exc:
        if heal:
            log(f"warning: the cached resolution is broken, resolving again: {exc}")
            cached.unlink(missing_ok=True)
        return None
    return pins


def resolution_key(text_digest: str, interpreter: interpreters.Interpreter) -> str:
    """What a resolution made at run time is cached by: the same under `plan` (which resolves
    nothing) and `run`, so both give an unlocked environment the same fingerprint."""
    return canonical_digest({
        "kind": "python", "pins": "resolved when run", "python": interpreter.version,
        "implementation": interpreter.implementation,
        "platform": f"{sys.platform}-{os.uname().machine}", "requirements": text_digest})


def _resolution_file(text_digest: str, interpreter: interpreters.Interpreter) -> Path:
    return cache_root() / "resolved" / f"{resolution_key(text_digest, interpreter)}.txt"


def compile_lock(wanted: Inputs, interpreter: interpreters.Interpreter) -> str:
    """`uv pip compile --generate-hashes` of the requirements, for this interpreter."""
    assert wanted.origin is not None
    with tempfile.TemporaryDirectory() as tmp:
        if wanted.line_map is None:
            source = wanted.origin  # its own file: includes are relative to where it is
        else:
            source = Path(tmp) / "requirements.in"
            source.write_text(wanted.text, encoding="utf-8")
        out = Path(tmp) / "requirements.lock"
        _uv(["pip", "compile", "--quiet", "--no-header", "--no-annotate", "--generate-hashes", "--python",
             interpreter.path, str(source), "-o", str(out)], uv_env())
        return out.read_text(encoding="utf-8")


def write_lock(root: str, env: Environment, log: Log) -> Path:
    """`mlproject lock` for a python environment: resolve its requirements into its lock file."""
    wanted = inputs(root, env)
    if wanted.origin is None or wanted.default_lock is None:
        raise EnvError("it declares no requirements to lock")
    asked = wanted.parse()  # refused here, where it is cheap, rather than by uv
    interpreter = interpreters.locate(wanted.python)
    lock = wanted.default_lock
    try:
        mine = not lock.exists() or LOCK_HEADER in lock.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise EnvError(f"cannot read {lock}: {exc.strerror}") from None
    if not mine:
        raise EnvError(f"{lock} exists and was not written by `mlproject lock`: nothing was "
                       "overwritten; remove it or declare another `lock:`")
    log(f"locking {wanted.origin.name} for Python {interpreter.version} into {lock.name}")
    body = compile_lock(wanted, interpreter)
    header = (f"{LOCK_HEADER} from {wanted.origin.name} for Python {interpreter.version} "
              f"({sys.platform}-{os.uname().machine}); do not edit.\n"
              f"{INPUT_MARK}{wanted.digest(asked)}\n")
    write_atomic(lock, header + body)
    return lock


@dataclass(frozen=True)
class Translated:
    conda: str  # a spec of a conda environment file
    requirement: str  # the pip requirement it became


@dataclass(frozen=True)
class PlanData:
    """A python environment as a plan holds it: enough to build it on another machine."""
    python: str | None  # the interpreter asked for (`python:`); None: the planning one's X.Y
    version: str  # the version found where the plan was made: the executing machine needs it
    implementation: str
    interpreter: str  # where it was found (informational: located again where it runs)
    source: str  # where the pins come from, for people
    resolved: bool  # pins resolved by uv when the plan was made, not read from a lock
    options: tuple[str, ...]  # index options
    pins: tuple[requirements.PackagePin, ...]
    key: str
    # a conda file built as a uv environment: what became what (absent from older plans)
    translated: tuple[Translated, ...] = ()


def plan_data(recipe: PythonRecipe) -> dict[str, Any]:
    return plandata.encoded(PlanData(
        recipe.request, recipe.interpreter.version, recipe.interpreter.implementation,
        recipe.interpreter.path, recipe.source, recipe.resolved, recipe.lock.options,
        recipe.lock.pins, recipe.key, tuple(Translated(*pair) for pair in recipe.translated)),
        PlanData)


def decode_plan(data: Any) -> PlanData:
    return plandata.decoded(PlanData, data, "a python environment")


def recipe_from_plan(data: Any) -> PythonRecipe:
    """The recipe a plan holds, on the machine that executes it: the interpreter located again
    (the same version, or a refusal), the pins as planned, the key taken again and compared."""
    planned = decode_plan(data)
    try:
        interpreter = interpreters.locate(planned.version)
    except EnvError:
        asked = planned.python or planned.version.rsplit(".", 1)[0]
        try:
            here = f"Python {interpreters.locate(asked).version}"
        except EnvError:
            here = f"no Python {asked}"
        raise EnvError(f"the plan was made with Python {planned.version} (for python "
                       f"{asked}); this machine has {here}: install Python {planned.version} "
                       "here, or make the plan on this machine") from None
    found = _planned_recipe(planned, interpreter)
    if found.key != planned.key:
        raise EnvError(f"its key here is {found.key[:12]}, not the plan's {planned.key[:12]} "
                       f"(Python {interpreter.version} {interpreter.implementation} on "
                       f"{sys.platform}-{os.uname().machine}): make the plan on a machine like "
                       "this one")
    return found


def recipe_for_interpreter(data: Any, interpreter: interpreters.Interpreter) -> PythonRecipe:
    """The recipe a plan holds, for an interpreter other than the one it was planned with (a
    container's own python): it must be of the X.Y the pins were locked for (and the exact
    version where `python:` asks for one); the key is taken for it as for a local environment."""
    planned = decode_plan(data)
    asked = planned.python or planned.version.rsplit(".", 1)[0]
    same_xy = interpreter.version.split(".")[:2] == planned.version.split(".")[:2]
    if not (same_xy and interpreter.matches(asked)) or \
            interpreter.implementation != planned.implementation:
        raise EnvError(f"its pins were locked for Python {planned.version} (python {asked}, "
                       f"{planned.implementation}), and {interpreter.path} is Python "
                       f"{interpreter.version} ({interpreter.implementation})")
    return _planned_recipe(planned, interpreter)


def _planned_recipe(planned: PlanData, interpreter: interpreters.Interpreter) -> PythonRecipe:
    lock = Requirements(planned.pins, (), planned.options,
                        tuple(p.name for p in planned.pins))
    return _with_key(PythonRecipe(interpreter, lock, planned.source, resolved=planned.resolved,
                                  request=planned.python,
                                  translated=tuple((t.conda, t.requirement) for t in planned.translated)))
