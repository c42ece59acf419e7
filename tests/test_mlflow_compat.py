"""Every MLproject file of MLflow's corpus loads, and `mlproject plan` builds the command that
`mlflow run` builds (recorded in mlflow_3.17.2_parse.json, required parameters given as VALUE).

Documented differences, each checked here:
(a) a `path` parameter becomes absolute: a -P value against the working directory, a default
    against the project directory;
(b) where MLflow refuses a value that is not a URI, mlproject refuses it too (exit 2);
(c) a value that does not fit an int/float/bool parameter is refused (MLflow passes it on); the
    command is then the same as MLflow's with a valid value in its place.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from string import Formatter
from typing import Any

import pytest
import yaml
from conftest import SHARED_CORPUS
from mlproject.spec import Spec, SpecError, load
from mlproject.spec.params import canonical

PARSED = SHARED_CORPUS / "mlflow_3.17.2_parse.json"
ABSENT = f"MLflow's corpus is not at {SHARED_CORPUS} (a checkout of ../shared beside the clone)"
NOT_MLPROJECT = {"INDEX.tsv", PARSED.name}
EXPECTED: dict[str, Any] = json.loads(PARSED.read_text()) if PARSED.exists() else {}
VALID_VALUE = {"int": "7", "float": "0.5", "bool": "True"}  # canonical forms
WHY = {"int": "expected an integer", "float": "expected a number", "bool": "expected true or false"}
URI_ERROR = "ERROR ExecutionException: Expected URI"

Cli = Callable[..., Any]


def cases(items: list[Any], arity: int = 1) -> list[Any]:
    """The cases, or one skipped case (of the right arity) that says why there are none."""
    return items or [pytest.param(*[None] * arity, marks=pytest.mark.skip(reason=ABSENT))]


FILES = cases(sorted(EXPECTED))
ENTRIES = cases(arity=2, items=[pytest.param(file, entry, id=f"{file}::{entry}")
                 for file in sorted(EXPECTED)
                 for entry in EXPECTED[file].get("entry_points", {})])


def file_name(saved: str) -> str:
    """The name to give the copy: the capital-P file keeps its name, proving the lookup."""
    return "MLProject" if saved.endswith("MLProject_capitalP") else "MLproject"


def copy(saved: str, root: Path) -> Path:
    project = root / "project"
    project.mkdir()
    shutil.copyfile(SHARED_CORPUS / saved, project / file_name(saved))
    return project


def render(template: str, values: dict[str, str]) -> str:
    """MLflow's substitution: str.format with every value shell-quoted."""
    return template.format(**{k: shlex.quote(v) for k, v in values.items()})


def test_the_corpus_is_complete() -> None:
    if not PARSED.exists():
        pytest.skip(ABSENT)
    saved = {p.name for p in SHARED_CORPUS.iterdir()} - NOT_MLPROJECT
    assert saved == set(EXPECTED)
    assert len(saved) + len(NOT_MLPROJECT) == 57
    index = (SHARED_CORPUS / "INDEX.tsv").read_text().splitlines()[1:]
    assert {line.split("\t")[0] for line in index} == saved
    entries = sum(len(v.get("entry_points", {})) for v in EXPECTED.values())
    assert len(ENTRIES) == entries == 72


