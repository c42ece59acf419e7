"""A lock means what it says: requirement files read as strictly as pip and uv read them,
incomplete locks resolved or refused, environments held while a step uses them, and caches of
the wrong shape healed or reported, never a traceback."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import mlproject_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlproject.runner.envs import interpreters, requirements
from mlproject.runner.envs import python as pyenv
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.store import MARKER, EnvStore
from mlproject.runner.state import records
from mlproject.runner.util.files import cache_root
from mlproject.spec.model import Environment
from mlproject.spec.units import seconds

PY = ".".join(map(str, sys.version_info[:2]))
H1, H2 = ("sha256:" + c * 64 for c in "ab")
BROKEN = "the continuation is broken, and what follows would be read apart from it (uv refuses such a file); remove the `\\` or the break"
MIXED = ("pip refuses a file that mixes hashed and unhashed requirements; hash every one "
         "(`mlproject lock` writes such a file) or none")

REFUSED = [
    (f"six==1.16.0 \\\n\n    --hash={H1}\n",
     "requirements.txt:1: the line ends with `\\` but the line it continues into "
     f"(requirements.txt:2) is blank: {BROKEN}"),
    (f"six==1.16.0 \\\n# why\n    --hash={H1}\n",
     "requirements.txt:1: the line ends with `\\` but the line it continues into "
     f"(requirements.txt:2) is a comment: {BROKEN}"),
    ("six==1.16.0 \\\n",
     "requirements.txt:1: the line ends with `\\` at the end of the file: the continuation "
     "continues nothing (uv refuses it)"),
    (f"six==1.16.0  # why \\\n  --hash={H1}\n",
     "requirements.txt:1: a `\\` at the end of a comment continues nothing: what follows is "
     "read as a line of its own"),
    (f"six==1.16.0\n    --hash={H1}\n",
     "requirements.txt:2: a --hash with no requirement before it on its line: the requirement it "
     "belongs to is cut off (a `\\` missing or a line break)"),
    (f"six>=1.0 --hash={H1}\n",
     "requirements.txt:1: six>=1.0 has a --hash but is not pinned with ==: a hash checks one "
     "exact version (pip refuses it)"),
    (f"six==1.* --hash={H1}\n",
     "requirements.txt:1: six==1.* has a --hash but is not pinned with ==: a hash checks one "
     "exact version (pip refuses it)"),
    ("\nhello world foo\n",
     "requirements.txt:2: 'hello world foo' is not a valid requirement (Expected semicolon "
     "(after name with no version specifier) or end)"),
    ("--frobnicate\nsix\n", "requirements.txt:1: unknown option '--frobnicate' (pip and uv refuse it)"),
    ("-ihttps://example.org/simple\n",
     "requirements.txt:1: unknown option '-ihttps://example.org/simple' (pip and uv refuse it)"),
    ("six==1.16.0 --no-index\n",
     "requirements.txt:1: --no-index cannot follow a requirement (only --hash can)"),
    ("--index-url\n", "requirements.txt:1: --index-url needs a value"),
    ("--no-index=yes\n", "requirements.txt:1: --no-index takes no value"),
    ("--extra-index-url https://example.org/simple six\n",
     "requirements.txt:1: unexpected 'six': one requirement or option a line"),
    ('six ; python_version <<< "3"\n',
     "requirements.txt:1: 'six ; python_version <<< \"3\"' is not a valid requirement (Expected "
     "a marker variable or quoted string)"),
    ("six[a b]==1\n",
     "requirements.txt:1: 'six[a b]==1' is not a valid requirement (Expected comma between "
     "extra names)"),
    ("six==1.16.0\nidna==3.7\nSix==1.15.0\n",
     "requirements.txt:3: Six==1.15.0 conflicts with six==1.16.0 at requirements.txt:1: one "
     "package, one pin"),
    (f"six==1.16.0 --hash={H1}\nidna==3.7\n",
     f"requirements.txt:2: idna==3.7 has no --hash, while requirements.txt:1 has a --hash: {MIXED}"),
    ("--require-hashes\nsix==1.16.0\n",
     "requirements.txt:2: six==1.16.0 has no --hash, while --require-hashes is given at "
     f"requirements.txt:1: {MIXED}"),
    (f"-e .\nsix==1.16.0 --hash={H1}\n",
     "requirements.txt:1: -e . is editable, and requirements.txt:2 has a --hash: pip installs "
     "no editable requirement when it checks hashes"),
    ("six==1.16.0 --hash=md5:0123\n",
     "requirements.txt:1: --hash=md5:0123 is not a hash: expected sha256:<64 hex digits> (or "
     "sha384, sha512)"),
    ("six==1.16.0 --hash=sha256:abc\n",
     "requirements.txt:1: --hash=sha256:abc is not a hash: expected sha256:<64 hex digits> (or "
     "sha384, sha512)"),
    ("-r ../outside.txt\n",
     "requirements.txt:1: -r ../outside.txt leaves the project ({outside}): a project's "
     "requirements stay inside it"),
    ("-c /etc/hostname\n",
     "requirements.txt:1: -c /etc/hostname leaves the project (/etc/hostname): a project's "
     "requirements stay inside it"),
    ("-r requirements.txt\n", "requirements.txt:1: -r requirements.txt includes itself"),
    ("-r a.txt\n", "b.txt:1: -r requirements.txt makes a loop of includes: requirements.txt -> "
     "a.txt -> b.txt -> requirements.txt"),
    ("-r link.txt\n", "requirements.txt:1: -r link.txt leaves the project ({outside}): a "
     "project's requirements stay inside it"),
    ("-r bad.txt\n", "bad.txt:2: not UTF-8 (byte 0xff): requirement files are read as UTF-8"),
]


def _tree(tmp_path: Path) -> Path:
    """A project whose neighbours are includes of every kind, good and bad."""
    root = tmp_path / "proj"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("six==1.16.0\n")
    (root / "a.txt").write_text("-r b.txt\n")
    (root / "b.txt").write_text("-r requirements.txt\n")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    (root / "bad.txt").write_bytes(b"six==1.16.0\nidna==3.7 \xff\n")
    return root


@pytest.mark.parametrize(("text", "message"), REFUSED, ids=[m.split(":", 2)[2][:40] for _, m in REFUSED])
def test_what_pip_or_uv_refuses_is_refused_naming_file_and_line(tmp_path: Path, text: str,
                                                                 message: str) -> None:
    root = _tree(tmp_path)
    (root / "requirements.txt").write_text(text)
    with pytest.raises(EnvError) as caught:
        requirements.read(root / "requirements.txt", root)
    assert str(caught.value) == message.format(outside=tmp_path / "outside.txt")


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_bytes(b"six==1.16.0\n\nidna==3.7 # caf\xe9\n")
    with pytest.raises(EnvError, match=r"^requirements\.txt:3: not UTF-8 \(byte 0xe9\)"):
        requirements.read(tmp_path / "requirements.txt", tmp_path)


def test_what_both_accept_is_read(tmp_path: Path) -> None:
    text = (f"\ufeffsix==1.16.0 ; python_version < '4' --hash={H1}\r\n"
            f"Six==1.16.0 ; python_version < \"4\" --hash {H1}\n"  # the same pin twice: one pin
            f"six==1.15.0 ; python_version >= '4' --hash={H2}\n"  # another marker: another pin
            f"requests[SOCKS,security]===2.31.0 \\\n  --hash={H1.upper().replace('SHA256', 'sha256')}\n"
            "--no-index\n--find-links ./wheels\n--pre\n")
    found = requirements.parse(text, tmp_path / "requirements.txt", root=tmp_path)
    assert [p.to_json() for p in found.pins] == [
        ["requests", "2.31.0", [H1], None, ["security", "socks"]],
        ["six", "1.16.0", [H1], 'python_version < "4"'],
        ["six", "1.15.0", [H2], 'python_version >= "4"'],
    ]
    assert found.is_lock and found.options == ("--no-index", "--find-links ./wheels")
    assert found.as_lock().splitlines()[2] == f"requests[security,socks]==2.31.0 --hash={H1}"


def _located(message: str) -> bool:
    return bool(re.match(r"^requirements\.txt:\d+: \S", message)
                or re.match(r"^[\w./-]+\.txt:\d+: \S", message))


FRAGMENTS = st.sampled_from([
    "six", "==", "1.16.0", ">=1", " ", "  ", "\\", "\n", "\r\n", "#", " # c", ";",
    " ; python_version < '3.12'", "[socks]", "@ https://example.org/six.whl", f"--hash={H1}",
    "--hash=", "-r ", "-c ", "-e ", "--index-url ", "--no-index", "--require-hashes", "-i",
    "requirements.txt", "other.txt", "../x.txt", "/etc/passwd", "\x00", "\ufeff", "é", "===",
    "*", "extra == 'a'", "(", ")", "\"", "'", ",", "--", "-",
])


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.lists(FRAGMENTS, max_size=30).map("".join), st.text(max_size=200)))
def test_any_text_is_read_or_refused_with_file_and_line(tmp_path: Path, text: str) -> None:
    (tmp_path / "other.txt").write_text("idna==3.7\n")
    try:
        requirements.parse(text, tmp_path / "requirements.txt", root=tmp_path)
    except EnvError as exc:
        assert _located(str(exc)), str(exc)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_any_bytes_are_read_or_refused_with_file_and_line(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "requirements.txt").write_bytes(data)
    try:
        requirements.read(tmp_path / "requirements.txt", tmp_path)
    except EnvError as exc:
        assert _located(str(exc)), str(exc)


# --- through the command line -------------------------------------------------------------

def _project(project: Callable[..., Path], requirements_text: str, command: str = "python -c pass",
             extra: str = "") -> Path:
    return project({
        "MLproject": f"""
            environments:
              train: {{python: "{PY}", requirements: requirements.txt{extra}}}
            entry_points:
              main:
                environment: train
                command: "{command}"
        """,
        "requirements.txt": requirements_text,
    })


def test_a_cut_off_hash_stops_plan_and_run_naming_the_line_once(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project, f"six==1.16.0 \\\n\n    --hash={H1}\n")
    plan = cli("plan", str(root))
    assert plan.code == 0
    assert "cannot be built: requirements.txt:1: the line ends with `\\`" in plan.out
    result = cli("run", str(root))
    assert result.code == 2 and "Traceback" not in result.err
    assert ("entry point 'main': environment 'train': requirements.txt:1: the line ends with "
            "`\\` but the line it continues into (requirements.txt:2) is blank") in result.err
    assert result.err.count("environment 'train'") == 1
    assert not records.runs_dir(str(root)).exists()


def test_non_utf8_requirements_are_an_error_not_a_traceback(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project, "")
    (root / "requirements.txt").write_bytes(b"six==1.16.0\n\xff\xfe\n")
    result = cli("run", str(root))
    assert result.code == 2 and "Traceback" not in result.err
    assert "environment 'train': requirements.txt:2: not UTF-8 (byte 0xff)" in result.err
    locked = cli("lock", str(root))
    assert locked.code == 4  # exitcodes.INCOMPLETE: not locked
    assert "environment 'train': requirements.txt:2: not UTF-8 (byte 0xff)" in locked.err


def test_the_environment_is_named_once(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    conda = project({
        "MLproject": "conda_env: conda.yaml\nentry_points: {main: {command: 'python -c pass'}}\n",
        "conda.yaml": "channels: [conda-forge]\ndependencies: [python=3.11]\n",
    }, name="conda")
    result = cli("run", str(conda), "--env-manager", "conda")  # else translated for uv
    assert result.code == 2
    assert ("entry point 'main': environment 'conda_env': conda.yaml is not locked (there is no "
            "conda-lock.yml beside it)") in result.err
    assert result.err.count("environment 'conda_env'") == 1
    unreadable = _project(project, "")
    (unreadable / "requirements.txt").unlink()
    (unreadable / "requirements.txt").mkdir()
    result = cli("run", str(unreadable))
    assert result.code == 2
    assert "environment 'train': cannot read requirements.txt: Is a directory" in result.err
    assert result.err.count("environment 'train'") == 1


def test_a_stale_lock_names_what_it_lacks(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project, "six\nIDNA>=3\n")
    (root / "requirements.lock").write_text(f"six==1.16.0 --hash={H1}\n")  # not ours: no stamp
    plan = cli("plan", str(root))
    assert plan.code == 0
    assert ("warning: requirements.lock is stale: it has no pin for idna, which requirements.txt "
            "asks for: run `mlproject lock` to update it") in plan.err


PYTHON_ENVS = [
    ("python: '3'\ndependencies: 5\n",
     "python_env.yaml:2: dependencies: expected a list of requirements, not '5'"),
    ("dependencies: {six: 1}\n",
     "python_env.yaml:1: dependencies: expected a list of requirements, not a mapping"),
    ("dependencies:\n  - six\n  - 5\n",
     "python_env.yaml:3: dependencies: expected a requirement (a string), not '5'"),
    ("build_dependencies:\n  - {pip: [six]}\n",
     "python_env.yaml:2: build_dependencies: expected a requirement (a string), not a mapping"),
    ("python: [3]\n", 'python_env.yaml:1: python: expected a version such as "3.11"'),
    ("- six\n", "python_env.yaml:1: expected a mapping with python and dependencies"),
    ("dependencies:\n\n  - six ; python_version <<< '3'\n",
     "python_env.yaml:3: \"six ; python_version <<< '3'\" is not a valid requirement (Expected a "
     "marker variable or quoted string)"),
    ("dependencies: [six==1.0, 'six==2.0']\n",
     "python_env.yaml:1: six==2.0 conflicts with six==1.0 at python_env.yaml:1: one package, one pin"),
]


@pytest.mark.parametrize(("text", "message"), PYTHON_ENVS)
def test_python_env_yaml_of_the_wrong_shape_is_located(
        cli: Callable[..., Any], project: Callable[..., Path], text: str, message: str) -> None:
    root = project({
        "MLproject": "python_env: python_env.yaml\nentry_points: {main: {command: 'python -c pass'}}\n",
        "python_env.yaml": text,
    })
    plan = cli("plan", str(root))
    assert plan.code == 0 and f"cannot be built: {message}" in plan.out
    result = cli("run", str(root))
    assert result.code == 2 and "Traceback" not in result.err
    assert f"environment 'python_env': {message}" in result.err


# --- the store: holds, markers, caches ------------------------------------------------------

HOLD_STEP = """
import os, sys, time
open("started.txt", "w").write(sys.prefix)
while not os.path.exists("go"):
    time.sleep(0.02)
