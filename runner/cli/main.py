"""`mlproject`: the command line. Parsers live here (argparse only, so `--help` stays fast);
each verb's work lives in its own module, imported when that verb runs.

Exit codes (the table is `mlproject.runner.util.exitcodes`): 0 ok; the step's own code when a step
fails (1 when it has none, 124 on timeout); 2 usage error, invalid MLproject, or a run that cannot
start; 70 an internal error of mlproject (one line on stderr names it and the crash log that
holds the traceback; MLPROJECT_DEBUG=1 shows the traceback instead); 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

from mlproject.runner import __version__, backends
from mlproject.runner.util.exitcodes import INTERNAL as EXIT_INTERNAL
from mlproject.runner.util.exitcodes import INTERRUPTED as EXIT_INTERRUPTED
from mlproject.runner.util.exitcodes import USAGE as EXIT_USAGE

TYPE_CHECKING = False  # not `typing`'s: --help must not import typing (~3 ms)
if TYPE_CHECKING:
    from typing import Any


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (argparse says the error in one line)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _count(text: str, least: int) -> int:
    """A whole number of at least `least` (argparse says the error in one line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}: {text!r}")
    return value


def _positive(text: str) -> int:
    return _count(text, 1)


def _nonnegative(text: str) -> int:
    return _count(text, 0)


def _source_args(parser: argparse.ArgumentParser) -> None:
    """-v and --refresh, for the verbs whose PATH may be a Git URL (`mlflow run URL -v REV`)."""
    parser.add_argument("-v", "--version", default=None, metavar="REV",
                        help="with a Git URL as PATH (https://host/org/repo[#subdir], "
                             "git@host:org/repo, file:///path): the commit, branch or tag to run "
                             "(default: the remote's HEAD); fetched only when not cached")
    parser.add_argument("--refresh", action="store_true",
                        help="with a Git URL as PATH: fetch it first, even if REV is cached")


ENV_MANAGERS = ["local", "uv", "virtualenv", "conda"]  # mlflow run --env-manager's


def _project_args(parser: argparse.ArgumentParser, *, entry: bool = True) -> None:
    parser.add_argument("path", nargs="?", default=".", metavar="PATH",
                        help="project directory, MLproject file, or Git URL (default: .)")
    parser.add_argument("--strict", action="store_true",
                        help="treat warnings (keys MLflow ignores, defaults that do not fit "
                             "their type) as errors")
    if entry:
        parser.add_argument("-e", "--entry-point", default="main", metavar="ENTRY",
                            help="entry point to run (default: main)")
        parser.add_argument("-P", "--param", action="append", default=[], metavar="NAME=VALUE",
                            help="parameter value; repeat for several")
        parser.add_argument("--env", "--env-manager", choices=ENV_MANAGERS, default=None,
                            dest="env_manager",
                            help="as MLflow's --env-manager: local (the current interpreter, "
                                 "whatever the entry point declares), uv or virtualenv (uv "
                                 "environments; a conda.yaml translated to one), conda (the conda "
                                 "environment, never translated); default: what is declared")


