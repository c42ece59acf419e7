"""MLflow's tracking calls in a step land in its record: the step's MLflow is pointed at a store
of the run's own (the SQLite store MLflow's current release makes by default), read back without
importing mlflow; a tracking URI the user set is left alone. The stores here are written by the
real mlflow package (a test dependency); hostile ones are made from a real one."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, git, git_init
from mlproject.runner import tracking
from mlproject.runner.state import record as record_format
from mlproject.runner.state import records, schemacheck
from mlproject.runner.tracking import mlflowstore

TRAIN = """
import sys, mlflow
with mlflow.start_run():
    mlflow.log_param("alpha", sys.argv[1])
    for i in range(5):
        mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    mlflow.log_metric("acc", 0.9)
    mlflow.set_tag("team", "vision")
    open("picture.txt", "w").write("a picture")
    mlflow.log_artifact("picture.txt")
    with mlflow.start_run(nested=True, run_name="inner"):
        mlflow.log_metric("acc", 0.1)  # the nested run's: not the step's
        mlflow.log_param("depth", "3")
"""
SPEC = """
name: mlf-demo
entry_points:
  main:
    parameters: {alpha: {type: float, default: 0.5}}
    command: "python train.py {alpha}"
    gates: {acc: {min: 0.85}}
"""


def _only_record(root: Path) -> dict[str, Any]:
    [run_dir] = list(records.runs_dir(str(root)).iterdir())
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return data


@pytest.fixture(scope="session")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store written by the real mlflow as a step writes it (MLFLOW_TRACKING_URI set as
    mlproject sets it), with a nested run; and MLflow's own default checked to be SQLite."""
    pytest.importorskip("mlflow", reason="the mlflow package (a test dependency) is not installed")
    run_dir = tmp_path_factory.mktemp("store-run")
    mlflowstore.prepare(run_dir)
    sets, _ = mlflowstore.variables(run_dir, {}, "exp", None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    work = tmp_path_factory.mktemp("store-cwd")
    done = subprocess.run([sys.executable, "-c", TRAIN, "0.5"], cwd=work, env={**env, **sets},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(work)) == ["picture.txt"]  # no mlflow.db, no mlruns where it ran
    # the store format MLflow's release uses by default, where nothing says otherwise
    default = subprocess.run([sys.executable, "-c", "import mlflow; print(mlflow.get_tracking_uri())"],
                             cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert default.stdout.strip() == f"sqlite:///{work}/mlflow.db", default.stderr
    return run_dir


def _copy(real_store: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(real_store, run_dir, symlinks=True)
    db = sqlite3.connect(run_dir / mlflowstore.STORE / mlflowstore.DB)  # moved with the run
    db.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)",
               (str(real_store), str(run_dir)))
    db.commit()
    db.close()
    return run_dir


def test_the_store_mlflow_writes_is_read_without_mlflow(real_store: Path, tmp_path: Path) -> None:
    run_dir = _copy(real_store, tmp_path)
    code = ("import sys; sys.modules['mlflow'] = None\n"  # importing mlflow would fail
            "from pathlib import Path\nfrom mlproject.runner import tracking\n"
            f"t = tracking.read(Path({str(run_dir)!r}))\n"
            "print(sorted(t.series), t.params, t.mlflow['tags']['team'], t.problem)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "['acc', 'loss'] {'alpha': '0.5'} vision None", done.stderr
    found = tracking.read(run_dir)
    assert [p[:2] for p in found.series["loss"]] == [[i, 1.0 / (i + 1)] for i in range(5)]
    assert found.last == {"loss": 0.2, "acc": 0.9}  # the nested run's acc is its own
    runs = found.mlflow["runs"] if found.mlflow else []
    assert [r["name"] for r in runs][1] == "inner" and runs[1]["parent"] == runs[0]["id"]
    assert [a["path"].rsplit("/", 1)[-1] for a in found.artifacts] == ["picture.txt"]
    assert found.artifacts[0]["path"].startswith("mlflow/artifacts/")
    assert schemacheck.problem(mlflowstore.completed({"tracking_uri": "u", "ours": True,
                                                      "experiment": "exp"}, found.mlflow),
                               record_format.schema()["properties"]["mlflow"]) is None


def _db(run_dir: Path) -> Path:
    return run_dir / mlflowstore.STORE / mlflowstore.DB


@pytest.mark.parametrize("damage", ["garbage", "empty", "directory", "link", "fifo", "no-tables",
                                    "truncated"])
def test_a_hostile_store_never_stops_the_record(real_store: Path, tmp_path: Path,
                                                damage: str) -> None:
    run_dir = _copy(real_store, tmp_path)
    db = _db(run_dir)
    if damage == "garbage":
        db.write_bytes(b"\x00not a database" * 1000)
    elif damage == "empty":
        db.write_bytes(b"")
    elif damage == "directory":
        db.unlink()
        db.mkdir()
    elif damage == "link":  # a link could name any database of the user's
        shutil.copy(db, tmp_path / "elsewhere.db")
        db.unlink()
        db.symlink_to(tmp_path / "elsewhere.db")
    elif damage == "fifo":
        db.unlink()
        os.mkfifo(db)
    elif damage == "no-tables":
        db.unlink()
        sqlite3.connect(db).execute("CREATE TABLE other (x)").connection.commit()
    elif damage == "truncated":
        with open(db, "r+b") as handle:
            handle.truncate(db.stat().st_size // 3)
    started = time.monotonic()
    found = tracking.read(run_dir)
    assert time.monotonic() - started < 5
    assert not found.series and not found.params
    if damage == "empty":  # SQLite takes an empty file as an empty database
        assert found.problem and "is not one MLflow wrote" in found.problem
    else:
        assert found.problem and "MLflow store" in found.problem, found.problem


def test_values_of_the_wrong_kind_are_left_out_and_said(real_store: Path, tmp_path: Path) -> None:
    run_dir = _copy(real_store, tmp_path)
    db = sqlite3.connect(_db(run_dir))
    run = db.execute("SELECT run_uuid FROM runs ORDER BY start_time LIMIT 1").fetchone()[0]
    late = 9_999_999_999_000  # after what mlflow logged
    rows = [("loss", "x", late + 1, 9, run, 0), ("loss", 0.0, late + 2, 10, run, 1),  # NaN, as kept
            ("loss", 1e308 * 10, late + 3, 11, run, 0), ("", 1.0, late + 4, 0, run, 0),
            ("loss", 0.5, "noon", 12, run, 0), ("loss", 0.125, late + 5, 13, run, 0)]
    db.executemany("INSERT INTO metrics (key, value, timestamp, step, run_uuid, is_nan) "
                   "VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.execute("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", ("x", b"\xff\x00", run))  # a blob: no text
    db.execute("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", ("huge", "v" * 100_000, run))
    db.commit()
    found = tracking.read(run_dir)
    assert [p[:2] for p in found.series["loss"]][-1] == [13, 0.125]
    assert found.problem == "5 MLflow metric values left out (not finite)"
    assert "x" not in found.params
    assert found.mlflow and len(found.mlflow["tags"]["huge"]) < 5_100


def test_a_store_held_by_a_writer_is_waited_for_a_bounded_time(
        real_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _copy(real_store, tmp_path)
    monkeypatch.setattr(mlflowstore, "LOCK_WAIT", 0.3)
    holder = sqlite3.connect(_db(run_dir), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a child of the step still logging, say
    try:
        started = time.monotonic()
        found = tracking.read(run_dir)
        assert time.monotonic() - started < 3
        assert found.problem and "locked" in found.problem
    finally:
        holder.execute("ROLLBACK")


def test_a_flood_of_values_is_bounded(real_store: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _copy(real_store, tmp_path)
    db = sqlite3.connect(_db(run_dir))
    run = db.execute("SELECT run_uuid FROM runs ORDER BY start_time LIMIT 1").fetchone()[0]
    db.executemany("INSERT INTO metrics (key, value, timestamp, step, run_uuid, is_nan) "
                   "VALUES ('flood', ?, ?, ?, ?, 0)",
                   [(float(i), 2_000_000_000_000 + i, i, run) for i in range(30_000)])
    db.commit()
    monkeypatch.setattr(mlflowstore, "MAX_ROWS", 20_000)
    found = tracking.read(run_dir)
    assert found.problem and "more than 20000 metric values" in found.problem
    assert len(found.series["flood"]) == tracking.read.__globals__["MAX_POINTS"]
    assert found.series["flood"][0][:2] == [0, 0.0]


def test_artifact_locations_outside_the_run_are_not_listed(real_store: Path, tmp_path: Path) -> None:
    run_dir = _copy(real_store, tmp_path)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.pem").write_text("k")
    (run_dir / "mlflow" / "link").symlink_to(outside)
    db = sqlite3.connect(_db(run_dir))
    db.execute("UPDATE runs SET artifact_uri = ?", (str(run_dir / "mlflow" / ".." / ".." / "secret"),))
    db.execute("INSERT INTO runs (run_uuid, name, status, start_time, artifact_uri, lifecycle_stage,"
               " experiment_id, source_type, user_id, source_name, entry_point_name, source_version)"
               " VALUES ('r2', 'linked', 'FINISHED', 9999999999999, ?, 'active', 1, 'LOCAL', 'u',"
               " '', '', '')", (str(run_dir / "mlflow" / "link"),))
    db.commit()
    found = tracking.read(run_dir)
    assert found.artifacts == () and found.mlflow is not None
    assert "key.pem" not in json.dumps(found.artifacts)


def test_variables_leave_a_tracking_uri_the_user_set(tmp_path: Path) -> None:
    sets, said = mlflowstore.variables(tmp_path, {"MLFLOW_TRACKING_URI":
                                                  "https://alice:s3cret@mlflow.example:5000/x"},
                                       None, "proj")
    assert "MLFLOW_TRACKING_URI" not in sets and sets["MLFLOW_EXPERIMENT_NAME"] == "proj"
    assert said == {"tracking_uri": "https://***@mlflow.example:5000/x", "ours": False,
                    "experiment": "proj"}
    # the URI this mlproject set for this very run (a worker on a shared filesystem) is its own
    mine, _ = mlflowstore.variables(tmp_path, {}, None, None)
    again, said = mlflowstore.variables(tmp_path, mine, None, None)
    assert said["ours"] and again["MLFLOW_TRACKING_URI"] == mine["MLFLOW_TRACKING_URI"]
    # --experiment-name wins; an experiment id the user gave is kept without a name over it
    named, _ = mlflowstore.variables(tmp_path, {"MLFLOW_EXPERIMENT_NAME": "users"}, "given", None)
    assert named["MLFLOW_EXPERIMENT_NAME"] == "given"
    by_id, said = mlflowstore.variables(tmp_path, {"MLFLOW_EXPERIMENT_ID": "7"}, None, "p")
    assert "MLFLOW_EXPERIMENT_NAME" not in by_id
    assert mine["MLFLOW_EXPERIMENT_NAME"] == "Default"


def test_a_workers_report_of_the_wrong_shape_is_left_out() -> None:
    good = {"runs": [{"id": "a", "name": None, "status": "FINISHED", "parent": None,
                      "artifact_uri": None}], "tags": {"t": "v"}, "problem": None}
    assert tracking.from_json({"series": {}, "params": {}, "mlflow": good}).mlflow == good
    bad = tracking.from_json({"series": {}, "params": {}, "mlflow": {**good, "tags": {"t": 1}}})
    assert bad.mlflow is None and bad.problem and "wrong shape" in bad.problem


@pytest.mark.slow
def test_an_unchanged_mlflow_script_reaches_the_record_the_lock_and_the_gate(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    pytest.importorskip("mlflow", reason="the mlflow package (a test dependency) is not installed")
    root = git_init(project({"MLproject": SPEC, "train.py": TRAIN}))
    done = cli("run", str(root), "--env", "local", "--experiment-name", "exp1", "--run-name",
               "first try")
    assert done.code == 0, done.err
    record = _only_record(root)
    assert record["metrics"] == {"loss": 0.2, "acc": 0.9} and record["metrics_error"] is None
    assert [p[:2] for p in record["series"]["loss"]] == [[i, 1.0 / (i + 1)] for i in range(5)]
    assert record["logged_params"] == {"alpha": "0.5"} and record["run_name"] == "first try"
    mlflow = record["mlflow"]
    assert mlflow["ours"] and mlflow["experiment"] == "exp1" and mlflow["problem"] is None
    assert mlflow["tracking_uri"] == f"sqlite:///{records.runs_dir(str(root)) / record['id']}/mlflow/mlflow.db"
    assert mlflow["tags"]["team"] == "vision" and [r["name"] for r in mlflow["runs"]][1] == "inner"
    assert [a["path"].rsplit("/", 1)[-1] for a in record["artifacts"]] == ["picture.txt"]
    # nothing of MLflow's in the project: its tree is as committed, and the next run up to date
    status = git(root, "status", "--porcelain", "--untracked-files=all")
    assert sorted(status.split("\n")) == ["", "?? mlproject.lock", "?? picture.txt"]
    lock = (root / "mlproject.lock").read_text()
    assert '"acc": 0.9' in lock or "acc: 0.9" in lock
    gate = cli("gate", str(root))
    assert gate.code == 0 and "PASS main acc: 0.9 >= bound 0.85 (min)" in gate.out, gate.out + gate.err


@pytest.mark.slow
def test_a_tracking_uri_the_user_set_is_left_alone_and_said(
        cli: Callable[..., Result], project: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason="the mlflow package (a test dependency) is not installed")
    root = git_init(project({"MLproject": SPEC, "train.py": TRAIN}))
    users = tmp_path / "users.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{users}")
    done = cli("run", str(root), "--env", "local")
    assert done.code == 0, done.err
    record = _only_record(root)
    assert record["mlflow"]["ours"] is False and record["mlflow"]["tracking_uri"] == f"sqlite:///{users}"
    assert "set by the user" in record["mlflow"]["problem"] and record["metrics"] == {}
    assert record["mlflow"]["experiment"] == "mlf-demo"
    assert not (records.runs_dir(str(root)) / record["id"] / "mlflow").exists()
    logged = sqlite3.connect(users).execute("SELECT key, value FROM metrics WHERE key='acc'").fetchall()
    assert ("acc", 0.9) in logged


def test_docker_args_as_mlflow_makes_them(cli: Callable[..., Result],
                                          project: Callable[..., Path]) -> None:
    from mlproject.runner.backends.docker.argv import ArgvError, docker_args

    assert docker_args(["label=a=b", "read-only", "e=A=b", "shm-size=1g"]) == [
        "--label", "a=b", "--read-only", "-e", "A=b", "--shm-size", "1g"]
    for bad, why in (("--privileged", "is not a `docker run` option name"),
                     ("rm", "cannot be given"), ("name=x", "cannot be given"),
                     ("t", "a terminal would merge"),
                     ("memory=1g", "declare resources.memory"),
                     ("gpus=all", "declare resources.gpu")):
        with pytest.raises(ArgvError, match=why):
            docker_args([bad])
    root = git_init(project({"MLproject": SPEC, "train.py": TRAIN}))
    refused = cli("run", str(root), "-A", "gpus=all")
    assert refused.code == 2 and "give them with --backend docker" in refused.err
    assert not records.runs_dir(str(root)).exists() or not list(records.runs_dir(str(root)).iterdir())
    named = cli("run", str(root), "--run-name", "bad\nname")
    assert named.code == 2 and "--run-name" in named.err


@pytest.mark.slow
def test_in_a_container_mlflow_writes_the_runs_store_and_docker_args_reach_docker_run(
        cli: Callable[..., Result], project: Callable[..., Path], real_store: Path,
        docker: Any) -> None:
    """The store's URI is moved into the container with the run directory (a step writing it
    there: the test image has no mlflow, so the step puts a store mlflow wrote where the URI
    says), and `-A e=NAME=VALUE` is `docker run -e NAME=VALUE`."""
    step = ("import os, shutil; uri = os.environ['MLFLOW_TRACKING_URI']; "
            "assert uri.startswith('sqlite:////mlproject/project/.mlproject/runs/'), uri; "
            "shutil.copy('store.db', uri[len('sqlite:///'):]); print('given', os.environ['FROM_A'])")
    text = f"""
        name: boxed
        environments:
          box:
            docker: {{image: "{docker.image}"}}
        entry_points:
          main:
            environment: box
            command: "python3 -c \\"{step}\\""
    """
    root = project({"MLproject": text, ".gitignore": ".mlproject/\n"})
    shutil.copy(_db(real_store), root / "store.db")
    git_init(root)
    done = cli("run", str(root), "--backend", "docker", "--backend-config",
               json.dumps({"network": "none"}), "-A", "e=FROM_A=yes")
    assert done.code == 0, done.err
    record = _only_record(root)
    assert record["metrics"] == {"loss": 0.2, "acc": 0.9} and record["logged_params"] == {"alpha": "0.5"}
    assert "given yes" in (records.runs_dir(str(root)) / record["id"] / "log.txt").read_text()
    assert record["mlflow"]["tracking_uri"].startswith(f"sqlite:///{root}/.mlproject/runs/")
