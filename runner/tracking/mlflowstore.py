"""What a step's code logged through MLflow's API (`mlflow.log_metric`, autolog, ...), read into
the run's record.

A step runs with MLFLOW_TRACKING_URI pointing at a store of its own inside the run directory
(`variables`), unless the user set one: then it is left alone and the record says so. The store
is the one MLflow's current release makes by default, a SQLite database (3.x refuses a file
store unless told otherwise); it is read here with the standard library's sqlite3, never with
mlflow, which takes seconds to import and need not be installed where mlproject runs.

The database is the step's, so anything may be in it: it is opened read-only, never through a
link, with a bounded wait for a writer's lock; what cannot be read is said in `problem`, and
what is read is bounded (MAX_ROWS metric rows, series thinned by the caller).
"""
from __future__ import annotations

import math
import os
import stat
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproject.runner.util.urls import redact

if TYPE_CHECKING:  # imported where a store is read (7 ms, on every run's path otherwise)
    import sqlite3

STORE = "mlflow"  # under the run directory: mlflow.db, and artifacts/ where MLflow honours it
DB = "mlflow.db"
MAX_ROWS = 2_000_000  # metric rows read in all (a million-step series is far past any chart)
MAX_RUNS = 1_000
MAX_TAG_CHARS = 5_000  # a tag's value kept in the record (mlflow.log-model.history is JSON)
MAX_PARAMS = 1_000
LOCK_WAIT = 5.0  # seconds: a writer (a step's child still logging) holding the database


@dataclass(frozen=True)
class MlflowRun:
    id: str
    name: str | None
    status: str | None
    parent: str | None  # mlflow.parentRunId: a nested run
    artifact_uri: str | None


@dataclass(frozen=True)
class MlflowTracked:
    params: dict[str, str] = field(default_factory=dict)
    series: dict[str, list[list[Any]]] = field(default_factory=dict)  # [step, value, seconds]
    tags: dict[str, str] = field(default_factory=dict)
    runs: tuple[MlflowRun, ...] = ()
    problem: str | None = None


def variables(run_dir: Path, given: Mapping[str, str], experiment: str | None,
              default_experiment: str | None) -> tuple[dict[str, str], dict[str, Any]]:
    """The variables that point a step's MLflow at the run's own store, and what the record
    says of it. `given`: the step's environment as it would be without these (the user's
    variables and the step's own); a tracking URI set there is kept, and nothing is read.
    `experiment`: `--experiment-name`, over any other; else the user's MLFLOW_EXPERIMENT_NAME,
    else `default_experiment` (the project's name)."""
    sets: dict[str, str] = {}
    name = experiment or given.get("MLFLOW_EXPERIMENT_NAME") or default_experiment or "Default"
    if experiment or not given.get("MLFLOW_EXPERIMENT_ID"):
        sets["MLFLOW_EXPERIMENT_NAME"] = name  # an id the user gave chooses the experiment
    store = run_dir / STORE
    ours = f"sqlite:///{store / DB}"
    user_uri = given.get("MLFLOW_TRACKING_URI")
    if user_uri and user_uri != ours:  # equal: set by the mlproject that submitted the step
        return sets, {"tracking_uri": redact(user_uri), "ours": False, "experiment": name}
    sets["MLFLOW_TRACKING_URI"] = ours
    # MLflow 3 takes a store's default artifact root from this variable (the tracking server
    # exports it to its workers); older releases ignore it and write ./mlruns, as `mlflow run`
    # does, where the step runs
    if not given.get("_MLFLOW_SERVER_ARTIFACT_ROOT"):
        sets["_MLFLOW_SERVER_ARTIFACT_ROOT"] = str(store / "artifacts")
    return sets, {"tracking_uri": sets["MLFLOW_TRACKING_URI"], "ours": True, "experiment": name}


def prepare(run_dir: Path) -> None:
    """The store's directory, made before the step starts (SQLite makes the file, not its
    directory)."""
    (run_dir / STORE).mkdir(mode=0o755, exist_ok=True)


def _open(path: Path) -> sqlite3.Connection | str:
    """The database at `path`, read-only; or why not. A link is refused (it could name any
    file of the user's), as is anything but a regular file."""
    import sqlite3

    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"the MLflow store {path.name} cannot be read: {exc.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"the MLflow store {path.name} is not a regular file"
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT, check_same_thread=False)
        db.execute("PRAGMA query_only = 1")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        return f"the MLflow store {path.name} cannot be read: {exc}"
    missing = {"runs", "metrics", "params", "tags"} - tables
    if missing:
        db.close()
        return f"the MLflow store {path.name} is not one MLflow wrote (no {', '.join(sorted(missing))})"
    return db


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def read(run_dir: Path) -> MlflowTracked | None:
    """What the step logged through MLflow into the run's store; None when there is no store
    (the step used no MLflow, or the user's tracking URI). Never raises."""
    import sqlite3

    opened = _open(run_dir / STORE / DB)
    if opened == "":
        return None
    if isinstance(opened, str):
        return MlflowTracked(problem=opened)
    try:
        with opened as db:
            return _read(db)
    except (sqlite3.Error, MemoryError, ValueError) as exc:
        return MlflowTracked(problem=f"the MLflow store cannot be read: {exc}")
    finally:
        opened.close()


