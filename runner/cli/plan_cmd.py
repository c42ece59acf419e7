"""`mlproject plan`: what `run` would do, as text or JSON. `run --dry-run` prints the same."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from mlproject.runner.cli.common import error, make_plan
from mlproject.runner.plan import Plan
from mlproject.spec.units import format_bytes, format_seconds


def render(plan: Plan) -> str:
    count = len(plan.steps)
    lines = [f"{plan.name or 'project'}: {count} step{'s' if count > 1 else ''} for "
             f"{plan.target!r} ({plan.spec_file})"]
    if plan.source is not None:
        src = plan.source
        asked = f"-v {src['version']}" if src["version"] is not None else "its HEAD"
        within = f", subdirectory {src['subdirectory']}" if src["subdirectory"] else ""
        lines.append(f"source: {src['url']} at {src['commit']} ({asked}{within})")
    for number, step in enumerate(plan.steps, 1):
        env = step.environment
        lines.append(f"{number}. {step.entry_point}  fingerprint {step.fingerprint[:12]}")
        lines.append(f"   $ {step.command}")
        state = "ready" if env.ready else "not built"
        if env.pending:
            state = env.pending
        if env.problem:
            state = f"cannot be built: {env.problem}"
        lines.append(f"   environment: {env.name} ({env.kind}: {env.detail}; {state})")
        res = step.resources
        parts = [f"cpu {res.cpu:g}" if res.cpu is not None else "",
                 f"memory {format_bytes(res.memory)}" if res.memory is not None else "",
                 f"gpu {res.gpu}" if res.gpu is not None else "",
                 f"timeout {format_seconds(res.timeout)}" if res.timeout is not None else ""]
        lines.append(f"   resources: {', '.join(p for p in parts if p) or 'none declared'}")
        if step.needs:
            lines.append(f"   needs: {', '.join(step.needs)}")
        if step.outputs:
            lines.append(f"   outputs: {', '.join(step.outputs)}")
        for name, pin in step.data.items():
            if "pending" in pin:
                lines.append(f"   data {name}: {pin['pending']}")
            else:
                version = f"{pin['rev'] or 'HEAD'}@{str(pin['sha'])[:8]}"
                where = f"{pin['repo']} " if pin["repo"] else ""
                lines.append(f"   data {name}: {pin['path']} {where}{version} md5 {pin['md5']}")
        code = step.code
        if code["kind"] == "git":
            dirty = f", {code['changed_files']} uncommitted" if code["dirty"] else ""
            lines.append(f"   code: git {str(code['commit'] or 'no commit')[:12]}{dirty}")
        lines.append(f"   fingerprint covers: {', '.join(step.basis.covered)}")
        lines.append(f"   not covered: {', '.join(step.basis.not_covered)}")
    lines.extend(f"note: {note}" for note in plan.notes)
    lines.extend(f"before it runs, `run` will: {p}" for p in plan.pending)
    return "\n".join(lines)


def show(plan: Plan, as_json: bool, backend: str | None = None,
         settings: Mapping[str, Any] | None = None) -> None:
    """The plan; with `backend`, also what each step would submit to it (`plan --backend`),
    made with these backend `settings` (None: the backend's defaults)."""
    if backend is not None:
        from mlproject.runner.backends import show as submissions
    if as_json:
        data = plan.to_json()
        if backend is not None:  # the plan file stays what `run --plan` reads: `jq .plan`
            data = {"format": "mlproject.submissions/1", "backend": backend,
                    "settings": dict(settings or {}), "plan": data,
                    "submissions": submissions.to_json(plan, backend, settings)}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        lines = [render(plan)] + (submissions.render(plan, backend, settings) if backend else [])
        sys.stdout.write("\n".join(lines) + "\n")


def backend_settings(backend: str, given: str | None) -> dict[str, Any] | int:
    """The backend's settings in effect (defaults, config file, environment, --backend-config),
    or the exit code after saying which one is wrong."""
    from mlproject.runner.backends.settings import SettingsError, load

    try:
        return load(backend, given)
    except SettingsError as exc:
        return error(str(exc))


def main(args: argparse.Namespace) -> int:
    backend = getattr(args, "backend", None)
    given = getattr(args, "backend_config", None)
    settings: dict[str, Any] | None = None
    if backend is not None:
        loaded = backend_settings(backend, given)
        if isinstance(loaded, int):
            return loaded
        settings = loaded
    elif given is not None:
        return error("--backend-config gives a backend's settings: name the backend with "
                     "--backend NAME")
    made = make_plan(args)
    if isinstance(made, int):
        return made
    show(made, args.json, backend, settings)
    return 0
