"""A conda environment file without conda-lock.yml, whose channels answer: solved with py-rattler
(no conda program), the lock written beside it (v1, stamped) and installed from it as any lock
is. Channels are local (tests/condachannel.py) or a name that cannot resolve."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import condachannel as cc
import pytest
import yaml
from conftest import Result, git_init
from mlproject.runner.envs import condalock, condasolve
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.conda import conda_recipe, lock_conda, observed_recipe
from mlproject.runner.envs.condatranslate import wanted
from mlproject.runner.state import records
from mlproject.spec.model import Environment

PLATFORM = condalock.current_platform()
ENV = Environment("conda_env", "conda", file="conda.yaml")
SPEC = "name: s\nconda_env: conda.yaml\nentry_points:\n  main:\n    command: 'hello > out.txt'\n"


@pytest.fixture
def unlocked(tmp_path: Path) -> tuple[Path, cc.Channel]:
    channel = cc.make_channel(tmp_path / "channel", [cc.hello(), cc.greeting()])
    root = tmp_path / "proj"
    root.mkdir()
    (root / "conda.yaml").write_text(yaml.safe_dump(
        {"channels": [channel.url], "dependencies": ["hello=1.0"]}))
    return root, channel


def test_lock_solves_with_rattler_without_conda(unlocked: tuple[Path, cc.Channel], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root, channel = unlocked
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no conda, mamba, micromamba, conda-lock
    logged: list[str] = []
    started = time.monotonic()
    assert lock_conda(str(root), ENV, logged.append) == root / "conda-lock.yml"
    assert time.monotonic() - started < 5
    text = (root / "conda-lock.yml").read_text()
    assert text.startswith(condalock.INPUT_MARK)
    lock = yaml.safe_load(text)
    digest = condalock.input_digest(root / "conda.yaml")
    assert lock["version"] == 1 and lock["metadata"]["content_hash"] == {PLATFORM: digest}
    assert {(p["name"], p["version"], p["url"]) for p in lock["package"]} == {
        ("greeting", "2.0", channel.archive("greeting").as_uri()),
        ("hello", "1.0", channel.archive("hello").as_uri())}
    assert lock["package"][1]["dependencies"] == {"greeting": ""}
    recipe, warnings = conda_recipe(str(root), ENV)
    assert warnings == [] and [p.name for p in recipe.lock.conda] == ["greeting", "hello"]
    assert any("solved by py-rattler" in line for line in logged)
    (root / "conda.yaml").write_text(yaml.safe_dump(
        {"channels": [channel.url], "dependencies": ["hello=1.0", "greeting"]}))
    assert conda_recipe(str(root), ENV)[1] == [
        "conda-lock.yml was locked from a different conda.yaml: run mlproject lock"]


def test_what_rattler_cannot_solve_is_one_line(unlocked: tuple[Path, cc.Channel]) -> None:
    root, channel = unlocked
    (root / "conda.yaml").write_text(yaml.safe_dump(
        {"channels": [channel.url], "dependencies": ["hello=9"]}))
    with pytest.raises(EnvError, match=r"py-rattler could not solve conda\.yaml: .*hello"):
        condasolve.solve(root / "conda.yaml", root / "conda-lock.yml", "conda.yaml", print)
    (root / "conda.yaml").write_text(yaml.safe_dump(
        {"channels": [channel.url], "dependencies": ["hello", {"pip": ["six"]}]}))
    with pytest.raises(EnvError, match="has a pip: section, which py-rattler does not solve"):
        condasolve.solve(root / "conda.yaml", root / "conda-lock.yml", "conda.yaml", print)
    assert not (root / "conda-lock.yml").exists()


def test_reachable_is_decided_at_once(tmp_path: Path) -> None:
    env_file = tmp_path / "conda.yaml"
    cases = {"https://conda.invalid/forge": "channel https://conda.invalid/forge cannot be reached",
             (tmp_path / "nothing").as_uri(): "no repodata.json",
             "ftp://example.org/c": "a ftp: channel", "conda-forge": "channel conda-forge cannot"}
    for channel, why in cases.items():
        env_file.write_text(yaml.safe_dump({"channels": [channel], "dependencies": ["x"]}))
        started = time.monotonic()
        found = condasolve.unreachable(env_file)
        # no network here: a name that does not resolve fails at once (~0.05 s measured)
        assert found is not None and why in found and time.monotonic() - started < 2, found
    env_file.write_text("channels: {a: 1}\ndependencies: [x]\n")
    assert "channels: expected a list" in str(condasolve.unreachable(env_file))
    assert condasolve.channel_url("defaults") == "https://repo.anaconda.com/pkgs/main"
    assert condasolve.channel_url("bioconda") == "https://conda.anaconda.org/bioconda"


def test_a_solvable_file_is_not_translated(unlocked: tuple[Path, cc.Channel]) -> None:
    root, _ = unlocked
    assert not wanted(str(root), ENV, None)  # py-rattler solves it: a conda environment
    assert wanted(str(root), ENV, "virtualenv")  # unless a uv one is asked for
    (root / "conda.yaml").write_text("channels: ['https://conda.invalid/c']\ndependencies: [six]\n")
    assert wanted(str(root), ENV, None)  # nothing can solve it: translated
    with pytest.raises(EnvError) as caught:  # unless conda is asked for
        observed_recipe(str(root), ENV, print)
    assert ("installs conda environments only from a lock; py-rattler cannot solve it here: "
            "channel https://conda.invalid/c cannot be reached (") in str(caught.value)


def test_run_solves_writes_the_lock_and_installs(unlocked: tuple[Path, cc.Channel],
                                                 cli: Callable[..., Result]) -> None:
    root, _ = unlocked
    (root / "MLproject").write_text(SPEC)
    git_init(root)
    planned = cli("plan", str(root), "--json")
    assert planned.code == 0, planned.err
    env = json.loads(planned.out)["steps"][0]["environment"]
    assert env["kind"] == "conda" and env["ready"] is False, env
    assert "would be solved with py-rattler into conda-lock.yml" in json.dumps(env)
    assert not (root / "conda-lock.yml").exists()  # plan writes nothing
    done = cli("run", str(root), "--env-manager", "conda")
    assert done.code == 0, done.err
    assert "solving conda.yaml with py-rattler" in done.err
    assert (root / "out.txt").read_text() == "hello\n"
    record = records.list_runs(str(root))[-1]["environment"]
    assert record["kind"] == "conda" and record["recipe"]["conda"] == ["greeting=2.0", "hello=1.0"]
    assert record["recipe"]["lock"] == "conda-lock.yml"
    again = cli("run", str(root))
    assert again.code == 0 and "py-rattler" not in again.err, again.err
    assert records.list_runs(str(root))[-1]["environment"]["key"] == record["key"]
    # the same file as a uv environment is another environment, and another fingerprint
    conda = json.loads(cli("plan", str(root), "--json").out)["steps"][0]
    uv = json.loads(cli("plan", str(root), "--env-manager", "uv", "--json").out)["steps"][0]
    assert conda["environment"]["kind"] == "conda" and uv["environment"]["kind"] == "python"
    assert conda["fingerprint"] != uv["fingerprint"], (conda, uv)
