"""Run records are typed values with a published schema: every record that real runs write fits
it (checked with jsonschema itself), reading checks records against that very schema, the
record of the previous format is still read, and unexpected errors end in exit 70."""
from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import Result, git_init, mlproject_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlproject.runner import realize
from mlproject.runner.envs.kinds import EnvKind
from mlproject.runner.state import record as record_module
from mlproject.runner.state import records, schemacheck
from mlproject.runner.state.status import Status
from mlproject.runner.util import exitcodes

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "runner" / "state" / "record.schema.json").read_text())
PUBLISHED = jsonschema.Draft202012Validator(SCHEMA)


def _files(root: Path) -> list[dict[str, Any]]:
    """Every run.json as written, oldest first."""
    return [json.loads(p.read_text()) for p in sorted(records.runs_dir(str(root)).glob("*/run.json"))]


def _fits(record: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in PUBLISHED.iter_errors(record)]
    assert not errors, errors
    assert schemacheck.problem(record, SCHEMA) is None
    assert record["format"] == records.RECORD_FORMAT == "mlproject.run/5"


PIPELINE = {"MLproject": """
    name: recs
    entry_points:
      prepare:
        command: "python prepare.py"
        outputs: [prepared.txt]
        metrics: m.json
      train:
        needs: [prepare]
        parameters: {alpha: {type: float, default: 0.5}}
        command: "cat prepared.txt > model.txt"
        outputs: [model.txt]
      broken: {command: "exit 3"}
      nothing: {command: "true", outputs: [never.txt]}
      slow: {command: "sleep 30", resources: {timeout: 0.5s}}
""", "prepare.py": """
    import json
    open("prepared.txt", "w").write("x")
    json.dump({"acc": 0.5}, open("m.json", "w"))
"""}


def test_every_record_real_runs_write_fits_the_published_schema(
        cli: Callable[..., Result], project: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = git_init(project(PIPELINE))
    assert cli("run", str(root), "-e", "train").code == 0  # succeeded: outputs, metrics
    assert cli("run", str(root), "-e", "train").code == 0  # up to date: reads, writes nothing
    assert cli("run", str(root), "-e", "broken").code == 3  # failed with its own code
    assert cli("run", str(root), "-e", "nothing").code == exitcodes.STEP_FAILED  # no output
    assert cli("run", str(root), "-e", "slow").code == exitcodes.TIMEOUT
    # a step refused before it starts (pinned data that changed while an earlier step ran)
    monkeypatch.setattr(realize, "data_changed", lambda *_: "data.x: changed while prepare ran")
    refused = cli("run", str(root), "-e", "train", "--force")
    assert refused.code == exitcodes.STEP_FAILED
    assert "train: failed before it started: data.x: changed while prepare ran" in refused.err
    written = _files(root)
    assert [(r["entry_point"], r["status"], r["exit_code"]) for r in written] == [
        ("prepare", "succeeded", 0), ("train", "succeeded", 0), ("broken", "failed", 3),
        ("nothing", "failed", 1), ("slow", "timeout", 124), ("prepare", "succeeded", 0),
        ("train", "failed", 1)]
    for record in written:
        _fits(record)
    assert written[0]["metrics"] == {"acc": 0.5} and written[0]["metrics_error"] is None
    assert written[-1]["reason"] == "data.x: changed while prepare ran"
    assert written[4]["resources"]["enforced"]["timeout"].startswith("0.5s")
    # what is read is what was written, as typed values
    assert [loaded.row() for loaded in records.loaded_runs(str(root))] == written
    shown = json.loads(cli("runs", "show", written[1]["id"], "--json", cwd=root).out)
    assert shown == written[1]


def test_the_start_record_and_an_interrupted_one_fit_and_a_killed_one_reads_as_crashed(
        project: Callable[..., Path]) -> None:
    root = project({"MLproject": "entry_points:\n  main: {command: 'sleep 60'}\n"})

    def started(child: subprocess.Popen[bytes]) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = [r for r in _files(root) if r["status"] == "running"]
            if found and (records.runs_dir(str(root)) / found[0]["id"] / "log.txt").exists():
                return found[0]
            assert child.poll() is None, child.communicate()
            time.sleep(0.05)
        raise AssertionError("no running record was written")

    child = mlproject_process("run", ".", cwd=root, stderr=subprocess.PIPE)
    running = started(child)
    _fits(running)  # the record written at start
    assert running["ended_at"] is None and running["exit_code"] is None
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=20) == exitcodes.INTERRUPTED
    [interrupted] = _files(root)
    _fits(interrupted)
    assert interrupted["status"] == "interrupted" and interrupted["exit_code"] == 130

    killed = mlproject_process("run", ".", cwd=root, stderr=subprocess.PIPE)
    left = started(killed)
    killed.kill()  # no chance to write the end: left running by a process that is gone
    killed.wait(timeout=20)
    on_disk = json.loads((records.runs_dir(str(root)) / left["id"] / "run.json").read_text())
    _fits(on_disk)
    assert on_disk["status"] == "running"
    assert records.lookup(str(root), left["id"]).found.status == "crashed"  # type: ignore[union-attr]


