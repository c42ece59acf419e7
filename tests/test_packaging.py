"""The distribution works once installed, as a wheel and as an editable install, each in a fresh
virtual environment: the import names, the console script, and the package data (the schema,
the project template). Two real `pip install`s of a copy of this tree; slow, but nothing else
shows that a fresh machine gets a working `mlproject`."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a fresh clone does not have: build output, caches, virtual environments, run records.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".ci-venv", "build", "dist", "*.egg-info", "__pycache__", ".mlproject",
    ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache")


def source_version() -> str:
    match = re.search(r'^__version__ = "([^"]+)"', (ROOT / "runner" / "__init__.py").read_text(),
                      re.MULTILINE)
    assert match, "runner/__init__.py defines no __version__"
    return match.group(1)


def pyproject_version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        match = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
        assert match, "pyproject.toml has no version"
        return match.group(1)
    return str(tomllib.loads(text)["project"]["version"])


@dataclass(frozen=True)
class Install:
    kind: str  # "wheel" or "editable"
    venv: Path
    source: Path  # the copy of the tree it was installed from

    @property
    def bin(self) -> Path:
        return self.venv / ("Scripts" if os.name == "nt" else "bin")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", os.defpath)])
        return env

    def call(self, *args: str, cwd: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a program of this environment (`path`: PATH after its bin/, instead of ours)."""
        program = str(self.bin / args[0]) if (self.bin / args[0]).exists() else args[0]
        env = self.env()
        if path is not None:
            env["PATH"] = os.pathsep.join([str(self.bin), path])
        return subprocess.run([program, *args[1:]], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)

    def run(self, *args: str, cwd: Path) -> str:
        """Run a program of this environment; its stdout, or a failure showing all output."""
        done = self.call(*args, cwd=cwd)
        assert done.returncode == 0, (
            f"{self.kind}: `{' '.join(args)}` exited with {done.returncode}\n"
            f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}")
        return done.stdout


