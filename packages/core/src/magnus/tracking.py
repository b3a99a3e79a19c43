"""The experiment-tracker contract and the built-in ``do-nothing`` tracker."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from magnus.services import BaseService


class BaseExperimentTracker(BaseService):
    """Base of every experiment tracker: forwards user metrics to a tracking tool."""

    service_type: ClassVar[str] = "experiment_tracker"

    @property
    def client_context(self) -> Any:
        """The tool's own context (an active run, ...) for user code to call the tool directly."""
        return contextlib.nullcontext()

    def publish_data(self, metrics: dict[str, Any], step_internal_name: str) -> None:
        """Send a step's metrics (``{key: value}`` or ``{key: {step: value}}``) to the tool."""


class DoNothingTracker(BaseExperimentTracker):
    """Keeps metrics in the run log only."""

    service_name: ClassVar[str] = "do-nothing"
