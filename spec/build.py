"""A schema-valid document -> the typed model, with the checks a schema cannot express:
references between sections, cycles in `needs`, placeholders, defaults that do not fit a type."""
from __future__ import annotations

import dataclasses
import math
import posixpath
from typing import Any

from mlproject.spec import params, shell, template
from mlproject.spec.errors import DocPath, Problem, Severity
from mlproject.spec.model import (
    DataInput,
    EntryPoint,
    Environment,
    Gate,
    Model,
    Parameter,
    Resources,
    Spec,
)
from mlproject.spec.sweeps import build as build_sweep
from mlproject.spec.units import memory_bytes, seconds
from mlproject.spec.yamlpos import Document

MLFLOW_ENVS = ("python_env", "conda_env", "docker_env")


class Builder:
    def __init__(self, doc: Document, display: str, strict: bool) -> None:
        self.doc, self.display, self.strict = doc, display, strict
        self.problems: list[Problem] = []

    def problem(self, path: DocPath, message: str, *, warning: bool = False, key: bool = False) -> None:
        line, col = self.doc.locate_key(path) if key else self.doc.locate(path)
        severity: Severity = "warning" if warning and not self.strict else "error"
        self.problems.append(Problem(self.display, line, col, path, message, severity))

    def build(self, file: str, root: str, digest: str) -> Spec:
        raw: dict[str, Any] = self.doc.data
        environments = self.environments(raw)
        default_env = raw.get("environment") or next(
            (name for name in MLFLOW_ENVS if name in raw), None)
        if "environment" in raw and raw["environment"] not in environments:
            self.unknown(("environment",), "environment", raw["environment"], environments)
        data = {name: DataInput(name, **known(DataInput, fields))
                for name, fields in raw.get("data", {}).items()}
        for name, fields in raw.get("data", {}).items():
            self.check_path(("data", name, "path"), fields.get("path"), "data paths")
        entries = {name: self.entry_point(name, body, environments, default_env, data)
                   for name, body in raw["entry_points"].items()}
        self.check_needs(entries)
        models = self.models(raw.get("models", {}), entries)
        sweeps = {}
        for name, body in raw.get("sweeps", {}).items():
            made = build_sweep(name, body, entries, self.problem, ("sweeps", name))
            if made is not None:
                sweeps[name] = made
        return Spec(
            file=file, root=root, digest=digest, name=raw.get("name"), format=raw.get("format", 1),
            environments=environments, default_environment=default_env, data=data,
            resources=self.resources(("resources",), raw.get("resources", {})), entry_points=entries,
            models=models, sweeps=sweeps,
        )

    def resources(self, path: DocPath, raw: dict[str, Any]) -> Resources:
        values: dict[str, Any] = {"gpu": raw.get("gpu")}
        for key in ("cpu", "timeout", "memory"):
            if key in raw:
                values[key] = _bounded(key, raw[key])
                if values[key] is None:
                    self.problem(path + (key,), f"{raw[key]!r} is not a usable {key}: expected a "
                                 f"finite positive value up to {LIMITS[key]:g}")
        if values.get("memory") is not None:
            values["memory"] = int(values["memory"])
        return Resources(**values)

    def unknown(self, path: DocPath, what: str, name: str, known: Any) -> None:
        options = ", ".join(sorted(known)) or "none are declared"
        self.problem(path, f"no {what} named {name!r} (declared: {options})")

    def environments(self, raw: dict[str, Any]) -> dict[str, Environment]:
        found = [name for name in MLFLOW_ENVS if name in raw]
        if len(found) > 1:
            self.problem((found[1],), f"{found[0]} and {found[1]} cannot both be given: choose one")
        envs: dict[str, Environment] = {}
        if "python_env" in raw:
            envs["python_env"] = Environment("python_env", "python", file=raw["python_env"])
        if "conda_env" in raw:
            envs["conda_env"] = Environment("conda_env", "conda", file=raw["conda_env"])
        if "docker_env" in raw:
            envs["docker_env"] = self.docker(("docker_env",), "docker_env", raw["docker_env"])
        for name, body in raw.get("environments", {}).items():
            if name in envs:
                self.problem(("environments", name), f"{name!r} is the name of MLflow's top-level "
                             "environment in this file: choose another", key=True)
            if "docker" in body:
                envs[name] = self.docker(("environments", name, "docker"), name, body["docker"])
            elif "conda" in body:
                envs[name] = Environment(name, "conda", file=body["conda"], lock=body.get("lock"))
            else:
                envs[name] = Environment(name, "python", python=body.get("python"),
                                         file=body.get("requirements") or body.get("python_env"))
        return envs

    def entry_point(self, name: str, body: dict[str, Any], environments: dict[str, Environment],
                    default_env: str | None, data: dict[str, DataInput]) -> EntryPoint:
        where: DocPath = ("entry_points", name)
        parameters = {p: self.parameter(where + ("parameters", p), p, spec)
                      for p, spec in (body.get("parameters") or {}).items()}
        env = body.get("environment", default_env)
        if "environment" in body and env not in environments:
            self.unknown(where + ("environment",), "environment", str(env), environments)
        for i, item in enumerate(body.get("data", [])):
            if item not in data:
                self.unknown(where + ("data", i), "data input", item, data)
        try:
            parts = tuple(template.parse(body["command"]))
        except template.TemplateError as exc:
            self.problem(where + ("command",), str(exc).removeprefix("command: "))
            parts = (body["command"],)
        for part in parts:
            if isinstance(part, template.Placeholder):
                self.check_placeholder(where, part.name, parameters, body.get("data", []))
        parts = self.check_command(where + ("command",), body["command"], parts)
        for i, output in enumerate(body.get("outputs", ())):
            self.check_path(where + ("outputs", i), output, "outputs")
        metrics, series = metrics_files(body.get("metrics"))
        if isinstance(body.get("metrics"), dict):
            self.check_path(where + ("metrics", "file"), metrics, "metrics files")
            self.check_path(where + ("metrics", "series"), series, "series files")
        elif metrics is not None:
            self.check_path(where + ("metrics",), metrics, "metrics files")
        gates = tuple(self.gate(where + ("gates", metric), metric, rule)
                      for metric, rule in body.get("gates", {}).items())
        # gates need no metrics file: what the code logs (mlproject.log, MLflow's API) counts
        return EntryPoint(
            name=name, command=body["command"], template=parts, parameters=parameters,
            environment=env, data=tuple(body.get("data", ())),
            resources=self.resources(where + ("resources",), body.get("resources", {})),
            needs=tuple(body.get("needs", ())),
            outputs=tuple(body.get("outputs", ())), metrics=metrics, series=series,
            gates=gates,
        )

    def gate(self, path: DocPath, metric: str, rule: dict[str, Any]) -> Gate:
        # `metric` and `relative` are the model's, not keys of the file (unknown keys: warned)
        values = {k: v for k, v in known(Gate, rule).items() if k not in ("metric", "relative")}
        for key in ("min", "max", "tolerance"):
            value = values.get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                self.problem(path + (key,), f"{key} must be a finite number, not {value!r}")
        tolerance = values.pop("tolerance", 0)
        if isinstance(tolerance, str):  # "2%": the schema let only a percentage through
            values["tolerance"], values["relative"] = float(tolerance[:-1]) / 100, True
        else:
            values["tolerance"] = tolerance  # as written: 5 stays 5 in what gates print
        low, high = values.get("min"), values.get("max")
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
            self.problem(path + ("min",), f"min {low!r} is above max {high!r}: no value can pass")
        if "not_worse_than" not in rule:
            for key in ("tolerance", "direction"):
                if key in rule:
                    self.problem(path + (key,), f"{key} applies only to `not_worse_than: base` "
                                 "(add it, or remove this key)", warning=True, key=True)
        return Gate(metric, **values)

    def models(self, raw: dict[str, Any], entries: dict[str, EntryPoint]) -> dict[str, Model]:
        """Each model with the entry point whose declared output is, or holds, its path."""
        declared = [(entry.name, output, posixpath.normpath(output))
                    for entry in entries.values() for output in entry.outputs
                    if outside_project(output) is None]
        models: dict[str, Model] = {}
        for name, body in raw.items():
            where: DocPath = ("models", name, "path")
            path = body["path"]
            if outside_project(path):
                self.check_path(where, path, "model paths")
                continue
            normal = posixpath.normpath(path)
            exact = [(e, out) for e, out, n in declared if n == normal]
            within = [(e, out) for e, out, n in declared if normal.startswith(n + "/")]
            # the exact output first, else the innermost directory that holds it
            owners = exact + sorted(within, key=lambda found: -len(found[1]))
            writers = sorted({entry for entry, _ in owners})
            if not owners:
                shown = ", ".join(f"{out} ({e})" for e, out, _ in declared) or "none are declared"
                self.problem(where, f"{path!r} is not a declared output of any entry point: add "
                             f"it to the `outputs:` of the entry point that writes it (declared "
                             f"outputs: {shown})")
                continue
            if len(writers) > 1:
                self.problem(where, f"{path!r} is an output of several entry points "
                             f"({', '.join(writers)}): a model must come from one")
                continue
            entry, output = owners[0]
            models[name] = Model(name, normal, entry, output, body.get("description"),
                                 tuple(body.get("labels", ())))
        return models

    def parameter(self, path: DocPath, name: str, spec: str | dict[str, Any]) -> Parameter:
        if isinstance(spec, str):
            return Parameter(name, params.canonical(spec), None)
        kind = params.canonical(spec.get("type", "string"))
        default = spec.get("default")
        text = None if default is None else params.as_text(default)
        unfit = None if text is None else params.unfit_text(text)
        if unfit:
            self.problem(path + ("default",), f"default {text!r} {unfit}")
        elif text is not None:
            why = params.type_error(kind, text)
            if why:
                self.problem(path + ("default",), f"default {text!r} does not fit type {kind}: "
                             f"{why}", warning=True)
        return Parameter(name, kind, text, spec.get("description"))

    def check_command(self, path: DocPath, command: str,
                      parts: tuple[str | template.Placeholder, ...]
                      ) -> tuple[str | template.Placeholder, ...]:
        """Each placeholder's shell context; one where no quoting keeps a value literal is an
        error, as is text no process can receive."""
        why = params.unfit_text(command)
        if why:
            self.problem(path, f"the command {why}")
        analysis = shell.analyze(parts)
        names = [p.name for p in parts if isinstance(p, template.Placeholder)]
        for ordinal, reason in analysis.refused:
            self.problem(path, reason.replace("{p}", f"{{{names[ordinal]}}}"))
        return template.placed(parts, analysis)

    def check_placeholder(self, where: DocPath, field: str, parameters: dict[str, Parameter],
                          data: list[str]) -> None:
        head, _, rest = field.partition(".")
        if head == "data" and rest:
            if rest not in data:
                self.problem(where + ("command",), f"placeholder {{{field}}}: the entry point "
                             f"lists no data {rest!r} (add it to its `data:`)")
        elif field not in parameters:
            declared = ", ".join(parameters) or "none"
            self.problem(where + ("command",), f"placeholder {{{field}}} names no parameter "
                         f"(declared: {declared}); write '{{{{' and '}}}}' for literal braces")

    def check_path(self, path: DocPath, value: Any, what: str) -> None:
        why = outside_project(value) if isinstance(value, str) else None
        if why:
            self.problem(path, f"{value!r} {why}: {what} are paths inside the project, relative "
                         "to its directory")

    def docker(self, path: DocPath, name: str, raw: dict[str, Any]) -> Environment:
        """A container image to run, or one to build (`build`: its context and Dockerfile inside
        the project, each path checked here with its position)."""
        options = {k: v for k, v in raw.items() if k != "image"}
        if "build" not in raw:
            return Environment(name, "docker", image=raw["image"], options=options)
        where = path + ("build",)
        build = raw["build"]
        context = posixpath.normpath(build.get("context", "."))
        why = None if context == "." else outside_project(context)
        if why:
            self.problem(where + ("context",), f"{build['context']!r} {why}: the build context "
                         "is a directory inside the project, relative to its directory")
        dockerfile = posixpath.normpath(posixpath.join(context, build.get("dockerfile", "Dockerfile")))
        why = outside_project(dockerfile)
        if why and "dockerfile" in build:
            self.problem(where + ("dockerfile",), f"{build['dockerfile']!r} {why}: the "
                         "Dockerfile is a file inside the project, relative to the build context")
        if "pull" in raw:
            self.problem(path + ("pull",), "`pull` is for an image to run: an image built "
                         "here is never pulled (its base image is, by `docker build`)", key=True)
        args = {k: _arg_text(v) for k, v in (build.get("args") or {}).items()}
        options["build"] = {"context": context, "dockerfile": dockerfile, "args": args}
        return Environment(name, "docker", file=dockerfile, options=options)

    def check_needs(self, entries: dict[str, EntryPoint]) -> None:
        for entry in entries.values():
            for i, need in enumerate(entry.needs):
                if need not in entries:
                    self.unknown(("entry_points", entry.name, "needs", i), "entry point", need, entries)
        state: dict[str, int] = {}  # 1: on the current path, 2: done

        def visit(name: str, trail: list[str]) -> None:
            state[name] = 1
            for i, need in enumerate(entries[name].needs):
                if need not in entries:
                    continue
                if state.get(need) == 1:
                    cycle = " -> ".join(trail[trail.index(need):] + [need])
                    self.problem(("entry_points", name, "needs", i), f"cycle in needs: {cycle}")
                elif need not in state:
                    visit(need, trail + [need])
            state[name] = 2

        for name in entries:
            if name not in state:
                visit(name, [name])


