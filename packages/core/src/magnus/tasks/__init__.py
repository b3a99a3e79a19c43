"""Task types: what a task step runs (``command_type``: python, shell, notebook; plugins add more).

``base`` holds the contract (``BaseTaskType``, ``TaskInput``); ``python``, ``shell`` and
``notebook`` are the built-in task types; ``output`` captures what a task prints into the
execution log and the console. The names below are what plugins import from ``magnus.tasks``.
"""

from magnus.tasks.base import LOOP_ITERATION_ENV, MAP_VARIABLE_ENV, BaseTaskType, TaskInput
from magnus.tasks.notebook import NotebookTaskType
from magnus.tasks.output import task_output
from magnus.tasks.python import PythonTaskType, import_function
from magnus.tasks.shell import ShellTaskType

__all__ = [
    "LOOP_ITERATION_ENV",
    "MAP_VARIABLE_ENV",
    "BaseTaskType",
    "NotebookTaskType",
    "PythonTaskType",
    "ShellTaskType",
    "TaskInput",
    "import_function",
    "task_output",
]
