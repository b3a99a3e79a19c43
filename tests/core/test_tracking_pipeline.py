"""Metrics from steps: track_this and MAGNUS_TRACK_*, published through the tracker."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from magnus import Pipeline, PythonTask, ShellTask, hookimpl
from magnus.plugins import get_plugins
from magnus.tracking import BaseExperimentTracker

STEPS = """
import magnus


def train():
    for epoch, loss in enumerate([0.9, 0.5, 0.2]):
        magnus.track_this(step=epoch, loss=loss)
    magnus.track_this(accuracy=0.75)
    magnus.track_this(step=3, only_later=1)


def failing():
    magnus.track_this(attempted=1)
    raise RuntimeError("no")
"""


class RecordingTracker(BaseExperimentTracker):
    service_name: ClassVar[str] = "recording"
    published: ClassVar[list[tuple[str, Any]]] = []
    fail: bool = False

    def publish_data(self, metrics: Any, step_internal_name: str) -> None:
        if self.fail:
            raise ConnectionError("tracking server down")
        self.published.append((step_internal_name, dict(metrics)))


class _Provider:
    @hookimpl
    def register_experiment_trackers(self) -> list[type]:
        return [RecordingTracker]


@pytest.fixture
def tracker_plugin() -> Any:
    plugins = get_plugins()
    plugins.register(_Provider(), "recording-tracker")
    RecordingTracker.published.clear()
    yield RecordingTracker
    plugins.unregister("recording-tracker")


def _config(project: Path, **config: Any) -> str:
    import yaml

    (project / "t.yaml").write_text(
        yaml.safe_dump({"experiment_tracker": {"type": "recording", "config": config}})
    )
    return "t.yaml"


def test_metrics_are_recorded_and_published_once_per_step(
    project: Path, user_module: Any, tracker_plugin: Any
) -> None:
    user_module("tracked", STEPS)
    run_log = Pipeline(
        steps=[
            PythonTask(name="train", function="tracked.train"),
            ShellTask(
                name="shell",
                command="export MAGNUS_TRACK_F1=0.5 MAGNUS_TRACK_loss_STEP_2=0.1 MAGNUS_TRACK_note=hi",
            ),
        ]
    ).execute(configuration_file=_config(project), run_id="metrics")
    assert run_log is not None and run_log.status == "SUCCESS"
    assert run_log.steps["train"].user_defined_metrics == {
        "loss": {"0": 0.9, "1": 0.5, "2": 0.2},
        "accuracy": 0.75,
        "only_later": 1,  # 0.5 crashed on a key tracked only at a non-zero step
    }
    assert run_log.steps["shell"].user_defined_metrics == {"F1": 0.5, "loss": 0.1, "note": "hi"}
    published = dict(tracker_plugin.published)
    assert list(published) == ["train", "shell"]
    assert published["train"]["loss"] == {0: 0.9, 1: 0.5, 2: 0.2}
    assert published["shell"] == {"F1": {0: 0.5}, "loss": {2: 0.1}, "note": {0: "hi"}}


def test_a_failing_tracker_warns_and_loses_nothing(
    project: Path, user_module: Any, tracker_plugin: Any, caplog: Any
) -> None:
    user_module("tracked", STEPS)
    run_log = Pipeline(steps=[PythonTask(name="train", function="tracked.train")]).execute(
        configuration_file=_config(project, fail=True), run_id="tracker-down"
    )
    assert run_log is not None and run_log.status == "SUCCESS"
    train = run_log.steps["train"]
    assert train.user_defined_metrics["accuracy"] == 0.75
    assert "tracking server down" in train.tracker_error
    assert "could not publish the metrics of step 'train'" in caplog.text


def test_a_strict_tracker_fails_the_step(
    project: Path, user_module: Any, tracker_plugin: Any
) -> None:
    user_module("tracked", STEPS)
    run_log = Pipeline(steps=[PythonTask(name="train", function="tracked.train")]).execute(
        configuration_file=_config(project, fail=True, strict=True), run_id="strict"
    )
    assert run_log is not None and run_log.status == "FAIL"
    train = run_log.steps["train"]
    assert train.status == "FAIL"
    assert "tracking server down" in train.attempts[-1].message
    assert train.user_defined_metrics["accuracy"] == 0.75
    assert "score" not in run_log.parameters


def test_a_failed_steps_metrics_are_kept(
    project: Path, user_module: Any, tracker_plugin: Any
) -> None:
    user_module("tracked", STEPS)
    run_log = Pipeline(steps=[PythonTask(name="bad", function="tracked.failing")]).execute(
        configuration_file=_config(project), run_id="failed-metrics"
    )
    assert run_log is not None
    assert run_log.steps["bad"].user_defined_metrics == {"attempted": 1}
    assert tracker_plugin.published == [("bad", {"attempted": {0: 1}})]
