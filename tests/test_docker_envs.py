"""Python and conda environments built inside the step's container (envs/incontainer.py), with
what the docker backend mounts for them (backends/docker/envmount.py): the same store and
recipes as locally, run by an interpreter that has nothing installed, with no network."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from condachannel import build_wheel, greeting, hello, make_channel, write_environment, write_lock
from mlproject.runner import planfile
from mlproject.runner.backends.base import RunContext
from mlproject.runner.backends.docker import envmount
from mlproject.runner.envs import condalock, incontainer
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.python import uv
from mlproject.runner.plan import EnvChoice, Step

PY = ".".join(map(str, sys.version_info[:2]))
SHOW = "python show.py"
SHOW_PY = ("import os, sys, tinypip\ntry:\n    from mlproject import log\n"
           "    log.metric('m', 1.5, step=0)\nexcept ImportError:  # outside a container\n    pass\n"
           "print(sys.prefix, tinypip.VALUE, os.environ.get('PYTHONPATH', '-'))\n")


def _wheel_lock(wheels: Path) -> str:
    """A complete lock of one local wheel, installed with no index (nothing is downloaded)."""
    import hashlib

    wheel = build_wheel(wheels)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return f"--no-index\n--find-links {wheels}\ntinypip==1.0 --hash=sha256:{digest}\n"


def _python_project(project: Callable[..., Path], tmp_path: Path, python: str = PY) -> Path:
    wheels = tmp_path / "wheels"
    return project({
        "MLproject": f"""
            environments:
              train: {{python: "{python}", requirements: requirements.txt}}
            entry_points:
              main:
                environment: train
                command: "{SHOW}"
        """,
        "requirements.txt": _wheel_lock(wheels),
        "show.py": SHOW_PY,
    })


def _step(cli: Callable[..., Any], root: Path) -> Step:
    result = cli("plan", str(root), "--json")
    assert result.code == 0, result.err
    return planfile.decode(json.loads(result.out)).steps[0]


def _run_dir(root: Path, step: Step, name: str = "r1") -> Path:
    """A run directory holding the run's record as execute writes it (its environment)."""
    run_dir = root / ".mlproject" / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"environment": step.environment.to_json()}))
    return run_dir


def _ctx(root: Path, run_dir: Path) -> RunContext:
    return RunContext(run_dir.name, run_dir, str(root), {})


# --- what is mounted (pure) ---------------------------------------------------------------

def test_mount_for_a_python_environment(cli: Callable[..., Any], project: Callable[..., Path],
                                        tmp_path: Path) -> None:
    root = _python_project(project, tmp_path)
    step = _step(cli, root)
    run_dir = root / ".mlproject" / "runs" / "r1"
    mount = envmount.for_step(step, _ctx(root, run_dir), {})
    assert mount.image == f"python:{PY}-slim"
    by_target = {target: (host, ro) for host, target, ro in mount.volumes}
    package = Path(envmount.__file__).resolve().parents[3]  # mlproject's own directory
    assert by_target["/mlproject/lib/mlproject"] == (str(package), True)
    assert by_target["/mlproject/bin/uv"][1] is True
    assert os.access(by_target["/mlproject/bin/uv"][0], os.X_OK)
    cache = Path(os.environ["MLPROJECT_CACHE_DIR"]) / "docker"
    assert by_target["/mlproject/cache"] == (str(cache), False)
    assert by_target[str(tmp_path / "wheels")] == (str(tmp_path / "wheels"), True)  # --find-links
    import packaging

    assert by_target["/mlproject/lib/packaging"] == (str(Path(packaging.__file__).parent), True)
    assert "/mlproject/lib/rattler" not in by_target  # conda only
    if "/mlproject/certs.pem" in by_target:  # this machine's CA bundle, where it has one
        assert os.path.isfile(by_target["/mlproject/certs.pem"][0])
    assert mount.env == {"PYTHONPATH": "/mlproject/lib:/mlproject/shim"}
    assert mount.prefix[-2:] == ("/mlproject/project/.mlproject/runs/r1/run.json", "--")
    assert mount.prefix[:1] == ("python3",) and "mlproject.runner.envs.incontainer" in mount.prefix
    assert any("built inside the container" in note for note in mount.notes)
    assert not any("network" in note for note in mount.notes)  # --no-index: nothing to download
    assert not cache.exists()  # pure: prepare_host creates it
    envmount.prepare_host(mount)
    assert cache.is_dir()