LIMITS = {"cpu": 1e6, "timeout": 1e9, "memory": 2**62}  # beyond any machine: a typo


def _bounded(key: str, value: Any) -> float | None:
    """The number behind a resource value, or None when it is not finite or past its limit."""
    try:
        number = {"timeout": seconds, "memory": memory_bytes}.get(key, float)(value)
        usable = math.isfinite(float(number)) and 0 < number <= LIMITS[key]
    except (OverflowError, ValueError):
        return None
    return number if usable else None


def metrics_files(value: Any) -> tuple[str | None, str | None]:
    """`metrics: FILE` or `metrics: {file: FILE, series: FILE}` -> (metrics file, series file)."""
    if isinstance(value, dict):
        return value.get("file"), value.get("series")
    return value, None


def known(cls: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """The fields of `cls` in `raw`: unknown keys were already reported as warnings."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in raw.items() if k in names}




def outside_project(value: str) -> str | None:
    """Why a path an MLproject names for mlproject to read or hash is not inside the project
    (or is a place mlproject keeps to itself), or None. Links on the way are checked at run
    time: only the written path is seen here."""
    if "\0" in value:
        return "contains a NUL byte"
    if not value.strip():
        return "is blank"
    if value.startswith("/"):
        return "is an absolute path"
    if value.startswith("~"):
        return "starts with '~', a home directory ('~' is not expanded)"
    normal = posixpath.normpath(value)
    if normal == ".":
        return "is the project directory itself"
    if normal == ".." or normal.startswith("../"):
        return "leaves the project ('..' climbs out of its directory)"
    parts = normal.lower().split("/")
    if ".git" in parts:
        return "is inside a Git directory (.git)"
    if parts[0] == ".mlproject":
        return "is inside .mlproject, where mlproject keeps its runs and caches"
    return None


def _arg_text(value: Any) -> str:
    """A build argument as `--build-arg` passes it (YAML's true is `true`, as compose writes)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
