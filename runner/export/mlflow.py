"""The MLflow side of `runs export`: the one module that imports mlflow, and only when the verb
runs (`import mlflow.tracking` takes ~2 s; `mlproject --help` must not pay it).

mlflow ships no complete types, so its objects are `Any` here and nowhere else: it is imported
with importlib (mypy then does not analyse mlflow's own sources). Whatever MLflow raises for
one run becomes that run's one-line reason; what makes every export impossible (no client, no
server, an experiment that was deleted) is `Unavailable`, said once. MLflow's client writes to
stdout (a link to each run it ends); that goes to stderr, so that stdout holds the results.
"""
from __future__ import annotations

import contextlib
import http.client
import importlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproject.runner.export import batches
from mlproject.runner.export.files import RECORD_NAME, Upload
from mlproject.runner.export.mapping import RUN_ID_TAG, Limits, MlflowRun

INSTALL = "pip install 'mlproject[mlflow]'"
PROBE_TIMEOUT = 10.0  # seconds for a server to answer at all
_SEARCHABLE = re.compile(r"[\w.:-]+")  # an id that can stand quoted in a search filter
_ALL_RUNS = 3  # mlflow.entities.ViewType.ALL: a deleted export is an export all the same


class Unavailable(Exception):
    """No run can be exported to this URI; the message is one line that says why."""