open("after.txt", "w").write(sys.prefix + " " + sys.executable)
"""


def _bare_project(project: Callable[..., Path], command: str = "python -c pass") -> Path:
    return project({
        "MLproject": f"""
            environments: {{bare: {{python: "{PY}"}}}}
            entry_points: {{main: {{environment: bare, command: "{command}"}}}}
        """,
        "step.py": HOLD_STEP,
    })


def _wait_for(path: Path, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert child.poll() is None, "the run ended before its step started"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.slow
def test_prune_keeps_what_a_running_step_uses(project: Callable[..., Path]) -> None:
    root = _bare_project(project, "python step.py")
    child = mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        _wait_for(root / "started.txt", child)
        prefix = (root / "started.txt").read_text()
        pruned = subprocess.run([sys.executable, "-m", "mlproject.runner", "env", "prune"],
                                cwd=root, capture_output=True, text=True, timeout=60)
        assert pruned.returncode == 0, pruned.stderr
        assert pruned.stdout == ""
        assert f"kept {prefix}: a run is using it" in pruned.stderr
        assert Path(prefix, "bin", "python").exists()
        (root / "go").touch()
        _, err = child.communicate(timeout=120)
    finally:
        (root / "go").touch()
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err.decode()
    after_prefix, executable = (root / "after.txt").read_text().split()
    assert after_prefix == prefix and executable.startswith(prefix + "/")
    record = records.list_runs(str(root))[-1]
    assert record["status"] == "succeeded" and record["environment"]["prefix"] == prefix
    # the step has ended: nothing holds the environment any more
    again = subprocess.run([sys.executable, "-m", "mlproject.runner", "env", "prune"],
                           cwd=root, capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == prefix and not Path(prefix).exists()


def test_a_run_releases_its_hold_when_the_step_ends(cli: Callable[..., Any],
                                                    project: Callable[..., Path]) -> None:
    root = _bare_project(project)
    assert cli("run", str(root)).code == 0
    prefix = records.list_runs(str(root))[-1]["environment"]["prefix"]
    pruned = cli("env", "prune")
    assert pruned.out.strip() == prefix and "kept" not in pruned.err


@pytest.mark.parametrize("marker", [b"[]", b'{"key": 5}', b'{"key": "k", "kind": "python", "recipe": []}',
                                    b"not json", b"\xff\xfe", b'"text"'])
@pytest.mark.slow
def test_a_marker_of_the_wrong_shape_is_reported_and_healed(
        cli: Callable[..., Any], project: Callable[..., Path], marker: bytes) -> None:
    root = _bare_project(project)
    assert cli("run", str(root)).code == 0
    prefix = Path(records.list_runs(str(root))[-1]["environment"]["prefix"])
    (prefix / MARKER).write_bytes(marker)
    listed = cli("env", "list")
    assert listed.code == 0 and "Traceback" not in listed.err
    assert re.search(r"(completion marker of the wrong shape|unreadable completion marker)", listed.out)
    assert json.loads(cli("env", "list", "--json").out)[0]["marker"] is None
    result = cli("run", str(root))
    assert result.code == 0, result.err
    assert "rebuilding the python environment" in result.err
    assert records.list_runs(str(root))[-1]["environment"]["built_now"] is True
    assert json.loads((prefix / MARKER).read_text())["recipe"]["python"]
    (prefix / MARKER).write_bytes(marker)
    assert cli("env", "prune").out.strip() == str(prefix)


@pytest.mark.parametrize("cached", [b"[]", b'{"stamp": 5}', b'{"a:1:2": ["3.11"]}', b"\xff", b"{"])
def test_an_interpreter_cache_of_the_wrong_shape_is_rewritten(
        cli: Callable[..., Any], project: Callable[..., Path], cached: bytes) -> None:
    root = _bare_project(project)
    cache = cache_root() / "interpreters.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(cached)
    plan = cli("plan", str(root))
    assert plan.code == 0 and "Traceback" not in plan.err and "cannot be built" not in plan.out
    assert all(isinstance(v, list) for v in json.loads(cache.read_text()).values())


def test_a_broken_cached_resolution_is_removed_and_resolved_again(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six\n")
    env = Environment("e", "python", python=PY, file="requirements.txt")
    wanted = pyenv.inputs(str(tmp_path), env)
    cached = pyenv._resolution_file(wanted.digest(wanted.parse()), interpreters.locate(PY))
    for broken in (b"\xff", b"six>=1\n", b"{json: 1}\n", b"six==1.16.0\n"):
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(broken)
        said: list[str] = []
        # observed (`plan`): not resolved, and nothing written, nor removed, in the cache
        pending = pyenv.observed_recipe(str(tmp_path), env, said.append)
        assert pending == (f"would resolve requirements.txt with uv for Python "
                           f"{interpreters.locate(PY).version} (`mlproject lock` writes "
                           "requirements.lock ahead)")
        assert cached.exists() and said == []
        # where `run` resolves: removed, and said so
        assert pyenv._cached_resolution(cached, said.append, heal=True) is None
        assert not cached.exists()
        assert said and said[0].startswith("warning: the cached resolution is broken, resolving again: ")


@pytest.mark.slow
@pytest.mark.parametrize("value", ["30dxyz", "30", "-5d", "1e400d", "", "0d", "9" * 400 + "d", "1d 2h"])
def test_prune_refuses_what_is_not_a_duration(cli: Callable[..., Any], project: Callable[..., Path],
                                              value: str) -> None:
    root = _bare_project(project)
    assert cli("run", str(root)).code == 0
    result = cli("env", "prune", f"--older-than={value}")  # `=`: argparse takes -5d for an option
    assert result.code == 2 and "Traceback" not in result.err
    assert "--older-than" in result.err and len(result.err) < 300
    assert len(EnvStore().entries()) == 1


def test_durations_are_whole_or_refused() -> None:
    assert seconds("1h30m") == 5400 and seconds("90s") == 90 and seconds(7.5) == 7.5
    assert seconds("1.5d") == 129600 and seconds("250ms") == 0.25
    for value in ("30dxyz", "xyz30d", "30", "-5d", "1e400d", "", "30 d", "9" * 400 + "d", "d"):
        with pytest.raises(ValueError):
            seconds(value)
    with pytest.raises(ValueError):
        seconds(float("inf"))


# --- interpreters -----------------------------------------------------------------------------

_PY27 = sorted(Path("~/.pyenv/versions").expanduser().glob("2.7*/bin/python2.7"))


@pytest.mark.skipif(not _PY27, reason="no Python 2.7 under ~/.pyenv/versions on this machine")
def test_pyenvs_python_27_is_found(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    found = interpreters.locate("2.7")
    assert found.version.startswith("2.7.") and found.implementation == "cpython"
    assert found.path.startswith(str(_PY27[0].parent))
    root = project({"MLproject": """
        environments: {old: {python: "2.7"}}
        entry_points: {main: {environment: old, command: "python -c pass"}}
    """})
    plan = cli("plan", str(root))
    assert (f"cannot be built: Python {found.version} is installed ({found.path}), but uv makes "
            "environments for Python 3 only") in plan.out
    assert "is not installed" not in plan.out


# --- completeness (these reach PyPI: few and small) -----------------------------------------

SOCKS = "import socks, urllib3, requests; open('ok.txt', 'w').write(requests.__version__)"


@pytest.mark.slow
def test_a_top_level_pin_is_resolved_with_its_dependencies_and_extras(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project, "requests[socks]==2.31.0\n", command=f'python -c \\"{SOCKS}\\"')
    result = cli("run", str(root))
    assert result.code == 0, result.err
    assert (root / "ok.txt").read_text() == "2.31.0"
    assert "requirements.txt is not a lock (every requirement pinned with == and hashed)" in result.err
    recipe = records.list_runs(str(root))[-1]["environment"]["recipe"]
    names = {p.split("==")[0] for p in recipe["pins"]}
    assert {"requests", "pysocks", "urllib3", "idna", "certifi"} <= names
    assert recipe["resolved_now"] is True and recipe["require_hashes"] is True


@pytest.mark.slow
def test_a_hashed_lock_that_is_not_complete_fails_the_build_naming_what_is_missing(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project, "requests==2.31.0\n", command=f'python -c \\"{SOCKS}\\"')
    assert cli("lock", str(root)).code == 0
    body = "".join(line for line in (root / "requirements.lock").read_text().splitlines(True)
                   if not line.startswith("#"))
    (root / "requirements.lock").unlink()
    # the extra asks for PySocks, which the lock does not pin
    (root / "requirements.txt").write_text(body.replace("requests==2.31.0", "requests[socks]==2.31.0"))
    result = cli("run", str(root))
    assert result.code == 1
    reason = records.list_runs(str(root))[-1]["reason"]
    assert reason.startswith("environment 'train': ")
    assert ("requirements.txt is not a complete lock: what it pins needs pysocks (needed by "
            "requests[socks]); run `mlproject lock`") in reason
    assert [e for e in EnvStore().entries() if e["marker"] is None] == []
    # the top level alone, hashed: every dependency is named
    blocks = re.split(r"\n(?=\S)", body)  # one pin and its indented hash lines each
    (root / "requirements.txt").write_text(next(b for b in blocks if b.startswith("requests==")) + "\n")
    result = cli("run", str(root))
    assert result.code == 1
    reason = records.list_runs(str(root))[-1]["reason"]
    for name in ("certifi", "charset-normalizer", "idna", "urllib3"):
        assert f"{name} (needed by requests)" in reason
    assert not (root / "ok.txt").exists()


def test_mlflows_build_dependencies_are_checked_apart_from_hashed_dependencies(tmp_path: Path) -> None:
    # MLflow installs build_dependencies and dependencies with two pip commands: hash-checking
    # mode holds within each, so an unpinned pip beside a hashed requirements.txt is MLflow's norm
    (tmp_path / "requirements.txt").write_text(f"six==1.16.0 --hash={H1}\n")
    yaml_text = "build_dependencies:\n  - pip\ndependencies:\n  - -r requirements.txt\n"
    (tmp_path / "python_env.yaml").write_text(yaml_text)
    env = Environment("python_env", "python", file="python_env.yaml")
    asked = pyenv.inputs(str(tmp_path), env).parse()
    assert [p.name for p in asked.pins] == ["six"] and asked.loose == ("pip",)
    (tmp_path / "python_env.yaml").write_text(yaml_text + "  - idna\n")
    with pytest.raises(EnvError) as caught:
        pyenv.inputs(str(tmp_path), env).parse()
    assert str(caught.value) == (f"python_env.yaml:5: idna has no --hash, while requirements.txt:1 "
                                 f"has a --hash: {MIXED}")


YAML_FRAGMENTS = st.sampled_from([
    "python: ", "dependencies:", "build_dependencies:", "\n", "  - ", "six", "==1.0", "5", "{",
    "}", "[", "]", ", ", ": ", "-r requirements.txt", "--hash=", "\\", "'", '"', "&a ", "*a",
    "? ", "---\n", "null", "~", "\t", "#", "é", "!!binary ", "\x00",
])


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.slow
@given(text=st.one_of(st.lists(YAML_FRAGMENTS, max_size=25).map("".join), st.text(max_size=150)))
def test_any_python_env_yaml_is_read_or_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    (tmp_path / "python_env.yaml").write_text(text)
    env = Environment("python_env", "python", file="python_env.yaml")
    try:
        pyenv.inputs(str(tmp_path), env).parse()
    except EnvError as exc:
        assert re.match(r"^(python_env\.yaml|requirements\.txt)(:\d+:| is not valid YAML)", str(exc)), str(exc)


def test_a_store_that_cannot_be_used_fails_the_step_with_why(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _bare_project(project)
    store = EnvStore().root
    store.mkdir(parents=True)
    (store / ".locks").write_text("not a directory")
    result = cli("run", str(root))
    assert result.code == 1 and "Traceback" not in result.err
    reason = records.list_runs(str(root))[-1]["reason"]
    assert reason.startswith("environment 'bare': the environment store cannot be used (")
    (store / "unfinished").mkdir()
    pruned = cli("env", "prune")
    assert pruned.code == 2 and pruned.err.startswith(f"mlproject: error: cannot prune {store}: ")
    assert (store / "unfinished").exists()
