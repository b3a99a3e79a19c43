"""The experiment-tracker contract, the built-in ``do-nothing`` tracker and the metric helpers.

A tracker receives a step's metrics in one of two shapes, both possibly in one mapping:

* ``{key: value}`` -- a value tracked at step 0 (or a flattened single-step series);
* ``{key: {step: value}}`` -- a series, steps as ints or as their decimal strings (the run log's
  JSON form). :func:`iter_metric_points` turns either shape into ``(key, step, value)`` points.

A tracker that fails to publish must never lose the run log: callers go through
:func:`publish_safely`, which warns and carries on unless the tracker is configured ``strict``.

Metrics also arrive from the environment, as in 0.5: ``MAGNUS_TRACK_<key>`` or
``MAGNUS_TRACK_<key>_STEP_<n>`` holding JSON (or plain text), which shell tasks export.
:func:`collect_environment_metrics` reads them and :func:`flatten_metrics` gives the run log's
``user_defined_metrics`` form.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from abc import abstractmethod
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, ClassVar

from magnus.exceptions import MagnusError
from magnus.services import BaseService

logger = logging.getLogger(__name__)

#: the prefix of the environment variables that carry metrics
TRACK_PREFIX = "MAGNUS_TRACK_"

# The key runs up to an optional trailing "_STEP_<digits>", so a key may itself contain "_STEP_"
# ("LR_STEP_SIZE") as long as something other than digits follows it.
_TRACK_VARIABLE = re.compile(rf"^{TRACK_PREFIX}(?P<key>.+?)(?:_STEP_(?P<step>\d+))?$", re.DOTALL)


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


class DoNothingTracker(BaseExperimentTracker):
    """Keeps metrics in the run log only."""

    service_name: ClassVar[str] = "do-nothing"

    def publish_data(self, metrics: Mapping[str, Any], step_internal_name: str) -> None:
        """Nothing to send: the run log already holds the metrics."""


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


def _decode(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        # Plain text is the normal case for ``export MAGNUS_TRACK_name=hello`` in a shell task.
        return raw


def collect_environment_metrics(environ: Mapping[str, str]) -> dict[str, dict[int, Any]]:
    """The metrics in the ``MAGNUS_TRACK_*`` variables of ``environ``: ``{key: {step: value}}``.

    The key keeps its case (0.5 lower-cased it, which made ``track_this(F1=...)`` and the shell's
    ``MAGNUS_TRACK_F1`` disagree); the step is the number after a trailing ``_STEP_`` (0 without
    one); the value is JSON-decoded, or the raw string when it is not JSON.
    """
    series: dict[str, dict[int, Any]] = {}
    for variable, raw in environ.items():
        match = _TRACK_VARIABLE.match(variable)
        if match is None:
            continue
        step = int(match["step"]) if match["step"] is not None else 0
        series.setdefault(match["key"], {})[step] = _decode(raw)
    return series


def pop_environment_metrics(environ: MutableMapping[str, str]) -> dict[str, dict[int, Any]]:
    """Like :func:`collect_environment_metrics`, and removes the variables read from ``environ``.

    Removing them keeps one step's metrics from being collected again by the next step.
    """
    # Names first: decoding every value of a large environment per step costs more than a step.
    names = [name for name in environ if name.startswith(TRACK_PREFIX)]
    if not names:
        return {}
    series = collect_environment_metrics({name: environ[name] for name in names})
    for name in names:
        del environ[name]
    return series


def _step_order(step: int | str) -> tuple[int, str]:
    try:
        return int(step), ""
    except (TypeError, ValueError):
        return 0, str(step)


def flatten_metrics(series: Mapping[str, Mapping[Any, Any]]) -> dict[str, Any]:
    """The run log's ``user_defined_metrics`` form of ``{key: {step: value}}``.

    A key tracked at exactly one step becomes that value, whichever the step (0.5 looked up step
    0 and crashed when only a later step existed); a key tracked at several steps becomes
    ``{str(step): value}`` in step order, string keys as JSON would make them anyway.
    """
    flat: dict[str, Any] = {}
    for key, points in series.items():
        if len(points) == 1:
            flat[key] = next(iter(points.values()))
        else:
            ordered = sorted(points.items(), key=lambda item: _step_order(item[0]))
            flat[key] = {str(step): value for step, value in ordered}
    return flat


def _is_series(value: Any) -> bool:
    """Whether ``value`` is a ``{step: value}`` series: a non-empty dict keyed by step numbers."""
    if not isinstance(value, Mapping) or not value:
        return False
    return all(
        (isinstance(k, int) and not isinstance(k, bool)) or (isinstance(k, str) and k.isdigit())
        for k in value
    )


def iter_metric_points(metrics: Mapping[str, Any]) -> Iterator[tuple[str, int, Any]]:
    """Every ``(key, step, value)`` in ``metrics``, whichever shape each key has.

    A dict keyed only by step numbers is a series; any other value (a dict of names included) is
    one value at step 0. For tracker authors, so that every tracker reads metrics alike.
    """
    for key, value in metrics.items():
        if _is_series(value):
            for step, point in sorted(value.items(), key=lambda item: int(item[0])):
                yield key, int(step), point
        else:
            yield key, 0, value
