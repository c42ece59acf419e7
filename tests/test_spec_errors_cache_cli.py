"""The cache of validated MLproject files, and the CLI's `validate` and `schema`.

Whole messages are pinned. Each test writes its file into a temporary directory and loads it
from inside (the `here` fixture of conftest.py), so the file is displayed as `MLproject`.
"""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from mlproject.runner.state.speccache import load_cached as load  # the cache is what is tested
from mlproject.runner.util.files import cache_root
from mlproject.spec import SpecError
from specfiles import IGNORED, TYPES, Cli, warnings, write

# -- the cache of validated files -------------------------------------------------------------


CACHED = """
    name: x
    resorces: {cpu: 1}
    entry_points:
      main: {command: echo}
"""
CACHED_WARNING = (f"MLproject:2:1: warning: resorces: unknown key 'resorces' "
                  f"(did you mean 'resources'?) {IGNORED}")


def cache_entries() -> list[Path]:
    return sorted((cache_root() / "validated").glob("*.json"))


def forget_built_specs() -> None:
    """Drop the cache of built specs, which is consulted first, so the validation cache is."""
    for entry in (cache_root() / "specs").glob("*.json"):
        entry.unlink()


def test_a_validated_file_is_cached(here: Path) -> None:
    assert cache_root() == Path(os.environ["MLPROJECT_CACHE_DIR"])
    assert not cache_entries()
    assert warnings(here, CACHED) == [CACHED_WARNING]
    (entry,) = cache_entries()
    assert json.loads(entry.read_text()) == [
        {"line": 2, "col": 1, "path": ["resorces"],
         "message": f"unknown key 'resorces' (did you mean 'resources'?) {IGNORED}"},
    ]
    # The second load reads the entry: what it holds is what load reports.
    entry.write_text(json.dumps([{"line": 1, "col": 1, "path": ["name"],
                                  "message": "from the cache"}]))
    forget_built_specs()
    assert [str(w) for w in load("MLproject").warnings] == [
        "MLproject:1:1: warning: name: from the cache"]


def test_strict_is_cached_apart(here: Path) -> None:
    write(here, CACHED)
    load("MLproject")
    with pytest.raises(SpecError):
        load("MLproject", strict=True)
    with pytest.raises(SpecError):
        load("MLproject", strict=True)
    assert len(cache_entries()) == 1  # a refused file is not recorded as validated


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"\xff\xfe\x00", b'{"a": 1}', b"null"])
def test_a_corrupted_cache_entry_heals(here: Path, garbage: bytes) -> None:
    assert warnings(here, CACHED) == [CACHED_WARNING]
    (entry,) = cache_entries()
    good = entry.read_text()
    entry.write_bytes(garbage)
    forget_built_specs()
    assert warnings(here, CACHED) == [CACHED_WARNING]
    assert entry.read_text() == good


