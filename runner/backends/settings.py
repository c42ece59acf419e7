"""Backend settings: where a project runs is the user's choice, so it is not in the MLproject
file. Each backend class declares `SETTINGS: {key: Setting}`; `load` gives the values in effect:
the defaults, overridden by the user's config file (`$XDG_CONFIG_HOME/mlproject/config.toml`,
table `[backends.NAME]`), then by environment variables (`MLPROJECT_<NAME>_<KEY>`), then by
`--backend-config FILE|JSON` (a flat object of keys). An unknown key or a value of the wrong
type is a SettingsError naming the key, where it came from and what fits.

A `[backends.X]` table for a backend this mlproject does not know is a warning, not an error:
the config file is the user's, shared by every project, by other versions of mlproject and by
plugins that register backends of their own (a table for one of those must not stop a run).
"""
from __future__ import annotations

import math
import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIMIT = 1 << 20  # bytes: a settings file is a few lines; a bigger one is a mistake
_SHOWN = 80  # characters of a value shown in a message

# the types a setting may have, as a message names them
_TYPES: dict[type, str] = {str: "a string", int: "an integer", float: "a number",
                           bool: "true or false", list: "a list of strings"}


@dataclass(frozen=True)
class Setting:
    """One key a backend takes. `default` None: not set (the backend decides, e.g. from the
    engine's own environment variables)."""
    type: type  # str, int, float, bool or list (of str)
    default: Any
    help: str

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise TypeError(f"a setting's type is one of str, int, float, bool, list, not "
                            f"{self.type!r}")
        if self.default is not None:
            _fit(self.default, self)  # a backend's own mistake: raises ValueError


class SettingsError(ValueError):
    """Settings that cannot be used; the message says which, where from, and what fits."""


def with_defaults(declared: Mapping[str, Setting],
                  given: Mapping[str, Any] | None) -> dict[str, Any]:
    """A backend's settings: each declared key given, else its default (`load` has checked
    the values; a backend made directly, as the tests do, gets the defaults for the rest)."""
    given = dict(given or {})
    return {key: given.get(key, setting.default) for key, setting in declared.items()}


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The user's config file (XDG: a relative XDG_CONFIG_HOME is ignored)."""
    base = environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        home = environ.get("HOME") or str(Path.home())
        base = os.path.join(home, ".config")
    return Path(base) / "mlproject" / "config.toml"


def env_name(backend: str, key: str) -> str:
    """The environment variable of a setting: MLPROJECT_DOCKER_BASE_IMAGE."""
    return f"{_env_part(backend)}{key.upper().replace('-', '_')}"


