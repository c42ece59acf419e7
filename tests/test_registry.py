"""`mlproject registry`: the state the tags hold, as GTO reads the same tags (gto is a test
dependency: its `gto show --json` is the reference)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlproject.runner.gitops import registry

T0 = 1767225600  # 2026-01-01: commits at T0.., tags at T0 + 100.. (a tag follows its commit)


def git(root: Path, *args: str, when: int | None = None) -> str:
    env = {**os.environ}
    if when is not None:
        env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"] = f"{when} +0000"
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(root: Path, text: str, when: int) -> str:
    (root / "file.txt").write_text(text)
    git(root, "add", "file.txt")
    git(root, "commit", "-q", "-m", text, when=when)
    return git(root, "rev-parse", "HEAD")


def tag(root: Path, name: str, when: int, target: str = "HEAD") -> None:
    git(root, "tag", "-a", "-m", f"message of {name}", name, target, when=when)


def scenario(root: Path) -> dict[str, str]:
    """Several models, versions, stage reassignments (and a rollback), an unassignment, a
    deregistration, a deprecation, a model revived after one, a stage on an unversioned commit,
    prereleases, a nested name, and tags the registry must ignore."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    c = {f"c{i}": commit(root, f"c{i}", T0 + 10 * i) for i in range(1, 5)}
    steps = [
        ("clf@v0.1.0", "c1"), ("clf#staging#1", "c1"), ("clf#prod#2", "c1"),
        ("clf@v0.2.0", "c2"), ("clf#staging#3", "c2"),
        ("clf@v1.0.0", "c3"), ("clf#prod#4", "c3"), ("clf#prod#5", "c2"),  # prod rolled back
        ("clf#staging!#6", "c2"),  # staging falls back to v0.1.0's assignment, as in GTO
        ("reg@v1.0.0", "c1"), ("reg@v1.1.0", "c2"), ("reg#prod#1", "c2"), ("reg@v1.1.0!", "c2"),
        ("old@v0.0.1", "c1"), ("old#prod#1", "c1"), ("old@deprecated#2", "c1"),
        ("back@v1.0.0", "c1"), ("back@deprecated#1", "c1"), ("back@v1.1.0", "c4"),
        ("shaonly#prod#1", "c3"),
        ("team/clf@v0.1.0", "c2"), ("team/clf#dev#1", "c2"),
        ("pre@v1.0.0-rc.1", "c1"), ("pre@v1.0.0", "c2"), ("pre@v1.0.0-rc.2", "c3"),
        ("release-1", "c4"), ("clf@v1.0", "c4"),  # not in the grammar
    ]
    for i, (name, at) in enumerate(steps):
        tag(root, name, T0 + 100 + i, c[at])
    git(root, "tag", "clf@v9.0.0", c["c4"])  # lightweight: GTO ignores it
    return c


EXPECTED = {
    "back": {"latest": "v1.1.0", "deprecated": False, "stages": {}},
    "clf": {"latest": "v1.0.0", "deprecated": False, "stages": {"prod": "v0.2.0", "staging": "v0.1.0"}},
    "old": {"latest": "v0.0.1", "deprecated": True, "stages": {"prod": "v0.0.1"}},
    "pre": {"latest": "v1.0.0", "deprecated": False, "stages": {}},
    "reg": {"latest": "v1.0.0", "deprecated": False, "stages": {}},
    "shaonly": {"latest": None, "deprecated": False, "stages": {"prod": "<c3>"}},
    "team/clf": {"latest": "v0.1.0", "deprecated": False, "stages": {"dev": "v0.1.0"}},
}


def _gto() -> str:
    pytest.importorskip("gto")
    return str(Path(sys.executable).parent / "gto")


def _ours(found: dict[str, Any]) -> dict[str, Any]:
    return {name: {k: m[k] for k in ("latest", "deprecated", "stages")}
            for name, m in found["models"].items()}


def _theirs(found: dict[str, Any]) -> dict[str, Any]:
    return {name: {"latest": m["version"], "deprecated": not m["active"],
                   "stages": {s: v for s, v in m["stage"].items() if v}}
            for name, m in found.items()}


def test_the_registry_agrees_with_gto_show(tmp_path: Path, cli: Callable[..., Any]) -> None:
    root = tmp_path / "repo"
    commits = scenario(root)
    result = cli("registry", "--repo", str(root), "--json")
    assert result.code == 0, result.err
    ours = json.loads(result.out)
    expected = json.loads(json.dumps(EXPECTED).replace("<c3>", commits["c3"]))
    assert _ours(ours) == expected
    shown = subprocess.run([_gto(), "show", "--json", "-d", "-r", str(root)], check=True,
                           capture_output=True, text=True).stdout
    assert _theirs(json.loads(shown)) == expected

    import gto.api  # the versions of each active model, as `gto show MODEL --json` lists them

    for name, model in ours["models"].items():
        if model["deprecated"]:
            continue
        theirs: list[tuple[str, str, list[str], str]] = []
        for v in gto.api.show(str(root), name):
            # GTO lists a version named by its commit twice: once for the stage tag, once for
            # the commit itself (which it does not match to the first); the first is the tag's
            if all(v["version"] != seen[0] for seen in theirs):
                theirs.append((v["version"], v["commit_hexsha"],
                               sorted(s["stage"] for s in v["stages"]), v["ref"]))
        mine = [(v["version"], v["commit"], v["stages"], v["tag"]) for v in model["versions"]]
        assert mine == theirs, name


