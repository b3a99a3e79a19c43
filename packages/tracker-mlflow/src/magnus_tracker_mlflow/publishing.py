"""Sending what a run or a step produced to its MLflow run: metrics, params, JSON artifacts.

:mod:`.values` decides what becomes a metric, a param or part of an artifact; this module sends
them, in that order, and keeps what MLflow cannot hold (a second value for a param) in the
run's JSON artifact instead of failing the step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from magnus_tracker_mlflow import values
from magnus_tracker_mlflow.client import BoundedClient
from magnus_tracker_mlflow.runs import RunState

PARAMETERS_ARTIFACT = "parameters.json"
METRICS_ARTIFACT = "metrics.json"


def artifact_path(step_name: str, name: str, nested_runs: bool) -> str:
    """A step's own artifact file: in its child run, or under ``steps/`` of the parent."""
    if nested_runs:
        return name
    return f"steps/{values.safe_key(step_name).replace('/', '_')}/{name}"


def log_split(
    client: BoundedClient, state: RunState, run_id: str, split: values.Split, artifact: str
) -> None:
    """Log ``split`` to ``run_id``: metrics, then params, then the JSON artifact.

    Metrics go first and on their own: they are what users look for, and a param the server
    refuses must not take them down with it. A param already logged with another value
    (MLflow params are immutable) joins the artifact instead of failing the step.
    """
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import RestException

    if split.metrics:
        stamp = int(time.time() * 1000)
        metrics = [Metric(key, value, stamp, step) for key, step, value in split.metrics]
        for batch in values.chunks(metrics, values.MAX_METRICS_PER_BATCH):
            client.call("log metrics", "log_batch", run_id, metrics=batch)

    logged = state.params.setdefault(run_id, {})
    leftovers = dict(split.leftovers)
    fresh: list[tuple[str, str]] = []
    for key, text in split.params.items():
        if key not in logged:
            fresh.append((key, text))
        elif logged[key] != text:
            leftovers[key] = text
    for batch in values.chunks(fresh, values.MAX_PARAMS_PER_BATCH):
        try:
            params = [Param(key, text) for key, text in batch]
            client.call("log params", "log_batch", run_id, params=params)
        except RestException as exc:
            if getattr(exc, "error_code", "") != "INVALID_PARAMETER_VALUE":
                raise
            # Another process logged one of them with another value first.
            leftovers.update(dict(batch))
            continue
        logged.update(dict(batch))

    if leftovers:
        document = state.artifacts.setdefault((run_id, artifact), {})
        for key, value in leftovers.items():
            if isinstance(value, dict) and isinstance(document.get(key), dict):
                document[key].update(value)  # more steps of the same tracked series
            else:
                document[key] = value
        client.call(f"write {artifact}", "log_dict", run_id, jsonable(document), artifact)


def jsonable(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` as JSON can hold it: what JSON cannot encode becomes its text."""
    return dict(json.loads(json.dumps(document, default=str)))
