"""Parameters: types, defaults, `-P NAME=VALUE`, and values that reach the command as exactly
one literal argument, proven by running it."""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

Cli = Callable[..., Any]

TYPED = """\
entry_points:
  main:
    parameters:
      s: {type: string, default: text}
      i: {type: int, default: 1}
      f: {type: float, default: 0.5}
      b: {type: bool, default: false}
      bb: {type: boolean, default: true}
      p: {type: path, default: data/train.csv}
      u: {type: uri, default: "s3://bucket/key"}
    command: run {s} {i} {f} {b} {bb} {p} {u}
"""


@pytest.fixture
def typed(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text(TYPED)
    return project


def plan(cli: Cli, project: Path, *args: str) -> Any:
    """The plan's last step as JSON (the call must succeed)."""
    result = cli("plan", str(project), "--json", "--env", "local", *args, cwd=project.parent)
    assert (result.code, result.err) == (0, ""), result.err
    return json.loads(result.out)["steps"][-1]


def refusal(cli: Cli, project: Path, *args: str) -> str:
    """stderr of a refused plan: exit 2, nothing on stdout."""
    result = cli("plan", str(project), "--json", "--env", "local", *args, cwd=project.parent)
    assert (result.code, result.out) == (2, "")
    return str(result.err)


def test_defaults(cli: Cli, typed: Path) -> None:
    step = plan(cli, typed)
    data = os.path.join(typed, "data", "train.csv")  # a path default: against the project
    # A YAML bool default is normalized as a -P value is (MLflow str()s it: False, True).
    assert step["command"] == f"run text 1 0.5 False True {data} s3://bucket/key"
    assert step["parameters"] == {"s": "text", "i": "1", "f": "0.5", "b": "False", "bb": "True",
                                  "p": data, "u": "s3://bucket/key"}


@pytest.mark.parametrize(("name", "value", "shown"), [
    ("s", "anything at all", "'anything at all'"), ("s", "", "''"), ("s", "42", "42"),
    ("i", "3", "3"), ("i", "-2", "-2"), ("i", "+5", "5"), ("i", "0", "0"),
    ("f", "0.25", "0.25"), ("f", "1e-3", "1e-3"), ("f", "-2", "-2"), ("f", ".5", "0.5"),
    ("b", "true", "True"), ("b", "False", "False"), ("b", "yes", "True"), ("b", "0", "False"),
    ("bb", "on", "True"), ("bb", "OFF", "False"),
    ("u", "file:///data/x", "file:///data/x"), ("u", "https://example.com/a?b=c",
                                                "'https://example.com/a?b=c'"),
    ("u", "gs://bucket", "gs://bucket"),
    ("p", "s3://bucket/key", "s3://bucket/key"),  # a URI given to a path is kept as it is
    ("p", "/abs/file.csv", "/abs/file.csv"), ("p", "/abs/../abs/./file.csv", "/abs/file.csv"),
])
def test_values_that_fit_their_type(cli: Cli, typed: Path, name: str, value: str,
                                    shown: str) -> None:
    words = ["text", "1", "0.5", "False", "True", os.path.join(typed, "data", "train.csv"),
             "s3://bucket/key"]
    words[["s", "i", "f", "b", "bb", "p", "u"].index(name)] = shown
    assert plan(cli, typed, "-P", f"{name}={value}")["command"] == "run " + " ".join(words)


def test_relative_path_value_is_against_the_working_directory(cli: Cli, typed: Path) -> None:
    step = plan(cli, typed, "-P", "p=in/../input.csv")
    assert step["parameters"]["p"] == os.path.join(typed.parent, "input.csv")
    home = plan(cli, typed, "-P", "p=~/x.csv")
    assert home["parameters"]["p"] == os.path.join(os.path.expanduser("~"), "x.csv")


@pytest.mark.parametrize(("name", "kind", "value", "why"), [
    ("i", "int", "1.5", "expected an integer"),
    ("i", "int", "abc", "expected an integer"),
    ("i", "int", "", "expected an integer"),
    ("i", "int", "0x10", "expected an integer"),
    ("f", "float", "abc", "expected a number"),
    ("f", "float", "1,5", "expected a number"),
    ("f", "float", "", "expected a number"),
    ("b", "bool", "maybe", "expected true or false"),
    ("bb", "bool", "2", "expected true or false"),
    ("bb", "bool", "", "expected true or false"),
    ("u", "uri", "VALUE", "expected a URI with a scheme, such as s3://bucket/key or file:///data"),
    ("u", "uri", "C:/data", "expected a URI with a scheme, such as s3://bucket/key or "
                            "file:///data"),
    ("u", "uri", "", "expected a URI with a scheme, such as s3://bucket/key or file:///data"),
    ("p", "path", "", "expected a path, got an empty value"),
])
def test_wrong_type_is_refused(cli: Cli, typed: Path, name: str, kind: str, value: str,
                               why: str) -> None:
    assert refusal(cli, typed, "-P", f"{name}={value}") == (
        f"mlproject: error: parameter {name} ({kind}): {value!r}: {why}\n")


def test_default_that_does_not_fit_a_uri_is_refused_at_plan_time(cli: Cli, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text("entry_points:\n  main:\n    parameters:\n"
                                       "      u: {type: uri, default: data.csv}\n"
                                       "    command: fetch {u}\n")
    assert refusal(cli, project) == (
        "project/MLproject:4:31: warning: entry_points.main.parameters.u.default: default "
        "'data.csv' does not fit type uri: expected a URI with a scheme, such as s3://bucket/key "
        "or file:///data\n"
        "mlproject: error: parameter u (uri): 'data.csv': expected a URI with a scheme\n")
    result = cli("plan", str(project), "--json", "--env", "local", "-P", "u=s3://b/data.csv")
    assert json.loads(result.out)["steps"][-1]["command"] == "fetch s3://b/data.csv"


def test_value_is_split_on_the_first_equals_sign(cli: Cli, typed: Path) -> None:
    assert plan(cli, typed, "-P", "s=a=b")["parameters"]["s"] == "a=b"
    assert plan(cli, typed, "-P", "s==")["parameters"]["s"] == "="
    assert plan(cli, typed, "-P", "s=")["parameters"]["s"] == ""


def test_repeated_parameter_is_an_error(cli: Cli, typed: Path) -> None:
    assert refusal(cli, typed, "-P", "i=1", "-P", "s=x", "-P", "i=2") == (
        "mlproject: error: -P i: given more than once\n")
    assert refusal(cli, typed, "--param", "extra=1", "-P", "extra=1") == (
        "mlproject: error: -P extra: given more than once\n")


@pytest.mark.parametrize("item", ["novalue", "=value", ""])
def test_malformed_parameter_is_an_error(cli: Cli, typed: Path, item: str) -> None:
    assert refusal(cli, typed, "-P", item) == (
        f"mlproject: error: -P {item!r}: expected NAME=VALUE\n")


def test_missing_required_parameters_are_named_with_their_types(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text(
        "entry_points:\n  main:\n    parameters:\n      alpha: float\n"
        "      data: {type: path}\n      note: {type: string, default: x}\n      n: int\n"
        "    command: train {alpha} {data} {n}\n")
    assert refusal(cli, tmp_path) == (
        "mlproject: error: entry point 'main' requires parameters alpha (float), data (path), "
        "n (int); give them with -P NAME=VALUE\n")
    assert refusal(cli, tmp_path, "-P", "alpha=1", "-P", "data=d") == (
        "mlproject: error: entry point 'main' requires parameter n (int); give it with "
        "-P NAME=VALUE\n")


def test_unknown_entry_point(cli: Cli, typed: Path) -> None:
    assert refusal(cli, typed, "-e", "trian") == (
        "mlproject: error: no entry point 'trian' in MLproject (declared: main)\n")


# -- values reach the command as one literal argument: real runs ------------------------------

HOSTILE = [
    "; touch pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "&& touch pwned",
    "| touch pwned",
    "> pwned",
    "a'b\"c",
    "'",
    '"',
    "line one\nline two; touch pwned",
    "--flag",
    "-P",
    "x=y",
    "héllo wörld ✓ 日本語 🚀",
    "",
    " ",
    "*",
    "~",
    "$HOME",
    "${HOME}",
    "\\",
    "a\tb",
    "{value}",
    "{{}}",
    "%s %d",
    "!!",
    "#not a comment",
]


@pytest.fixture
def echo(tmp_path: Path) -> Path:
    """A project whose command writes its arguments, as the process received them, to argv.json."""
    project = tmp_path / "project"
    project.mkdir()
    out = project / "argv.json"
    script = f"import sys, json; json.dump(sys.argv[1:], open({str(out)!r}, 'w'))"
    command = f'"{sys.executable}" -c "{script}" {{value}}'
    (project / "MLproject").write_text(yaml.safe_dump({"entry_points": {"main": {
        "parameters": {"value": "string"}, "command": command}}}))
    return project


def received(cli: Cli, project: Path, *params: str) -> list[str]:
    (project / "argv.json").unlink(missing_ok=True)
    args = [arg for item in params for arg in ("-P", item)]
    result = cli("run", str(project), "--env", "local", *args, cwd=project.parent)
    assert result.code == 0, result.err
    argv: list[str] = json.loads((project / "argv.json").read_text(encoding="utf-8"))
    return argv


def no_pwned(root: Path) -> None:
    assert [str(p) for p in root.rglob("*pwned*")] == []


@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v) for v in HOSTILE])
def test_declared_value_is_one_literal_argument(cli: Cli, echo: Path, value: str) -> None:
    assert received(cli, echo, f"value={value}") == [value]
    no_pwned(echo.parent)


