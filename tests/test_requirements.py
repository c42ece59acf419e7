"""Reading requirement files and locks: what is pinned, hashed, included, and what is not."""
from __future__ import annotations

from pathlib import Path

import pytest
from mlproject.runner.envs import requirements
from mlproject.runner.envs.base import EnvError

A, B, C = ("sha256:" + c * 64 for c in "abc")


def test_pins_hashes_markers_and_continuations(tmp_path: Path) -> None:
    text = f"""
# comment
--index-url https://example.org/simple
Foo_Bar==1.0 \\
    --hash={B} \\
    --hash={A}   # trailing comment
baz[Extra]==2.0 ; python_version < "3.12" --hash={C}
"""
    found = requirements.parse(text, tmp_path / "requirements.txt")
    assert found.locked and found.hashed and found.is_lock
    assert [p.to_json() for p in found.pins] == [
        ["baz", "2.0", [C], 'python_version < "3.12"', ["extra"]],
        ["foo-bar", "1.0", [A, B], None],
    ]
    assert found.options == ("--index-url https://example.org/simple",)
    flat = found.as_lock()
    assert flat.splitlines() == [
        "--index-url https://example.org/simple",
        f'baz[extra]==2.0 ; python_version < "3.12" --hash={C}',
        f"foo-bar==1.0 --hash={A} --hash={B}",
    ]


def test_loose_requirements_make_it_no_lock(tmp_path: Path) -> None:
    found = requirements.parse("numpy>=1.26\npandas==2.2.2\n-e ./local\n", tmp_path / "r.txt")
    assert not found.locked
    assert found.loose == ("numpy>=1.26", "-e ./local")
    assert found.names == ("numpy", "pandas")
    pinned = requirements.parse("six==1.16.0\n", tmp_path / "r.txt")
    assert pinned.locked and not pinned.hashed and not pinned.is_lock


def test_includes_are_followed_and_cycles_refused(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.16.0\n")
    (tmp_path / "main.txt").write_text("-r base.txt\n-c constraints.txt\nidna==3.7\n")
    (tmp_path / "constraints.txt").write_text("idna<4\ncertifi==1\n")  # narrows, installs nothing
    found = requirements.read(tmp_path / "main.txt")
    assert [p.name for p in found.pins] == ["idna", "six"]
    (tmp_path / "loop.txt").write_text("-r loop.txt\n")
    with pytest.raises(EnvError, match=r"loop\.txt:1: -r loop\.txt includes itself"):
        requirements.read(tmp_path / "loop.txt", tmp_path)
    (tmp_path / "broken.txt").write_text("\n-r missing.txt\n")
    with pytest.raises(EnvError, match=r"^broken\.txt:2: cannot read .*missing\.txt"):
        requirements.read(tmp_path / "broken.txt", tmp_path)


def test_pylock_toml(tmp_path: Path) -> None:
    (tmp_path / "pylock.toml").write_text("""
lock-version = "1.0"
created-by = "test"
[[packages]]
name = "Six"
version = "1.16.0"
[[packages.wheels]]
url = "https://example.org/six-1.16.0-py2.py3-none-any.whl"
hashes = {sha256 = "aaa"}
""")
    found = requirements.read(tmp_path / "pylock.toml")
    assert found.locked and found.hashed
    assert [p.to_json() for p in found.pins] == [["six", "1.16.0", ["sha256:aaa"], None]]
    (tmp_path / "pylock.toml").write_text("not = [toml")
    with pytest.raises(EnvError, match="not valid TOML"):
        requirements.read(tmp_path / "pylock.toml")
