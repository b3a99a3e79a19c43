"""The contract every experiment tracker passes.

Subclass :class:`TrackerContract` and provide the ``experiment_tracker`` fixture:

::

    import pytest
    from magnus.testing import TrackerContract

    class TestMyTracker(TrackerContract):
        @pytest.fixture
        def experiment_tracker(self, my_tracking_server):
            return MyTracker(server_url=my_tracking_server.url)

The fixture returns a tracker ready to publish (its backend reachable). The suite checks what
the tracker contract promises -- both metric shapes are accepted, the client context is a context
manager, ``strict`` is configurable -- not what the backend stores, which only the plugin's own
tests can read back.
"""

from __future__ import annotations

import contextlib
from typing import Any

from magnus.tracking import BaseExperimentTracker, publish_safely

STEP = "contract step"


class TrackerContract:
    """Tests every experiment tracker must pass. Subclasses provide ``experiment_tracker``.

    The suite defines no fixture of its own, so it cannot shadow the fixtures of the test module
    it is used in.
    """

    def test_is_an_experiment_tracker(self, experiment_tracker: BaseExperimentTracker) -> None:
        assert isinstance(experiment_tracker, BaseExperimentTracker)
        assert experiment_tracker.service_type == "experiment_tracker"
        assert experiment_tracker.service_name

    def test_strict_is_part_of_the_configuration(
        self, experiment_tracker: BaseExperimentTracker
    ) -> None:
        assert isinstance(experiment_tracker.strict, bool)
        assert experiment_tracker.record()["strict"] == experiment_tracker.strict

    def test_publishes_flat_metrics(self, experiment_tracker: BaseExperimentTracker) -> None:
        metrics: dict[str, Any] = {"accuracy": 0.93, "epochs": 3, "optimizer": "adam"}
        experiment_tracker.publish_data(metrics, STEP)

    def test_publishes_step_wise_metrics(self, experiment_tracker: BaseExperimentTracker) -> None:
        # Steps as the run log stores them (strings) and as track_this receives them (ints).
        experiment_tracker.publish_data({"loss": {"0": 1.5, "1": 0.75, "2": 0.5}}, STEP)
        experiment_tracker.publish_data({"loss": {3: 0.25, 4: 0.125}}, STEP)

    def test_publishes_mixed_and_nested_metrics(
        self, experiment_tracker: BaseExperimentTracker
    ) -> None:
        metrics: dict[str, Any] = {
            "answer": 42.0,
            "spam": {"0": "hello", "1": "hey"},
            "config": {"lr": 0.01, "layers": [64, 32]},
            "nothing": None,
            "flag": True,
        }
        experiment_tracker.publish_data(metrics, STEP)

    def test_publishes_nothing(self, experiment_tracker: BaseExperimentTracker) -> None:
        experiment_tracker.publish_data({}, STEP)

    def test_publish_safely_reports_success(
        self, experiment_tracker: BaseExperimentTracker
    ) -> None:
        assert publish_safely(experiment_tracker, {"accuracy": 0.5}, STEP) is None

    def test_publishes_for_several_steps(self, experiment_tracker: BaseExperimentTracker) -> None:
        experiment_tracker.publish_data({"accuracy": 0.5}, "first")
        experiment_tracker.publish_data({"accuracy": 0.6}, "second")
        experiment_tracker.publish_data({"accuracy": 0.7}, "map.map_variable_placeholder.inner")

    def test_client_context_is_a_context_manager(
        self, experiment_tracker: BaseExperimentTracker
    ) -> None:
        context = experiment_tracker.client_context
        assert isinstance(context, contextlib.AbstractContextManager)
        with context:
            pass

    def test_client_context_can_be_used_again(
        self, experiment_tracker: BaseExperimentTracker
    ) -> None:
        # user code calls get_experiment_tracker_context() once per use, in one step or many
        for _ in range(2):
            with experiment_tracker.client_context:
                pass
        experiment_tracker.publish_data({"after": 1}, STEP)
