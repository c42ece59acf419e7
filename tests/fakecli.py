"""`mlproject` as a real process with the fake engine of tests/fakebackend.py registered as the
backend `fake`, its jobs kept in the directory $FAKE_ENGINE_STATE (so that a detached
supervisor, `runs`, `logs`, `cancel` and `wait` in other processes ask about the same jobs)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fakebackend import FakeBackend
from mlproject.runner import backends
from mlproject.runner.cli.main import entry

backends.register("fake", lambda: FakeBackend(state=Path(os.environ["FAKE_ENGINE_STATE"])))

if __name__ == "__main__":
    entry()
