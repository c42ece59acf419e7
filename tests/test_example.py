"""MLproject.example is valid, warning-free, and shows every field the schema defines: a field
added to spec/schema.json without an example in it fails here."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlproject.spec import load
from mlproject.spec.template import Placeholder

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "MLproject.example"
SCHEMA = json.loads((ROOT / "spec" / "schema.json").read_text(encoding="utf-8"))
# Mutually exclusive with each other, so the example shows them in comments.
COMMENTED = {"python_env", "conda_env", "docker_env"}
# Subschema keywords a walk looks into for the properties of one definition (not `properties`:
# a property's own inline object would be another definition and needs a place below).
_SUBSCHEMAS = ("if", "then", "else", "anyOf", "oneOf", "allOf", "not")

Mapping = dict[str, Any]


def properties(schema: Mapping) -> set[str]:
    """The property names an object schema defines, also in its if/then/else and alternatives."""
    found = set(schema.get("properties", {}))
    for keyword in _SUBSCHEMAS:
        value = schema.get(keyword)
        for sub in value if isinstance(value, list) else [value]:
            if isinstance(sub, dict):
                found |= properties(sub)
    return found


def all_properties(node: Any) -> Iterator[str]:
    """Every property name anywhere in the schema."""
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            yield from node["properties"]
        for value in node.values():
            yield from all_properties(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_properties(value)


@pytest.fixture(scope="module")
def doc() -> Mapping:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _values(section: Any) -> list[Mapping]:
    return [v for v in (section or {}).values() if isinstance(v, dict)]


def _entries(doc: Mapping) -> list[Mapping]:
    return _values(doc["entry_points"])


# Where in a document each definition of the schema applies: the mappings it validates.
PLACES: dict[str, Callable[[Mapping], list[Mapping]]] = {
    "entry_point": _entries,
    "resources": lambda d: [d["resources"]] + [e["resources"] for e in _entries(d)
                                               if "resources" in e],
    "data": lambda d: _values(d["data"]),
    "environment": lambda d: _values(d["environments"]),
    "docker": lambda d: [e["docker"] for e in _values(d["environments"]) if "docker" in e],
    "docker_build": lambda d: [e["docker"]["build"] for e in _values(d["environments"])
                               if "build" in e.get("docker", {})],
    # MLflow's fields, shown under an environment's docker: (docker_env itself is commented)
    "docker_env": lambda d: [e["docker"] for e in _values(d["environments"]) if "docker" in e],
    "gate": lambda d: [g for e in _entries(d) for g in _values(e.get("gates"))],
    "parameter": lambda d: [p for e in _entries(d) for p in _values(e.get("parameters"))],
    "model": lambda d: _values(d["models"]),
    "sweep": lambda d: _values(d["sweeps"]),
    "sweep_values": lambda d: [v for s in _values(d["sweeps"])
                               for v in _values(s.get("grid")) if isinstance(v, dict)],
    "sweep_distribution": lambda d: [v for s in _values(d["sweeps"])
                                     for v in _values((s.get("random") or {}).get("space"))],
}


def test_example_loads_strictly_without_warnings() -> None:
    spec = load(EXAMPLE, strict=True)
    assert spec.warnings == ()
    assert load(EXAMPLE).warnings == ()
    assert list(spec.entry_points) == ["prepare", "train", "evaluate", "predict"]


def test_example_validates_on_the_command_line(cli: Callable[..., Any]) -> None:
    result = cli("validate", str(EXAMPLE), "--strict")
    assert (result.code, result.err) == (0, "")
    assert "valid (4 entry points: prepare, train, evaluate, predict)" in result.out


def test_every_top_level_property_is_shown(doc: Mapping) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    top = set(SCHEMA["properties"])
    assert top - COMMENTED - set(doc) == set()
    assert set(doc) & COMMENTED == set()
    for name in sorted(top & COMMENTED):
        assert re.search(rf"^# {name}:", text, re.MULTILINE), f"{name} is not shown in a comment"


@pytest.mark.parametrize("definition", sorted(
    name for name, body in SCHEMA["$defs"].items() if properties(body)))
def test_every_property_of_a_definition_is_used(definition: str, doc: Mapping) -> None:
    assert definition in PLACES, f"$defs/{definition} has properties: add where it applies to PLACES"
    used: set[str] = set()
    for mapping in PLACES[definition](doc):
        used |= set(mapping)
    missing = properties(SCHEMA["$defs"][definition]) - used
    assert missing == set(), f"MLproject.example shows no {sorted(missing)} of $defs/{definition}"


def test_every_property_anywhere_in_the_schema_appears_in_the_file() -> None:
    # The catch-all: also properties of inline objects that no definition above covers.
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = sorted({name for name in all_properties(SCHEMA)
                      if not re.search(rf"(^|[\s{{,#]){re.escape(name)}:", text, re.MULTILINE)})
    assert missing == []


def test_every_parameter_type_and_the_shorthand_are_shown(doc: Mapping) -> None:
    declared = [p for e in _entries(doc) for p in (e.get("parameters") or {}).values()]
    used = {p if isinstance(p, str) else p.get("type", "string") for p in declared}
    assert set(SCHEMA["$defs"]["parameter_type"]["enum"]) - used == set()
    assert any(isinstance(p, str) for p in declared), "no MLflow shorthand parameter"


def test_every_environment_kind_and_placeholder_kind_is_shown() -> None:
    spec = load(EXAMPLE, strict=True)
    assert {env.kind for env in spec.environments.values()} == {"python", "conda", "docker"}
    names = {part.name for entry in spec.entry_points.values() for part in entry.template
             if isinstance(part, Placeholder)}
    assert any(name.startswith("data.") for name in names)
    assert any(not name.startswith("data.") for name in names)
    assert spec.default_environment == "train"
    assert any(entry.needs for entry in spec.entry_points.values())


def test_example_plans_with_parameters_quoted(cli: Callable[..., Any]) -> None:
    args = ("plan", str(EXAMPLE), "-e", "predict", "-P", "model_uri=runs:/abc/model",
            "-P", "batch=/tmp/new customers.csv", "--json")
    # The example is a spec, not a project: the files its environments name are not there.
    missing = cli(*args)
    assert missing.code == 0
    (planned,) = json.loads(missing.out)["steps"]
    assert "cannot read python_env.yaml" in planned["environment"]["problem"]
    result = cli(*args, "--env", "local")
    assert result.code == 0, result.err
    (step,) = json.loads(result.out)["steps"]
    assert step["command"] == ("python predict.py --model runs:/abc/model "
                               "--batch '/tmp/new customers.csv'")
    assert step["environment"]["name"] == "local"


def _readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def test_the_readme_format_at_a_glance_is_valid(tmp_path: Path) -> None:
    blocks = [b for b in _readme_blocks("yaml") if "entry_points:" in b]
    assert blocks, "README.md shows no MLproject"
    for number, block in enumerate(blocks):
        (tmp_path / f"MLproject{number}").write_text(block, encoding="utf-8")
        assert load(tmp_path / f"MLproject{number}", strict=True).warnings == ()


def test_what_the_example_says_environments_and_data_do_is_true(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    """The example's notes follow the code: environments are built, data is verified, an image
    runs with the docker backend and is refused by the local one."""
    from mlproject.runner import backends
    from mlproject.runner.envs.kinds import EnvKind, kind

    text = EXAMPLE.read_text(encoding="utf-8")
    for stale in ("refuses to build", "later version", "come in a later", "not verified"):
        assert stale not in text, f"MLproject.example still says {stale!r}"
    assert kind("python").module and kind("conda").module  # built, not refused
    containers = [n for n in backends.names() if backends.get(n).capabilities.runs_containers]
    assert containers == ["docker", "kubernetes"], \
        "another backend runs containers: update the example's notes"
    assert "the image of a Kubernetes Job with `--backend kubernetes`" in text
    assert kind(EnvKind.DOCKER.value).needs_containers
    assert "A container image runs with `--backend docker` (the local backend refuses it)" in text
    root = project({"MLproject": """
        environments:
          image: {docker: {image: "ghcr.io/example/churn-train:1.4"}}
        entry_points:
          main: {environment: image, command: "true"}
        """})
    refused = cli("run", str(root))
    assert (refused.code, refused.out) == (2, "")
    assert refused.err == (
        "mlproject: error: cannot start:\nentry point 'main' runs in container image "
        "ghcr.io/example/churn-train:1.4 (environment 'image'): the local backend runs no "
        "containers; run with --env local to use the current interpreter\n")
