"""`load()` names every problem of an MLproject file: `file:line:col: dotted.path: expectation`.

Whole messages are pinned. Each test writes its file into a temporary directory and loads it
from inside, so the file is displayed as `MLproject`.
"""
from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlproject.spec import Spec, SpecError, load
from mlproject.spec.cache import cache_root

TYPES = "string, int, float, bool, path, uri"
Cli = Callable[..., Any]  # the `cli` fixture of conftest.py
IGNORED = "(ignored, as MLflow does; an error under --strict)"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(root: Path, text: str, name: str = "MLproject") -> Path:
    path = root / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def errors(root: Path, text: str, *, strict: bool = False) -> list[str]:
    """Every problem of the file, as the user reads them; the file must be refused."""
    write(root, text)
    with pytest.raises(SpecError) as caught:
        load("MLproject", strict=strict)
    lines = [str(p) for p in caught.value.problems]
    assert str(caught.value) == "\n".join(lines)
    return lines


def warnings(root: Path, text: str) -> list[str]:
    write(root, text)
    spec = load("MLproject")
    assert isinstance(spec, Spec)
    return [str(p) for p in spec.warnings]


# -- types, required keys, values -------------------------------------------------------------


def test_unknown_parameter_type(here: Path) -> None:
    assert errors(here, """
        name: churn
        entry_points:
          train:
            parameters:
              lr: {type: flot, default: 0.1}
            command: python train.py --lr {lr}
    """) == [f"MLproject:5:18: entry_points.train.parameters.lr.type: 'flot' is not one of {TYPES}"]


def test_unknown_type_in_mlflow_shorthand(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main:
            parameters:
              epochs: integer
            command: python train.py {epochs}
    """) == [f"MLproject:4:15: entry_points.main.parameters.epochs: 'integer' is not one of "
             f"{TYPES}"]


def test_missing_command(here: Path) -> None:
    assert errors(here, """
        entry_points:
          train:
            parameters: {a: int}
    """) == ["MLproject:3:5: entry_points.train: missing required key 'command'"]


def test_empty_command(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main: {command: ""}
    """) == ["MLproject:2:19: entry_points.main.command: '' should be non-empty"]


def test_bad_resource_values_are_all_reported(here: Path) -> None:
    assert errors(here, """
        resources: {memory: 12X, timeout: -1, gpu: 1.5}
        entry_points:
          main: {command: echo}
    """) == [
        "MLproject:1:21: resources.memory: '12X' is not a memory size: give bytes (a positive "
        "integer) or a text such as 512Mi, 16Gi, 2G",
        "MLproject:1:35: resources.timeout: -1 is not a duration: give seconds (a positive "
        "number) or a text such as 90s, 30m, 2h, 1h30m",
        "MLproject:1:44: resources.gpu: expected an integer, got 1.5",
    ]


