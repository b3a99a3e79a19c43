"""Ending what a stopped process leaves open: nothing stays PROCESSING after a clean stop.

When a run, a branch or a step stops without reaching its end -- interrupted by SIGINT or
SIGTERM, or magnus itself failed -- every record that process had open (the run, step logs and
branch logs still PROCESSING or CREATED) is marked FAIL with the reason, so the run log says what
happened instead of claiming the work is still going. Records that ended keep what they say: a
re-run reuses what succeeded.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING

from magnus.exceptions import MagnusError, RunInterrupted
from magnus.runlog.models import FAIL, TERMINAL_STATUSES, BranchLog, RunLog, StepLog

if TYPE_CHECKING:
    from magnus.runlog.base import BaseRunLogStore

logger = logging.getLogger(__name__)


#: how the message of a run, branch or step stopped by a signal starts
INTERRUPTED = "interrupted by "


def interrupted(message: str) -> bool:
    """Whether a record's message says a signal stopped it (``interrupted by SIGTERM``)."""
    return message.startswith(INTERRUPTED)


def reason_of(error: BaseException) -> str:
    """Why a process stopped, as the run log records it."""
    if isinstance(error, RunInterrupted):
        return str(error)
    if isinstance(error, KeyboardInterrupt):
        return f"{INTERRUPTED}SIGINT"
    if isinstance(error, MagnusError):
        return f"magnus stopped: {error}"
    return f"magnus stopped: {type(error).__name__}: {error}"


def _open(status: str) -> bool:
    return status not in TERMINAL_STATUSES


def close_open_records(
    store: BaseRunLogStore, run_id: str, message: str, *, branch: str = "", step: str = ""
) -> list[str]:
    """Mark FAIL with ``message`` every open step and branch log at and below the scope.

    The scope is the step named ``step``, else the branch named ``branch`` (``""``: the whole
    run; the run's own status is :func:`end_run`'s). Returns the internal names it closed.
    """
    root: RunLog | BranchLog | StepLog = (
        store.get_step_log(step, run_id, full=True)
        if step
        else store.get_branch_log(branch, run_id, full=True)
    )
    closed: list[str] = []
    pending: list[RunLog | BranchLog | StepLog] = [root]
    while pending:
        record = pending.pop()
        if isinstance(record, StepLog):
            pending.extend(record.branches.values())
            if _open(record.status):
                record.status, record.message = FAIL, message
                store.add_step_log(record.model_copy(update={"branches": {}}), run_id)
                closed.append(record.internal_name)
            continue
        pending.extend(record.steps.values())
        if isinstance(record, BranchLog) and _open(record.status):
            record.status, record.message = FAIL, message
            store.add_branch_log(record.model_copy(update={"steps": {}}), run_id)
            closed.append(record.internal_name)
    return closed


def _takes_message(store: BaseRunLogStore) -> bool:
    # A store written against the contract before runs had a message still ends runs FAIL.
    parameters = inspect.signature(store.update_run_log_status).parameters
    return "message" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def end_run(store: BaseRunLogStore, run_id: str, error: BaseException) -> str:
    """Close everything the run has open and end it FAIL with the reason; returns the reason.

    A run that already ended (its success or fail step ran before the stop) keeps its status.
    Failing to write is logged, not raised: the error that stopped the run matters more.
    """
    message = reason_of(error)
    try:
        close_open_records(store, run_id, message)
    except Exception as exc:
        logger.warning("Could not close what run %s had open (%s): %s", run_id, message, exc)
    try:
        ended = not _open(store.get_run_log_by_id(run_id, full=False).status)
    except Exception:
        ended = False  # what cannot be read is ended below: FAIL is the truth either way
    if ended:
        return message
    try:
        if _takes_message(store):
            store.update_run_log_status(run_id, FAIL, message)
        else:
            store.update_run_log_status(run_id, FAIL)
    except Exception as exc:
        logger.warning("Could not record that run %s stopped (%s): %s", run_id, message, exc)
    return message


def end_scope(
    store: BaseRunLogStore, run_id: str, error: BaseException, *, branch: str = "", step: str = ""
) -> str:
    """Close what a process running one branch or step of a run has open; returns the reason.

    For the processes an orchestrator (or parallel branches) starts: the run itself goes on, or
    is ended by the process that runs its last step.
    """
    message = reason_of(error)
    try:
        close_open_records(store, run_id, message, branch=branch, step=step)
    except Exception as exc:
        logger.warning("Could not record that %s stopped (%s): %s", step or branch, message, exc)
    return message
