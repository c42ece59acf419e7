"""Files mlproject reads but did not just write itself (run records, the spec caches, the
up-to-date index, the stat cache, metrics files, file names) can hold anything: whatever they
hold, no command ends in a traceback, a bad one never hides the good ones, and a broken cache
entry heals. Also `mlproject init` never overwrites, shadows or writes through a link."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init, mlproject_process, write_project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlproject.runner.facts.gitstate import CodeState
from mlproject.runner.state import metrics, records
from mlproject.runner.state.speccache import built_spec
from mlproject.runner.state.speccache import load_cached as load  # the cache is what is tested
from mlproject.runner.state.status import Status
from mlproject.runner.util.files import cache_root

TRIVIAL = {"MLproject": """
    name: t
    entry_points:
      main:
        command: "python -c 'open(\\"out.txt\\", \\"w\\").write(\\"x\\")'"
        outputs: [out.txt]
"""}


def _metrics_project(metrics_name: str = "m.json", exit_code: int = 0) -> dict[str, str]:
    """A step that copies `src.bin` (written by the test) to its metrics file."""
    return {"MLproject": f"""
        entry_points:
          main:
            command: "python copy.py"
            metrics: {metrics_name}
        """, "copy.py": f"""
        import shutil, sys
        shutil.copy("src.bin", {metrics_name!r})
        sys.exit({exit_code})
        """}


def mlproject(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A real process with a strict UTF-8 stdout, as PYTHONIOENCODING=utf-8 or an en_US.UTF-8
    locale gives: a name that is not UTF-8 must not end printing in a UnicodeEncodeError."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, "-m", "mlproject.runner", *args], cwd=cwd, env=env,
                          capture_output=True, timeout=timeout, check=False)
    out = done.stdout.decode("utf-8", "surrogateescape")
    err = done.stderr.decode("utf-8", "surrogateescape")
    assert "Traceback" not in err, err
    return subprocess.CompletedProcess(done.args, done.returncode, out, err)


def _records(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(records.runs_dir(str(root)).glob("*/run.json"))]


# -- file names that are not UTF-8 ------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("in_git", [True, False])
def test_names_that_are_not_utf8_anywhere_in_the_project(tmp_path: Path, in_git: bool) -> None:
    base = os.fsdecode(bytes(tmp_path) + b"/r\xfe")
    os.mkdir(base)
    root = Path(base) / os.fsdecode(b"sub\xfd")  # the project directory itself
    write_project(root, TRIVIAL)
    if in_git:
        git_init(Path(base))
    (root / os.fsdecode(b"data\xff.txt")).write_text("x")
    os.symlink(os.fsdecode(b"target\xfa"), root / "link")
    (root / os.fsdecode(b"dir\xfb")).mkdir()
    (root / os.fsdecode(b"dir\xfb") / os.fsdecode(b"f\xfc")).write_text("y")
    plan = mlproject("plan", "--json", cwd=root)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["steps"][0]["code"]["kind"] == ("git" if in_git else "files")
    assert mlproject("plan", cwd=root).returncode == 0
    assert mlproject("validate", cwd=root).returncode == 0
    ran = mlproject("run", ".", cwd=root)
    assert ran.returncode == 0, ran.stderr
    [record] = _records(root)
    assert record["status"] == "succeeded"
    listed = mlproject("runs", cwd=root)
    assert listed.returncode == 0 and record["id"] in listed.stdout
    shown = mlproject("runs", "show", record["id"], cwd=root)
    assert shown.returncode == 0 and "succeeded" in shown.stdout
    assert mlproject("runs", "--json", cwd=root).returncode == 0
    assert "up to date" in mlproject("run", ".", cwd=root).stderr  # the fingerprint is stable


def test_the_code_digest_keeps_names_that_are_not_utf8_apart() -> None:
    names = [os.fsdecode(b"a\xff"), os.fsdecode(b"a\xfe"), "a\\xff", "a\udcff".encode(
        "utf-8", "surrogateescape").decode("latin-1"), "a"]
    digests = {CodeState("files", changes={name: "h"}).digest() for name in names}
    assert len(digests) == len(names)


def test_messages_show_bytes_that_are_not_utf8_as_escapes(tmp_path: Path) -> None:
    missing = os.fsdecode(b"nowhere\xff")
    done = mlproject("validate", missing, cwd=tmp_path)
    assert done.returncode == 2
    assert "nowhere\\xff: no such file or directory" in done.stderr


# -- the caches of the user cache directory ---------------------------------------------------

WARNED = {"MLproject": """
    entry_points:
      main:
        command: "python -c pass"
        unknown_key: 1