_BACKEND_CONFIG = ("backend settings: a JSON object, or a .json or .toml file of keys; over "
                   "MLPROJECT_<BACKEND>_<KEY> variables and the [backends.<BACKEND>] table of "
                   "$XDG_CONFIG_HOME/mlproject/config.toml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlproject",
        description="Run machine-learning projects declared in an MLproject file, reproducibly.",
        epilog="exit codes: 0 ok, the step's own code when a step fails (1 when it has none, "
               "124 timeout), 2 usage error / invalid MLproject / cannot start, 70 internal "
               "error (see the crash log it names), 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"mlproject {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    run = verbs.add_parser("run", help="run an entry point (and what it needs) and record it")
    _project_args(run)
    _source_args(run)
    run.add_argument("--backend", default="local", choices=backends.names(),
                     help="where steps run (default: local)")
    run.add_argument("--backend-config", default=None, metavar="FILE|JSON",
                     help=_BACKEND_CONFIG)
    run.add_argument("--force", action="store_true", help="run steps even when up to date")
    run.add_argument("--pull", action="store_true",
                     help="bring pinned data that does not match into the workspace first")
    run.add_argument("--dry-run", action="store_true", help="print the plan and run nothing")
    run.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")
    run.add_argument("--plan", default=None, metavar="FILE",
                     help="execute this plan (`mlproject plan --json > FILE`, '-': stdin) in the "
                          "project at PATH; refused, saying what moved, where it no longer fits")
    run.add_argument("--allow-dirty", action="store_true",
                     help="on an engine that does not see this directory (kubernetes, ray): "
                          "ship the working tree with its uncommitted changes (recorded) "
                          "instead of refusing")
    run.add_argument("--jobs", "-j", type=_positive, default=1, metavar="N",
                     help="run up to N steps at once that do not need one another (their "
                          "output shown line by line behind [step]; default: 1)")
    run.add_argument("--queue-timeout", type=_seconds, default=None, metavar="SECONDS",
                     help="cancel a step the engine still holds in its queue after this long, "
                          "recording the engine's reason")
    run.add_argument("-A", "--docker-args", action="append", default=[], metavar="NAME[=VALUE]",
                     help="with --backend docker: `docker run --NAME VALUE` (as `mlflow run -A`); "
                          "repeat for several")
    run.add_argument("--experiment-name", default=None, metavar="NAME",
                     help="the MLflow experiment the steps' mlflow calls log to (default: the "
                          "user's MLFLOW_EXPERIMENT_NAME, else the project's name)")
    run.add_argument("--run-name", default=None, metavar="NAME",
                     help="a name for the run, kept in its record (and its MLflow export)")
    run.add_argument("--detach", action="store_true",
                     help="run in the background: print the run id of each step (one a line) "
                          "at once; follow with `mlproject logs ID -f`, `wait ID`, `cancel ID`")

    plan = verbs.add_parser("plan", help="print what `run` would do")
    _project_args(plan)
    _source_args(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument("--backend", default=None, choices=backends.names(),
                      help="also show what each step would submit to this backend "
                           "(nothing is submitted)")
    plan.add_argument("--backend-config", default=None, metavar="FILE|JSON",
                      help=_BACKEND_CONFIG + " (with --backend)")

    validate = verbs.add_parser("validate", help="check an MLproject file")
    _project_args(validate, entry=False)
    validate.add_argument("--json", action="store_true", help="problems as JSON")

    schema = verbs.add_parser("schema", help="print the JSON Schema of the format (for editors)")
    schema.add_argument("--record", action="store_true",
                        help="the JSON Schema of a run record (run.json) instead")

    runs = verbs.add_parser(
        "runs", help="list the runs of the project in this directory",
        description="List the project's runs, oldest first. A filter is conditions joined by "
                    "commas, each NAME OP VALUE with OP one of = != > >= < <= ~ (contains); "
                    "NAME is a field (id, entry_point, status, backend, sweep, fingerprint, "
                    "started_at, duration, exit_code), params.NAME, metrics.NAME, or a bare "
                    "parameter or metric name. Numbers compare as numbers.")
    runs.add_argument("--project", default=".", metavar="PATH", help="project directory")
    runs.add_argument("--json", action="store_true", help="machine-readable output")
    runs.add_argument("--filter", default=None, metavar="CONDITIONS",
                      help="only the runs that meet every condition, e.g. "
                           "'status=succeeded,alpha>0.1'")
    runs.add_argument("--sort", default=None, metavar="[-]NAME[,...]",
                      help="order by these (a leading - for descending; runs without the value "
                           "last), e.g. --sort=-metrics.acc")
    runs.add_argument("--limit", default=None, type=_positive, metavar="N",
                      help="at most N runs: the first N in --sort's order, else the N latest")
    runs_verbs = runs.add_subparsers(dest="runs_verb", metavar="show|compare|export")
    show = runs_verbs.add_parser("show", help="show one run")
    show.add_argument("run_id", metavar="ID", help="run id, or a unique prefix of it")
    show.add_argument("--project", default=argparse.SUPPRESS, metavar="PATH",
                      help="project directory")
    show.add_argument("--json", action="store_true", help="the whole record as JSON")
    compare = runs_verbs.add_parser(
        "compare", help="runs side by side: parameters, metrics, data pins, environments, code",
        description="Show two or more runs side by side, each row marked * where they differ.")
    compare.add_argument("run_ids", nargs="+", metavar="ID",
                         help="run ids, or unique prefixes of them (at least two)")
    compare.add_argument("--project", default=argparse.SUPPRESS, metavar="PATH",
                         help="project directory")
    compare.add_argument("--json", action="store_true", help="machine-readable output")
    compare.add_argument("--all", action="store_true", help="also the rows that do not differ")
    export = runs_verbs.add_parser(
        "export", help="copy run records into an MLflow tracking server (needs mlproject[mlflow])",
        description="Each run becomes an MLflow run: its parameters, its metrics with their "
                    "steps, tags for its fingerprint, data pins and code state, and its log as "
                    "an artifact. A run exported before is not exported again. Exit 0 all "
                    "exported, 4 some were not (each said why), 2 a usage error or a server "
                    "that does not answer.")
    export.add_argument("--mlflow", required=True, metavar="URI",
                        help="the tracking URI (http://127.0.0.1:5000, sqlite:///mlflow.db, ...)")
    export.add_argument("run_ids", nargs="*", metavar="ID",
                        help="the runs to export (default: every run that has ended)")
    export.add_argument("--experiment-name", default=None, metavar="NAME",
                        help="the MLflow experiment (default: the project's name)")
    export.add_argument("--project", default=argparse.SUPPRESS, metavar="PATH",
                        help="project directory")
    export.add_argument("--json", action="store_true", help="what was exported, as JSON")

    sweep = verbs.add_parser(
        "sweep", help="run an entry point at many points of its parameters, and compare them",
        description="Run the sweep NAME of the MLproject file, or one given here (-e with "
                    "--grid or --random). Each point is a run recorded under the sweep's id; "
                    "a point whose fingerprint already succeeded is not run again (an "
                    "interrupted sweep resumes; a failed point is retried alone). Ends with the "
                    "points sorted by the sweep's metric. `mlproject sweep show ID` prints it "
                    "again. Exit 0 when every point succeeded, 1 when one failed, 2 a usage "
                    "error, 130 interrupted.")
    sweep.add_argument("name", nargs="?", default=None, metavar="NAME|show",
                       help="a sweep of the MLproject file's sweeps: (or `show ID`)")
    sweep.add_argument("sweep_id", nargs="?", default=None, metavar="ID", help=argparse.SUPPRESS)
    sweep.add_argument("--project", default=".", dest="path", metavar="PATH",
                       help="project directory or MLproject file (default: .)")
    sweep.add_argument("--strict", action="store_true", help="treat warnings as errors")
    sweep.add_argument("-e", "--entry-point", default=None, metavar="ENTRY",
                       help="sweep this entry point (with --grid or --random)")
    sweep.add_argument("-P", "--param", action="append", default=[], metavar="NAME=VALUE",
                       help="a value every point shares; repeat for several")
    sweep.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                       help="values of a parameter (or NAME=range:START:STOP:STEP); every "
                            "combination of the --grid values is a point")
    sweep.add_argument("--random", default=None, type=_positive, metavar="N",
                       help="N random points of the --space")
    sweep.add_argument("--space", action="append", default=[], metavar="NAME=DIST:A:B",
                       help="where a parameter is drawn from: uniform:LOW:HIGH, "
                            "loguniform:LOW:HIGH, randint:LOW:HIGH or choice:V1,V2,...")
    sweep.add_argument("--seed", default=0, type=int, help="seed of --random (default: 0)")
    sweep.add_argument("--metric", default=None, help="the metric the points are sorted by")
    sweep.add_argument("--goal", choices=["minimize", "maximize"], default=None,
                       help="whether a lower or a higher --metric is better (default: minimize)")
    sweep.add_argument("--jobs", "-j", default=None, type=_positive, metavar="N",
                       help="points run at once (default: the sweep's jobs, else 1)")
    sweep.add_argument("--max-failures", default=None, type=_nonnegative, metavar="K",
                       help="start no more points once K have failed (default: the sweep's, "
                            "else never stop)")
    sweep.add_argument("--backend", default="local", choices=backends.names(),
                       help="where points run (default: local)")
    sweep.add_argument("--backend-config", default=None, metavar="FILE|JSON",
                       help=_BACKEND_CONFIG)
    sweep.add_argument("--env", "--env-manager", choices=ENV_MANAGERS, default=None,
                       dest="env_manager",
                       help="as `run --env`: local, uv, virtualenv or conda")
    sweep.add_argument("--force", action="store_true",
                       help="run every point, also those whose fingerprint already succeeded")
    sweep.add_argument("--json", action="store_true", help="the sweep's points as JSON")

    logs = verbs.add_parser("logs", help="print the output of a run (-f: as it comes, until "
                                          "the step ends)")
    logs.add_argument("run_id", metavar="ID", help="run id, or a unique prefix of it")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="keep printing until the step ends (a queued step: wait for it)")
    logs.add_argument("--project", default=".", metavar="PATH", help="project directory")

    cancel = verbs.add_parser("cancel", help="stop a running or queued run (exit 0 also when it "
                                             "had already ended)")
    cancel.add_argument("run_id", metavar="ID", help="run id, or a unique prefix of it")
    cancel.add_argument("--project", default=".", metavar="PATH", help="project directory")
    cancel.add_argument("--no-wait", action="store_true",
                        help="return once the stop is asked for, without waiting for the end")

    wait = verbs.add_parser("wait", help="wait for a run to end; exit with its exit code (5: it "
                                         "crashed)")
    wait.add_argument("run_id", metavar="ID", help="run id, or a unique prefix of it")
    wait.add_argument("--project", default=".", metavar="PATH", help="project directory")

    lock = verbs.add_parser("lock", help="write (again) the locks of the project's environments")
    _project_args(lock, entry=False)
    lock.add_argument("-e", "--entry-point", default=None, metavar="ENTRY",
                      help="only the environments this entry point (and what it needs) uses")

    env = verbs.add_parser("env", help="the environments built for projects (the cache)")
    env_verbs = env.add_subparsers(dest="env_verb", metavar="list|path|prune", required=True)
    env_list = env_verbs.add_parser("list", help="list built environments")
    env_list.add_argument("--json", action="store_true", help="machine-readable output")
    env_path = env_verbs.add_parser("path", help="print the environment of an entry point "
                                                 "(building it if needed)")
    env_path.add_argument("entry_point", metavar="ENTRY", help="entry point")
    env_path.add_argument("path", nargs="?", default=".", metavar="PATH", help="project directory")
    env_path.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)
    env_prune = env_verbs.add_parser("prune", help="remove environments (all, or those unused "
                                                   "for a while) and unfinished builds")
    env_prune.add_argument("--older-than", metavar="DURATION", default=None,
                           help="only those unused for this long, e.g. 30d, 12h")

    data = verbs.add_parser("data", help="the project's pinned data inputs")
    data_verbs = data.add_subparsers(dest="data_verb", metavar="status|pull", required=True)
    data_status = data_verbs.add_parser("status", help="every input, its pin, and whether the "
                                                       "workspace matches")
    _project_args(data_status, entry=False)
    data_status.add_argument("--json", action="store_true", help="machine-readable output")
    data_pull = data_verbs.add_parser("pull", help="bring the pinned versions into the workspace")
    _project_args(data_pull, entry=False)
    data_pull.add_argument("names", nargs="*", metavar="NAME", help="only these inputs")
    data_pull.add_argument("--force", action="store_true",
                           help="also replace a workspace copy whose changes are in no DVC cache")

    status = verbs.add_parser(
        "status", help="every step up to date with mlproject.lock, stale (and why), or never run",
        description="Compare every step (of every entry point, or of -e ENTRY and what it "
                    "needs) with its entry in mlproject.lock, observing only (as `plan`): up to "
                    "date, stale with what changed (parameter, data pin, environment, code, "
                    "output: old -> new), or never run. Exit 0; with --check, 1 when a step is "
                    "stale or never run (CI: the committed lock matches the code); 2 an "
                    "unreadable lock or MLproject.")
    _project_args(status, entry=False)
    status.add_argument("-e", "--entry-point", default=None, metavar="ENTRY",
                        help="only this entry point and what it needs (default: all)")
    status.add_argument("-P", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="parameter value of ENTRY, as `run` takes it; repeat for several")
    status.add_argument("--env", "--env-manager", choices=ENV_MANAGERS, default=None,
                        dest="env_manager",
                        help="as `run --env`: local, uv, virtualenv or conda")
    status.add_argument("--check", action="store_true",
                        help="exit 1 unless every step is up to date")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    gate = verbs.add_parser(
        "gate", help="apply the gates to the metrics of mlproject.lock (exit 1 when one fails)",
        description="Apply the MLproject file's gates to the working tree's mlproject.lock (the "
                    "head), comparing not_worse_than with the lock at the base revision. Exit "
                    "0: every gate passed; 1: a gate failed; 2: no lock at the head (run first), "
                    "an unknown base, or an unreadable lock.")
    _project_args(gate, entry=False)
    gate.add_argument("--base", default=None, metavar="REF",
                      help="the base revision (default: origin/$GITHUB_BASE_REF in a GitHub "
                           "pull request, else the first of origin/main, main, origin/master, "
                           "master that exists)")
    gate.add_argument("--require-base", action="store_true",
                      help="fail a not_worse_than gate that has no base value (default: it "
                           "passes with a note)")
    gate.add_argument("--json", action="store_true", help="machine-readable output")

    report = verbs.add_parser(
        "report", help="the pull request's report: the head lock against the base's",
        description="Compare the head's mlproject.lock (the working tree's, or the one at "
                    "--head) with the base's (read with `git show`, no checkout): metrics with "
                    "their gates, parameters, data pins, environments, and the runs that made "
                    "the head. Exit 0 (whatever the gates say: `mlproject gate` decides), 2 an "
                    "unknown revision, no lock at the head, or --plots without matplotlib.")
    _project_args(report, entry=False)
    report.add_argument("--base", default=None, metavar="REF",
                        help="the base revision (default: as `mlproject gate`)")
    report.add_argument("--head", default=None, metavar="REF",
                        help="the head revision (default: the working tree)")
    report.add_argument("--format", choices=["markdown", "json"], default="markdown",
                        help="markdown (a pull-request comment, default) or json")
    report.add_argument("--plots", default=None, metavar="DIR",
                        help="also write PNG pictures to DIR (needs mlproject[plots])")
    report.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="write the report to FILE instead of stdout")
    report.add_argument("--html", default=None, metavar="OUT",
                        help="instead, write the project's runs as one static HTML page to OUT: "
                             "a sortable table, parameters against metrics, per-epoch curves, "
                             "sweeps (no server, nothing fetched: it opens offline)")

    promote = verbs.add_parser(
        "promote", help="register a model version (tag MODEL@vX.Y.Z) and/or assign it a stage "
                        "(tag MODEL#STAGE#N), GTO's grammar",
        description="Create annotated tags whose message carries the lock entry that produced the "
                    "model. Refused, saying why, unless --force: a dirty tree, a stale lock, a "
                    "failed gate, a model file that does not match the lock, a version that "
                    "exists or does not increase. Exit 0 done, 1 refused, 2 usage error.")
    promote.add_argument("model", metavar="MODEL", help="a model of the MLproject file's models:")
    which = promote.add_mutually_exclusive_group()
    which.add_argument("--version", default=None, metavar="X.Y.Z", help="the version to register")
    which.add_argument("--bump", choices=["major", "minor", "patch"], default=None,
                       help="register the greatest version so far, bumped (default: patch)")
    promote.add_argument("--stage", default=None, metavar="STAGE",
                         help="also assign this stage (alone: to the version at REF, if any)")
    promote.add_argument("--ref", default="HEAD", metavar="REF", help="the commit (default: HEAD)")
    promote.add_argument("--push", default=None, metavar="REMOTE",
                         help="push the tags created (and only those) to REMOTE")
    promote.add_argument("--force", action="store_true", help="tag even when a check refuses")
    promote.add_argument("--project", dest="path", default=".", metavar="PATH",
                         help="project directory or MLproject file (default: .)")
    promote.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)

    registry = verbs.add_parser("registry", help="models, versions and stages, from the Git tags")
    registry.add_argument("model", nargs="?", default=None, metavar="MODEL",
                          help="only this model, with every version")
    registry.add_argument("--repo", default=".", metavar="PATH", help="repository (default: .)")
    registry.add_argument("--json", action="store_true", help="machine-readable output")

    init = verbs.add_parser("init", help="create a new project (a Git repository) from a template")
    init.add_argument("directory", metavar="DIR", nargs="?", default=".",
                      help="where to create it (default: .; must not hold files of the same names)")
    templates = _templates()
    init.add_argument("--template", default="iris", choices=templates, metavar="NAME",
                      help=f"one of {', '.join(templates)} (default: iris, a complete GitOps "
                           "repository; project: the bare skeleton)")
    return parser


