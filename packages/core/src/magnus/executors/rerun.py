"""Re-running a failed run: which steps to reuse from the original, and what they carry over.

A re-run has its own run id and records ``use_cached: true`` and ``original_run_id``. Its catalog
starts as a copy of the original's; its initial parameters are the original's initial parameters
overridden by any given explicitly for the re-run. Each step that succeeded in the original (by
resolved internal name, so element by element inside maps) is *reused*: its log says
``mock: true`` with no attempts, and what it produced is written again to its parameter scope.
Everything else runs: the step that failed, the steps after it, and steps the original never
reached.

Before reusing a step, what decides its result is compared with the original's, and the parts
that differ are recorded on the step log (``changed_since_original``) and shown; with ``strict``
such a step runs again instead. A task or stub step is compared by fingerprint
(:mod:`magnus.fingerprints`), computed now as its attempt would compute it: ``code`` (its function
and the project modules it imports, not the rest of the repository), ``definition``,
``parameters``, ``inputs`` and ``environment``. A composite step is compared by its definition
and the code of the tasks inside it; a step recorded without a fingerprint (by magnus 0.5) by its
definition and the repository's code identity.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from magnus import scopes
from magnus.building import NodeKinds, graph_from_dump
from magnus.composites import CompositeNode
from magnus.context import RunContext
from magnus.exceptions import MagnusError, RunLogNotFoundError, StepLogNotFoundError
from magnus.executors.leaf import record_instant_success
from magnus.executors.reuse import expected_fingerprint, fingerprint_of, produced_by
from magnus.fingerprints import changed_parts, code_digest
from magnus.graph import Graph, find_node
from magnus.internal_names import resolve
from magnus.nodes import BaseNode, ExecutableNode, TaskNode
from magnus.runlog.base import BaseRunLogStore
from magnus.runlog.models import SUCCESS, Fingerprint, RunLog, StepLog

logger = logging.getLogger(__name__)


class OriginalRunMissingError(MagnusError):
    """The run to re-run is not in the run log store."""

    def __init__(self, run_id: str, where: str) -> None:
        super().__init__(
            f"Expected a run log with id: {run_id} but it does not exist in the run log store "
            f"({where}). If the original execution was in a different environment, ensure that "
            "it is available in the current environment."
        )


@dataclass
class Original:
    """What is known of the run being re-run: read once, when the re-run is prepared."""

    run_id: str
    #: its run-level fields and parameters (not its steps: those are read one by one)
    run_log: RunLog
    #: its recorded graph (``None`` if it cannot be rebuilt: then nothing is compared)
    graph: Graph | None = None
    node_hashes: dict[str, str] = field(default_factory=dict)


def node_hash(node: BaseNode) -> str:
    """A hash of a step's full definition (composites: with everything inside them)."""
    canonical = json.dumps(node.dump(), sort_keys=True, default=str)
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()


def load_original(store: BaseRunLogStore, run_id: str, kinds: NodeKinds) -> Original:
    """The run to re-run, read once; a clear error when it is not in this store."""
    try:
        run_log = store.get_run_log_by_id(run_id, full=False)
    except RunLogNotFoundError:
        raise OriginalRunMissingError(run_id, store.location(run_id)) from None
    original = Original(run_id, run_log)
    dag = run_log.run_config.get("dag")
    if dag:
        try:
            original.graph = graph_from_dump(dag, kinds)
        except MagnusError as exc:  # a graph we cannot rebuild only means we cannot compare
            logger.warning("Cannot compare with the graph of run %s: %s", run_id, exc)
    return original


def _original(context: RunContext) -> Original:
    original = context.original
    assert isinstance(original, Original), "a re-run's context carries its original"
    return original


def changes_since_original(
    context: RunContext,
    node: BaseNode,
    original_step: StepLog,
    map_variables: dict[str, Any] | None = None,
) -> list[str]:
    """What differs from the original for this step (see the module's documentation)."""
    recorded = _recorded_fingerprint(context, original_step)
    if recorded is not None:
        now = _fingerprint_now(context, node, original_step, map_variables or {})
        if now is not None:
            return changed_parts(recorded, now)
    original = _original(context)
    changes = []
    if original.graph is not None:
        key = node.internal_name
        if key not in original.node_hashes:
            try:
                original.node_hashes[key] = node_hash(find_node(original.graph, key)[1])
            except MagnusError:
                original.node_hashes[key] = ""
        if original.node_hashes[key] != node_hash(node):
            changes.append("definition")
    if isinstance(node, CompositeNode):
        if _task_code(context, node) != _recorded_code(context, original_step):
            changes.append("code")
    elif _identity(original_step.code_identities) != _identity(context.code_identities):
        changes.append("code")
    return changes


def last_fingerprint(step_log: StepLog) -> Fingerprint | None:
    """The fingerprint of a step's last attempt (``None``: none recorded, or not a leaf)."""
    return step_log.attempts[-1].fingerprint if step_log.attempts else None


