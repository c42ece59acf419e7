"""The plan: pure resolution, the fingerprint and what moves it, `plan` and `run --dry-run`."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import git, git_init
from mlproject.runner.facts.observe import observe_facts
from mlproject.runner.resolve import Overrides, resolve
from mlproject.spec import load
from mlproject.spec.model import Resources

PIPELINE = {
    "MLproject": """
        name: pipe
        resources: {cpu: 2, memory: 1Gi, timeout: 90s}
        entry_points:
          prep:
            command: "python -c \\"open('prep.txt','w').write('x')\\""
            outputs: [prep.txt]
          train:
            needs: [prep]
            parameters:
              alpha: {type: float, default: 0.5}
            resources: {gpu: 0, timeout: 2h}
            command: "python -c pass --alpha {alpha}"
            outputs: [model.bin]
            metrics: metrics.json
          main:
            needs: [train, prep]
            command: "echo done"
    """,
    "code.py": "print('hello')\n",
}


def _plan(cli: Callable[..., Any], root: Path, *args: str) -> dict[str, Any]:
    result = cli("plan", str(root), "--json", *args)
    assert result.code == 0, result.err
    plan: dict[str, Any] = json.loads(result.out)
    return plan


def test_plan_json_has_the_documented_fields(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    plan = _plan(cli, root, "-e", "train", "-P", "alpha=0.25")
    assert [s["entry_point"] for s in plan["steps"]] == ["prep", "train"]
    train = plan["steps"][1]
    assert train["command"] == "python -c pass --alpha 0.25"
    assert train["resources"] == {"cpu": 2, "memory": 2**30, "gpu": 0, "timeout": 7200.0}
    assert plan["steps"][0]["resources"]["timeout"] == 90.0  # the project's default
    assert len(train["fingerprint"]) == 64
    assert train["needs"] == ["prep"]
    assert train["env"]["OMP_NUM_THREADS"] == "2"
    assert train["environment"]["kind"] == "local" and train["environment"]["ready"] is True
    assert train["code"]["kind"] == "git" and train["code"]["dirty"] is False


def test_needs_run_in_dependency_order_once(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project(PIPELINE)
    plan = _plan(cli, root)
    assert [s["entry_point"] for s in plan["steps"]] == ["prep", "train", "main"]


def test_dry_run_prints_the_plan_and_runs_nothing(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    planned = _plan(cli, root, "-e", "prep")
    dry = cli("run", str(root), "-e", "prep", "--dry-run", "--json")
    assert dry.code == 0
    assert json.loads(dry.out) == planned
    assert not (root / "prep.txt").exists()
    assert not (root / ".mlproject").exists()
    text = cli("run", str(root), "-e", "prep", "--dry-run")
    assert "1. prep" in text.out and "$ python -c" in text.out


def _fingerprints(root: Path, *params: str, env: str | None = "local") -> dict[str, str]:
    spec = load(root)
    plan = resolve(spec, Overrides("train", params, env), observe_facts(str(root)))
    return {s.entry_point: s.fingerprint for s in plan.steps}


def test_resolve_is_pure_and_deterministic(project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    spec = load(root)
    gathered = observe_facts(str(root))
    one = resolve(spec, Overrides("train"), gathered)
    two = resolve(spec, Overrides("train"), gathered)
    assert one == two
    assert not (root / ".mlproject").exists()


def test_what_moves_the_fingerprint(project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    base = _fingerprints(root)
    # a parameter changes the command, so the step's fingerprint
    assert _fingerprints(root, "alpha=0.7")["train"] != base["train"]
    assert _fingerprints(root, "alpha=0.7")["prep"] == base["prep"]
    # an uncommitted change to a file that is not ignored moves every step
    (root / "code.py").write_text("print('changed')\n")
    dirty = _fingerprints(root)
    assert dirty["prep"] != base["prep"] and dirty["train"] != base["train"]
    # ...and committing that same content changes nothing: the code digest is by content
    git(root, "commit", "-qam", "change")
    committed = _fingerprints(root)
    assert committed == dirty
    # an untracked file counts; an ignored one does not
    (root / "notes.txt").write_text("new")
    untracked = _fingerprints(root)
    assert untracked["train"] != committed["train"]
    (root / ".gitignore").write_text("notes.txt\nscratch/\n")
    git(root, "add", ".gitignore")
    git(root, "commit", "-qm", "ignore")
    ignored_base = _fingerprints(root)
    (root / "scratch").mkdir()
    (root / "scratch" / "big.bin").write_bytes(b"0" * 1000)
    assert _fingerprints(root) == ignored_base


def test_outputs_metrics_and_state_dir_do_not_move_the_fingerprint(project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    base = _fingerprints(root)
    (root / "prep.txt").write_text("output of prep")
    (root / "model.bin").write_bytes(b"weights")
    (root / "metrics.json").write_text('{"acc": 1}')
    (root / ".mlproject" / "runs").mkdir(parents=True)
    (root / ".mlproject" / "runs" / "x.json").write_text("{}")
    assert _fingerprints(root) == base


def test_resources_do_not_move_the_fingerprint(project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    spec = load(root)
    gathered = observe_facts(str(root))
    base = resolve(spec, Overrides("train"), gathered)
    bigger = dataclasses.replace(spec, resources=Resources(cpu=16, memory=2**34, timeout=5.0))
    other = resolve(bigger, Overrides("train"), gathered)
    assert other.steps[0].resources.cpu == 16 and other.steps[0].env["OMP_NUM_THREADS"] == "16"
    assert [s.fingerprint for s in other.steps] == [s.fingerprint for s in base.steps]


def test_upstream_change_moves_downstream(project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    spec_file = root / "MLproject"
    base = _fingerprints(root)
    spec_file.write_text(spec_file.read_text().replace("write('x')", "write('y')"))
    changed = _fingerprints(root)
    assert changed["prep"] != base["prep"] and changed["train"] != base["train"]


def test_a_directory_outside_git_is_hashed_and_said_so(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project(PIPELINE)
    plan = _plan(cli, root, "-e", "prep")
    assert plan["steps"][0]["code"]["kind"] == "files"
    assert any("not a Git repository" in note for note in plan["notes"])
    before = _fingerprints(root)
    (root / "code.py").write_text("print('other')\n")
    assert _fingerprints(root) != before


def test_a_project_in_a_subdirectory_of_a_repository(cli: Callable[..., Any], tmp_path: Path) -> None:
    from conftest import write_project

    repo = tmp_path / "repo"
    write_project(repo / "proj", PIPELINE)
    write_project(repo / "other", {"x.txt": "x"})
    git_init(repo)
    base = _fingerprints(repo / "proj")
    (repo / "other" / "x.txt").write_text("changed elsewhere in the repository")
    assert _fingerprints(repo / "proj") == base
    (repo / "proj" / "code.py").write_text("changed here")
    assert _fingerprints(repo / "proj") != base


def test_a_repository_without_commits(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE), commit=False)
    plan = _plan(cli, root, "-e", "prep")
    assert plan["steps"][0]["code"]["commit"] is None
    assert plan["steps"][0]["code"]["dirty"] is True


def test_unknown_entry_point_is_a_usage_error(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project(PIPELINE)
    result = cli("plan", str(root), "-e", "nope")
    assert result.code == 2
    assert "no entry point 'nope'" in result.err and "prep, train, main" in result.err


def test_a_needed_step_with_a_required_parameter(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          prep:
            parameters: {rows: int}
            command: "echo {rows}"
          main:
            needs: [prep]
            command: "echo main"
    """})
    result = cli("plan", str(root))
    assert result.code == 2
    assert "entry point 'prep' requires parameter rows (int) (needed by 'main'" in result.err


