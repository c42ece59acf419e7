"""The one table of mlproject's exit codes. Every module takes its codes from here, and the
README's table says the same (tests/test_records.py keeps them equal).

A step's own non-zero code is passed through as it is, so for `run` the codes below other than 0
are also codes a step could return itself (the run record says which step ended how); they are
the ones shells and CI already read this way (2 usage, 124 `timeout(1)`, 130 128 + SIGINT).
Codes 3, 4 and 5 are never given by `run`.
"""
from __future__ import annotations

OK = 0
STEP_FAILED = 1  # a step failed (without an exit code of its own: e.g. it wrote no declared output)
GATE_FAILED = 1  # `gate`: a gate failed (the verb runs no step, so 1 is not ambiguous there)
NOT_CURRENT = 1  # `status --check`: a step is stale or never run (it runs none: not ambiguous)
USAGE = 2  # usage error, invalid MLproject, or a run that cannot start: nothing ran
# mlproject cannot keep the run's log or record (a full or read-only disk): the same code as a
# run that cannot start, since nothing it ran can be trusted as recorded
NO_RECORD = USAGE
DIFFERS = 3  # `data status`: some input in the workspace does not match its pin
INCOMPLETE = 4  # `lock`, `data pull`, `runs export`: some of what was asked could not be done (each said why)
# `wait`: the run crashed (the mlproject that supervised it ended without recording the end)
CRASHED = 5
# An error inside mlproject itself (a bug): 70 is EX_SOFTWARE in BSD's sysexits.h, a code that
# neither a shell (126/127, 128 + signal) nor timeout(1) (124/125) nor argparse (2) gives.
INTERNAL = 70
TIMEOUT = 124  # a step ran past its resources.timeout, as timeout(1) reports it
INTERRUPTED = 130  # SIGINT, SIGTERM or SIGHUP: 128 + SIGINT, as a shell reports Ctrl-C

# What each code means, for `--help` and the README (a test checks the README's table has them).
MEANINGS = {
    OK: "every step succeeded (or was up to date); for other verbs, done",
    STEP_FAILED: "a step failed without an exit code of its own (otherwise its own code is "
                 "passed through; 128 + N when signal N killed it); `gate`: a gate failed; `status --check`: "
                 "a step is stale or never run",
    USAGE: "usage error, invalid MLproject, or a run that cannot start (nothing ran); or "
           "the run's log or record cannot be written",
    DIFFERS: "`data status`: an input does not match its pin",
    INCOMPLETE: "`lock`, `data pull` or `runs export`: some of what was asked could not be done",
    CRASHED: "`wait`: the run crashed (the mlproject that supervised it ended without "
             "recording how the step ended)",
    INTERNAL: "an internal error of mlproject (a bug): one line names it and its crash log",
    TIMEOUT: "a step ran past its resources.timeout",
    INTERRUPTED: "interrupted (SIGINT, SIGTERM or SIGHUP)",
}
