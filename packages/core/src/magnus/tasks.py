"""Task types: what a task step runs (``command_type``: python, shell; plugins add more).

A task type is a pydantic model whose fields are the step fields it owns (``command`` and any
type-specific ones). ``execute`` runs the command once and returns what it consumed and produced;
it raises on failure and the caller records the attempt.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

from magnus import parameters as params_mod
from magnus.exceptions import TaskError
from magnus.task_output import task_output
from magnus.tracking import collect_environment_metrics, pop_environment_metrics

MAP_VARIABLE_ENV = "MAGNUS_MAP_VARIABLE"


@dataclass
class TaskInput:
    """What a task is given for one attempt."""

    step_name: str
    parameters: dict[str, Any]
    map_variables: dict[str, Any] = field(default_factory=dict)
    #: where the task's stdout and stderr go (the execution log, tee'd to the console)
    output: IO[str] = field(default_factory=io.StringIO)
    #: filled by the task as soon as it knows what it consumes, so failed attempts record it too
    consumed: dict[str, Any] = field(default_factory=dict)
    #: parameters that enclosing maps iterate on: available, but not recorded as consumed
    iterated: set[str] = field(default_factory=set)
    #: where the task's output is echoed for people (the leaf wrapper masks secrets in them)
    console_out: IO[str] | None = None
    console_err: IO[str] | None = None
    #: metrics the task exported as ``MAGNUS_TRACK_*``: ``{key: {step: value}}``
    metrics: dict[str, dict[int, Any]] = field(default_factory=dict)


class BaseTaskType(BaseModel):
    """Base of every task type; ``service_name`` is the ``command_type`` that selects it."""

    model_config = ConfigDict(extra="forbid")

    service_name: ClassVar[str] = ""
    service_type: ClassVar[str] = "task_type"

    command: str

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("command must not be empty")
        return value

    def execute(self, task_input: TaskInput) -> dict[str, Any]:
        """Run the command once and return the parameters it produced; raise on failure."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------ python

_cwd_on_path = False


def import_function(dotted: str) -> Callable[..., Any]:
    """Import ``package.module.function``, the working directory first on the import path."""
    global _cwd_on_path
    module_name, _, attribute = dotted.rpartition(".")
    if not module_name:
        raise TaskError(
            f"The python command {dotted!r} should be a dotted path like package.module.function"
        )
    if not _cwd_on_path:
        sys.path.insert(0, os.getcwd())
        _cwd_on_path = True
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise TaskError(f"Could not import module {module_name!r} for {dotted!r}: {exc}") from exc
    try:
        function = getattr(module, attribute)
    except AttributeError:
        raise TaskError(f"Module {module_name!r} has no function {attribute!r}") from None
    if not callable(function):
        raise TaskError(f"{dotted!r} is not callable")
    return function


@contextlib.contextmanager
def _exported(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a python task, then restore them."""
    previous = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _clear_prefixed(prefix: str) -> dict[str, str]:
    """Remove and return environment variables left behind by a task (``set_parameter``)."""
    found = {k: os.environ[k] for k in [k for k in os.environ if k.startswith(prefix)]}
    for key in found:
        del os.environ[key]
    return found


class PythonTaskType(BaseTaskType):
    """Calls ``package.module.function`` with parameters bound to its arguments by name.

    The function returns ``None``, a dict or a pydantic model; each top-level key becomes a
    parameter. Parameters are also exported as ``MAGNUS_PRM_*`` while it runs, as in 0.5.
    """

    service_name: ClassVar[str] = "python"

    def execute(self, task_input: TaskInput) -> dict[str, Any]:
        function = import_function(self.command)
        bound = params_mod.bind_arguments(
            function, task_input.parameters, task_input.map_variables, task_input.step_name
        )
        task_input.consumed = params_mod.consumed_parameters(bound)
        exported = params_mod.to_environment(task_input.parameters)
        if task_input.map_variables:
            exported[MAP_VARIABLE_ENV] = json.dumps(task_input.map_variables)
        with (
            _exported(exported),
            # What the function and the processes it starts print: to the log and the console.
            task_output(task_input.output, task_input.console_out, task_input.console_err) as (
                stdout,
                stderr,
            ),
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
        ):
            try:
                result = function(**bound)
            except SystemExit as exc:
                # sys.exit() in a task ends the task, not the run.
                if exc.code not in (None, 0):
                    raise TaskError(f"{self.command} called sys.exit({exc.code!r})") from None
                result = None
            except Exception:
                task_input.output.write(traceback.format_exc())
                raise
            finally:
                left = _clear_prefixed(params_mod.PARAMETER_PREFIX)
                task_input.metrics = pop_environment_metrics(os.environ)
        produced = params_mod.changed_in_environment(exported, left)
        produced.update(params_mod.returned_parameters(result, task_input.step_name, self.command))
        return produced


# ------------------------------------------------------------------------------------ shell

_ENV_DUMP = "MAGNUS_ENV_DUMP_FILE"


class ShellTaskType(BaseTaskType):
    """Runs ``command`` with ``/bin/sh -c``; stdout and stderr go to the execution log.

    Parameters arrive as ``MAGNUS_PRM_<name>`` (JSON text); exporting ``MAGNUS_PRM_<name>``
    sets a parameter. A non-zero exit status fails the step (plain shell semantics: as in 0.5,
    only the last command's status counts unless the command uses ``set -e``).
    """

    service_name: ClassVar[str] = "shell"

    def execute(self, task_input: TaskInput) -> dict[str, Any]:
        task_input.consumed = {
            **{k: v for k, v in task_input.parameters.items() if k not in task_input.iterated},
            **task_input.map_variables,
        }
        inputs = params_mod.to_environment(task_input.parameters)
        env = {**os.environ, **inputs}
        if task_input.map_variables:
            env[MAP_VARIABLE_ENV] = json.dumps(task_input.map_variables)
        fd, dump_path = tempfile.mkstemp(prefix="magnus-env-")
        os.close(fd)
        env[_ENV_DUMP] = dump_path
        # The EXIT trap records the exported environment however the command ends, without
        # printing it into the execution log as 0.5's trailing `env | grep MAGNUS` did.
        script = f"trap 'env -0 > \"${_ENV_DUMP}\"' EXIT\n{self.command.strip()}\n"
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", script],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
            assert process.stdout is not None
            console = task_input.console_out or sys.stdout
            for line in process.stdout:
                task_input.output.write(line)
                console.write(line)
            returncode = process.wait()
            with open(dump_path, encoding="utf-8", errors="replace") as dump:
                pairs = [item.partition("=") for item in dump.read().split("\0") if item]
        finally:
            os.unlink(dump_path)
        exported = {key: value for key, _, value in pairs}
        task_input.metrics = collect_environment_metrics(exported)
        if returncode != 0:
            raise TaskError(f"Command failed with exit status {returncode}")
        return params_mod.changed_in_environment(inputs, exported)