"""}


def _validated_entries() -> list[Path]:
    return sorted((cache_root() / "validated").glob("*.json"))


def _drop_built_specs() -> None:
    for entry in (cache_root() / "specs").glob("*.json"):
        entry.unlink()


@pytest.mark.parametrize("body", [
    '[{"line": 1}]', '[{"line": 1, "col": 2, "path": 5, "message": "m"}]', '{"a": 1}', '"x"',
    '[1, 2]', "[" * 5000, b"\xff\xfe", "", '[{"line": "1", "col": 1, "path": [], "message": 3}]',
    '[{"line": 1, "col": 1, "path": [{}], "message": "m"}]'])
def test_a_corrupt_validated_entry_is_validated_again_and_healed(
        cli: Callable[..., Any], project: Callable[..., Path], body: str | bytes) -> None:
    root = project(WARNED)
    first = cli("validate", str(root))
    assert first.code == 0 and "unknown_key" in first.err
    [entry] = _validated_entries()
    good = entry.read_bytes()
    entry.write_bytes(body.encode() if isinstance(body, str) else body)
    _drop_built_specs()  # else the built spec is used and the entry never read
    again = cli("validate", str(root))
    assert again.code == 0 and "unknown_key" in again.err
    assert entry.read_bytes() == good  # healed: written anew


def _spec_entries() -> list[Path]:
    return sorted((cache_root() / "specs").glob("*.json"))


def _respelled(text: str, change: Callable[[dict[str, Any]], None]) -> bytes:
    """A built-spec entry with one change made to its decoded spec."""
    data = json.loads(text)
    change(data["spec"])
    return json.dumps(data).encode()


def _main_entry(spec: dict[str, Any]) -> dict[str, Any]:
    [[name, main]] = spec["entry_points"]
    assert name == "main"
    return dict(main)


_CORRUPTIONS: dict[str, Callable[[str], bytes]] = {
    "bytes": lambda good: b"not json \xff",
    "truncated": lambda good: good.encode()[:40],
    "dict": lambda good: b'{"file": "x"}',
    "other-format": lambda good: good.replace('"format":1,"spec"', '"format":2,"spec"').encode(),
    "bool-format": lambda good: good.replace('"format":1,"spec"', '"format":true,"spec"').encode(),
    "deep": lambda good: b"[" * 100000,
    "wrong-field": lambda good: _respelled(good, lambda s: s.update(entry_points=5)),
    "missing-field": lambda good: _respelled(good, lambda s: s.pop("digest")),
    "extra-field": lambda good: _respelled(good, lambda s: s.update(extra=1)),
    "repeated-key": lambda good: _respelled(
        good, lambda s: s.update(entry_points=s["entry_points"] * 2)),
    "wrong-inner": lambda good: _respelled(good, lambda s: s["entry_points"][0][1].update(
        outputs=["out.txt", 3])),
    "wrong-literal": lambda good: _respelled(good, lambda s: s["warnings"].append({
        "file": "f", "line": 1, "col": 1, "path": [], "message": "m", "severity": "fatal"})),
    "wrong-placeholder": lambda good: _respelled(good, lambda s: s["entry_points"][0][1].update(
        template=[{"name": "x", "context": "backtick"}])),
    "bool-for-int": lambda good: _respelled(good, lambda s: s["warnings"].append({
        "file": "f", "line": True, "col": 1, "path": [], "message": "m", "severity": "warning"})),
}


@pytest.mark.parametrize("kind", sorted(_CORRUPTIONS))
def test_a_corrupt_built_spec_is_loaded_again_and_healed(
        cli: Callable[..., Any], project: Callable[..., Path], kind: str) -> None:
    root = project(TRIVIAL)
    assert cli("validate", str(root)).code == 0
    [entry] = _spec_entries()
    good = entry.read_text(encoding="utf-8")
    corrupt = _CORRUPTIONS[kind](good)
    assert corrupt != good.encode()
    entry.write_bytes(corrupt)
    assert built_spec((root / "MLproject").read_bytes(), False) is None  # refused, removed
    assert not entry.exists()
    entry.write_bytes(corrupt)
    assert cli("validate", str(root)).code == 0
    assert cli("run", str(root)).code == 0
    assert entry.exists() and entry.read_text(encoding="utf-8") == good  # healed
    assert built_spec((root / "MLproject").read_bytes(), False) == load(root)


def test_an_old_pickle_entry_is_never_read(
        cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    """A pickle under specs/ (an older mlproject's, or planted) is ignored: no code runs."""
    root = project(TRIVIAL)
    assert cli("validate", str(root)).code == 0
    [entry] = _spec_entries()
    marker = tmp_path / "payload-ran"
    # a pickle that runs `touch MARKER` when loaded, written by hand (no pickle import here)
    payload = (b"cposix\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR.")
    for name in (entry.with_suffix(".pickle"), entry):
        name.write_bytes(payload)
    assert cli("validate", str(root)).code == 0
    assert cli("run", str(root)).code == 0
    assert not marker.exists()
    assert entry.with_suffix(".pickle").read_bytes() == payload  # ignored, not even removed
    assert entry.read_bytes() != payload  # the JSON entry healed


# -- run records ------------------------------------------------------------------------------

def _with_one_good_run(cli: Callable[..., Any], project: Callable[..., Path]) -> tuple[Path, str]:
    root = project(TRIVIAL)
    assert cli("run", str(root)).code == 0
    [record] = _records(root)
    return root, record["id"]


def _bad_run(root: Path, body: str | bytes, run_id: str = "20990101-000000-000000-0badid") -> str:
    run_dir = records.runs_dir(str(root)) / run_id
    run_dir.mkdir()
    (run_dir / "run.json").write_bytes(body.encode() if isinstance(body, str) else body)
    return run_id


WRONG_SHAPES: dict[str, str | bytes] = {
    "a list": "[1, 2]", "a string": '"x"', "null": "null", "a number": "5",
    "status 5": '{"id": "ID", "status": 5}', "no id": '{"status": "succeeded"}',
    "another id": '{"id": "elsewhere", "status": "succeeded"}',
    "metrics a list": '{"id": "ID", "status": "succeeded", "metrics": [1]}',
    "a metric a string": '{"id": "ID", "status": "succeeded", "metrics": {"a": "1"}}',
    "a metric too large": '{"id": "ID", "status": "succeeded", "metrics": {"a": 1e999}}',
    "a metric NaN": '{"id": "ID", "status": "succeeded", "metrics": {"a": NaN}}',
    "duration a string": '{"id": "ID", "status": "succeeded", "duration": "3s"}',
    "duration huge": '{"id": "ID", "status": "succeeded", "duration": 1' + "0" * 400 + "}",
    "entry point a list": '{"id": "ID", "status": "succeeded", "entry_point": []}',
    "host a list": '{"id": "ID", "status": "running", "host": [1]}',
    "code a string": '{"id": "ID", "status": "succeeded", "code": "x"}',
    "exit code true": '{"id": "ID", "status": "failed", "exit_code": true}',
    "deep": "[" * 100000, "not JSON": "{", "empty": "", "not UTF-8": b'{"id": "\xff"}',
}


@pytest.mark.parametrize("name", list(WRONG_SHAPES))
def test_a_record_of_the_wrong_shape_is_listed_as_corrupt_and_hides_nothing(
        cli: Callable[..., Any], project: Callable[..., Path], name: str) -> None:
    root, good = _with_one_good_run(cli, project)
    bad = "20990101-000000-000000-0badid"
    body = WRONG_SHAPES[name]
    _bad_run(root, body.replace('"ID"', f'"{bad}"') if isinstance(body, str) else body, bad)
    table = cli("runs", cwd=root)
    assert table.code == 0
    assert good in table.out and "succeeded" in table.out
    [row] = [line for line in table.out.splitlines() if line.startswith(bad)]
    assert "corrupt" in row and "run.json" in row
    listed = json.loads(cli("runs", "--json", cwd=root).out)
    assert [r["status"] for r in listed] == ["succeeded", "corrupt"]
    assert listed[1]["id"] == bad and listed[1]["problem"].startswith("run.json ")
    shown = cli("runs", "show", bad, cwd=root)
    assert shown.code == 2 and f"run {bad}: run.json " in shown.err
    assert cli("runs", "show", bad, "--json", cwd=root).code == 2
    assert cli("runs", "show", good, cwd=root).code == 0
    again = cli("run", str(root))  # the up-to-date check reads records too
    assert again.code == 0 and "up to date" in again.err


def test_a_record_that_names_what_is_wrong(cli: Callable[..., Any],
                                           project: Callable[..., Path]) -> None:
    root, _ = _with_one_good_run(cli, project)
    bad = _bad_run(root, '{"id": "20990101-000000-000000-0badid", "status": 5}')
    shown = cli("runs", "show", bad, cwd=root)
    assert shown.err == (f"mlproject: error: run {bad}: run.json has status 5, not one of "
                         "queued, running, succeeded, failed, interrupted, timeout, oom, "
                         f"cancelled, crashed (in {records.runs_dir('.') / bad})\n")


def test_text_from_a_record_reaches_the_terminal_without_its_control_characters(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root, good = _with_one_good_run(cli, project)
    path = records.runs_dir(str(root)) / good / "run.json"
    record = json.loads(path.read_text())
    hostile = "\x1b]0;owned\x07\x1b[2J\rmain\nnext"
    path.write_text(json.dumps({**record, "entry_point": hostile, "reason": hostile}))
    for args in (["runs"], ["runs", "show", good]):
        out = cli(*args, cwd=root).out
        assert "\x1b" not in out and "\r" not in out and "\x07" not in out
        assert "\\x1b]0;owned\\x07\\x1b[2J\\x0dmain\\nnext" in out
    assert hostile in json.loads(cli("runs", "--json", cwd=root).out)[0]["entry_point"]


def test_a_record_that_is_no_regular_file_is_never_read(project: Callable[..., Path]) -> None:
    root = project(TRIVIAL)
    base = records.runs_dir(str(root))
    (base / "20990101-000000-000001-fifo").mkdir(parents=True)
    os.mkfifo(base / "20990101-000000-000001-fifo" / "run.json")  # a reader would block
    (base / "20990101-000000-000002-link").mkdir()
    (base / "20990101-000000-000002-link" / "run.json").symlink_to("/etc/passwd")
    (base / "20990101-000000-000003-huge").mkdir()
    with open(base / "20990101-000000-000003-huge" / "run.json", "wb") as handle:
        handle.truncate(records.MAX_RECORD_BYTES + 1)
    listed = mlproject("runs", "--json", cwd=root, timeout=30)
    problems = [r["problem"] for r in json.loads(listed.stdout)]
    assert problems == ["run.json is not a regular file",
                        "run.json is a symbolic link, not a record mlproject wrote",
                        "run.json is larger than 64 MiB"]
    shown = mlproject("runs", "show", "20990101-000000-000001", cwd=root, timeout=30)
    assert shown.returncode == 2 and "not a regular file" in shown.stderr


def test_runs_show_reads_nothing_outside_the_runs_directory(cli: Callable[..., Any],
                                                            project: Callable[..., Path]) -> None:
    root, good = _with_one_good_run(cli, project)
    # a valid record outside the runs directory, which a path-like id would reach
    outside = records.state_dir(str(root)) / "evil"
    outside.mkdir()
    record = json.loads((records.runs_dir(str(root)) / good / "run.json").read_text())
    (outside / "run.json").write_text(json.dumps({**record, "id": "evil"}))
    for run_id in ("../evil", "../../proj/.mlproject/evil", "..", ".", "", f"{good}/",
                   f"./{good}", "/etc", "a\0b"):
        shown = cli("runs", "show", run_id, cwd=root)
        assert shown.code == 2, run_id
        assert "evil" not in shown.out and not shown.out


def test_an_ambiguous_prefix_lists_the_candidates(cli: Callable[..., Any],
                                                  project: Callable[..., Path]) -> None:
    root, good = _with_one_good_run(cli, project)
    ids = [good]
    for _ in range(2):
        assert cli("run", str(root), "--force").code == 0
    ids = [r["id"] for r in _records(root)]
    shown = cli("runs", "show", ids[0][:4], cwd=root)
    assert shown.code == 2
    assert f"run id prefix {ids[0][:4]!r} is ambiguous: 3 runs start with it: " in shown.err
    assert all(run_id in shown.err for run_id in ids)
    assert cli("runs", "show", ids[1], cwd=root).code == 0  # a whole id is never ambiguous
    assert cli("runs", "show", "0000", cwd=root).err.endswith("no run '0000' in .\n")


def test_runs_of_what_is_not_a_project_is_an_error(cli: Callable[..., Any], tmp_path: Path,
                                                   project: Callable[..., Path]) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    for where, why in [(tmp_path / "nonexistent", "no such directory"),
                       (tmp_path / "file", "not a directory"),
                       (tmp_path / "empty", "not a project")]:
        for args in (["runs", "--project", str(where)], ["runs", "--project", str(where), "--json"],
                     ["runs", "show", "x", "--project", str(where)]):
            done = cli(*args)
            assert done.code == 2 and why in done.err and not done.out, args
    root, good = _with_one_good_run(cli, project)
    (root / "MLproject").unlink()  # runs recorded: still a project whose runs can be listed
    assert good in cli("runs", "--project", str(root)).out


# -- metrics files ----------------------------------------------------------------------------

BILLION_LAUGHS = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi",
                                                                 strict=True))
