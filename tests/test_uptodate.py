"""Up to date only when it truly is: what a step received is in its fingerprint (upstream
outputs by hash, path parameters by content, the local interpreter's distributions, the
environment's inputs), pinned data is checked before each step, and `plan` says what is covered."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init
from mlproject.runner import facts
from mlproject.runner.state import records

# `prepare` writes what it finds in prep.src (git-ignored, so outside the code state), or a
# fresh random value when told to; `main` doubles it.
PREPARE = ("import os, sys; src = open('prep.src').read(); "
           "open('data.txt', 'w').write(os.urandom(8).hex() if src == 'random' else src)")
PIPELINE = {
    "MLproject": f"""
        entry_points:
          prepare:
            command: "python -c \\"{PREPARE}\\""
            outputs: [data.txt]
          main:
            needs: [prepare]
            command: "python -c \\"open('model.txt','w').write(open('data.txt').read() * 2)\\""
            outputs: [model.txt]
    """,
    ".gitignore": "data.txt\nmodel.txt\nprep.src\n",
}


def _states(err: str) -> dict[str, str]:
    """entry point -> "ran" or "skipped", from what `run` said."""
    found = {}
    for line in err.splitlines():
        head = line.removeprefix("mlproject: ")
        name, _, rest = head.partition(": ")
        if rest.startswith("up to date"):
            found[name] = "skipped"
        elif rest.startswith("running"):
            found[name] = "ran"
    return found


def _run(cli: Callable[..., Any], root: Path, *args: str) -> dict[str, str]:
    result = cli("run", str(root), *args)
    assert result.code == 0, result.err
    return _states(result.err)


def _plan(cli: Callable[..., Any], root: Path, *args: str) -> dict[str, Any]:
    result = cli("plan", str(root), "--json", *args)
    assert result.code == 0, result.err
    plan: dict[str, Any] = json.loads(result.out)
    return plan


def _consistent(root: Path) -> None:
    assert (root / "model.txt").read_text() == (root / "data.txt").read_text() * 2


def test_a_deleted_upstream_output_reruns_its_dependants(cli: Callable[..., Any],
                                                         project: Callable[..., Path]) -> None:
    root = git_init(project({**PIPELINE, "prep.src": "random"}))
    assert _run(cli, root) == {"prepare": "ran", "main": "ran"}
    assert _run(cli, root) == {"prepare": "skipped", "main": "skipped"}
    (root / "data.txt").unlink()
    assert _run(cli, root) == {"prepare": "ran", "main": "ran"}  # main was skipped before
    _consistent(root)
    assert _run(cli, root) == {"prepare": "skipped", "main": "skipped"}


def test_an_upstream_that_writes_other_bytes_reruns_its_dependants(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({**PIPELINE, "prep.src": "random"}))
    _run(cli, root)
    assert _run(cli, root, "-e", "prepare", "--force") == {"prepare": "ran"}
    assert _run(cli, root) == {"prepare": "skipped", "main": "ran"}
    _consistent(root)


def test_an_upstream_that_writes_the_same_bytes_leaves_its_dependants_up_to_date(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({**PIPELINE, "prep.src": "fixed"}))
    _run(cli, root)
    assert _run(cli, root, "-e", "prepare", "--force") == {"prepare": "ran"}
    assert _run(cli, root) == {"prepare": "skipped", "main": "skipped"}
    # The record of a step names the fingerprint that `plan` shows for it afterwards.
    planned = {s["entry_point"]: s["fingerprint"] for s in _plan(cli, root)["steps"]}
    last = {r["entry_point"]: r["fingerprint"] for r in records.list_runs(str(root))}
    assert planned == last


CHAIN = {
    "MLproject": """
        entry_points:
          a:
            parameters: {src: {type: path, default: src.txt}}
            command: "python -c \\"import sys; open('a.txt','w').write(open(sys.argv[1]).read().upper())\\" {src}"
            outputs: [a.txt]
          b:
            needs: [a]
            command: "python -c \\"open('b.txt','w').write(str(len(open('a.txt').read())))\\""
            outputs: [b.txt]
          c:
            needs: [b]
            command: "python -c \\"open('c.txt','w').write(open('b.txt').read() + '!')\\""
            outputs: [c.txt]
    """,
    ".gitignore": "*.txt\n",
}


@pytest.mark.slow
def test_a_chain_of_three_reruns_as_far_as_the_bytes_changed(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({**CHAIN, "src.txt": "abc"}))
    assert _run(cli, root, "-e", "c") == {"a": "ran", "b": "ran", "c": "ran"}
    assert _run(cli, root, "-e", "c") == {"a": "skipped", "b": "skipped", "c": "skipped"}
    (root / "src.txt").write_text("abcd")  # ignored by Git: only its hash sees it
    assert _run(cli, root, "-e", "c") == {"a": "ran", "b": "ran", "c": "ran"}
    assert (root / "c.txt").read_text() == "4!"
    (root / "src.txt").write_text("wxyz")  # a.txt changes, b.txt does not: c stays
    assert _run(cli, root, "-e", "c") == {"a": "ran", "b": "ran", "c": "skipped"}
    assert (root / "a.txt").read_text() == "WXYZ"
    (root / "b.txt").unlink()
    assert _run(cli, root, "-e", "c") == {"a": "skipped", "b": "ran", "c": "skipped"}


READ = "python -c \\\"import sys; open('out.txt','w').write(open(sys.argv[1]).read())\\\" {src}"


def _reader(project: Callable[..., Path], kind: str = "path", default: str = "") -> Path:
    param = f"{{type: {kind}, default: {default}}}" if default else kind
    return git_init(project({
        "MLproject": f"""
            entry_points:
              main:
                parameters: {{src: {param}}}
                command: "{READ}"
                outputs: [out.txt]
        """,
        ".gitignore": "out.txt\nignored/\n",
    }))


def test_a_path_parameter_outside_the_project_is_hashed(
        cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    root = _reader(project)
    outside = tmp_path / "elsewhere" / "input.csv"
    arg = f"src={outside}"
    plan = _plan(cli, root, "-P", arg)
    assert plan["steps"][0]["fingerprint_basis"]["paths"] == {"src": None}  # absent, not yet
    outside.parent.mkdir()
    outside.write_text("one")
    assert _run(cli, root, "-P", arg) == {"main": "ran"}
    assert _run(cli, root, "-P", arg) == {"main": "skipped"}
    outside.write_text("two")
    assert _run(cli, root, "-P", arg) == {"main": "ran"}
    assert (root / "out.txt").read_text() == "two"
    basis = _plan(cli, root, "-P", arg)["steps"][0]["fingerprint_basis"]
    assert basis["paths"]["src"] == "b8a9f715dbb64fd5c56e7783c6820a61"  # md5 of "two"
    assert "path parameters src (their content)" in basis["covered"]


def test_a_git_ignored_path_parameter_and_a_directory_are_hashed(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _reader(project, default="ignored/in.txt")
    (root / "ignored").mkdir()
    (root / "ignored" / "in.txt").write_text("x")
    assert _run(cli, root) == {"main": "ran"}
    (root / "ignored" / "in.txt").write_text("y")
    assert _run(cli, root) == {"main": "ran"}
    assert _run(cli, root) == {"main": "skipped"}
    # A directory: what is in it, DVC's way (a file added inside it moves the fingerprint).
    lister = project({
        "MLproject": """
            entry_points:
              main:
                parameters: {src: {type: path, default: ignored}}
                command: "python -c \\"import os, sys; open('out.txt','w').write(str(sorted(os.listdir(sys.argv[1]))))\\" {src}"
                outputs: [out.txt]
        """,
        ".gitignore": "out.txt\nignored/\n",
    }, name="lister")
    git_init(lister)
    (lister / "ignored").mkdir()
    (lister / "ignored" / "a").write_text("a")
    assert _run(cli, lister) == {"main": "ran"}
    assert _run(cli, lister) == {"main": "skipped"}
    (lister / "ignored" / "b").write_text("b")
    assert _run(cli, lister) == {"main": "ran"}
    assert (lister / "out.txt").read_text() == "['a', 'b']"


def test_path_parameters_that_name_outputs_or_the_project_are_not_hashed_and_said_so(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({
        "MLproject": """
            entry_points:
              main:
                parameters:
                  out: {type: path, default: out.txt}
                  here: {type: path, default: .}
                command: "python -c \\"import sys, os; open(sys.argv[1],'w').write(str(len(os.listdir(sys.argv[2]))))\\" {out} {here}"
                outputs: [out.txt]
        """,
        ".gitignore": "out.txt\n",
    }))
    basis = _plan(cli, root)["steps"][0]["fingerprint_basis"]
    assert basis["paths"] == {}
    assert "path parameter out (an output of this step, not an input)" in basis["not_covered"]
    assert any(n.startswith("path parameter here (") and "contains the project" in n
               for n in basis["not_covered"])
    assert _run(cli, root) == {"main": "ran"}
    assert _run(cli, root) == {"main": "skipped"}  # hashing them would never be up to date


def test_a_path_parameter_into_upstream_outputs_is_covered_by_the_chain(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({**PIPELINE, "prep.src": "fixed", "MLproject": f"""
        entry_points:
          prepare:
            command: "python -c \\"{PREPARE}\\""
            outputs: [data.txt]
          main:
            needs: [prepare]
            parameters: {{d: {{type: path, default: data.txt}}}}
            command: "python -c \\"import sys; open('model.txt','w').write(open(sys.argv[1]).read() * 2)\\" {{d}}"
            outputs: [model.txt]
    """}))
    basis = _plan(cli, root)["steps"][1]["fingerprint_basis"]
    assert basis["paths"] == {} and "path parameters d (through upstream outputs)" in basis["covered"]
    assert "upstream outputs: prepare (data.txt)" in basis["covered"]
    # data.txt does not exist before the run: prepare writes it, so the run may start
    assert _run(cli, root) == {"prepare": "ran", "main": "ran"}
    _consistent(root)
    (root / "prep.src").write_text("other")  # undeclared input of prepare: forced to see it
    assert _run(cli, root, "-e", "prepare", "--force") == {"prepare": "ran"}
    assert _run(cli, root) == {"prepare": "skipped", "main": "ran"}
    _consistent(root)


def test_the_local_interpreters_distributions_are_in_the_fingerprint(
        cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "fakepkg-1.0.dist-info").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    root = _reader(project, default="in.txt")
    (root / "in.txt").write_text("x")
    assert _run(cli, root) == {"main": "ran"}
    assert _run(cli, root) == {"main": "skipped"}
    (site / "fakepkg-1.0.dist-info").rename(site / "fakepkg-1.1.dist-info")  # an upgrade
    assert _run(cli, root) == {"main": "ran"}
    (site / "Other_Pkg-2.0.dist-info").mkdir()  # an install
    plan = _plan(cli, root)
    assert plan["steps"][0]["fingerprint"] != records.list_runs(str(root))[-1]["fingerprint"]
    count = len(facts.installed_distributions(sys.path[1:]))
    assert f"{count} installed distributions" in plan["steps"][0]["fingerprint_basis"]["covered"][2]
    assert _run(cli, root) == {"main": "ran"}


def test_installed_reads_dist_info_and_egg_info_names(tmp_path: Path) -> None:
    for name in ("Foo_Bar-1.2.3.dist-info", "legacy-0.9-py3.11.egg-info", "dev.egg-info",
                 "not-a-dist", "x.pth"):
        (tmp_path / name).mkdir()
    (tmp_path / "dev.egg-info" / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: dev\n"
                                                       "Version: 4.5\n\nbody\n")
    (tmp_path / "plain-1.0.egg-info").write_text("Metadata-Version: 1.0\nVersion: 1.0\n")
    assert facts.installed_distributions([str(tmp_path), str(tmp_path / "missing"), "/nonexistent.zip"]) == (
        "dev==4.5", "foo-bar==1.2.3", "legacy==0.9", "plain==1.0")


def test_plan_says_what_the_fingerprint_covers(cli: Callable[..., Any],
                                               project: Callable[..., Path]) -> None:
    root = git_init(project({**PIPELINE, "prep.src": "fixed"}))
    text = cli("plan", str(root)).out
    assert "fingerprint covers: command, code (git tree + uncommitted changes), environment " \
           "(local " in text
    assert "installed distributions), upstream outputs: prepare (data.txt)" in text
    assert "not covered: " in text and "files the command reads that are not declared" in text
    assert "the network, the clock" in text
    basis = _plan(cli, root)["steps"][1]["fingerprint_basis"]
    assert basis["upstream"] == {"prepare": {"data.txt": None}}  # not written yet
    assert _plan(cli, root)["steps"][1]["fingerprint"] == _plan(cli, root)["steps"][1]["fingerprint"]
    assert not (root / ".mlproject").exists()  # `plan` writes nothing, not even a stat cache


# --- pinned data, checked right before each step that reads it -----------------------------

@pytest.fixture(scope="module")
def dvc_template(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import dvcrepos

    return dvcrepos.build(tmp_path_factory.mktemp("dvc") / "base")


@pytest.fixture
def dvc_main(dvc_template: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("DVC_NO_ANALYTICS", "DVC_SITE_CACHE_DIR", "DVC_GLOBAL_CONFIG_DIR",
                "DVC_SYSTEM_CONFIG_DIR"):
        monkeypatch.setenv(key, dvc_template.env[key])
    main: Path = dvc_template.copy(tmp_path / "base").main
    return main


CLOBBER = """
data:
  train: {path: data/train.csv}
