"""Outputs and the paths an MLproject names: every layout hashes or is refused with a reason,
never a hang or a traceback; paths stay inside the project; a linked MLproject runs where the
user named it. Hostile layouts are hashed in a child process, so a hang fails, not blocks."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init, mlproject_process
from mlproject.runner.state import records

_SURVEY = """
import json, sys
from mlproject.runner.state.uptodate import survey
found = survey(sys.argv[1], tuple(sys.argv[2:]))
print(json.dumps({"hashes": found.hashes, "problems": found.problems}))
"""


def survey(root: Path, *outputs: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _SURVEY, str(root), *outputs], timeout=60,
                          capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def md5_of(root: Path, output: str) -> str:
    found = survey(root, output)
    assert found["problems"] == {}, found
    return str(found["hashes"][output]["md5"])


def _only_record(root: Path) -> dict[str, Any]:
    [record] = records.list_runs(str(root))
    return record


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was not written within {timeout}s"
        time.sleep(0.05)


# --- links inside an output are hashed as links ---------------------------------------------


def test_links_of_every_kind_inside_an_output_hash_as_links(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "model.bin").write_bytes(b"weights")
    (out / "latest").symlink_to("model.bin")
    (out / "dangling").symlink_to("no-such-file")
    (out / "loop").symlink_to("loop")
    (out / "sub" / "up").symlink_to("..")  # a directory link that loops back
    (out / "etc").symlink_to("/etc")  # out of the project: never followed
    found = survey(tmp_path, "out")
    assert found["problems"] == {}
    assert found["hashes"]["out"]["nfiles"] == 6
    first = found["hashes"]["out"]["md5"]
    assert first.endswith(".dir") and md5_of(tmp_path, "out") == first  # stable

    (out / "latest").unlink()
    (out / "latest").symlink_to("sub")  # another target: another hash
    second = md5_of(tmp_path, "out")
    assert second != first
    (out / "latest").unlink()
    (out / "latest").write_text("sub")  # a file holding the link's text is not the link
    assert md5_of(tmp_path, "out") not in (first, second)


def test_an_output_that_is_itself_a_link_is_hashed_as_one(tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "model").symlink_to("v1")
    (tmp_path / "broken").symlink_to("nowhere")
    (tmp_path / "self").symlink_to("self")
    found = survey(tmp_path, "model", "broken", "self")
    assert found["problems"] == {}
    hashes = found["hashes"]
    assert all(h["md5"].endswith(".link") and h["nfiles"] == 1 for h in hashes.values())
    assert len({h["md5"] for h in hashes.values()}) == 3


def test_special_files_are_refused_with_a_reason_and_never_opened(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "pipe")  # opened for reading, it would block until a writer comes
    assert survey(tmp_path, "out")["problems"] == {"out": (
        "output 'out': out/pipe is a FIFO (named pipe): only regular files, directories and "
        "links are hashed (special files are never opened: reading one can block forever)")}
    os.unlink(out / "pipe")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(out / "sock"))
    try:
        assert "out/sock is a socket" in survey(tmp_path, "out")["problems"]["out"]
    finally:
        server.close()
    os.unlink(out / "sock")
    os.mkfifo(tmp_path / "top-pipe")
    assert "top-pipe is a FIFO" in survey(tmp_path, "top-pipe")["problems"]["top-pipe"]
    assert survey(tmp_path, "top-pipe")["hashes"] == {"top-pipe": None}


def test_a_device_inside_an_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    try:
        os.mknod(tmp_path / "out" / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("this sandbox does not allow mknod")
    assert "out/null is a character device" in survey(tmp_path, "out")["problems"]["out"]


def test_names_that_are_not_utf8_hash_stably_and_show_in_messages(tmp_path: Path) -> None:
    out = os.path.join(os.fsencode(tmp_path), b"out")
    os.mkdir(out)
    with open(os.path.join(out, b"caf\xe9.bin"), "wb") as handle:
        handle.write(b"latin-1 name")
    os.symlink(b"caf\xe9.bin", os.path.join(out, b"\xff-link"))
    first = md5_of(tmp_path, "out")
    assert md5_of(tmp_path, "out") == first
    os.mkfifo(os.path.join(out, b"\xfe-pipe"))
    assert "out/\\xfe-pipe is a FIFO" in survey(tmp_path, "out")["problems"]["out"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode: chmod "
                    "cannot make one unreadable")
def test_an_unreadable_file_is_a_reason_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "secret").write_text("x")
    (tmp_path / "out" / "secret").chmod(0)
    assert "permission denied" in survey(tmp_path, "out")["problems"]["out"].lower()


def test_an_output_through_a_link_out_of_the_project_is_refused(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    (root / "inside").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "model.txt").write_text("m")
    (root / "out").symlink_to(elsewhere)
    (root / "ext").symlink_to(elsewhere / "model.txt")
    (root / "in").symlink_to("inside")  # a link that stays inside the project is fine
    (root / "inside" / "m.txt").write_text("m")
    found = survey(root, "out/model.txt", "ext", "in/m.txt")
    assert found["problems"] == {
        "out/model.txt": f"output 'out/model.txt' goes through the link 'out' -> '{elsewhere}', "
                         "which leaves the project: outputs are written inside it",
        "ext": f"output 'ext' is the link 'ext' -> '{elsewhere / 'model.txt'}', which leaves the "
               "project: outputs are written inside it"}
    assert found["hashes"]["out/model.txt"] is None and found["hashes"]["in/m.txt"]["md5"]


# --- through the CLI --------------------------------------------------------------------------


def _outputs_project(project: Callable[..., Path], command: str, outputs: str = "[out]") -> Path:
    return git_init(project({
        "MLproject": f"entry_points:\n  main:\n    command: {json.dumps(command)}\n"
                     f"    outputs: {outputs}\n",
        ".gitignore": "out\n",
    }))


def test_a_step_that_writes_links_succeeds_and_is_then_up_to_date(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _outputs_project(project, "mkdir -p out/d && echo w > out/w && ln -sfn w out/file-link"
                            " && ln -sfn d out/dir-link && ln -sfn gone out/dangling"
                            " && ln -sfn /etc out/abs")
    first = cli("run", str(root))
    assert first.code == 0, first.err
    record = _only_record(root)
    assert record["status"] == "succeeded" and record["outputs"]["out"]["nfiles"] == 5
    assert "main: up to date" in cli("run", str(root)).err


def test_a_fifo_in_an_output_fails_the_step_and_never_hangs(project: Callable[..., Path]) -> None:
    root = _outputs_project(project, "mkdir -p out && mkfifo out/pipe")
    child = mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 1
    assert b"out/pipe is a FIFO (named pipe)" in err
    record = _only_record(root)
    assert record["status"] == "failed" and record["outputs"] == {"out": None}
    assert "out/pipe is a FIFO" in record["reason"]


def test_sigterm_stops_a_step_whose_output_holds_a_fifo(project: Callable[..., Path]) -> None:
    root = _outputs_project(project, "mkdir -p out && mkfifo out/pipe && touch ready && sleep 120")
    child = mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        _wait_for(root / "ready")
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 130  # before: blocked opening out/pipe, deaf to TERM
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert _only_record(root)["status"] == "interrupted"


def test_an_output_through_a_link_out_of_the_project_fails_the_step(
        cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = _outputs_project(project, "echo m > out/model.txt", "[out/model.txt]")
    (root / "out").symlink_to(elsewhere)
    result = cli("run", str(root))
    assert result.code == 1
    assert f"output 'out/model.txt' goes through the link 'out' -> '{elsewhere}'" in result.err
    assert _only_record(root)["status"] == "failed"
    assert "up to date" not in cli("run", str(root)).err


def test_a_same_size_edit_with_the_mtime_put_back_makes_the_step_run_again(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _outputs_project(project, "mkdir -p out && echo model-v1 > out/m.txt")
    assert cli("run", str(root)).code == 0
    model = root / "out" / "m.txt"
    old = time.time_ns() - 60 * 10**9  # old enough for its hash to be remembered by stat
    os.utime(model, ns=(old, old))
    assert "main: up to date" in cli("run", str(root)).err  # remembered now
    with open(model, "r+b") as handle:  # same inode, same size
        handle.write(b"MODEL-V9")
    os.utime(model, ns=(old, old))
    again = cli("run", str(root))
    assert "main: running" in again.err, again.err
    assert model.read_bytes() == b"model-v1\n"


# --- paths that leave the project are refused at validation ---------------------------------


@pytest.mark.parametrize(("value", "why"), [
    ("/etc/passwd", "is an absolute path"),
    ("../x", "leaves the project ('..' climbs out of its directory)"),
    ("a/../../x", "leaves the project ('..' climbs out of its directory)"),
    ("..", "leaves the project ('..' climbs out of its directory)"),
    ("~/x", "starts with '~', a home directory ('~' is not expanded)"),
    (".", "is the project directory itself"),
    ("a/..", "is the project directory itself"),
    ("./", "is the project directory itself"),
    (" ", "is blank"),
    (".git/hooks/pre-commit", "is inside a Git directory (.git)"),
    ("sub/.git", "is inside a Git directory (.git)"),
    (".mlproject/runs", "is inside .mlproject, where mlproject keeps its runs and caches"),
    ("a\0b", "contains a NUL byte"),
])
def test_paths_that_leave_the_project_are_located_errors(
        cli: Callable[..., Any], project: Callable[..., Path], value: str, why: str) -> None:
    quoted = json.dumps(value)
    root = project({"MLproject": f"""
        data:
          raw: {{path: {quoted}}}
        entry_points:
          main:
            command: "true"
            outputs: [ok.txt, {quoted}]
            metrics: {quoted}
    """})
    result = cli("validate", str(root))
    assert result.code == 2
    shown = repr(value)
    assert result.err.splitlines() == [
        f"{root / 'MLproject'}:2:15: data.raw.path: {shown} {why}: data paths are paths inside "
        "the project, relative to its directory",
        f"{root / 'MLproject'}:6:23: entry_points.main.outputs[1]: {shown} {why}: outputs are "
        "paths inside the project, relative to its directory",
        f"{root / 'MLproject'}:7:14: entry_points.main.metrics: {shown} {why}: metrics files "
        "are paths inside the project, relative to its directory",
    ]


def test_an_empty_output_path_is_a_located_error(cli: Callable[..., Any],
                                                  project: Callable[..., Path]) -> None:
    root = project({"MLproject": 'entry_points:\n  main: {command: "true", outputs: [""]}\n'})
    result = cli("validate", str(root))
    assert result.code == 2
    assert result.err == f"{root / 'MLproject'}:2:37: entry_points.main.outputs[0]: '' should be " \
                         "non-empty\n"


@pytest.mark.parametrize("value", ["out", "a/./b", "a/../b", "models/v1/", ".hidden/x", "..x",
                                   "x..", "tilde~"])
def test_paths_inside_the_project_stay_valid(cli: Callable[..., Any], project: Callable[..., Path],
                                             value: str) -> None:
    root = project({"MLproject": f"entry_points:\n  main: {{command: 'true', outputs: "
                                 f"[{json.dumps(value)}]}}\n"})
    assert cli("validate", str(root)).code == 0


# --- a linked MLproject runs where the user named it ----------------------------------------


_WHERE = "python -c \\\"import os; open('where.txt', 'w').write(os.getcwd())\\\""


def test_a_linked_mlproject_runs_in_the_directory_of_the_link(
        cli: Callable[..., Any], tmp_path: Path) -> None:
    shared, root = tmp_path / "shared", tmp_path / "proj"
    shared.mkdir()
    root.mkdir()
    (shared / "MLproject").write_text(f'entry_points:\n  main: {{command: "{_WHERE}"}}\n')
    (root / "MLproject").symlink_to(shared / "MLproject")
    assert cli("run", str(root)).code == 0
    assert (root / "where.txt").read_text() == str(root)
    assert not (shared / "where.txt").exists() and not (shared / ".mlproject").exists()
    record = _only_record(root)
    assert record["project"] == str(root) and record["spec"] == str(root / "MLproject")
    assert cli("run", str(root / "MLproject")).code == 0  # the file named directly: the same
    assert len(records.list_runs(str(root))) == 2


def test_a_project_directory_that_is_a_link_keeps_the_name_given(
        cli: Callable[..., Any], tmp_path: Path) -> None:
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    (real / "MLproject").write_text(f'entry_points:\n  main: {{command: "{_WHERE}"}}\n')
    link.symlink_to(real)
    assert cli("run", str(link)).code == 0
    record = _only_record(link)
    assert record["project"] == str(link) and record["spec"] == str(link / "MLproject")
    assert os.path.samefile((real / "where.txt").read_text(), real)
