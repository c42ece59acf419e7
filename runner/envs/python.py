"""Python environments: a virtual environment made by uv from a lock, for one interpreter.

What gets installed comes from, in order: a requirements file that pins everything (it is the
lock), the environment's lock file (`lock:`, or `<stem>.lock` beside the requirements), or a
resolution made now with `uv pip compile` (cached, warned about, and recorded in the run).
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlproject.runner import proc
from mlproject.runner.envs import bytecode, interpreters, requirements
from mlproject.runner.envs.base import INPUT_MARK, EnvError, Log, env_key
from mlproject.runner.envs.requirements import Requirements
from mlproject.spec.cache import cache_root, write_atomic
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

    def describe(self) -> dict[str, Any]:
        return {"python": self.interpreter.path, "version": self.interpreter.version,
                "lock": self.source, "resolved_now": self.resolved,
                "require_hashes": self.lock.hashed,
                "pins": [f"{p.name}=={p.version}" + (f"; {p.marker}" if p.marker else "")
                         for p in self.lock.pins]}

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
                        resolved=recipe.resolved, warnings=recipe.warnings)


@dataclass(frozen=True)
class Inputs:
    """What an environment asks for, before locking: the interpreter and the requirements."""
    python: str | None
    text: str  # requirements text, includes made absolute
    origin: Path | None  # the file it came from
    default_lock: Path | None


def inputs(root: str, env: Environment) -> Inputs:
    if env.file is None:
        return Inputs(env.python, "", None, None)
    origin = Path(root) / env.file
    try:
        raw = origin.read_text()
    except OSError as exc:
        raise EnvError(f"environment {env.name!r}: cannot read {env.file}: {exc.strerror}") from None
    lock = Path(root) / env.lock if env.lock else origin.with_suffix(".lock")
    if origin.suffix in (".yaml", ".yml"):  # MLflow's python_env.yaml
        return _python_env(origin, raw, env, lock)
    return Inputs(env.python, raw, origin, lock)


def _python_env(origin: Path, raw: str, env: Environment, lock: Path) -> Inputs:
    import yaml

    try:
        data = yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        raise EnvError(f"{origin} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise EnvError(f"{origin}: expected a mapping with python and dependencies")
    lines = []
    for item in list(data.get("build_dependencies") or []) + list(data.get("dependencies") or []):
        text = str(item).strip()
        head, _, rest = text.partition(" ")
        if head in ("-r", "--requirement", "-c", "--constraint") and rest:
            text = f"{head} {(origin.parent / rest.strip()).resolve()}"
        lines.append(text)
    python = env.python or (str(data["python"]) if data.get("python") else None)
    return Inputs(python, "\n".join(lines) + "\n", origin, lock)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def recipe(root: str, env: Environment, *, allow_resolve: bool, log: Log) -> PythonRecipe | None:
    """The recipe of a python environment; None when it is unlocked and resolving is not allowed
    here (`plan` resolves nothing)."""
    wanted = inputs(root, env)
    interpreter = interpreters.find(wanted.python)
    if wanted.origin is None:
        return _with_key(PythonRecipe(interpreter, Requirements((), ()), "no requirements"))
    if wanted.origin.name.startswith("pylock.") and wanted.origin.suffix == ".toml":
        return _with_key(PythonRecipe(interpreter, requirements.read(wanted.origin),
                                      str(wanted.origin)))
    asked = requirements.parse(wanted.text, wanted.origin.parent, frozenset({wanted.origin.resolve()}))
    if asked.locked and not env.lock:
        return _with_key(PythonRecipe(interpreter, asked, str(wanted.origin)))
    assert wanted.default_lock is not None
    lock = wanted.default_lock
    if lock.exists():
        text = lock.read_text()
        warnings: tuple[str, ...] = ()
        if INPUT_MARK in text and INPUT_MARK + digest(wanted.text) not in text:
            warnings = (f"{lock.name} was locked from a different {wanted.origin.name}: "
                        f"run `mlproject lock` to update it",)
        pins = requirements.parse(text, lock.parent, frozenset({lock.resolve()}))
        if not pins.locked:
            raise EnvError(f"{lock} is not a lock: {', '.join(pins.loose[:3])} not pinned with ==")
        return _with_key(PythonRecipe(interpreter, pins, str(lock), warnings=warnings))
    cached = _resolution_file(wanted.text, interpreter)
    if not cached.exists():
        if not allow_resolve:
            return None
        log(f"{wanted.origin.name} is not locked: resolving it with uv for Python {interpreter.version}")
        write_atomic(cached, compile_lock(wanted.text, wanted.origin, interpreter))
    pins = requirements.parse(cached.read_text(), cached.parent)
    note = (f"{wanted.origin.name} is not locked: installed pins resolved by uv (recorded in the "
            f"run); run `mlproject lock` to write {lock.name} and commit it")
    return _with_key(PythonRecipe(interpreter, pins, f"{wanted.origin.name}, resolved by uv",
                                  resolved=True, warnings=(note,)))


def _resolution_file(text: str, interpreter: interpreters.Interpreter) -> Path:
    name = digest(f"{interpreter.version}\0{sys.platform}\0{text}")
    return cache_root() / "resolved" / f"{name}.txt"


def compile_lock(text: str, origin: Path, interpreter: interpreters.Interpreter) -> str:
    """`uv pip compile --generate-hashes` of the requirements, for this interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "requirements.in"
        source.write_text(text)
        out = Path(tmp) / "requirements.lock"
        _uv(["pip", "compile", "--quiet", "--no-header", "--no-annotate", "--generate-hashes", "--python",
             interpreter.path, str(source), "-o", str(out)], {**uv_env(), "PWD": str(origin.parent)})
        return out.read_text()


def write_lock(root: str, env: Environment, log: Log) -> Path:
    """`mlproject lock` for a python environment: resolve its requirements into its lock file."""
    wanted = inputs(root, env)
    if wanted.origin is None or wanted.default_lock is None:
        raise EnvError(f"environment {env.name!r} has no requirements to lock")
    interpreter = interpreters.find(wanted.python)
    lock = wanted.default_lock
    if lock.exists() and LOCK_HEADER not in lock.read_text():
        raise EnvError(f"{lock} exists and was not written by `mlproject lock`: nothing was "
                       "overwritten; remove it or declare another `lock:`")
    log(f"locking {wanted.origin.name} for Python {interpreter.version} into {lock.name}")
    body = compile_lock(wanted.text, wanted.origin, interpreter)
    header = (f"{LOCK_HEADER} from {wanted.origin.name} for Python {interpreter.version} "
              f"({sys.platform}-{os.uname().machine}); do not edit.\n{INPUT_MARK}{digest(wanted.text)}\n")
    write_atomic(lock, header + body)
    return lock