def _templates() -> list[str]:
    """The packaged templates: directories of mlproject.templates with an MLproject file."""
    # mlproject/templates beside mlproject/runner (installed), templates/ beside runner/ (a
    # checkout): the same relative place, found without importing anything
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))), "templates")
    return sorted(n for n in os.listdir(here) if os.path.isfile(os.path.join(here, n, "MLproject")))


def _unencodable(raw: bool) -> Callable[[UnicodeError], tuple[str | bytes, int]]:
    def handle(exc: UnicodeError) -> tuple[str | bytes, int]:
        if not isinstance(exc, UnicodeEncodeError):
            raise exc
        bad = exc.object[exc.start:exc.end]
        if all(0xDC80 <= ord(c) <= 0xDCFF for c in bad):  # bytes of a name that is not UTF-8
            if raw:
                return bytes(ord(c) - 0xDC00 for c in bad), exc.end
            return "".join(f"\\x{ord(c) - 0xDC00:02x}" for c in bad), exc.end
        return bad.encode("ascii", "backslashreplace").decode(), exc.end
    return handle


def _never_unencodable() -> None:
    """A name that is not UTF-8 lives in a str surrogate-escaped, and a record may hold any
    string: printing either must never end in a UnicodeEncodeError, whatever the locale or
    PYTHONIOENCODING. Results on a UTF-8 stdout keep a name's own bytes (as `ls` does, so that
    `$(mlproject ...)` names the file); messages show them as \\xNN, as hashing.shown does."""
    import codecs

    codecs.register_error("mlproject.raw", _unencodable(True))
    codecs.register_error("mlproject.shown", _unencodable(False))
    for stream in (sys.stdout, sys.stderr):
        utf8 = (getattr(stream, "encoding", "") or "").lower().replace("-", "") == "utf8"
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            raw = stream is sys.stdout and utf8
            reconfigure(errors="mlproject.raw" if raw else "mlproject.shown")