@dataclass(frozen=True)
class Outcome:
    status: str  # exported, already_exported, failed
    mlflow_run_id: str | None = None
    reason: str | None = None


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """An error as one printable line (MLflow's messages carry JSON bodies and newlines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _unreachable(uri: str) -> str | None:
    """Why an http(s) tracking URI gets no answer at all (any HTTP status is an answer)."""
    if urllib.parse.urlsplit(uri).scheme.lower() not in ("http", "https"):
        return None
    try:
        with urllib.request.urlopen(uri, timeout=PROBE_TIMEOUT):  # http(s) only, checked above
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as exc:
        return one_line(exc.reason if isinstance(exc.reason, BaseException) else str(exc.reason))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return one_line(exc)


def _needs_full_mlflow(uri: str, exc: ImportError) -> Unavailable:
    return Unavailable(f"--mlflow {uri}: this kind of tracking store needs mlflow itself "
                       f"(mlflow-skinny cannot open it): pip install mlflow ({one_line(exc)})")


class Tracking:
    """A tracking store reached through MLflow's client."""

    def __init__(self, uri: str, client: Any, entities: Any, limits: Limits) -> None:
        self.uri = uri
        self.limits = limits
        self._client = client
        self._entities = entities

    def reachable(self) -> bool:
        return _unreachable(self.uri) is None

    def experiment(self, name: str) -> str:
        """The id of the experiment `name`, created where it is missing."""
        with _stdout_to_stderr():
            try:
                found = self._client.get_experiment_by_name(name)
                if found is None:
                    try:
                        return str(self._client.create_experiment(name))
                    except Exception:  # created meanwhile by another export? else say why
                        found = self._client.get_experiment_by_name(name)
                        if found is None:
                            raise
            except ImportError as exc:
                raise _needs_full_mlflow(self.uri, exc) from None
            except Exception as exc:
                raise Unavailable(f"--mlflow {self.uri}: experiment {name!r}: {one_line(exc)}"
                                  ) from None
        if found.lifecycle_stage == "deleted":
            raise Unavailable(f"--mlflow {self.uri}: experiment {name!r} was deleted in MLflow: "
                              f"restore it (mlflow experiments restore --experiment-id "
                              f"{found.experiment_id}) or give another --experiment-name")
        return str(found.experiment_id)

    def _earlier(self, experiment_id: str, run_id: str) -> str | None:
        """The MLflow run an earlier export of `run_id` made; one an export left unfinished
        (it died before ending the MLflow run) is deleted, so that this one replaces it."""
        found = self._client.search_runs([experiment_id], f"tags.`{RUN_ID_TAG}` = '{run_id}'",
                                         run_view_type=_ALL_RUNS, max_results=100)
        done = [r.info.run_id for r in found if r.info.status != "RUNNING"]
        for unfinished in found:
            if unfinished.info.status == "RUNNING" and unfinished.info.lifecycle_stage == "active":
                self._client.delete_run(unfinished.info.run_id)
        return str(done[0]) if done else None

    def _log(self, mlflow_run_id: str, run: MlflowRun) -> None:
        metric, param, tag = self._entities.Metric, self._entities.Param, self._entities.RunTag
        for batch in batches.batches(run):
            self._client.log_batch(
                mlflow_run_id, synchronous=True,
                metrics=[metric(p.key, p.value, p.timestamp, p.step) for p in batch.metrics],
                params=[param(k, v) for k, v in batch.params],
                tags=[tag(k, v) for k, v in batch.tags])

    def _upload(self, mlflow_run_id: str, uploads: Sequence[Upload],
                record: Mapping[str, Any]) -> None:
        """One upload of everything, staged by links (copies across filesystems)."""
        with tempfile.TemporaryDirectory(prefix="mlproject-export-") as staged:
            root = Path(staged)
            (root / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            for upload in uploads:
                target = root / upload.name
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(upload.source, target)
                except OSError:
                    shutil.copyfile(upload.source, target)
            self._client.log_artifacts(mlflow_run_id, staged)

    def export(self, experiment_id: str, run: MlflowRun, uploads: Sequence[Upload],
               record: Mapping[str, Any]) -> Outcome:
        """`run` as a new MLflow run, unless an earlier export made one."""
        record_id = run.run_name
        if not _SEARCHABLE.fullmatch(record_id):
            return Outcome("failed", reason=f"its id {record_id!r} cannot be searched for in "
                                            "MLflow (letters, digits, '_', '.', ':', '-' only)")
        with _stdout_to_stderr():
            try:
                earlier = self._earlier(experiment_id, record_id)
            except Exception as exc:
                return Outcome("failed", reason=f"searching MLflow for an earlier export: "
                                                f"{one_line(exc)}")
            if earlier is not None:
                return Outcome("already_exported", earlier)
            try:
                made = self._client.create_run(experiment_id, start_time=run.start_time,
                                               tags={RUN_ID_TAG: record_id},
                                               run_name=run.run_name).info.run_id
            except Exception as exc:
                return Outcome("failed", reason=f"creating the MLflow run: {one_line(exc)}")
            try:
                self._log(made, run)
                self._upload(made, uploads, record)
                self._client.set_terminated(made, status=run.status, end_time=run.end_time)
            except Exception as exc:
                with contextlib.suppress(Exception):  # else the next export replaces it
                    self._client.delete_run(made)
                return Outcome("failed", reason=one_line(exc))
        return Outcome("exported", str(made))


def connect(uri: str) -> Tracking:
    """MLflow's client for `uri`; Unavailable where mlflow is not installed or the server does
    not answer."""
    try:
        tracking = importlib.import_module("mlflow.tracking")
        entities = importlib.import_module("mlflow.entities")
        validation = importlib.import_module("mlflow.utils.validation")
    except ImportError as exc:
        raise Unavailable(f"--mlflow needs MLflow's client, which is not installed: {INSTALL} "
                          f"({one_line(exc)})") from None
    for name in ("mlflow", "alembic"):  # their progress (database migrations) is not ours
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    why = _unreachable(uri)
    if why is not None:
        raise Unavailable(f"cannot reach the MLflow tracking server at {uri}: {why}")
    limits = Limits(int(getattr(validation, "MAX_PARAM_VAL_LENGTH", Limits.param_value)),
                    int(getattr(validation, "MAX_TAG_VAL_LENGTH", Limits.tag_value)))
    with _stdout_to_stderr():
        try:
            client = tracking.MlflowClient(tracking_uri=uri)
        except ImportError as exc:
            raise _needs_full_mlflow(uri, exc) from None
        except Exception as exc:
            raise Unavailable(f"--mlflow {uri}: {one_line(exc)}") from None
    return Tracking(uri, client, entities, limits)
