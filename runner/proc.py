"""The one helper through which mlproject runs its own short-lived processes (git, nvidia-smi).

Steps themselves stream through a backend; this is for tools whose output mlproject reads.
"""
from __future__ import annotations

import shlex
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
        done = subprocess.run(list(args), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise ProcError(args, None, str(exc)) from None
    except subprocess.TimeoutExpired as exc:
        raise ProcError(args, None, f"timed out after {timeout}s: {exc.stderr or b''!r}") from None
    if check and done.returncode != 0:
        raise ProcError(args, done.returncode, (done.stderr or done.stdout).decode(errors="replace"))
    return Result(done.returncode, done.stdout, done.stderr)