@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v) for v in HOSTILE])
def test_undeclared_value_is_one_literal_argument(cli: Cli, echo: Path, value: str) -> None:
    assert received(cli, echo, "value=v", f"extra_name={value}") == ["v", "--extra_name", value]
    no_pwned(echo.parent)


def test_several_hostile_values_at_once(cli: Cli, echo: Path) -> None:
    argv = received(cli, echo, "value=$(touch pwned)", "a=; touch pwned", "b.c-d=`touch pwned`")
    assert argv == ["$(touch pwned)", "--a", "; touch pwned", "--b.c-d", "`touch pwned`"]
    no_pwned(echo.parent)


@pytest.mark.parametrize("name", ["a;touch pwned", "$(touch pwned)", "`touch pwned`", "a b",
                                  "-a", "--a", "a|b", "a&b", "a>b", "a'b", "é", "1a x", "\n"])
def test_undeclared_names_with_shell_metacharacters_are_refused(cli: Cli, echo: Path,
                                                                name: str) -> None:
    for verb in ("plan", "run"):
        result = cli(verb, str(echo), "--env", "local", "-P", "value=v", f"--param={name}=1",
                     cwd=echo.parent)
        assert (result.code, result.out) == (2, "")
        assert result.err == f"mlproject: error: -P {name}: not a valid parameter name\n"
    assert not (echo / "argv.json").exists()
    runs = echo / ".mlproject" / "runs"
    assert not runs.exists() or not any(runs.iterdir())
    no_pwned(echo.parent)


