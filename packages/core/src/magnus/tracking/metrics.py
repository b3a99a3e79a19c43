"""Metrics from the environment and the shapes of metrics: reading, flattening, iterating.

Metrics arrive from the environment, as in 0.5: ``MAGNUS_TRACK_<key>`` or
``MAGNUS_TRACK_<key>_STEP_<n>`` holding JSON (or plain text), which shell tasks export.
:func:`collect_environment_metrics` reads them and :func:`flatten_metrics` gives the run log's
``user_defined_metrics`` form; :func:`iter_metric_points` reads what a tracker receives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

#: the prefix of the environment variables that carry metrics
TRACK_PREFIX = "MAGNUS_TRACK_"

# The key runs up to an optional trailing "_STEP_<digits>", so a key may itself contain "_STEP_"
# ("LR_STEP_SIZE") as long as something other than digits follows it.
_TRACK_VARIABLE = re.compile(rf"^{TRACK_PREFIX}(?P<key>.+?)(?:_STEP_(?P<step>\d+))?$", re.DOTALL)


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


def pop_environment_metrics(
    environ: MutableMapping[str, str], names: Iterable[str] | None = None
) -> dict[str, dict[int, Any]]:
    """Like :func:`collect_environment_metrics`, and removes the variables read from ``environ``.

    Removing them keeps one step's metrics from being collected again by the next step.
    ``names``: the ``MAGNUS_TRACK_*`` names of ``environ``, when the caller has found them.
    """
    # Names first: decoding every value of a large environment per step costs more than a step.
    if names is None:
        names = [name for name in environ if name.startswith(TRACK_PREFIX)]
    names = list(names)
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