@pytest.mark.parametrize("saved", FILES)
def test_file_loads(saved: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = copy(saved, tmp_path)
    monkeypatch.chdir(project)
    mlflow = EXPECTED[saved]
    if "load_error" in mlflow:
        assert "no image attribute found" in mlflow["load_error"]
        with pytest.raises(SpecError) as caught:
            load(".")
        assert [str(p) for p in caught.value.problems if p.severity == "error"] == [
            "MLproject:4:3: docker_env: missing required key 'image'"]
        return
    spec = load(".")
    assert isinstance(spec, Spec)
    assert Path(spec.file).name == file_name(saved)
    assert spec.name == mlflow["name"]
    assert list(spec.entry_points) == list(mlflow["entry_points"])
    for name, entry in mlflow["entry_points"].items():
        params = spec.entry_points[name].parameters
        assert list(params) == list(entry["parameters"])
        for pname, declared in entry["parameters"].items():
            assert params[pname].type == canonical(declared["type"]), pname
            default = declared["default"]
            assert params[pname].default == (None if default is None else str(default)), pname


@pytest.mark.parametrize(("saved", "entry"), ENTRIES)
def test_plan_builds_mlflows_command(saved: str, entry: str, tmp_path: Path, cli: Cli) -> None:
    mlflow = EXPECTED[saved]["entry_points"][entry]
    project = copy(saved, tmp_path)
    raw = yaml.safe_load((project / file_name(saved)).read_text())
    template = raw["entry_points"][entry]["command"]
    required = mlflow["required_filled_with_VALUE"]
    types = {name: canonical(p["type"]) for name, p in mlflow["parameters"].items()}
    defaults = {name: str(p["default"]) for name, p in mlflow["parameters"].items()
                if p["default"] is not None}
    values = {**defaults, **{name: "VALUE" for name in required}}
    used = {field for _, field, _, _ in Formatter().parse(template) if field}

    def plan(given: dict[str, str]) -> Any:
        args = [arg for name in required for arg in ("-P", f"{name}={given[name]}")]
        return cli("plan", str(project), "-e", entry, *args, "--json", "--env", "local",
                   cwd=tmp_path)

    if mlflow["command"].startswith(URI_ERROR):  # (b)
        (name,) = [n for n in required if types[n] == "uri"]
        assert mlflow["command"] == f"{URI_ERROR} for parameter {name} but got VALUE"
        result = plan(values)
        assert (result.code, result.out) == (2, "")
        assert result.err.splitlines()[-1] == (
            f"mlproject: error: parameter {name} (uri): 'VALUE': expected a URI with a scheme, "
            "such as s3://bucket/key or file:///data")
        return

    # The oracle: MLflow's substitution of its own values gives exactly its recorded command.
    assert render(template, {k: v for k, v in values.items() if k in used}) == mlflow["command"]

    mistyped = [name for name in required if types[name] in VALID_VALUE]
    fixed = {**values, **{name: VALID_VALUE[types[name]] for name in mistyped}}
    for name in mistyped:  # (c)
        result = plan({**fixed, name: "VALUE"})
        assert (result.code, result.out) == (2, "")
        assert result.err.splitlines()[-1] == (
            f"mlproject: error: parameter {name} ({types[name]}): 'VALUE': {WHY[types[name]]}")

    expected = dict(fixed)
    for name, kind in types.items():  # (a)
        if kind == "path":
            base = tmp_path if name in required else project
            expected[name] = os.path.normpath(os.path.join(base, fixed[name]))
    result = plan(fixed)
    assert result.code == 0, result.err
    steps = json.loads(result.out)["steps"]
    assert steps[-1]["entry_point"] == entry
    assert steps[-1]["command"] == render(template, {k: v for k, v in expected.items()
                                                     if k in used})
    if not mistyped and not any(kind == "path" for kind in types.values()):
        assert steps[-1]["command"] == mlflow["command"]  # no exception applies: exactly MLflow's


def test_the_readme_maps_every_option_of_mlflow_run() -> None:
    """The table of README's "Coming from `mlflow run`" names each option MLflow's own `run`
    command has (read from the installed mlflow), and says what mlproject does with it."""
    cli = pytest.importorskip("mlflow.cli", reason="the mlflow package (a test dependency) is "
                              "not installed")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Coming from `mlflow run`", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
    mapped = " ".join(row[0] for row in rows)
    options = [max(p.opts, key=len) for p in cli.run.params if p.param_type_name == "option"]
    assert options and all(f"`{o}" in mapped or f" {o}`" in mapped or f", {o}`" in mapped
                           for o in options), (options, mapped)
    assert all(len(row) == 3 and row[1].strip() and row[2].strip() for row in rows)