def _as_v4(record: dict[str, Any]) -> dict[str, Any]:
    """A record as mlproject wrote it under format mlproject.run/4 (before MLflow parity): the
    same keys, less mlflow and run_name."""
    gone = ("mlflow", "run_name")
    return {**{k: v for k, v in record.items() if k not in gone}, "format": "mlproject.run/4"}


def _as_v3(record: dict[str, Any]) -> dict[str, Any]:
    """A record as mlproject wrote it under format mlproject.run/3 (before tracking and sweeps):
    as /4, less sweep, series, logged_params and artifacts."""
    gone = ("sweep", "series", "logged_params", "artifacts")
    return {**{k: v for k, v in _as_v4(record).items() if k not in gone},
            "format": "mlproject.run/3"}


def _as_v2(record: dict[str, Any]) -> dict[str, Any]:
    """A record as mlproject wrote it under format mlproject.run/2 (before backends other than
    local): as /3, less handle, submission, settings and engine."""
    gone = ("handle", "submission", "settings", "engine")
    return {**{k: v for k, v in _as_v3(record).items() if k not in gone},
            "format": "mlproject.run/2"}


def _as_v1(record: dict[str, Any]) -> dict[str, Any]:
    """A record as mlproject wrote it under format mlproject.run/1 (the commit before /2):
    the same keys, less metrics_error and the environment's prefix, built_now and recipe when
    they had no value."""
    old = {**_as_v2(record), "format": "mlproject.run/1"}
    if old["metrics_error"] is None:
        del old["metrics_error"]
    old["environment"] = {k: v for k, v in record["environment"].items()
                          if not (k in ("prefix", "built_now", "recipe") and v is None)}
    return old


