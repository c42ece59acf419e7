"""`mlproject run --backend docker` against a real Docker engine (tests/dockerengine.py): exit
codes, OOM read from the engine, timeout and Ctrl-C with the container gone, outputs owned by
the user, the image digest recorded, images built once per content hash. The tests that need no
engine (docker missing, the daemon unreachable) run everywhere."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_CORPUS, Result, git_init, mlproject_process
from mlproject.runner.state import records

CONF = json.dumps({"network": "none", "stop_grace": 2.0})
slow = pytest.mark.slow


def _text(image: str, command: str, extra: str = "", env: str = "") -> str:
    return f"""
        name: boxed
        environments:
          box:
            docker: {{image: "{image}"{env}}}
        entry_points:
          main:
            environment: box
            command: '{command}'
            {extra}
    """


def _project(project: Callable[..., Path], text: str, **files: str) -> Path:
    return git_init(project({"MLproject": text, ".gitignore": ".mlproject/\n", **files}))


def _run(cli: Callable[..., Result], root: Path, *args: str, conf: str = CONF) -> Result:
    return cli("run", str(root), "--backend", "docker", "--backend-config", conf, *args)


def _only_record(root: Path) -> dict[str, Any]:
    found = records.list_runs(str(root))
    assert len(found) == 1, found
    return found[0]


def _ours(docker: Any) -> list[str]:
    return docker.containers("label=mlproject.run_id")


@slow
def test_a_step_runs_in_its_container_and_is_recorded(cli: Callable[..., Result],
                                                      project: Callable[..., Path],
                                                      docker: Any) -> None:
    root = _project(project, _text(docker.image, "mkdir -p out && echo ok > out/r.txt && "
                                   "echo in $(pwd) $MLPROJECT_RUN_DIR && echo to-err >&2",
                                   "outputs: [out]"))
    done = _run(cli, root)
    assert done.code == 0, done.err
    record = _only_record(root)
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    engine = record["engine"]
    image_id = docker.docker("image", "inspect", "-f", "{{.Id}}", docker.image).stdout.strip()
    assert engine["image_id"] == image_id and engine["image"] == docker.image
    assert engine["exit_code"] == 0 and engine["oom_killed"] is False
    assert engine["removed"] is True and record["handle"]["id"] == engine["container"]
    assert "tag without a digest" in done.err and image_id in done.err
    log = (root / ".mlproject" / "runs" / record["id"] / "log.txt").read_text()
    assert f"in /mlproject/project /mlproject/project/.mlproject/runs/{record['id']}" in log
    assert "to-err" in log
    assert record["outputs"]["out"]["md5"].endswith(".dir")
    assert (root / "out" / "r.txt").read_text() == "ok\n"
    assert _ours(docker) == []


@slow
def test_the_step_s_exit_code_is_passed_through(cli: Callable[..., Result],
                                                project: Callable[..., Path],
                                                docker: Any) -> None:
    root = _project(project, _text(docker.image, "echo failing; exit 3"))
    done = _run(cli, root)
    assert done.code == 3
    record = _only_record(root)
    assert record["status"] == "failed" and record["exit_code"] == 3
    assert record["engine"]["exit_code"] == 3
    assert _ours(docker) == []


@slow
def test_a_memory_overrun_is_oom_137_from_the_engine(cli: Callable[..., Result],
                                                     project: Callable[..., Path],
                                                     docker: Any) -> None:
    root = _project(project, _text(docker.image, "python3 -c \"x = bytearray(512 * 2**20)\"",
                                   "resources: {memory: 64Mi}"))
    done = _run(cli, root)
    assert done.code == 137, done.err
    record = _only_record(root)
    assert record["status"] == "oom"
    assert record["engine"]["oom_killed"] is True and record["engine"]["exit_code"] == 137
    assert "--memory-swap" in record["resources"]["enforced"]["memory"]
    assert _ours(docker) == []


@slow
def test_a_timeout_is_124_and_the_container_is_gone(cli: Callable[..., Result],
                                                    project: Callable[..., Path],
                                                    docker: Any) -> None:
    root = _project(project, _text(docker.image, "sleep 60", "resources: {timeout: 1}"))
    started = time.monotonic()
    done = _run(cli, root)
    assert done.code == 124, done.err
    assert time.monotonic() - started < 20
    record = _only_record(root)
    assert record["status"] == "timeout"
    assert _ours(docker) == []


@slow
def test_a_step_that_ignores_sigterm_is_killed_after_the_grace(
        cli: Callable[..., Result], project: Callable[..., Path], docker: Any) -> None:
    root = _project(project, _text(docker.image, "trap \"\" TERM; sleep 60",
                                   "resources: {timeout: 1}"))
    started = time.monotonic()
    done = _run(cli, root)  # stop_grace 2
    took = time.monotonic() - started
    assert done.code == 124, done.err
    assert 3 <= took < 15
    assert _ours(docker) == []


@slow
def test_ctrl_c_is_130_and_the_container_is_gone(project: Callable[..., Path],
                                                 docker: Any) -> None:
    root = _project(project, _text(docker.image, "touch started; sleep 60"))
    child = mlproject_process("run", ".", "--backend", "docker", "--backend-config", CONF,
                              cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (root / "started").exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    assert len(_ours(docker)) == 1
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert _only_record(root)["status"] == "interrupted"
    assert _ours(docker) == []


@slow
def test_outputs_belong_to_the_user_who_ran_it(docker: Any) -> None:
    """Run as an unprivileged user (uid 4321): what the container writes is theirs."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root (to run mlproject as another user) and setpriv")
    probe = subprocess.run(["setpriv", "--reuid=4321", "--regid=4321", "--clear-groups",
                            sys.executable, "-c", "import mlproject.runner.cli.main"],
                           capture_output=True, text=True, cwd="/")
    if probe.returncode != 0:  # a private virtual environment (mode 700, as mktemp makes one)
        pytest.skip(f"another user cannot import mlproject from {sys.executable}: "
                    f"{probe.stderr.strip().splitlines()[-1:]}")
    import tempfile

    from conftest import write_project

    base = Path(tempfile.mkdtemp(prefix="mlproject-uid-"))  # pytest's own tmp is root's only
    try:
        base.chmod(0o755)
        root = git_init(write_project(base / "proj", {
            "MLproject": _text(docker.image, "mkdir -p out && echo ok > out/r.txt && id -u",
                               "outputs: [out]"), ".gitignore": ".mlproject/\n"}))
        home = base / "home"
        home.mkdir()
        subprocess.run(["chown", "-R", "4321:4321", str(root), str(home)], check=True)
        socket = docker.host.removeprefix("unix://")
        modes = {p: os.stat(p).st_mode for p in (socket, os.path.dirname(socket))}
        os.chmod(socket, 0o666)  # the test's own engine: let the other user reach it
        os.chmod(os.path.dirname(socket), 0o711)
        try:
            done = subprocess.run(
                ["setpriv", "--reuid=4321", "--regid=4321", "--clear-groups", sys.executable,
                 "-m", "mlproject.runner", "run", ".", "--backend", "docker",
                 "--backend-config", CONF], cwd=root, capture_output=True, text=True,
                timeout=120, env={**os.environ, "HOME": str(home),
                                  "MLPROJECT_CACHE_DIR": str(home / "cache"),
                                  "XDG_CONFIG_HOME": str(home / "config"),
                                  "GIT_CONFIG_GLOBAL": str(home / "gitconfig")})
        finally:
            for path, mode in modes.items():
                os.chmod(path, mode)
        assert done.returncode == 0, done.stderr
        made = root / "out" / "r.txt"
        assert (made.stat().st_uid, made.stat().st_gid) == (4321, 4321)
        assert (root / "out").stat().st_uid == 4321
        record = _only_record(root)
        assert record["outputs"]["out"]["md5"].endswith(".dir")
        log = (root / ".mlproject" / "runs" / record["id"] / "log.txt").read_text()
        assert log.strip() == "4321"
        assert "--user" in record["submission"]["argv"]
        assert record["submission"]["argv"][record["submission"]["argv"].index("--user") + 1] \
            == "4321:4321"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@slow
