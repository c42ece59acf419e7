"""Quirks of real MLflow files are part of the contract. Each is written here as a small
project of our own (the corpus shows where it comes from) and checked on the command that
`mlproject plan --json` builds and the warnings it prints."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Cli = Callable[..., Any]
IGNORED = "(ignored, as MLflow does; an error under --strict)"


@pytest.fixture
def plan(tmp_path: Path, cli: Cli) -> Callable[..., tuple[str, list[str]]]:
    """Write the MLproject text verbatim, plan it: (command of the last step, stderr lines)."""

    def run(text: str, *args: str, name: str = "MLproject") -> tuple[str, list[str]]:
        (tmp_path / name).write_text(text)
        result = cli("plan", ".", "--json", "--env", "local", *args, cwd=tmp_path)
        assert result.code == 0, result.err
        return json.loads(result.out)["steps"][-1]["command"], result.err.splitlines()

    return run


@pytest.fixture
def refused(tmp_path: Path, cli: Cli) -> Callable[..., str]:
    def run(text: str, *args: str) -> str:
        (tmp_path / "MLproject").write_text(text)
        result = cli("plan", ".", "--json", "--env", "local", *args, cwd=tmp_path)
        assert (result.code, result.out) == (2, "")
        return str(result.err)

    return run


def test_shorthand_type_is_a_required_parameter(plan: Any, refused: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters:\n      alpha: float\n      n: int\n"
            "    command: python train.py {alpha} {n}\n")
    assert refused(text) == ("mlproject: error: entry point 'main' requires parameters alpha "
                             "(float), n (int); give them with -P NAME=VALUE\n")
    assert refused(text, "-P", "n=3") == ("mlproject: error: entry point 'main' requires "
                                          "parameter alpha (float); give it with -P NAME=VALUE\n")
    assert plan(text, "-P", "alpha=0.5", "-P", "n=3") == ("python train.py 0.5 3", [])


def test_type_without_default_is_required(plan: Any, refused: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters:\n      alpha: {type: float}\n"
            "    command: python train.py --alpha {alpha}\n")
    assert refused(text) == ("mlproject: error: entry point 'main' requires parameter alpha "
                             "(float); give it with -P NAME=VALUE\n")
    assert plan(text, "-P", "alpha=1e-3") == ("python train.py --alpha 1e-3", [])


def test_parameters_left_empty(plan: Any) -> None:
    text = "entry_points:\n  main:\n    parameters:\n    command: python train.py\n"
    assert plan(text) == ("python train.py", [])


def test_hyphenated_placeholders(plan: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters:\n"
            "      batch-size: {type: int, default: 64}\n"
            "      enable-cuda: {type: string, default: 'True'}\n"
            "    command: python train.py --batch-size {batch-size} --enable-cuda {enable-cuda}\n")
    assert plan(text) == ("python train.py --batch-size 64 --enable-cuda True", [])
    command, _ = plan(text, "-P", "batch-size=8")
    assert command == "python train.py --batch-size 8 --enable-cuda True"


def test_literal_multi_line_command_with_trailing_backslashes(plan: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters:\n"
            "      max_epochs: {type: int, default: 3}\n"
            "      total_trials: {type: int, default: 3}\n"
            "    command: |\n"
            "          python ax.py \\\n"
            "            --max_epochs {max_epochs} \\\n"
            "            --total_trials {total_trials} \\\n")
    assert plan(text) == ("python ax.py \\\n  --max_epochs 3 \\\n  --total_trials 3 \\\n", [])


def test_folded_multi_line_command(plan: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters:\n"
            "      lr: {type: float, default: 0.01}\n"
            "      epochs: {type: int, default: 5}\n"
            "    command: >\n"
            "      python train.py \\\n"
            "        --lr {lr} \\\n"
            "        --epochs {epochs}\n")
    # More-indented lines keep their line breaks in a folded scalar: the shell sees the
    # backslash-newline continuations, as under MLflow.
    assert plan(text) == ("python train.py \\\n  --lr 0.01 \\\n  --epochs 5\n", [])


def test_folded_command_joins_plain_lines(plan: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters: {a: {type: int, default: 1}}\n"
            "    command: >\n      python main.py\n      --a {a}\n      --b 2\n")
    assert plan(text) == ("python main.py --a 1 --b 2\n", [])


def test_multi_line_double_quoted_command(plan: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters: {n: {type: int, default: 100000}}\n"
            '    command: "python main.py --als-max-iter 10\n'
            '                             --max-row-limit {n}"\n')
    assert plan(text) == ("python main.py --als-max-iter 10 --max-row-limit 100000", [])


@pytest.mark.parametrize("name", ["MLProject", "mlproject", "MLPROJECT"])
def test_file_name_in_any_case(plan: Any, tmp_path: Path, name: str) -> None:
    command, err = plan("entry_points:\n  main:\n    command: python train.py\n", name=name)
    assert (command, err) == ("python train.py", [])
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_exact_file_name_wins(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "mlproject").write_text("entry_points: {main: {command: echo lower}}\n")
    (tmp_path / "MLproject").write_text("entry_points: {main: {command: echo exact}}\n")
    result = cli("plan", str(tmp_path), "--json", "--env", "local")
    assert json.loads(result.out)["steps"][-1]["command"] == "echo exact"


def test_type_glued_to_its_value_with_a_space(plan: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters:\n"
            '      strategy: {type str, default: "auto"}\n'
            "    command: python train.py --strategy={strategy}\n")
    assert plan(text) == ("python train.py --strategy=auto", [
        "MLproject:4:18: warning: entry_points.main.parameters.strategy.type str: unknown key "
        f"'type str' (did you mean 'type: str'?) {IGNORED}"])


def test_type_glued_to_its_value_with_a_colon(plan: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters:\n"
            "      learning_rate: {type:float, default: 1.0}\n"
            "    command: python train.py {learning_rate}\n")
    command, err = plan(text)
    assert command == "python train.py 1.0"
    assert err == [
        "MLproject:4:23: warning: entry_points.main.parameters.learning_rate.type:float: unknown "
        f"key 'type:float' (did you mean 'type: float'?) {IGNORED}"]
    # The type is missing, hence string, as MLflow reads it: any value is accepted.
    assert plan(text, "-P", "learning_rate=fast")[0] == "python train.py fast"


def test_default_that_does_not_fit_its_type(plan: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters:\n"
            '      devices: {type: int, default: "auto"}\n'
            "    command: python train.py --devices {devices}\n")
    assert plan(text) == ("python train.py --devices auto", [
        "MLproject:4:37: warning: entry_points.main.parameters.devices.default: default 'auto' "
        "does not fit type int: expected an integer"])
    assert plan(text, "-P", "devices=2")[0] == "python train.py --devices 2"


def test_type_aliases(plan: Any, refused: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters:\n"
            "      name: {type: str, default: x}\n"
            "      flag: {type: boolean, default: true}\n"
            "      other: str\n"
            "    command: run {name} {flag} {other}\n")
    assert plan(text, "-P", "other=y") == ("run x True y", [])
    assert plan(text, "-P", "other=y", "-P", "flag=no")[0] == "run x False y"  # normalized
    assert refused(text, "-P", "other=y", "-P", "flag=maybe").endswith(
        "mlproject: error: parameter flag (bool): 'maybe': expected true or false\n")


def test_default_with_braces(plan: Any) -> None:
    text = ('entry_points:\n  main:\n    parameters:\n      args: {type: string, default: "{}"}\n'
            "    command: python train.py {args}\n")
    assert plan(text) == ("python train.py '{}'", [])


@pytest.mark.parametrize(("default", "text"), [
    ("false", "False"), ("true", "True"), ("yes", "True"), ("off", "False"),
    ("1e-1", "1e-1"), ("1e-3", "1e-3"), ("0.0", "0.0"), ("1.0", "1.0"), ("0.001", "0.001"),
    ("1.5e-3", "0.0015"), ("100000", "100000"), ("'007'", "007"), ("None", "None"),
    ("2024-01-02", "2024-01-02"),
])
def test_defaults_are_str_ed_like_mlflow(plan: Any, default: str, text: str) -> None:
    project = ("entry_points:\n  main:\n    parameters:\n"
               f"      v: {{default: {default}}}\n    command: echo {{v}}\n")
    assert plan(project) == (f"echo {text}", [])


def test_no_name(plan: Any, tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "MLproject").write_text("conda_env: conda.yaml\nentry_points:\n  main:\n"
                                        "    command: \"echo 'Main entry point'\"\n")
    result = cli("plan", ".", "--json", "--env", "local", cwd=tmp_path)
    assert result.code == 0
    out = json.loads(result.out)
    assert out["name"] is None
    assert out["steps"][-1]["command"] == "echo 'Main entry point'"


def test_undeclared_parameters_are_appended(plan: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters: {alpha: {type: float, default: 0.5}}\n"
            "    command: python train.py {alpha}\n")
    command, err = plan(text, "-P", "l1-ratio=0.1", "-P", "tag=a b")
    assert (command, err) == ("python train.py 0.5 --l1-ratio 0.1 --tag 'a b'", [])


def test_whitespace_only_lines_before_command(plan: Any) -> None:
    text = ("name: autolog\n\nconda_env: conda.yaml\n\nentry_points:\n  main:\n    parameters:\n"
            "      epochs: {type: int, default: 2}\n      mode: {type: str, default: auto}\n"
            "    \n  \n"
            "    command: |\n"
            "      python train.py \\\n        --epochs {epochs} \\\n        --mode {mode}\n")
    assert plan(text) == ("python train.py \\\n  --epochs 2 \\\n  --mode auto\n", [])


def test_four_space_indentation_and_unquoted_command(plan: Any) -> None:
    text = ("name: lightgbm-example\n\npython_env: python_env.yaml\n\nentry_points:\n"
            "    main:\n        parameters:\n            n: {type: int, default: 4}\n"
            "        command: python train.py --n {n}\n")
    assert plan(text) == ("python train.py --n 4", [])


def test_single_quoted_command(plan: Any) -> None:
    text = ("entry_points:\n  main:\n    parameters: {m: {type: str, default: pinv}}\n"
            "    command: 'python train.py --method=''{m}'' \"x\"'\n")
    assert plan(text) == ("python train.py --method='pinv' \"x\"", [])


@pytest.mark.parametrize(("key", "value", "kind", "detail"), [
    ("conda_env", "conda.yaml", "conda", "conda.yaml"),
    ("python_env", "python_env.yaml", "python", "python_env.yaml"),
    ("docker_env", "{image: mlflow-docker-example, volumes: [/data]}", "docker",
     "mlflow-docker-example"),
])
def test_mlflow_environment_keys(tmp_path: Path, cli: Cli, key: str, value: str, kind: str,
                                 detail: str) -> None:
    (tmp_path / "MLproject").write_text(f"{key}: {value}\nentry_points:\n  main:\n"
                                        "    command: python train.py\n")
    result = cli("plan", ".", "--json", cwd=tmp_path)
    assert (result.code, result.err) == (0, "")
    step = json.loads(result.out)["steps"][-1]
    assert step["command"] == "python train.py"
    assert {k: step["environment"][k] for k in ("name", "kind", "detail")} == {
        "name": key, "kind": kind, "detail": detail}
    local = json.loads(cli("plan", ".", "--json", "--env", "local", cwd=tmp_path).out)
    assert local["steps"][-1]["environment"]["kind"] == "local"


@pytest.mark.parametrize(("first", "second", "at"), [
    ("conda_env: conda.yaml", "python_env: python_env.yaml", "1:12"),
    ("python_env: python_env.yaml", "docker_env: {image: x}", "2:13"),
    ("conda_env: conda.yaml", "docker_env: {image: x}", "2:13"),
])
def test_two_mlflow_environments_at_once(tmp_path: Path, cli: Cli, first: str, second: str,
                                         at: str) -> None:
    (tmp_path / "MLproject").write_text(f"{first}\n{second}\nentry_points:\n  main:\n"
                                        "    command: python train.py\n")
    result = cli("plan", ".", "--json", "--env", "local", cwd=tmp_path)
    a, b = first.split(":")[0], second.split(":")[0]
    # MLflow's precedence (python_env, conda_env, docker_env) names the pair.
    order = sorted([a, b], key=["python_env", "conda_env", "docker_env"].index)
    assert (result.code, result.out) == (2, "")
    assert result.err == (f"MLproject:{at}: {order[1]}: {order[0]} and {order[1]} cannot both "
                          "be given: choose one\n")
