"""`mlproject runs export --mlflow URI`: real runs made through the CLI, exported into a real
`mlflow server` (sqlite store, artifacts served by it) started for this module, and read back
through MLflow's own client; also a sqlite:/// URI with no server, a server that is not there,
and mlflow not installed. The names rules (export/names.py) are checked on their own, without
MLflow."""
from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init
from mlproject.runner.export import names
from mlproject.runner.state import records

pytestmark = pytest.mark.slow
HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None  # imported only by the tests that use it
needs_mlflow = pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow is not installed (pip install 'mlproject[test]')")
SERVER_START = 180  # seconds: the first start migrates the database (~35 s on two busy cores)

DATA = b"a,b\n1,2\n"
MD5 = hashlib.md5(DATA).hexdigest()
TRAIN = """
import json, sys
from mlproject import log
alpha = float(sys.argv[1])
for epoch in range(5):
    log.metric("loss", 1.0 / (epoch + 1) + alpha, step=epoch)
log.metric("lr", 0.5)
log.metric("lr", 0.25)
log.param("optimizer", "adam")
open("plot.txt", "w").write("a picture")
log.artifact("plot.txt")
json.dump({"acc": 0.9}, open("metrics.json", "w"))
print("training done")
"""
HOSTILE = """
from mlproject import log
log.param("long", "y" * 10000)  # log keeps 6000 of them
log.param("lr/..", "1e-3")
log.param("alpha", "0.5")
log.metric("val loss", 1.0, step=1)
log.metric("a<b", 2.0, step=1)
log.metric("a>b", 3.0, step=1)
for i in range(2500):  # three log_batch calls of metrics, two of parameters
    log.metric("many", float(i), step=i)
log.params({f"p{i}": i for i in range(150)})
"""
SPEC = """
name: exported
data:
  raw: {path: data.csv}
entry_points:
  main:
    data: [raw]
    parameters: {alpha: {type: float, default: 0.1}}
    command: "python train.py {alpha}"
    metrics: metrics.json
  fail:
    command: "python fail.py"
  hostile:
    parameters: {alpha: {type: float, default: 0.1}, note: {type: string, default: ""}}
    command: "python hostile.py"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(server: subprocess.Popen[bytes]) -> None:
    """The server and every process it started (uvicorn, its job runner): its process group,
    asked to stop, then killed whatever is left of it."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(wait)
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on a free port of 127.0.0.1, up once `/health` answers."""
    if not HAS_MLFLOW:
        pytest.skip("mlflow is not installed (pip install 'mlproject[test]')")
    base = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log = (base / "server.log").open("wb")
    started = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{base / 'mlflow.db'}", "--artifacts-destination", str(base / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=base, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, env={**os.environ, "HOME": str(base)})
    try:
        deadline = time.monotonic() + SERVER_START
        while True:
            if started.poll() is not None:
                pytest.fail(f"mlflow server exited with {started.returncode}:\n"
                            f"{(base / 'server.log').read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not up after {SERVER_START} s:\n"
                            f"{(base / 'server.log').read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        _stop(started)
        log.close()


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _project(project: Callable[..., Path], name: str = "proj") -> Path:
    root = project({"MLproject": SPEC, "train.py": TRAIN, "hostile.py": HOSTILE,
                    "fail.py": "import sys\nprint('boom')\nsys.exit(3)\n",
                    "data.csv.dvc": f"outs:\n- md5: {MD5}\n  size: {len(DATA)}\n  hash: md5\n  path: data.csv\n",
                    ".gitignore": "/data.csv\n/plot.txt\n/metrics.json\n"}, name=name)
    (root / "data.csv").write_bytes(DATA)
    return git_init(root)


def _records(root: Path) -> dict[str, dict[str, Any]]:
    """The project's records by entry point (the last of each)."""
    found = {}
    for row in records.list_runs(str(root)):
        found[row["entry_point"]] = row
    return found


def _ms(iso: str) -> int:
    return round(dt.datetime.fromisoformat(iso).timestamp() * 1000)