def test_a_record_of_the_previous_format_is_read(cli: Callable[..., Result],
                                                 project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    assert cli("run", str(root), "-e", "prepare").code == 0
    [record] = _files(root)
    path = records.runs_dir(str(root)) / record["id"] / "run.json"
    path.write_text(json.dumps(_as_v1(record)))
    assert "metrics_error" not in json.loads(path.read_text())
    table = cli("runs", cwd=root)
    assert table.code == 0 and f"{record['id']}  prepare      succeeded" in table.out
    # what the old formats did not hold is read as null and empty
    upgraded = {**record, "handle": None, "submission": None, "settings": {}, "engine": {},
                "sweep": None, "series": {}, "logged_params": {}, "artifacts": [], "mlflow": None,
                "run_name": None}
    assert json.loads(cli("runs", "show", record["id"], "--json", cwd=root).out) == upgraded
    shown_text = cli("runs", "show", record["id"], cwd=root).out
    assert shown_text.startswith(f"run {record['id']}: prepare succeeded\n")
    assert "  metric acc: 0.5\n" in shown_text and "  output prepared.txt: " in shown_text
    again = cli("run", str(root), "-e", "prepare")  # the up-to-date check reads it
    assert again.code == 0 and f"prepare: up to date (run {record['id']})" in again.err
    assert path.read_text() == json.dumps(_as_v1(record))  # read, never rewritten
    path.write_text(json.dumps(_as_v2(record)))
    assert json.loads(cli("runs", "show", record["id"], "--json", cwd=root).out) == upgraded
    path.write_text(json.dumps(_as_v3(record)))
    assert json.loads(cli("runs", "show", record["id"], "--json", cwd=root).out) == {
        **record, "sweep": None, "series": {}, "logged_params": {}, "artifacts": [], "mlflow": None,
        "run_name": None}
    path.write_text(json.dumps(_as_v4(record)))
    assert json.loads(cli("runs", "show", record["id"], "--json", cwd=root).out) == {
        **record, "mlflow": None, "run_name": None}
    path.write_text(json.dumps({**record, "format": "mlproject.run/6"}))
    shown = cli("runs", "show", record["id"], cwd=root)
    assert shown.code == 2
    assert shown.err == (f"mlproject: error: run {record['id']}: run.json has format "
                         '"mlproject.run/6", which this mlproject does not read (it reads '
                         "mlproject.run/1, mlproject.run/2, mlproject.run/3, mlproject.run/4 and "
                         "mlproject.run/5): "
                         "a newer "
                         "mlproject wrote it? "
                         f"(in {records.runs_dir('.') / record['id']})\n")


def test_a_record_is_a_value() -> None:
    record = record_module.from_json(_SAMPLE)
    assert record.status is Status.SUCCEEDED and record.environment.kind is EnvKind.LOCAL
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = Status.FAILED  # type: ignore[misc]
    assert record_module.from_json(record.to_json()) == record
    assert record.to_json() == _SAMPLE
    from mlproject.runner import recording

    built = recording.built(record, "/envs/abc", True, {"pins": ["six==1.16.0"]})
    assert record.environment.prefix is None  # a new value; the old one is as it was
    _fits(built.to_json())
    assert built.to_json()["environment"] == {**_SAMPLE["environment"], "prefix": "/envs/abc",
                                              "built_now": True,
                                              "recipe": {"pins": ["six==1.16.0"]}}


def test_the_schema_and_the_enums_are_one() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert schemacheck.keywords_unknown(SCHEMA) == set()
    props = SCHEMA["properties"]
    assert props["status"]["enum"] == [s.value for s in Status]
    assert props["environment"]["properties"]["kind"]["enum"] == [k.value for k in EnvKind]
    assert props["format"]["const"] == records.RECORD_FORMAT
    fields = {f.name for f in dataclasses.fields(record_module.RunRecord)}
    assert set(SCHEMA["required"]) == fields | {"format"}
    assert set(props) == set(SCHEMA["required"])


def test_schema_record_prints_the_published_schema(cli: Callable[..., Result]) -> None:
    result = cli("schema", "--record")
    assert result.code == 0 and json.loads(result.out) == SCHEMA
    assert json.loads(cli("schema").out)["title"] == "MLproject"  # the format's, as before


# -- the checker and jsonschema agree on whatever a record holds ------------------------------

_SAMPLE: dict[str, Any] = {
    "format": "mlproject.run/5", "id": "20990101-000000-000000-0badid", "invocation": "i",
    "project": "/p", "spec": "/p/MLproject", "spec_digest": "d", "name": None,
    "entry_point": "main", "status": "succeeded", "started_at": "2026-01-01T00:00:00+00:00",
    "ended_at": "2026-01-01T00:00:01+00:00", "duration": 1.5, "exit_code": 0, "signal": None,
    "reason": None, "backend": "local", "command": "c", "parameters": {"a": "1"},
    "fingerprint": "f", "code": {"kind": "git", "dirty": True},
    "environment": {"name": "local", "kind": "local", "detail": "python", "prefix": None,
                    "built_now": None, "recipe": None},
    "resources": {"requested": {"cpu": 1}, "enforced": {"cpu": "x"}, "peak_memory": 10},
    "data": {"d": {"md5": "m"}}, "metrics_file": "m.json", "metrics": {"a": 1.0},
    "metrics_error": None, "outputs": {"o": {"md5": "x"}, "p": None}, "plan": {"steps": []},
    "mlproject_version": "0",
    "host": {"hostname": "h", "pid": 1, "pid_start": "0", "platform": "p", "python": "3"},
    "log": "log.txt", "handle": {"backend": "docker", "run_id": "r", "id": "c0ffee", "data": {}},
    "submission": None, "settings": {"network": "none"}, "engine": {"oom_killed": False},
    "sweep": {"id": "tune-1", "name": "tune", "index": 3},
    "series": {"loss": [[0, 1.5, 1.7e9], [None, 0.5, 1.7e9]]}, "logged_params": {"opt": "adam"},
    "artifacts": [{"path": "artifacts/a.png", "size": 10}],
    "mlflow": {"tracking_uri": "sqlite:////r/mlflow/mlflow.db", "ours": True, "experiment": "e",
               "runs": [{"id": "abc", "name": "r", "status": "FINISHED", "parent": None,
                         "artifact_uri": "/r/mlflow/artifacts/1/abc/artifacts"}],
               "tags": {"mlflow.runName": "r"}, "problem": None},
    "run_name": "first"}


def _strict_jsonschema() -> Any:
    """jsonschema reading JSON strictly, as the checker says it does: numbers are finite and
    integers have no fraction (Python's json reads NaN, 1e999 and 1.0)."""
    import math

    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many({
        "integer": lambda _, v: type(v) is int,
        "number": lambda _, v: type(v) in (int, float) and _finite(v, math),
    })
    return jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=checker)(
        SCHEMA)


