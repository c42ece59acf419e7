"""`load()` names every broken reference of an MLproject file: needs, placeholders, data.

Whole messages are pinned. Each test writes its file into a temporary directory and loads it
from inside (the `here` fixture of conftest.py), so the file is displayed as `MLproject`.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from specfiles import errors

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
