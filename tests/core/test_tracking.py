"""Experiment tracking: the contract for ``do-nothing``, failure policy and the metric helpers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from pydantic import PrivateAttr

from magnus.exceptions import ConfigurationError, MagnusError
from magnus.plugins import get_plugins
from magnus.testing.tracker import TrackerContract
from magnus.tracking import (
    TRACK_PREFIX,
    BaseExperimentTracker,
    DoNothingTracker,
    ExperimentTrackerError,
    collect_environment_metrics,
    flatten_metrics,
    iter_metric_points,
    pop_environment_metrics,
    publish_safely,
)


class TestDoNothingContract(TrackerContract):
    @pytest.fixture
    def experiment_tracker(self) -> BaseExperimentTracker:
        return DoNothingTracker()


class TestStrictDoNothingContract(TrackerContract):
    @pytest.fixture
    def experiment_tracker(self) -> BaseExperimentTracker:
        return DoNothingTracker.from_config({"strict": True})


class RecordingTracker(BaseExperimentTracker):
    """Keeps what it is sent, as points: shows the contract's shapes read alike."""

    service_name: ClassVar[str] = "test-recording"

    _points: list[tuple[str, str, int, Any]] = PrivateAttr(default_factory=list)

    def publish_data(self, metrics: Mapping[str, Any], step_internal_name: str) -> None:
        for key, step, value in iter_metric_points(metrics):
            self._points.append((step_internal_name, key, step, value))


class TestRecordingTrackerContract(TrackerContract):
    @pytest.fixture
    def experiment_tracker(self) -> BaseExperimentTracker:
        return RecordingTracker()


class BrokenTracker(BaseExperimentTracker):
    service_name: ClassVar[str] = "test-broken"

    def publish_data(self, metrics: Mapping[str, Any], step_internal_name: str) -> None:
        raise ConnectionError("tracking server unreachable")


# -------------------------------------------------------------------------------------------------
# the tracker service
# -------------------------------------------------------------------------------------------------


def test_do_nothing_is_registered() -> None:
    assert get_plugins().service_class("experiment_tracker", "do-nothing") is DoNothingTracker


def test_strict_defaults_to_false_and_is_recorded() -> None:
    assert DoNothingTracker().strict is False
    assert DoNothingTracker().record() == {
        "service_name": "do-nothing",
        "service_type": "experiment_tracker",
        "strict": False,
    }
    assert DoNothingTracker.from_config({"strict": True}).record()["strict"] is True


def test_strict_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="strict"):
        DoNothingTracker.from_config({"strict": "sometimes"})


def test_publish_data_is_required() -> None:
    class Incomplete(BaseExperimentTracker):
        service_name: ClassVar[str] = "test-incomplete"

    with pytest.raises(TypeError, match="publish_data"):
        Incomplete()  # type: ignore[abstract]


def test_client_context_defaults_to_a_null_context() -> None:
    with DoNothingTracker().client_context as inside:
        assert inside is None


# -------------------------------------------------------------------------------------------------
# publish_safely
# -------------------------------------------------------------------------------------------------


def test_publish_safely_sends_the_metrics() -> None:
    tracker = RecordingTracker()
    assert publish_safely(tracker, {"loss": {"0": 1.0, "1": 0.5}, "acc": 0.9}, "train") is None
    assert tracker._points == [
        ("train", "loss", 0, 1.0),
        ("train", "loss", 1, 0.5),
        ("train", "acc", 0, 0.9),
    ]


def test_publish_safely_warns_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="magnus.tracking"):
        message = publish_safely(BrokenTracker(), {"acc": 0.9}, "train")
    assert message is not None
    assert "'test-broken'" in message
    assert "'train'" in message
    assert "ConnectionError: tracking server unreachable" in message
    assert message in caplog.text


def test_publish_safely_raises_when_strict() -> None:
    with pytest.raises(ExperimentTrackerError, match=r"'train'.*unreachable") as caught:
        publish_safely(BrokenTracker(strict=True), {"acc": 0.9}, "train")
    assert isinstance(caught.value, MagnusError)
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_publish_safely_lets_interrupts_through() -> None:
    class Interrupted(BaseExperimentTracker):
        service_name: ClassVar[str] = "test-interrupted"

        def publish_data(self, metrics: Mapping[str, Any], step_internal_name: str) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        publish_safely(Interrupted(), {}, "step")


# -------------------------------------------------------------------------------------------------
# MAGNUS_TRACK_* collection
# -------------------------------------------------------------------------------------------------


