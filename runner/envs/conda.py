"""Conda environments, installed from conda-lock.yml without a conda program.

Every conda package of the platform is fetched and checked against the lock's hash before
anything is installed; py-rattler then links them into the prefix, and uv installs the lock's
pip packages with hashes required. Without a lock, the file is solved with py-rattler
(condasolve) where its channels answer, and the lock written; otherwise no lock, no environment.
`mlproject lock` runs conda-lock where conda is, py-rattler where it is not.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproject.runner.envs import condalock, plandata
from mlproject.runner.envs.base import EnvError, Log, env_key
from mlproject.runner.envs.condalock import Lock, Locked
from mlproject.runner.util import extras, proc
from mlproject.runner.util.files import cache_root
from mlproject.spec.model import Environment

LOCK_NAME = "conda-lock.yml"
SOLVERS = ("micromamba", "mamba", "conda")
_HOW_TO_LOCK = "run mlproject lock (it runs conda-lock, which needs conda, mamba or micromamba)"


class NeedsCondaLock(EnvError, extras.MissingExtra):
    """`mlproject lock` for a conda environment, without conda-lock (the `conda` extra)."""


@dataclass(frozen=True)
class CondaRecipe:
    lock: Lock
    lock_file: str  # as the project names it, relative to its root
    env_file: str
    key: str
    kind: str = "conda"

    def describe(self) -> dict[str, Any]:
        python = next((p.version for p in self.lock.conda if p.name == "python"), None)
        return {"platform": self.lock.platform, "environment": self.env_file, "lock": self.lock_file,
                "python": python,
                "conda": [f"{p.name}={p.version}" for p in self.lock.conda],
                "pip": [f"{p.name}=={p.version}" for p in self.lock.pip]}

    def build(self, prefix: Path, log: Log) -> None:
        log(f"checking {len(self.lock.conda)} conda and {len(self.lock.pip)} pip packages "
            f"against {self.lock_file}")
        # All of them before any is installed: a bad package must not leave half an environment.
        downloads = cache_root() / "conda-downloads"
        conda = [condalock.fetch_checked(p, downloads) for p in self.lock.conda]
        wheels = [condalock.fetch_checked(p, downloads) for p in self.lock.pip]
        log(f"installing {len(conda)} conda packages with py-rattler")
        _link(self.lock, conda, prefix)
        if wheels:
            log(f"installing {len(wheels)} pip packages with uv")
            _pip(self.lock.pip, wheels, prefix, self.lock_file)

    def unhealthy(self, prefix: Path) -> str | None:
        try:
            records = set(os.listdir(prefix / "conda-meta"))
        except OSError:
            return "its conda-meta/ directory is gone"
        for package in self.lock.conda:
            if package.record is not None and package.record not in records:
                return f"the record of {package.name} {package.version} (conda-meta/{package.record}) is gone"
        if sum(name.endswith(".json") for name in records) < len(self.lock.conda):
            return "conda-meta/ has fewer records than the lock has packages"
        if self.lock.pip and not os.path.exists(prefix / "bin" / "python"):
            return "its python is gone"
        return None

    def activate(self, prefix: Path, env: Mapping[str, str]) -> dict[str, str]:
        path = os.pathsep.join([str(prefix / "bin"), env.get("PATH", os.defpath)])
        return {"PATH": path, "CONDA_PREFIX": str(prefix), "CONDA_DEFAULT_ENV": str(prefix)}


def _paths(env: Environment) -> tuple[str, str]:
    if env.file is None:
        raise EnvError("it names no environment.yml")
    return env.file, env.lock or posixpath.join(posixpath.dirname(env.file), LOCK_NAME)


def conda_recipe(root: str, env: Environment, platform: str | None = None) -> tuple[CondaRecipe, list[str]]:
    """The recipe of a conda environment and the warnings about its lock."""
    env_file, lock_file = _paths(env)
    lock_path = Path(root) / lock_file
    if not lock_path.is_file():
        named = f"its lock {lock_file} does not exist" if env.lock else f"there is no {lock_file} beside it"
        raise EnvError(f"{env_file} is not locked ({named}); {_HOW_TO_LOCK}. "
                       f"mlproject installs conda environments only from a lock")
    lock = condalock.read_lock(lock_path, platform or condalock.current_platform())
    warnings = []
    env_path = Path(root) / env_file
    if not env_path.is_file():
        warnings.append(f"{env_file} does not exist: installing from {lock_file} alone")
    else:
        stale = condalock.staleness(lock, lock_file, env_path, env_file)
        if stale:
            warnings.append(stale)
    content = {"platform": lock.platform,
               "conda": sorted([p.url, p.hash] for p in lock.conda),
               "pip": sorted([p.name, p.version, p.url, p.hash] for p in lock.pip)}
    return CondaRecipe(lock, lock_file, env_file, env_key("conda", content)), warnings


def _link(lock: Lock, files: list[Path], prefix: Path) -> None:
    import asyncio

    import rattler

    async def install() -> None:
        records = [await rattler.RepoDataRecord.from_package_archive(f) for f in files]
        for package, record in zip(lock.conda, records, strict=True):
            # the file could have changed since it was checked; rattler hashed it again just now
            if package.sha256 and record.sha256 is not None and record.sha256.hex() != package.sha256:
                raise EnvError(f"package {package.name} {package.version} changed while it was installed")
        await rattler.install(records, target_prefix=prefix, cache_dir=cache_root() / "conda-pkgs",
                              platform=rattler.Subdir(lock.platform), show_progress=False)

    try:
        asyncio.run(install())
    except EnvError:
        raise
    except Exception as exc:  # py-rattler's errors have no common base class to name
        raise EnvError(f"py-rattler could not install the conda packages: {exc}") from None


def _pip(packages: tuple[Locked, ...], wheels: list[Path], prefix: Path, lock_file: str) -> None:
    from mlproject.runner.envs.python import uv, uv_env

    python = prefix / "bin" / "python"
    if not python.exists():
        raise EnvError(f"the lock has pip packages ({', '.join(p.name for p in packages)}) "
                       f"but none of its conda packages provides python")
    # The files already checked, by path: no index is asked, and uv checks the hashes again.
    lines = [f"{p.name} @ {wheel.as_uri()} --hash={p.hash}\n"
             for p, wheel in zip(packages, wheels, strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(lines), encoding="utf-8")
        args = [uv(), "pip", "install", "--quiet", "--require-hashes", "--no-deps", "--no-index",
                "--compile-bytecode", "--python", str(python), "-r", str(requirements)]
        try:
            proc.run(args, env=uv_env(), timeout=1800)
        except proc.ProcError as exc:
            raise EnvError(f"uv could not install the pip packages of {lock_file}: {exc}") from None


def lock_conda(root: str, env: Environment, log: Log) -> Path:
    """Write the environment's conda-lock.yml with conda-lock, stamped with its input digest."""
    env_file, lock_file = _paths(env)
    # conda-lock on PATH (also one installed with pipx), else the one mlproject[conda] put
    # beside this interpreter, run as a module: the environment need not be activated.
    program = shutil.which("conda-lock")
    solver = next((found for found in map(shutil.which, SOLVERS) if found), None)
    env_path = Path(root) / env_file
    if (program is None and not extras.has_extra("conda")) or solver is None:
        # no conda-lock or nothing for it to run: py-rattler solves, where the channels answer
        from mlproject.runner.envs import condasolve

        why = condasolve.unreachable(env_path) if env_path.is_file() else f"{env_file} is missing"
        if why is None:
            return condasolve.solve(env_path, Path(root) / lock_file, env_file, log)
        if program is None and not extras.has_extra("conda"):
            raise NeedsCondaLock(f"locking {env_file} needs conda-lock: {extras.install_line('conda')} "
                                 f"(py-rattler cannot solve it here: {why})")
        raise EnvError("conda-lock needs conda, mamba or micromamba, and none is on PATH; install one "
                       f"(e.g. micromamba) or write {lock_file} elsewhere (py-rattler cannot solve "
                       f"it here: {why})")
    conda_lock = [program] if program else [sys.executable, "-m", "conda_lock"]
    args = [*conda_lock, "lock", "--conda", solver, "-f", env_file, "--lockfile", lock_file]
    if not condalock.declared_platforms(env_path):
        args += ["-p", condalock.current_platform()]
    log(f"locking {env_file} with conda-lock and {os.path.basename(solver)}")
    try:
        proc.run(args, cwd=root, timeout=3600)
    except proc.ProcError as exc:
        raise EnvError(str(exc)) from None
    lock_path = Path(root) / lock_file
    condalock.stamp(lock_path, env_path)
    return lock_path


