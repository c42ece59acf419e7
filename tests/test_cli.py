"""The command line: start-up stays light, init never overwrites, usage errors exit 2."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _imported(*args: str, cwd: Path | None = None) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlproject.runner", *args],
                          capture_output=True, text=True, cwd=cwd, env=os.environ.copy(), check=False)
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}


def test_help_does_not_load_heavy_libraries() -> None:
    modules = _imported("--help")
    assert "mlproject.runner.cli.main" in modules
    assert not {m for m in modules if m.split(".")[0] in ("yaml", "jsonschema", "dvc")}
    assert "mlproject.spec.load" not in modules


def test_a_file_loaded_before_skips_yaml_and_jsonschema(project: Callable[..., Path],
                                                         tmp_path: Path) -> None:
    root = project({"MLproject": "entry_points: {main: {command: 'true'}}\n"})
    first = _imported("validate", str(root))
    assert "jsonschema" in first and "yaml" in first
    second = _imported("validate", str(root))
    assert "jsonschema" not in second and "yaml" not in second
    # the same bytes elsewhere: the built spec is reused, with its new place
    other = project({"MLproject": (root / "MLproject").read_text()}, name="other")
    assert "yaml" not in _imported("validate", str(other))
    moved = subprocess.run([sys.executable, "-m", "mlproject.runner", "plan", str(other), "--json"],
                           capture_output=True, text=True, check=True)
    assert f'"project": "{other}"' in moved.stdout
    # a changed file is loaded (and validated) again
    (root / "MLproject").write_text("entry_points: {main: {command: 'false'}}\n")
    assert "jsonschema" in _imported("validate", str(root))
    # a broken cache entry only costs a full load
    for entry in (Path(os.environ["MLPROJECT_CACHE_DIR"]) / "specs").glob("*.json"):
        entry.write_bytes(b"not json")
    assert "yaml" in _imported("validate", str(other))
    assert "yaml" not in _imported("validate", str(other))


def test_no_verb_is_a_usage_error(cli: Callable[..., Any]) -> None:
    assert cli().code == 2


def test_init_creates_a_runnable_project_and_never_overwrites(cli: Callable[..., Any], tmp_path: Path) -> None:
    target = tmp_path / "demo"
    assert cli("init", str(target)).code == 0
    assert {p.name for p in target.iterdir()} == {
        ".dvc", ".dvcignore", ".git", ".github", ".gitignore", "MLproject", "README.md", "data",
        "dvc-remote", "evaluate.py", "prepare.py", "summary.py", "train.py"}
    assert cli("init", str(target)).code == 0  # the same files again: nothing to overwrite
    (target / "train.py").write_text("# mine\n")
    result = cli("init", str(target))
    assert result.code == 2 and "already has train.py: nothing was written" in result.err
    assert (target / "train.py").read_text() == "# mine\n"


def test_the_template_runs_end_to_end(cli: Callable[..., Any], tmp_path: Path) -> None:
    target = tmp_path / "demo"
    cli("init", str(target))
    assert cli("run", str(target)).code == 0
    again = cli("run", str(target))
    assert "prepare: up to date" in again.err and "main: up to date" in again.err
    assert (target / "metrics.json").exists() and (target / "model" / "model.json").exists()


def test_every_package_directory_is_in_the_distribution() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    names = {"spec": "mlproject.spec", "runner": "mlproject.runner", "templates": "mlproject.templates"}
    found = set()
    for top, name in names.items():
        for init in (root / top).rglob("__init__.py"):
            relative = init.parent.relative_to(root / top)
            if relative.parts[:2] == ("tracking", "shim"):  # mlproject.log: its own mapping
                found.add(".".join(relative.parts[2:]))
                continue
            found.add(".".join([name, *relative.parts]))
    assert found == listed
