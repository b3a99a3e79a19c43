"""The ``local`` executor: traverses and runs every step in this process."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from magnus.executors.base import BaseExecutor


class LocalExecutor(BaseExecutor):
    """Runs the pipeline on this machine, step after step."""

    service_name: ClassVar[str] = "local"

    enable_parallel: bool = False
    overrides: dict[str, dict[str, object]] = Field(default_factory=dict)