def solvable(root: str, env: Environment) -> bool:
    """Whether the environment has no lock, and py-rattler can solve it here (its channels
    are reached): `run` then writes the lock, `plan` says it would."""
    env_file, lock_file = _paths(env)
    if (Path(root) / lock_file).is_file() or not (Path(root) / env_file).is_file():
        return False
    from mlproject.runner.envs import condasolve

    return condasolve.unreachable(Path(root) / env_file) is None


def observed_recipe(root: str, env: Environment, log: Log) -> CondaRecipe | str:
    """The recipe from the lock (read only: nothing is solved at plan time); without a lock
    but with its channels reached, what `run` would do instead."""
    if solvable(root, env):
        env_file, lock_file = _paths(env)
        return f"{env_file} would be solved with py-rattler into {lock_file}, then installed"
    try:
        found, warnings = conda_recipe(root, env)
    except EnvError as exc:
        env_file, lock_file = _paths(env)
        if (Path(root) / lock_file).is_file() or not (Path(root) / env_file).is_file():
            raise
        from mlproject.runner.envs import condasolve

        raise EnvError(f"{exc}; py-rattler cannot solve it here: "
                       f"{condasolve.unreachable(Path(root) / env_file)}") from None
    for warning in warnings:
        log(f"warning: {warning}")
    return found


