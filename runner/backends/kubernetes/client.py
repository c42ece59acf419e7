"""The Kubernetes API through the official `kubernetes` client, imported only here and only when
the backend talks to a cluster (~0.2 s: never at mlproject's start-up). Answers are taken as
the API's JSON (`_preload_content=False`): the client's model classes would cost more time than
the calls, and the state mapping (state.py) reads plain documents.

Credentials as kubectl finds them: the backend's `kubeconfig` setting, else KUBECONFIG, else
~/.kube/config, with `context` choosing one of its contexts; inside a pod (no kubeconfig, the
service account's token mounted) the in-cluster configuration.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

REQUEST_TIMEOUT = (5.0, 30.0)  # seconds: to connect, to read an answer
INSTALL = ("the kubernetes backend needs the kubernetes Python client: pip install "
           "'mlproject[kubernetes]' (or pip install kubernetes)")


class KubeError(Exception):
    """The API refused or could not be reached: the client's words. `status`: the HTTP code."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _said(exc: BaseException) -> KubeError:
    """An exception of the client (or urllib3 under it) as one line of its own words."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    if isinstance(status, int) and status > 0:
        message = ""
        try:
            message = str(json.loads(body or b"{}").get("message") or "")
        except (ValueError, AttributeError):
            message = (body or b"").decode(errors="replace") if isinstance(body, bytes) else ""
        reason = getattr(exc, "reason", "") or ""
        return KubeError(f"{status} {reason}: {message}".strip().rstrip(":"), status)
    reason = getattr(exc, "reason", None)  # urllib3's MaxRetryError wraps the real cause
    return KubeError(str(reason or exc) or type(exc).__name__)


class Client:
    """One cluster, as the settings name it. Each thread makes its own (urllib3's pool is
    shared safely, but the client's ApiClient keeps per-call state)."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        try:
            import yaml
            from kubernetes import client, config  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise KubeError(INSTALL) from None
        self._settings = dict(settings)
        configuration = client.Configuration()
        self.namespace = str(settings.get("namespace") or "")
        path = settings.get("kubeconfig") or os.environ.get("KUBECONFIG") or None
        in_cluster = not path and not os.path.exists(os.path.expanduser("~/.kube/config")) and \
            bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
                self.where = "the in-cluster configuration (service account)"
            else:
                context = settings.get("context") or None
                config.load_kube_config(config_file=path, context=context,
                                        client_configuration=configuration)
                self.where = f"kubeconfig {path or '~/.kube/config'}" + (
                    f" (context {context})" if context else "")
                if not self.namespace:
                    self.namespace = _context_namespace(config, path, context)
        except (config.ConfigException, OSError, ValueError, TypeError, KeyError,
                AttributeError, yaml.YAMLError) as exc:
            # the client's own errors of a file that is not YAML, or not a mapping of
            # kubeconfig's shape ("'str' object does not support item assignment"), say
            # nothing to a user
            said = str(exc) if isinstance(exc, (config.ConfigException, OSError)) else (
                f"{path or '~/.kube/config'} is not a kubeconfig file (a YAML mapping with "
                f"clusters, users and contexts): {' '.join(str(exc).split())[:300]}")
            raise KubeError(f"no usable Kubernetes credentials: {said}") from None
        configuration.retries = 0  # an unreachable API is said at once, not after retries
        self.namespace = self.namespace or "default"
        self.server = str(configuration.host)
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)

    def copy(self) -> Client:
        """Another client of the same cluster (for a thread of its own)."""
        return Client(self._settings)

    def call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """`method(*args)` of the API, its answer as JSON; KubeError with the API's words."""
        from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped,unused-ignore]
        from urllib3.exceptions import HTTPError

        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        try:
            answer = method(*args, _preload_content=False, **kwargs)
            data = answer.data
        except (ApiException, HTTPError, OSError) as exc:
            raise _said(exc) from None
        try:
            return json.loads(data) if data else {}
        except ValueError:
            return data

    def raw(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """The urllib3 response of `method(*args)` (a log stream); KubeError as `call`."""
        from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped,unused-ignore]
        from urllib3.exceptions import HTTPError

        try:
            return method(*args, _preload_content=False, **kwargs)
        except (ApiException, HTTPError, OSError) as exc:
            raise _said(exc) from None

    def get(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """As `call`, but None where the object does not exist (404)."""
        try:
            return self.call(method, *args, **kwargs)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def watch(self, method: Any, *args: Any, timeout: int, **kwargs: Any
              ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, object as JSON) of a watch, for at most `timeout` seconds."""
        from kubernetes import watch  # type: ignore[import-untyped,unused-ignore]
        from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped,unused-ignore]
        from urllib3.exceptions import HTTPError

        stream = watch.Watch()
        try:
            for event in stream.stream(method, *args, timeout_seconds=timeout,
                                       _request_timeout=(REQUEST_TIMEOUT[0], timeout + 5),
                                       **kwargs):
                yield str(event.get("type")), dict(event.get("raw_object") or {})
        except (ApiException, HTTPError, OSError) as exc:
            raise _said(exc) from None
        finally:
            stream.stop()

    def close(self) -> None:
        try:
            self.api.close()
        except Exception:
            pass


def _context_namespace(config: Any, path: str | None, context: str | None) -> str:
    """The namespace the kubeconfig's context names (kubectl's default), or ""."""
    try:
        contexts, active = config.list_kube_config_contexts(config_file=path)
    except Exception:
        return ""
    chosen = next((c for c in contexts or () if c.get("name") == context), None) if context \
        else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "")
