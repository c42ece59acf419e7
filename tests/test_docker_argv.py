"""The docker backend's `docker run` argv, from a plan alone: no engine is asked (argv.py is pure).
Plans are made by `mlproject plan --json` on projects written inline."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_CORPUS, Result, git_init
from mlproject.runner.backends.base import RunContext
from mlproject.runner.backends.docker.argv import CONTAINER_ROOT, ArgvError, plan, problems
from mlproject.runner.backends.docker.backend import SETTINGS, DockerBackend
from mlproject.runner.backends.docker.images import Build, Ignore, context_digest, tag
from mlproject.runner.plan import Plan, Step

DEFAULTS = {key: s.default for key, s in SETTINGS.items()}
IMAGE = "registry.example/team/app:1.2"

BOX = f"""
    name: box
    environments:
      box:
        docker: {{image: "{IMAGE}"}}
    entry_points:
      main:
        environment: box
        parameters: {{msg: {{type: string, default: "hi"}}}}
        command: "python3 train.py --msg {{msg}}"
"""


def _plan(cli: Callable[..., Result], root: Path, *args: str) -> Plan:
    done = cli("plan", str(root), "--json", *args)
    assert done.code == 0, done.err
    return Plan.from_json(json.loads(done.out))


def _step(cli: Callable[..., Result], project: Callable[..., Path], text: str,
          *args: str, files: dict[str, str] | None = None) -> tuple[Step, Path]:
    root = git_init(project({"MLproject": text, "train.py": "print(1)\n", **(files or {})}))
    found = _plan(cli, root, *args)
    return found.steps[-1], root


def _ctx(root: Path, run_id: str = "R1") -> RunContext:
    run_dir = root / ".mlproject" / "runs" / run_id
    return RunContext(run_id, run_dir, str(root), {"MLPROJECT_RUN_ID": run_id,
                                                   "MLPROJECT_RUN_DIR": str(run_dir)})


def _settings(**given: Any) -> dict[str, Any]:
    return {**DEFAULTS, **given}


def test_an_image_environment_is_one_exact_argv(cli: Callable[..., Result],
                                                project: Callable[..., Path]) -> None:
    step, root = _step(cli, project, BOX)
    run = plan(step, _ctx(root), _settings(network="none"))
    docker = shutil.which("docker") or "docker"
    assert list(run.argv) == [
        docker, "run", "--detach", "--init", "--name", "mlproject-R1",
        "--label", "mlproject.run_id=R1", "--label", "mlproject.entry_point=main",
        "--label", f"mlproject.project={root}",
        "--user", f"{os.getuid()}:{os.getgid()}", "--workdir", CONTAINER_ROOT,
        "--volume", f"{root}:{CONTAINER_ROOT}", "--network", "none", "--pull", "missing",
        *[a for name in sorted(run.env) for a in ("-e", name)],
        IMAGE, "/bin/sh", "-c", "python3 train.py --msg hi",
    ]
    # the run's directory is where the container sees it, under the mounted project
    assert run.env["MLPROJECT_RUN_DIR"] == f"{CONTAINER_ROOT}/.mlproject/runs/R1"
    assert run.env["MLPROJECT_ENTRY_POINT"] == "main"
    assert run.env["PYTHONUNBUFFERED"] == "1"
    assert any("tag without a digest" in note for note in run.notes)


def test_a_digest_pinned_image_gets_no_warning(cli: Callable[..., Result],
                                               project: Callable[..., Path]) -> None:
    pinned = "app@sha256:" + "a" * 64
    step, root = _step(cli, project, BOX.replace(IMAGE, pinned))
    run = plan(step, _ctx(root), _settings())
    assert pinned in run.argv
    assert not any("tag without a digest" in note for note in run.notes)


def test_a_hostile_value_stays_inside_the_one_command_argument(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    # MLflow joins its docker command into one string for `bash -c` (mlflow/mlflow#12475): a
    # value with a space or `;` is split or run on the host. Here it is one argv element, quoted
    # for the container's shell.
    hostile = "a b; touch /tmp/pwned $(id) `id`"
    step, root = _step(cli, project, BOX, "-P", f"msg={hostile}")
    run = plan(step, _ctx(root), _settings())
    assert run.argv[-3:-1] == ("/bin/sh", "-c")
    assert hostile in run.argv[-1] and run.argv[-1] != f"python3 train.py --msg {hostile}"
    assert run.argv.count(IMAGE) == 1
    assert all(hostile not in a for a in run.argv[:-1])


def test_values_are_only_in_the_child_environment(cli: Callable[..., Result],
                                                  project: Callable[..., Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cr3t-from-host")
    text = BOX.replace(f'{{image: "{IMAGE}"}}', f'{{image: "{IMAGE}", environment: '
                       '[API_TOKEN, [MODE, "s3cr3t-literal"]]}')
    step, root = _step(cli, project, text)
    run = plan(step, _ctx(root), _settings())
    assert run.env["API_TOKEN"] == "s3cr3t-from-host" and run.env["MODE"] == "s3cr3t-literal"
    text_argv = " ".join(run.argv)
    assert "s3cr3t" not in text_argv
    for name in ("API_TOKEN", "MODE", "MLPROJECT_RUN_ID"):
        assert run.argv[run.argv.index(name) - 1] == "-e"
    submission = DockerBackend(_settings()).prepare(step, _ctx(root))
    assert "s3cr3t" not in json.dumps(submission.to_json())
    assert "s3cr3t" not in "\n".join(submission.render())
    assert submission.inherits_env is False


def test_a_variable_to_copy_that_is_not_set_is_refused(cli: Callable[..., Result],
                                                       project: Callable[..., Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    text = BOX.replace(f'{{image: "{IMAGE}"}}', f'{{image: "{IMAGE}", environment: [NOT_SET_HERE]}}')
    step, root = _step(cli, project, text)
    assert problems(step, _settings(), str(root)) == [
        "entry point 'main': the environment copies variable NOT_SET_HERE from this machine, "
        "where it is not set: set it, or give it a value ([NAME, value])"]


RESOURCES = BOX.replace('        command:', '        resources: {cpu: 1.5, memory: 512Mi, gpu: 2, '
                        'timeout: 90}\n        command:')


def test_resources_become_the_engine_s_options(cli: Callable[..., Result],
                                               project: Callable[..., Path]) -> None:
    step, root = _step(cli, project, RESOURCES)
    submission = DockerBackend(_settings(stop_grace=4.0)).prepare(step, _ctx(root))
    argv = list(submission.argv)
    memory = str(512 * 2**20)
    assert argv[argv.index("--cpus") + 1] == "1.5"
    assert argv[argv.index("--memory") + 1] == memory
    assert argv[argv.index("--memory-swap") + 1] == memory  # no swap beyond the limit
    assert argv[argv.index("--gpus") + 1] == "2"
    assert submission.timeout == 90  # enforced by mlproject's wait, not by docker
    assert set(submission.enforcement) == {"cpu", "memory", "gpu", "timeout"}
    assert "SIGKILL after 4s" in submission.enforcement["timeout"]
    assert "oom" in submission.enforcement["memory"]


def test_run_args_are_options_and_those_mlproject_owns_are_refused(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    text = BOX.replace(f'{{image: "{IMAGE}"}}', f'{{image: "{IMAGE}", run_args: '
                       '{shm-size: 2g, privileged: false, cap-add: [SYS_PTRACE, NET_ADMIN], '
                       'read-only: true}}')
    step, root = _step(cli, project, text)
    argv = list(plan(step, _ctx(root), _settings()).argv)
    image = argv.index(IMAGE)
    options = argv[:image]
    assert options[options.index("--shm-size") + 1] == "2g"
    assert "--read-only" in options and "--privileged" not in options
    assert [options[i + 1] for i, a in enumerate(options) if a == "--cap-add"] == [
        "SYS_PTRACE", "NET_ADMIN"]

    refused = BOX.replace(f'{{image: "{IMAGE}"}}', f'{{image: "{IMAGE}", run_args: '
                          '{rm: true, "x; y": 1, memory: 1g}}')
    step, root = _step(cli, project, refused.replace("command:", "resources: {memory: 1G}\n"
                                                     "        command:"))
    said = problems(step, _settings(), str(root))
    assert said == [
        "entry point 'main': run_args: rm cannot be given: docker would remove the container "
        "at exit, and its exit code and OOMKilled with it (mlproject removes it once it has "
        "read them)",
        "entry point 'main': run_args: 'x; y' is not a `docker run` option name",
        "entry point 'main': run_args: memory sets what resources.memory declares: declare it "
        "once (resources are mapped to the engine's options by mlproject)",
    ]


def test_volumes_and_paths_outside_the_project(cli: Callable[..., Result],
                                               project: Callable[..., Path],
                                               tmp_path: Path) -> None:
    outside = tmp_path / "shared-data"
    outside.mkdir()
    text = f"""
        name: box
        environments:
          box:
            docker: {{image: "{IMAGE}", volumes: ["./cache:/cache", "~/models:/models:ro",
                                                 "named:/named"]}}
        entry_points:
          main:
            environment: box
            parameters:
              src: {{type: path, default: "{outside}"}}
              own: {{type: path, default: "train.py"}}
            command: "python3 train.py {{src}} {{own}}"
    """
    step, root = _step(cli, project, text)
    run = plan(step, _ctx(root), _settings())
    argv = list(run.argv)
    volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "--volume"]
    home = os.environ.get("HOME") or os.path.expanduser("~")
    assert volumes == [f"{root}:{CONTAINER_ROOT}", f"{root}/cache:/cache",
                       f"{home}/models:/models:ro", "named:/named", f"{outside}:{outside}:ro"]
    # a path parameter in the project moves with it; one outside stays where it is (mounted)
    assert argv[-1] == f"python3 train.py {outside} {CONTAINER_ROOT}/train.py"

    bad = text.replace('"named:/named"', '"no-container-path"')
    step, root = _step(cli, project, bad)
    assert problems(step, _settings(), str(root)) == [
        "entry point 'main': volume 'no-container-path' is not HOST:CONTAINER[:ro|rw] "
        "(CONTAINER an absolute path)"]


def test_settings_shape_the_argv(cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    step, root = _step(cli, project, BOX)
    run = plan(step, _ctx(root), _settings(host="tcp://10.0.0.2:2375", docker="/opt/bin/docker",
                                           pull="always", shell="/bin/bash",
                                           extra_args=["--runtime=nvidia", "--ipc=host"]))
    argv = list(run.argv)
    assert argv[:4] == ["/opt/bin/docker", "--host", "tcp://10.0.0.2:2375", "run"]
    assert argv[argv.index("--pull") + 1] == "always"
    assert argv.index("--runtime=nvidia") < argv.index(IMAGE)
    assert argv[argv.index(IMAGE) + 1:-1] == ["/bin/bash", "-c"]
    # the environment's own `pull:` wins over the setting
    step, root = _step(cli, project, BOX.replace(f'"{IMAGE}"}}', f'"{IMAGE}", pull: never}}'))
    argv = list(plan(step, _ctx(root), _settings(pull="always")).argv)
    assert argv[argv.index("--pull") + 1] == "never"


def test_no_environment_runs_in_the_base_image(cli: Callable[..., Result],
                                               project: Callable[..., Path]) -> None:
    text = """
        name: bare
        entry_points:
          main: {command: "python3 train.py"}
    """
    step, root = _step(cli, project, text)
    run = plan(step, _ctx(root), _settings())
    assert run.image.startswith("python:") and run.image.endswith("-slim")
    run = plan(step, _ctx(root), _settings(base_image="mlproject-test/python:{python}"))
    assert run.image == "mlproject-test/python:" + ".".join(
        str(step.environment.data["version"]).split(".")[:2])


BUILT = """
    name: built
    environments:
      trainer:
        docker:
          build: {context: docker, args: {VERSION: 2, DEBUG: true}}
    entry_points:
      main:
        environment: trainer
        command: "python3 train.py"
