"""What an engine carries to the worker: one step of the plan, and where its run is kept.

Encoded compactly (zlib, then base64) into one environment variable, because every engine
passes variables to what it runs (sbatch --export, a container's env, Ray's env_vars) and
none needs a file shipped for it. Decoding is strict: a request of the wrong shape is refused
with one line (the worker exits 2), never half-used."""
from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlproject.runner.backends.base import RunContext
    from mlproject.runner.plan import Plan, Step

FORMAT = "mlproject.worker-request/1"
MAX_DECODED = 64 * 1024 * 1024  # a plan is kilobytes; anything near this is not one


class RequestError(ValueError):
    """Not a worker request this mlproject can run."""


@dataclass(frozen=True)
class WorkerRequest:
    plan: dict[str, Any]  # Plan.to_json() as the submitting mlproject had it
    entry_point: str
    run_id: str
    run_dir: str  # the run's directory where it was submitted (the same path where shared)
    shared: bool  # the worker sees the project and the run directory at the same paths
    chained: bool  # submitted together with steps it needs: fingerprint decided on the worker
    force: bool  # run --force
    experiment: str | None = None  # the MLflow experiment the step's calls log to

    @classmethod
    def for_step(cls, plan: Plan, step: Step, ctx: RunContext, *, shared: bool) -> WorkerRequest:
        return cls(plan.to_json(), step.entry_point, ctx.run_id, str(ctx.run_dir), shared,
                   bool(ctx.after), ctx.force, ctx.env.get("MLFLOW_EXPERIMENT_NAME"))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "plan": self.plan, "entry_point": self.entry_point,
                "run_id": self.run_id, "run_dir": self.run_dir, "shared": self.shared,
                "chained": self.chained, "force": self.force, "experiment": self.experiment}

    def encode(self) -> str:
        text = json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)
        return base64.b64encode(zlib.compress(text.encode(), 9)).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> WorkerRequest:
        try:
            packed = base64.b64decode(text.strip(), validate=True)
            unpacker = zlib.decompressobj()
            raw = unpacker.decompress(packed, MAX_DECODED)
            if unpacker.unconsumed_tail:
                raise RequestError(f"the worker request is over {MAX_DECODED} bytes")
            data = json.loads(raw)
        except (binascii.Error, ValueError, zlib.error, RecursionError) as exc:
            if isinstance(exc, RequestError):
                raise
            raise RequestError(f"the worker request cannot be read: {exc}") from None
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: Any) -> WorkerRequest:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise RequestError(f"not a worker request of form {FORMAT} (found {found!r:.80}): "
                               "the worker's mlproject and the submitting one must match")
        kinds = {"plan": dict, "entry_point": str, "run_id": str, "run_dir": str,
                 "shared": bool, "chained": bool, "force": bool}
        for key, kind in kinds.items():
            if not isinstance(data.get(key), kind):
                raise RequestError(f"the worker request's {key!r} is not a {kind.__name__}")
        experiment = data.get("experiment")
        if experiment is not None and not isinstance(experiment, str):
            raise RequestError("the worker request's 'experiment' is not a str")
        return cls(data["plan"], data["entry_point"], data["run_id"], data["run_dir"],
                   data["shared"], data["chained"], data["force"], experiment)
