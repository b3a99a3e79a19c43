"""The experiment-tracker contract, and publishing through a tracker without losing the run log.

A tracker receives a step's metrics in one of two shapes, both possibly in one mapping:

* ``{key: value}`` -- a value tracked at step 0 (or a flattened single-step series);
* ``{key: {step: value}}`` -- a series, steps as ints or as their decimal strings (the run log's
  JSON form). :func:`magnus.tracking.metrics.iter_metric_points` turns either shape into
  ``(key, step, value)`` points.

A tracker that fails to publish must never lose the run log: callers go through
:func:`publish_safely`, which warns and carries on unless the tracker is configured ``strict``.
"""

from __future__ import annotations

import contextlib
import logging
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from magnus.exceptions import MagnusError
from magnus.services import BaseService

logger = logging.getLogger(__name__)


class ExperimentTrackerError(MagnusError):
    """A ``strict`` experiment tracker could not publish a step's metrics."""


class BaseExperimentTracker(BaseService):
    """Base of every experiment tracker: forwards user metrics to a tracking tool.

    ``strict`` decides what a failure to publish does: ``false`` (the default) logs a warning and
    the step carries on; ``true`` fails the step. The run log is kept either way.
    """

    service_type: ClassVar[str] = "experiment_tracker"

    strict: bool = False

    @property
    def client_context(self) -> contextlib.AbstractContextManager[Any]:
        """The tool's own context (an active run, ...) for user code to call the tool directly.

        A context manager, used as ``with get_experiment_tracker_context() as run: ...``.
        """
        return contextlib.nullcontext()

    @abstractmethod
    def publish_data(self, metrics: Mapping[str, Any], step_internal_name: str) -> None:
        """Send the metrics of the step ``step_internal_name`` to the tool.

        ``metrics`` maps keys to values or to ``{step: value}`` series (see the module docstring;
        :func:`iter_metric_points` reads both). Raise on failure; :func:`publish_safely` decides
        whether that fails the step.
        """


def publish_safely(
    tracker: BaseExperimentTracker, metrics: Mapping[str, Any], step_internal_name: str
) -> str | None:
    """Publish through ``tracker``; ``None`` on success, else the failure as a message.

    A failure is logged as a warning and returned, so the caller can note it on the step, unless
    the tracker is ``strict``: then it raises :class:`ExperimentTrackerError` (chained to the
    tracker's own error) and the step fails. Either way the caller still writes the run log.
    """
    try:
        tracker.publish_data(metrics, step_internal_name)
    except Exception as exc:
        message = (
            f"The {tracker.service_name!r} experiment tracker could not publish the metrics of "
            f"step {step_internal_name!r}: {type(exc).__name__}: {exc}"
        )
        if tracker.strict:
            raise ExperimentTrackerError(message) from exc
        logger.warning(message)
        return message
    return None