def test_bad_resources_of_an_entry_point(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main:
            command: echo
            resources:
              cpu: 0
              memory: -5
              gpu: -1
              timeout: 2 hours
    """) == [
        "MLproject:5:12: entry_points.main.resources.cpu: 0 is less than or equal to the "
        "minimum of 0",
        "MLproject:6:15: entry_points.main.resources.memory: -5 is not a memory size: give bytes "
        "(a positive integer) or a text such as 512Mi, 16Gi, 2G",
        "MLproject:7:12: entry_points.main.resources.gpu: -1 is less than the minimum of 0",
        "MLproject:8:16: entry_points.main.resources.timeout: '2 hours' is not a duration: give "
        "seconds (a positive number) or a text such as 90s, 30m, 2h, 1h30m",
    ]


@pytest.mark.parametrize("field", ["cpu: .nan", "cpu: .inf", "timeout: .nan", "timeout: .inf"])
def test_non_finite_resources_are_refused(here: Path, field: str) -> None:
    write(here, f"""
        resources: {{{field}}}
        entry_points:
          main: {{command: echo}}
    """)
    with pytest.raises(SpecError) as caught:
        load("MLproject")
    assert str(caught.value).startswith("MLproject:1:")


def test_wrong_kinds_of_values(here: Path) -> None:
    assert errors(here, """
        name: [a, b]
        format: 2
        entry_points:
          main:
            command: 42
            needs: main
            parameters:
              p: {type: int, default: [1]}
    """) == [
        "MLproject:1:7: name: expected a string, got a list",
        "MLproject:2:9: format: expected 1, got 2",
        "MLproject:5:14: entry_points.main.command: expected a string, got 42",
        "MLproject:6:12: entry_points.main.needs: expected a list, got 'main'",
        "MLproject:8:31: entry_points.main.parameters.p.default: expected a string or a number "
        "or true or false or nothing, got a list",
    ]


# -- names and environments -------------------------------------------------------------------


def test_bad_names(here: Path) -> None:
    assert errors(here, """
        environments:
          "bad name": {python: "3.11"}
        entry_points:
          "tr ain": {command: echo}
          main:
            parameters:
              "1x": int
            command: echo
    """) == [
        "MLproject:2:3: environments.bad name: 'bad name' is not a valid name: use letters, "
        "digits, '_' and '-', starting with a letter or '_'",
        "MLproject:4:3: entry_points.tr ain: 'tr ain' is not a valid entry point name: use "
        "letters, digits, '_', '-' and '.'",
        "MLproject:7:7: entry_points.main.parameters.1x: '1x' is not a valid name: use letters, "
        "digits, '_' and '-', starting with a letter or '_'",
    ]


def test_environment_of_two_kinds_at_once(here: Path) -> None:
    assert errors(here, """
        environments:
          train: {python: "3.11", docker: {image: "python:3.11"}}
        entry_points:
          main: {command: echo, environment: train}
    """) == [
        "MLproject:2:10: environments.train: an environment is exactly one of: python (python, "
        "requirements or python_env, and an optional lock), conda (conda and an optional lock), or docker",
    ]


def test_environment_of_no_kind(here: Path) -> None:
    assert errors(here, """
        environments:
          train: {lock: conda-lock.yml}
        entry_points:
          main: {command: echo}
    """) == [
        "MLproject:2:10: environments.train: an environment is exactly one of: python (python, "
        "requirements or python_env, and an optional lock), conda (conda and an optional lock), or docker",
    ]


def test_docker_without_image(here: Path) -> None:
    assert errors(here, """
        environments:
          box:
            docker: {volumes: [/data]}
        entry_points:
          main: {command: echo}
    """) == ["MLproject:3:13: environments.box.docker: missing required key 'image'"]


def test_mlflow_docker_env_without_image(here: Path) -> None:
    assert errors(here, """
        name: docker-example
        docker_env:
          dockerfile: Dockerfile
        entry_points:
          main: {command: echo}
    """) == [
        "MLproject:3:3: docker_env: missing required key 'image'",
        f"MLproject:3:3: warning: docker_env.dockerfile: unknown key 'dockerfile' {IGNORED}",
    ]


def test_two_mlflow_environments_at_once(here: Path) -> None:
    assert errors(here, """
        conda_env: conda.yaml
        docker_env: {image: "python:3.11"}
        entry_points:
          main: {command: echo}
    """) == ["MLproject:2:13: docker_env: conda_env and docker_env cannot both be given: "
             "choose one"]


def test_environment_references_must_exist(here: Path) -> None:
    assert errors(here, """
        environment: nope
        environments:
          train: {python: "3.11"}
        entry_points:
          main: {command: echo, environment: other}
    """) == [
        "MLproject:1:14: environment: no environment named 'nope' (declared: train)",
        "MLproject:5:38: entry_points.main.environment: no environment named 'other' "
        "(declared: train)",
    ]


# -- YAML itself ------------------------------------------------------------------------------


def test_yaml_syntax_error_is_located(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main: {command: echo hi
          other: {command: echo}
    """) == [
        "MLproject:3:8: YAML syntax: did not find expected ',' or '}' (while parsing a flow "
        "mapping)",
    ]


def test_tab_indentation_is_located(here: Path) -> None:
    (here / "MLproject").write_text("entry_points:\n\tmain: {command: echo}\n")
    with pytest.raises(SpecError) as caught:
        load("MLproject")
    assert str(caught.value) == ("MLproject:2:1: YAML syntax: found character that cannot start "
                                 "any token (while scanning for the next token)")