def _install(base: Path, kind: str) -> Install:
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE, symlinks=True)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    install = Install(kind, venv, source)
    target = ["-e", str(source)] if kind == "editable" else [str(source)]
    # A normal, isolated build: setuptools and the dependencies come from the index, as on a
    # fresh machine.
    install.run("python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                *target, cwd=base)
    return install


@pytest.fixture(scope="module", params=["wheel", "editable"])
def installed(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Install:
    return _install(tmp_path_factory.mktemp(f"install-{request.param}"), request.param)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside the repository, so that nothing imports from the tree."""
    work = tmp_path / "work"
    work.mkdir()
    assert ROOT not in work.parents
    return work


def test_version_is_the_same_in_the_code_and_in_pyproject() -> None:
    from mlproject.runner import __version__

    assert __version__ == source_version() == pyproject_version()


@pytest.mark.slow
def test_packages_import_from_the_install(installed: Install, outside: Path) -> None:
    out = installed.run("python", "-c", (
        "import json, mlproject.spec, mlproject.runner, mlproject.templates; "
        "print(json.dumps([mlproject.spec.__file__, mlproject.runner.__file__, "
        "mlproject.runner.__version__]))"), cwd=outside)
    spec_file, runner_file, version = json.loads(out)
    home = installed.source if installed.kind == "editable" else installed.venv
    assert Path(spec_file).resolve().is_relative_to(home.resolve())
    assert Path(runner_file).resolve().is_relative_to(home.resolve())
    assert version == source_version()


@pytest.mark.slow
def test_console_script_reports_the_version(installed: Install, outside: Path) -> None:
    assert (installed.bin / "mlproject").exists()
    assert installed.run("mlproject", "--version", cwd=outside) == f"mlproject {source_version()}\n"
    assert installed.run("python", "-m", "mlproject.runner", "--version", cwd=outside) \
        == f"mlproject {source_version()}\n"


@pytest.mark.slow
def test_schema_is_shipped(installed: Install, outside: Path) -> None:
    out = installed.run("mlproject", "schema", cwd=outside)
    assert json.loads(out) == json.loads((ROOT / "spec" / "schema.json").read_text())
    record = installed.run("mlproject", "schema", "--record", cwd=outside)
    assert json.loads(record) == json.loads(
        (ROOT / "runner" / "state" / "record.schema.json").read_text())


@pytest.mark.slow
def test_init_and_run_the_template(installed: Install, outside: Path) -> None:
    installed.run("mlproject", "init", "demo", cwd=outside)
    demo = outside / "demo"
    assert sorted(p.name for p in demo.iterdir()) == [
        ".dvc", ".dvcignore", ".git", ".github", ".gitignore", "MLproject", "README.md", "data",
        "dvc-remote", "evaluate.py", "prepare.py", "summary.py", "train.py"]
    installed.run("mlproject", "validate", "demo", "--strict", cwd=outside)
    installed.run("mlproject", "run", "demo", cwd=outside)
    runs = json.loads(installed.run("mlproject", "runs", "--project", "demo", "--json",
                                    cwd=outside))
    assert [(r["entry_point"], r["status"]) for r in runs] == [
        ("prepare", "succeeded"), ("train", "succeeded"), ("evaluate", "succeeded"),
        ("main", "succeeded")]
    assert (demo / "model" / "model.json").is_file()


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```sh\n(.*?)\n```", quick_start, re.MULTILINE | re.DOTALL)
    assert len(commands) == 2, "the quick start is two commands"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    match = re.search(r'^TEST_COMMAND="(.*)"$', ci, re.MULTILINE)
    assert match, ".ci/run defines no TEST_COMMAND"
    assert commands[1] == match.group(1)
    assert os.access(ROOT / ".ci" / "run", os.X_OK), ".ci/run is not executable"


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]).lower()


def test_the_test_toolchain_is_pinned_by_the_committed_constraints() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    # `mlproject[all]` in an extra is the project itself with those extras: their requirements
    # are what gets pinned (the test extra takes all of them)
    direct = {_name(r) for r in project["dependencies"] + [r for rs in extras.values() for r in rs]}
    direct.discard("mlproject")
    assert "mlproject[all]" in extras["test"]
    pins: dict[str, str] = {}
    for number, line in enumerate((ROOT / ".ci" / "constraints.txt").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line.strip())
        assert match, f".ci/constraints.txt:{number}: not NAME==VERSION: {line!r}"
        assert _name(match.group(1)) not in pins, f".ci/constraints.txt:{number}: pinned twice"
        pins[_name(match.group(1))] = match.group(2)
    assert direct <= set(pins), f"not pinned: {sorted(direct - set(pins))}"
    assert "mlproject" not in pins  # the project itself is installed from the tree
    assert os.access(ROOT / ".ci" / "update-constraints", os.X_OK)


# The common path on the core install (`pip install .`: no extra): what mlproject needs for it is
# the core dependencies alone, and what needs an extra says which.
PY = ".".join(map(str, sys.version_info[:2]))
CORE = {"pyyaml", "jsonschema", "uv", "py-rattler", "packaging"}


@pytest.mark.slow
def test_the_install_brings_the_core_dependencies_alone(installed: Install, outside: Path) -> None:
    listed = json.loads(installed.run("python", "-m", "pip", "list", "--format=json",
                                      "--disable-pip-version-check", cwd=outside))
    names = {_name(p["name"]) for p in listed} - {"pip", "setuptools", "mlproject"}
    assert CORE.issubset(names)
    assert names.isdisjoint({"dvc", "conda-lock", "celery", "kombu", "hydra-core", "asyncssh"})
    assert len(names) <= 15, sorted(names)  # the core's own dependencies: attrs, referencing, ...
    found = installed.run("python", "-c", (
        "import importlib.util as u; print([m for m in ('dvc', 'conda_lock') if u.find_spec(m)])"),
        cwd=outside)
    assert found == "[]\n"


@pytest.mark.slow
def test_the_common_path_runs_on_the_core_install(installed: Install, outside: Path,
                                                  tmp_path: Path) -> None:
    """A uv environment from a lock (from the package index), a conda environment from a lock
    (a local channel), DVC-pinned data pulled from a local remote: no extra is needed."""
    import condachannel as cc
    from conftest import git, write_project
    from mlproject.runner.envs import condalock
    from test_extras import CONTENT, dvc_project, local_remote

    root = dvc_project(outside / "proj", str(local_remote(tmp_path)))
    channel = cc.make_channel(tmp_path / "channel", [cc.hello(), cc.greeting()])
    write_project(root, {
        "MLproject": f"""
            name: common
            environments:
              train: {{python: "{PY}", requirements: requirements.txt}}
              tools: {{conda: environment.yml, lock: conda-lock.yml}}
            data:
              raw: {{path: data.csv}}
            entry_points:
              hello: {{needs: [main], environment: tools, command: "hello > hello.txt"}}
              main:
                environment: train
                data: [raw]
                command: "python -c 'import six, sys; print(six.__version__, open(sys.argv[1]).read())' {{data.raw}} > out.txt"
            """,
        "requirements.txt": "six==1.16.0\n",
    })
    env_file = cc.write_environment(root / "environment.yml", channel)
    cc.write_lock(root / "conda-lock.yml", channel, condalock.current_platform(), env_file)
    locked = installed.run("mlproject", "lock", "-e", "main", "proj", cwd=outside)
    assert locked == f"{root / 'requirements.lock'}\n"
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "environments")
    installed.run("mlproject", "run", "proj", "-e", "hello", "--pull", cwd=outside)
    assert (root / "hello.txt").read_text() == "hello\n"
    assert (root / "out.txt").read_text() == f"1.16.0 {CONTENT.decode()}\n"


@pytest.mark.slow
def test_features_of_the_extras_name_them_on_the_core_install(installed: Install, outside: Path,
                                                              tmp_path: Path) -> None:
    from conftest import write_project
    from test_extras import dvc_project

    dvc_project(outside / "remote", "s3://bucket/dvcstore")
    pulled = installed.call("mlproject", "data", "pull", "remote", cwd=outside)
    assert (pulled.returncode, pulled.stdout) == (2, "")
    assert pulled.stderr.splitlines()[-1] == (
        "mlproject: error: data.raw: remote 'storage' (s3://bucket/dvcstore) needs DVC: "
        "pip install 'mlproject[dvc]' 'dvc[s3]'")
    write_project(outside / "conda", {
        "MLproject": """
            environments:
              gpu: {conda: environment.yml}
            entry_points:
              main: {environment: gpu, command: "true"}
            """,
        "environment.yml": "channels: [conda-forge]\ndependencies: [python=3.11]\n"})
    tools = tmp_path / "tools"  # a solver, and no conda-lock of the test environment on PATH
    tools.mkdir()
    (tools / "micromamba").write_text("#!/bin/sh\nexit 1\n")
    (tools / "micromamba").chmod(0o755)
    locked = installed.call("mlproject", "lock", "conda", cwd=outside,
                            path=os.pathsep.join([str(tools), "/usr/bin", "/bin"]))
    assert (locked.returncode, locked.stdout) == (2, "")
    assert locked.stderr.startswith(
        "mlproject: error: environment 'gpu': locking environment.yml needs conda-lock: "
        "pip install 'mlproject[conda]' (py-rattler cannot solve it here: channel conda-forge "
        "cannot be reached"), locked.stderr
