"""A small client of the Docker Engine API, over its unix socket (or tcp): what the docker
backend asks while a step runs (inspect, logs, kill, remove), a few milliseconds a question
where a `docker` CLI call costs tens. Only the standard library, and HTTP/1.1 spoken here:
http.client (with the email package it parses headers with) costs ~30 ms of imports, a tenth of
what the backend may add to a run.

The host is the backend's `host` setting, else DOCKER_HOST, else the default socket, as the
`docker` CLI chooses it (a CLI context other than the default is not read: set DOCKER_HOST).
"""
from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_HOST = "unix:///var/run/docker.sock"
API_VERSION = (1, 41)  # the newest API this client speaks (docker 20.10); older daemons: theirs
TIMEOUT = 30.0  # seconds for a question; a log stream that follows waits as long as it takes
_MAX_HEAD = 1 << 16  # bytes of status line and headers


class EngineError(Exception):
    """The engine answered with an error, or could not be asked."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Unreachable(EngineError):
    """No engine answers at the host: the message says what was tried and how to fix it."""


class _ProtocolError(OSError):
    """What came back is not the HTTP this client reads."""


def host_of(setting: str | None, environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """(the engine's address, where it came from) as the docker CLI would choose it."""
    if setting:
        return setting, "the docker backend's `host` setting"
    if environ.get("DOCKER_HOST"):
        return environ["DOCKER_HOST"], "DOCKER_HOST"
    return DEFAULT_HOST, "the default: DOCKER_HOST is not set"


class _Response:
    """One response on a connection: status, headers (lower-case names), and the body read as
    it comes (Content-Length, chunked, or until the connection closes)."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        line, _, rest = conn.until(b"\r\n\r\n").partition(b"\r\n")
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise _ProtocolError(f"not an HTTP response: {line[:80]!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        for header in rest.split(b"\r\n"):
            name, sep, value = header.partition(b":")
            if sep:
                self.headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        self.keep = parts[0] == b"HTTP/1.1" and self.headers.get("connection", "").lower() != "close"
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self._left: int | None = int(length) if length and length.isdigit() else None
        if self.status in (204, 304) or 100 <= self.status < 200:
            self._left = 0
        if not self._chunked and self._left is None:
            self.keep = False  # the body ends when the connection does
        self.done = False

    def read1(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        if self.done:
            return b""
        if self._chunked:
            size_line = self._conn.until(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self._conn.until(b"\r\n")  # no trailers are sent
                self.done = True
                return b""
            data = self._conn.exactly(size)
            self._conn.exactly(2)
            return data
        if self._left is None:
            data = self._conn.some()
            self.done = not data
            return data
        if self._left == 0:
            self.done = True
            return b""
        data = self._conn.some(self._left)
        if not data:
            raise _ProtocolError("the connection closed inside a response")
        self._left -= len(data)
        return data

    def read(self) -> bytes:
        out = bytearray()
        while True:
            data = self.read1()
            if not data:
                return bytes(out)
            out += data


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def send(self, method: str, url: str) -> None:
        self.sock.sendall(f"{method} {url} HTTP/1.1\r\nHost: docker\r\n"
                          "Content-Length: 0\r\n\r\n".encode())

    def some(self, most: int = 1 << 16) -> bytes:
        if self._buffer:
            data, self._buffer = self._buffer[:most], self._buffer[most:]
            return data
        return self.sock.recv(min(most, 1 << 16))

    def until(self, mark: bytes) -> bytes:
        while mark not in self._buffer:
            if len(self._buffer) > _MAX_HEAD:
                raise _ProtocolError("a response line that never ends")
            data = self.sock.recv(1 << 16)
            if not data:
                raise _ProtocolError("the connection closed inside a response")
            self._buffer += data
        head, _, self._buffer = self._buffer.partition(mark)
        return head

    def exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            data = self.sock.recv(max(size - len(self._buffer), 1 << 16))
            if not data:
                raise _ProtocolError("the connection closed inside a response")
            self._buffer += data
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def close(self) -> None:
        self.sock.close()


class Engine:
    """One engine, asked over one kept-alive connection (a log stream gets one of its own)."""

    def __init__(self, host: str | None = None, environ: Mapping[str, str] = os.environ) -> None:
        self.host, self.source = host_of(host, environ)
        self._environ = environ
        self._conn: _Connection | None = None
        self._prefix: str | None = None  # "/v1.41": the API version both sides speak

    # -- what the backend asks

    def ping(self) -> str:
        """The API version spoken from now on; Unreachable when no engine answers."""
        if self._prefix is None:
            status, headers, body = self._request("GET", "/_ping", versioned=False)
            if status != 200:
                raise self._unreachable(f"it answered {status} {body[:200].decode(errors='replace')}")
            self._prefix = "/v" + _agreed(headers.get("api-version"))
        return self._prefix[2:]

    def info(self) -> dict[str, Any]:
        """NCPU, MemTotal, Runtimes, ServerVersion ... (GET /info)."""
        found: dict[str, Any] = self._json("GET", "/info")
        return found

    def container(self, ref: str) -> dict[str, Any] | None:
        """The container's inspect document; None when there is no such container."""
        found: dict[str, Any] | None = self._json_or_none("GET", f"/containers/{quote(ref, safe='')}/json")
        return found

    def image(self, ref: str) -> dict[str, Any] | None:
        """The image's inspect document (Id, RepoDigests, RepoTags); None when it is not here."""
        found: dict[str, Any] | None = self._json_or_none(
            "GET", f"/images/{quote(ref, safe=':@/')}/json")
        return found

    def containers(self, label: str, all_: bool = True) -> list[dict[str, Any]]:
        """Containers carrying `label` (`key` or `key=value`): for `cancel` and orphan cleanup."""
        query = {"all": "1" if all_ else "0", "filters": json.dumps({"label": [label]})}
        found: list[dict[str, Any]] = self._json("GET", "/containers/json", query)
        return found

    def kill(self, ref: str, signal: str = "SIGTERM") -> bool:
        """Send `signal` to the container's init; False when it is not running (or gone)."""
        status, _, body = self._request("POST", f"/containers/{quote(ref, safe='')}/kill",
                                        {"signal": signal})
        if status in (404, 409):  # gone, or not running
            return False
        self._check(status, body)
        return True

    def remove(self, ref: str, force: bool = True) -> bool:
        """Remove the container (and its anonymous volumes); False when it was already gone."""
        status, _, body = self._request("DELETE", f"/containers/{quote(ref, safe='')}",
                                        {"force": "1" if force else "0", "v": "1"})
        if status == 404:
            return False
        self._check(status, body)
        return True

    def logs(self, ref: str, follow: bool = False, tty: bool = False) -> Iterator[bytes]:
        """The container's output (stdout and stderr, in the order written), as it comes;
        with `follow`, until the container ends. A connection of its own, closed at the end."""
        self.ping()
        assert self._prefix is not None
        query = urlencode({"stdout": "1", "stderr": "1", "follow": "1" if follow else "0"})
        conn = self._connect(timeout=None if follow else TIMEOUT)
        try:
            try:
                conn.send("GET", f"{self._prefix}/containers/{quote(ref, safe='')}/logs?{query}")
                response = _Response(conn)
                if response.status != 200:
                    self._check(response.status, response.read())
            except OSError as exc:
                raise self._unreachable(str(exc)) from None
            yield from (_raw(response) if tty else _frames(response))
        finally:
            conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the wire

    def _json(self, method: str, path: str, query: Mapping[str, str] | None = None) -> Any:
        status, _, body = self._request(method, path, query)
        self._check(status, body)
        return json.loads(body)

    def _json_or_none(self, method: str, path: str) -> Any:
        status, _, body = self._request(method, path)
        if status == 404:
            return None
        self._check(status, body)
        return json.loads(body)

    def _check(self, status: int, body: bytes) -> None:
        if status < 300:
            return
        try:
            message = str(json.loads(body).get("message"))
        except (ValueError, AttributeError):
            message = body[:500].decode(errors="replace").strip()
        raise EngineError(f"the Docker engine at {self.host} answered {status}: {message}", status)

    def _request(self, method: str, path: str, query: Mapping[str, str] | None = None,
                 versioned: bool = True) -> tuple[int, dict[str, str], bytes]:
        if versioned:
            self.ping()
        url = f"{self._prefix if versioned else ''}{path}"
        if query:
            url += "?" + urlencode(query)
        for attempt in (1, 2):  # a kept-alive connection the daemon closed: once more, anew
            fresh = self._conn is None
            if self._conn is None:
                self._conn = self._connect(TIMEOUT)
            try:
                self._conn.send(method, url)
                response = _Response(self._conn)
                body = response.read()
            except OSError as exc:
                self.close()
                if fresh or attempt == 2:
                    raise self._unreachable(str(exc) or type(exc).__name__) from None
                continue
            if not response.keep:
                self.close()
            return response.status, response.headers, body
        raise AssertionError("unreachable")

    def _connect(self, timeout: float | None) -> _Connection:
        parts = urlsplit(self.host)
        try:
            if parts.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(parts.path)
                except OSError:
                    sock.close()
                    raise
                return _Connection(sock)
            if parts.scheme in ("tcp", "http", "https"):
                tls = self._tls() or parts.scheme == "https"
                address = (parts.hostname or "localhost", parts.port or (2376 if tls else 2375))
                sock = socket.create_connection(address, timeout=timeout)
                if tls:
                    sock = self._ssl().wrap_socket(sock, server_hostname=address[0])
                return _Connection(sock)
        except OSError as exc:
            raise self._unreachable(exc.strerror or str(exc)) from None
        raise self._unreachable(f"mlproject speaks to an engine over unix:// or tcp://, not "
                                f"{parts.scheme or self.host!r}:// (an ssh:// host: forward its "
                                "socket with `ssh -L` and use unix:// or tcp://)")

    def _tls(self) -> bool:
        return bool(self._environ.get("DOCKER_TLS_VERIFY") or self._environ.get("DOCKER_CERT_PATH"))

    def _ssl(self) -> Any:
        import ssl

        certs = self._environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")
        context = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        context.load_cert_chain(os.path.join(certs, "cert.pem"), os.path.join(certs, "key.pem"))
        if not self._environ.get("DOCKER_TLS_VERIFY"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _unreachable(self, why: str) -> Unreachable:
        parts = urlsplit(self.host)
        tried = f"the Docker engine at {self.host} ({self.source})"
        if parts.scheme == "unix":
            path = parts.path
            try:
                os.stat(path)
            except FileNotFoundError:
                why = f"{path} does not exist"
            except PermissionError:
                why = "permission denied"
            except OSError:
                pass
            if "ermission denied" in why:
                return Unreachable(f"cannot reach {tried}: permission denied on {path}: add "
                                   "yourself to its group (`sudo usermod -aG docker $USER`, then "
                                   "log in again), or use a rootless engine's socket")
        return Unreachable(f"cannot reach {tried}: {why}. Start the engine (`sudo systemctl "
                           "start docker`), or point mlproject at one that runs: "
                           "DOCKER_HOST=unix:///path/to/docker.sock (or tcp://HOST:PORT), or "
                           "the docker backend's `host` setting")


def _agreed(server: str | None) -> str:
    """The API version both speak: the daemon's when older than this client's."""
    try:
        major, minor = (int(part) for part in str(server).split(".")[:2])
    except ValueError:
        major, minor = API_VERSION
    agreed = min((major, minor), API_VERSION)
    return f"{agreed[0]}.{agreed[1]}"


def _frames(response: _Response) -> Iterator[bytes]:
    """The payloads of a multiplexed stream: 8-byte headers (stream, 0, 0, 0, size)."""
    pending = b""  # a frame read in part
    while True:
        data = response.read1()
        if not data:
            return
        pending += data
        out = []
        while len(pending) >= 8:
            (size,) = struct.unpack(">I", pending[4:8])
            if len(pending) < 8 + size:
                break
            out.append(pending[8:8 + size])
            pending = pending[8 + size:]
        if out:
            yield b"".join(out)


def _raw(response: _Response) -> Iterator[bytes]:
    while True:
        data = response.read1()
        if not data:
            return
        yield data