def test_an_unwritable_cache_costs_only_speed(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = here / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("MLPROJECT_CACHE_DIR", str(blocker))
    assert warnings(here, CACHED) == [CACHED_WARNING]
    assert warnings(here, CACHED) == [CACHED_WARNING]


# -- the CLI: validate and schema -------------------------------------------------------------


VALID = """
    name: churn
    entry_points:
      main:
        parameters: {alpha: {type: float, default: 0.5}}
        command: python train.py {alpha}
"""

INVALID = """
    resources: {gpu: 1.5}
    entry_points:
      train:
        parameters:
          lr: {type: flot}
"""


def test_validate_a_valid_file(here: Path, cli: Cli) -> None:
    write(here, VALID)
    result = cli("validate", str(here))
    assert (result.code, result.err) == (0, "")
    assert result.out == f"{here / 'MLproject'}: valid (1 entry points: main)\n"


def test_validate_an_invalid_file(here: Path, cli: Cli) -> None:
    write(here, INVALID)
    result = cli("validate", "MLproject")
    assert result.code == 2
    assert result.out == ""
    assert result.err == (
        "MLproject:1:18: resources.gpu: expected an integer, got 1.5\n"
        "MLproject:4:5: entry_points.train: missing required key 'command'\n"
        f"MLproject:5:18: entry_points.train.parameters.lr.type: 'flot' is not one of {TYPES}\n"
    )


def test_validate_json(here: Path, cli: Cli) -> None:
    write(here, INVALID)
    result = cli("validate", ".", "--json")
    assert result.code == 2
    assert json.loads(result.out) == [
        {"file": "MLproject", "line": 1, "col": 18, "path": ["resources", "gpu"],
         "message": "expected an integer, got 1.5", "severity": "error"},
        {"file": "MLproject", "line": 4, "col": 5, "path": ["entry_points", "train"],
         "message": "missing required key 'command'", "severity": "error"},
        {"file": "MLproject", "line": 5, "col": 18,
         "path": ["entry_points", "train", "parameters", "lr", "type"],
         "message": f"'flot' is not one of {TYPES}", "severity": "error"},
    ]


def test_validate_json_of_a_valid_file_lists_its_warnings(here: Path, cli: Cli) -> None:
    write(here, CACHED)
    result = cli("validate", "--json")
    assert result.code == 0
    assert json.loads(result.out) == [
        {"file": "MLproject", "line": 2, "col": 1, "path": ["resorces"],
         "message": f"unknown key 'resorces' (did you mean 'resources'?) {IGNORED}",
         "severity": "warning"},
    ]
    assert json.loads(cli("validate", "--json").out) == json.loads(result.out)
    write(here, VALID)
    assert json.loads(cli("validate", "--json").out) == []


def test_validate_strict(here: Path, cli: Cli) -> None:
    write(here, CACHED)
    lenient = cli("validate")
    assert (lenient.code, lenient.err) == (0, CACHED_WARNING + "\n")
    strict = cli("validate", "--strict")
    assert strict.code == 2
    assert strict.err == ("MLproject:2:1: resorces: unknown key 'resorces' (did you mean "
                          "'resources'?)\n")


def test_validate_a_directory_without_a_file(here: Path, cli: Cli) -> None:
    result = cli("validate")
    assert (result.code, result.err) == (2, ".: no MLproject file in this directory\n")


EXAMPLE = """
    # Every field of the format, as in MLproject.example.
    format: 1
    name: churn
    environment: train
    environments:
      train: {python: "3.11", requirements: requirements.lock}
      gpu: {conda: environment.yml, lock: conda-lock.yml}
      image:
        docker:
          image: "ghcr.io/org/train@sha256:0123"
          volumes: ["/data:/data"]
          environment: [TOKEN, [MODE, fast]]
          run_args: {shm-size: 1g}
    data:
      train: {path: data/train.csv, rev: v2}
      images: {repo: "https://github.com/org/datasets", path: images, rev: 3f2a1c9,
               md5: 0123456789abcdef0123456789abcdef.dir}
    resources: {cpu: 2, memory: 8Gi, gpu: 0, timeout: 2h}
    entry_points:
      train:
        environment: train
        data: [train]
        resources: {gpu: 1, memory: 16Gi, timeout: 1h30m}
        parameters:
          alpha: {type: float, default: 0.5, description: regularization}
          epochs: int
          deep: {type: bool, default: false}
          out: {type: path, default: models}
          source: {type: uri, default: "s3://bucket/key"}
          tag: {type: string}
        command: "python train.py --alpha {alpha} --epochs {epochs} --data {data.train}"
        outputs: [models/model.pkl]
        metrics: metrics.json
      evaluate:
        needs: [train]
        environment: image
        command: "python evaluate.py"
        metrics: eval.json
        gates:
          accuracy: {min: 0.85}
          auc: {not_worse_than: base, tolerance: 0.01, direction: higher}
"""


def test_schema_is_a_valid_draft_2020_12_schema(here: Path, cli: Cli) -> None:
    import yaml
    from jsonschema import Draft202012Validator

    result = cli("schema")
    assert result.code == 0
    schema = json.loads(result.out)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator = Draft202012Validator(schema)
    example = yaml.safe_load(textwrap.dedent(EXAMPLE))
    assert list(validator.iter_errors(example)) == []
    assert not validator.is_valid(yaml.safe_load(textwrap.dedent(INVALID)))
    write(here, EXAMPLE)
    spec = load("MLproject")
    assert spec.warnings == ()
    assert list(spec.entry_points) == ["train", "evaluate"]


def test_the_repository_example_is_valid(cli: Cli) -> None:
    import yaml
    from jsonschema import Draft202012Validator

    example = Path(__file__).resolve().parents[1] / "MLproject.example"
    if not example.exists():
        pytest.skip("MLproject.example is not in this checkout")
    schema = json.loads(cli("schema").out)
    Draft202012Validator(schema).validate(yaml.safe_load(example.read_text()))
    assert load(example).warnings == ()
