"""The task-type contract: what a task step runs and what one attempt is given.

A task type is a pydantic model whose fields are the step fields it owns (``command`` and any
type-specific ones). ``execute`` runs the command once and returns what it consumed and produced;
it raises on failure and the caller records the attempt.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

#: the environment variable holding the map variables in scope, as JSON
MAP_VARIABLE_ENV = "MAGNUS_MAP_VARIABLE"
#: the environment variable holding the iteration of the innermost loop around the step
LOOP_ITERATION_ENV = "MAGNUS_LOOP_ITERATION"


@dataclass
class TaskInput:
    """What a task is given for one attempt."""

    step_name: str
    parameters: dict[str, Any]
    map_variables: dict[str, Any] = field(default_factory=dict)
    #: the iteration (from 0) of the innermost loop around the step, if any
    loop_iteration: int | None = None
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
    #: puts a file the task made into the run's catalog, recorded on the step; returns its
    #: catalog name (``None`` outside a run)
    store_file: Callable[[Path, str], str] | None = None
    #: answers the interaction API's calls made from a process the task starts (a notebook's
    #: kernel): ``(operation, keyword arguments) -> JSON-ready value``; ``None`` outside a run
    answer_call: Callable[[str, dict[str, Any]], Any] | None = None


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

    def consumes(self, task_input: TaskInput) -> dict[str, Any]:
        """What an attempt given ``task_input`` will record as consumed, known before it runs.

        A step's fingerprint is looked up with this, so it must equal what ``execute`` records.
        The default: every parameter in scope (not the lists enclosing maps iterate on) and the
        map variables, which is what a command that is handed all of them consumes.
        """
        return {
            **{k: v for k, v in task_input.parameters.items() if k not in task_input.iterated},
            **task_input.map_variables,
        }


def scope_environment(task_input: TaskInput) -> dict[str, str]:
    """The variables that tell a task where it runs: its map variables and loop iteration."""
    found = {}
    if task_input.map_variables:
        found[MAP_VARIABLE_ENV] = json.dumps(task_input.map_variables)
    if task_input.loop_iteration is not None:
        found[LOOP_ITERATION_ENV] = str(task_input.loop_iteration)
    return found