def test_duplicate_key_names_the_second_and_the_first(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main:
            command: echo one
            parameters: {}
            command: echo two
    """) == ["MLproject:5:5: entry_points.main.command: duplicate key 'command' (first defined at line 3)"]


def test_duplicate_entry_point(here: Path) -> None:
    assert errors(here, """
        name: x
        entry_points:
          main: {command: echo}
          other: {command: echo}
          main: {command: echo again}
    """) == ["MLproject:5:3: entry_points.main: duplicate key 'main' (first defined at line 3)"]


def test_duplicate_key_names_its_dotted_path(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main:
            command: echo one
            command: echo two
    """) == ["MLproject:4:5: entry_points.main.command: duplicate key 'command' "
             "(first defined at line 3)"]


@pytest.mark.parametrize(("key", "shown"), [("1", "1"), ("true", "True"), ("1.5", "1.5"),
                                            ("~", "None")])
def test_non_string_keys(here: Path, key: str, shown: str) -> None:
    assert errors(here, f"""
        entry_points:
          main:
            command: echo
            parameters:
              {key}: int
    """) == [f"MLproject:5:7: key {shown} must be a string: quote it"]


def test_mapping_as_key(here: Path) -> None:
    assert errors(here, """
        entry_points:
          ? {a: 1}
          : {command: echo}
    """) == ["MLproject:2:5: a mapping or list cannot be used as a key"]


