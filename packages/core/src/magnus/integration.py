"""Executor x service compatibility: the problems a combination has, and how they are reported.

The rules themselves are hook implementations (``check_compatibility``); magnus' own live in
``magnus.builtins`` like any plugin's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from magnus.exceptions import ConfigurationError

if TYPE_CHECKING:
    from pluggy import HookRelay

    from magnus.executors.base import BaseExecutor
    from magnus.services import BaseService

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One finding about an executor x service combination."""

    level: Literal["error", "warning"]
    message: str

    @classmethod
    def error(cls, message: str) -> Problem:
        return cls("error", message)

    @classmethod
    def warning(cls, message: str) -> Problem:
        return cls("warning", message)


class HasHooks(Protocol):
    """What asking the plugins takes: their hook relay (the plugin manager has one)."""

    @property
    def hook(self) -> HookRelay: ...


def collect_problems(
    plugins: HasHooks, executor: BaseExecutor, services: list[BaseService]
) -> list[Problem]:
    """Every problem every plugin reports for the executor with each service."""
    problems: list[Problem] = []
    for service in services:
        for found in plugins.hook.check_compatibility(executor=executor, service=service):
            problems.extend(found or [])
    return problems


def enforce(problems: list[Problem]) -> list[Problem]:
    """Raise one error listing every ``error`` problem; return the warnings."""
    errors = [p.message for p in problems if p.level == "error"]
    if errors:
        raise ConfigurationError(
            "Incompatible configuration:\n" + "\n".join(f"  - {e}" for e in errors)
        )
    return [p for p in problems if p.level == "warning"]
