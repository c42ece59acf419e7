"""What a python environment asks for, before anything is locked: the interpreter and the
requirements text, from a requirements file or MLflow's python_env.yaml (shape checked, every
problem located in the file)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproject.runner.envs import requirements
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.reqsyntax import decode
from mlproject.runner.envs.requirements import Requirements
from mlproject.spec.model import Environment


@dataclass(frozen=True)
class Inputs:
    """What an environment asks for, before locking: the interpreter and the requirements."""
    python: str | None
    text: str  # requirements text, includes made absolute
    origin: Path | None  # the file it came from
    default_lock: Path | None
    root: Path | None = None  # the project: includes stay inside it
    line_map: tuple[int, ...] | None = None  # line in `origin` of each line of `text`
    groups: tuple[int, ...] | None = None  # which pip command installs each line (MLflow's two)

    def parse(self) -> Requirements:
        assert self.origin is not None
        return requirements.parse(self.text, self.origin, root=self.root, line_map=self.line_map,
                                  groups=self.groups)

    def digest(self, asked: Requirements) -> str:
        """The input a lock is made from: the text, and the files it includes (when it does)."""
        if not asked.sources:
            return digest(self.text)
        return digest(self.text + "".join(f"\0{p}\0{h}" for p, h in asked.sources))


def inputs(root: str, env: Environment) -> Inputs:
    if env.file is None:
        return Inputs(env.python, "", None, None)
    origin = Path(root) / env.file
    try:
        data = origin.read_bytes()
    except OSError as exc:
        raise EnvError(f"cannot read {env.file}: {exc.strerror}") from None
    lock = Path(root) / env.lock if env.lock else origin.with_suffix(".lock")
    raw = decode(data, env.file)
    if origin.suffix in (".yaml", ".yml"):  # MLflow's python_env.yaml
        return _python_env(Path(root), origin, raw, env, lock)
    return Inputs(env.python, raw, origin, lock, Path(root))


def _python_env(root: Path, origin: Path, raw: str, env: Environment, lock: Path) -> Inputs:
    import yaml

    shown = origin.name
    try:
        node = yaml.compose(raw, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise EnvError(f"{shown} is not valid YAML: {exc}") from None
    if node is None:
        node = yaml.MappingNode("tag:yaml.org,2002:map", [])
    if not isinstance(node, yaml.MappingNode):
        raise EnvError(f"{shown}:{node.start_mark.line + 1}: expected a mapping with python and "
                       "dependencies")
    lines: list[str] = []
    line_map: list[int] = []
    groups: list[int] = []
    python = env.python
    for key, value in node.value:
        at = f"{shown}:{value.start_mark.line + 1}"
        if key.value == "python":
            if not isinstance(value, yaml.ScalarNode) or not value.value:
                raise EnvError(f"{at}: python: expected a version such as \"3.11\"")
            python = python or value.value  # the text as written: 3.10 is not 3.1
        elif key.value in ("build_dependencies", "dependencies"):
            if value.tag == "tag:yaml.org,2002:null":
                continue
            if not isinstance(value, yaml.SequenceNode):
                raise EnvError(f"{at}: {key.value}: expected a list of requirements, not "
                               f"{_kind(value)}")
            for item in value.value:
                where = f"{shown}:{item.start_mark.line + 1}"
                if not isinstance(item, yaml.ScalarNode) or item.tag != "tag:yaml.org,2002:str":
                    raise EnvError(f"{where}: {key.value}: expected a requirement (a string), "
                                   f"not {_kind(item)}")
                text = item.value.strip()
                head, _, rest = text.partition(" ")
                if head in ("-r", "--requirement", "-c", "--constraint") and rest:
                    text = f"{head} {(origin.parent / rest.strip()).resolve()}"
                lines.append(text)
                line_map.append(item.start_mark.line + 1)
                groups.append(0 if key.value == "build_dependencies" else 1)
    return Inputs(python, "\n".join(lines) + "\n", origin, lock, root, tuple(line_map),
                  tuple(groups))


def _kind(node: Any) -> str:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
