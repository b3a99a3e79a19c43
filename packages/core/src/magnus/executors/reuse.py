"""Reuse by fingerprint: a step whose fingerprint matches an earlier success does not run again.

A step's fingerprint (:mod:`magnus.fingerprints`) digests everything that decides its result. With
reuse on for a step (its ``cache: true``, or ``--reuse``/the configuration's ``reuse`` and no
``cache: false``), the leaf wrapper computes it before running -- the parameters the task will
consume, the data it got from the catalog -- and asks the run-log store's index for an earlier
step that succeeded with it. A hit is taken only when it still holds: the earlier step log is
there, SUCCESS, with that fingerprint, and every file it put in the catalog is still there with
the hash it recorded. Then the step's produced parameters and catalog data are taken over (the
data copied into this run's catalog and, for files its ``put`` patterns name, into the compute
data folder), and its log says where they came from. Anything else is a miss, and the step runs:
running again is always correct, reusing wrongly never is.

What cannot be known before a step runs cannot be looked up: a python function that reads
parameters or catalog data through the interaction API records them after it ran, so its
fingerprint never matches one computed beforehand, and it runs every time (its log says why).
"""

from __future__ import annotations

import fnmatch
import glob
import logging
from datetime import datetime
from typing import Any

from magnus import scopes
from magnus.catalog.paths import is_execution_log
from magnus.composites import enclosing_maps
from magnus.context import RunContext
from magnus.exceptions import (
    CatalogError,
    MagnusError,
    PluginError,
    RunLogNotFoundError,
    RunLogStoreError,
    StepLogNotFoundError,
)
from magnus.fingerprints import code_details, definition_digest, step_fingerprint
from magnus.nodes import BaseNode, ExecutableNode, TaskNode
from magnus.runlog.fingerprint_index import FingerprintHit
from magnus.runlog.models import (
    SUCCESS,
    DataCatalog,
    Fingerprint,
    StepAttempt,
    StepLog,
    format_duration,
    format_time,
)
from magnus.secret_parameters import as_references
from magnus.tasks import TaskInput

logger = logging.getLogger(__name__)


def reuse_wanted(context: RunContext, node: BaseNode) -> bool:
    """Whether this step may be reused: its own ``cache``, else the run's ``reuse``."""
    cache = node.cache if isinstance(node, ExecutableNode) else None
    return context.reuse if cache is None else cache


def iterated_parameters(context: RunContext, node: BaseNode) -> set[str]:
    """The lists enclosing maps iterate on: recorded once on the map, not in every attempt."""
    if context.dag is None or "." not in node.internal_name:
        return set()
    return {m.iterate_on for m in enclosing_maps(context.dag, node.internal_name)}


def fingerprint_of(
    context: RunContext,
    node: BaseNode,
    map_variables: dict[str, Any],
    consumed: dict[str, Any],
    data_catalog: list[DataCatalog],
) -> Fingerprint:
    """The fingerprint of an attempt that consumed ``consumed`` (as the attempt records it:
    secrets as references) after the step's catalog transfers ``data_catalog``."""
    command_type, command, definition, definition_hash = _static_parts(node)
    fingerprint = step_fingerprint(
        command_type=command_type,
        command=command,
        definition=definition,
        definition_hash=definition_hash,
        parameters=consumed,
        map_variables=map_variables,
        inputs=[(e.name, e.data_hash) for e in data_catalog if e.stage == "get"],
        environment=context.environment or None,
    )
    _record_code_details(context, fingerprint.code, command_type, command)
    return fingerprint


_StaticParts = tuple[str | None, str | None, dict[str, Any], str]
# node id -> (the node, held so that its id is not reused; what of its fingerprint it decides
# alone): a run's steps do not change while it runs, and a map's elements share theirs.
_static: dict[int, tuple[BaseNode, _StaticParts]] = {}
_STATIC_LIMIT = 4096


def _static_parts(node: BaseNode) -> _StaticParts:
    """The step's command type, command, definition and the definition's digest."""
    known = _static.get(id(node))
    if known is not None and known[0] is node:
        return known[1]
    task = node.task() if isinstance(node, ExecutableNode) else None
    definition = node.definition()
    parts = (
        node.command_type if isinstance(node, TaskNode) else None,
        task.command if task is not None else None,
        definition,
        definition_digest(definition),
    )
    if len(_static) >= _STATIC_LIMIT:
        _static.clear()  # a mocked run's patched copies are new nodes per element
    _static[id(node)] = (node, parts)
    return parts


