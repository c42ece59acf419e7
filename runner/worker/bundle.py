"""The worker's report where the engine does not share this filesystem (Kubernetes, Ray): the
result and the step's declared outputs, as a tar.gz printed in base64 at the end of the worker's
stdout, between two marker lines. The log is the one channel every engine keeps and lets the
submitting side read after the step ended; the markers and a digest tell a complete bundle
from a step's own output or from a bundle cut short (the worker killed while printing it).

The submitting side strips the bundle from what it shows (`split`) and unpacks it (`unpack`):
only members that are the step's declared outputs (or its metrics file) or the result are
taken, only regular files and directories, inside the project, and each output replaces the
old one whole (staged first, so a bad bundle leaves the project as it was)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from mlproject.runner.worker.request import WorkerRequest
    from mlproject.runner.worker.result import WorkerResult

BEGIN = b"\n@@mlproject-worker-result begin "
END = b"\n@@mlproject-worker-result end "
HOLD = 3  # a log ending in this much of BEGIN is held back until it is known not to be one
LIMIT_VAR = "MLPROJECT_WORKER_BUNDLE_LIMIT"
DEFAULT_LIMIT = 256 * 1024 * 1024  # bytes of outputs a bundle carries (the log carries it)
RESULT = "result.json"
OUTPUTS = "outputs/"


class BundleError(ValueError):
    """A bundle that is not one the worker made for this step (said, never half-unpacked)."""


def limit() -> int:
    try:
        return max(0, int(os.environ.get(LIMIT_VAR, DEFAULT_LIMIT)))
    except ValueError:
        return DEFAULT_LIMIT


# -- the worker's side ------------------------------------------------------------------------

def _members(root: str, paths: Iterable[str]) -> tuple[list[tuple[str, str]], int, list[str]]:
    """(archive name, file) of each regular file and directory under the declared `paths`, the
    bytes they hold, and what was left out (links, devices: they cannot travel)."""
    found: list[tuple[str, str]] = []
    left: list[str] = []
    size = 0
    for rel in paths:
        top = os.path.join(root, rel)
        if os.path.islink(top) or not os.path.exists(top):
            if os.path.islink(top):
                left.append(rel)
            continue
        if os.path.isfile(top):
            found.append((OUTPUTS + os.path.relpath(top, root).replace(os.sep, "/"), top))
            size += os.path.getsize(top)
            continue
        if not os.path.isdir(top):
            left.append(rel)
            continue
        for here, dirs, files in os.walk(top):
            found.append((OUTPUTS + os.path.relpath(here, root).replace(os.sep, "/"), here))
            for name in [*dirs, *files]:
                full = os.path.join(here, name)
                if os.path.islink(full) or not (os.path.isfile(full) or os.path.isdir(full)):
                    left.append(os.path.relpath(full, root))
                    if name in dirs:
                        dirs.remove(name)
                elif name in files:
                    found.append((OUTPUTS + os.path.relpath(full, root).replace(os.sep, "/"),
                                  full))
                    size += os.path.getsize(full)
    return found, size, left


def emit(out: IO[bytes], result: WorkerResult, root: str, paths: Iterable[str]) -> None:
    """Print the bundle of `result` and the outputs at `paths` (relative to `root`) to `out`."""
    from dataclasses import replace

    from mlproject.runner.state.status import Status
    from mlproject.runner.util.exitcodes import STEP_FAILED
    from mlproject.runner.worker.result import WorkerResult

    members, size, left = _members(root, paths)
    if size > limit():
        why = (f"its outputs ({size} bytes) are over the {limit()} bytes a worker's report "
               f"carries back ({LIMIT_VAR}); they are left on the worker in {root}")
        members = []
        if result.status == Status.SUCCEEDED:
            result = replace(result, status=Status.FAILED, exit_code=STEP_FAILED, reason=why)
    elif left:
        note = f"not carried back (links or special files): {', '.join(sorted(left)[:10])}"
        result = replace(result, reason=f"{result.reason}; {note}" if result.reason else note)
    assert isinstance(result, WorkerResult)
    import json

    with tempfile.TemporaryFile() as packed:
        with tarfile.open(fileobj=packed, mode="w:gz", compresslevel=1) as tar:
            data = json.dumps(result.to_json()).encode()
            info = tarfile.TarInfo(RESULT)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            for name, full in members:
                tar.add(full, arcname=name, recursive=False)
        packed.seek(0)
        digest = hashlib.sha256()
        out.write(BEGIN + result.run_id.encode() + b"@@\n")
        while block := packed.read(57 * 1024):  # 57 bytes make one 76-character line
            digest.update(block)
            out.write(base64.encodebytes(block))
        out.write(END + digest.hexdigest().encode() + b"@@\n")
        out.flush()


# -- the submitting side ------------------------------------------------------------------------

def split(raw: bytes, run_id: str | None = None) -> tuple[bytes, bytes | None]:
    """(the log without the bundle, the bundle's tar.gz where it is complete and intact)."""
    marker = BEGIN + run_id.encode() + b"@@\n" if run_id is not None else BEGIN
    at = raw.rfind(marker)
    if at < 0:
        for keep in range(min(len(BEGIN) - 1, len(raw)), HOLD - 1, -1):
            if raw.endswith(BEGIN[:keep]):
                return raw[:-keep], None  # perhaps the start of a bundle: not shown yet
        return raw, None
    start = raw.find(b"@@\n", at + len(BEGIN))
    end = raw.find(END, start)
    if start < 0 or end < 0:
        return raw[:at], None
    close = raw.find(b"@@", end + len(END))
    try:
        payload = base64.b64decode(raw[start + 3:end + 1])
    except (binascii.Error, ValueError):
        return raw[:at], None
    if close < 0 or hashlib.sha256(payload).hexdigest().encode() != raw[end + len(END):close]:
        return raw[:at], None
    return raw[:at], payload


def _declared(request: WorkerRequest) -> list[str]:
    for step in request.plan.get("steps", []):
        if isinstance(step, dict) and step.get("entry_point") == request.entry_point:
            paths = [*step.get("outputs", []), *([step["metrics"]] if step.get("metrics") else [])]
            return [posixpath.normpath(p) for p in paths if isinstance(p, str)]
    return []


def _target(name: str, declared: list[str]) -> str:
    """The output (a declared path) that archive member `name` belongs to."""
    rel = posixpath.normpath(name[len(OUTPUTS):])
    if rel.startswith(("/", "../")) or rel in ("..", "."):
        raise BundleError(f"a member outside the project: {name!r}")
    for out in declared:
        if rel == out or rel.startswith(out + "/"):
            return out
    raise BundleError(f"a member that is no declared output of the step: {name!r}")


def unpack(payload: bytes, request: WorkerRequest, run_dir: Path) -> None:
    """Put the bundle's outputs into the project and its result into the run directory; a
    bundle that is not right changes nothing (said as a warning: the record says the rest)."""
    from mlproject.runner.util.console import say

    try:
        _unpack(payload, request, run_dir)
    except (BundleError, tarfile.TarError, OSError, EOFError) as exc:
        say(f"warning: the worker's report of run {request.run_id} is not used: {exc}")


def _unpack(payload: bytes, request: WorkerRequest, run_dir: Path) -> None:
    import json

    from mlproject.runner.worker import RESULT_FILE
    from mlproject.runner.worker.result import WorkerResult, write

    root = Path(str(request.plan.get("project")))
    declared = _declared(request)
    staging = Path(tempfile.mkdtemp(prefix=f".bundle-{request.run_id}-", dir=run_dir))
    try:
        result: WorkerResult | None = None
        taken: set[str] = set()
        budget = limit()
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
            for member in tar:
                if member.name == RESULT and member.isfile() and member.size <= 1 << 22:
                    handle = tar.extractfile(member)
                    result = WorkerResult.from_json(json.loads(handle.read())) if handle else None
                    continue
                if not member.name.startswith(OUTPUTS) or not (member.isfile() or member.isdir()):
                    raise BundleError(f"a member that is not an output: {member.name!r}")
                taken.add(_target(member.name, declared))
                budget -= member.size
                if budget < 0:
                    raise BundleError(f"outputs over {limit()} bytes")
                dest = staging / posixpath.normpath(member.name[len(OUTPUTS):])
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    raise BundleError(f"an unreadable member: {member.name!r}")
                with open(dest, "xb") as sink:
                    shutil.copyfileobj(source, sink)
                os.chmod(dest, 0o644 | (member.mode & 0o111))
        if result is None or result.run_id != request.run_id:
            raise BundleError("it holds no result of this run")
        for out in sorted(taken):
            _replace(staging / out, root / out, root)
        write(run_dir / RESULT_FILE, result)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace(new: Path, old: Path, root: Path) -> None:
    """`old` (a declared output) replaced whole by `new`; a link there is removed, never
    followed, and a directory on the way that leads out of the project is refused."""
    real = os.path.realpath(root)
    if os.path.commonpath([os.path.realpath(old.parent), real]) != real:
        raise BundleError(f"{old.relative_to(root)} would be written outside the project "
                          "(a link on the way)")
    if old.is_symlink() or old.is_file():
        old.unlink()
    elif old.is_dir():
        shutil.rmtree(old)
    old.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(new), str(old))