def test_mount_settings_and_refusals(cli: Callable[..., Any], project: Callable[..., Path],
                                     tmp_path: Path) -> None:
    root = _python_project(project, tmp_path)
    step = _step(cli, root)
    ctx = _ctx(root, root / ".mlproject" / "runs" / "r1")
    mount = envmount.for_step(step, ctx, {"base_image": "registry.example/py:{python}-cuda",
                                          "env_cache": str(tmp_path / "envcache")})
    assert mount.image == f"registry.example/py:{PY}-cuda"
    assert (str(tmp_path / "envcache"), "/mlproject/cache", False) in mount.volumes
    with_path = replace(step, env={"PYTHONPATH": "/src"})
    assert envmount.for_step(with_path, ctx, {}).env["PYTHONPATH"] == "/mlproject/lib:/mlproject/shim:/src"
    image = replace(step, environment=EnvChoice("box", "docker", None, "busybox", True,
                                                 data={"image": "busybox"}))
    assert not envmount.builds_inside(image) and envmount.builds_inside(step)
    with pytest.raises(EnvError, match="a docker environment is not built inside a container"):
        envmount.for_step(image, ctx, {})
    old = replace(step, environment=replace(step.environment, data={
        **step.environment.data, "python": "3.9", "version": "3.9.18"}))
    with pytest.raises(EnvError, match=r"its Python 3\.9 cannot build it in a container: .* "
                                       r"needs Python 3\.10 or newer"):
        envmount.for_step(old, ctx, {})


def test_report_is_read_back(tmp_path: Path) -> None:
    assert envmount.read_report(tmp_path) == (None, None)
    (tmp_path / "environment.json").write_text('{"error": "no Python 3.12 here"}')
    assert envmount.read_report(tmp_path) == (None, "no Python 3.12 here")
    (tmp_path / "environment.json").write_text('{"prefix": "/p", "built_now": false}')
    assert envmount.read_report(tmp_path) == ({"prefix": "/p", "built_now": False}, None)
    (tmp_path / "environment.json").write_text("[")
    found, error = envmount.read_report(tmp_path)
    assert found is None and error is not None and "cannot be read" in error


# --- incontainer.py as a process, here: an interpreter with no site-packages --------------