# store id -> (the store, held so that its id is not reused; the code digests recorded in it)
_details_recorded: dict[int, tuple[object, set[str]]] = {}


def _record_code_details(
    context: RunContext, code: str, command_type: str | None, command: str | None
) -> None:
    """Keep what a code digest was made of, once per store and digest in this process, so that
    ``magnus explain`` can name the function that changed."""
    store = context.run_log_store
    recorded = _details_recorded.setdefault(id(store), (store, set()))[1]
    if code in recorded:
        return
    recorded.add(code)
    details = code_details(command_type, command)
    if not details:
        return
    try:
        context.run_log_store.record_fingerprint_details(code, details)
    except (RunLogStoreError, OSError) as exc:  # explanations only: never fails a step
        logger.warning("Could not record the code details of %s: %s", command, exc)


def expected_fingerprint(
    context: RunContext,
    node: BaseNode,
    parameters: dict[str, Any],
    map_variables: dict[str, Any],
    data_catalog: list[DataCatalog],
) -> Fingerprint | None:
    """The fingerprint the step's attempt will record, computed before it runs.

    ``None`` when it cannot be known (a function that cannot be imported or bound: the step
    will run, and fail saying why).
    """
    task = node.task() if isinstance(node, ExecutableNode) else None
    if task is None:
        return None
    task_input = TaskInput(
        step_name=node.internal_name,
        parameters=dict(parameters),
        map_variables=map_variables,
        iterated=iterated_parameters(context, node),
    )
    try:
        consumed = task.consumes(task_input)
        references = as_references(consumed, strict=False)
    except Exception as exc:  # the attempt will meet it again, and record it
        logger.debug("%s: no fingerprint before running: %s", node.internal_name, exc)
        return None
    return fingerprint_of(context, node, map_variables, references, data_catalog)


def find_result(
    context: RunContext, fingerprint: Fingerprint
) -> tuple[FingerprintHit, StepLog] | str:
    """The earlier success recorded with ``fingerprint``, or why there is none to take ("" when
    the index knows no such fingerprint)."""
    store = context.run_log_store
    try:
        hit = store.find_fingerprint(fingerprint.key)
    except (RunLogStoreError, OSError) as exc:
        return f"the fingerprint index could not be read: {exc}"
    if hit is None:
        return ""
    where = f"run {hit.run_id} step {hit.internal_name}"
    try:
        earlier = store.get_step_log(hit.internal_name, hit.run_id, full=False)
    except (RunLogNotFoundError, StepLogNotFoundError):
        return f"{where} recorded this fingerprint but is no longer in the run log store"
    except (RunLogStoreError, OSError) as exc:
        return f"{where} recorded this fingerprint but cannot be read: {exc}"
    last = earlier.attempts[-1] if earlier.attempts else None
    if (
        earlier.status != SUCCESS
        or last is None
        or last.fingerprint is None
        or last.fingerprint.key != fingerprint.key
    ):
        return f"{where} recorded this fingerprint but its log no longer holds it"
    return hit, earlier


def take_result(
    context: RunContext,
    node: BaseNode,
    step_log: StepLog,
    hit: FingerprintHit,
    earlier: StepLog,
    fingerprint: Fingerprint,
) -> str | None:
    """Take over the earlier step's result into ``step_log``; or say why it cannot be taken.

    Every file the earlier step put in the catalog is copied into this run's catalog and its
    hash checked against the earlier record: a file gone or changed refuses the whole result,
    and ``step_log`` is left as it was. So does a file the step puts that is in the compute data
    folder already with other content (a source file the step hands to the catalog, edited).
    """
    where = f"run {hit.run_id} step {hit.internal_name}"
    problem = _compute_data_changed(context, node, earlier, hit)
    if problem:
        return problem
    copied: list[DataCatalog] = []
    for entry in _result_files(earlier):
        try:
            record = context.catalog.copy_from_run(entry.name, hit.run_id, context.run_id)
        except (CatalogError, PluginError, OSError) as exc:
            return f"the result of {where} is incomplete: {entry.name} cannot be copied ({exc})"
        if record.data_hash != entry.data_hash:
            return (
                f"the result of {where} changed since: {entry.name} "
                f"(sha256 {entry.data_hash[:8]}… → {record.data_hash[:8]}…)"
            )
        copied.append(record)
    problem = _restore_compute_data(context, node, copied)
    if problem:
        return problem

    produced = produced_by(earlier)
    now = datetime.now()
    message = f"reused from run {hit.run_id} step {hit.internal_name}"
    step_log.attempts.append(
        StepAttempt(
            attempt_number=1,
            start_time=format_time(now),
            end_time=format_time(now),
            duration=format_duration(now - now),
            status=SUCCESS,
            message=message,
            parameters=dict(earlier.attempts[-1].parameters),
            output_parameters=produced,
            fingerprint=fingerprint,
        )
    )
    step_log.add_data_catalogs(copied)
    step_log.mock = True
    step_log.message = message
    step_log.reused_from = hit.run_id
    step_log.reused_from_step = hit.internal_name
    step_log.not_reused = None
    step_log.user_defined_metrics = dict(earlier.user_defined_metrics)
    scopes.write_parameters(context.run_log_store, context.run_id, step_log.internal_name, produced)
    logger.info("%s: %s", step_log.internal_name, message)
    return None


