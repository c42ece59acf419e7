"""The Ray cluster as mlproject asks it: Ray's own JobSubmissionClient (jobs: submit, info,
logs, stop) and state API (the nodes and their resources), both over the dashboard's HTTP
address, without a driver (`ray.init` would take seconds and join the cluster).

`ray` is imported here only, on the first question (~0.5 s): building the CLI and every other
backend never import it. Every answer Ray gives becomes plain data or a RayError whose message
holds Ray's own words; no call waits longer than `timeout` seconds (Ray's client sets no
timeout of its own on its HTTP requests, so it is given one here)."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

# Ray's own lines at the head of a job's log, before what the entrypoint prints
RUNNING_LINE = "Running entrypoint for job "


class RayError(Exception):
    """Ray could not be asked, or refused: its words, and where it was."""


class NotInstalled(RayError):
    pass


def installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


class Jobs:
    """One cluster's Jobs API; the client is made on the first call and kept."""

    def __init__(self, address: str, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self._client: Any = None

    def _jobs(self) -> Any:
        if self._client is None:
            self._client = _connect(self.address, self.timeout)
        return self._client

    def version(self) -> str:
        """The cluster's Ray version; RayError where it does not answer."""
        client = self._jobs()
        return str(getattr(client, "_server_ray_version", None) or "unknown")

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes: name, state, resources_total (Ray's state API)."""
        self._jobs()  # unreachable or refused: said once, as the client says it
        try:
            from ray.util.state import list_nodes

            found = list_nodes(address=self.address, detail=True, limit=10_000,
                               timeout=max(1, int(self.timeout)), raise_on_missing_output=False)
        except Exception as exc:  # Ray raises its own types (RayStateApiException, ...)
            raise RayError(f"the Ray cluster at {self.address} did not list its nodes: "
                           f"{_said(exc)}") from None
        return [{"node_id": str(getattr(n, "node_id", "")), "name": str(getattr(n, "node_name", "")),
                 "state": str(getattr(n, "state", "")),
                 "resources_total": dict(getattr(n, "resources_total", None) or {})}
                for n in found]

    def submit(self, kwargs: Mapping[str, Any]) -> str:
        try:
            return str(self._jobs().submit_job(**kwargs))
        except Exception as exc:
            raise RayError(f"the Ray cluster at {self.address} refused the job: "
                           f"{_said(exc)}") from None

    def info(self, submission_id: str) -> dict[str, Any] | None:
        """The job's details as plain data; None where the cluster has no such job."""
        try:
            details = self._jobs().get_job_info(submission_id)
        except Exception as exc:
            if "status code 404" in str(exc):
                return None
            raise RayError(f"the Ray cluster at {self.address} did not say how job "
                           f"{submission_id} is: {_said(exc)}") from None
        return _plain(details)

    def log(self, submission_id: str) -> bytes:
        """The job's whole log, as Ray keeps it (its own lines first)."""
        try:
            text = self._jobs().get_job_logs(submission_id)
        except Exception as exc:
            raise RayError(f"the Ray cluster at {self.address} did not give job "
                           f"{submission_id}'s log: {_said(exc)}") from None
        return str(text).encode("utf-8", "surrogateescape")

    def stop(self, submission_id: str) -> bool:
        """Ask Ray to stop the job (SIGTERM to the entrypoint, SIGKILL a few seconds later)."""
        try:
            return bool(self._jobs().stop_job(submission_id))
        except Exception as exc:
            raise RayError(f"the Ray cluster at {self.address} did not stop job "
                           f"{submission_id}: {_said(exc)}") from None


def step_output(raw: bytes, submission_id: str, entrypoint: str | None) -> bytes | None:
    """What the entrypoint printed: the log after Ray's own lines (the runtime environment set
    up, `Running entrypoint for job ID: COMMAND`). None while that line is not there yet (the
    job has not started its entrypoint); the whole log where it never comes (another Ray's
    format) is for the caller to decide on."""
    marker = f"{RUNNING_LINE}{submission_id}: ".encode()
    at = raw.find(marker)
    if at < 0:
        return None
    start = at + len(marker)
    if entrypoint is not None and raw.startswith(entrypoint.encode(), start):
        start += len(entrypoint.encode())  # a command that holds a newline is skipped whole
    end = raw.find(b"\n", start)
    return None if end < 0 else raw[end + 1:]


def _connect(address: str, timeout: float) -> Any:
    if not installed():
        raise NotInstalled("the ray backend needs Ray's client: pip install 'mlproject[ray]' "
                           "(ray[default], the version the cluster runs)")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a client never reports usage
    try:
        from ray.job_submission import JobSubmissionClient
    except Exception as exc:  # a broken install
        raise NotInstalled(f"Ray's client cannot be imported: {_said(exc)}") from None
    import logging

    # its "Uploading package" lines are not the step's: warnings and errors only
    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.dashboard.modules.dashboard_sdk").setLevel(logging.WARNING)

    class _Bounded(JobSubmissionClient):
        """Ray's client, every HTTP request of it bounded (it sets no timeout itself)."""

        def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout)
            return super()._do_request(method, endpoint, **kwargs)

    try:
        return _Bounded(address)
    except Exception as exc:
        raise RayError(f"the Ray cluster at {address} does not answer: {_said(exc)}") from None


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else text[:600] + "..."


def _plain(details: Any) -> dict[str, Any]:
    """A JobDetails as the fields mlproject keeps (no env_vars: the worker request is there)."""
    status = getattr(details, "status", None)
    runtime_env = getattr(details, "runtime_env", None) or {}
    return {
        "submission_id": getattr(details, "submission_id", None),
        "job_id": getattr(details, "job_id", None),
        "status": str(getattr(status, "value", status)),
        "message": getattr(details, "message", None),
        "error_type": getattr(details, "error_type", None),
        "driver_exit_code": getattr(details, "driver_exit_code", None),
        "driver_node_id": getattr(details, "driver_node_id", None),
        "start_time": getattr(details, "start_time", None),
        "end_time": getattr(details, "end_time", None),
        "entrypoint": getattr(details, "entrypoint", None),
        "metadata": dict(getattr(details, "metadata", None) or {}),
        "working_dir": runtime_env.get("working_dir") if isinstance(runtime_env, dict) else None,
    }


def write_code(archive: bytes) -> str:
    """The code's archive as a file Ray's client uploads (it names it by its sha1); the caller
    removes it."""
    handle, path = tempfile.mkstemp(prefix="mlproject-code-", suffix=".tar.gz")
    with os.fdopen(handle, "wb") as out:
        out.write(archive)
    return path
