"""How magnus values become MLflow metrics, params and JSON artifacts. Pure functions, no I/O.

MLflow has three places for a value and each has limits that magnus values do not respect:

* a **metric** is a float with a step: ints and floats (not bools) tracked by a step go there;
* a **param** is a short, immutable string: scalar values (str, bool, None and numbers that are
  parameters rather than metrics) no longer than :data:`MAX_PARAM_VALUE_LENGTH` go there;
* anything else (lists, dicts, long text) goes into a **JSON artifact** of the run, so that
  nothing a step produced is silently truncated or dropped.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from magnus.redaction import redactor
from magnus.tracking import iter_metric_points

#: MLflow's limit on a param value since 2.3 (the server refuses or truncates longer ones)
MAX_PARAM_VALUE_LENGTH = 6000
#: MLflow's limit on a tag value
MAX_TAG_VALUE_LENGTH = 8000
#: MLflow's limit on the key of a metric, param or tag
MAX_KEY_LENGTH = 250
#: what one ``log_batch`` call may carry
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100

# What MLflow accepts in a key on POSIX: alphanumerics, "_", "-", ".", " ", ":" and "/".
_FORBIDDEN_KEY_CHARACTERS = re.compile(r"[^\w.\- :/]")


def safe_key(key: str) -> str:
    """``key`` as MLflow accepts it: forbidden characters become ``_``; at most 250 characters.

    MLflow also treats keys as paths and refuses those that normalise to something else
    (``a//b``, ``./a``, ``a/``), so such keys lose their slashes.
    """
    cleaned = _FORBIDDEN_KEY_CHARACTERS.sub("_", str(key))[:MAX_KEY_LENGTH] or "_"
    if _is_bad_path(cleaned):
        cleaned = cleaned.replace("/", "_")
    if _is_bad_path(cleaned):  # ".", ".." or a leading ".." is still not a unique path
        cleaned = f"_{cleaned}"[:MAX_KEY_LENGTH]
    return cleaned


def _is_bad_path(name: str) -> bool:
    normal = posixpath.normpath(name)
    return normal != name or normal == "." or normal.startswith(("..", "/"))


def is_metric(value: Any) -> bool:
    """Ints and floats are metrics; bools are ints to python but flags to a reader."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def param_text(value: Any) -> str | None:
    """The param string of a scalar value, or ``None`` when the value needs an artifact."""
    if value is None or isinstance(value, (str, bool, int, float)):
        text = redactor.redact_text(str(value))
        if len(text) <= MAX_PARAM_VALUE_LENGTH:
            return text
    return None


def tag_text(value: Any) -> str:
    """A tag value: tags are informative, so a long one is cut rather than moved elsewhere.

    Served secrets are masked (before the cut, so that no part of one is left).
    """
    return redactor.redact_text(str(value))[:MAX_TAG_VALUE_LENGTH]


@dataclass
class Split:
    """Values sorted into what MLflow can hold."""

    #: ``(key, step, value)`` for ``log_batch`` metrics
    metrics: list[tuple[str, int, float]] = field(default_factory=list)
    #: param key -> param string
    params: dict[str, str] = field(default_factory=dict)
    #: what goes into the JSON artifact, in the shape magnus recorded it
    leftovers: dict[str, Any] = field(default_factory=dict)


def split_metrics(metrics: Mapping[str, Any]) -> Split:
    """Sort a step's tracked values (flat or ``{step: value}`` series) for MLflow.

    Numbers become metrics at their step. A scalar of another kind becomes the param ``key``
    (step 0) or ``key_<step>`` (0.5 named them ``key_<step>`` always; a value tracked once,
    as most non-numeric values are, reads better as ``key``). The rest is kept for the
    artifact as ``{key: {step: value}}``.
    """
    split = Split()
    for key, step, value in iter_metric_points(metrics):
        name = safe_key(key)
        if is_metric(value):
            split.metrics.append((name, step, float(value)))
            continue
        text = param_text(value)
        if text is not None:
            split.params[name if step == 0 else safe_key(f"{key}_{step}")] = text
        else:
            split.leftovers.setdefault(key, {})[str(step)] = value
    return split


def split_parameters(parameters: Mapping[str, Any], prefix: str = "") -> Split:
    """Sort magnus parameters into MLflow params (``prefix`` + name) and artifact leftovers."""
    split = Split()
    for key, value in parameters.items():
        text = param_text(value)
        if text is None:
            split.leftovers[key] = value
        else:
            split.params[safe_key(f"{prefix}{key}")] = text
    return split


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    """``items`` in lists of at most ``size`` (MLflow's batch limits)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