def _result_files(step_log: StepLog) -> list[DataCatalog]:
    """What a step put in the catalog as its result (not its execution logs)."""
    return [e for e in step_log.data_catalog if e.stage == "put" and not is_execution_log(e.name)]


def _left_in_compute_folder(node: BaseNode, name: str) -> bool:
    """Whether the step's ``put`` patterns name ``name``: a file the step leaves in the compute
    data folder (files it stored otherwise, such as objects, are in the catalog only)."""
    patterns = node.catalog.put if isinstance(node, ExecutableNode) and node.catalog else []
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _compute_data_changed(
    context: RunContext, node: BaseNode, earlier: StepLog, hit: FingerprintHit
) -> str | None:
    """Why a file the step puts, already in the compute data folder, refuses the earlier result.

    A step may put a file it did not write -- a source file it hands to the catalog -- so a file
    there with other content than the earlier step put is something the step may read: its
    result may differ. (Taking it would also overwrite that file with the earlier content.)
    """
    where = f"run {hit.run_id} step {hit.internal_name}"
    for entry in _result_files(earlier):
        if not _left_in_compute_folder(node, entry.name):
            continue
        try:
            current = context.catalog.compute_data_hash(entry.name)
        except OSError as exc:
            return f"{entry.name} in the compute data folder cannot be read ({exc})"
        # a file not there is restored from the catalog: what the step would have left there
        if current is not None and current != entry.data_hash:
            return (
                f"{entry.name} in the compute data folder is not what {where} put "
                f"(sha256 {entry.data_hash[:8]}… → {current[:8]}…): the step may read it"
            )
    return None


def _restore_compute_data(
    context: RunContext, node: BaseNode, copied: list[DataCatalog]
) -> str | None:
    """Put the files the step's ``put`` patterns name back where the step would have left
    them, the compute data folder: later steps may read them from there."""
    for record in copied:
        if not _left_in_compute_folder(node, record.name):
            continue
        try:
            context.catalog.get(glob.escape(record.name), context.run_id)
        except (CatalogError, PluginError, OSError) as exc:
            return f"{record.name} could not be placed in the compute data folder ({exc})"
    return None


def record_success(context: RunContext, step_log: StepLog) -> None:
    """Index a successful step's fingerprint, so that later runs can find its result.

    Called after the step log is stored: a hit always points to a stored SUCCESS record. A
    store that cannot index only loses the chance to reuse.
    """
    last = step_log.attempts[-1] if step_log.attempts else None
    if step_log.status != SUCCESS or last is None or last.fingerprint is None:
        return
    try:
        context.run_log_store.record_fingerprint(
            last.fingerprint.key, context.run_id, step_log.internal_name
        )
    except (RunLogStoreError, MagnusError, OSError) as exc:
        logger.warning("Could not index the fingerprint of %s: %s", step_log.internal_name, exc)


def produced_by(step_log: StepLog) -> dict[str, Any]:
    """What a step wrote to its scope: a leaf's successful attempt, a composite's fan-in."""
    recorded = step_log.output_parameters
    if isinstance(recorded, dict):
        return dict(recorded)
    for attempt in reversed(step_log.attempts):
        if attempt.status == SUCCESS:
            return dict(attempt.output_parameters)
    return {}