def test_alias_without_anchor(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main: *nothing
    """) == ["MLproject:2:9: alias *nothing has no anchor before it"]


def test_python_tags_are_refused(here: Path) -> None:
    assert errors(here, """
        entry_points: !!python/object:os.system {}
    """) == ["MLproject:1:15: YAML tag tag:yaml.org,2002:python/object:os.system is not "
             "supported here"]


def test_several_yaml_documents(here: Path) -> None:
    assert errors(here, """
        entry_points: {main: {command: echo}}
        ---
        entry_points: {other: {command: echo}}
    """) == ["MLproject:2:1: expected one YAML document, found more"]


@pytest.mark.parametrize(("text", "found"), [
    ("", "the file is empty"),
    ("# only a comment\n", "the file is empty"),
    ("- main\n- train\n", "found a list"),
    ("hello\n", "found 'hello'"),
])
def test_top_level_must_be_a_mapping(here: Path, text: str, found: str) -> None:
    (here / "MLproject").write_text(text)
    with pytest.raises(SpecError) as caught:
        load("MLproject")
    assert str(caught.value) == (f"MLproject:1:1: expected a mapping with entry_points at the "
                                 f"top level; {found}")


def test_no_entry_points(here: Path) -> None:
    assert errors(here, "name: x\n") == ["MLproject:1:1: missing required key 'entry_points'"]
    assert errors(here, "entry_points: {}\n") == ["MLproject:1:15: entry_points: must not be empty"]


def test_not_utf8(here: Path) -> None:
    (here / "MLproject").write_bytes(b"name: caf\xe9\nentry_points: {main: {command: echo}}\n")
    with pytest.raises(SpecError) as caught:
        load("MLproject")
    assert str(caught.value) == "MLproject:1:10: not UTF-8 text (byte 0xe9)"


def test_whole_file_problems(here: Path) -> None:
    (here / "empty").mkdir()
    with pytest.raises(SpecError) as caught:
        load("empty")
    assert str(caught.value) == "empty: no MLproject file in this directory"
    with pytest.raises(SpecError) as caught:
        load("missing")
    assert str(caught.value) == "missing: no such file or directory"


# -- unknown keys: warnings, errors under strict ----------------------------------------------


UNKNOWN_KEYS = """
    name: x
    resorces: {cpu: 1}
    entry_points:
      main: {command: echo, outptus: [model.pkl], colour: red}
"""


def test_unknown_keys_are_warnings_with_did_you_mean(here: Path) -> None:
    assert warnings(here, UNKNOWN_KEYS) == [
        f"MLproject:2:1: warning: resorces: unknown key 'resorces' (did you mean "
        f"'resources'?) {IGNORED}",
        f"MLproject:4:25: warning: entry_points.main.outptus: unknown key 'outptus' "
        f"(did you mean 'outputs'?) {IGNORED}",
        f"MLproject:4:47: warning: entry_points.main.colour: unknown key 'colour' {IGNORED}",
    ]


def test_unknown_keys_are_errors_under_strict(here: Path) -> None:
    assert errors(here, UNKNOWN_KEYS, strict=True) == [
        "MLproject:2:1: resorces: unknown key 'resorces' (did you mean 'resources'?)",
        "MLproject:4:25: entry_points.main.outptus: unknown key 'outptus' (did you mean "
        "'outputs'?)",
        "MLproject:4:47: entry_points.main.colour: unknown key 'colour'",
    ]


UNKNOWN_NESTED = pytest.mark.parametrize(("text", "where"), [
    ("""
        data:
          train: {path: a.csv, revision: v2}
        entry_points:
          main: {command: echo, data: [train]}
    """, "MLproject:2:24: {}data.train.revision: unknown key 'revision'"),
    ("""
        entry_points:
          main:
            command: echo
            gates: {acc: {min: 0.8, minimum: 0.9}}
    """, "MLproject:4:29: {}entry_points.main.gates.acc.minimum: unknown key 'minimum'"),
], ids=["data", "gates"])


@UNKNOWN_NESTED
def test_unknown_keys_of_data_and_gates_are_errors_under_strict(here: Path, text: str,
                                                               where: str) -> None:
    assert errors(here, text, strict=True) == [where.format("")]


@UNKNOWN_NESTED
def test_unknown_keys_of_data_and_gates_are_warnings(here: Path, text: str, where: str) -> None:
    assert warnings(here, text) == [f"{where.format('warning: ')} {IGNORED}"]


def test_default_that_does_not_fit_is_a_warning_and_an_error_under_strict(here: Path) -> None:
    text = """
        entry_points:
          main:
            parameters: {n: {type: int, default: auto}}
            command: echo {n}
    """
    message = ("MLproject:3:42: {}entry_points.main.parameters.n.default: default 'auto' does "
               "not fit type int: expected an integer")
    assert warnings(here, text) == [message.format("warning: ")]
    assert errors(here, text, strict=True) == [message.format("")]


# -- references between sections, placeholders -----------------------------------------------


def test_needs_an_unknown_entry_point(here: Path) -> None:
    assert errors(here, """
        entry_points:
          train: {command: echo}
          evaluate: {command: echo, needs: [train, trian]}
    """) == ["MLproject:3:44: entry_points.evaluate.needs[1]: no entry point named 'trian' "
             "(declared: evaluate, train)"]


def test_cycle_in_needs(here: Path) -> None:
    assert errors(here, """
        entry_points:
          a: {command: echo, needs: [b]}
          b: {command: echo, needs: [c]}
          c: {command: echo, needs: [a]}
    """) == ["MLproject:4:30: entry_points.c.needs[0]: cycle in needs: a -> b -> c -> a"]


def test_entry_point_that_needs_itself(here: Path) -> None:
    assert errors(here, """
        entry_points:
          a: {command: echo, needs: [a]}
    """) == ["MLproject:2:30: entry_points.a.needs[0]: cycle in needs: a -> a"]


def test_placeholder_naming_no_parameter(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main:
            parameters: {alpha: float}
            command: python train.py --alpha {alpha} --beta {beta}
    """) == ["MLproject:4:14: entry_points.main.command: placeholder {beta} names no parameter "
             "(declared: alpha); write '{{' and '}}' for literal braces"]


@pytest.mark.parametrize("placeholder", ["{x:>3}", "{x!r}"])
def test_placeholder_with_a_format_spec(here: Path, placeholder: str) -> None:
    assert errors(here, f"""
        entry_points:
          main:
            parameters: {{x: int}}
            command: python train.py {placeholder}
    """) == ["MLproject:4:14: entry_points.main.command: placeholder {x} takes no format spec "
             "or conversion"]


