"""`mlproject registry [MODEL] [--json]`: the models, versions and stages the Git tags hold."""
from __future__ import annotations

import argparse
import json
import sys

from mlproject.runner.gitops import registry, tags
from mlproject.runner.util.exitcodes import USAGE


def error(message: str) -> int:  # as cli.common's, which imports the planner: start-up matters
    sys.stderr.write(f"mlproject: error: {message}\n")
    return USAGE


def main(args: argparse.Namespace) -> int:
    try:
        models = registry.load(args.repo, args.model)
    except (registry.RegistryError, tags.TagError) as exc:
        return error(str(exc))
    if args.model is not None and not models:
        return error(f"no model {args.model!r} in the registry of {args.repo} (no tag "
                     f"{args.model}@vX.Y.Z or {args.model}#STAGE#N): `mlproject registry` lists them")
    if args.json:
        found = registry.to_json(models)
        if args.model is not None:
            found = {"format": registry.FORMAT, "model": args.model, **found["models"][args.model]}
        # one line: the C encoder (indent would take the pure-Python one, 0.3 s at 10,000 tags)
        sys.stdout.write(json.dumps(found) + "\n")
        return 0
    if args.model is not None:
        sys.stdout.write(_versions(models[args.model]))
    elif not models:
        sys.stdout.write("no models in the registry (`mlproject promote MODEL` registers one)\n")
    else:
        sys.stdout.write(_models(models))
    return 0


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
                   for row in rows)


def _models(models: dict[str, registry.ModelState]) -> str:
    stages = sorted({s for m in models.values() for s in m.stages})
    rows = [["model", "latest", *stages]]
    for name, model in models.items():
        shown = f"{name} (deprecated)" if model.deprecated else name
        rows.append([shown, model.latest or "-", *(model.stages.get(s, "-") for s in stages)])
    return _table(rows)


def _versions(model: registry.ModelState) -> str:
    head = f"{model.name}{' (deprecated)' if model.deprecated else ''}\n"
    if not model.versions:
        return head + "no active versions\n"
    rows = [["version", "commit", "stages", "created", "tag"]]
    for v in model.versions:
        rows.append([v.version if v.registered else v.version[:12], v.commit[:12],
                     ",".join(v.stages) or "-", registry._iso(v.created_at), v.tag])
    return head + _table(rows)