def _read(db: sqlite3.Connection) -> MlflowTracked:
    notes: list[str] = []
    rows = db.execute("SELECT run_uuid, name, status, start_time, artifact_uri, lifecycle_stage "
                      "FROM runs ORDER BY start_time, run_uuid LIMIT ?", (MAX_RUNS + 1,)).fetchall()
    if len(rows) > MAX_RUNS:
        notes.append(f"the MLflow store holds more than {MAX_RUNS} runs: the rest are left out")
        rows = rows[:MAX_RUNS]
    rows = [r for r in rows if isinstance(r[0], str) and r[5] != "deleted"]
    ids = [r[0] for r in rows]
    tags_of: dict[str, dict[str, str]] = {i: {} for i in ids}
    for key, value, run in db.execute("SELECT key, value, run_uuid FROM tags"):
        if run in tags_of and isinstance(key, str) and isinstance(value, str):
            tags_of[run][key] = value if len(value) <= MAX_TAG_CHARS else (
                value[:MAX_TAG_CHARS] + f"... ({len(value)} characters in the store)")
    runs = tuple(MlflowRun(r[0], _text(r[1]) or tags_of[r[0]].get("mlflow.runName"), _text(r[2]),
                           tags_of[r[0]].get("mlflow.parentRunId"), _text(r[4])) for r in rows)
    # The step's own values are its top-level runs' (a step usually makes one); nested runs
    # (a search the code ran itself) are listed, their values kept with them in the store.
    top = [r.id for r in runs if r.parent is None or r.parent not in tags_of] or ids
    if len(top) > 1:
        notes.append(f"the code made {len(top)} MLflow runs: their values are merged, a later "
                     "run's over an earlier one's")
    chosen = set(top)
    order = {run: i for i, run in enumerate(top)}
    params: dict[str, str] = {}
    for key, value, _run in sorted(
            (r for r in db.execute("SELECT key, value, run_uuid FROM params") if r[2] in chosen),
            key=lambda r: order[r[2]]):
        if isinstance(key, str) and isinstance(value, str) and (
                key in params or len(params) < MAX_PARAMS):
            params[key] = value
    tags: dict[str, str] = {}
    for run in top:
        tags.update(tags_of.get(run, {}))
    series: dict[str, list[list[Any]]] = {}
    count = 0
    bad = 0
    columns = {r[1] for r in db.execute("PRAGMA table_info(metrics)")}
    step_of = "step" if "step" in columns else "0"  # stores older than MLflow 1.0 had no step
    nan_of = "is_nan" if "is_nan" in columns else "0"
    for key, value, timestamp, step, run, nan in db.execute(
            f"SELECT key, value, timestamp, {step_of}, run_uuid, {nan_of} FROM metrics "
            f"ORDER BY timestamp, {step_of} LIMIT ?", (MAX_ROWS + 1,)):
        count += 1
        if count > MAX_ROWS:
            notes.append(f"the MLflow store holds more than {MAX_ROWS} metric values: the rest "
                         "are left out")
            break
        if run not in chosen:
            continue
        if nan or not isinstance(key, str) or not key or type(value) not in (int, float) or not (
                math.isfinite(value)) or type(timestamp) is not int or type(step) is not int:
            bad += 1  # MLflow keeps NaN as is_nan with a value of 0; JSON has no infinity
            continue
        series.setdefault(key, []).append([max(step, 0), value, timestamp / 1000])
    if bad:
        notes.append(f"{bad} MLflow metric value{'s' if bad > 1 else ''} left out (not finite)")
    return MlflowTracked(params, series, tags, runs, "; ".join(notes) if notes else None)


def summary(found: MlflowTracked) -> dict[str, Any]:
    """What the record keeps of the store besides parameters and series: the runs the code made
    and the tags of its own run(s)."""
    return {"runs": [{"id": r.id, "name": r.name, "status": r.status, "parent": r.parent,
                      "artifact_uri": r.artifact_uri} for r in found.runs],
            "tags": dict(found.tags), "problem": found.problem}


def completed(planned: Mapping[str, Any] | None,
              found: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The record's `mlflow` object: where the step's MLflow was pointed (`planned`, from
    `variables`) with what was found there (`summary`), or None when neither is known."""
    if planned is None and found is None:
        return None
    out: dict[str, Any] = {"tracking_uri": "", "ours": True, "experiment": None, "runs": [],
                           "tags": {}, "problem": None, **(planned or {})}
    if found is not None:
        out.update(found)
    elif not out["ours"]:
        out["problem"] = "the tracking URI was set by the user: what was logged there is not read"
    return out