def test_an_image_that_does_not_exist(cli: Callable[..., Result], project: Callable[..., Path],
                                      docker: Any) -> None:
    missing = "mlproject-test/not-there:1"
    root = _project(project, _text(missing, "true", env=", pull: never"))
    done = _run(cli, root)
    assert done.code == 2
    assert (f"image {missing} is not on the Docker engine at {docker.host}, and pull is never"
            in done.err)
    assert records.list_runs(str(root)) == []  # refused before anything ran

    root = _project(project, _text(missing, "true"), name="pulled")
    done = _run(cli, root)  # pull: missing, and no registry answers here
    assert done.code == 127, done.err
    record = _only_record(root)
    assert record["status"] == "failed"
    assert record["reason"] == f"`docker pull {missing}` failed (exit code 1; its output is above)"
    assert "pull access denied" in done.err or "no such host" in done.err or missing in done.err
    assert _ours(docker) == []


@slow
def test_a_request_the_engine_can_never_meet_is_refused_with_its_figures(
        cli: Callable[..., Result], project: Callable[..., Path], docker: Any) -> None:
    root = _project(project, _text(docker.image, "true",
                                   "resources: {cpu: 4096, memory: 64Ti, gpu: 1}"))
    done = _run(cli, root)
    assert done.code == 2
    cpus = docker.docker("info", "-f", "{{.NCPU}}").stdout.strip()
    assert f"asks for 4096 CPUs; the Docker engine at {docker.host} has {cpus} (NCPU)" in done.err
    assert "of memory; the Docker engine" in done.err and "(MemTotal)" in done.err
    assert "has no NVIDIA runtime" in done.err
    assert records.list_runs(str(root)) == []