def test_unescaped_python_dict_in_a_command(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main: {command: "python -c 'print({1: 2})'"}
    """) == ["MLproject:2:19: entry_points.main.command: positional placeholder '{}' is not "
             "allowed; name a parameter"]


def test_data_placeholder_not_in_the_entry_points_data(here: Path) -> None:
    assert errors(here, """
        data:
          train: {path: data/train.csv}
          test: {path: data/test.csv}
        entry_points:
          main:
            data: [train]
            command: python train.py {data.train} {data.test}
    """) == ["MLproject:7:14: entry_points.main.command: placeholder {data.test}: the entry point "
             "lists no data 'test' (add it to its `data:`)"]


def test_data_that_is_not_declared(here: Path) -> None:
    assert errors(here, """
        data:
          train: {path: data/train.csv}
        entry_points:
          main:
            data: [train, tset]
            command: python train.py
    """) == ["MLproject:5:19: entry_points.main.data[1]: no data input named 'tset' "
             "(declared: train)"]


@pytest.mark.parametrize("placeholder", ["{}", "{0}"])
def test_positional_placeholder(here: Path, placeholder: str) -> None:
    assert errors(here, f"""
        entry_points:
          main:
            parameters: {{x: int}}
            command: python train.py {placeholder} {{x}}
    """) == ["MLproject:4:14: entry_points.main.command: positional placeholder '{}' is not "
             "allowed; name a parameter"]


def test_lone_brace(here: Path) -> None:
    assert errors(here, """
        entry_points:
          main:
            command: python -c "print({)"
    """) == ["MLproject:3:14: entry_points.main.command: expected '}' before end of string "
             "(write '{{' or '}}' for a literal brace)"]


def test_every_schema_problem_of_a_file_is_listed(here: Path) -> None:
    assert errors(here, """
        name: x
        resources: {memory: 12X}
        environments:
          gpu: {conda: env.yml, python: "3.11"}
        entry_points:
          train:
            parameters:
              lr: {type: flot}
              epochs: {type: int, default: [1]}
          evaluate:
            parameters: {n: int}
          "bad entry": {command: echo}
    """) == [
        "MLproject:2:21: resources.memory: '12X' is not a memory size: give bytes (a positive "
        "integer) or a text such as 512Mi, 16Gi, 2G",
        "MLproject:4:8: environments.gpu: an environment is exactly one of: python (python, "
        "requirements or python_env, and an optional lock), conda (conda and an optional lock), or docker",
        "MLproject:7:5: entry_points.train: missing required key 'command'",
        f"MLproject:8:18: entry_points.train.parameters.lr.type: 'flot' is not one of {TYPES}",
        "MLproject:9:36: entry_points.train.parameters.epochs.default: expected a string or a "
        "number or true or false or nothing, got a list",
        "MLproject:11:5: entry_points.evaluate: missing required key 'command'",
        "MLproject:12:3: entry_points.bad entry: 'bad entry' is not a valid entry point name: "
        "use letters, digits, '_', '-' and '.'",
    ]


def test_every_reference_problem_of_a_file_is_listed(here: Path) -> None:
    assert errors(here, """
        data:
          train: {path: data/train.csv}
        entry_points:
          main:
            parameters: {x: int}
            environment: gpu
            command: python {y} {data.train}
            needs: [prep]
          loop:
            command: echo
            needs: [loop]
    """) == [
        "MLproject:6:18: entry_points.main.environment: no environment named 'gpu' "
        "(declared: none are declared)",
        "MLproject:7:14: entry_points.main.command: placeholder {data.train}: the entry point "
        "lists no data 'train' (add it to its `data:`)",
        "MLproject:7:14: entry_points.main.command: placeholder {y} names no parameter "
        "(declared: x); write '{{' and '}}' for literal braces",
        "MLproject:8:13: entry_points.main.needs[0]: no entry point named 'prep' "
        "(declared: loop, main)",
        "MLproject:11:13: entry_points.loop.needs[0]: cycle in needs: loop -> loop",
    ]


def test_problem_objects_carry_their_parts(here: Path) -> None:
    write(here, """
        entry_points:
          train:
            parameters:
              lr: {type: flot}
            command: echo {lr}
    """)
    with pytest.raises(SpecError) as caught:
        load(here)  # an absolute path outside the working directory's parents still works
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.col) == ("MLproject", 4, 18)
    assert problem.path == ("entry_points", "train", "parameters", "lr", "type")
    assert problem.severity == "error"
    assert problem.message == f"'flot' is not one of {TYPES}"


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
    for entry in (cache_root() / "specs").glob("*.pickle"):
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