"""


def test_a_build_environment_is_tagged_with_its_content_hash(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    files = {"docker/Dockerfile": "FROM scratch\nCOPY app.py /\n", "docker/app.py": "1\n",
             "docker/.dockerignore": "*.log\n", "docker/debug.log": "noise\n"}
    step, root = _step(cli, project, BUILT, files=files)
    first = plan(step, _ctx(root), _settings())
    build = Build("docker", "docker/Dockerfile", {"VERSION": "2", "DEBUG": "true"})
    assert first.build == build
    assert first.image == tag("trainer", context_digest(str(root), build))
    assert first.image.startswith("mlproject/trainer:") and len(first.image.split(":")[1]) == 16
    argv = list(first.argv)
    assert argv[argv.index("--pull") + 1] == "never"  # built here: never pulled

    (root / "docker" / "debug.log").write_text("more noise\n")  # ignored by .dockerignore
    assert plan(step, _ctx(root), _settings()).image == first.image
    (root / "docker" / "app.py").write_text("2\n")
    assert plan(step, _ctx(root), _settings()).image != first.image


def test_the_context_hash_honours_dockerignore_and_leaves_out_mlproject_state(
        tmp_path: Path) -> None:
    root = tmp_path / "p"
    for name, text in {"Dockerfile": "FROM scratch\n", "src/a.py": "a", "data/big.bin": "x",
                       "data/keep.txt": "k", ".dockerignore": "data\n!data/keep.txt\nDockerfile\n",
                       ".mlproject/runs/1/run.json": "{}"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    build = Build(".", "Dockerfile", {})
    before = context_digest(str(root), build)
    (root / "data" / "big.bin").write_text("changed")
    (root / ".mlproject" / "runs" / "2").mkdir()
    assert context_digest(str(root), build) == before
    (root / "data" / "keep.txt").write_text("changed")  # re-included by `!`
    after = context_digest(str(root), build)
    assert after != before
    (root / "Dockerfile").write_text("FROM scratch\nLABEL a=b\n")  # ignored, but always sent
    assert context_digest(str(root), build) != after
    assert context_digest(str(root), Build(".", "Dockerfile", {"A": "1"})) != context_digest(
        str(root), build)


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    ("*.log", "x.log", True), ("*.log", "sub/x.log", False), ("**/*.log", "sub/x.log", True),
    ("data", "data/a/b.txt", True), ("/data", "data/x", True), ("data/*", "data", False),
    ("*\n!keep", "keep", False), ("*\n!keep", "other", True),
    ("build?", "build1", True), ("build?", "build12", False),
    ("[a-c]*.txt", "b.txt", True), ("[a-c]*.txt", "d.txt", False),
    ("# comment\n\n  tmp  ", "tmp", True), ("docs/**", "docs/a/b", True),
    ("**", "anything/at/all", True),
])
def test_dockerignore_patterns_match_as_docker_s(tmp_path: Path, patterns: str, path: str,
                                                 excluded: bool) -> None:
    ignore_file = tmp_path / ".dockerignore"
    ignore_file.write_text(patterns + "\n")
    assert Ignore.read(str(ignore_file)).excludes(path) is excluded


def test_a_build_context_that_is_missing_is_refused(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    step, root = _step(cli, project, BUILT)  # no docker/ directory
    run = plan(step, _ctx(root), _settings())
    assert run.problem == ("environment 'trainer': the build context docker is not a "
                           "directory of the project")
    assert problems(step, _settings(), str(root)) == [  # refused before anything runs
        "entry point 'main': environment 'trainer': the build context docker is not a "
        "directory of the project"]


def test_mlflow_docker_projects_plan_to_the_command_mlflow_builds(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    """Every docker_env project of the corpus: the image MLflow names, and inside the container
    the very command MLflow computes for it (required parameters filled with VALUE)."""
    parsed = json.loads((SHARED_CORPUS / "mlflow_3.17.2_parse.json").read_text())
    checked = 0
    for name, expected in parsed.items():
        if expected.get("env_type") != "docker_env":
            continue
        text = (SHARED_CORPUS / name).read_text()
        root = git_init(project({"MLproject": text}, name=name))
        for entry, body in expected["entry_points"].items():
            # VALUE where MLflow's type allows it; else a value of the type, put in its place
            typed = {"float": "0.5", "int": "3", "bool": "True"}
            required = body["required_filled_with_VALUE"]
            values = {p: typed.get(body["parameters"][p]["type"], "VALUE") for p in required}
            command = body["command"]
            for value in values.values():
                command = command.replace("VALUE", value, 1)
            found = _plan(cli, root, "-e", entry,
                          *[a for p, v in values.items() for a in ("-P", f"{p}={v}")])
            run = plan(found.steps[-1], _ctx(root), _settings())
            image = expected["docker_env"]["image"]
            assert run.argv[-4:] == (image, "/bin/sh", "-c", command), (name, entry)
            checked += 1
    assert checked >= 3


def test_python_and_conda_environments_are_built_inside_the_container(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    text = """
        name: py
        environments:
          train: {python: "3.11", requirements: requirements.txt}
        entry_points:
          main: {command: "python train.py", environment: train}
    """
    root = git_init(project({"MLproject": text, "train.py": "print(1)\n",
                             "requirements.txt": "", "requirements.lock": ""}))
    done = cli("plan", str(root), "--json")
    if done.code != 0:
        pytest.skip(f"no python 3.11 environment can be planned here: {done.err}")
    step = Plan.from_json(json.loads(done.out)).steps[-1]
    if step.environment.pending or not step.environment.data:
        pytest.skip("the environment is not locked in this plan")
    try:
        run = plan(step, _ctx(root), _settings(base_image="mlproject-test/python:{python}"))
    except ArgvError as exc:
        pytest.skip(f"in-container environments are not available here: {exc}")
    assert run.mount is not None and run.image == "mlproject-test/python:3.11"
    image = run.argv.index(run.image)
    assert run.argv[image + 1:image + 1 + len(run.mount.prefix)] == run.mount.prefix
    assert run.argv[-2:] == ("-c", "python train.py")


def test_a_variable_the_docker_cli_reads_itself_is_given_with_its_value(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    text = BOX.replace(f'{{image: "{IMAGE}"}}', f'{{image: "{IMAGE}", environment: '
                       '[[HOME, /home/app], [SECRET, hidden]]}')
    step, root = _step(cli, project, text)
    run = plan(step, _ctx(root), _settings())
    assert run.argv[run.argv.index("HOME=/home/app") - 1] == "-e"
    assert "HOME" not in run.env  # the docker CLI keeps its own HOME (its config is there)
    assert run.env["SECRET"] == "hidden" and "hidden" not in " ".join(run.argv)
