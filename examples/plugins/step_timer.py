"""An observer plugin: records how long every step took, in every process that runs steps.

Enable it for a run with ``MAGNUS_PLUGINS=examples.plugins.step_timer``; a packaged plugin
declares the module in its ``magnus`` entry-point group instead. Each process appends one JSON
line per step to ``step-timings.jsonl`` (or ``$STEP_TIMER_FILE``), so parallel branches running
in other processes are timed too.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from magnus import hookimpl

_started: dict[str, float] = {}
_errors: dict[str, list[str]] = {}


def _write(record: dict[str, Any]) -> None:
    path = os.environ.get("STEP_TIMER_FILE", "step-timings.jsonl")
    # One short append per step: lines from concurrent processes do not interleave.
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


@hookimpl
def before_step(step_log: Any) -> None:
    _started[step_log.internal_name] = time.perf_counter()


@hookimpl
def on_step_error(step_log: Any, error: BaseException) -> None:
    _errors.setdefault(step_log.internal_name, []).append(type(error).__name__)


@hookimpl
def after_step(step_log: Any, node: Any, context: Any) -> None:
    started = _started.pop(step_log.internal_name, None)
    _write(
        {
            "run_id": context.run_id,
            "step": step_log.internal_name,
            "type": node.node_type,
            "status": step_log.status,
            "seconds": round(time.perf_counter() - started, 6) if started else None,
            "errors": _errors.pop(step_log.internal_name, []),
            "pid": os.getpid(),
        }
    )
