"""Helpers of the tests of `run --detach` and of `logs`, `cancel`, `wait`: mlproject as real
processes (the CLI, or tests/fakecli.py with the file-backed fake engine), steps that wait for a
file the test writes, and waits on what the records say."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FAKECLI = HERE / "fakecli.py"


@dataclass
class Mlproject:
    """`mlproject` in one project: the real CLI, or the one with the fake engine registered."""
    root: Path
    fake: Path | None = None  # the fake engine's state directory

    def argv(self, *args: str) -> list[str]:
        if self.fake is not None:
            return [sys.executable, str(FAKECLI), *args]
        return [sys.executable, "-m", "mlproject.runner", *args]

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.fake is not None:
            env["FAKE_ENGINE_STATE"] = str(self.fake)
        return env

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), cwd=self.root, env=self.env(), text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), cwd=self.root, env=self.env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)

    def detach(self, *args: str) -> tuple[list[str], int]:
        """`run --detach ARGS`: the run ids it printed, and its supervisor's pid."""
        done = self("run", *args, "--detach")
        assert done.returncode == 0, done.stderr
        found = re.search(r"supervised by process (\d+)", done.stderr)
        assert found, done.stderr
        return done.stdout.split(), int(found.group(1))

    def runs(self) -> dict[str, dict[str, Any]]:
        """`runs --json`, by entry point (the last run of each)."""
        done = self("runs", "--json")
        assert done.returncode == 0, done.stderr
        return {row["entry_point"]: row for row in json.loads(done.stdout)}

    def record(self, run_id: str) -> dict[str, Any]:
        done = self("runs", "show", run_id, "--json")
        assert done.returncode == 0, done.stderr
        loaded: dict[str, Any] = json.loads(done.stdout)
        return loaded


def until(check: Callable[[], Any], timeout: float = 30, what: str = "the condition") -> Any:
    """Poll `check` until it gives something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s")
        time.sleep(0.05)


def status_of(mlp: Mlproject, entry_point: str, wanted: str, timeout: float = 30) -> dict[str, Any]:
    """The `runs --json` row of `entry_point` once its status is `wanted`."""
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = mlp.runs().get(entry_point, {})
        return last if last.get("status") == wanted else None

    try:
        return until(check, timeout, f"{entry_point} {wanted}")  # type: ignore[no-any-return]
    except AssertionError:
        raise AssertionError(f"{entry_point} is not {wanted}: {last}") from None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def kill(pid: int, signum: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def gated(name: str, before: str = "", after: str = "", code: int = 0) -> str:
    """A step's command: says `before`, waits for the file go-NAME, says `after`, exits `code`
    (its pid is in pid-NAME, for the tests that look for it afterwards)."""
    return (f"echo $$ > pid-{name}; echo {before or 'start-' + name}; "
            f"while [ ! -f go-{name} ]; do sleep 0.02; done; echo {after or 'end-' + name}"
            + (f"; exit {code}" if code else ""))
