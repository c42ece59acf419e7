"""What the seam does for engines beyond this machine, driven through the real CLI, execute and
records with the fake engine (tests/fakebackend.py): a pipeline submitted at once to an engine
that chains steps, a step given up after --queue-timeout with the engine's reason, the queued
state and its reason written where `runs` reads it, and a dirty tree refused for an engine that
does not see this directory (named files; --allow-dirty ships it and says so)."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, git_init
from fakebackend import FakeBackend, Script, states
from mlproject.runner.backends.base import StepState
from mlproject.runner.state.status import Status

PIPELINE = """
    name: chain
    entry_points:
      prep:
        command: "make data"
        outputs: [data.txt]
      other:
        command: "make other"
      train:
        needs: [prep]
        command: "train --on data.txt"
"""


def _records(root: Path) -> dict[str, dict[str, Any]]:
    found = [json.loads(p.read_text()) for p in sorted((root / ".mlproject" / "runs").glob(
        "*/run.json"))]
    return {r["entry_point"]: r for r in found}


def _chaining(fake: FakeBackend) -> None:
    fake.capabilities = replace(FakeBackend.capabilities, chains_steps=True)  # type: ignore[misc]


def test_a_chaining_engine_gets_the_whole_pipeline_at_once_each_step_held_by_what_it_needs(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend) -> None:
    root = git_init(project({"MLproject": PIPELINE}))
    _chaining(fake)
    fake.project = root
    fake.scripts = {"prep": Script(states("running", "succeeded"), writes={"data.txt": "rows"}),
                    "train": Script(states("queued", "running", "succeeded"))}
    result = cli("run", str(root), "-e", "train", "--backend", "fake")
    assert result.code == 0, result.err
    methods = [(m, ep) for m, ep in fake.calls if m in ("submit", "status")]
    # both submitted before the engine is asked about either
    assert methods[:2] == [("submit", "prep"), ("submit", "train")]
    assert fake.after == {"prep": (), "train": ("job-1",)}
    prep, train = _records(root)["prep"], _records(root)["train"]
    assert prep["status"] == train["status"] == "succeeded"
    # until it ran, train's record said it was held, and why
    assert fake.seen["train"][0] == ("queued", "held by the engine until prep succeeds")


def test_in_a_chain_the_first_step_that_fails_stops_the_rest(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend) -> None:
    text = PIPELINE + "        # \n"
    root = git_init(project({"MLproject": text.replace("needs: [prep]", "needs: [prep, other]")}))
    _chaining(fake)
    fake.project = root
    fake.scripts = {"prep": Script(states("running", "failed", exit_code=3)),
                    "other": Script(states("running", "running", "running")),
                    "train": Script(states("queued"))}
    result = cli("run", str(root), "-e", "train", "--backend", "fake")
    assert result.code == 3, result.err
    found = _records(root)
    assert (found["prep"]["status"], found["prep"]["exit_code"]) == ("failed", 3)
    for name in ("other", "train"):  # submitted, then cancelled for the failure: said so
        assert found[name]["status"] == "cancelled"
        assert found[name]["reason"] == "not run to its end: the pipeline stopped at prep"
    assert ("cancel", "other") in fake.calls and ("cancel", "train") in fake.calls


def test_queue_timeout_cancels_a_step_that_never_starts_recording_the_engines_reason(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend) -> None:
    root = git_init(project({"MLproject": PIPELINE}))
    fake.project = root
    why = "Resources: no node has 64 GPUs free"
    fake.scripts = {"other": Script([StepState(Status.QUEUED, reason=why)])}
    result = cli("run", str(root), "-e", "other", "--backend", "fake", "--queue-timeout", "0.3")
    assert result.code == 130, result.err
    record = _records(root)["other"]
    assert record["status"] == "cancelled"
    assert record["reason"] == f"still queued after 0.3s (--queue-timeout): {why}"
    assert record["submission"]["queue_timeout"] == 0.3
    # while it waited, its record said so (what `runs` and `logs -f` show)
    assert fake.seen["other"][1] == ("queued", why)
    assert ("cancel", "other") in fake.calls


@pytest.mark.parametrize("given", ["0", "-1", "soon", "inf", "nan"])
def test_queue_timeout_must_be_a_positive_number(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend,
        capsys: pytest.CaptureFixture[str], given: str) -> None:
    root = git_init(project({"MLproject": PIPELINE}))
    with pytest.raises(SystemExit) as stopped:  # argparse's own one-line usage error
        cli("run", str(root), "-e", "other", "--backend", "fake", "--queue-timeout", given)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "argument --queue-timeout:" in err and "Traceback" not in err
    assert not (root / ".mlproject" / "runs").exists()


def test_a_dirty_tree_is_refused_for_an_engine_that_does_not_see_it_and_shipped_when_allowed(
        cli: Callable[..., Result], project: Callable[..., Path], fake: FakeBackend) -> None:
    root = git_init(project({"MLproject": PIPELINE, "train.py": "print(1)\n"}))
    fake.capabilities = replace(FakeBackend.capabilities,  # type: ignore[misc]
                                shares_filesystem=False)
    fake.project = root
    fake.scripts = {"other": Script(states("running", "succeeded")),
                    "prep": Script(states("running", "succeeded"), writes={"data.txt": "rows"}),
                    "train": Script(states("running", "succeeded"))}
    (root / "train.py").write_text("print(2)\n")
    (root / "new.py").write_text("x = 1\n")
    result = cli("run", str(root), "-e", "other", "--backend", "fake")
    assert result.code == 2
    assert "uncommitted changes that the fake engine would not see" in result.err
    assert "new.py, train.py" in result.err and "--allow-dirty" in result.err
    assert not (root / ".mlproject" / "runs").exists() and fake.calls[-1][0] == "preflight"
    # what a step of the plan writes is no uncommitted change of the code
    (root / "train.py").write_text("print(1)\n")
    (root / "new.py").unlink()
    (root / "data.txt").write_text("an output")
    assert cli("run", str(root), "-e", "train", "--backend", "fake", "--force").code == 0
    assert _records(root)["train"]["code"]["shipped"] == "the recorded commit's tree"
    (root / "new.py").write_text("x = 1\n")
    result = cli("run", str(root), "-e", "other", "--backend", "fake", "--allow-dirty")
    assert result.code == 0, result.err
    assert _records(root)["other"]["code"]["shipped"] == "the working tree as it was (--allow-dirty)"
    assert _records(root)["other"]["code"]["dirty"] is True