def _finite(value: float, math: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


STRICT = _strict_jsonschema()
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats()
    | st.sampled_from(["local", "docker", "succeeded", "running", "mlproject.run/2", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                               max_size=3),
    max_leaves=8)


@st.composite
def near_sample(draw: st.DrawFn) -> Any:
    record = json.loads(json.dumps(_SAMPLE))
    for _ in range(draw(st.integers(0, 3))):
        target = record
        key = draw(st.sampled_from(sorted(record)))
        if isinstance(record[key], dict) and record[key] and draw(st.booleans()):
            target, key = record[key], draw(st.sampled_from(sorted(record[key]) + ["extra"]))
        if draw(st.integers(0, 3)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(values)
    return record


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_sample())
def test_the_checker_agrees_with_jsonschema(data: Any) -> None:
    problem = schemacheck.problem(data, SCHEMA)
    assert (problem is None) == STRICT.is_valid(data), problem
    if problem is None:  # what the checker passes, the typed record is built from
        assert record_module.from_json(data).to_json() == {
            k: v for k, v in data.items() if k in SCHEMA["properties"]}


def test_what_is_wrong_is_said_with_its_path() -> None:
    def said(change: Callable[[dict[str, Any]], None]) -> str | None:
        record = json.loads(json.dumps(_SAMPLE))
        change(record)
        return record_module.problem_of(record)

    assert said(lambda r: r["host"].update(pid="1")) == 'has host.pid "1", not an integer'
    assert said(lambda r: r.pop("log")) == "has no log"
    assert said(lambda r: r["resources"].update(more=1)) == (
        "has resources.more, which is no part of resources")
    assert said(lambda r: r["metrics"].update(b=float("nan"))) == (
        "has metrics.b NaN, not a finite number")
    assert said(lambda r: r["environment"].update(kind="vm")) == (
        'has environment.kind "vm", not one of local, python, conda, docker')
    assert said(lambda r: r.update(duration="3s")) == (
        'has duration "3s", not a finite number or null')


# -- unexpected errors: one line, a crash log, exit 70 -----------------------------------------

LINE = re.compile(r"mlproject: internal error: (?P<what>.*) \(while running `mlproject "
                  r"(?P<verb>[^`]*)`\); the traceback is in (?P<path>\S+); please report it\n")


def _bug(*_: Any, **__: Any) -> Any:
    raise ZeroDivisionError("a bug")


def _internal(result: Result, verb: str) -> str:
    assert result.code == exitcodes.INTERNAL == 70, result.err
    match = LINE.fullmatch(result.err.splitlines(keepends=True)[-1])
    assert match, result.err
    assert match["what"] == "ZeroDivisionError: a bug" and match["verb"] == verb
    log = Path(match["path"]).read_text()
    assert "Traceback (most recent call last):" in log and "ZeroDivisionError: a bug" in log
    return log


def test_a_bug_while_a_step_is_recorded_exits_70(cli: Callable[..., Result],
                                                 project: Callable[..., Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from mlproject.runner import recording

    root = git_init(project(PIPELINE))
    monkeypatch.setattr(recording, "read_metrics", _bug)
    result = cli("run", str(root), "-e", "prepare")
    assert "prepare: running (run " in result.err  # the step ran; its record could not be ended
    assert "recording.py" in _internal(result, "run")
    [left] = _files(root)
    _fits(left)  # the start record stays, and reads as crashed once this process is gone
    assert left["status"] == "running"


def test_a_bug_in_plan_or_runs_exits_70(cli: Callable[..., Result], project: Callable[..., Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mlproject.runner.plan import Plan

    root = git_init(project(PIPELINE))
    assert cli("run", str(root), "-e", "prepare").code == 0
    with monkeypatch.context() as patch:
        patch.setattr(Plan, "to_json", _bug)
        _internal(cli("plan", str(root), "-e", "prepare", "--json"), "plan")
    monkeypatch.setattr(schemacheck, "problem", _bug)
    _internal(cli("runs", cwd=root), "runs")


# -- exit codes: one table, in the module and in the README ------------------------------------

def test_the_readme_has_the_exit_code_table() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Exit codes"):]
    section = section[:section.index("\n#", 1)]
    rows = set(re.findall(r"^\| (\d+) \|", section, re.MULTILINE))
    assert rows == {str(code) for code in exitcodes.MEANINGS}


def test_runs_reads_records_without_jsonschema(cli: Callable[..., Result],
                                               project: Callable[..., Path]) -> None:
    import os
    import sys

    root = project({"MLproject": "entry_points:\n  main: {command: 'true'}\n"})
    assert cli("run", str(root)).code == 0
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlproject.runner", "runs"],
                          capture_output=True, text=True, cwd=root, env=os.environ.copy(),
                          check=True)
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "mlproject.runner.state.schemacheck" in modules and "jsonschema" not in modules
