"""mlproject.lock: written by `run` after each step that succeeds, byte-stable, one line per
changed metric, safe under concurrent runs, left as it was by a failed or interrupted step, and
refused (never overwritten) when it is not a lock this mlproject reads. The code digest it
holds is by content: the same files committed or not give the same digest."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git, git_init, mlproject_process
from mlproject.runner.facts import gitstate
from mlproject.runner.gitops import lockfile
from mlproject.runner.gitops.lockfile import Lock, LockEntry, LockError, UnknownRef
from mlproject.runner.state import records

# `prepare` writes what prep.src says (git-ignored: not code); `main` writes a metric from
# what score.src says, or fails, or sleeps, as told.
MAIN = ("import sys, time; s = open('score.src').read(); "
        "time.sleep(60) if s == 'sleep' else None; "
        "sys.exit(3) if s == 'fail' else None; "
        "open('metrics.yaml', 'w').write('acc: ' + s + chr(10) + 'loss: 0.5' + chr(10))")
PIPELINE = {
    "MLproject": f"""
        entry_points:
          prepare:
            parameters: {{n: {{type: float, default: 2}}}}
            command: "python -c \\"open('data.txt', 'w').write(open('prep.src').read() * int({{n}}))\\""
            outputs: [data.txt]
          main:
            needs: [prepare]
            command: "python -c \\"{MAIN}\\""
            metrics: metrics.yaml
    """,
    ".gitignore": "data.txt\nmetrics.yaml\nprep.src\nscore.src\n.mlproject/\n",
    "prep.src": "abc",
    "score.src": "0.75",
}


def _run(cli: Callable[..., Any], root: Path, *args: str, code: int = 0) -> str:
    result = cli("run", str(root), *args)
    assert result.code == code, result.err
    return str(result.err)


def _lock(root: Path) -> bytes:
    return (root / "mlproject.lock").read_bytes()


def test_the_lock_holds_each_step_and_nothing_of_the_run(cli: Callable[..., Any],
                                                         project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    _run(cli, root)
    data = json.loads(_lock(root))
    assert data["format"] == "mlproject.lock/1" and sorted(data["entries"]) == ["main", "prepare"]
    prepare, main = data["entries"]["prepare"], data["entries"]["main"]
    assert sorted(prepare) == ["code", "command", "data", "environment", "fingerprint",
                               "metrics", "outputs", "parameters", "received"]
    assert prepare["parameters"] == {"n": "2"}
    assert prepare["command"] == "python -c \"open('data.txt', 'w').write(open('prep.src')." \
                                 "read() * int(2))\""
    assert prepare["outputs"] == {"data.txt": hashlib.md5(b"abcabc").hexdigest()}
    assert main["metrics"] == {"acc": 0.75, "loss": 0.5}
    assert main["received"]["upstream"] == {"prepare": prepare["outputs"]}
    assert main["environment"]["kind"] == "local" and main["environment"]["packages"] == {}
    text = _lock(root).decode()
    assert not re.search(r"\d{4}-\d\d-\d\d", text)  # no time, no run id (both hold a date)
    for word in ("run_id", "host", "started", "duration", str(root)):
        assert word not in text
    # canonical: sorted keys, indent 2, a newline at the end
    assert text == json.dumps(data, sort_keys=True, indent=2) + "\n"


def test_rerunning_changes_no_byte_and_a_metric_changes_one_line(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    _run(cli, root)
    first = _lock(root)
    mtime = os.stat(root / "mlproject.lock").st_mtime_ns
    err = _run(cli, root)  # prepare up to date, main (no outputs) runs again, same metrics
    assert "prepare: up to date" in err
    assert _lock(root) == first and os.stat(root / "mlproject.lock").st_mtime_ns == mtime
    _run(cli, root, "--force")  # a deterministic pipeline forced again: the same bytes
    assert _lock(root) == first
    (root / "score.src").write_text("0.8")
    _run(cli, root)
    old, new = first.decode().splitlines(), _lock(root).decode().splitlines()
    assert len(old) == len(new)
    assert [(a, b) for a, b in zip(old, new, strict=True) if a != b] == [
        ('        "acc": 0.75,', '        "acc": 0.8,')]


def test_a_failed_or_interrupted_step_leaves_its_entry_as_it_was(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    _run(cli, root)
    before = _lock(root)
    (root / "score.src").write_text("fail")
    _run(cli, root, code=3)
    assert _lock(root) == before
    (root / "score.src").write_text("sleep")
    child = mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        assert child.stderr is not None
        seen = b""
        while b"main: running" not in seen:
            line = child.stderr.readline()
            assert line, seen
            seen += line
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) == 130
    finally:
        child.kill()
        child.wait()
    assert _lock(root) == before


def test_eight_concurrent_runs_leave_a_lock_with_every_entry(project: Callable[..., Path]) -> None:
    names = [f"e{i}" for i in range(6)]
    entries = "\n".join(f"""
          {n}:
            command: "python -c \\"import time; time.sleep(0.2); open('{n}.yaml', 'w').write('v: {i}')\\""
            metrics: {n}.yaml""" for i, n in enumerate(names))
    root = git_init(project({"MLproject": f"entry_points:{entries}\n",
                             ".gitignore": "*.yaml\n.mlproject/\n"}))
    runs = [*names, "e0", "e0"]  # different entry points, and the same one three times
    children = [mlproject_process("run", ".", "-e", n, cwd=root, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for n in runs]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    lock = lockfile.read(str(root))
    assert lock is not None
    assert sorted(lock.entries) == names
    assert {n: dict(e.metrics) for n, e in lock.entries.items()} == {
        n: {"v": float(i)} for i, n in enumerate(names)}
    assert not [p for p in (root / ".mlproject").iterdir() if p.name.endswith(".tmp")]
    assert not [p for p in root.iterdir() if p.name.startswith(".mlproject.lock.")]


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _link_out(path: Path) -> None:
    outside = path.parent.parent / "elsewhere.lock"
    outside.write_text('{"format": "mlproject.lock/1", "entries": {}}\n')
    path.symlink_to(outside)


def _huge(path: Path) -> None:
    with open(path, "wb") as handle:
        handle.truncate(lockfile.MAX_BYTES + 1)  # sparse: costs no disk


CORRUPT: dict[str, tuple[Callable[[Path], None], str]] = {
    "not JSON": (lambda p: p.write_text("{not json\n"),
                 "{lock} is not JSON (line 1 column 2: Expecting property name enclosed in double "
                 "quotes): fix it, or delete it and run again to write it"),
    "a list": (lambda p: p.write_text("[]\n"),
               "{lock} is not a lock: expected an object, found a list"),
    "no format": (lambda p: p.write_text('{"entries": {}}\n'),
                  "{lock} is not a lock: its format is none, expected mlproject.lock/1"),
    "newer": (lambda p: p.write_text('{"format": "mlproject.lock/2", "entries": {}}\n'),
              "{lock} has format mlproject.lock/2, newer than this mlproject reads "
              "(mlproject.lock/1): upgrade mlproject"),
    "wrong entry": (lambda p: p.write_text(
        '{"format": "mlproject.lock/1", "entries": {"main": {"fingerprint": 1}}}\n'),
        "{lock}: entry 'main': 'code' is missing"),
    "conflict": (lambda p: p.write_text('<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> b\n'),
                 "{lock} holds Git conflict markers: resolve the conflict (or delete the entries "
                 "in conflict) and run the steps again to write them"),
    "FIFO": (_fifo, "{lock} is a FIFO: the lock is a regular file (remove it, and run again to "
                    "write one)"),
    "link out": (_link_out, "{lock} is a link to {outside}, outside the project: the lock is a "
                            "file of the project (replace the link with the file)"),
    "huge": (_huge, f"{{lock}} is {lockfile.MAX_BYTES + 1} bytes, over the 64 MiB a lock can "
                    "be: it is not one"),
    "not UTF-8": (lambda p: p.write_bytes(b'{"format": "\xff"}'),
                  "{lock} is not UTF-8 text (byte 12): it is not a lock"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_a_lock_that_is_not_one_is_refused_and_never_overwritten(
        case: str, cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    path = root / "mlproject.lock"
    make, message = CORRUPT[case]
    make(path)
    before = os.lstat(path)
    expected = message.format(lock=path, outside=root.parent / "elsewhere.lock")
    result = cli("run", str(root))
    assert result.code == 2
    assert result.err == f"mlproject: error: cannot start:\n{expected}\n"  # nothing ran
    status = cli("status", str(root))
    assert (status.code, status.err) == (2, f"mlproject: error: {expected}\n")
    after = os.lstat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == \
        (before.st_ino, before.st_size, before.st_mtime_ns)
    assert not (root / "data.txt").exists()


def test_update_refuses_a_lock_that_turned_corrupt_and_keeps_it(tmp_path: Path) -> None:
    (tmp_path / "mlproject.lock").write_text("oops")
    entry = LockEntry("f", {}, "c", "d", {"name": "local", "kind": "local"}, {}, {}, {})
    with pytest.raises(LockError, match="is not JSON"):
        lockfile.update(str(tmp_path), "main", entry)
    assert (tmp_path / "mlproject.lock").read_text() == "oops"
    (tmp_path / "mlproject.lock").unlink()
    lockfile.update(str(tmp_path), "main", entry)
    lockfile.update(str(tmp_path), "other", entry)
    found = lockfile.read(str(tmp_path))
    assert found == Lock({"main": entry, "other": entry})


def test_parse_reads_back_what_to_text_writes_and_nothing_else() -> None:
    entry = LockEntry("f", {"lr": "0.1"}, "python t.py", "d",
                      {"name": "py", "kind": "python", "key": "k", "input": "k", "digest": "p",
                       "packages": {"numpy": "2.0.0"}},
                      {"train": {"path": "d.csv", "md5": "m", "size": 3, "nfiles": None,
                                 "repo": None, "rev": None, "sha": "s"}},
                      {"model.pt": "abc", "gone": None}, {"acc": 0.5, "n": 3},
                      {"paths": {}, "upstream": {"prep": {"x": "y"}}})
    text = Lock({"b": entry, "a": entry}).to_text()
    assert lockfile.parse(text, "x").to_text() == text
    assert text.index('"a"') < text.index('"b"')
    data = json.loads(text)
    data["entries"]["a"]["extra"] = 1
    with pytest.raises(LockError) as raised:
        lockfile.parse(json.dumps(data), "L")
    assert str(raised.value) == "L: entry 'a': unknown key 'extra' (a newer mlproject wrote it?)"
    del data["entries"]["a"]["extra"]
    data["entries"]["a"]["metrics"]["acc"] = True
    with pytest.raises(LockError) as raised:
        lockfile.parse(json.dumps(data), "L")
    assert str(raised.value) == "L: entry 'a'.metrics: expected numbers, found a boolean"
    with pytest.raises(LockError) as raised:
        lockfile.parse('{"format": "mlproject.lock/1", "format": "x", "entries": {}}', "L")
    assert str(raised.value) == "L is not a lock: the key 'format' appears twice"


def test_at_ref_reads_the_committed_lock_without_a_checkout(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({**PIPELINE}))
    assert lockfile.at_ref(str(root), "HEAD") is None  # no lock at that commit
    _run(cli, root)
    git(root, "add", "mlproject.lock")
    git(root, "commit", "-q", "-m", "lock")
    committed = lockfile.read(str(root))
    (root / "score.src").write_text("0.9")
    _run(cli, root)
    assert lockfile.at_ref(str(root), "HEAD") == committed != lockfile.read(str(root))
    assert lockfile.at_ref(str(root), "HEAD~1") is None
    with pytest.raises(UnknownRef) as raised:
        lockfile.at_ref(str(root), "no-such-branch")
    assert str(raised.value) == (f"unknown revision 'no-such-branch': Git knows no commit of "
                                 f"that name in {root} (fetch it first? `git fetch origin "
                                 "no-such-branch`)")
    with pytest.raises(UnknownRef):
        lockfile.at_ref(str(root), "--output=x")


def test_at_ref_finds_the_lock_of_a_project_in_a_subdirectory(
        cli: Callable[..., Any], tmp_path: Path) -> None:
    from conftest import write_project

    repo = tmp_path / "repo"
    root = write_project(repo / "sub", PIPELINE)
    git_init(repo, commit=False)
    _run(cli, root)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "all")
    assert lockfile.at_ref(str(root), "HEAD") == lockfile.read(str(root)) is not None


@pytest.mark.parametrize("where", ["", "sub"])
def test_the_code_digest_is_the_same_committed_or_not(tmp_path: Path, where: str) -> None:
    repo = tmp_path / "repo"
    root = repo / where
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("print(1)\n")
    (root / "pkg" / "tool.sh").write_text("echo\n")
    os.chmod(root / "pkg" / "tool.sh", 0o755)
    (root / "link").symlink_to("train.py")
    git_init(repo, commit=False)
    before = gitstate.code_state(str(root))
    assert before.commit is None and before.changes
    # what a step writes, mlproject's state and the lock itself are not code
    (root / "mlproject.lock").write_text("{}")
    (root / "model.bin").write_text("weights")
    (root / ".mlproject").mkdir()
    (root / ".mlproject" / "x").write_text("state")
    digest = before.digest(["model.bin"])
    assert gitstate.code_state(str(root)).digest(["model.bin"]) == digest
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "everything")
    after = gitstate.code_state(str(root))
    assert after.commit and not after._kept(["model.bin"])
    assert after.digest(["model.bin"]) == digest
    (root / "train.py").write_text("print(2)\n")
    assert gitstate.code_state(str(root)).digest(["model.bin"]) != digest
    (root / "train.py").write_text("print(1)\n")
    os.chmod(root / "pkg" / "tool.sh", 0o644)  # a mode Git records is code
    assert gitstate.code_state(str(root)).digest(["model.bin"]) != digest
    os.chmod(root / "pkg" / "tool.sh", 0o755)
    (root / "train.py").unlink()
    assert gitstate.code_state(str(root)).digest(["model.bin"]) != digest


def test_a_lock_spoilt_while_the_step_ran_is_kept_and_the_run_fails(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": """
        entry_points:
          main:
            command: "python -c \\"open('mlproject.lock', 'w').write('spoilt')\\""
    """}))
    result = cli("run", str(root))
    assert result.code == 2  # the step succeeded; what Git would hold of it is not written
    path = root / "mlproject.lock"
    last = result.err.splitlines()[-1]
    assert last.startswith("mlproject: main: failed in ") and last.endswith(
        f"exit code 2: its entry in the lock is not written: {path} is not JSON (line 1 column 1: "
        "Expecting value): fix it, or delete it and run again to write it "
        f"(run {last.rsplit('(run ', 1)[1]}"), last
    assert path.read_text() == "spoilt"
    [run] = records.list_runs(str(root))  # the record says the same
    assert (run["status"], run["exit_code"]) == ("failed", 2)