entry_points:
  clobber:
    command: "python -c \\"open('data/train.csv', 'w').write('not the pinned bytes')\\""
  main:
    needs: [clobber]
    data: [train]
    command: "python -c \\"import shutil; shutil.copy('data/train.csv', 'seen.txt')\\""
    outputs: [seen.txt]
"""


@pytest.mark.slow
def test_pinned_data_overwritten_by_an_earlier_step_fails_the_step_that_reads_it(
        cli: Callable[..., Any], dvc_main: Path) -> None:
    from dvcrepos import TRAIN_V2

    root = dvc_main
    (root / "MLproject").write_text(CLOBBER)
    assert (root / "data" / "train.csv").read_bytes() == TRAIN_V2  # HEAD's pin: it matches
    result = cli("run", str(root))
    assert result.code == 1, result.err
    assert "main: failed before it started: pinned data changed during the run" in result.err
    assert not (root / "seen.txt").exists()  # main never read the wrong bytes
    clobber, main = records.list_runs(str(root))
    assert clobber["status"] == "succeeded"
    assert main["entry_point"] == "main" and main["status"] == "failed"
    assert main["exit_code"] == 1
    assert "data.train: data/train.csv does not match its pin" in main["reason"]
    assert "fix:      mlproject data pull train" in main["reason"]
    # The check before anything runs still refuses, as before: nothing runs, nothing recorded.
    again = cli("run", str(root))
    assert again.code == 2
    assert "data.train: data/train.csv does not match its pin" in again.err
    assert len(records.list_runs(str(root))) == 2
    # A step that leaves the data alone: the one before the reader runs, the reader reads.
    (root / "MLproject").write_text(CLOBBER.replace("open('data/train.csv', 'w')",
                                                    "open('other.txt', 'w')"))
    (root / "data" / "train.csv").write_bytes(TRAIN_V2)
    fine = cli("run", str(root))
    assert fine.code == 0, fine.err
    assert (root / "seen.txt").read_bytes() == TRAIN_V2


# --- an environment resolved at run time: `plan` and `run` fingerprint the same value --------

@pytest.mark.slow
def test_plan_and_run_agree_on_an_unlocked_environment(cli: Callable[..., Any],
                                                       project: Callable[..., Path]) -> None:
    py = ".".join(map(str, sys.version_info[:2]))
    root = git_init(project({
        "MLproject": f"""
            environments:
              train: {{python: "{py}", requirements: requirements.txt}}
            entry_points:
              main:
                environment: train
                command: "python -c \\"import six; open('out.txt','w').write(six.__version__)\\""
                outputs: [out.txt]
        """,
        "requirements.txt": "six\n",
        ".gitignore": "out.txt\n",
    }))
    before = _plan(cli, root)["steps"][0]
    assert before["environment"]["key"] is None  # nothing resolved by `plan`
    assert any("interpreter and requirements" in c for c in before["fingerprint_basis"]["covered"])
    assert _run(cli, root) == {"main": "ran"}
    record = records.list_runs(str(root))[-1]
    assert record["fingerprint"] == before["fingerprint"]
    assert record["environment"]["recipe"]["pins"] == [f"six=={(root / 'out.txt').read_text()}"]
    after = _plan(cli, root)["steps"][0]  # the resolution is cached now: the same value
    assert after["environment"]["key"] is not None
    assert after["fingerprint"] == before["fingerprint"]
    assert _run(cli, root) == {"main": "skipped"}
    (root / "requirements.txt").write_text("six\n# another requirement text\n")
    assert _plan(cli, root)["steps"][0]["fingerprint"] != before["fingerprint"]


def test_a_path_parameter_naming_a_fifo_or_a_broken_link_neither_hangs_nor_crashes(
        cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    import os

    root = git_init(project({
        "MLproject": """
            entry_points:
              main:
                parameters: {src: path}
                command: "python -c \\"open('out.txt','w').write('x')\\" {src}"
                outputs: [out.txt]
        """,
        ".gitignore": "out.txt\n",
    }))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    broken = tmp_path / "broken"
    broken.symlink_to(tmp_path / "nowhere")
    basis = _plan(cli, root, "-P", f"src={fifo}")["steps"][0]["fingerprint_basis"]
    assert basis["paths"]["src"].startswith("unreadable: ") and "FIFO" in basis["paths"]["src"]
    assert _run(cli, root, "-P", f"src={fifo}") == {"main": "ran"}
    assert _run(cli, root, "-P", f"src={fifo}") == {"main": "skipped"}
    linked = _plan(cli, root, "-P", f"src={broken}")["steps"][0]["fingerprint_basis"]["paths"]
    assert "broken link" in linked["src"]


@pytest.mark.slow
def test_a_needed_step_without_outputs_passes_on_what_it_received(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({
        "MLproject": f"""
            entry_points:
              prepare:
                command: "python -c \\"{PREPARE}\\""
                outputs: [data.txt]
              check:
                needs: [prepare]
                command: "python -c \\"assert open('data.txt').read()\\""
              main:
                needs: [check]
                command: "python -c \\"open('model.txt','w').write(open('data.txt').read() * 2)\\""
                outputs: [model.txt]
        """,
        ".gitignore": "data.txt\nmodel.txt\nprep.src\n",
        "prep.src": "random",
    }))
    assert _run(cli, root) == {"prepare": "ran", "check": "ran", "main": "ran"}
    assert _run(cli, root) == {"prepare": "skipped", "check": "ran", "main": "skipped"}
    basis = _plan(cli, root)["steps"][2]["fingerprint_basis"]
    assert "upstream step check (no outputs declared: its fingerprint)" in basis["covered"]
    (root / "data.txt").unlink()
    assert _run(cli, root) == {"prepare": "ran", "check": "ran", "main": "ran"}
    _consistent(root)
