"""The hook implementations magnus loads through the ``magnus`` entry point ``mlflow``.

The provider hook contributes :class:`~magnus_tracker_mlflow.tracker.MLflowTracker`. The
observer hooks open and close MLflow runs around the run and each step; they are called for
every run in every process, so each acts only when the run's tracker is an ``MLflowTracker``.

An observer never changes a run's outcome (magnus isolates them), so a failure here is logged
and the run goes on; the run log keeps every metric whatever MLflow holds. Importing this
module imports neither mlflow nor the tracker: both wait until a run uses ``type: mlflow``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from magnus import hookimpl

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.nodes import BaseNode
    from magnus.runlog.models import RunLog, StepLog
    from magnus.tracking import BaseExperimentTracker
    from magnus_tracker_mlflow.tracker import MLflowTracker

# Under "magnus" so that ``--log-level`` and magnus' console handler apply to these messages.
logger = logging.getLogger("magnus.mlflow")


@hookimpl
def register_experiment_trackers() -> list[type[BaseExperimentTracker]]:
    """The ``mlflow`` experiment tracker."""
    from magnus_tracker_mlflow.tracker import MLflowTracker

    return [MLflowTracker]


def _ours(context: RunContext) -> MLflowTracker | None:
    """The run's tracker when it is ours; the check costs nothing for other trackers."""
    tracker = context.experiment_tracker
    if tracker.service_name != "mlflow":
        return None
    from magnus_tracker_mlflow.tracker import MLflowTracker

    return tracker if isinstance(tracker, MLflowTracker) else None


@contextlib.contextmanager
def _reporting(what: str) -> Iterator[None]:
    """Turn a failure into one warning that says what MLflow will miss."""
    from magnus_tracker_mlflow.tracker import MLflowUnavailableError

    try:
        yield
    except MLflowUnavailableError as exc:
        # The tracker warned when the server first failed; saying it again per call is noise.
        logger.debug("MLflow: could not %s: %s", what, exc)
    except Exception as exc:
        logger.warning("MLflow: could not %s: %s: %s", what, type(exc).__name__, exc)


@hookimpl
def before_run(run_log: RunLog, context: RunContext) -> None:
    """Create the run's MLflow parent run and record its id in ``run_config``."""
    tracker = _ours(context)
    if tracker is not None:
        with _reporting(f"create the MLflow run of magnus run {context.run_id!r}"):
            tracker.start_tracking(run_log, context)


@hookimpl
def before_step(step_log: StepLog, node: BaseNode, context: RunContext) -> None:
    """Create the step's child run and note its id on the step log."""
    tracker = _ours(context)
    if tracker is not None:
        with _reporting(f"create the MLflow run of step {step_log.internal_name!r}"):
            tracker.start_step(step_log, node, context)


@hookimpl
def on_step_error(step_log: StepLog, error: BaseException, context: RunContext) -> None:
    """Tag the step's run with what went wrong."""
    tracker = _ours(context)
    if tracker is not None:
        with _reporting(f"tag the error of step {step_log.internal_name!r}"):
            tracker.note_step_error(step_log, error)


@hookimpl
def after_step(step_log: StepLog, node: BaseNode, context: RunContext) -> None:
    """Log the step's outputs and close its run with the step's status."""
    tracker = _ours(context)
    if tracker is not None:
        with _reporting(f"close the MLflow run of step {step_log.internal_name!r}"):
            tracker.finish_step(step_log, node, context)


@hookimpl
def after_run(context: RunContext) -> None:
    """Give the parent run the magnus run's status and close it."""
    tracker = _ours(context)
    if tracker is not None:
        with _reporting(f"close the MLflow run of magnus run {context.run_id!r}"):
            # The run-level record says all it needs; naming ``run_log`` would have magnus
            # read the whole run back for every run, tracked by MLflow or not.
            run_log = context.run_log_store.get_run_log_by_id(context.run_id, full=False)
            tracker.finish_tracking(run_log, context)