def test_run_refuses_a_wrong_type_before_running(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "MLproject").write_text(yaml.safe_dump({"entry_points": {"main": {
        "parameters": {"n": "int"}, "command": f"touch {marker} {{n}}"}}}))
    result = cli("run", str(tmp_path), "--env", "local", "-P", "n=$(touch pwned)")
    assert result.code == 2
    assert result.err == ("mlproject: error: parameter n (int): '$(touch pwned)': expected an "
                          "integer\n")
    assert not marker.exists()
    no_pwned(tmp_path)


# -- one value, one text: bools and numbers normalized before the command and the fingerprint --

NORMAL = """\
entry_points:
  main:
    parameters:
      flag: {type: bool, default: false}
      n: {type: int, default: 1}
      x: {type: float, default: 0.5}
      s: {type: string, default: "True"}
    command: run {flag} {n} {x} {s}
"""


@pytest.mark.parametrize(("name", "spellings", "shown"), [
    ("flag", ["true", "True", "TRUE", "yes", "Yes", "on", "ON", "1", " true "], "True"),
    ("flag", ["false", "False", "no", "off", "0"], "False"),
    ("n", ["1", "01", "+1", "001", " 1"], "1"),
    ("n", ["0", "-0", "+0", "000"], "0"),
    ("n", ["-12", "-012"], "-12"),
    ("x", ["0.5", "0.50", "+0.5", ".5", "00.5", "0.5000"], "0.5"),
    ("x", ["2", "+2", "02"], "2"),
    ("x", ["1e-3", "1E-3", "+1e-3"], "1e-3"),
    ("x", ["1.0", "1.", "1.000", "01.0"], "1.0"),
    ("x", ["inf", "Infinity", "+INF"], "inf"),
])
def test_spellings_of_one_value_are_one_command_and_one_fingerprint(
        cli: Cli, tmp_path: Path, name: str, spellings: list[str], shown: str) -> None:
    (tmp_path / "MLproject").write_text(NORMAL)
    steps = [plan(cli, tmp_path, "-P", f"{name}={text}") for text in spellings]
    assert {step["parameters"][name] for step in steps} == {shown}
    assert len({step["command"] for step in steps}) == 1
    assert len({step["fingerprint"] for step in steps}) == 1


def test_a_default_and_the_same_value_given_are_one_fingerprint(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text(NORMAL)
    default = plan(cli, tmp_path)
    assert default["command"] == "run False 1 0.5 True"  # a string is never normalized
    given = plan(cli, tmp_path, "-P", "flag=False", "-P", "n=01", "-P", "x=0.50")
    assert given["fingerprint"] == default["fingerprint"]
    other = plan(cli, tmp_path, "-P", "flag=true")
    assert other["fingerprint"] != default["fingerprint"]
    assert plan(cli, tmp_path, "-P", "s=true")["command"] == "run False 1 0.5 true"


def test_a_huge_integer_is_normalized_without_int(cli: Cli, tmp_path: Path) -> None:
    # int() refuses more than 4300 digits: normalizing never converts
    (tmp_path / "MLproject").write_text(NORMAL)
    digits = "9" * 5000
    assert plan(cli, tmp_path, "-P", f"n=+000{digits}")["parameters"]["n"] == digits


def test_a_default_that_does_not_fit_its_type_is_kept_as_written(cli: Cli, tmp_path: Path) -> None:
    # MLflow's corpus: `devices: {type: int, default: auto}` reaches the command as `auto`
    (tmp_path / "MLproject").write_text("entry_points:\n  main:\n    parameters:\n"
                                        "      devices: {type: int, default: auto}\n"
                                        "    command: run {devices}\n")
    result = cli("plan", str(tmp_path), "--json", "--env", "local", cwd=tmp_path)
    assert result.code == 0, result.err
    assert json.loads(result.out)["steps"][-1]["command"] == "run auto"
