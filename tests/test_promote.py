"""`mlproject promote`: annotated tags in GTO's grammar whose message carries the model's lock
entry; refused (with the reason) on a dirty tree, a stale lock, a failed gate, a model file that
does not match the lock, a version that exists or does not increase; `--push` pushes exactly the
tags it made. Real projects, real runs, real Git (and a local bare remote)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git as _git
from conftest import git_init
from mlproject.runner.gitops import tags

PROJECT = {
    "MLproject": """
        entry_points:
          train:
            parameters: {acc: {type: float, default: 0.9}}
            command: "python train.py {acc}"
            outputs: [model.bin]
            metrics: metrics.json
            gates:
              acc: {min: 0.5, not_worse_than: base, tolerance: 0.05}
          lint:
            command: "python -c pass"
        models:
          clf: {path: model.bin, description: "a classifier"}
    """,
    "train.py": ("import json, sys\n"
                 "acc = float(sys.argv[1])\n"
                 "open('model.bin', 'w').write(f'weights {acc}')\n"
                 "json.dump({'acc': acc}, open('metrics.json', 'w'))\n"),
    ".gitignore": "model.bin\nmetrics.json\n.mlproject/\n",
}


def git(root: Path, *args: str) -> str:
    return str(_git(root, *args)).strip()


def trained(cli: Callable[..., Any], root: Path, acc: str = "0.9", message: str = "trained") -> None:
    """Run train with this accuracy (the default written into the MLproject) and commit."""
    spec = (root / "MLproject").read_text()
    (root / "MLproject").write_text(spec.replace(
        spec[spec.index("default: ") + 9:spec.index("}}")], acc))
    result = cli("run", str(root), "-e", "train")
    assert result.code == 0, result.err
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


@pytest.fixture
def repo(cli: Callable[..., Any], project: Callable[..., Path]) -> Path:
    root = git_init(project(PROJECT))
    trained(cli, root)
    return root


def promote(cli: Callable[..., Any], root: Path, *args: str) -> Any:
    return cli("promote", "--project", str(root), *args)


def message(root: Path, name: str) -> str:
    return git(root, "tag", "-l", "--format=%(contents)", name)


def test_a_version_and_a_stage_carry_the_lock_entry(cli: Callable[..., Any], repo: Path) -> None:
    done = promote(cli, repo, "clf", "--stage", "prod")
    assert (done.code, done.out, done.err) == (0, "clf@v0.0.1\nclf#prod#1\n", "")
    head = git(repo, "rev-parse", "HEAD")
    for name in ("clf@v0.0.1", "clf#prod#1"):
        assert git(repo, "cat-file", "-t", name) == "tag"  # annotated
        assert git(repo, "rev-parse", f"{name}^{{commit}}") == head
    lock = json.loads((repo / "mlproject.lock").read_text())["entries"]["train"]
    payload = tags.payload_of(message(repo, "clf@v0.0.1") + "\n")
    model_md5 = hashlib.md5(b"weights 0.9").hexdigest()
    assert payload == {
        "format": "mlproject.promotion/1", "model": "clf", "version": "v0.0.1", "stage": None,
        "commit": head, "path": "model.bin", "entry_point": "train", "output": "model.bin",
        "model_md5": model_md5, "output_md5": model_md5, "lock": lock, "forced": []}
    assert lock["metrics"] == {"acc": 0.9} and lock["outputs"] == {"model.bin": model_md5}
    assert message(repo, "clf@v0.0.1").splitlines()[0] == (
        f"clf v0.0.1: registered by mlproject promote (train, fingerprint {lock['fingerprint'][:12]})")
    staged = tags.payload_of(message(repo, "clf#prod#1") + "\n")
    assert staged is not None and staged["stage"] == "prod" and staged["lock"] == lock
    registry = json.loads(cli("registry", "--repo", str(repo), "--json").out)["models"]["clf"]
    assert (registry["latest"], registry["stages"]) == ("v0.0.1", {"prod": "v0.0.1"})


def test_versions_bump_increase_and_stages_move(cli: Callable[..., Any], repo: Path) -> None:
    assert promote(cli, repo, "clf", "--version", "1.2.0").out == "clf@v1.2.0\n"
    trained(cli, repo, "0.92")
    assert promote(cli, repo, "clf", "--bump", "minor", "--stage", "staging").out == (
        "clf@v1.3.0\nclf#staging#1\n")
    # a stage alone goes to the version registered at REF; an existing version by --version
    assert promote(cli, repo, "clf", "--stage", "prod").out == "clf#prod#2\n"
    assert promote(cli, repo, "clf", "--version", "1.2.0", "--stage", "prod").out == "clf#prod#3\n"
    again = promote(cli, repo, "clf", "--version", "1.2.0", "--stage", "prod")
    assert (again.code, again.out, again.err) == (
        0, "", "mlproject: clf v1.2.0 holds prod already: no tag created\n")
    shown = json.loads(cli("registry", "--repo", str(repo), "--json").out)["models"]["clf"]
    assert (shown["latest"], shown["stages"]) == ("v1.3.0", {"prod": "v1.2.0", "staging": "v1.3.0"})


def test_each_refusal_says_why_and_force_tags_anyway(cli: Callable[..., Any], repo: Path) -> None:
    assert promote(cli, repo, "clf", "--version", "1.0.0").code == 0
    trained(cli, repo, "0.8")  # worse than 0.9 - 0.05: the gate against v1.0.0 fails
    (repo / "model.bin").write_text("tampered")  # not what the lock says train wrote
    (repo / "train.py").write_text((repo / "train.py").read_text() + "# changed\n")  # dirty, stale
    refused = promote(cli, repo, "clf", "--version", "0.9.0")
    assert (refused.code, refused.out) == (1, "")
    lines = refused.err.splitlines()
    assert lines[0] == "mlproject: promote clf refused (--force tags anyway):"
    assert lines[1] == ("  - version v0.9.0 does not increase: clf's greatest is v1.0.0 (use "
                        "--bump, or a greater --version)")
    assert lines[2] == ("  - the working tree has changes that are not committed: train.py "
                        "(commit them, or remove them)")
    assert lines[3].startswith("  - the lock is not current: train is stale (code: ")
    model = hashlib.md5(b"tampered").hexdigest()
    locked = hashlib.md5(b"weights 0.8").hexdigest()
    assert lines[4] == (f"  - the model file model.bin does not match the lock: model.bin is "
                        f"{model}, the lock says {locked}")
    assert lines[5] == ("  - gate failed: FAIL train acc: 0.8 < bound 0.85 = base 0.9 - tolerance "
                        "0.05 (base: clf@v1.0.0)")
    assert len(lines) == 6
    assert git(repo, "tag", "-l") == "clf@v1.0.0"  # nothing tagged
    forced = promote(cli, repo, "clf", "--version", "0.9.0", "--force")
    assert forced.code == 0 and forced.out == "clf@v0.9.0\n"
    assert forced.err.count("mlproject: warning: --force: ") == 5
    payload = tags.payload_of(message(repo, "clf@v0.9.0") + "\n")
    assert payload is not None and [r[:20] for r in payload["forced"]] == [
        r[4:24] for r in lines[1:]]


def test_what_force_never_does_and_bad_names(cli: Callable[..., Any], repo: Path) -> None:
    assert promote(cli, repo, "clf").out == "clf@v0.0.1\n"
    second = promote(cli, repo, "clf", "--version", "0.0.2", "--force")
    assert (second.code, second.err) == (2, (
        f"mlproject: error: clf v0.0.1 is already registered at {git(repo, 'rev-parse', 'HEAD')[:12]}: "
        "a commit holds one version; assign it a stage with `mlproject promote clf --version 0.0.1 "
        "--stage STAGE`\n"))
    (repo / "x").write_text("x")
    git(repo, "add", "x")
    git(repo, "commit", "-q", "-m", "x")
    exists = promote(cli, repo, "clf", "--version", "0.0.1", "--force")
    assert (exists.code, exists.err) == (2, (
        "mlproject: error: the tag clf@v0.0.1 exists already: a version is never re-tagged (clones "
        "keep the old tag); register another version\n"))
    for args, err in [
        (("nope",), f"mlproject: error: no model 'nope' among the models: of {repo / 'MLproject'} "
                    "(declared: clf): declare it there, with its path (an output of an entry point)\n"),
        (("clf", "--stage", "-d"), None),  # argparse: -d is not a value
        (("clf", "--stage", "pro d"), "mlproject: error: stage name 'pro d' cannot be written in a "
                                      "registry tag: use letters, digits, '-', '_' and '/', starting "
                                      "and ending with a letter or a digit (no '//')\n"),
        (("clf", "--stage", "a//b"), None),
        (("clf", "--stage", "x@{1}"), None),
        (("clf", "--version", "1.2"), "mlproject: error: version '1.2' is not a semantic version: "
                                      "write it as X.Y.Z, e.g. 1.2.0\n"),
        (("clf", "--ref", "--output=/tmp/x"), None),
        (("clf", "--ref=--output=/tmp/x"), "mlproject: error: '--output=/tmp/x' is not a revision\n"),
        (("clf", "--stage=-d"), "mlproject: error: stage name '-d' cannot be written in a registry tag: "
                                "use letters, digits, '-', '_' and '/', starting and ending with a "
                                "letter or a digit (no '//')\n"),
        (("clf", "--ref", "nosuchref"), "mlproject: error: unknown revision 'nosuchref': Git knows "
                                        f"no commit of that name in {repo}\n"),
    ]:
        try:
            result = promote(cli, repo, *args)
        except SystemExit as exc:  # argparse refused it before mlproject saw it
            assert exc.code == 2
            continue
        assert result.code == 2, args
        if err is not None:
            assert result.err == err
    assert git(repo, "tag", "-l") == "clf@v0.0.1"
    git(repo, "tag", "-a", "-m", "withdrawn", "clf@v0.0.1!", "HEAD~1")
    gone = promote(cli, repo, "clf", "--ref", "HEAD~1", "--force")
    assert (gone.code, gone.err) == (2, (
        f"mlproject: error: clf v0.0.1 was registered at {git(repo, 'rev-parse', 'HEAD~1')[:12]} and "
        "deregistered: GTO reads one version per commit, so no other can be registered there\n"))


def test_an_absent_model_another_commit_and_no_lock_are_refused(
        cli: Callable[..., Any], repo: Path) -> None:
    (repo / "model.bin").unlink()
    absent = promote(cli, repo, "clf")
    assert absent.code == 1
    assert absent.err.splitlines()[1:] == [
        "  - the model file model.bin is not in the working tree (run `mlproject run . -e train`, "
        "or pull it with DVC)"]
    first = git(repo, "rev-parse", "HEAD")
    (repo / "x").write_text("x")
    git(repo, "add", "x")
    git(repo, "commit", "-q", "-m", "x")
    elsewhere = promote(cli, repo, "clf", "--ref", "HEAD~1")
    assert elsewhere.err.splitlines()[1:] == [
        f"  - HEAD~1 ({first[:12]}) is not the commit checked out here "
        f"({git(repo, 'rev-parse', 'HEAD')[:12]}): its lock and model file cannot be checked; "
        "check it out"]
    git(repo, "rm", "-q", "mlproject.lock")
    git(repo, "commit", "-q", "-m", "no lock")
    (repo / "model.bin").write_text("weights 0.9")
    nolock = promote(cli, repo, "clf")
    assert nolock.err.splitlines()[1:] == [
        "  - there is no mlproject.lock at HEAD: run the pipeline (`mlproject run . -e train`) "
        "and commit the lock"]
    assert git(repo, "tag", "-l") == ""


def test_push_sends_exactly_the_tags_created(cli: Callable[..., Any], repo: Path,
                                              tmp_path: Path) -> None:
    remote = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "tag", "-a", "-m", "unrelated", "unrelated-tag")  # never pushed
    done = promote(cli, repo, "clf", "--stage", "prod", "--push", "origin")
    assert done.code == 0, done.err
    assert done.err == "pushed to origin: clf@v0.0.1, clf#prod#1\n"
    pushed = git(remote, "for-each-ref", "--format=%(refname) %(objecttype)")
    assert pushed.splitlines() == ["refs/tags/clf#prod#1 tag", "refs/tags/clf@v0.0.1 tag"]
    bad = promote(cli, repo, "clf", "--stage", "dev", "--push", "nowhere")
    assert bad.code == 1 and "the tags were created here but not pushed" in bad.err
    assert bad.err.endswith("push them with: git push nowhere refs/tags/clf#dev#2\n")


def test_what_promote_writes_gto_reads(cli: Callable[..., Any], repo: Path) -> None:
    """Tags promote made, at distinct seconds (GTO orders by the second), read by `gto show`."""
    pytest.importorskip("gto")
    when = iter(range(1767225600 + 10_000, 1767225600 + 20_000, 10))

    def at(*args: str) -> None:
        os.environ["GIT_COMMITTER_DATE"] = f"{next(when)} +0000"
        try:
            assert promote(cli, repo, *args).code == 0
        finally:
            del os.environ["GIT_COMMITTER_DATE"]

    at("clf", "--stage", "staging")
    trained(cli, repo, "0.91")
    at("clf", "--bump", "minor", "--stage", "staging")
    at("clf", "--version", "0.0.1", "--stage", "prod")
    gto = str(Path(sys.executable).parent / "gto")
    shown = json.loads(subprocess.run([gto, "show", "--json", "-r", str(repo)], check=True,
                                      capture_output=True, text=True).stdout)
    ours = json.loads(cli("registry", "--repo", str(repo), "--json").out)["models"]
    assert shown == {"clf": {"version": "v0.1.0", "stage": {"prod": "v0.0.1", "staging": "v0.1.0"},
                             "registered": True, "active": True}}
    assert (ours["clf"]["latest"], ours["clf"]["stages"]) == (
        "v0.1.0", {"prod": "v0.0.1", "staging": "v0.1.0"})
