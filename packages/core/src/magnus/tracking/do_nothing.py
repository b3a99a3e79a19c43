"""The built-in ``do-nothing`` experiment tracker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from magnus.tracking.base import BaseExperimentTracker


class DoNothingTracker(BaseExperimentTracker):
    """Keeps metrics in the run log only."""

    service_name: ClassVar[str] = "do-nothing"

    def publish_data(self, metrics: Mapping[str, Any], step_internal_name: str) -> None:
        """Nothing to send: the run log already holds the metrics."""