def acquired_recipe(root: str, env: Environment, log: Log) -> CondaRecipe:
    """The recipe from the lock; without one, solved with py-rattler into one first."""
    if solvable(root, env):
        from mlproject.runner.envs import condasolve

        env_file, lock_file = _paths(env)
        condasolve.solve(Path(root) / env_file, Path(root) / lock_file, env_file, log)
    found = observed_recipe(root, env, log)
    assert not isinstance(found, str)  # the lock is there now
    return found


@dataclass(frozen=True)
class PlanData:
    """A conda environment as a plan holds it: every package with its url and hash."""
    platform: str
    environment: str  # environment.yml, relative to the project root
    lock: str  # conda-lock.yml, relative to the project root
    conda: tuple[Locked, ...]
    pip: tuple[Locked, ...]
    key: str


def plan_data(recipe: CondaRecipe) -> dict[str, Any]:
    return plandata.encoded(PlanData(recipe.lock.platform, recipe.env_file, recipe.lock_file,
                                     recipe.lock.conda, recipe.lock.pip, recipe.key), PlanData)


def decode_plan(data: Any) -> PlanData:
    return plandata.decoded(PlanData, data, "a conda environment")


def recipe_from_plan(data: Any) -> CondaRecipe:
    """The recipe a plan holds; refused on a machine of another platform."""
    planned = decode_plan(data)
    here = condalock.current_platform()
    if planned.platform != here:
        raise EnvError(f"the plan installs packages for {planned.platform}, and this machine is "
                       f"{here}: make the plan for this platform")
    content = {"platform": planned.platform,
               "conda": sorted([p.url, p.hash] for p in planned.conda),
               "pip": sorted([p.name, p.version, p.url, p.hash] for p in planned.pip)}
    key = env_key("conda", content)
    if key != planned.key:
        raise EnvError(f"its key is {key[:12]}, not the plan's {planned.key[:12]}: the plan's "
                       "packages do not match its key")
    lock = Lock(planned.platform, planned.conda, planned.pip, None)
    return CondaRecipe(lock, planned.lock, planned.environment, key)
