"""Fixtures of the MLflow tracker's tests: trackers on the session's MLflow server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fixtures.mlflow_server import MlflowServer
from magnus_tracker_mlflow.tracker import MLflowTracker


@pytest.fixture
def make_tracker(
    mlflow_server: MlflowServer, mlflow_env: dict[str, str], mlflow_experiment: str
) -> Callable[..., MLflowTracker]:
    """An MLflow tracker on the session's server and the test's experiment."""

    def make(**settings: Any) -> MLflowTracker:
        values: dict[str, Any] = {
            "tracking_uri": mlflow_server.url,
            "experiment_name": mlflow_experiment,
        }
        values.update(settings)
        return MLflowTracker.from_config(values)

    return make
