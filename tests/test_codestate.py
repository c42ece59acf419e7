"""The code state by content: a tree listed once is read from the user cache after, and a
cache entry that does not read back is listed again."""
from __future__ import annotations

from pathlib import Path

from conftest import git, git_init, write_project
from mlproject.runner.facts import gitstate
from mlproject.runner.util.files import cache_root


def test_a_listed_tree_is_cached_and_a_broken_entry_heals(tmp_path: Path) -> None:
    root = git_init(write_project(tmp_path / "p", {"MLproject": "entry_points: {main: {command: echo}}\n",
                                                     "train.py": "print(1)\n"}))
    first = gitstate.code_state(str(root))
    assert first.tree is not None
    [entry] = (cache_root() / "trees").glob("*.z")
    assert entry.name == f"{first.tree}.z"
    good = entry.read_bytes()
    assert gitstate.code_state(str(root)).digest() == first.digest()
    for broken in (b"", good[:-5], b"100644 blob nothex\tx\0end\0", b"\xff\xfe" + good):
        entry.write_bytes(broken)
        assert gitstate.code_state(str(root)).digest() == first.digest()  # listed again
        assert entry.read_bytes() == good  # and rewritten whole


def test_the_lock_and_the_state_dir_are_not_hashed_and_not_code(tmp_path: Path) -> None:
    root = git_init(write_project(tmp_path / "p", {"MLproject": "entry_points: {main: {command: echo}}\n"}))
    before = gitstate.code_state(str(root)).digest()
    (root / "mlproject.lock").write_text("{}\n")
    state = gitstate.code_state(str(root))
    assert state.changes["mlproject.lock"] == "excluded"
    assert state.digest() == before
    git(root, "add", "mlproject.lock")
    git(root, "commit", "-qm", "lock")
    assert gitstate.code_state(str(root)).digest() == before  # committed: still not code
