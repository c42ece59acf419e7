"""Backend settings (runner/backends/settings.py): defaults <- the user's config file <- environment
variables <- --backend-config, read from real files and real variables; every way a setting can be
wrong is one clear error naming the key and where it came from. A test backend registered under
`configured` declares SETTINGS, so that nothing here depends on a real engine's backend."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import Result, git_init
from fakebackend import FakeBackend, Script, states
from mlproject.runner import backends
from mlproject.runner.backends.base import RunContext, Submission
from mlproject.runner.backends.settings import (
    LIMIT,
    Setting,
    SettingsError,
    config_path,
    describe,
    env_name,
    load,
)
from mlproject.runner.plan import Step

PROJECT = """
    name: configured
    entry_points:
      main: {command: "train"}
"""


class Configured(FakeBackend):
    """The fake engine, with settings of every type; what it was made with is kept."""
    name = "configured"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "host": Setting(str, "unix:///default.sock", "where the engine listens"),
        "cpus": Setting(int, 2, "CPUs per step"),
        "ratio": Setting(float, 0.5, "a fraction"),
        "pull": Setting(bool, False, "pull images first"),
        "volumes": Setting(list, [], "extra mounts"),
        "base_image": Setting(str, None, "image for Python environments"),
    }
    made: ClassVar[list[Configured]] = []

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        super().__init__(main=Script(states("running", "succeeded")))
        self.settings = settings
        Configured.made.append(self)

    def prepare(self, step: Step, ctx: RunContext) -> Submission:
        made = super().prepare(step, ctx)
        return replace(made, notes=(f"settings {json.dumps(self.settings, sort_keys=True)}",))


DEFAULTS = {"host": "unix:///default.sock", "cpus": 2, "ratio": 0.5, "pull": False, "volumes": [],
            "base_image": None}


@pytest.fixture(autouse=True)
def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty config home of the test's own, no settings variables, `configured` offered."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in list(os.environ):
        if var.startswith(("MLPROJECT_LOCAL_", "MLPROJECT_CONFIGURED_")):
            monkeypatch.delenv(var)
    backends.register("configured", Configured)
    Configured.made.clear()
    try:
        yield
    finally:
        backends.unregister("configured")


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "xdg" / "mlproject" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def refused(backend: str, given: str | None = None, environ: dict[str, str] | None = None) -> str:
    """The message of the SettingsError that load raises (it must raise one)."""
    with pytest.raises(SettingsError) as raised:
        load(backend, given, {**os.environ, **(environ or {})})
    return str(raised.value)


# --- where values come from, and which wins


def test_with_nothing_given_the_settings_are_the_backends_defaults(tmp_path: Path) -> None:
    assert load("configured", None) == DEFAULTS
    assert load("local", None) == {}
    first = load("configured", None)
    first["volumes"].append("/x")  # a copy: the declared default is not touched
    assert load("configured", None)["volumes"] == []


def test_config_file_then_environment_then_flag_each_override_the_one_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config(tmp_path, """
        [ui]
        color = "never"          # another section: not settings, not an error

        [backends.configured]
        host = "unix:///from-config.sock"
        cpus = 4
        ratio = 0.25
        volumes = ["/data:/data:ro"]

        [backends.local]        # another backend's table is not read for this one
    """.replace("\n        ", "\n"))
    monkeypatch.setenv("MLPROJECT_CONFIGURED_CPUS", "8")
    monkeypatch.setenv("MLPROJECT_CONFIGURED_RATIO", "0.75")
    monkeypatch.setenv("MLPROJECT_CONFIGURED_PULL", "true")
    assert load("configured", '{"ratio": 1, "base_image": "python:3.11-slim"}') == {
        "host": "unix:///from-config.sock",  # config
        "cpus": 8,  # environment over config
        "ratio": 1.0,  # flag over environment (an integer is a number)
        "pull": True,  # environment
        "volumes": ["/data:/data:ro"],  # config
        "base_image": "python:3.11-slim",  # flag
    }
    flag = tmp_path / "over.toml"
    flag.write_text('cpus = 16\nvolumes = []\n')
    assert load("configured", str(flag))["cpus"] == 16
    assert load("configured", str(flag))["volumes"] == []


def test_the_config_file_is_found_as_xdg_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".config" / "mlproject").mkdir(parents=True)
    (home / ".config" / "mlproject" / "config.toml").write_text(
        '[backends.configured]\ncpus = 3\n')
    for xdg in (None, "", "relative/dir"):  # unset, empty, relative: ~/.config
        environ = {"HOME": str(home)} if xdg is None else {"HOME": str(home), "XDG_CONFIG_HOME": xdg}
        assert config_path(environ) == home / ".config" / "mlproject" / "config.toml"
        assert load("configured", None, environ)["cpus"] == 3
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(home)}) == \
        tmp_path / "xdg" / "mlproject" / "config.toml"


def test_environment_text_is_parsed_to_each_settings_type(monkeypatch: pytest.MonkeyPatch) -> None:
    cases: list[tuple[str, str, Any]] = [
        ("PULL", "TRUE", True), ("PULL", "false", False), ("PULL", "1", True), ("PULL", " 0 ", False),
        ("CPUS", " 12 ", 12), ("CPUS", "-1", -1), ("RATIO", "1e-3", 0.001), ("RATIO", "3", 3.0),
        ("VOLUMES", "/a:/a, /b:/b ,", ["/a:/a", "/b:/b"]), ("VOLUMES", "", []),
        ("VOLUMES", '["/x,y:/z"]', ["/x,y:/z"]),  # a JSON list for items that hold a comma
        ("HOST", "  tcp://h:2375 ", "  tcp://h:2375 "),  # text is taken as it is
        ("BASE_IMAGE", "debian:12", "debian:12"),
    ]
    for suffix, text, value in cases:
        monkeypatch.setenv(f"MLPROJECT_CONFIGURED_{suffix}", text)
        key = suffix.lower()
        assert load("configured", None)[key] == value, (suffix, text)
        monkeypatch.delenv(f"MLPROJECT_CONFIGURED_{suffix}")
    assert env_name("configured", "base_image") == "MLPROJECT_CONFIGURED_BASE_IMAGE"
    assert env_name("my-engine", "pull-policy") == "MLPROJECT_MY_ENGINE_PULL_POLICY"


def test_a_json_file_and_a_toml_file_are_read_as_flat_objects(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"host": "ssh://box", "pull": true, "volumes": ["/v:/v"]}')
    (tmp_path / "s.TOML").write_text('host = "ssh://box"\npull = true\nvolumes = ["/v:/v"]\n')
    for name in ("s.json", "s.TOML"):
        got = load("configured", str(tmp_path / name))
        assert (got["host"], got["pull"], got["volumes"]) == ("ssh://box", True, ["/v:/v"])
    assert load("configured", '  {"cpus": 5}')["cpus"] == 5  # JSON text, after spaces too
    assert load("configured", "{}") == DEFAULTS


def test_describe_lists_every_setting_with_its_type_default_and_where_to_give_it(
        tmp_path: Path) -> None:
    text = describe("configured")
    assert "[backends.configured] of " + str(tmp_path / "xdg" / "mlproject" / "config.toml") in text
    assert "MLPROJECT_CONFIGURED_<KEY>" in text and "--backend-config FILE|JSON" in text
    assert "  cpus (an integer, default 2): CPUs per step" in text.splitlines()
    assert "  base_image (a string, default not set): image for Python environments" in text
    assert '  volumes (a list of strings, default []): extra mounts' in text
    assert describe("local") == "the local backend takes no settings"


# --- unknown keys, from each source


KNOWN = "the configured backend's settings are base_image, cpus, host, pull, ratio, volumes"


def test_an_unknown_key_names_itself_where_it_came_from_and_the_known_keys(
        tmp_path: Path) -> None:
    path = config(tmp_path, '# mine\n[backends.configured]\nhost = "x"\n"hots" = "y"\n')
    assert refused("configured") == (
        f"unknown backend setting 'hots' in the config file {path}, line 4: {KNOWN}")
    path.write_text('backends.configured.cpus = 1\nbackends.configured.cpu = 1\n')
    assert refused("configured") == (
        f"unknown backend setting 'cpu' in the config file {path}, line 2: {KNOWN}")
    path.unlink()

    assert refused("configured", environ={"MLPROJECT_CONFIGURED_HOTS": "y"}) == (
        f"unknown backend setting in the environment variable MLPROJECT_CONFIGURED_HOTS: {KNOWN} "
        "(as MLPROJECT_CONFIGURED_BASE_IMAGE, MLPROJECT_CONFIGURED_CPUS, MLPROJECT_CONFIGURED_HOST, "
        "MLPROJECT_CONFIGURED_PULL, MLPROJECT_CONFIGURED_RATIO, MLPROJECT_CONFIGURED_VOLUMES)")
    assert "in the environment variable MLPROJECT_CONFIGURED_:" in refused(
        "configured", environ={"MLPROJECT_CONFIGURED_": "1"})

    assert refused("configured", '{"cpus": 1, "Host": "x"}') == (
        f"unknown backend setting 'Host' in --backend-config (JSON text): {KNOWN}")
    flag = tmp_path / "flag.json"
    # the key's text inside an earlier value is not the key
    flag.write_text('{\n  "host": "\\"hosts\\": 1",\n  "cpus": 1,\n  "hosts": "x"\n}\n')
    assert refused("configured", str(flag)) == (
        f"unknown backend setting 'hosts' in --backend-config {flag}, line 4: {KNOWN}")
    toml = tmp_path / "flag.toml"
    toml.write_text('cpus = 1\n\nvolume = ["/a"]\n')
    assert refused("configured", str(toml)) == (
        f"unknown backend setting 'volume' in --backend-config {toml}, line 3: {KNOWN}")


def test_a_config_table_given_to_the_flag_is_refused_with_what_the_flag_takes(
        tmp_path: Path) -> None:
    flag = tmp_path / "whole.toml"
    flag.write_text('[backends.configured]\ncpus = 1\n')
    message = refused("configured", str(flag))
    assert message.startswith(f"unknown backend setting 'backends' in --backend-config {flag}, "
                              "line 1: ")
    assert message.endswith("(--backend-config takes the keys themselves, as in the "
                            "[backends.configured] table of the config file, not the table)")


def test_the_local_backend_takes_no_settings_from_any_source(tmp_path: Path) -> None:
    none = "the local backend takes no settings"
    assert refused("local", '{"memory": "1G"}') == (
        f"unknown backend setting 'memory' in --backend-config (JSON text): {none}")
    assert refused("local", environ={"MLPROJECT_LOCAL_MEMORY": "1G"}) == (
        f"unknown backend setting in the environment variable MLPROJECT_LOCAL_MEMORY: {none}")
    path = config(tmp_path, "[backends.local]\nmemory = '1G'\n")
    assert refused("local") == (
        f"unknown backend setting 'memory' in the config file {path}, line 2: {none}")
    path.unlink()
    assert load("local", "{}") == {}
    assert load("local", None, {**os.environ, "MLPROJECT_LOCALE": "x"}) == {}  # not its prefix


def test_a_backend_with_a_factory_that_declares_nothing_takes_no_settings() -> None:
    backends.register("bare", lambda: FakeBackend())
    try:
        assert backends.settings_of("bare") == {}
        assert refused("bare", '{"x": 1}').endswith("the bare backend takes no settings")
    finally:
        backends.unregister("bare")
    assert refused("nowhere").startswith("unknown backend 'nowhere' (known: local")
    assert backends.settings_of("configured") is Configured.SETTINGS
    assert Configured.made == []  # read without making one


# --- values of the wrong type, from each source


def test_a_value_of_the_wrong_type_names_the_key_the_source_and_the_type(tmp_path: Path) -> None:
    path = config(tmp_path, '[backends.configured]\n\ncpus = "4"\n')
    assert refused("configured") == (
        f"backend setting 'cpus' in the config file {path}, line 3 must be an integer, not \"4\"")
    path.write_text('[backends.configured]\nstarted = 1979-05-27\n')  # a TOML date: no key of ours
    assert "unknown backend setting 'started'" in refused("configured")
    path.write_text('[backends.configured]\nvolumes = "/a:/a"\n')
    assert refused("configured").endswith('line 2 must be a list of strings, not "/a:/a"')
    path.unlink()

    for suffix, text, wanted in [
            ("CPUS", "four", 'must be an integer, not "four"'),
            ("CPUS", "1.5", 'must be an integer, not "1.5"'),
            ("CPUS", "9" * 5000, "must be an integer, not \"" + "9" * 79),  # too many digits
            ("PULL", "yes", 'must be true or false, not "yes"'),
            ("RATIO", "nan", "must be a number (finite), not NaN"),
            ("RATIO", "half", 'must be a number (finite), not "half"'),
            ("VOLUMES", "[1, 2]", "must be a list of strings, not [1, 2]"),
            ("VOLUMES", "[/a", 'must be a JSON list of strings or comma-separated, not "[/a"')]:
        message = refused("configured", environ={f"MLPROJECT_CONFIGURED_{suffix}": text})
        assert message.startswith(f"backend setting '{suffix.lower()}' in the environment "
                                  f"variable MLPROJECT_CONFIGURED_{suffix} {wanted}"), message
        assert len(message) < 300  # a huge value is shown cut short

    for given, wanted in [
            ('{"pull": "true"}', "'pull' in --backend-config (JSON text) must be true or false, "
                                 'not "true"'),
            ('{"cpus": true}', "'cpus' in --backend-config (JSON text) must be an integer, not true"),
            ('{"cpus": 2.0}', "must be an integer, not 2.0"),
            ('{"ratio": 1e999}', "must be a number (finite), not Infinity"),
            ('{"ratio": ' + "9" * 400 + "}", "must be a number (finite), not 999"),
            ('{"host": null}', "'host' in --backend-config (JSON text) must be a string, not null"),
            ('{"host": {"a": 1}}', 'must be a string, not {"a": 1}'),
            ('{"volumes": ["/a", 3]}', 'must be a list of strings, not ["/a", 3]')]:
        assert wanted in refused("configured", given), given
    toml = tmp_path / "s.toml"
    toml.write_text("cpus = 1\nratio = inf\n")
    assert refused("configured", str(toml)) == (
        f"backend setting 'ratio' in --backend-config {toml}, line 2 must be a number (finite), "
        "not Infinity")


# --- files that cannot be read as settings


def test_broken_toml_and_json_say_where_they_break(tmp_path: Path) -> None:
    path = config(tmp_path, "[backends.configured]\ncpus = \n")
    assert refused("configured") == (
        f"the config file {path} is not valid TOML: Invalid value (at line 2, column 8)")
    path.write_text("[backends.configured]\ncpus = 1\ncpus = 2\n")
    assert "is not valid TOML: Cannot overwrite a value (at line 3" in refused("configured")
    path.unlink()
    toml = tmp_path / "s.toml"
    toml.write_text('host = "unterminated\n')
    assert refused("configured", str(toml)).startswith(
        f"--backend-config {toml} is not valid TOML: Illegal character '\\n' (at line 1, column 21)")
    flag = tmp_path / "s.json"
    flag.write_text('{\n  "cpus": 1\n  "host": "x"\n}\n')
    assert refused("configured", str(flag)) == (
        f"--backend-config {flag} is not valid JSON: Expecting ',' delimiter (line 3, column 3)")
    assert refused("configured", '{"cpus": 1, "cpus": 2}') == (
        "--backend-config (JSON text): the key 'cpus' is given twice")
    assert refused("configured", "{cpus: 1}") == (
        "--backend-config (JSON text) is not valid JSON: Expecting property name enclosed in "
        "double quotes (line 1, column 2)")


def test_json_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    flag = tmp_path / "s.json"
    for text, kind in [("[1, 2]", "list"), ('"cpus=1"', "str"), ("null", "null"), ("3", "int")]:
        flag.write_text(text)
        assert refused("configured", str(flag)) == (
            f'--backend-config {flag} must hold a JSON object of settings ({{"key": value, ...}}), '
            f"not {kind}")
    assert refused("configured", '["cpus", 1]').startswith(
        "--backend-config (JSON text) must hold a JSON object of settings")


def test_a_flag_that_names_no_settings_file_is_refused_before_reading(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert refused("configured", str(missing)) == f"--backend-config file {missing} does not exist"
    assert refused("configured", "cpus=4") == (
        "--backend-config cpus=4: expected a JSON object ({...}) or the path of a .json or .toml "
        "file")
    (tmp_path / "s.yaml").write_text("cpus: 4\n")
    assert "expected a JSON object" in refused("configured", str(tmp_path / "s.yaml"))
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    assert refused("configured", str(directory)) == (
        f"--backend-config file {directory} is a directory, not a file")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    assert refused("configured", str(fifo)) == (
        f"--backend-config file {fifo} is not a regular file")
    unreadable = tmp_path / "locked" / "s.toml"
    unreadable.parent.mkdir()
    unreadable.write_text("cpus = 1\n")
    unreadable.parent.chmod(0)
    try:
        if os.geteuid() != 0:  # root reads through any mode
            assert refused("configured", str(unreadable)) == (
                f"cannot read --backend-config file {unreadable}: Permission denied")
    finally:
        unreadable.parent.chmod(0o755)


def test_a_broken_config_file_stops_every_backend_and_an_odd_one_says_what_it_is(
        tmp_path: Path) -> None:
    path = config(tmp_path, "[backends\n")
    for backend in ("local", "configured"):
        assert refused(backend).startswith(f"the config file {path} is not valid TOML: ")
    path.write_text("backends = 3\n")
    assert refused("local") == (
        f"the config file {path}, line 1: backends must be a table of [backends.NAME] tables")
    path.write_text("[backends]\nconfigured = 1\n")
    assert refused("configured") == (
        f"the config file {path}, line 2: backends.configured must be a table of settings")
    assert load("local", None) == {}  # another backend's broken table is not this one's
    path.unlink()
    path.mkdir()
    assert refused("local") == f"the config file {path} is a directory, not a file"


def test_a_table_for_a_backend_nobody_registered_is_a_warning_not_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, '[backends.configured]\ncpus = 3\n\n[backends.nomad]\npartition = "gpu"\n')
    warned: list[str] = []
    assert load("configured", None, warn=warned.append)["cpus"] == 3
    assert warned == [f"{path}, line 4: [backends.nomad] is ignored: no backend is named 'nomad' "
                      f"(known: {', '.join(backends.names())})"]
    assert load("local", None) == {}  # the default warning: one line on stderr
    assert capsys.readouterr().err == f"mlproject: warning: {warned[0]}\n"


def test_hostile_files_and_values_are_refused_without_harm(tmp_path: Path) -> None:
    huge = tmp_path / "huge.toml"
    with open(huge, "wb") as handle:  # sparse: nothing is written, or read
        handle.truncate(8 << 30)
    assert refused("configured", str(huge)) == (
        f"--backend-config file {huge} is {8 << 30} bytes; a settings file is at most {LIMIT} bytes")
    path = config(tmp_path, "")
    with open(path, "wb") as handle:
        handle.truncate(LIMIT + 1)
    assert "is at most" in refused("local")
    path.write_bytes(b"[backends.configured]\ncpus = 1\x00\n")
    assert refused("configured") == (
        f"the config file {path} holds a NUL byte (line 2): it is not a settings file")
    path.write_bytes(b'[backends.configured]\nhost = "\xff\xfe"\n')
    assert refused("configured") == f"the config file {path} is not UTF-8 text (line 2, byte 30)"
    path.unlink()
    nul = tmp_path / "nul.json"
    nul.write_bytes(b'{"cpus": 1}\x00')
    assert "holds a NUL byte (line 1)" in refused("configured", str(nul))
    # a NUL escaped inside a value: it would end up in an argv
    assert refused("configured", '{"host": "a\\u0000b"}') == (
        "backend setting 'host' in --backend-config (JSON text) must not hold a NUL character: "
        '"a\\u0000b"')
    assert "must not hold a NUL character" in refused("configured", '{"volumes": ["/a\\u0000"]}')
    assert refused("configured", "\0{}").startswith("--backend-config: a path holds no NUL")
    deep = '{"volumes": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert refused("configured", deep) == (
        "--backend-config (JSON text) is not valid JSON: nested too deeply")
    toml = tmp_path / "deep.toml"
    toml.write_text("volumes = " + "[" * 100_000 + "]" * 100_000 + "\n")
    message = refused("configured", str(toml))
    assert message.startswith(f"--backend-config {toml} is not valid TOML: ")  # too deep
    assert refused("configured", '{"cpus": ' + "9" * 5000 + "}").startswith(
        "--backend-config (JSON text) is not valid JSON: Exceeds the limit")
    assert refused("configured", "{" + " " * LIMIT + "}") == (
        f"--backend-config: the JSON text is over {LIMIT} bytes")
    big = "x" * (LIMIT // 2)  # a long value that fits is a value
    assert load("configured", json.dumps({"host": big}))["host"] == big


def test_a_backend_declaring_a_setting_of_no_supported_type_is_a_bug_caught_at_once() -> None:
    with pytest.raises(TypeError, match="a setting's type is one of str, int, float, bool, list"):
        Setting(dict, {}, "nested")
    with pytest.raises(ValueError, match="must be an integer"):
        Setting(int, "2", "a default that does not fit")
    assert Setting(str, None, "not set").default is None


# --- through the command line


@pytest.fixture
def root(project: Callable[..., Path]) -> Path:
    return git_init(project({"MLproject": PROJECT}))


def test_run_refuses_a_wrong_setting_before_anything_runs(
        cli: Callable[..., Result], root: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    got = cli("run", str(root), "--backend-config", '{"memory": "1G"}')
    assert (got.code, got.out) == (2, "")
    assert got.err == ("mlproject: error: unknown backend setting 'memory' in --backend-config "
                       "(JSON text): the local backend takes no settings\n")
    monkeypatch.setenv("MLPROJECT_CONFIGURED_CPUS", "many")
    got = cli("run", str(root), "--backend", "configured")
    assert got.code == 2
    assert got.err == ("mlproject: error: backend setting 'cpus' in the environment variable "
                       "MLPROJECT_CONFIGURED_CPUS must be an integer, not \"many\"\n")
    got = cli("run", str(root), "--backend", "configured", "--dry-run")
    assert got.code == 2  # a dry run checks them too
    assert not (root / ".mlproject" / "runs").exists()
    assert Configured.made == []


def test_plan_shows_the_submissions_made_with_the_settings_in_effect(
        cli: Callable[..., Result], root: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config(tmp_path, '[backends.configured]\nhost = "unix:///cfg.sock"\n')
    monkeypatch.setenv("MLPROJECT_CONFIGURED_VOLUMES", "/a:/a,/b:/b")
    got = cli("plan", str(root), "--backend", "configured", "--backend-config", '{"cpus": 6}',
              "--json")
    assert got.code == 0, got.err
    shown = json.loads(got.out)
    wanted = {**DEFAULTS, "host": "unix:///cfg.sock", "volumes": ["/a:/a", "/b:/b"], "cpus": 6}
    assert shown["settings"] == wanted
    assert shown["submissions"][0]["submission"]["notes"] == [
        f"settings {json.dumps(wanted, sort_keys=True)}"]  # the backend was made with them
    text = cli("plan", str(root), "--backend", "configured")
    assert text.code == 0, text.err
    assert ('backend settings: base_image=null, cpus=2, host=unix:///cfg.sock, pull=false, '
            'ratio=0.5, volumes=["/a:/a", "/b:/b"]') in text.out.splitlines()
    got = cli("plan", str(root), "--backend-config", '{"cpus": 6}')
    assert got.code == 2
    assert got.err == ("mlproject: error: --backend-config gives a backend's settings: name the "
                       "backend with --backend NAME\n")
    got = cli("plan", str(root), "--backend", "local", "--backend-config", '{"cpus": 6}')
    assert got.code == 2 and "the local backend takes no settings" in got.err


def test_run_hands_the_settings_to_the_backend_and_the_record(
        cli: Callable[..., Result], root: Path, tmp_path: Path) -> None:
    flag = tmp_path / "run.toml"
    flag.write_text('pull = true\nbase_image = "python:3.11-slim"\n')
    got = cli("run", str(root), "--backend", "configured", "--backend-config", str(flag))
    assert got.code == 0, got.err
    wanted = {**DEFAULTS, "pull": True, "base_image": "python:3.11-slim"}
    assert [made.settings for made in Configured.made if made.jobs] == [wanted]
    record = json.loads(next((root / ".mlproject" / "runs").glob("*/run.json")).read_text())
    assert record["settings"] == wanted


def _mlproject(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlproject.runner", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_real_process_reads_the_config_file_and_the_variables_it_is_given(
        root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    path = config(tmp_path, "[backends.local]\nmemory = '1G'\n")
    got = _mlproject("run", str(root), env=env, cwd=tmp_path)
    assert (got.returncode, got.stdout) == (2, "")
    assert got.stderr == (f"mlproject: error: unknown backend setting 'memory' in the config file "
                          f"{path}, line 2: the local backend takes no settings\n")
    path.write_text("[tool]\nx = 1\n")
    got = _mlproject("run", str(root), "--dry-run", env={**env, "MLPROJECT_LOCAL_GPUS": "1"},
                     cwd=tmp_path)
    assert got.returncode == 2
    assert got.stderr == ("mlproject: error: unknown backend setting in the environment variable "
                          "MLPROJECT_LOCAL_GPUS: the local backend takes no settings\n")
    got = _mlproject("run", str(root), "--dry-run", env=env, cwd=tmp_path)
    assert got.returncode == 0, got.stderr


def test_help_does_not_import_the_settings_and_reading_none_imports_no_toml(
        tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from mlproject.runner.cli.main import main\n"
        "for argv in (['--help'], ['run', '--help'], ['plan', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'mlproject.runner.backends.settings' not in sys.modules\n"
        "from mlproject.runner.backends.settings import load\n"
        "assert load('local', None) == {}\n"
        "assert 'tomllib' not in sys.modules\n"
        "print('ok')\n")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "none")}
    got = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=60)
    assert got.returncode == 0, got.stderr
    assert got.stdout.endswith("ok\n")
    assert "--backend-config FILE|JSON" in got.stdout