def test_collect_keys_steps_and_values() -> None:
    environ = {
        "MAGNUS_TRACK_answer": "42.0",
        "MAGNUS_TRACK_spam_STEP_0": '"hello"',
        "MAGNUS_TRACK_spam_STEP_1": '"hey"',
        "MAGNUS_TRACK_F1": "0.5",
        "MAGNUS_TRACK_config": '{"lr": 0.01}',
        "MAGNUS_TRACK_word": "plain text",
        "MAGNUS_PRM_not_a_metric": "1",
        "PATH": "/bin",
    }
    assert collect_environment_metrics(environ) == {
        "answer": {0: 42.0},
        "spam": {0: "hello", 1: "hey"},
        "F1": {0: 0.5},
        "config": {0: {"lr": 0.01}},
        "word": {0: "plain text"},
    }


def test_collect_only_a_trailing_step_suffix_is_a_step() -> None:
    environ = {
        "MAGNUS_TRACK_LR_STEP_SIZE": "1",
        "MAGNUS_TRACK_LR_STEP_SIZE_STEP_3": "2",
        "MAGNUS_TRACK_x_STEP_": "3",
        "MAGNUS_TRACK_y_STEP_10": "4",
    }
    assert collect_environment_metrics(environ) == {
        "LR_STEP_SIZE": {0: 1, 3: 2},
        "x_STEP_": {0: 3},
        "y": {10: 4},
    }


def test_collect_nothing() -> None:
    assert collect_environment_metrics({"HOME": "/root", "MAGNUS_TRACK_": "1"}) == {}


def test_collect_leaves_the_environment() -> None:
    environ = {"MAGNUS_TRACK_a": "1"}
    collect_environment_metrics(environ)
    assert environ == {"MAGNUS_TRACK_a": "1"}


def test_pop_removes_what_it_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("MAGNUS_TRACK_loss_STEP_2", "0.25")
    monkeypatch.setenv("MAGNUS_PRM_KEEP", "1")

    assert pop_environment_metrics(os.environ) == {"loss": {2: 0.25}}
    assert not [k for k in os.environ if k.startswith(TRACK_PREFIX)]
    assert os.environ["MAGNUS_PRM_KEEP"] == "1"


# -------------------------------------------------------------------------------------------------
# flattening for user_defined_metrics
# -------------------------------------------------------------------------------------------------


def test_flatten_single_and_multiple_steps() -> None:
    series: dict[str, dict[int, Any]] = {"answer": {0: 42.0}, "spam": {1: "hey", 0: "hello"}}
    assert flatten_metrics(series) == {"answer": 42.0, "spam": {"0": "hello", "1": "hey"}}


def test_flatten_a_key_tracked_only_at_a_later_step() -> None:
    # 0.5 looked up step 0 here and crashed
    assert flatten_metrics({"late": {5: "value"}}) == {"late": "value"}


def test_flatten_orders_steps_numerically_and_accepts_string_steps() -> None:
    assert list(flatten_metrics({"x": {"10": "b", "2": "a", "0": "z"}})["x"]) == ["0", "2", "10"]


def test_flatten_nothing() -> None:
    assert flatten_metrics({}) == {}


def test_collect_then_flatten_matches_the_run_log_form() -> None:
    environ = {
        "MAGNUS_TRACK_spam_STEP_0": '"hello"',
        "MAGNUS_TRACK_spam_STEP_1": '"hey"',
        "MAGNUS_TRACK_answer": "42.0",
    }
    assert flatten_metrics(collect_environment_metrics(environ)) == {
        "spam": {"0": "hello", "1": "hey"},
        "answer": 42.0,
    }


# -------------------------------------------------------------------------------------------------
# reading metrics as points
# -------------------------------------------------------------------------------------------------


def test_points_from_both_shapes() -> None:
    metrics = {
        "flat": 1.5,
        "series": {"1": "b", "0": "a"},
        "int_series": {3: 0.3, 2: 0.2},
        "dict_value": {"lr": 0.01},
        "empty": {},
        "bool_keys": {True: 1},
    }
    assert list(iter_metric_points(metrics)) == [
        ("flat", 0, 1.5),
        ("series", 0, "a"),
        ("series", 1, "b"),
        ("int_series", 2, 0.2),
        ("int_series", 3, 0.3),
        ("dict_value", 0, {"lr": 0.01}),
        ("empty", 0, {}),
        ("bool_keys", 0, {True: 1}),
    ]
