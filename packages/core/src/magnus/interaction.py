"""The interaction API: what a running task calls to talk to magnus.

Every function works on the current run and step (``magnus.context``), through the step's own
code (``magnus.executors.step_calls``). Inside a notebook step the notebook runs in a separate
kernel process with no run of its own: there each call is sent to the step, which answers it
exactly as it answers a python task (``magnus.tasks.kernel_channel``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from magnus import parameters as params_mod
from magnus.context import current_run, require_run
from magnus.exceptions import ParameterError, TaskError
from magnus.executors import step_calls
from magnus.runlog.models import RunLog
from magnus.tasks import LOOP_ITERATION_ENV, kernel_channel


def _in_kernel() -> bool:
    """Whether this is a notebook's kernel, whose calls the step serving it answers."""
    return current_run.get() is None and kernel_channel.address() is not None


def _call(local: Callable[..., Any], **args: Any) -> Any:
    """``local(**args)`` in the step's process; sent to the step from a notebook's kernel."""
    if _in_kernel():
        return kernel_channel.call(local.__name__, args)
    return local(**args)


def _current_parameters(key: str | None = None) -> dict[str, Any]:
    return _call(step_calls.parameters, key=key)


def get_parameter(key: str | None = None, cast_as: Any = None) -> Any:
    """A parameter's current value (all of them without ``key``), cast to ``cast_as`` if given."""
    parameters = _current_parameters(key)
    if key is None:
        if cast_as is None:
            return parameters
        return params_mod.cast_value(parameters, cast_as, "parameters")
    if key not in parameters:
        raise ParameterError(f"Parameter {key!r} is not set before")
    value = parameters[key]
    return value if cast_as is None else params_mod.cast_value(value, cast_as, key)


def get_parameters() -> dict[str, Any]:
    """Every current parameter."""
    return _current_parameters()


def set_parameter(**kwargs: Any) -> None:
    """Set parameters; they reach the run log when the step succeeds."""
    _call(step_calls.set_parameters, environment=params_mod.to_environment(kwargs))


def get_run_id() -> str:
    """The current run's id."""
    return _call(step_calls.run_id)


def get_loop_iteration() -> int | None:
    """The iteration (from 0) of the innermost loop step around this step; ``None`` outside one."""
    value = os.environ.get(LOOP_ITERATION_ENV, "")
    return int(value) if value.isdigit() else None


def get_tag() -> str:
    """The current run's tag."""
    return _call(step_calls.tag)


def get_run_log() -> RunLog:
    """A copy of the whole current run log, the running step's PROCESSING record included."""
    if _in_kernel():
        return RunLog.model_validate(kernel_channel.call("run_log"))
    return step_calls.run_log()


def put_in_catalog(name: str) -> None:
    """Put files matching glob ``name`` into the run's catalog, recorded in this step.

    From a notebook, ``name`` is read from the step's working directory.
    """
    _call(step_calls.put_in_catalog, name=name)


def get_from_catalog(name: str, destination_folder: str | None = None) -> None:
    """Get files matching glob ``name`` from the run's catalog into ``destination_folder``."""
    _call(step_calls.get_from_catalog, name=name, destination_folder=destination_folder)


def _serializer(name: str) -> Any:
    from magnus.plugins import get_plugins  # the face loads the plugin manager when used

    if not _in_kernel():
        require_run()
    return get_plugins().service_class("object_serializer", name)()


def put_object(data: Any, name: str, serializer: str = "pickle") -> None:
    """Store ``data`` in the run's catalog as ``<name>.<suffix>`` (pickle by default)."""
    chosen = _serializer(serializer)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.{chosen.suffix}"
        chosen.dump(data, path)
        _call(step_calls.put_file, path=str(path), name=path.name)


def get_object(name: str, serializer: str = "pickle") -> Any:
    """The object stored by ``put_object(data, name, serializer)`` in this run."""
    chosen = _serializer(serializer)
    file_name = f"{name}.{chosen.suffix}"
    with tempfile.TemporaryDirectory() as folder:
        get_from_catalog(glob.escape(file_name), destination_folder=folder)
        return chosen.load(Path(folder) / file_name)


def get_secret(name: str) -> str:
    """A secret's value from the configured secrets provider."""
    return _call(step_calls.secret, name=name)


def track_this(step: int = 0, **kwargs: Any) -> None:
    """Record metrics for this step, at ``step`` (an index such as an epoch).

    They land in the step's ``user_defined_metrics`` (a key tracked at one step only as its
    value, otherwise as ``{step: value}``) and are sent to the experiment tracker when the step
    ends.
    """
    from pydantic_core import to_jsonable_python

    _call(step_calls.track, step=step, metrics=to_jsonable_python(kwargs))


def get_experiment_tracker_context() -> Any:
    """The tracker's own context (e.g. an active MLflow run) for calling the tool directly.

    A tracker's context lives in the step's process: in a notebook it is an empty context when
    the tracker has none (``do-nothing``) and an error otherwise (use ``track_this`` there).
    """
    if not _in_kernel():
        return step_calls.tracker_context()
    if kernel_channel.call("tracker_has_context"):
        raise TaskError(
            "get_experiment_tracker_context() is not available in a notebook: the experiment "
            "tracker's context lives in the step's process; record metrics with track_this"
        )
    return contextlib.nullcontext()