def _recorded_fingerprint(context: RunContext, step_log: StepLog) -> Fingerprint | None:
    """The fingerprint a step last ran with: a step an earlier re-run reused records none, so
    the run it was reused from is asked (a few hops at most: each retry adds one)."""
    for _ in range(_MAX_HOPS):
        fingerprint = last_fingerprint(step_log)
        if fingerprint is not None or not step_log.reused_from:
            return fingerprint
        try:
            step_log = context.run_log_store.get_step_log(
                step_log.reused_from_step or step_log.internal_name,
                step_log.reused_from,
                full=False,
            )
        except (RunLogNotFoundError, StepLogNotFoundError):
            return None
    return None


#: how many earlier re-runs are followed back to find the fingerprint a step ran with
_MAX_HOPS = 20


def _fingerprint_now(
    context: RunContext, node: BaseNode, original_step: StepLog, map_variables: dict[str, Any]
) -> Fingerprint | None:
    """The fingerprint the step would record if it ran now, on the data the original got (the
    re-run's catalog starts as the original's)."""
    if not isinstance(node, ExecutableNode):
        return None
    if node.task() is None:
        return fingerprint_of(context, node, map_variables, {}, original_step.data_catalog)
    parameters = scopes.read_parameters(
        context.run_log_store, context.run_id, resolve(node.internal_name, map_variables)
    )
    return expected_fingerprint(
        context, node, parameters, map_variables, original_step.data_catalog
    )


def _task_code(context: RunContext, node: CompositeNode) -> set[str]:
    """The code digests of every task inside a composite step, as they are now."""
    digests = set()
    for graph in node.branch_graphs():
        for inner in graph.nodes.values():
            if isinstance(inner, CompositeNode):
                digests |= _task_code(context, inner)
            elif isinstance(inner, TaskNode):
                task = inner.task()
                digests.add(code_digest(inner.command_type, task.command, inner.definition()))
    return digests


def _recorded_code(context: RunContext, original_step: StepLog) -> set[str]:
    """The code digests the original's attempts inside a composite step recorded."""
    try:
        full = context.run_log_store.get_step_log(
            original_step.internal_name, context.original_run_id, full=True
        )
    except StepLogNotFoundError:
        return set()
    digests: set[str] = set()
    pending = [full]
    while pending:
        step = pending.pop()
        fingerprint = last_fingerprint(step)
        if fingerprint is not None and step.step_type == "task":
            digests.add(fingerprint.code)
        for branch in step.branches.values():
            pending.extend(branch.steps.values())
    return digests


def _identity(identities: list[Any]) -> tuple[Any, ...]:
    """What makes code the same: the commit, whether the tree was clean, which files changed."""
    if not identities:
        return ()
    code = identities[0]
    return (code.code_identifier, code.code_identifier_dependable, code.code_identifier_message)


def reusable_step(
    context: RunContext,
    node: BaseNode,
    resolved_name: str,
    map_variables: dict[str, Any] | None = None,
) -> StepLog | None:
    """The original's log of this step when the step may be reused, else ``None``."""
    try:
        original_step = context.run_log_store.get_step_log(
            resolved_name, context.original_run_id, full=False
        )
    except StepLogNotFoundError:
        return None  # the original never reached it (0.5 crashed here)
    if original_step.status != SUCCESS:
        return None
    changes = changes_since_original(context, node, original_step, map_variables)
    original_step.changed_since_original = changes
    if changes and context.strict_cache:
        logger.warning(
            "%s changed since run %s (%s): running it again (--strict)",
            resolved_name,
            context.original_run_id,
            ", ".join(changes),
        )
        return None
    return original_step


def reusable_branch(context: RunContext, graph: Graph, map_variables: dict[str, Any]) -> bool:
    """Whether a re-run would reuse every step of a branch, from its start to its success step.

    Then running the branch is only recording it reused, which needs no process of its own.
    The walk follows what the traversal will do: each reused step succeeds, so ``next``.
    """
    node = graph.start_node
    while not node.is_terminal:
        resolved = resolve(node.internal_name, map_variables)
        if reusable_step(context, node, resolved, map_variables) is None:
            return False
        node = graph.next_after(node, failed=False)
    return node.node_type == "success"


def reuse(
    context: RunContext, node: BaseNode, step_log: StepLog, original_step: StepLog
) -> StepLog:
    """Record a step as reused from the original and carry over what it produced."""
    changes = original_step.changed_since_original or []
    step_log.mock = True
    step_log.status = SUCCESS
    step_log.message = f"reused from run {context.original_run_id}"
    step_log.reused_from = context.original_run_id
    if changes:
        step_log.changed_since_original = changes
        step_log.message += f" ({' and '.join(changes)} changed since)"
        logger.warning("%s: %s", step_log.internal_name, step_log.message)
    produced = produced_by(original_step)
    if produced:
        step_log.output_parameters = produced
    scopes.write_parameters(context.run_log_store, context.run_id, step_log.internal_name, produced)
    return record_instant_success(context, node, step_log, attempt=False)
