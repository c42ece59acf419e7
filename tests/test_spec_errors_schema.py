"""`load()` names every schema problem of an MLproject file: types, required keys, values,
names, environments and unknown keys.

Whole messages are pinned. Each test writes its file into a temporary directory and loads it
from inside (the `here` fixture of conftest.py), so the file is displayed as `MLproject`.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from mlproject.spec import SpecError, load
from specfiles import IGNORED, TYPES, errors, warnings, write

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
    """) == ["MLproject:3:13: environments.box.docker: a docker environment gives exactly one of: "
             "an image to run (image: REF), or how to build one (build: {context, dockerfile, "
             "args})"]


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
            metrics: m.json
            gates: {acc: {min: 0.8, minimum: 0.9}}
    """, "MLproject:5:29: {}entry_points.main.gates.acc.minimum: unknown key 'minimum'"),
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
