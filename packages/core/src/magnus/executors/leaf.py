"""The leaf wrapper: what happens around every leaf step, whatever executor runs it.

It fetches parameters, pulls catalog data, runs the task (retrying up to ``max_attempts``),
records each attempt, stores the execution log, pushes catalog data, writes parameters back on
success and stores the step log. Because every executor goes through here, the run log has the
same structure wherever a pipeline ran.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TextIO, cast

from magnus import scopes
from magnus.context import RunContext, StepContext, current_step
from magnus.control_flow import loop_iteration_of
from magnus.exceptions import CatalogError, MagnusError, PluginError
from magnus.executors import reuse, step_calls
from magnus.executors.ending import reason_of
from magnus.executors.execution_log import ExecutionLog
from magnus.executors.pending import store_final_step_log
from magnus.internal_names import MAX_FILE_NAME_BYTES, branch_name_of, fit_file_name
from magnus.nodes import BaseNode, ExecutableNode
from magnus.orchestration import ATTEMPT_ENV
from magnus.parameters.sharing import SharedValueMemo
from magnus.redaction import RedactingStream, redact_exception, redactor
from magnus.runlog.base import parent_branch_name
from magnus.runlog.models import (
    FAIL,
    SUCCESS,
    DataCatalog,
    Fingerprint,
    StepAttempt,
    StepLog,
    format_duration,
    format_time,
)
from magnus.secret_parameters import as_references, resolve_references
from magnus.secrets import mask_secrets_served_in_run, recording_served
from magnus.tasks import TaskInput
from magnus.tracking import ExperimentTrackerError, flatten_metrics, publish_safely

logger = logging.getLogger(__name__)


def execution_log_name(node: BaseNode, map_variables: dict[str, Any], attempt: int) -> str:
    """``<step name, spaces as _>.execution.log`` (+ ``_<value>`` per map value, as 0.5)."""
    name = node.name.replace(" ", "_")
    if attempt > 1:
        name = f"{name}.attempt-{attempt}"
    suffix = "".join(f"_{branch_name_of(value)}" for value in map_variables.values())
    full = f"{name}.execution.log{suffix}"
    if len(full.encode("utf-8")) <= MAX_FILE_NAME_BYTES:
        return full
    # Each part shortened on its own, so the name still reads as an execution log.
    room = (MAX_FILE_NAME_BYTES - len(".execution.log")) // 2
    return f"{fit_file_name(name, room)}.execution.log{fit_file_name(suffix, room)}"


def describe_error(error: BaseException) -> str:
    """The attempt message: magnus' own errors speak for themselves; others name their type;
    a stop says what stopped it (``interrupted by SIGTERM``)."""
    if isinstance(error, MagnusError):
        return str(error)
    if not isinstance(error, Exception):
        return reason_of(error)
    return f"{type(error).__name__}: {error}"


def attempt_numbers(node: BaseNode) -> list[int]:
    """Attempts to make here: an orchestrator that retries sets ``MAGNUS_STEP_ATTEMPT``."""
    given = os.environ.get(ATTEMPT_ENV)
    if given:
        return [int(given)]
    retries = node.max_attempts if isinstance(node, ExecutableNode) else 1
    return list(range(1, retries + 1))


def record_instant_success(
    context: RunContext, node: BaseNode, step_log: StepLog, attempt: bool = True
) -> StepLog:
    """Record a step that runs nothing and succeeds: a success or fail step, a mocked or a
    reused one. Observers hear it start and end; its log is stored SUCCESS, with one instant
    attempt unless ``attempt`` is false (a re-run's reused step records none).
    """
    context.observers.before_step(step_log=step_log, node=node, context=context)
    if attempt:
        now = datetime.now()
        step_log.attempts.append(
            StepAttempt(
                attempt_number=1,
                start_time=format_time(now),
                end_time=format_time(now),
                duration=format_duration(now - now),
                status=SUCCESS,
            )
        )
    step_log.status = SUCCESS
    context.observers.after_step(step_log=step_log, node=node, context=context)
    store_final_step_log(context, step_log)
    return step_log


def execute_terminal(context: RunContext, node: BaseNode, step_log: StepLog) -> StepLog:
    """A success or fail step: one SUCCESS attempt, then the enclosing log takes its outcome."""
    record_instant_success(context, node, step_log)
    outcome = SUCCESS if node.node_type == "success" else FAIL
    context.run_log_store.update_branch_log_status(
        parent_branch_name(step_log.internal_name), context.run_id, outcome
    )
    return step_log


def execute_leaf(
    context: RunContext,
    node: BaseNode,
    step_log: StepLog,
    map_variables: dict[str, Any] | None = None,
) -> StepLog:
    """Run a task or stub step with retries and record everything in its step log."""
    map_variables = map_variables or {}
    if node.is_terminal:
        return execute_terminal(context, node, step_log)
    store = context.run_log_store
    catalog = context.catalog
    run_id = context.run_id
    parameters = scopes.read_parameters(store, run_id, step_log.internal_name)
    if logger.isEnabledFor(logging.DEBUG):
        names = ", ".join(parameters) or "none"
        logger.debug("%s: parameters read: %s", step_log.internal_name, names)
    if not context.runs_in_one_process:
        # Other processes of the run may have served secrets that this step could print.
        mask_secrets_served_in_run(context)
    parameters, secret_error = _resolve_secrets(context, parameters)
    catalog_settings = node.catalog if isinstance(node, ExecutableNode) else None

    fetched: tuple[list[DataCatalog], MagnusError | None] | None = None
    expected: Fingerprint | None = None
    if secret_error is None and reuse.reuse_wanted(context, node):
        fetched = _get_data(context, catalog_settings, step_log)
        if fetched[1] is None:
            expected = reuse.expected_fingerprint(
                context, node, parameters, map_variables, step_log.data_catalog
            )
        if expected is not None and _reused(context, node, step_log, expected):
            return step_log

    context.observers.before_step(step_log=step_log, node=node, context=context)
    step_context = StepContext(context, node, step_log, parameters, map_variables)
    token = current_step.set(step_context)
    run_parameters: dict[str, Any] = {}
    try:
        synced: list[DataCatalog] = []
        produced: dict[str, Any] = {}
        for number in attempt_numbers(node):
            # Each attempt gets its data again, as an orchestrator's fresh container must: the
            # record is the same wherever the step ran, and data that arrives late is found.
            # (The first has it already when it was got to look for an earlier result.)
            synced, get_error = fetched or _get_data(context, catalog_settings, step_log)
            fetched = None
            attempt, produced, error = _run_attempt(
                context, node, map_variables, number, secret_error or get_error
            )
            step_log.attempts.append(attempt)
            if error is None:
                break
            if not isinstance(error, Exception):
                _record_stopped(context, step_log)
                raise error
            step_log.message = attempt.message
            context.observers.on_step_error(
                step_log=step_log, node=node, error=redact_exception(error), context=context
            )

        last = step_log.attempts[-1]
        if last.status == SUCCESS and catalog_settings and catalog_settings.put:
            logger.debug("%s: catalog put %s", step_log.internal_name, catalog_settings.put)
        if last.status == SUCCESS:
            try:
                # A secret passes on as a reference to it: never recorded, never altered.
                produced = as_references(produced)
            except MagnusError as exc:
                _fail_after_success(context, node, step_log, exc)
        if last.status == SUCCESS:
            try:
                for pattern in catalog_settings.put if catalog_settings else []:
                    step_log.add_data_catalogs(catalog.put(pattern, run_id, synced_catalogs=synced))
            except (CatalogError, PluginError) as exc:
                _fail_after_success(context, node, step_log, exc)
        if last.status == SUCCESS:
            try:
                _record_metrics(context, step_log, step_context)
            except ExperimentTrackerError as exc:
                _fail_after_success(context, node, step_log, exc)
        else:
            # A failed step's metrics still help to understand it; a strict tracker has already
            # nothing more to fail.
            with contextlib.suppress(ExperimentTrackerError):
                _record_metrics(context, step_log, step_context)
        if last.status == SUCCESS:
            if scopes.on_the_run(step_log.internal_name):
                # Recorded with the step's log, at once: never the one without the other.
                run_parameters = produced
            else:
                scopes.write_parameters(store, run_id, step_log.internal_name, produced)
            step_log.status = SUCCESS
            step_log.message = ""
        else:
            step_log.status = FAIL
    finally:
        current_step.reset(token)

    _redact_step_log(step_log)
    if (
        expected is not None
        and step_log.status == SUCCESS
        and step_log.attempts[-1].fingerprint != expected
    ):
        step_log.not_reused = (
            "it read parameters or catalog data through the interaction API while it ran: what "
            "it depends on is only known afterwards, so its result is never reused"
        )
    context.observers.after_step(step_log=step_log, node=node, context=context)
    store_final_step_log(context, step_log, run_parameters)
    reuse.record_success(context, step_log)
    logger.debug("%s: record stored, %s", step_log.internal_name, step_log.status)
    return step_log


def _record_stopped(context: RunContext, step_log: StepLog) -> None:
    """Store the log of a step a signal stopped: FAIL, with the attempt it was making.

    Observers are not told of the step's end: they hear the run's, once, and close what they
    had open for it as stopped (an MLflow run KILLED, not FAILED).
    """
    step_log.status = FAIL
    step_log.message = step_log.attempts[-1].message
    _redact_step_log(step_log)
    store_final_step_log(context, step_log)


def _reused(context: RunContext, node: BaseNode, step_log: StepLog, expected: Fingerprint) -> bool:
    """Take an earlier success with the ``expected`` fingerprint, if there is one that holds;
    otherwise note on the step log why none could be taken."""
    found = reuse.find_result(context, expected)
    if isinstance(found, str):
        reason = found
    else:
        hit, earlier = found
        reason = reuse.take_result(context, node, step_log, hit, earlier, expected) or ""
        if not reason:
            record_instant_success(context, node, step_log, attempt=False)
            reuse.record_success(context, step_log)
            return True
    if reason:
        logger.warning("%s: running it: %s", step_log.internal_name, reason)
        step_log.not_reused = redactor.redact_text(reason)
    return False


def _get_data(
    context: RunContext, settings: Any, step_log: StepLog
) -> tuple[list[DataCatalog], MagnusError | None]:
    """Get the step's catalog data; record each file once, however many attempts get it."""
    synced: list[DataCatalog] = []
    if settings and settings.get:
        logger.debug("%s: catalog get %s", step_log.internal_name, settings.get)
    try:
        for pattern in settings.get if settings else []:
            synced += context.catalog.get(pattern, context.run_id)
    except (CatalogError, PluginError) as exc:
        return synced, exc
    finally:
        known = {(e.name, e.data_hash, e.stage) for e in step_log.data_catalog}
        step_log.add_data_catalogs(
            [e for e in synced if (e.name, e.data_hash, e.stage) not in known]
        )
    return synced, None


def _fail_after_success(
    context: RunContext, node: BaseNode, step_log: StepLog, error: MagnusError
) -> None:
    """The command succeeded but what follows it (catalog put, strict tracker) did not."""
    last = step_log.attempts[-1]
    last.status = FAIL
    last.message = step_log.message = redactor.redact_text(str(error))
    context.observers.on_step_error(
        step_log=step_log, node=node, error=redact_exception(error), context=context
    )


def _record_metrics(context: RunContext, step_log: StepLog, step_context: StepContext) -> None:
    """Store the step's metrics (track_this and MAGNUS_TRACK_*) and publish them once."""
    series = step_context.metrics
    if not series:
        return
    series = redactor.redact(series)
    step_log.user_defined_metrics = flatten_metrics(series)
    problem = publish_safely(context.experiment_tracker, series, step_log.internal_name)
    if problem:
        step_log.tracker_error = problem


def _redact_step_log(step_log: StepLog) -> None:
    """Mask every secret this process served in what the step log records."""
    if not redactor.active:
        return
    step_log.message = redactor.redact_text(step_log.message)
    for attempt in step_log.attempts:
        attempt.message = redactor.redact_text(attempt.message)
        attempt.parameters = as_references(attempt.parameters, strict=False)
        attempt.output_parameters = as_references(attempt.output_parameters, strict=False)
    step_log.user_defined_metrics = redactor.redact(step_log.user_defined_metrics)


# Shared parameter values found to hold no reference to a secret: not searched again.
_without_references = SharedValueMemo[bool]()


def _resolve_secrets(
    context: RunContext, parameters: dict[str, Any]
) -> tuple[dict[str, Any], MagnusError | None]:
    """The parameters with references to secrets resolved; or the error failing the step.

    Each value is searched for references once while it is the same shared value: a map's
    elements do not search the iterated list again each.
    """
    resolved = parameters
    try:
        for key, value in parameters.items():
            if _without_references.get(key, value):
                continue
            alone = {key: value}
            found = resolve_references(alone, context.secrets)
            if found is alone:
                _without_references.remember(key, value, True)
                continue
            if resolved is parameters:
                resolved = dict(parameters)
            resolved[key] = found[key]
    except MagnusError as exc:
        return parameters, exc
    return resolved, None


def _loop_iteration(context: RunContext, node: BaseNode, map_variables: dict[str, Any]) -> Any:
    """The iteration of the loop around the step (``None`` outside loops)."""
    if not map_variables or context.dag is None:
        return None
    return loop_iteration_of(context.dag, node.internal_name, map_variables)


def _run_attempt(
    context: RunContext,
    node: BaseNode,
    map_variables: dict[str, Any],
    number: int,
    get_error: MagnusError | None,
) -> tuple[StepAttempt, dict[str, Any], BaseException | None]:
    step_context = current_step.get()
    assert step_context is not None
    # Each attempt starts from the run's parameters as they were before the step.
    task_input = TaskInput(
        step_name=node.internal_name,
        parameters=dict(step_context.parameters),
        map_variables=map_variables,
        loop_iteration=_loop_iteration(context, node, map_variables),
        iterated=reuse.iterated_parameters(context, node),
    )
    task_input.store_file = functools.partial(_store_file, context, step_context.step_log)
    task_input.answer_call = step_calls.answer
    produced: dict[str, Any] = {}
    error: BaseException | None = get_error
    start = datetime.now()
    log: ExecutionLog | None = None
    task = node.task() if isinstance(node, ExecutableNode) else None
    if get_error is None and task is not None:
        log = ExecutionLog()
        # Everything a task prints goes through masking streams: to the log and to the console.
        consoles = _consoles()
        task_input.console_out, task_input.console_err = (cast(IO[str], c) for c in consoles)
        output = RedactingStream(cast(TextIO, log))
        task_input.output = cast(IO[str], output)
        logger.debug("%s: task started (attempt %d)", node.internal_name, number)
        try:
            # The names of the secrets the task is served are recorded for the run's other
            # processes, which mask them too.
            with recording_served(context):
                produced = task.execute(task_input)
        except Exception as exc:
            error = exc
            if isinstance(exc, MagnusError):
                output.write(f"{exc}\n")
        except BaseException as exc:
            # Stopped by a signal: the attempt is recorded as far as it got, with its output;
            # the caller then lets the stop go on.
            error = exc
        finally:
            output.close()
            for console in consoles:
                console.release()
        for key, points in task_input.metrics.items():
            step_context.metrics.setdefault(key, {}).update(points)
        _count_parameters_read(task_input, step_context)
    end = datetime.now()
    if log is not None:
        outcome = f"failed: {describe_error(error)}" if error is not None else "succeeded"
        logger.debug("%s: task ended (attempt %d) %s", node.internal_name, number, outcome)
    attempt = StepAttempt(
        attempt_number=number,
        start_time=format_time(start),
        end_time=format_time(end),
        duration=format_duration(end - start),
        status=FAIL if error is not None else SUCCESS,
        # Observers see this attempt as it is: secrets masked, or referenced in parameters.
        message=redactor.redact_text(describe_error(error)) if error is not None else "",
        parameters=as_references(task_input.consumed, strict=False),
        output_parameters=as_references(produced, strict=False),
    )
    attempt.fingerprint = reuse.fingerprint_of(
        context, node, map_variables, attempt.parameters, step_context.step_log.data_catalog
    )
    if log is not None:
        _store_execution_log(context, node, map_variables, number, log)
    return attempt, produced, error


# The masking streams over the console last made (each knows the stream it masks).
_kept_consoles: list[RedactingStream] = []


def _consoles() -> list[RedactingStream]:
    """Masking streams over ``sys.stdout`` and ``sys.stderr``, kept while those are the same:
    each attempt releases what they hold back, so the next starts as a new pair would."""
    out, err = sys.stdout, sys.stderr
    kept = _kept_consoles
    other = not kept or kept[0].wrapped is not out or kept[1].wrapped is not err
    if other or any(stream.closed for stream in kept):
        kept[:] = [RedactingStream(out), RedactingStream(err)]
    return kept


def _count_parameters_read(task_input: TaskInput, step_context: StepContext) -> None:
    """Parameters the task read through the interaction API were consumed too."""
    read = step_context.parameters_read
    if not read:
        return
    scope = {k: v for k, v in step_context.parameters.items() if k not in task_input.iterated}
    names = list(scope) if step_calls.ALL_PARAMETERS in read else [k for k in read if k in scope]
    for name in names:
        task_input.consumed.setdefault(name, scope[name])
    read.clear()


def _store_file(context: RunContext, step_log: StepLog, path: Path, name: str) -> str:
    """Put a file a task made into the run's catalog, recorded on its step; its catalog name."""
    entry = context.catalog.put_file(path, name, context.run_id)
    step_log.add_data_catalogs([entry])
    return entry.name


def _store_execution_log(
    context: RunContext,
    node: BaseNode,
    map_variables: dict[str, Any],
    attempt: int,
    log: ExecutionLog,
) -> None:
    step_context = current_step.get()
    assert step_context is not None
    name = execution_log_name(node, map_variables, attempt)
    try:
        entry = log.store(context.catalog, name, context.run_id)
        step_context.step_log.add_data_catalogs([entry])
    except CatalogError as exc:
        logger.warning("Could not store the execution log of %s: %s", node.internal_name, exc)
    finally:
        log.discard()
