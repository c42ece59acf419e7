"""A project given by Git URL (`mlproject run URL[#sub] -v REV`): cloned once into the cache,
fetched only when the version is missing (or --refresh), run in a clean work tree of the
commit, recorded with the URL and the commit; hostile URLs and versions refused."""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git, git_init, mlproject_process, write_project
from mlproject.runner.gitsource.url import GitSourceError, looks_like_url, parse
from mlproject.runner.plan import Plan
from mlproject.runner.planfile import PlanFileError

WRITE = ("python -c \"import pathlib; pathlib.Path('out.txt').write_text("
         "pathlib.Path('version.txt').read_text())\"")
MLPROJECT = f"name: demo\nentry_points:\n  main:\n    command: {json.dumps(WRITE)}\n"


class Origin:
    """A bare repository (the remote) and a clone of it where commits are made and pushed."""

    def __init__(self, root: Path) -> None:
        self.work = write_project(root / "work", {
            "MLproject": MLPROJECT, "version.txt": "one", "sub/MLproject": MLPROJECT,
            "sub/version.txt": "sub one"})
        git_init(self.work)
        git(self.work, "tag", "v1")
        self.bare = root / "origin.git"
        git(root, "clone", "-q", "--bare", str(self.work), str(self.bare))
        git(self.bare, "update-server-info")  # dumb HTTP serves it too
        self.url = f"file://{self.bare}"

    def commit(self, version: str) -> str:
        (self.work / "version.txt").write_text(version)
        git(self.work, "commit", "-q", "-am", version)
        git(self.work, "push", "-q", str(self.bare), "main")
        git(self.bare, "update-server-info")
        return self.head()

    def head(self, rev: str = "main") -> str:
        return git(self.bare, "rev-parse", rev).strip()


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return Origin(tmp_path / "remote")


def _records() -> list[dict[str, Any]]:
    trees = Path(os.environ["MLPROJECT_CACHE_DIR"]) / "sources"
    return [json.loads(p.read_text()) for p in sorted(trees.glob("*/trees/*/**/.mlproject/runs/*/run.json"))]


def _planned(cli: Callable[..., Any], *args: str) -> dict[str, Any]:
    result = cli("plan", *args, "--json")
    assert result.code == 0, result.err
    plan: dict[str, Any] = json.loads(result.out)
    return plan


def test_a_url_is_run_in_a_clean_tree_of_its_commit_and_recorded(cli: Callable[..., Any],
                                                                  origin: Origin) -> None:
    result = cli("run", origin.url)
    assert result.code == 0, result.err
    assert f"fetching {origin.url}\n" in result.err
    [record] = _records()
    assert record["status"] == "succeeded"
    assert record["plan"]["source"] == {"url": origin.url, "version": None,
                                        "commit": origin.head(), "subdirectory": ""}
    assert record["code"]["commit"] == origin.head() and record["code"]["dirty"] is False
    assert Path(record["project"], "out.txt").read_text() == "one"
    shown = cli("plan", origin.url)
    assert f"source: {origin.url} at {origin.head()} (its HEAD)" in shown.out
    assert "(cached)" in shown.err and "fetching" not in shown.err


def test_a_subdirectory_is_the_project(cli: Callable[..., Any], origin: Origin) -> None:
    result = cli("run", f"{origin.url}#sub/", "-v", "v1")
    assert result.code == 0, result.err
    [record] = _records()
    assert record["plan"]["source"]["subdirectory"] == "sub"
    assert record["plan"]["source"]["version"] == "v1"
    assert Path(record["project"], "out.txt").read_text() == "sub one"
    assert Path(record["project"]).name == "sub"
    dry = cli("run", "--dry-run", f"{origin.url}#sub")
    assert dry.code == 0 and "subdirectory sub" in dry.out


def test_a_version_is_a_branch_a_tag_or_a_commit(cli: Callable[..., Any], origin: Origin) -> None:
    first = origin.head()
    second = origin.commit("two")
    assert _planned(cli, origin.url)["source"]["commit"] == second
    for rev, commit in (("main", second), ("v1", first), (first, first), (first[:8], first),
                        (second[:10], second)):
        source = _planned(cli, origin.url, "-v", rev)["source"]
        assert source["commit"] == commit and source["version"] == rev


