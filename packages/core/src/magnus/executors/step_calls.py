"""What a running task asks of the step it runs in: the work behind the interaction API.

``magnus.interaction`` calls these in the step's own process (a python task); a notebook's
kernel reaches them through :func:`answer`, which the notebook step serves on its channel
(``magnus.tasks.kernel_channel``). Both go through the same functions, so a call records the
same thing wherever it was made. Each reads the current run and step from ``magnus.context``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from pydantic_core import to_jsonable_python

from magnus import parameters as params_mod
from magnus.context import current_step, require_run, require_step
from magnus.exceptions import ParameterError, TaskError
from magnus.executors.pending import write_pending_now
from magnus.runlog.models import DataCatalog, RunLog

logger = logging.getLogger(__name__)

#: what :attr:`StepContext.parameters_read` holds when a task asked for every parameter
ALL_PARAMETERS = "*"


def parameters(key: str | None = None) -> dict[str, Any]:
    """Every parameter as the running step sees it now.

    The step records what it asked for (``key``, else all of them): what it read counts as
    consumed, in its attempt's parameters and fingerprint.
    """
    step = require_step()
    step.parameters_read.add(ALL_PARAMETERS if key is None else key)
    # set_parameter writes the environment (as in 0.5), so it overlays what the step started with.
    return {
        **step.parameters,
        **params_mod.from_environment(
            {k: v for k, v in os.environ.items() if k.startswith(params_mod.PARAMETER_PREFIX)}
        ),
    }


def set_parameters(environment: dict[str, str]) -> None:
    """Set parameters given as ``MAGNUS_PRM_*`` texts; the task collects them when it ends."""
    require_step()
    wrong = sorted(k for k in environment if not k.startswith(params_mod.PARAMETER_PREFIX))
    if wrong:
        raise ParameterError(f"Not parameter variables: {', '.join(wrong)}")
    os.environ.update(environment)


def run_id() -> str:
    """The current run's id."""
    return require_run().run_id


def tag() -> str:
    """The current run's tag."""
    return require_run().tag


def run_log() -> RunLog:
    """A copy of the whole current run log, the running step's PROCESSING record included."""
    run = require_run()
    write_pending_now()
    return run.run_log_store.get_run_log_by_id(run.run_id, full=True).model_copy(deep=True)


def _record(entries: list[DataCatalog]) -> None:
    step = current_step.get()
    if step is None:
        logger.warning("Catalog transfer outside a step: nothing is recorded in the run log")
        return
    step.step_log.add_data_catalogs(entries)


def put_in_catalog(name: str) -> None:
    """Put files matching glob ``name`` into the run's catalog, recorded in this step."""
    run = require_run()
    _record(run.catalog.put(name, run.run_id))


def get_from_catalog(name: str, destination_folder: str | None = None) -> None:
    """Get files matching glob ``name`` from the run's catalog into ``destination_folder``."""
    run = require_run()
    _record(run.catalog.get(name, run.run_id, compute_data_folder=destination_folder or None))


def put_file(path: str, name: str) -> None:
    """Put the file at ``path`` into the run's catalog as ``name``, recorded in this step."""
    run = require_run()
    _record([run.catalog.put_file(Path(path), name, run.run_id)])


def secret(name: str) -> str:
    """A secret's value from the run's secrets provider (masked from now on)."""
    return require_run().secrets.get(name)


def track(step: int, metrics: dict[str, Any]) -> None:
    """Record metrics for the running step at ``step`` (an index such as an epoch)."""
    current = require_step()
    for key, value in metrics.items():
        current.metrics.setdefault(key, {})[step] = to_jsonable_python(value)


def tracker_context() -> Any:
    """The experiment tracker's own context manager, for calling the tool directly."""
    return require_run().experiment_tracker.client_context


def tracker_has_context() -> bool:
    """Whether the experiment tracker's context is more than an empty one."""
    return not isinstance(tracker_context(), contextlib.nullcontext)


#: what a kernel may ask for, by name (``tracker_context`` cannot cross a process boundary)
_ANSWERED = {
    function.__name__: function
    for function in (
        parameters,
        set_parameters,
        run_id,
        tag,
        put_in_catalog,
        get_from_catalog,
        put_file,
        secret,
        track,
        tracker_has_context,
    )
}


def answer(op: str, args: dict[str, Any]) -> Any:
    """Answer one call from a notebook's kernel with JSON-ready data."""
    if op == "run_log":
        return run_log().model_dump(mode="json")
    function = _ANSWERED.get(op)
    if function is None:
        raise TaskError(f"Unknown interaction call {op!r}")
    return to_jsonable_python(function(**args))
