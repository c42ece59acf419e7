"""The cache of built specs holds data, never code: a JSON form of the Spec that reads back
exactly, for every file we know of."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import SHARED_CORPUS
from mlproject.runner.state.speccache import built_spec, spec_from_json, spec_to_json
from mlproject.runner.state.speccache import load_cached as load  # the cache is what is tested
from mlproject.runner.util.files import cache_root
from mlproject.spec import SpecError

REPO = Path(__file__).resolve().parents[1]
CORPUS = sorted(p for p in SHARED_CORPUS.glob("*") if p.name.lower().endswith(
    ("mlproject", "mlproject_capitalp")))
FILES = [*CORPUS, REPO / "MLproject.example", REPO / "templates" / "project" / "MLproject"]


@pytest.mark.parametrize("source", FILES, ids=lambda p: p.name)
def test_a_spec_read_from_the_cache_equals_the_spec_loaded_cold(source: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(source, project / "MLproject")
    if source.parent == REPO / "templates" / "project":  # with the code it names
        shutil.copytree(source.parent, project, dirs_exist_ok=True)
    try:
        cold = load(project)
    except SpecError:
        pytest.skip("a file this loader refuses is never cached")
    [entry] = (cache_root() / "specs").glob("*.json")
    assert cold.warnings or cold.entry_points  # a real spec, not an empty shell
    assert built_spec((project / "MLproject").read_bytes(), False) == cold
    assert load(project) == cold
    assert spec_from_json(spec_to_json(cold)) == cold
    assert spec_to_json(spec_from_json(entry.read_text())) == entry.read_text()  # canonical


def test_the_corpus_has_files_with_placeholders_and_warnings() -> None:
    """The round trip above covers every kind of value: placeholders, parameters, warnings."""
    if not CORPUS:
        pytest.skip(f"MLflow's corpus is not at {SHARED_CORPUS}")
    loaded = []
    for source in CORPUS:
        try:
            loaded.append(load(source))
        except SpecError:
            pass
    assert any(not isinstance(part, str) for s in loaded for ep in s.entry_points.values()
               for part in ep.template)
    assert any(ep.parameters for s in loaded for ep in s.entry_points.values())


def test_no_module_of_the_package_imports_pickle() -> None:
    """A cache directory may be shared: nothing read from it may name code to run."""
    found = [f"{path.relative_to(REPO)}:{number}"
             for package in ("spec", "runner") for path in sorted((REPO / package).rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"^\s*(import\s+(c?pickle|shelve|marshal)\b|from\s+(c?pickle|shelve)\s+import)",
                          line)]
    assert found == []


def test_the_format_alone_writes_nothing(tmp_path: Path) -> None:
    """`mlproject.spec.load` without a cache reads the file and nothing else: the cache is the
    runner's (the CLI hands it in)."""
    from mlproject.spec import load as load_format

    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text("entry_points:\n  main: {command: echo}\n")
    spec = load_format(project)
    assert spec.entry_points["main"].name == "main"
    assert not cache_root().exists() or not any(cache_root().rglob("*.json"))
