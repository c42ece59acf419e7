"""`plan --backend NAME`: what each step would submit, prepared and never submitted."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mlproject.runner import backends
from mlproject.runner.backends.base import PLANNED, Handle, RunContext, Submission
from mlproject.runner.plan import Plan


def prepared(plan: Plan, name: str, settings: Mapping[str, Any] | None = None
             ) -> list[tuple[str, Submission | None, list[str]]]:
    """Per step: its submission, and why it cannot start on that backend (made with these
    settings; None: the backend's defaults). The submission is shown even where the step cannot
    start (an engine not reachable from here, credentials missing): what would be submitted is
    known without the engine; None only where the backend cannot make one."""
    from mlproject.runner.execute import preflight

    chosen = None if settings is None else dict(settings)
    backend = backends.get(name, chosen)
    found: list[tuple[str, Submission | None, list[str]]] = []
    chained = backend.capabilities.chains_steps and len(plan.steps) > 1
    for step in plan.steps:
        # what the working tree holds is the user's to commit before `run`: shown, not refused
        problems = preflight(replace(plan, steps=(step,)), name, chosen, allow_dirty=True)
        ctx = RunContext.for_plan(plan.project, plan)
        if chained:  # held by the engine until the steps it needs succeed: their jobs, to be
            ctx = replace(ctx, after=tuple(Handle(name, PLANNED, f"<{need}>")
                                           for need in step.needs))
        try:
            submission: Submission | None = backend.prepare(step, ctx)
        except Exception:  # a backend that needs what is missing to prepare at all
            if not problems:
                raise
            submission = None
        found.append((step.entry_point, submission, problems))
    return found


def render(plan: Plan, name: str, settings: Mapping[str, Any] | None = None) -> list[str]:
    lines = [f"submissions to the {name} backend (prepared, not submitted):"]
    if settings:
        lines.append("backend settings: " + ", ".join(f"{key}={_shown(value)}" for key, value
                                                      in sorted(settings.items())))
    for number, (entry_point, submission, problems) in enumerate(prepared(plan, name, settings),
                                                                 1):
        lines.append(f"{number}. {entry_point}")
        lines.extend(f"   cannot start: {problem}" for problem in problems)
        if submission is not None:
            lines.extend(submission.render())
    return lines


def to_json(plan: Plan, name: str, settings: Mapping[str, Any] | None = None
            ) -> list[dict[str, Any]]:
    return [{"entry_point": entry_point, "submission": s.to_json() if s else None,
             "problems": problems} for entry_point, s, problems in prepared(plan, name, settings)]


def _shown(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)
