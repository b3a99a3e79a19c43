"""Experiment trackers: the contract, the built-in ``do-nothing`` tracker and the metric helpers.

``base`` holds the contract (``BaseExperimentTracker``) and :func:`publish_safely`; ``metrics``
reads metrics from the environment and walks their shapes; ``do_nothing`` is the built-in
tracker. The names below are what plugins import from ``magnus.tracking``.
"""

from magnus.tracking.base import BaseExperimentTracker, ExperimentTrackerError, publish_safely
from magnus.tracking.do_nothing import DoNothingTracker
from magnus.tracking.metrics import (
    TRACK_PREFIX,
    collect_environment_metrics,
    flatten_metrics,
    iter_metric_points,
    pop_environment_metrics,
)

__all__ = [
    "TRACK_PREFIX",
    "BaseExperimentTracker",
    "DoNothingTracker",
    "ExperimentTrackerError",
    "collect_environment_metrics",
    "flatten_metrics",
    "iter_metric_points",
    "pop_environment_metrics",
    "publish_safely",
]
