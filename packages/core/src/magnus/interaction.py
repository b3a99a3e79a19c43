"""The interaction API: what a running task calls to talk to magnus.

Every function reads the current run and step from context variables (``magnus.context``).
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from magnus import parameters as params_mod
from magnus.context import current_step, require_run, require_step
from magnus.exceptions import ParameterError
from magnus.runlog.models import DataCatalog, RunLog

logger = logging.getLogger(__name__)


def _current_parameters() -> dict[str, Any]:
    step = require_step()
    # set_parameter writes the environment (as in 0.5), so it overlays what the step started with.
    return {
        **step.parameters,
        **params_mod.from_environment(
            {k: v for k, v in os.environ.items() if k.startswith(params_mod.PARAMETER_PREFIX)}
        ),
    }


def get_parameter(key: str | None = None, cast_as: Any = None) -> Any:
    """A parameter's current value (all of them without ``key``), cast to ``cast_as`` if given."""
    parameters = _current_parameters()
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
    require_step()
    os.environ.update(params_mod.to_environment(kwargs))


def get_run_id() -> str:
    """The current run's id."""
    return require_run().run_id


def get_tag() -> str:
    """The current run's tag."""
    return require_run().tag


def get_run_log() -> RunLog:
    """A copy of the whole current run log, the running step's PROCESSING record included."""
    from magnus.executors.pending import write_pending_now

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


def _serializer(name: str) -> Any:
    from magnus.plugins import get_plugins  # the face loads the plugin manager when used

    require_run()
    return get_plugins().service_class("object_serializer", name)()


def put_object(data: Any, name: str, serializer: str = "pickle") -> None:
    """Store ``data`` in the run's catalog as ``<name>.<suffix>`` (pickle by default)."""
    run = require_run()
    chosen = _serializer(serializer)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.{chosen.suffix}"
        chosen.dump(data, path)
        _record([run.catalog.put_file(path, path.name, run.run_id)])


def get_object(name: str, serializer: str = "pickle") -> Any:
    """The object stored by ``put_object(data, name, serializer)`` in this run."""
    run = require_run()
    chosen = _serializer(serializer)
    file_name = f"{name}.{chosen.suffix}"
    with tempfile.TemporaryDirectory() as folder:
        entries = run.catalog.get(glob.escape(file_name), run.run_id, compute_data_folder=folder)
        _record(entries)
        return chosen.load(Path(folder) / file_name)


def get_secret(name: str) -> str:
    """A secret's value from the configured secrets provider."""
    return require_run().secrets.get(name)


def track_this(step: int = 0, **kwargs: Any) -> None:
    """Record metrics for this step, at ``step`` (an index such as an epoch).

    They land in the step's ``user_defined_metrics`` (a key tracked at one step only as its
    value, otherwise as ``{step: value}``) and are sent to the experiment tracker when the step
    ends.
    """
    from pydantic_core import to_jsonable_python

    current = require_step()
    for key, value in kwargs.items():
        current.metrics.setdefault(key, {})[step] = to_jsonable_python(value)


def get_experiment_tracker_context() -> Any:
    """The tracker's own context (e.g. an active MLflow run) for calling the tool directly."""
    return require_run().experiment_tracker.client_context
