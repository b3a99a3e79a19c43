"""The built-in ``python`` task type: calls a function, parameters bound to its arguments."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, ClassVar

from magnus import parameters as params_mod
from magnus.exceptions import TaskError
from magnus.tasks.base import BaseTaskType, TaskInput, scope_environment
from magnus.tasks.environment import task_environment
from magnus.tasks.output import task_output
from magnus.tracking.metrics import pop_environment_metrics

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


class PythonTaskType(BaseTaskType):
    """Calls ``package.module.function`` with parameters bound to its arguments by name.

    The function returns ``None``, a dict or a pydantic model; each top-level key becomes a
    parameter. Parameters are also exported as ``MAGNUS_PRM_*`` while it runs, as in 0.5.
    """

    service_name: ClassVar[str] = "python"

    def consumes(self, task_input: TaskInput) -> dict[str, Any]:
        """The arguments the function binds (importing it: a step that cannot import fails)."""
        return params_mod.consumed_parameters(self._bind(task_input)[1])

    def _bind(self, task_input: TaskInput) -> tuple[Callable[..., Any], dict[str, Any]]:
        function = import_function(self.command)
        bound = params_mod.bind_arguments(
            function, task_input.parameters, task_input.map_variables, task_input.step_name
        )
        return function, bound

    def execute(self, task_input: TaskInput) -> dict[str, Any]:
        function, bound = self._bind(task_input)
        task_input.consumed = params_mod.consumed_parameters(bound)
        exported = params_mod.to_environment(task_input.parameters)
        exported.update(scope_environment(task_input))
        with (
            task_environment(exported) as environment,
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
                environment.collect()
                task_input.metrics = pop_environment_metrics(os.environ, environment.metric_names)
        produced = params_mod.changed_in_environment(exported, environment.parameters)
        produced.update(params_mod.returned_parameters(result, task_input.step_name, self.command))
        return produced