BUILD = """
    name: built
    environments:
      trainer:
        docker:
          build: {context: image, args: {GREETING: hello}}
    entry_points:
      main:
        environment: trainer
        command: "cat /greeting.txt"
"""
DOCKERFILE = """FROM {image}
ARG GREETING
COPY word.txt /word.txt
RUN echo "$GREETING $(cat /word.txt)" > /greeting.txt
"""


@slow
def test_a_build_environment_is_built_once_and_reused(cli: Callable[..., Result],
                                                      project: Callable[..., Path],
                                                      docker: Any) -> None:
    root = _project(project, BUILD, **{"image/Dockerfile": DOCKERFILE.format(image=docker.image),
                                       "image/word.txt": "world\n",
                                       "image/.dockerignore": "*.tmp\n"})
    first = _run(cli, root)
    assert first.code == 0, first.err
    assert "building image mlproject/trainer:" in first.err
    tags = docker.docker("images", "--format", "{{.Repository}}:{{.Tag}}",
                         "mlproject/trainer").stdout.split()
    assert len(tags) == 1
    (root / "image" / "notes.tmp").write_text("ignored")
    second = _run(cli, root, "--force")
    assert second.code == 0, second.err
    assert "building image" not in second.err
    envs = sorted((r["started_at"], r["environment"]) for r in records.list_runs(str(root)))
    assert [e["built_now"] for _, e in envs] == [True, False]
    assert envs[0][1]["prefix"] == tags[0]
    for record in records.list_runs(str(root)):
        log = (root / ".mlproject" / "runs" / record["id"] / "log.txt").read_text()
        assert log == "hello world\n"

    (root / "image" / "word.txt").write_text("again\n")
    third = _run(cli, root, "--force")
    assert third.code == 0 and "building image" in third.err


@slow
def test_plan_prints_the_argv_that_run_runs(cli: Callable[..., Result],
                                            project: Callable[..., Path], docker: Any) -> None:
    root = _project(project, _text(docker.image, "echo planned"))
    shown = cli("plan", str(root), "--json", "--backend", "docker", "--backend-config", CONF)
    assert shown.code == 0, shown.err
    submission = json.loads(shown.out)["submissions"][0]["submission"]
    assert submission["argv"][-4:] == [docker.image, "/bin/sh", "-c", "echo planned"]
    assert _run(cli, root).code == 0
    record = _only_record(root)
    ran = record["submission"]["argv"]
    planned = [re.sub("(?<!MLPROJECT_)RUN_ID", record["id"], a) for a in submission["argv"]]
    assert ran == planned


@slow
def test_an_mlflow_docker_project_plans_to_the_argv(cli: Callable[..., Result],
                                                    project: Callable[..., Path],
                                                    docker: Any) -> None:
    text = (SHARED_CORPUS / "examples__docker__MLproject").read_text()
    root = git_init(project({"MLproject": text, "train.py": ""}))
    shown = cli("plan", str(root), "--backend", "docker", "--backend-config", CONF,
                "-P", "alpha=0.5")
    assert shown.code == 0, shown.err
    assert ("mlflow-docker-example /bin/sh -c 'python train.py --alpha 0.5 --l1-ratio 0.1'"
            in shown.out)


def test_docker_not_installed_is_exit_2_with_the_fix(cli: Callable[..., Result],
                                                     project: Callable[..., Path]) -> None:
    root = _project(project, _text("python:3.11-slim", "true"))
    done = _run(cli, root, conf=json.dumps({"docker": "/nonexistent/docker",
                                            "host": "unix:///nonexistent/docker.sock"}))
    assert done.code == 2
    assert ("the docker CLI ('/nonexistent/docker', the docker backend's `docker` setting) is "
            "not installed or not on PATH: install Docker" in done.err)
    assert records.list_runs(str(root)) == []


