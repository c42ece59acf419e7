"""Progress for people: on stderr, prefixed (results go to stdout); and the writer through which
mlproject shows a step's output and its own lines without ever waiting on the reader.

A terminal, pipe or FIFO that nobody reads (`mlproject run . | sleep 20`, a stopped terminal)
must not stall supervision: writes are non-blocking on a descriptor of mlproject's own, what does
not fit waits in a bounded buffer, and what overflows it is dropped with a one-line note (the
run's log has everything). At exit the buffer gets a bounded time to drain.
"""
from __future__ import annotations

import atexit
import errno
import os
import select
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PENDING_LIMIT = 1 << 20  # bytes held for a reader that does not keep up
FINAL_FLUSH = 1.0  # seconds at exit for what is still held


class Terminal:
    """One of mlproject's output streams (1 or 2), written without blocking."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._out: int | None = None  # our own non-blocking descriptor, opened on first use
        self._small = False  # no such descriptor: write only what poll() says fits
        self.pending = bytearray()
        self.dropped = 0
        self.gone = False

    def _open(self) -> int:
        if self._out is None:
            self._out = self.fd
            try:
                mode = os.fstat(self.fd).st_mode
            except OSError:
                self.gone = True
                return self.fd
            if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode):
                # A descriptor of our own: O_NONBLOCK on the shared one would reach the shell too
                try:
                    self._out = os.open(f"/proc/self/fd/{self.fd}",
                                        os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
                except OSError as exc:
                    if exc.errno == errno.ENXIO and stat.S_ISFIFO(mode):
                        self.gone = True  # a FIFO with no reader left
                    # e.g. a socket: no more than poll() says fits, unless it never blocks
                    self._small = os.get_blocking(self.fd)
        return self._out

    def write(self, data: bytes) -> None:
        if self.gone or not data:
            return
        with _lock:  # steps that run at once share it; os.write holds `pending` exported
            if len(self.pending) + len(data) > PENDING_LIMIT:
                self.dropped += len(data)
            else:
                self.pending += data
            self.flush()

    def flush(self) -> bool:
        """Write what the reader takes now; True when nothing is held any more."""
        with _lock:
            return self._flush()

    def _flush(self) -> bool:
        while self.pending and not self.gone:
            fd = self._open()
            if self.gone:
                break
            chunk = self.pending
            if self._small:
                _, ready, _ = select.select([], [fd], [], 0)
                if not ready:
                    return False
                chunk = self.pending[:512]  # at most PIPE_BUF: a writable pipe takes it whole
            try:
                written = os.write(fd, chunk)
            except BlockingIOError:
                return False
            except OSError:  # EPIPE, EIO: the reader went away; the log still has everything
                self.gone = True
                break
            del self.pending[:written]
            if not self.pending and self.dropped:
                # after the gap, on stderr (progress, never mixed into a result on stdout)
                note = (f"\nmlproject: {self.dropped} bytes of output not shown here (the reader "
                        "did not keep up); the run's log.txt has all of it\n").encode()
                self.dropped = 0
                if self.fd == 2:
                    self.pending += note
                else:
                    terminal(2).write(note)
        if self.gone:
            self.pending.clear()
        return not self.pending

    def drain(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the reader to take what is held."""
        import time

        deadline = time.monotonic() + timeout
        while not self.flush():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            select.select([], [self._open()], [], min(left, 0.05))


_terminals: dict[int, Terminal] = {}
_thread = threading.local()  # .quiet: this thread's steps and progress are not shown
_lock = threading.RLock()  # one line at a time from several threads


class _Silent(Terminal):
    """Where a quiet thread's output goes: nowhere (the run's log keeps it)."""

    def write(self, data: bytes) -> None:
        return

    def flush(self) -> bool:
        return True


_SILENT = _Silent(-1)


class _Prefixed(Terminal):
    """A step's output among others': each whole line with the step's name in front (a line
    not ended yet waits for its end, so that two steps' lines never mix)."""

    def __init__(self, target: Terminal, prefix: bytes) -> None:
        super().__init__(target.fd)
        self.target, self.prefix, self.partial = target, prefix, b""

    def write(self, data: bytes) -> None:
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        if len(self.partial) > 65536:  # a line without end: shown in pieces, still prefixed
            cut, self.partial = len(data), b""
        if cut:
            lines = data[:cut].splitlines(keepends=True)
            with _lock:
                self.target.write(b"".join(self.prefix + line if line.endswith(b"\n")
                                           else self.prefix + line + b"\n" for line in lines))

    def flush(self) -> bool:
        with _lock:  # the terminal these share is written by several threads
            return self.target.flush()

    def end(self) -> None:
        if self.partial:
            self.write(b"\n")


@contextmanager
def prefixed(name: str) -> Iterator[None]:
    """In this thread, a step's output and mlproject's progress are shown line by line with
    `[name]` in front: steps of a pipeline that run at once stay readable."""
    _thread.prefix = f"[{name}] ".encode()
    _thread.streams = {}
    try:
        yield
    finally:
        for stream in _thread.streams.values():
            stream.end()
        _thread.prefix = None
        _thread.streams = {}


@contextmanager
def quiet() -> Iterator[None]:
    """In this thread, a step's output and mlproject's progress are not shown: a sweep running
    points at once says one line per point instead (`announce`)."""
    _thread.quiet = True
    try:
        yield
    finally:
        _thread.quiet = False


def terminal(fd: int) -> Terminal:
    if getattr(_thread, "quiet", False):
        return _SILENT
    prefix = getattr(_thread, "prefix", None)
    if prefix:
        streams: dict[int, _Prefixed] = _thread.streams
        if fd not in streams:
            streams[fd] = _Prefixed(_terminal(fd), prefix)
        return streams[fd]
    return _terminal(fd)


def _terminal(fd: int) -> Terminal:
    if not _terminals:
        atexit.register(drain_all, FINAL_FLUSH)
    if fd not in _terminals:
        _terminals[fd] = Terminal(fd)
    return _terminals[fd]


def drain_all(timeout: float) -> None:
    for term in _terminals.values():
        term.drain(timeout)


def pending() -> bool:
    return any(term.pending for term in _terminals.values())


def say(message: str) -> None:
    if getattr(_thread, "quiet", False):
        return
    announce(message)


def announce(message: str) -> None:
    """`say`, also from a quiet thread."""
    prefix = getattr(_thread, "prefix", None)
    line = f"{prefix.decode() if prefix else ''}mlproject: {message}\n"
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # captured (tests) or replaced: write to it
        with _lock:
            sys.stderr.write(line)
            sys.stderr.flush()
        return
    with _lock:
        sys.stderr.flush()  # what was written there before comes first
        _terminal(fd).write(line.encode())
