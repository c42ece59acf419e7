"""`mlproject plan`: what `run` would do, as text or JSON. `run --dry-run` prints the same."""
from __future__ import annotations

import argparse
import json
import sys

from mlproject.runner.cli.common import make_plan
from mlproject.runner.plan import Plan
from mlproject.spec.units import format_bytes, format_seconds


def render(plan: Plan) -> str:
    count = len(plan.steps)
    lines = [f"{plan.name or 'project'}: {count} step{'s' if count > 1 else ''} for "
             f"{plan.target!r} ({plan.spec_file})"]
    for number, step in enumerate(plan.steps, 1):
        env = step.environment
        lines.append(f"{number}. {step.entry_point}  fingerprint {step.fingerprint[:12]}")
        lines.append(f"   $ {step.command}")
        state = "ready" if env.ready else "not built"
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
        code = step.code
        if code["kind"] == "git":
            dirty = f", {code['changed_files']} uncommitted" if code["dirty"] else ""
            lines.append(f"   code: git {str(code['commit'] or 'no commit')[:12]}{dirty}")
        lines.append(f"   fingerprint covers: {', '.join(step.basis.covered)}")
        lines.append(f"   not covered: {', '.join(step.basis.not_covered)}")
    lines.extend(f"note: {note}" for note in plan.notes)
    return "\n".join(lines)


def show(plan: Plan, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(plan.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render(plan) + "\n")


def main(args: argparse.Namespace) -> int:
    made = make_plan(args)
    if isinstance(made, int):
        return made
    show(made[0], args.json)
    return 0