NESTED_LAUGHS = "a: &a {x: 1}\n" + "".join(
    f"{c}: &{c} {{{', '.join(f'k{i}: *{p}' for i in range(10))}}}\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))

METRICS: list[tuple[str, str | bytes, dict[str, float], str | None]] = [  # (file name, content, metrics recorded, what metrics_error says)
    ("m.json", '{"a": %s, "b": 1}' % ("9" * 400), {"b": 1},
     "m.json: left out: a = an integer of 400 digits is too large to record"),
    ("m.json", '{"a": 1e400, "b": NaN, "c": -Infinity, "d": 2}', {"d": 2},
     "m.json: left out: a = inf is not a finite number; b = nan is not a finite number; "
     "c = -inf is not a finite number"),
    ("m.json", '{"a": %s}' % ("9" * 5000), {}, "m.json is not valid JSON: Exceeds the limit"),
    ("m.json", "[" * 100000, {}, "m.json is nested too deeply to read"),
    ("m.json", "{\"a\": " * 40 + "1" + "}" * 40, {}, "m.json is nested deeper than 32 levels"),
    ("m.json", b'{"a\xff": 1}', {}, "m.json is not UTF-8 text (byte 0xff at offset 3)"),
    ("m.json", "[1, 2]", {}, "m.json holds a list; expected a mapping of names to numbers"),
    ("m.json", '"x"', {}, "m.json holds a string; expected a mapping"),
    ("m.json", "null", {}, "m.json holds nothing; expected a mapping"),
    ("m.json", "", {}, "m.json is not valid JSON: Expecting value"),
    ("m.json", '{"a": {"b": 1}, "a.b": 2}', {"a.b": 1}, "m.json: left out: a.b is given twice"),
    ("m.json", '{"s": "text", "l": [1], "t": true, "n": null, "x": 0.5}', {"x": 0.5}, None),
    ("m.json", '{"a": 1, "pad": "%s"}' % ("x" * (metrics.MAX_BYTES + 1)), {},
     "m.json is larger than 1 MiB (the limit for metrics; write large results as outputs)"),
    ("m.yaml", BILLION_LAUGHS, {}, None),  # lists are no metrics: nothing expands
    ("m.yaml", NESTED_LAUGHS, {}, "m.yaml holds more than 100000 values"),
    ("m.yaml", "a: &a\n  b: *a\n", {}, "m.yaml is nested deeper than 32 levels"),
    ("m.yaml", "a: &x {v: 1}\nb: *x\n", {"a.v": 1, "b.v": 1}, None),
    ("m.yaml", "a: !!python/object/apply:os.system ['true']\n", {},
     "m.yaml is not valid YAML: could not determine a constructor"),
    ("m.yaml", "1: 0.5\nnull: 3\n2020-01-01: 4\nx: .nan\n", {"1": 0.5, "null": 3, "2020-01-01": 4},
     "m.yaml: left out: x = nan is not a finite number"),
    ("m.yaml", "? [1, 2]\n: 3\n", {}, "m.yaml is not valid YAML: while constructing a mapping"),
    ("m.yaml", "- 1\n", {}, "m.yaml holds a list"),
    ("m.yaml", "a: " + "[" * 2000 + "]" * 2000 + "\n", {}, "m.yaml is "),
]


@pytest.mark.parametrize(("name", "content", "expected", "problem"), METRICS,
                         ids=[f"{i}-{m[0]}" for i, m in enumerate(METRICS)])
def test_a_hostile_metrics_file_is_reported_and_the_record_completed(
        cli: Callable[..., Any], project: Callable[..., Path], name: str,
        content: str | bytes, expected: dict[str, float], problem: str | None) -> None:
    root = project(_metrics_project(name))
    (root / "src.bin").write_bytes(content.encode() if isinstance(content, str) else content)
    assert cli("run", str(root)).code == 0
    [record] = _records(root)
    assert record["status"] == "succeeded" and record["ended_at"] is not None
    assert record["metrics"] == expected
    if problem is None:
        assert record["metrics_error"] is None  # mlproject.run/2 writes every key
    else:
        assert record["metrics_error"].startswith(f"metrics file {problem}")
    assert cli("runs", cwd=root).code == 0
    assert cli("runs", "show", record["id"], cwd=root).code == 0


def test_a_failed_step_keeps_its_status_and_code_whatever_its_metrics(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project(_metrics_project(exit_code=3))
    (root / "src.bin").write_text('{"a": %s}' % ("9" * 400))
    assert cli("run", str(root)).code == 3
    [record] = _records(root)
    assert (record["status"], record["exit_code"]) == ("failed", 3)
    assert record["ended_at"] is not None


@pytest.mark.parametrize("what", ["fifo", "directory", "link to a device", "too large sparse"])
def test_a_metrics_path_that_is_no_small_regular_file_never_hangs(
        project: Callable[..., Path], what: str) -> None:
    make = {"fifo": "os.mkfifo('m.json')", "directory": "os.mkdir('m.json')",
            "link to a device": "os.symlink('/dev/zero', 'm.json')",
            "too large sparse": "open('m.json', 'wb').truncate(1 << 30)"}[what]
    root = project({"MLproject": f"""
        entry_points:
          main:
            command: "python -c \\"import os; {make}\\""
            metrics: m.json
        """})
    child = mlproject_process("run", ".", cwd=root, stderr=subprocess.PIPE)
    try:
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0 and b"Traceback" not in err
    [record] = _records(root)
    assert record["status"] == "succeeded" and record["metrics"] == {}
    assert record["metrics_error"].startswith("metrics file m.json")


# -- mlproject init ---------------------------------------------------------------------------

def _init(cli: Callable[..., Any], target: Path) -> Any:
    return cli("init", str(target))


def test_init_onto_a_file_or_through_one(cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine\n")
    done = _init(cli, tmp_path / "file")
    assert done.code == 2 and "exists and is not a directory: nothing was written" in done.err
    done = _init(cli, tmp_path / "file" / "sub")
    assert done.code == 2 and "Not a directory: nothing was written" in done.err
    assert (tmp_path / "file").read_text() == "mine\n"


@pytest.mark.parametrize("name", ["mlproject", "MLProject", "MLPROJECT"])
def test_init_never_shadows_a_spec_file_in_another_case(cli: Callable[..., Any], tmp_path: Path,
                                                         name: str) -> None:
    target = tmp_path / "demo"
    target.mkdir()
    (target / name).write_text("entry_points: {main: {command: 'echo mine'}}\n")
    done = _init(cli, target)
    assert done.code == 2
    assert f"already has {name} (an MLproject file: a second one would shadow it)" in done.err
    assert os.listdir(target) == [name]


@pytest.mark.parametrize("link", ["train.py", "MLproject", ".gitignore"])
@pytest.mark.parametrize("dangling", [True, False])
def test_init_never_writes_through_a_link(cli: Callable[..., Any], tmp_path: Path, link: str,
                                          dangling: bool) -> None:
    target, outside = tmp_path / "demo", tmp_path / "outside"
    target.mkdir()
    if not dangling:
        outside.write_text("mine\n")
    (target / link).symlink_to(outside)
    done = _init(cli, target)
    assert done.code == 2 and f"already has {link} (a symbolic link): nothing was written" in done.err
    assert os.listdir(target) == [link]
    assert outside.exists() != dangling and (dangling or outside.read_text() == "mine\n")


def test_init_into_a_link_to_a_directory_and_not_a_dangling_one(cli: Callable[..., Any],
                                                                tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert _init(cli, tmp_path / "link").code == 0
    assert (tmp_path / "real" / "MLproject").is_file()
    (tmp_path / "nowhere").symlink_to(tmp_path / "missing")
    done = _init(cli, tmp_path / "nowhere")
    assert done.code == 2 and "is a symbolic link to nothing" in done.err
    assert not (tmp_path / "missing").exists()


def test_init_writes_everything_or_nothing(tmp_path: Path) -> None:
    def small_files() -> None:  # the template's train.py is larger than this: a write fails
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    done = subprocess.run([sys.executable, "-m", "mlproject.runner", "init", "new/demo"],
                          cwd=tmp_path, preexec_fn=small_files, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2 and "nothing was written" in done.stderr, done.stderr
    assert os.listdir(tmp_path) == []


# -- property: whatever these files hold ------------------------------------------------------

def fast(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


scalars = (st.none() | st.booleans() | st.integers(-(10**400), 10**400)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
           | st.sampled_from([s.value for s in Status] + ["20990101-000000-000000-0badid"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=5),
                           max_leaves=20)


def _as_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


@st.composite
def near_record(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """A real record with some of its fields (or theirs) replaced by anything, or dropped."""
    record = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 4))):
        if not record:
            break
        key = draw(st.sampled_from(sorted(record)))
        if draw(st.booleans()) and isinstance(record[key], dict) and record[key]:
            inner = draw(st.sampled_from(sorted(record[key])))
            record[key][inner] = draw(json_values)
        elif draw(st.integers(0, 4)) == 0:
            del record[key]
        else:
            record[key] = draw(json_values)
    return _as_bytes(record)


def anything(base: dict[str, Any] | None = None) -> st.SearchStrategy[bytes]:
    options = [st.binary(max_size=200), json_values.map(_as_bytes)]
    if base is not None:
        options.append(near_record(base))
    return st.one_of(*options)


def _base_project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    if not (root / "MLproject").exists():
        write_project(root, TRIVIAL)
    return root


_BASE_RECORD = {  # every key a record has (record.schema.json), each of the type it has there
    "format": records.RECORD_FORMAT, "id": "20990101-000000-000000-0badid", "invocation": "i",
    "project": "/p", "spec": "/p/MLproject", "spec_digest": "d", "name": "t",
    "entry_point": "main", "status": "running", "started_at": "2026-01-01T00:00:00+00:00",
    "ended_at": None, "duration": 1.5, "exit_code": 0, "signal": None, "reason": None,
    "backend": "local", "command": "c", "parameters": {"a": "1"}, "fingerprint": "f",
    "code": {"kind": "git", "dirty": True},
    "environment": {"name": "local", "kind": "local", "prefix": None, "built_now": None,
                    "recipe": None},
    "resources": {"requested": {"cpu": 1}, "enforced": {"cpu": "x"}, "peak_memory": None},
    "data": {}, "metrics_file": "m.json", "metrics": {"a": 1.0}, "metrics_error": None,
    "outputs": {"o": {"md5": "x"}}, "plan": {}, "mlproject_version": "0",
    "host": {"hostname": os.uname().nodename, "pid": 1, "pid_start": "0", "platform": "p",
             "python": "3"}, "log": "log.txt", "handle": None, "submission": None,
    "settings": {}, "engine": {}}


@pytest.mark.slow
@fast(120)
@given(content=anything(_BASE_RECORD))
def test_property_any_run_record(cli: Callable[..., Any], tmp_path: Path, content: bytes) -> None:
    root = _base_project(tmp_path)
    bad = records.runs_dir(str(root)) / "20990101-000000-000000-0badid"
    bad.mkdir(parents=True, exist_ok=True)
    (bad / "run.json").write_bytes(content)
    table = cli("runs", cwd=root)
    assert table.code == 0 and bad.name in table.out
    listed = json.loads(cli("runs", "--json", cwd=root).out)
    assert [r["id"] for r in listed][-1] == bad.name
    assert cli("runs", "show", bad.name, cwd=root).code in (0, 2)
    assert cli("runs", "show", bad.name, "--json", cwd=root).code in (0, 2)
    assert cli("runs", "show", "2099", cwd=root).code in (0, 2)
    assert cli("run", str(root)).code == 0


@pytest.mark.slow
@fast(40)
@given(content=anything(), which=st.sampled_from(["validated", "specs"]))
def test_property_any_spec_cache_entry_heals(cli: Callable[..., Any], tmp_path: Path,
                                             content: bytes, which: str) -> None:
    root = _base_project(tmp_path)
    assert cli("validate", str(root)).code == 0
    folder = cache_root() / which
    if which == "validated":
        _drop_built_specs()
        assert cli("validate", str(root)).code == 0  # writes the validated entry
    entries = sorted(folder.iterdir())
    assert entries
    for entry in entries:
        entry.write_bytes(content)
    if which == "validated":
        _drop_built_specs()
    assert cli("validate", str(root)).code == 0
    assert cli("plan", str(root)).code == 0
    healed = sorted(folder.iterdir())
    assert healed
    if which == "validated":
        assert all(isinstance(json.loads(e.read_text()), list) for e in healed)
    else:
        assert built_spec((root / "MLproject").read_bytes(), False) is not None


@fast(40)
@given(content=anything({"run": "20990101-000000-000000-0badid", "outputs": {"out.txt": {
    "md5": "x", "size": 1, "nfiles": 1}}}), which=st.sampled_from(["index", "cache/data"]))
@pytest.mark.slow
def test_property_any_index_or_stat_cache_entry_heals(cli: Callable[..., Any], tmp_path: Path,
                                                      content: bytes, which: str) -> None:
    _a_project_cache_heals(cli, tmp_path, which, content)


def _a_project_cache_heals(cli: Callable[..., Any], tmp_path: Path, which: str,
                           content: bytes) -> None:
    root = _base_project(tmp_path)
    assert cli("run", str(root)).code == 0
    entries = sorted((records.state_dir(str(root)) / which).glob("*.json"))
    assert entries
    for entry in entries:
        entry.write_bytes(content)
    first = cli("run", str(root))
    assert first.code == 0
    again = cli("run", str(root))
    assert again.code == 0 and "main: up to date" in again.err  # healed


@pytest.mark.slow
@fast(60)
@given(content=anything(), name=st.sampled_from(["m.json", "m.yaml"]))
def test_property_any_metrics_file(cli: Callable[..., Any], tmp_path: Path, content: bytes,
                                   name: str) -> None:
    root = tmp_path / f"metrics-{name}"
    if not root.exists():
        write_project(root, _metrics_project(name))
    (root / "src.bin").write_bytes(content)
    before = len(_records(root))
    assert cli("run", str(root)).code == 0
    record = _records(root)[-1]
    assert len(_records(root)) == before + 1
    assert record["status"] == "succeeded" and record["ended_at"] is not None
    assert all(isinstance(v, (int, float)) for v in record["metrics"].values())
    assert cli("runs", cwd=root).code == 0


DEEP_JSON = b"[" * 100_000  # json.loads raises RecursionError, not ValueError, on this


@pytest.mark.parametrize("which", ["index", "cache/data"])
def test_deeply_nested_json_in_a_project_cache_heals(cli: Callable[..., Any], tmp_path: Path,
                                                     which: str) -> None:
    _a_project_cache_heals(cli, tmp_path, which, DEEP_JSON)


def test_deeply_nested_json_in_the_user_cache_heals(cli: Callable[..., Any], tmp_path: Path) -> None:
    # interpreters.json (asked for by a declared python environment) and the validated/ entries
    root = write_project(tmp_path / "p", {"MLproject": """
        entry_points:
          main: {command: "true"}
    """})
    assert cli("validate", str(root)).code == 0
    for entry in cache_root().rglob("*.json"):
        entry.write_bytes(DEEP_JSON)
    (cache_root() / "interpreters.json").write_bytes(DEEP_JSON)
    from mlproject.runner.envs import interpreters

    assert interpreters.discover()  # the cache is dropped and the probes made again
    assert cli("validate", str(root)).code == 0
    assert cli("run", str(root)).code == 0
