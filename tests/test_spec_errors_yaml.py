"""`load()` names every problem of an MLproject file's YAML itself: syntax, duplicate keys,
keys that are not strings, tags, documents, encodings.

Whole messages are pinned. Each test writes its file into a temporary directory and loads it
from inside (the `here` fixture of conftest.py), so the file is displayed as `MLproject`.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from mlproject.spec import SpecError, load
from specfiles import errors

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