def load(backend: str, given: str | None, environ: Mapping[str, str] = os.environ,
         warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The settings in effect for `backend`; `given`: the value of --backend-config. `warn`
    (default: a line on stderr) gets what is ignored, without stopping the run."""
    declared = _declared(backend)
    values: dict[str, Any] = {k: _copy(s.default) for k, s in declared.items()}
    path = config_path(environ)
    text = _read(path, required=False, what="the config file")
    if text is not None:
        table = _config_table(backend, path, text, warn or _warn)
        source = _Source(f"the config file {path}", text, f"backends.{backend}")
        _apply(backend, declared, values, table, source)
    for var in sorted(v for v in environ if v.startswith(_env_part(backend))):
        _apply_env(backend, declared, values, var, environ[var])
    if given is not None:
        data, source = _given(given)
        _apply(backend, declared, values, data, source)
    return values


def describe(backend: str, environ: Mapping[str, str] = os.environ) -> str:
    """The settings a backend takes and where they are given, for help and messages."""
    declared = _declared(backend)
    where = (f"given (last wins) in [backends.{backend}] of {config_path(environ)}, as "
             f"{env_name(backend, '<KEY>')}, or with --backend-config FILE|JSON")
    if not declared:
        return f"the {backend} backend takes no settings"
    lines = [f"settings of the {backend} backend, {where}:"]
    for key, setting in sorted(declared.items()):
        default = "not set" if setting.default is None else _shown(setting.default)
        lines.append(f"  {key} ({_TYPES[setting.type]}, default {default}): {setting.help}")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Source:
    """Where values came from, as a message names it; `text` and `table` find a key's line."""
    name: str
    text: str | None = None
    table: str | None = None  # the dotted TOML table the keys are in; None: the top level
    is_json: bool = False

    def where(self, key: str) -> str:
        line = None
        if self.text is not None:
            line = _json_line(self.text, key) if self.is_json else _toml_line(self.text, self.table,
                                                                            key)
        return f"{self.name}, line {line}" if line else self.name


def _declared(backend: str) -> Mapping[str, Setting]:
    from mlproject.runner import backends

    try:
        return backends.settings_of(backend)
    except backends.UnknownBackend as exc:
        raise SettingsError(str(exc.args[0])) from None


def _env_part(backend: str) -> str:
    return f"MLPROJECT_{backend.upper().replace('-', '_')}_"


def _warn(message: str) -> None:
    from mlproject.runner.util.console import say

    say(f"warning: {message}")


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _shown(value: Any) -> str:
    """A value as a message shows it: JSON-like, cut short."""
    import json

    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _known(backend: str, declared: Mapping[str, Setting]) -> str:
    if not declared:
        return f"the {backend} backend takes no settings"
    return f"the {backend} backend's settings are {', '.join(sorted(declared))}"


def _fit(value: Any, setting: Setting) -> Any:
    """`value` as the setting's type; ValueError with what was expected when it is not."""
    kind = setting.type
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            ok = ok and math.isfinite(float(value))
        except OverflowError:  # an integer too big for a float
            ok = False
        value = float(value) if ok else value
    elif kind is str:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
        value = list(value) if ok else value
    if not ok:
        raise ValueError(f"must be {_TYPES[kind]}{' (finite)' if kind is float else ''}, not "
                         f"{_shown(value)}")
    texts = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    if any("\0" in text for text in texts):  # it would end up in an argv or a file name
        raise ValueError(f"must not hold a NUL character: {_shown(value)}")
    return value


def _apply(backend: str, declared: Mapping[str, Setting], values: dict[str, Any],
           data: Mapping[str, Any], source: _Source) -> None:
    for key, value in data.items():
        setting = declared.get(key)
        if setting is None:
            hint = ""
            if key == "backends" and source.table is None:
                hint = (" (--backend-config takes the keys themselves, as in the "
                        f"[backends.{backend}] table of the config file, not the table)")
            raise SettingsError(f"unknown backend setting {key!r} in {source.where(key)}: "
                                f"{_known(backend, declared)}{hint}")
        try:
            values[key] = _fit(value, setting)
        except ValueError as exc:
            raise SettingsError(f"backend setting {key!r} in {source.where(key)} {exc}") from None


def _apply_env(backend: str, declared: Mapping[str, Setting], values: dict[str, Any],
               var: str, text: str) -> None:
    by_var = {env_name(backend, key): key for key in declared}
    key = by_var.get(var)
    if key is None:
        raise SettingsError(f"unknown backend setting in the environment variable {var}: "
                            f"{_known(backend, declared)}"
                            + (f" (as {', '.join(sorted(by_var))})" if by_var else ""))
    setting = declared[key]
    try:
        values[key] = _fit(_parsed(text, setting), setting)
    except ValueError as exc:
        raise SettingsError(f"backend setting {key!r} in the environment variable {var} "
                            f"{exc}") from None


def _parsed(text: str, setting: Setting) -> Any:
    """An environment variable's text as the setting's type (left as text when it does not
    parse, for _fit to refuse with the value shown)."""
    kind = setting.type
    word = text.strip()
    if kind is bool:
        return {"true": True, "1": True, "false": False, "0": False}.get(word.lower(), text)
    if kind is int:
        try:
            return int(word)
        except ValueError:
            return text
    if kind is float:
        try:
            return float(word)
        except ValueError:
            return text
    if kind is list:
        if word.startswith("["):
            import json

            try:
                return json.loads(word)
            except (ValueError, RecursionError):
                raise ValueError(f"must be a JSON list of strings or comma-separated, not "
                                 f"{_shown(text)}") from None
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def _read(path: Path, *, required: bool, what: str) -> str | None:
    """The text of a settings file, refused (without reading it) when it is no regular file
    or too big; None when it does not exist and is not `required`."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if not required:
            return None
        raise SettingsError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise SettingsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SettingsError(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise SettingsError(f"{what} {path} is not a regular file")
    if info.st_size > LIMIT:
        raise SettingsError(f"{what} {path} is {info.st_size} bytes; a settings file is at most "
                            f"{LIMIT} bytes")
    try:
        with open(path, "rb") as handle:
            data = handle.read(LIMIT + 1)
    except OSError as exc:
        raise SettingsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > LIMIT:  # it grew since
        raise SettingsError(f"{what} {path} is over {LIMIT} bytes; a settings file is at most "
                            f"{LIMIT} bytes")
    return _text(data, f"{what} {path}")


def _text(data: bytes, what: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SettingsError(f"{what} is not UTF-8 text (line {line}, byte {exc.start})") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise SettingsError(f"{what} holds a NUL byte (line {line}): it is not a settings file")
    return text


def _toml(text: str, what: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise SettingsError(f"reading {what} needs Python 3.11 or later (or the tomli "
                                "package); a .json file works on any") from None
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise SettingsError(f"{what} is not valid TOML: nested too deeply") from None
    except ValueError as exc:  # TOMLDecodeError says where: (at line L, column C)
        raise SettingsError(f"{what} is not valid TOML: {exc}") from None


class _Twice(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    made: dict[str, Any] = {}
    for key, value in pairs:
        if key in made:
            raise _Twice(key)
        made[key] = value
    return made


def _json(text: str, what: str) -> dict[str, Any]:
    import json

    try:
        data = json.loads(text, object_pairs_hook=_unique)
    except _Twice as exc:
        raise SettingsError(f"{what}: the key {exc.args[0]!r} is given twice") from None
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column "
                            f"{exc.colno})") from None
    except RecursionError:
        raise SettingsError(f"{what} is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise SettingsError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{what} must hold a JSON object of settings ({{\"key\": value, "
                            f"...}}), not {type(data).__name__ if data is not None else 'null'}")
    return data


def _given(given: str) -> tuple[dict[str, Any], _Source]:
    """--backend-config: JSON text, or the path of a .json or .toml file (`./[x].toml` for
    a name that starts with `[`)."""
    if given.lstrip().startswith(("{", "[")):
        if len(given) > LIMIT:
            raise SettingsError(f"--backend-config: the JSON text is over {LIMIT} bytes")
        what = "--backend-config (JSON text)"
        return _json(given, what), _Source(what)
    if "\0" in given:
        raise SettingsError("--backend-config: a path holds no NUL character")
    path = Path(given)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise SettingsError(f"--backend-config {given}: expected a JSON object ({{...}}) or the "
                            "path of a .json or .toml file")
    what = f"--backend-config {given}"
    text = _read(path, required=True, what="--backend-config file")
    assert text is not None
    if suffix == ".json":
        return _json(text, what), _Source(what, text, is_json=True)
    return _toml(text, what), _Source(what, text)


def _config_table(backend: str, path: Path, text: str,
                  warn: Callable[[str], None]) -> Mapping[str, Any]:
    """The config file's `[backends.NAME]` table; other tables are not settings."""
    from mlproject.runner import backends as registry

    data = _toml(text, f"the config file {path}")
    tables = data.get("backends", {})
    if not isinstance(tables, dict):
        raise SettingsError(f"the config file {path}, line {_toml_line(text, None, 'backends')}: "
                            f"backends must be a table of [backends.NAME] tables")
    known = registry.names()
    for name in tables:
        if name not in known:
            line = _toml_line(text, None, f"backends.{name}")
            warn(f"{path}{f', line {line}' if line else ''}: [backends.{name}] is ignored: no "
                 f"backend is named {name!r} (known: {', '.join(known)})")
    table = tables.get(backend, {})
    if not isinstance(table, dict):
        line = _toml_line(text, None, f"backends.{backend}")
        raise SettingsError(f"the config file {path}{f', line {line}' if line else ''}: "
                            f"backends.{backend} must be a table of settings")
    return table


def _dotted(name: str) -> str:
    return "".join(c for c in name if c not in " \t\"'")


def _toml_line(text: str, table: str | None, key: str) -> int | None:
    """The line where `key` of `table` is given (a header of that name counts), found by its
    text; None when it is not found so (an inline table, a quoted dot)."""
    import re

    header_of = re.compile(r"^\s*\[\[?([^\]]*)\]")
    assign_of = re.compile(r"^\s*([A-Za-z0-9_\-.\s\"']+?)\s*=")
    wanted = f"{table}.{key}" if table else key
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = header_of.match(line)
        if header:
            current = _dotted(header.group(1))
            if current == wanted or current.startswith(wanted + "."):
                return number
            continue
        assign = assign_of.match(line)
        if assign:
            name = _dotted(assign.group(1))
            full = f"{current}.{name}" if current else name
            if full == wanted or full.startswith(wanted + "."):
                return number
    return None


def _json_line(text: str, key: str) -> int | None:
    """The line of the top-level `key` of a JSON object (walked with json's own scanner)."""
    import json
    import re

    decoder = json.JSONDecoder()
    space = re.compile(r"\s*")

    def skip(at: int) -> int:
        found = space.match(text, at)
        return found.end() if found else at

    try:
        at = skip(0)
        if text[at:at + 1] != "{":
            return None
        at = skip(at + 1)
        while text[at:at + 1] == '"':
            start = at
            name, at = json.decoder.scanstring(text, at + 1)  # type: ignore[attr-defined]
            if name == key:
                return text.count("\n", 0, start) + 1
            at = skip(at)
            if text[at:at + 1] != ":":
                return None
            _, at = decoder.raw_decode(text, skip(at + 1))
            at = skip(at)
            if text[at:at + 1] != ",":
                return None
            at = skip(at + 1)
    except (ValueError, RecursionError):
        return None
    return None


__all__ = ["LIMIT", "Setting", "SettingsError", "config_path", "describe", "env_name", "load"]