def test_a_cached_version_is_never_fetched_again(cli: Callable[..., Any], origin: Origin,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("run", origin.url).code == 0
    trace = tmp_path / "trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    origin.bare.rename(tmp_path / "gone.git")  # the remote unreachable: a fetch would fail
    again = cli("run", origin.url, "-v", "main")
    assert again.code == 0, again.err
    assert "(cached)" in again.err and "fetching" not in again.err
    assert "fetch" not in trace.read_text()
    assert len(_records()) == 2


def test_a_new_commit_is_seen_when_asked_for_or_refreshed(cli: Callable[..., Any],
                                                         origin: Origin) -> None:
    outputs = {}

    def run(*args: str) -> str:
        result = cli("run", origin.url, *args)
        assert result.code == 0, result.err
        last = max(_records(), key=lambda r: str(r["started_at"]))
        outputs[last["plan"]["source"]["commit"]] = Path(last["project"], "out.txt").read_text()
        return str(result.err)

    first = origin.head()
    run()
    second = origin.commit("two")
    assert _planned(cli, origin.url)["source"]["commit"] == first  # not fetched
    assert f"fetching {origin.url} for {second}" in run("-v", second)  # missing here: fetched
    third = origin.commit("three")
    assert _planned(cli, origin.url, "-v", "main")["source"]["commit"] == second
    assert "fetching" in run("--refresh")
    assert outputs == {first: "one", second: "two", third: "three"}


def test_a_tree_a_run_changed_is_restored(cli: Callable[..., Any], origin: Origin) -> None:
    assert cli("run", origin.url).code == 0
    tree = Path(_records()[0]["project"])
    (tree / "version.txt").write_text("tampered")
    (tree / "junk.pyc").write_text("left behind")
    (tree / "MLproject").unlink()
    result = cli("run", origin.url)
    assert result.code == 0, result.err
    assert "restoring the work tree" in result.err and "version.txt" in result.err
    assert (tree / "out.txt").read_text() == "one"
    assert not (tree / "junk.pyc").exists() and (tree / "MLproject").exists()
    assert [r["code"]["dirty"] for r in _records()] == [False, False]  # both records kept


def test_a_broken_tree_or_clone_heals(cli: Callable[..., Any], origin: Origin) -> None:
    assert cli("run", origin.url).code == 0
    tree = Path(_records()[0]["project"])
    (tree / ".git").unlink()  # as if killed before the checkout was finished
    base = tree.parents[1]
    (base / ".clone-left").mkdir()  # a clone killed half way
    result = cli("run", origin.url)
    assert result.code == 0, result.err
    assert "making it again" in result.err and (base / ".clone-left").exists()
    shutil.rmtree(base / "repo.git" / "objects")
    healed = cli("run", origin.url)
    assert healed.code == 0, healed.err
    assert "broken; cloning it again" in healed.err and not (base / ".clone-left").exists()


@pytest.mark.parametrize(("suffix", "said"), [
    ("#../x", "leaves the repository"), ("#/etc", "relative to its root"),
    ("#nothere", "no such directory"), ("#out", "leads out of the repository (a link)")])
def test_a_subdirectory_outside_the_repository_is_refused(cli: Callable[..., Any], origin: Origin,
                                                         suffix: str, said: str) -> None:
    os.symlink("..", origin.work / "out")
    git(origin.work, "add", "out")
    origin.commit("linked")
    result = cli("run", origin.url + suffix)
    assert result.code == 2 and said in result.err and "Traceback" not in result.err


def test_a_missing_or_option_like_version_is_refused(cli: Callable[..., Any], origin: Origin,
                                                     tmp_path: Path) -> None:
    missing = cli("run", origin.url, "-v", "nope")
    assert missing.code == 2
    assert f"{origin.url}: no commit, branch or tag 'nope'" in missing.err
    assert "Traceback" not in missing.err
    marker = tmp_path / "pwned"
    for rev in (f"--upload-pack=touch {marker}", "--output=x", "-h"):
        result = cli("run", origin.url, f"--version={rev}")
        assert result.code == 2 and "not a commit, branch or tag" in result.err
    assert not marker.exists()
    local = cli("run", str(origin.work), "-v", "main")
    assert local.code == 2 and "take a Git URL as PATH" in local.err


@pytest.mark.parametrize("url", ["ext::sh -c touch% {marker}", "fd::3", "ftp://host/repo.git",
                                 "-oProxyCommand=touch@host:x", "ssh://-oProxyCommand=x/repo",
                                 "file://otherhost/repo"])
def test_hostile_urls_are_refused(cli: Callable[..., Any], tmp_path: Path, url: str) -> None:
    marker = tmp_path / "pwned"
    result = cli("run", "--", url.format(marker=marker)) if url.startswith("-") else cli(
        "run", url.format(marker=marker))
    assert result.code == 2 and "Traceback" not in result.err
    assert not marker.exists()
    assert not (Path(os.environ["MLPROJECT_CACHE_DIR"]) / "sources").exists()


def test_an_unreachable_url_is_a_clear_error_without_its_credentials(
        cli: Callable[..., Any]) -> None:
    result = cli("run", "https://someone:tok3n-secret@127.0.0.1:9/org/repo.git")
    assert result.code == 2 and "cannot fetch https://***@127.0.0.1:9/org/repo.git" in result.err
    assert "tok3n" not in result.err and "someone" not in result.err
    cache = Path(os.environ["MLPROJECT_CACHE_DIR"])
    assert not [p for p in cache.rglob("*") if "tok3n" in p.name]


@pytest.fixture
def served(origin: Origin) -> Iterator[str]:
    """The bare repository over (dumb) HTTP on this machine."""
    handler = functools.partial(_Quiet, directory=str(origin.bare.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}/{origin.bare.name}"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_credentials_are_never_recorded_or_written(cli: Callable[..., Any], origin: Origin,
                                                   served: str) -> None:
    result = cli("run", f"http://someone:tok3n-secret@{served}#sub")
    assert result.code == 0, result.err
    [record] = _records()
    assert record["plan"]["source"]["url"] == f"http://***@{served}"
    assert record["plan"]["source"]["commit"] == origin.head()
    assert "tok3n" not in result.err + result.out
    cache = Path(os.environ["MLPROJECT_CACHE_DIR"])
    for path in cache.rglob("*"):
        assert "tok3n" not in str(path)
        if path.is_file():
            assert b"tok3n" not in path.read_bytes(), path
    token_free = cli("run", f"http://{served}#sub")  # the same repository: the same clone
    assert token_free.code == 0 and "(cached)" in token_free.err


def test_two_processes_at_once_on_a_fresh_url(origin: Origin, tmp_path: Path) -> None:
    children = [mlproject_process("run", origin.url, cwd=tmp_path, stderr=subprocess.PIPE)
                for _ in range(2)]
    said = [child.communicate(timeout=120)[1].decode() for child in children]
    assert [child.returncode for child in children] == [0, 0], said
    records = _records()
    assert [r["status"] for r in records] == ["succeeded", "succeeded"]
    assert {r["plan"]["source"]["commit"] for r in records} == {origin.head()}


def test_urls_are_told_from_paths_and_keyed_without_credentials() -> None:
    assert looks_like_url("https://github.com/org/repo") and looks_like_url("git@host:org/r.git")
    assert looks_like_url("ext::sh") and not looks_like_url("some/dir") and not looks_like_url(".")
    scp = parse("git@github.com:Org/repo.git#a/b/")
    assert (scp.url, scp.subdirectory) == ("git@github.com:Org/repo.git", "a/b")
    tokened = parse("https://user:pw@GitHub.com/org/repo.git/")
    assert tokened.shown == "https://***@GitHub.com/org/repo.git/"
    assert tokened.key == parse("https://github.com/org/repo").key == "https://github.com/org/repo"
    assert tokened.cache_name().startswith("github.com-org-repo-")
    assert tokened.scrub("fatal: 'https://user:pw@GitHub.com/org/repo.git/' pw") == (
        "fatal: 'https://***@GitHub.com/org/repo.git/' ***")
    ssh = parse("ssh://git:secret@host:2222/org/repo")
    assert ssh.shown == "ssh://git:***@host:2222/org/repo" and "secret" not in ssh.key
    for bad in ("ext::sh -c x", "fd::3", "ftp://h/r", "https://h/", "-u@h:x"):
        with pytest.raises(GitSourceError):
            parse(bad)


def test_a_plan_keeps_its_source_through_its_file(cli: Callable[..., Any], origin: Origin) -> None:
    data = _planned(cli, origin.url, "-v", "v1")
    plan = Plan.from_json(data)
    assert plan.source == data["source"] and plan.to_json() == data
    local = {k: v for k, v in data.items() if k != "source"}
    assert Plan.from_json(local).source is None and "source" not in Plan.from_json(local).to_json()
    with pytest.raises(PlanFileError, match="source: not the fields"):
        Plan.from_json({**data, "source": {"url": "x"}})
    with pytest.raises(PlanFileError, match=r"source\.commit: expected str"):
        Plan.from_json({**data, "source": {**data["source"], "commit": 1}})


def test_the_cli_takes_a_url_as_a_real_process(origin: Origin, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mlproject.runner", "plan", f"{origin.url}#sub",
                           "-v", "main"], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert "subdirectory sub" in done.stdout and f"using {origin.url} at" in done.stderr