def _runs(client: Any, experiment: str) -> dict[str, Any]:
    """The experiment's MLflow runs by mlproject run id."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    return {r.data.tags["mlproject.run_id"]: r for r in client.search_runs([found.experiment_id])}


@needs_mlflow
def test_runs_are_exported_with_params_metric_histories_tags_and_log_once(
        server: str, cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    root = _project(project)
    assert cli("run", str(root), "--env", "local").code == 0
    assert cli("run", str(root), "-e", "fail", "--env", "local").code == 3
    made = _records(root)

    done = cli("runs", "export", "--mlflow", server, "--project", str(root))
    assert done.code == 0, done.out + done.err
    lines = done.out.splitlines()
    assert len(lines) == 3 and lines[-1] == f"2 exported, 0 already exported, 0 not exported (to {server})"
    assert all(" exported as MLflow run " in line and "(experiment 'exported')" in line for line in lines[:2])
    assert "Traceback" not in done.err and "View run" not in done.out + done.err

    client = _client(server)
    runs = _runs(client, "exported")  # the project's name
    assert set(runs) == {made["main"]["id"], made["fail"]["id"]}
    main, record = runs[made["main"]["id"]], made["main"]
    run_id = main.info.run_id
    assert main.info.status == "FINISHED" and main.info.run_name == record["id"]
    assert (main.info.start_time, main.info.end_time) == (_ms(record["started_at"]), _ms(record["ended_at"]))
    assert main.data.params == {"alpha": "0.1", "optimizer": "adam"}
    loss = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in loss] == [(e, pytest.approx(1.0 / (e + 1) + 0.1)) for e in range(5)]
    assert [m.timestamp for m in loss] == [round(p[2] * 1000) for p in record["series"]["loss"]]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "lr")] == [(0, 0.5), (1, 0.25)]
    [acc] = client.get_metric_history(run_id, "acc")  # the metrics file's: once, at the end
    assert (acc.step, acc.value, acc.timestamp) == (0, 0.9, _ms(record["ended_at"]))
    tags = main.data.tags
    assert tags["mlproject.fingerprint"] == record["fingerprint"]
    assert tags["mlproject.data.raw"] == MD5
    assert tags["mlflow.source.git.commit"] == record["code"]["commit"]
    assert tags["mlproject.code.dirty"] == "false"
    assert (tags["mlflow.source.type"], tags["mlflow.project.entryPoint"]) == ("PROJECT", "main")
    assert (tags["mlproject.status"], tags["mlproject.environment"]) == ("succeeded", "local/local")
    assert "mlproject.renamed" not in tags and "mlproject.truncated" not in tags

    got = Path(client.download_artifacts(run_id, "", str(tmp_path / "got")))
    run_dir = records.runs_dir(str(root)) / record["id"]
    assert (got / "log.txt").read_bytes() == (run_dir / "log.txt").read_bytes()
    assert b"training done" in (got / "log.txt").read_bytes()
    assert json.loads((got / "mlproject-run.json").read_text())["fingerprint"] == record["fingerprint"]
    assert (got / "artifacts" / "plot.txt").read_text() == "a picture"

    failed = runs[made["fail"]["id"]]
    assert failed.info.status == "FAILED"
    assert (failed.data.tags["mlproject.status"], failed.data.tags["mlproject.exit_code"]) == ("failed", "3")

    again = cli("runs", "export", "--mlflow", server, "--project", str(root), "--json")
    assert again.code == 0, again.err
    rows = json.loads(again.out)
    assert {(r["id"], r["status"], r["mlflow_run_id"]) for r in rows} == {
        (i, "already_exported", r.info.run_id) for i, r in runs.items()}
    assert len(_runs(client, "exported")) == 2  # nothing exported twice


@needs_mlflow
def test_hostile_names_and_values_are_exported_and_the_mapping_noted(
        server: str, cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project)
    assert cli("run", str(root), "-e", "hostile", "-P", "note=" + "x" * 10000, "--env", "local").code == 0
    record = _records(root)["hostile"]
    done = cli("runs", "export", record["id"][:20], "--mlflow", server, "--project", str(root),
               "--experiment-name", "hostile names")
    assert done.code == 0, done.out + done.err
    run = _runs(_client(server), "hostile names")[record["id"]]
    params, tags = run.data.params, run.data.tags
    note = params["note"]
    assert len(note) == 6000 and note.startswith("x" * 5000)  # MLflow's limit, with a marker
    assert note.endswith("... [cut by mlproject: 10000 characters]")
    assert tags["mlproject.truncated"] == "note"
    assert params["long"] == "y" * 6000
    assert [m.step for m in _client(server).get_metric_history(run.info.run_id, "many")] == list(range(2500))
    assert {params[f"p{i}"] for i in range(150)} == {str(i) for i in range(150)}
    # MLflow takes no `..` path in a name, no `<`; a logged value that differs from the declared
    # parameter is kept beside it
    assert (params["lr_.."], params["alpha"], params["logged.alpha"]) == ("1e-3", "0.1", "0.5")
    assert set(run.data.metrics) == {"val loss", "a_b", f"a_b-{hashlib.sha256(b'a>b').hexdigest()[:8]}", "many"}
    renamed = json.loads(tags["mlproject.renamed"])
    assert renamed["param"] == {"lr/..": "lr_..", "alpha (logged)": "logged.alpha"}
    assert renamed["metric"]["a<b"] == "a_b" and set(renamed["metric"]) == {"a<b", "a>b"}


@needs_mlflow
def test_an_unfinished_earlier_export_is_replaced_and_ids_are_checked(
        server: str, cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project)
    assert cli("run", str(root), "--env", "local").code == 0
    record = _records(root)["main"]
    client = _client(server)
    experiment = client.create_experiment("replaced")
    left = client.create_run(experiment, tags={"mlproject.run_id": record["id"]}).info.run_id  # died mid-way

    unknown = cli("runs", "export", "nosuchrun", "--mlflow", server, "--project", str(root))
    assert (unknown.code, unknown.out) == (2, "")
    assert unknown.err == f"mlproject: error: no run 'nosuchrun' in {root}\n"

    done = cli("runs", "export", record["id"], "--mlflow", server, "--project", str(root),
               "--experiment-name", "replaced")
    assert done.code == 0, done.out + done.err
    assert client.get_run(left).info.lifecycle_stage == "deleted"
    [run] = _runs(client, "replaced").values()
    assert run.info.run_id != left and run.info.status == "FINISHED"


@needs_mlflow
def test_a_sqlite_uri_needs_no_server(cli: Callable[..., Any], project: Callable[..., Path],
                                      tmp_path: Path) -> None:
    root = _project(project)
    assert cli("run", str(root), "--env", "local").code == 0
    uri = f"sqlite:///{tmp_path / 'direct.db'}"
    done = cli("runs", "export", "--mlflow", uri, "--project", str(root), cwd=tmp_path)
    assert done.code == 0, done.out + done.err
    [run] = _runs(_client(uri), "exported").values()
    assert [(m.step, m.value) for m in _client(uri).get_metric_history(run.info.run_id, "lr")] == [(0, 0.5), (1, 0.25)]
    again = cli("runs", "export", "--mlflow", uri, "--project", str(root), cwd=tmp_path)
    assert again.code == 0 and again.out.splitlines()[0].endswith(f"already exported (MLflow run {run.info.run_id})")


@needs_mlflow
def test_a_run_still_running_named_by_id_is_skipped_and_the_export_is_incomplete(
        cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    import os

    from mlproject.runner.state import records

    root = _project(project)
    assert cli("run", str(root), "--env", "local").code == 0
    assert cli("run", str(root), "--env", "local", "--force").code == 0
    done_id, live_id = sorted(p.name for p in records.runs_dir(str(root)).iterdir())
    path = records.runs_dir(str(root)) / live_id / "run.json"
    record = json.loads(path.read_text())
    record.update(status="running", ended_at=None, exit_code=None)
    record["host"].update(pid=os.getpid(), pid_start=records.process_start(os.getpid()))
    path.write_text(json.dumps(record))  # its writer (this process) lives: still running
    uri = f"sqlite:///{tmp_path / 'partial.db'}"
    result = cli("runs", "export", "--mlflow", uri, done_id, live_id, "--project", str(root),
                 "--json", cwd=tmp_path)
    assert result.code == 4, result.err  # exitcodes.INCOMPLETE: the rest was exported
    rows = {row["id"]: row for row in json.loads(result.out)}
    assert rows[done_id]["status"] == "exported" and rows[live_id]["status"] == "skipped"


@needs_mlflow
def test_a_server_that_is_not_there_is_one_line_and_exit_2(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project)
    assert cli("run", str(root), "--env", "local").code == 0
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()
    done = cli("runs", "export", "--mlflow", uri, "--project", str(root))
    assert (done.code, done.out) == (2, "")
    assert done.err.startswith(f"mlproject: error: cannot reach the MLflow tracking server at {uri}: ")
    assert done.err.count("\n") == 1 and "Connection refused" in done.err
    assert time.monotonic() - started < 30  # no retries with back-off


def test_without_mlflow_the_extra_is_named_and_help_never_imports_it(
        project: Callable[..., Path]) -> None:
    from test_extras import mlproject

    root = _project(project)
    assert mlproject("run", "--env", "local", cwd=root).code == 0
    done = mlproject("runs", "export", "--mlflow", "http://127.0.0.1:9", cwd=root, blocked=("mlflow",))
    assert (done.code, done.out) == (2, "")
    assert done.err.startswith("mlproject: error: --mlflow needs MLflow's client, which is not "
                               "installed: pip install 'mlproject[mlflow]'")
    assert done.err.count("\n") == 1
    helped = mlproject("runs", "export", "--help", cwd=root, blocked=())
    assert helped.code == 0 and "--mlflow" in helped.out
    assert "mlflow" not in helped.loaded


@pytest.mark.parametrize(("name", "exported"), [
    ("loss", "loss"), ("val loss", "val loss"), ("a/b:c", "a/b:c"), ("a<b", "a_b"),
    ("lr/..", "lr_.."), ("/abs", "_abs"), ("a//b", "a__b"), ("./x", "._x"), ("..", "_."),
    ("", "_"), (".", "_"), ("é", "é"), ("tab\there", "tab_here"),
])
def test_names_mlflow_refuses_are_rewritten_the_same_way_every_time(name: str, exported: str) -> None:
    assert names.assign([name]) == {name: exported}
    assert names.accepted(exported)


def test_rewritten_names_never_take_a_name_that_is_given_or_each_other() -> None:
    mapping = names.assign(["a<b", "a_b", "a>b", "x" * 300, "x" * 299 + "y"])
    assert mapping["a_b"] == "a_b"  # a name MLflow takes keeps it
    assert len(set(mapping.values())) == 5 and all(names.accepted(v) for v in mapping.values())
    assert mapping == names.assign(["a<b", "a_b", "a>b", "x" * 300, "x" * 299 + "y"])
