"""The MLflow tracker on its own: configuration, the tracker contract, what reaches the server."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.mlflow_server import artifact_json, history, runs_by_name
from fixtures.servers import free_port
from magnus_tracker_mlflow.tracker import MLflowTracker, MLflowUnavailableError

from magnus.exceptions import ConfigurationError
from magnus.plugins import get_plugins
from magnus.testing import TrackerContract
from magnus.tracking import BaseExperimentTracker, ExperimentTrackerError, publish_safely


class TestMLflowTrackerContract(TrackerContract):
    @pytest.fixture
    def experiment_tracker(self, make_tracker: Callable[..., MLflowTracker]) -> MLflowTracker:
        return make_tracker()


# ------------------------------------------------------------------ configuration


def test_registered_as_mlflow() -> None:
    assert get_plugins().service_class("experiment_tracker", "mlflow") is MLflowTracker


def test_server_url_is_the_0_5_name_of_tracking_uri(mlflow_env: dict[str, str]) -> None:
    tracker = MLflowTracker.from_config({"server_url": "http://127.0.0.1:5000"})
    assert tracker.tracking_uri == tracker.uri == "http://127.0.0.1:5000"
    same = {"server_url": "http://h:1", "tracking_uri": "http://h:1"}
    assert MLflowTracker.from_config(same).uri == "http://h:1"
    with pytest.raises(ConfigurationError, match="not both"):
        MLflowTracker.from_config({"server_url": "http://h:1", "tracking_uri": "http://h:2"})


def test_defaults_and_record(mlflow_env: dict[str, str]) -> None:
    tracker = MLflowTracker.from_config({"tracking_uri": "https://me:s3cret@mlflow.example:8443"})
    assert (tracker.nested_runs, tracker.autolog, tracker.strict) == (True, False, False)
    assert (tracker.request_timeout, tracker.max_retries, tracker.experiment_name) == (10, 2, None)
    recorded = tracker.record()
    assert recorded["service_name"] == "mlflow"
    assert recorded["tracking_uri"] == "https://me:***@mlflow.example:8443"
    assert "s3cret" not in str(recorded)


def test_bad_configuration_is_refused(
    mlflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="unknown key 'server'"):
        MLflowTracker.from_config({"tracking_uri": "http://h:1", "server": "x"})
    with pytest.raises(ConfigurationError, match="request_timeout"):
        MLflowTracker.from_config({"tracking_uri": "http://h:1", "request_timeout": 0})
    with pytest.raises(ConfigurationError, match="MLFLOW_TRACKING_URI"):
        MLflowTracker.from_config({})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert MLflowTracker.from_config({}).uri == "http://from-env:5000"


def test_http_settings_configuration_then_environment_then_defaults(
    mlflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(mlflow_env):
        monkeypatch.delenv(name)
    defaults = MLflowTracker(tracking_uri="http://h:1")._http_settings()
    assert defaults == {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    exported = MLflowTracker(tracking_uri="http://h:1")._http_settings()
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in exported  # the user's 0 stands
    configured = MLflowTracker(tracking_uri="http://h:1", request_timeout=5)._http_settings()
    assert configured["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "5"


def test_loading_the_plugin_imports_no_mlflow() -> None:
    code = (
        "import sys; from magnus.plugins import get_plugins; "
        "cls = get_plugins().service_class('experiment_tracker', 'mlflow'); "
        "cls(tracking_uri='http://h:1'); "
        "assert 'mlflow' not in sys.modules, 'mlflow imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ what reaches the server


def test_published_values_reach_a_child_run(
    make_tracker: Callable[..., MLflowTracker],
    mlflow_client: Any,
    mlflow_experiment: str,
    tmp_path: Path,
) -> None:
    tracker = make_tracker()
    tracker.publish_data(
        {
            "loss": {"0": 1.5, "1": 0.75, "2": 0.5},
            "epochs": 3,
            "optimizer": "adam",
            "config": {"layers": [64, 32]},
        },
        "train",
    )
    tracker.publish_data({"loss": {3: 0.25}, "optimizer": "sgd"}, "train")

    runs = runs_by_name(mlflow_client, mlflow_experiment)
    assert len(runs) == 2
    child = runs["train"]
    (parent_name,) = set(runs) - {"train"}
    parent = runs[parent_name]
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.info.experiment_id == parent.info.experiment_id
    assert history(mlflow_client, child.info.run_id, "loss") == [
        (0, 1.5),
        (1, 0.75),
        (2, 0.5),
        (3, 0.25),
    ]
    assert history(mlflow_client, child.info.run_id, "epochs") == [(0, 3.0)]
    # params are immutable: the second, different value joins the JSON artifact
    assert child.data.params == {"optimizer": "adam"}
    document = artifact_json(mlflow_client, child.info.run_id, "metrics.json", tmp_path)
    assert document == {"config": {"0": {"layers": [64, 32]}}, "optimizer": "sgd"}
    assert parent.data.metrics == {}


def test_client_context_makes_the_run_active_and_restores_mlflow(
    make_tracker: Callable[..., MLflowTracker],
    mlflow_client: Any,
    mlflow_experiment: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://users-own-server:5000")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")
    before = dict(os.environ)
    tracker = make_tracker()
    with tracker.client_context as run:
        assert mlflow.active_run() is not None
        assert mlflow.active_run().info.run_id == run.info.run_id
        assert mlflow.get_tracking_uri() == tracker.uri
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"  # bounded inside too
        mlflow.log_metric("direct", 2.5, step=4)
        with tracker.client_context as again:  # nested use: the same run, still active
            assert again.info.run_id == run.info.run_id
        assert mlflow.active_run().info.run_id == run.info.run_id
    assert mlflow.active_run() is None
    assert dict(os.environ) == before
    assert mlflow.get_tracking_uri() == "http://users-own-server:5000"
    assert "View run" not in capsys.readouterr().out  # the tracker's calls print nothing

    (held,) = runs_by_name(mlflow_client, mlflow_experiment).values()
    assert held.info.run_id == run.info.run_id
    assert held.info.status == "RUNNING"  # magnus closes it, not the user's block
    assert history(mlflow_client, held.info.run_id, "direct") == [(4, 2.5)]


def test_without_nesting_everything_goes_to_the_parent_run(
    make_tracker: Callable[..., MLflowTracker], mlflow_client: Any, mlflow_experiment: str
) -> None:
    tracker = make_tracker(nested_runs=False)
    tracker.publish_data({"accuracy": 0.5}, "first")
    tracker.publish_data({"accuracy": {"1": 0.7}}, "second")
    (parent,) = runs_by_name(mlflow_client, mlflow_experiment).values()
    assert history(mlflow_client, parent.info.run_id, "accuracy") == [(0, 0.5), (1, 0.7)]


# ------------------------------------------------------------------ an unreachable server


@pytest.fixture
def nowhere(mlflow_env: dict[str, str]) -> str:
    """A tracking URI where nothing listens (mlflow imported first: the calls are timed)."""
    import mlflow.tracking  # noqa: F401

    return f"http://127.0.0.1:{free_port()}"


def test_an_unreachable_server_fails_fast_and_clearly(
    nowhere: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = MLflowTracker(tracking_uri=nowhere, max_retries=0)
    started = time.monotonic()
    with pytest.raises(MLflowUnavailableError, match="could not be reached"):
        tracker.publish_data({"accuracy": 0.5}, "train")
    assert time.monotonic() - started < 5
    assert "could not be reached" in caplog.text and nowhere in caplog.text

    # Not asked again for a while: a pipeline does not wait for it at every step.
    started = time.monotonic()
    message = publish_safely(tracker, {"accuracy": 0.6}, "next")
    assert time.monotonic() - started < 0.5
    assert message is not None and "not asked" in message and "could not publish" in message

    strict = MLflowTracker(tracking_uri=nowhere, max_retries=0, strict=True)
    with pytest.raises(ExperimentTrackerError, match="could not be reached"):
        publish_safely(strict, {"accuracy": 0.5}, "train")


def test_client_context_without_a_server(nowhere: str, caplog: pytest.LogCaptureFixture) -> None:
    import mlflow

    with (
        caplog.at_level(logging.WARNING),
        MLflowTracker(tracking_uri=nowhere).client_context as run,
    ):
        assert run is None
        assert mlflow.active_run() is None
    assert "could not be started" in caplog.text
    with (
        pytest.raises(ExperimentTrackerError, match="could not be started"),
        MLflowTracker(tracking_uri=nowhere, strict=True).client_context,
    ):
        pass


def test_tracker_is_a_service(make_tracker: Callable[..., MLflowTracker]) -> None:
    tracker: BaseExperimentTracker = make_tracker(strict=True)
    assert tracker.record()["strict"] is True


def test_a_server_that_does_not_answer_is_bounded_by_the_timeout(
    mlflow_env: dict[str, str],
) -> None:
    import socket

    # Accepts connections (the kernel's backlog does) and never answers a request.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        tracker = MLflowTracker(tracking_uri=uri, request_timeout=1, max_retries=0)
        started = time.monotonic()
        message = publish_safely(tracker, {"accuracy": 0.5}, "train")
        took = time.monotonic() - started
    assert message is not None and "could not be reached" in message and "Timeout" in message
    assert took < 5


def test_autolog_is_enabled_once_without_models(
    make_tracker: Callable[..., MLflowTracker], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    calls: list[dict[str, Any]] = []
    # Recorded, not run: real autologging would patch every ML library of the test process.
    monkeypatch.setattr(mlflow, "autolog", lambda **kwargs: calls.append(kwargs))
    tracker = make_tracker(autolog=True)
    for _ in range(2):
        with tracker.client_context as run:
            assert run is not None
    assert calls == [{"log_models": False, "silent": True}]
    with make_tracker().client_context:
        pass
    assert len(calls) == 1