def _bare_python(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """This interpreter without site (no pyyaml, no jsonschema), mlproject and packaging on
    PYTHONPATH: as the image's python3 runs it."""
    lib = tmp_path / "lib"
    lib.mkdir(exist_ok=True)
    import packaging

    package = Path(envmount.__file__).resolve().parents[3]
    if not (lib / "mlproject").exists():
        (lib / "mlproject").symlink_to(package)
        (lib / "packaging").symlink_to(Path(packaging.__file__).parent)
    env = {**os.environ, "PYTHONPATH": f"{lib}{os.pathsep}/mlproject/lib"}
    return [sys.executable, "-S", "-m", "mlproject.runner.envs.incontainer"], env


def test_builds_then_reuses_with_the_standard_library_alone(
        cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    root = _python_project(project, tmp_path)
    step = _step(cli, root)
    run_dir = _run_dir(root, step)
    command, env = _bare_python(tmp_path)
    cache = tmp_path / "cache"
    argv = [*command, "--cache", str(cache), "--uv", os.path.realpath(str(_which(uv()))),
            str(run_dir / "run.json"), "--", "sh", "-c", SHOW]
    env["MLPROJECT_RUN_DIR"] = str(run_dir)
    first = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    report = json.loads((run_dir / "environment.json").read_text())
    assert report["built_now"] is True and report["kind"] == "python"
    assert report["recipe"]["pins"] == ["tinypip==1.0"]
    prefix, value, pythonpath = first.stdout.split()
    assert prefix == report["prefix"] and value == "42"
    assert pythonpath == str(tmp_path / "lib")  # its own entry is gone; the rest stays
    assert Path(prefix).parent.parent == cache / "envs"  # a store per interpreter
    again = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    second = json.loads((run_dir / "environment.json").read_text())
    assert second["built_now"] is False and second["prefix"] == prefix
    assert "building" not in again.stderr


def test_another_python_is_refused_naming_both(cli: Callable[..., Any], project: Callable[..., Path],
                                               tmp_path: Path) -> None:
    root = _python_project(project, tmp_path)
    step = _step(cli, root)
    run_dir = _run_dir(root, step)
    record = json.loads((run_dir / "run.json").read_text())
    record["environment"]["data"].update(python="3.9", version="3.9.18")
    (run_dir / "run.json").write_text(json.dumps(record))
    command, env = _bare_python(tmp_path)
    env["MLPROJECT_RUN_DIR"] = str(run_dir)
    done = subprocess.run([*command, "--cache", str(tmp_path / "cache"), str(run_dir / "run.json"),
                           "--", "touch", "ran"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "its pins were locked for Python 3.9.18" in done.stderr
    assert f"is Python {sys.version.split()[0]}" in done.stderr
    assert "use a base image with Python 3.9 (the docker backend's `base_image` setting)" in done.stderr
    assert not (root / "ran").exists()
    error = json.loads((run_dir / "environment.json").read_text())["error"]
    assert "Python 3.9.18" in error
    assert not (tmp_path / "cache" / "envs").exists() or not any((tmp_path / "cache" / "envs").rglob("bin"))


def test_usage_errors_are_said(tmp_path: Path) -> None:
    command, env = _bare_python(tmp_path)
    done = subprocess.run([*command, "recipe.json"], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "ARGV follows `--`" in done.stderr
    (tmp_path / "bad.json").write_text('{"kind": "python"}')
    env["MLPROJECT_RUN_DIR"] = str(tmp_path)
    done = subprocess.run([*command, str(tmp_path / "bad.json"), "--", "true"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "holds no environment" in done.stderr
    assert "Traceback" not in done.stderr


def test_step_env_drops_only_its_own_path() -> None:
    found = incontainer._step_env({"PYTHONPATH": "/mlproject/lib:/src", "A": "1"}, {"PATH": "/p"})
    assert found == {"PYTHONPATH": "/src", "A": "1", "PATH": "/p"}
    assert "PYTHONPATH" not in incontainer._step_env({"PYTHONPATH": "/mlproject/lib"}, {})


def _which(name: str) -> str:
    import shutil

    found = shutil.which(name)
    assert found is not None, f"{name} is not installed"
    return found


# --- in a real container ------------------------------------------------------------------

def _container(docker: Any, root: Path, run_dir: Path, mount: envmount.EnvMount, command: str,
               user: str) -> subprocess.CompletedProcess[str]:
    """The step's `docker run` as the backend makes it, written out here (argv.py's shape)."""
    inside = f"/mlproject/project/{run_dir.relative_to(root).as_posix()}"
    argv = [f"{docker.bindir}/docker", "run", "--rm", "--network", "none", "--user", user,
            "--workdir", "/mlproject/project", "--volume", f"{root}:/mlproject/project",
            "-e", f"MLPROJECT_RUN_DIR={inside}"]
    for host, target, read_only in mount.volumes:
        argv += ["--volume", f"{host}:{target}" + (":ro" if read_only else "")]
    for name, value in mount.env.items():
        argv += ["-e", f"{name}={value}"]
    argv += [mount.image, *mount.prefix, "sh", "-c", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **docker.environ()})


def _image_python(docker: Any) -> str:
    done = docker.docker("run", "--rm", "--network", "none", docker.image, "python3", "-c",
                         "import sys; print('%d.%d' % sys.version_info[:2])")
    return str(done.stdout.strip())


@pytest.mark.slow
def test_python_environment_built_in_the_container_then_reused(
        docker: Any, cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    if _image_python(docker) != PY:
        pytest.skip(f"the test image's python is not this one's {PY}")
    root = _python_project(project, tmp_path)
    step = _step(cli, root)
    # a user of their own, as a normal user runs it: what the container writes is theirs
    uid = gid = 4321
    mount = envmount.for_step(step, _ctx(root, root / ".mlproject" / "runs" / "r1"),
                              {"base_image": docker.image})
    envmount.prepare_host(mount)
    run_dir = _run_dir(root, step)
    for path in (root, *root.rglob("*"), *Path(os.environ["MLPROJECT_CACHE_DIR"]).rglob("*")):
        os.lchown(path, uid, gid)
    times, reports = [], []
    for _ in range(2):
        started = time.monotonic()
        done = _container(docker, root, run_dir, mount, SHOW, f"{uid}:{gid}")
        times.append(time.monotonic() - started)
        assert done.returncode == 0, done.stderr
        reports.append((json.loads((run_dir / "environment.json").read_text()), done))
    (first, run1), (second, run2) = reports
    assert first["built_now"] is True and second["built_now"] is False
    assert first["prefix"] == second["prefix"]
    assert first["prefix"].startswith("/mlproject/cache/envs/")
    # the venv's; of PYTHONPATH only the shim of `mlproject.log` is left, and it logged
    assert run1.stdout.split() == [first["prefix"], "42", "/mlproject/shim"]
    from mlproject.runner import tracking

    assert tracking.read(run_dir).last == {"m": 1.5}
    assert run2.stdout == run1.stdout
    assert "building the python environment" in run1.stderr and "building" not in run2.stderr
    assert first["recipe"]["python"] == "/usr/bin/python3"  # the image's own interpreter
    assert second["seconds"] < 2.0
    host_prefix = Path(os.environ["MLPROJECT_CACHE_DIR"]) / "docker" / first["prefix"][len("/mlproject/cache/"):]
    assert (host_prefix / "bin" / "python").is_symlink()
    assert host_prefix.stat().st_uid == uid  # built as the user
    print(f"in-container python env: first run {times[0]:.2f}s (built), second {times[1]:.2f}s "
          f"(reused: {second['seconds'] * 1000:.0f} ms inside)")


@pytest.mark.slow
def test_a_python_of_another_version_is_refused_in_the_container(
        docker: Any, cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    root = _python_project(project, tmp_path)
    step = _step(cli, root)
    run_dir = _run_dir(root, step)
    record = json.loads((run_dir / "run.json").read_text())
    record["environment"]["data"].update(python="3.12", version="3.12.4")
    (run_dir / "run.json").write_text(json.dumps(record))
    mount = envmount.for_step(step, _ctx(root, run_dir), {"base_image": docker.image})
    envmount.prepare_host(mount)
    done = _container(docker, root, run_dir, mount, "touch ran", f"{os.getuid()}:{os.getgid()}")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "its pins were locked for Python 3.12.4 (python 3.12, cpython), and /usr/bin/python3 " \
           "is Python 3.11" in done.stderr
    assert "use a base image with Python 3.12" in done.stderr
    assert not (root / "ran").exists()
    found, error = envmount.read_report(run_dir)
    assert found is None and error is not None and "Python 3.12.4" in error


@pytest.mark.slow
def test_conda_environment_built_in_the_container(
        docker: Any, cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    channel = make_channel(tmp_path / "channel", [hello(), greeting()])
    root = project({
        "MLproject": """
            environments:
              tools: {conda: environment.yml}
            entry_points:
              main:
                environment: tools
                command: "hello > said.txt && echo $CONDA_PREFIX >> said.txt"
        """,
    })
    env_file = write_environment(root / "environment.yml", channel)
    write_lock(root / "conda-lock.yml", channel, condalock.current_platform(), env_file)
    step = _step(cli, root)
    run_dir = _run_dir(root, step)
    mount = envmount.for_step(step, _ctx(root, run_dir), {"base_image": docker.image})
    assert (str(channel.root / "noarch"), str(channel.root / "noarch"), True) in mount.volumes
    assert any(target == "/mlproject/lib/rattler" for _, target, _ in mount.volumes)
    envmount.prepare_host(mount)
    user = f"{os.getuid()}:{os.getgid()}"
    for built_now in (True, False):
        done = _container(docker, root, run_dir, mount, step.command, user)
        assert done.returncode == 0, done.stderr
        report = json.loads((run_dir / "environment.json").read_text())
        assert report["built_now"] is built_now and report["kind"] == "conda"
        assert (root / "said.txt").read_text().split() == ["hello", report["prefix"]]


@pytest.mark.slow
def test_run_backend_docker_builds_then_reuses(
        docker: Any, cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    """`mlproject run --backend docker`, end to end: the record says what the container built."""
    from mlproject.runner.state import records

    if _image_python(docker) != PY:
        pytest.skip(f"the test image's python is not this one's {PY}")
    root = _python_project(project, tmp_path)
    config = json.dumps({"base_image": docker.image, "network": "none", "pull": "never"})
    found = []
    for _ in range(2):
        result = cli("run", str(root), "--backend", "docker", "--backend-config", config)
        assert result.code == 0, result.err
        found.append(records.list_runs(str(root))[-1])
    first, second = (r["environment"] for r in found)
    assert [r["status"] for r in found] == ["succeeded", "succeeded"]
    assert first["built_now"] is True and second["built_now"] is False
    assert first["prefix"] == second["prefix"] and first["prefix"].startswith("/mlproject/cache/envs/")
    assert first["recipe"]["pins"] == ["tinypip==1.0"]
