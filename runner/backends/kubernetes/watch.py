"""What a submitting mlproject keeps of its Job while it runs: two watches (the Job, its pods),
each a thread holding the latest documents, and one thread following the pod's log. `status`
and `logs` read what they hold: no question goes to the API server per poll, and an end is seen
as soon as the API server says it (a watch event), not a poll interval later.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from mlproject.runner.backends.kubernetes.client import Client, KubeError

WATCH_SECONDS = 20  # each watch is renewed this often (a watch the server dropped is noticed)
RETRY = 0.5  # seconds before a watch that failed is tried again


class Watched(threading.Thread):
    """The objects one watch names, by name, kept current; `seen` once it has answered."""

    def __init__(self, client: Client, list_of: Callable[[Client], Any], namespace: str,
                 **selector: str) -> None:
        super().__init__(daemon=True, name=f"kubernetes-watch-{selector}")
        self._client = client
        self._list_of = list_of
        self._namespace = namespace
        self._selector = selector
        self._lock = threading.Lock()
        self._docs: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.seen = threading.Event()
        self.changed = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                listing = self._client.call(self._list_of(self._client), self._namespace,
                                            **self._selector)
                version = str((listing.get("metadata") or {}).get("resourceVersion") or "")
                with self._lock:
                    self._docs = {str(d["metadata"]["name"]): d for d in listing.get("items") or ()}
                self.seen.set()
                self.changed.set()
                for kind, doc in self._client.watch(self._list_of(self._client), self._namespace,
                                                    timeout=WATCH_SECONDS,
                                                    resource_version=version, **self._selector):
                    self._apply(kind, doc)
                    if self._stop.is_set():
                        break
                self.error = None
            except (KubeError, KeyError, TypeError, ValueError) as exc:
                self.error = str(exc)
                self._stop.wait(RETRY)
        self._client.close()

    def _apply(self, kind: str, doc: dict[str, Any]) -> None:
        name = str((doc.get("metadata") or {}).get("name") or "")
        if kind == "ERROR" or not name:  # e.g. 410 Gone: the next round lists afresh
            raise ValueError(f"the watch ended: {doc.get('message') or doc}")
        with self._lock:
            if kind == "DELETED":
                self._docs.pop(name, None)
                self.deleted.add(name)
            else:
                self._docs[name] = doc
        self.changed.set()

    def docs(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._docs.values())

    def stop(self) -> None:
        self._stop.set()


class LogFollower(threading.Thread):
    """Follows the step container's log from its start until the stream ends (the container's
    end, or the kubelet dropping it: `ended`, with `error` then)."""

    def __init__(self, client: Client, pod: str, namespace: str) -> None:
        super().__init__(daemon=True, name=f"kubernetes-logs-{pod}")
        self._client = client
        self.pod = pod
        self._namespace = namespace
        self._lock = threading.Lock()
        self._data = bytearray()
        self.ended = threading.Event()
        self.error: str | None = None
        self.started_at = time.monotonic()

    def run(self) -> None:
        try:
            answer = self._client.raw(self._client.core.read_namespaced_pod_log, self.pod,
                                      self._namespace, container="step", follow=True,
                                      _request_timeout=(5.0, None))
            try:
                for chunk in answer.stream(64 * 1024, decode_content=False):
                    with self._lock:
                        self._data += chunk
            finally:
                answer.release_conn()
        except (KubeError, OSError, ValueError) as exc:
            self.error = str(exc)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._client.close()
            self.ended.set()

    def read(self) -> bytes:
        with self._lock:
            return bytes(self._data)
