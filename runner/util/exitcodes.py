"""The one table of mlproject's exit codes. Every module takes its codes from here.

A step's own non-zero code is passed through as it is, so the codes below other than 0 and 1
are also codes a step could return itself; they are the ones shells and CI already read this
way (2 usage, 124 `timeout(1)`, 130 128 + SIGINT).
"""
from __future__ import annotations

OK = 0
STEP_FAILED = 1  # a step failed without an exit code of its own
USAGE = 2  # usage error, invalid MLproject, or a run that cannot start: nothing ran
# An error inside mlproject itself (a bug): 70 is EX_SOFTWARE in BSD's sysexits.h, a code that
# neither a shell (126/127, 128 + signal) nor timeout(1) (124/125) nor argparse (2) gives.
INTERNAL = 70
TIMEOUT = 124  # a step ran past its resources.timeout, as timeout(1) reports it
INTERRUPTED = 130  # SIGINT, SIGTERM or SIGHUP: 128 + SIGINT, as a shell reports Ctrl-C
