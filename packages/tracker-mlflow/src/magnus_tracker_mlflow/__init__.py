"""An MLflow experiment tracker for magnus: ``experiment_tracker: {type: mlflow}``.

``MLflowTracker`` is loaded on first use, so that loading the plugin (which magnus does on
every command) does not load the tracker, let alone mlflow.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.1"
__all__ = ["MLflowTracker", "MLflowUnavailableError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from magnus_tracker_mlflow import tracker

        return getattr(tracker, name)
    raise AttributeError(f"module 'magnus_tracker_mlflow' has no attribute {name!r}")