def test_a_container_environment_shows_in_plan_and_the_local_backend_refuses_it(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        docker_env: {image: "python:3.11-slim"}
        entry_points:
          main:
            command: "python -c pass"
    """})
    plan = _plan(cli, root, "--env", "local")
    assert plan["steps"][0]["environment"]["kind"] == "local"
    declared = json.loads(cli("plan", str(root), "--json").out)
    assert declared["steps"][0]["environment"] == {
        "name": "docker_env", "kind": "docker", "key": None, "detail": "python:3.11-slim",
        "ready": False, "problem": None, "pending": None,
        "data": {"image": "python:3.11-slim", "options": {}}}
    result = cli("run", str(root))
    assert result.code == 2
    assert "runs in container image python:3.11-slim" in result.err
    assert "the local backend runs no containers" in result.err and "--env local" in result.err
    assert not (root / ".mlproject").exists()
    assert cli("run", str(root), "--env", "local").code == 0


def test_a_new_project_directory_not_yet_in_head(cli: Callable[..., Any], tmp_path: Path) -> None:
    from conftest import write_project

    repo = git_init(write_project(tmp_path / "repo", {"README": "x"}))
    write_project(repo / "new", PIPELINE)
    plan = _plan(cli, repo / "new", "-e", "prep")
    code = plan["steps"][0]["code"]
    assert code["kind"] == "git" and code["tree"] is None and code["dirty"] is True
    assert cli("run", str(repo / "new"), "-e", "prep").code == 0