def test_events_within_one_second_are_ordered_as_gto_orders_them(
        tmp_path: Path, cli: Callable[..., Any]) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    c1, c2 = commit(root, "c1", T0), commit(root, "c2", T0 + 1)
    for name, when, at in [("a@v0.1.0", 5, c1), ("a@v0.2.0", 6, c2), ("a@v0.2.0!", 7, c2),
                           ("a#prod#1", 7, c1), ("a#prod!#2", 7, c1),  # cancelled in its second
                           ("b@v1.0.0", 8, c2), ("b#prod#1", 8, c2), ("b#prod!#2", 9, c2),
                           ("b#prod#3", 9, c2)]:  # the counter is later: GTO still cancels
        tag(root, name, T0 + 100 + when, at)
    ours = _ours(json.loads(cli("registry", "--repo", str(root), "--json").out))
    assert ours == {"a": {"latest": "v0.1.0", "deprecated": False, "stages": {}},
                    "b": {"latest": "v1.0.0", "deprecated": False, "stages": {}}}
    shown = subprocess.run([_gto(), "show", "--json", "-d", "-r", str(root)], check=True,
                           capture_output=True, text=True).stdout
    assert _theirs(json.loads(shown)) == ours


def test_one_model_lists_its_versions_and_their_stages(tmp_path: Path, cli: Callable[..., Any]) -> None:
    root = tmp_path / "repo"
    commits = scenario(root)
    result = cli("registry", "clf", "--repo", str(root))
    assert result.code == 0, result.err
    c = {k: v[:12] for k, v in commits.items()}
    assert result.out == (
        "clf\n"
        "version  commit        stages   created                    tag\n"
        f"v1.0.0   {c['c3']}  -        2026-01-01T00:01:45+00:00  clf@v1.0.0\n"
        f"v0.2.0   {c['c2']}  prod     2026-01-01T00:01:43+00:00  clf@v0.2.0\n"
        f"v0.1.0   {c['c1']}  staging  2026-01-01T00:01:40+00:00  clf@v0.1.0\n")
    shown = json.loads(cli("registry", "clf", "--repo", str(root), "--json").out)
    assert shown["format"] == "mlproject.registry/1" and shown["model"] == "clf"
    assert [v["payload"] for v in shown["versions"]] == [None, None, None]  # not mlproject's tags


def test_the_table_of_models_marks_the_deprecated_one(tmp_path: Path, cli: Callable[..., Any]) -> None:
    root = tmp_path / "repo"
    commits = scenario(root)
    result = cli("registry", "--repo", str(root))
    assert result.code == 0, result.err
    sha = commits["c3"]
    assert result.out.splitlines() == [
        "model             latest  dev     prod" + " " * (len(sha) - 2) + "staging",
        "back              v1.1.0  -       -" + " " * (len(sha) + 1) + "-",
        "clf               v1.0.0  -       v0.2.0" + " " * (len(sha) - 4) + "v0.1.0",
        "old (deprecated)  v0.0.1  -       v0.0.1" + " " * (len(sha) - 4) + "-",
        "pre               v1.0.0  -       -" + " " * (len(sha) + 1) + "-",
        "reg               v1.0.0  -       -" + " " * (len(sha) + 1) + "-",
        f"shaonly           -       -       {sha}  -",
        "team/clf          v0.1.0  v0.1.0  -" + " " * (len(sha) + 1) + "-",
    ]


def test_an_unknown_model_an_unwritable_name_and_no_repository_exit_2(
        tmp_path: Path, cli: Callable[..., Any]) -> None:
    root = tmp_path / "repo"
    scenario(root)
    unknown = cli("registry", "nope", "--repo", str(root))
    assert (unknown.code, unknown.out) == (2, "")
    assert unknown.err == (f"mlproject: error: no model 'nope' in the registry of {root} (no tag "
                           "nope@vX.Y.Z or nope#STAGE#N): `mlproject registry` lists them\n")
    bad = cli("registry", "--repo", str(root), "--", "--upload-pack=x")
    assert bad.code == 2
    assert bad.err == ("mlproject: error: model name '--upload-pack=x' cannot be written in a registry "
                       "tag: use letters, digits, '-', '_' and '/', starting and ending with a letter "
                       "or a digit (no '//')\n")
    (tmp_path / "plain").mkdir()
    outside = cli("registry", "--repo", str(tmp_path / "plain"))
    assert outside.code == 2 and outside.err.startswith(
        f"mlproject: error: cannot read the tags of {tmp_path / 'plain'}: `git for-each-ref")


def test_an_empty_registry_says_so(tmp_path: Path, cli: Callable[..., Any]) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    assert cli("registry", "--repo", str(root)).out == (
        "no models in the registry (`mlproject promote MODEL` registers one)\n")
    assert json.loads(cli("registry", "--repo", str(root), "--json").out) == {
        "format": "mlproject.registry/1", "models": {}}


def test_the_tags_are_read_with_one_git_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    commits = scenario(root)
    from mlproject.runner.util import proc

    calls: list[list[str]] = []
    real = proc.run

    def counted(args: Any, **kwargs: Any) -> Any:
        calls.append(list(args))
        return real(args, **kwargs)

    monkeypatch.setattr(proc, "run", counted)
    assert len(registry.load(str(root))) == 7
    # the commits' times only for the models with a deprecation tag (a commit is an event)
    assert [c[:2] for c in calls] == [["git", "for-each-ref"], ["git", "log"]]
    assert calls[1][4:] == sorted({commits["c1"], commits["c4"]})  # old: c1; back: c1, c4
    git(root, "tag", "-d", "old@deprecated#2", "back@deprecated#1")
    calls.clear()
    assert registry.load(str(root))["old"].deprecated is False
    assert [c[:2] for c in calls] == [["git", "for-each-ref"]]
