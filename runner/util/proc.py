"""The one helper through which mlproject runs its own short-lived processes (git, nvidia-smi).

Steps themselves stream through a backend; this is for tools whose output mlproject reads.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class ProcError(Exception):
    """A tool that failed: the command, its exit code and its output, ready to show."""

    def __init__(self, args: Sequence[str], code: int | None, output: str) -> None:
        self.args_, self.code, self.output = list(args), code, output
        status = "could not be started" if code is None else f"exited with {code}"
        text = f"`{shlex.join(args)}` {status}"
        super().__init__(f"{text}\n{output.rstrip()}" if output.strip() else text)


@dataclass(frozen=True)
class Result:
    code: int
    stdout: bytes
    stderr: bytes


def run(args: Sequence[str], *, cwd: str | None = None, env: Mapping[str, str] | None = None,
        check: bool = True, timeout: float | None = 60) -> Result:
    try:
        # A group of its own: an interrupt (raised in mlproject, see backends.base.Interrupted)
        # or a timeout stops the tool and what it started (uv's build backends), not the tool alone
        child = subprocess.Popen(list(args), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)
    except FileNotFoundError as exc:
        raise ProcError(args, None, str(exc)) from None
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _stop(child)
        raise ProcError(args, None, f"timed out after {timeout}s: {exc.stderr or b''!r}") from None
    except BaseException:
        _stop(child)
        raise
    if check and child.returncode != 0:
        raise ProcError(args, child.returncode, (stderr or stdout).decode(errors="replace"))
    return Result(child.returncode, stdout, stderr)


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the tool's group, SIGKILL after a moment; reaped either way."""
    for signum, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, None)):
        try:
            os.killpg(child.pid, signum)
        except OSError:
            pass
        try:
            child.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(child.pid, signal.SIGKILL)  # what the tool started and left running
    except OSError:
        pass
    for stream in (child.stdout, child.stderr):
        if stream:
            stream.close()