def _verb(args: argparse.Namespace) -> str:
    sub = getattr(args, f"{args.verb}_verb", None)
    return f"{args.verb} {sub}" if sub else str(args.verb)


def _crash_log(exc: BaseException, argv: Sequence[str]) -> str:
    """Write what a report needs to a crash log; where it is, or why there is none. The user
    cache first (atomically, so a reader never sees half a log), then the temporary directory."""
    import platform
    import tempfile
    import time
    import traceback

    from mlproject.runner.util.files import cache_root, write_atomic

    text = "".join([
        f"argv: {['mlproject', *argv]!r}\n",
        f"mlproject: {__version__}\n",
        f"python: {sys.version.replace(chr(10), ' ')} ({sys.executable})\n",
        f"platform: {platform.platform()}\n",
        f"cwd: {os.getcwd()}\n\n",
        *traceback.format_exception(type(exc), exc, exc.__traceback__),
    ]).encode("utf-8", "backslashreplace").decode()  # a name that is not UTF-8 shown as \xNN
    now = time.time()
    name = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}.{int(now % 1 * 1e6):06d}-{os.getpid()}"
    try:
        path = cache_root() / "crash" / f"{name}.log"
        write_atomic(path, text)
        return f"the traceback is in {path}"
    except OSError as first:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f"mlproject-crash-{name}-", suffix=".log")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            return f"the traceback is in {tmp}"
        except OSError as second:
            return f"no crash log could be written ({first}; {second})"