def test_an_unreachable_daemon_is_exit_2_naming_the_socket(
        cli: Callable[..., Result], project: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = _project(project, _text("python:3.11-slim", "true"))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text("#!/bin/sh\nexit 1\n")
    (fake / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/gone.sock")
    done = _run(cli, root, conf="{}")
    assert done.code == 2
    assert (f"cannot reach the Docker engine at unix://{tmp_path}/gone.sock (DOCKER_HOST): "
            f"{tmp_path}/gone.sock does not exist. Start the engine" in done.err)
    assert "DOCKER_HOST=unix:///path/to/docker.sock" in done.err
    assert records.list_runs(str(root)) == []


@slow
def test_another_process_asks_about_a_container_by_its_handle(
        cli: Callable[..., Result], project: Callable[..., Path], docker: Any) -> None:
    """What `mlproject runs`, `logs -f` and `cancel` do: a handle read back from the record,
    asked of a backend that did not submit it."""
    from mlproject.runner.backends.base import Handle, RunContext
    from mlproject.runner.backends.docker.backend import DockerBackend
    from mlproject.runner.plan import Plan
    from mlproject.runner.state.status import Status

    root = _project(project, _text(docker.image, "echo one; sleep 0.5; echo two; sleep 60"))
    step = Plan.from_json(json.loads(cli("plan", str(root), "--json").out)).steps[0]
    run_dir = root / ".mlproject" / "runs" / "R1"
    run_dir.mkdir(parents=True)
    ctx = RunContext("R1", run_dir, str(root), {"MLPROJECT_RUN_ID": "R1",
                                                "MLPROJECT_RUN_DIR": str(run_dir)})
    settings = json.loads(CONF)
    submitter = DockerBackend(settings)
    handle = submitter.submit(submitter.prepare(step, ctx))
    other = DockerBackend(settings)
    found = Handle.from_json(json.loads(json.dumps(handle.to_json())))
    try:
        assert other.status(found).status == Status.RUNNING
        streamed = b""
        for chunk in other.logs(found, since=4, follow=True):  # after "one\n"
            streamed += chunk
            if b"two" in streamed:
                break
        assert streamed == b"two\n"
        assert b"".join(other.logs(found)) == b"one\ntwo\n"
        other.cancel(found)
        deadline = time.monotonic() + 20
        while not other.status(found).status.final:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        state = other.status(found)
        assert (state.status, state.exit_code) == (Status.FAILED, 143)  # SIGTERM, via --init
    finally:
        docker.docker("rm", "-f", handle.id, check=False)
    gone = other.status(found)
    assert gone.status == Status.CRASHED and "no longer exists" in str(gone.reason)


@slow
def test_pinned_data_is_verified_and_mounted(cli: Callable[..., Result],
                                             project: Callable[..., Path], docker: Any,
                                             tmp_path: Path) -> None:
    """A DVC-pinned input read in the container; its workspace copy a link to a store outside
    the project (as DVC's symlink cache makes it), mounted read-only where the link points."""
    import hashlib

    content = b"a,b\n1,2\n"
    store = tmp_path / "store"
    store.mkdir()
    (store / "x.csv").write_bytes(content)
    md5 = hashlib.md5(content).hexdigest()
    text = f"""
        name: pinned
        environments:
          box: {{docker: {{image: "{docker.image}"}}}}
        data:
          x: {{path: data/x.csv}}
        entry_points:
          main:
            environment: box
            data: [x]
            command: "md5sum {{data.x}} && cat {{data.x}} > copy.csv"
    """
    root = project({"MLproject": text, "data/.gitignore": "/x.csv\n", "data/x.csv.dvc":
                    f"outs:\n- md5: {md5}\n  size: {len(content)}\n  hash: md5\n  path: x.csv\n"})
    (root / "data" / "x.csv").symlink_to(store / "x.csv")
    git_init(root)
    done = _run(cli, root)
    assert done.code == 0, done.err
    record = _only_record(root)
    assert record["data"]["x"]["md5"] == md5
    log = (root / ".mlproject" / "runs" / record["id"] / "log.txt").read_text()
    assert log == f"{md5}  data/x.csv\n"
    assert (root / "copy.csv").read_bytes() == content
    argv = record["submission"]["argv"]
    assert f"{store}/x.csv:{store}/x.csv:ro" in argv

    (store / "x.csv").write_bytes(b"changed\n")  # the pin no longer matches: nothing runs
    refused = _run(cli, root, "--force")
    assert refused.code == 2 and "x" in refused.err
    assert len(records.list_runs(str(root))) == 1


@slow
def test_a_missing_build_context_is_refused_before_anything_runs(
        cli: Callable[..., Result], project: Callable[..., Path], docker: Any) -> None:
    root = _project(project, BUILD)  # no image/ directory
    done = _run(cli, root)
    assert done.code == 2
    assert ("entry point 'main': environment 'trainer': the build context image is not a "
            "directory of the project" in done.err)
    assert records.list_runs(str(root)) == []
