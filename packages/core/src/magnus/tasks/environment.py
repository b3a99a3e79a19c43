"""The process environment of a task run in this process: parameters as ``MAGNUS_PRM_*``.

A python task (and a notebook's kernel) sees each parameter as ``MAGNUS_PRM_<name>`` and returns
one by setting it, as in 0.5; metrics arrive as ``MAGNUS_TRACK_*``. Putting a large parameter
into the environment, reading it back and taking it out again costs in proportion to its size:
for a map, whose iterated list every element sees, that made each element's cost grow with the
list. So within a run (:func:`exports_kept`) what a task was given stays exported for the next
task, which is handed only what differs; the environment is put back as it was when the run
ends. Outside a run the environment is put back after each task. A process started between
tasks (a shell step, a parallel branch) gets :func:`environment_without_exports`.

What a task changed is told from what it left alone without reading values back: on POSIX the
environment keeps the very ``bytes`` object it was given until somebody sets the variable again,
so an identity check says the variable is untouched. Elsewhere the texts are compared.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from magnus.parameters.environment import PARAMETER_PREFIX
from magnus.tracking.metrics import TRACK_PREFIX

_BYTES_ENVIRONMENT = os.supports_bytes_environ
_PARAMETER_PREFIX_BYTES = PARAMETER_PREFIX.encode()
_TRACK_PREFIX_BYTES = TRACK_PREFIX.encode()


def _held(name: str, encoded: bytes) -> Any:
    """What the environment holds for ``name``, without decoding it where it can."""
    if _BYTES_ENVIRONMENT:
        return os.environb.get(encoded)
    return os.environ.get(name)


def _encoded_names() -> list[bytes]:
    """The names in this process's environment, encoded: read at every task's end, where
    walking ``os.environ`` (a generator decoding each name) cost more than the rest of it."""
    # CPython's os.environ keeps the encoded environment in a dict; anything else is walked.
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        return list(data)
    return list(os.environb)


class _Exports:
    """The variables this process exported for tasks and has not taken back."""

    def __init__(self) -> None:
        self.runs = 0  # how many runs of this process are under way, keeping their exports
        self.texts: dict[str, str] = {}  # name -> the text exported
        self.held: dict[str, Any] = {}  # name -> what the environment held right after
        self.encoded: dict[str, bytes] = {}
        self.originals: dict[str, str | None] = {}  # name -> its value before the first export

    def _encoded(self, name: str) -> bytes:
        encoded = self.encoded.get(name)
        if encoded is None:
            encoded = self.encoded[name] = os.fsencode(name)
        return encoded

    def untouched(self, name: str) -> bool:
        """Whether ``name`` still holds what this process exported (nobody set it since)."""
        if name not in self.held:
            return False
        found = _held(name, self._encoded(name))
        if _BYTES_ENVIRONMENT:
            return found is self.held[name]
        return bool(found == self.held[name])

    def export(self, variables: Mapping[str, str]) -> None:
        """Make the environment hold exactly ``variables`` among the names exported."""
        for name in [name for name in self.texts if name not in variables]:
            self.take_back(name)
        for name, text in variables.items():
            if self.texts.get(name) is text and self.untouched(name):
                continue  # the very text, still there: nothing to set
            if name not in self.originals:
                self.originals[name] = os.environ.get(name)
            os.environ[name] = text
            self.texts[name] = text
            self.held[name] = _held(name, self._encoded(name))

    def take_back(self, name: str) -> None:
        """Put ``name`` back as it was before this process exported it."""
        self.texts.pop(name, None)
        self.held.pop(name, None)
        original = self.originals.pop(name, None)
        if original is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = original

    def take_all_back(self) -> None:
        for name in list(self.originals):
            self.take_back(name)

    def set_by_task(self) -> tuple[dict[str, str], list[str]]:
        """The ``MAGNUS_PRM_*`` variables a task set (new or changed), taken out of the
        environment, and the names of the ``MAGNUS_TRACK_*`` ones: one pass over the names."""
        parameters: list[str] = []
        metrics: list[str] = []
        if _BYTES_ENVIRONMENT:
            for key in _encoded_names():
                if key.startswith(_PARAMETER_PREFIX_BYTES):
                    parameters.append(os.fsdecode(key))
                elif key.startswith(_TRACK_PREFIX_BYTES):
                    metrics.append(os.fsdecode(key))
        else:
            for name in os.environ:
                if name.startswith(PARAMETER_PREFIX):
                    parameters.append(name)
                elif name.startswith(TRACK_PREFIX):
                    metrics.append(name)
        changed: dict[str, str] = {}
        for name in parameters:
            if self.untouched(name):
                continue
            changed[name] = os.environ[name]
            if name in self.originals:
                self.take_back(name)
            else:
                del os.environ[name]
        # A variable the task removed is exported again before the next task.
        for name in [name for name in self.texts if name not in changed]:
            if not self.untouched(name):
                self.texts.pop(name)
                self.held.pop(name)
        return changed, metrics


_exports = _Exports()


@contextlib.contextmanager
def exports_kept() -> Iterator[None]:
    """Around a run: what tasks were given stays exported from one task to the next, and the
    environment is put back as it was at the end."""
    _exports.runs += 1
    try:
        yield
    finally:
        _exports.runs -= 1
        if not _exports.runs:
            _exports.take_all_back()


def environment_without_exports() -> dict[str, str]:
    """This process's environment as it was before tasks were given anything: what a process
    started between tasks inherits (a shell step, a parallel branch)."""
    environment = dict(os.environ)
    for name, original in _exports.originals.items():
        if original is None:
            environment.pop(name, None)
        else:
            environment[name] = original
    return environment


class TaskEnvironment:
    """What :func:`task_environment` tells of the task once it has run."""

    def __init__(self) -> None:
        #: ``MAGNUS_PRM_*`` variables the task set or changed, as text
        self.parameters: dict[str, str] = {}
        #: names of the ``MAGNUS_TRACK_*`` variables it set (still in the environment)
        self.metric_names: list[str] = []

    def collect(self) -> None:
        """Read what the task set (call once, when it has returned or raised)."""
        self.parameters, self.metric_names = _exports.set_by_task()


@contextlib.contextmanager
def task_environment(variables: Mapping[str, str]) -> Iterator[TaskEnvironment]:
    """``variables`` (``MAGNUS_PRM_*``, the map variables...) in the environment while the block
    runs a task; the block calls :meth:`TaskEnvironment.collect` when the task has run."""
    _exports.export(variables)
    try:
        yield TaskEnvironment()
    finally:
        if not _exports.runs:
            _exports.take_all_back()


@contextlib.contextmanager
def exported_environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block in this process, then restore them."""
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
