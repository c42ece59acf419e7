"""An unexpected exception ends in one line, a crash log holding the traceback, and exit 70."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Result, mlproject_process
from mlproject.runner.cli import runs_cmd, schema_cmd
from mlproject.runner.util import exitcodes

LINE = re.compile(r"mlproject: internal error: (?P<what>.*) \(while running `mlproject (?P<verb>[^`]*)`\); "
                  r"the traceback is in (?P<path>\S+); please report it\n")


def _bug(args: argparse.Namespace) -> int:
    raise KeyError("the answer\nspread over lines")


def _crash(result: Result) -> tuple[re.Match[str], str]:
    match = LINE.fullmatch(result.err)
    assert match, result.err
    return match, Path(match["path"]).read_text()


def test_internal_error_is_one_line_a_log_and_its_own_code(
        cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema_cmd, "main", _bug)
    result = cli("schema")
    assert result.code == exitcodes.INTERNAL == 70
    assert result.out == ""
    match, log = _crash(result)
    assert match["what"] == "KeyError: 'the answer\\nspread over lines'"
    assert match["verb"] == "schema"
    path = Path(match["path"])
    assert path.parent == Path(os.environ["MLPROJECT_CACHE_DIR"]) / "crash"
    assert re.fullmatch(rf"\d{{8}}-\d{{6}}\.\d{{6}}-{os.getpid()}\.log", path.name)
    assert "argv: ['mlproject', 'schema']\n" in log
    assert "mlproject: 0.1.0\n" in log and "python: 3." in log and "platform: " in log
    assert "Traceback (most recent call last):" in log
    assert 'raise KeyError("the answer\\nspread over lines")' in log  # the line that raised
    assert log.rstrip().endswith("KeyError: 'the answer\\nspread over lines'")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_the_verb_named_is_the_sub_verb_too(cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(runs_cmd, "main", _bug)
    match, _ = _crash(cli("runs", "show", "abc", "--project", str(tmp_path)))
    assert match["verb"] == "runs show"


def test_log_falls_back_to_the_temporary_directory(cli: Callable[..., Result],
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("MLPROJECT_CACHE_DIR", str(tmp_path / "file" / "cache"))  # cannot be created
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(schema_cmd, "main", _bug)
    result = cli("schema")
    assert result.code == exitcodes.INTERNAL
    match, log = _crash(result)
    assert Path(match["path"]).parent == tmp_path / "tmp"
    assert "KeyError" in log


def test_no_log_at_all_is_said(cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch,
                               tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("MLPROJECT_CACHE_DIR", str(tmp_path / "file" / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    monkeypatch.setattr(schema_cmd, "main", _bug)
    result = cli("schema")
    assert result.code == exitcodes.INTERNAL
    assert result.err.startswith("mlproject: internal error: KeyError: ")
    assert "; no crash log could be written (" in result.err
    assert result.err.endswith("; please report it\n") and result.err.count("\n") == 1


def test_debug_raises_the_real_exception(cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPROJECT_DEBUG", "1")
    monkeypatch.setattr(schema_cmd, "main", _bug)
    with pytest.raises(KeyError, match="the answer"):
        cli("schema")
    assert not (Path(os.environ["MLPROJECT_CACHE_DIR"]) / "crash").exists()


def test_interrupt_and_usage_keep_their_codes(cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(schema_cmd, "main", interrupted)
    assert cli("schema").code == exitcodes.INTERRUPTED == 130
    with pytest.raises(SystemExit) as exit_info:
        cli("no-such-verb")
    assert exit_info.value.code == exitcodes.USAGE == 2


def _full_stdout(tmp_path: Path) -> tuple[int, str]:
    """A real failure, not a patched one: results written to a device that is full."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    with open("/dev/full", "wb") as full:
        child = mlproject_process("schema", cwd=tmp_path, stdout=full, stderr=subprocess.PIPE)
        _, err = child.communicate(timeout=60)
    return child.returncode, err.decode()


def test_a_real_process_ends_in_one_line_and_exit_70(tmp_path: Path) -> None:
    code, err = _full_stdout(tmp_path)
    assert code == 70
    match, log = _crash(Result(code, "", err))
    assert match["what"] == "OSError: [Errno 28] No space left on device"
    assert "Traceback (most recent call last):" in log and "schema_cmd.py" in log
    assert log.rstrip().endswith("OSError: [Errno 28] No space left on device")


def test_a_real_process_with_debug_shows_the_traceback(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPROJECT_DEBUG", "1")
    code, err = _full_stdout(tmp_path)
    assert code == 70
    assert "Traceback (most recent call last):" in err and "schema_cmd.py" in err
    assert "internal error" not in err
    assert not (Path(os.environ["MLPROJECT_CACHE_DIR"]) / "crash").exists()
