"""How an orchestrated run starts when a re-run spares what it reuses, and how it ends when its
workflow is over, however that went (an exit handler).
"""

from __future__ import annotations

import json
import logging

from magnus.context import RunContext, current_run
from magnus.entrypoints import PreparedRun, notify_run_ended
from magnus.exceptions import StepLogNotFoundError
from magnus.executors.ending import close_open_records
from magnus.nodes import BaseNode
from magnus.orchestrated import enter_run
from magnus.runlog.models import FAIL, SUCCESS, TERMINAL_STATUSES, RunLog

logger = logging.getLogger(__name__)


def reused_before_start(context: RunContext) -> list[BaseNode]:
    """The pipeline's steps a re-run reuses before the first one it runs again.

    From ``start_at`` along ``next``, each step that succeeded in the original. An orchestrator
    renders none of them (they cost no pod): the process that starts the re-run records them
    reused (:func:`start_rerun`). Empty unless ``context`` re-runs an original without
    ``strict``: with it, whether a step is reused depends on its fingerprint, known only once
    the run exists, so each step's own process decides.
    """
    if not context.use_cached or context.strict_cache or context.dag is None:
        return []
    graph = context.dag
    store = context.run_log_store
    node = graph.start_node
    reused: list[BaseNode] = []
    while not node.is_terminal:
        try:
            original = store.get_step_log(node.internal_name, context.original_run_id, full=False)
        except StepLogNotFoundError:
            break
        if original.status != SUCCESS:
            break
        reused.append(node)
        node = graph.next_after(node, failed=False)
    return reused


def start_rerun(run: PreparedRun) -> RunLog:
    """Start a re-run for an orchestrator: create the run (observers hear ``before_run``) and
    record reused, in this one process, every step :func:`reused_before_start` names.

    ``run`` is prepared as ``magnus execute --use-cached ORIGINAL`` prepares it. The
    orchestrator runs the other steps, each in a process joining the run, which shares its
    original and decides reuse as a local re-run does. When every step is reused, the success
    step runs here too and observers hear ``after_run``.
    """
    context = run.context
    assert context.dag is not None
    token = enter_run(run)
    try:
        reused = reused_before_start(context)
        for node in reused:
            # A failure here fails this container, so the workflow: its exit handler ends the run.
            run.executor.execute_from_graph(context, node)
        graph = context.dag
        following = graph.next_after(reused[-1], failed=False) if reused else graph.start_node
        if following.node_type == "success":
            # Every step was reused: the run ends here, as its success step's process would.
            run.executor.execute_from_graph(context, following)
            return notify_run_ended(context)
        return context.run_log_store.get_run_log_by_id(context.run_id, full=False)
    finally:
        current_run.reset(token)


def end_orchestrated_run(
    run: PreparedRun, workflow_status: str, failures: str = ""
) -> RunLog | None:
    """End a run once its orchestrator's workflow is over, however it ended (an exit handler).

    ``workflow_status`` is the workflow's phase (Argo's ``Succeeded``, ``Failed`` or ``Error``);
    ``failures`` the orchestrator's JSON list of its failed nodes (Argo's
    ``{{workflow.failures}}``), which says why in the reason recorded.

    Nothing of the run runs any more, so every step and branch log still open is closed FAIL with
    the reason: a container that was stopped, deleted or evicted could not close its own. A run
    that ended (its success or fail step ran, and told observers) keeps its status. A run still
    open -- the workflow was stopped, ran past its deadline or lost a container -- ends FAIL with
    the reason, and observers hear ``after_run`` then: once per run, either way. Returns the run
    log; ``None`` when the run was never created (the workflow ended before its first step).
    """
    context = run.context
    store = context.run_log_store
    if not store.run_exists(context.run_id):
        logger.warning(
            "Run %s was never created: nothing to end (the workflow ended %s)",
            context.run_id,
            workflow_status,
        )
        return None
    reason = workflow_end_reason(workflow_status, failures)
    closed = close_open_records(store, context.run_id, reason)
    if closed:
        more = f" and {len(closed) - 5} more" if len(closed) > 5 else ""
        logger.error("Closed what did not end: %s%s (%s)", ", ".join(closed[:5]), more, reason)
    head = store.get_run_log_by_id(context.run_id, full=False)
    if head.status in TERMINAL_STATUSES:
        return head
    if workflow_status == "Succeeded":
        reason += "; the run never reached its success or fail step"
    store.update_run_log_status(context.run_id, FAIL, reason)
    logger.error("Run %s ended FAIL: %s", context.run_id, reason)
    token = enter_run(run)
    try:
        return notify_run_ended(context)
    finally:
        current_run.reset(token)


#: how many of the workflow's failed nodes a reason names
_FAILURES_NAMED = 3


def workflow_end_reason(workflow_status: str, failures: str = "") -> str:
    """Why what a workflow left open ends: the workflow's phase and its failed nodes.

    ``failures`` may be cut short (an orchestrator bounds what reaches a command line): the
    nodes it still names fully are named, followed by ``(and more)``.
    """
    lines, cut = _failure_lines(failures)
    named = "; ".join(lines[:_FAILURES_NAMED])
    if cut and named:
        named += " (and more)"
    elif len(lines) > _FAILURES_NAMED:
        named += f" (and {len(lines) - _FAILURES_NAMED} more)"
    return f"the workflow ended {workflow_status}" + (f": {named}" if named else "")


def _failure_lines(failures: str) -> tuple[list[str], bool]:
    """``node: message`` of each failed node, from Argo's JSON (quoted again since Argo 3.5),
    and whether the text was cut short."""
    text = failures.strip()
    if not text or "{{" in text:  # not filled in: no failures to name
        return [], False
    cut = False
    if text.startswith('"'):
        unquoted = _json_prefix_string(text)
        if unquoted is None:
            return [], True
        text, cut = unquoted[0].strip(), unquoted[1]
    try:
        value = json.loads(text) if text else None
    except json.JSONDecodeError:
        if not text.startswith("["):
            return [text], False  # a message of its own, not JSON
        value, cut = _json_prefix_list(text), True
    lines: list[str] = []
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, dict):
            continue
        message = str(entry.get("message") or "").strip()
        # A DAG's message only names its failed child, which is listed with its own.
        if not message or message.startswith("child '"):
            continue
        name = str(entry.get("displayName") or entry.get("templateName") or "")
        line = f"{name}: {message}" if name else message
        if line not in lines:
            lines.append(line)
    return lines, cut


#: the longest escape (``\uXXXX``) a cut JSON string may end inside
_ESCAPE_LENGTH = 6


def _json_prefix_string(text: str) -> tuple[str, bool] | None:
    """A JSON string literal, or the start of one cut short: its value and whether it was cut;
    ``None`` when it is not JSON."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        pass
    else:
        return (value, False) if isinstance(value, str) else None
    for end in range(len(text), max(len(text) - _ESCAPE_LENGTH, 1) - 1, -1):
        try:
            value = json.loads(text[:end] + '"')
        except json.JSONDecodeError:
            continue
        return (value, True) if isinstance(value, str) else None
    return None


def _json_prefix_list(text: str) -> list[object]:
    """The complete elements at the start of a JSON list cut short."""
    decoder = json.JSONDecoder()
    elements: list[object] = []
    position = 1  # after "["
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        try:
            element, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return elements
        elements.append(element)