def _internal_error(exc: Exception, args: argparse.Namespace, argv: Sequence[str]) -> int:
    """A bug in mlproject: one line that names it and its crash log, and a code of its own, so
    that a failed step (1) and a crash are never confused."""
    try:
        where = _crash_log(exc, argv)
    except Exception as failed:  # the report of a bug must not end in a second traceback
        where = f"no crash log could be written ({type(failed).__name__}: {failed})"
    message = " ".join(str(exc).split())  # one line, whatever the exception holds
    if len(message) > 500:  # the whole of it is in the log
        message = message[:500] + "..."
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    try:
        sys.stderr.write(f"mlproject: internal error: {what} (while running `mlproject "
                         f"{_verb(args)}`); {where}; please report it\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # no terminal left to tell (closed stderr): the code says it
        pass
    return EXIT_INTERNAL


def _debug() -> bool:
    return os.environ.get("MLPROJECT_DEBUG", "") not in ("", "0")


def main(argv: Sequence[str] | None = None) -> int:
    _never_unencodable()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    previous = _stop_on_terminate()
    try:
        module = importlib.import_module(f"mlproject.runner.cli.{args.verb}_cmd")
        code: int = module.main(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (`mlproject runs | head`): not an error
        return 0
    except Exception as exc:
        if _debug():
            raise  # the real exception, for a debugger or a test; entry() still exits 70
        return _internal_error(exc, args, argv)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def _terminated(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signum)


def _stop_on_terminate() -> dict[int, Any]:
    """SIGTERM and SIGHUP end a verb as Ctrl-C does (exit 130, temporary files removed, a tool it
    runs stopped), also before `execute` puts its own handlers in place: while `run` clones,
    resolves or loads. The handlers in place before, to put back."""
    previous: dict[int, Any] = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, _terminated)
    except ValueError:  # only the main thread may set handlers (a library caller's thread)
        pass
    return previous


def entry() -> None:
    try:
        code = main()
    except Exception:  # only with MLPROJECT_DEBUG: the traceback as Python shows it
        import traceback

        traceback.print_exc()
        code = EXIT_INTERNAL
    sys.exit(code)
