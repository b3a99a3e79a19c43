"""Fan-out and fan-in: what running a composite step writes to the run log, for every executor.

Fan-out creates a PROCESSING branch log for each branch the composite runs (a map's elements, a
conditional's choice are known only now, from the parameters in scope); the branches then run
wherever the executor runs them; a loop then *fans on* (:func:`fan_next`), one iteration after
another; fan-in decides the composite's status from the branch logs fan-out was to create -- not
from whatever happens to be in the store, so a fan-out that crashed half-way or a lost record
fails the step -- and merges what the branches produced into the enclosing scope.
"""

from __future__ import annotations

import logging
from typing import Any

from magnus import scopes
from magnus.composites import BranchRun, CompositeNode
from magnus.context import RunContext
from magnus.exceptions import StepLogNotFoundError
from magnus.graph import find_node
from magnus.internal_names import resolve
from magnus.nodes import RoutedNode
from magnus.runlog.base import BaseRunLogStore
from magnus.runlog.models import FAIL, PROCESSING, SUCCESS, BranchLog, StepLog

logger = logging.getLogger(__name__)


def fan_out(
    context: RunContext, node: CompositeNode, map_variables: dict[str, Any]
) -> list[BranchRun]:
    """Create a PROCESSING branch log per branch of ``node``; return the branches to run.

    The composite's step log must exist. When the branches cannot be known (a map whose
    parameter is missing), the step log is marked FAIL with a message and nothing is run.
    """
    store = context.run_log_store
    step_name = resolve(node.internal_name, map_variables)
    step_log = store.get_step_log(step_name, context.run_id, full=False)
    parameters = (
        scopes.read_parameters(store, context.run_id, step_name) if node.reads_parameters else {}
    )
    if node.reads_parameters and context.use_cached:
        parameters.update(_decision_kept(context, node, step_name, map_variables))
    runs = node.branch_runs(parameters, map_variables)
    if isinstance(runs, str):
        # Composite steps have no line of their own on the console: say why here.
        logger.error("%s", runs)
        step_log.status = FAIL
        step_log.message = runs
        store.add_step_log(step_log, context.run_id)
        return []
    _start(store, context.run_id, node, step_log, runs, None)
    return runs


def _start(
    store: BaseRunLogStore,
    run_id: str,
    node: CompositeNode,
    step_log: StepLog,
    runs: list[BranchRun],
    previous: BranchLog | None,
) -> None:
    """Record the fan-out's decision on the step log, then a PROCESSING log per branch."""
    node.record_fan_out(step_log, runs)
    store.add_step_log(step_log, run_id)
    branch_logs = []
    for run in runs:
        branch_log = store.create_branch_log(run.name)
        branch_log.status = PROCESSING
        branch_log.parameters = node.carried_parameters(previous)
        node.describe_branch(branch_log, run)
        branch_logs.append(branch_log)
    # At once: a map over 10,000 elements would otherwise hold the run's lock 10,000 times.
    store.add_branch_logs(branch_logs, run_id)


def fan_next(
    context: RunContext, node: CompositeNode, map_variables: dict[str, Any], last: str
) -> list[BranchRun]:
    """After branch ``last`` ended: start the branches the composite runs next (a loop's next
    iteration) and return them; ``[]`` when it is done (fan-in decides how it ended)."""
    if not node.repeats:
        return []
    store = context.run_log_store
    step_name = resolve(node.internal_name, map_variables)
    last_log = store.get_branch_log(last, context.run_id, full=False)
    assert isinstance(last_log, BranchLog)
    step_log = store.get_step_log(step_name, context.run_id, full=False)
    runs = node.next_runs(step_log, last_log, map_variables, _scope_reader(context))
    if isinstance(runs, str):
        logger.error("%s", runs)  # fan-in finds the same problem and fails the step with it
        return []
    if runs:
        _start(store, context.run_id, node, step_log, runs, last_log)
    return runs


def _scope_reader(context: RunContext) -> Any:
    """Reads the parameters a step inside a given branch sees."""

    def scope_in(branch_name: str) -> dict[str, Any]:
        # any step name inside the branch: scopes are the branches around a step
        inside = f"{branch_name}.step"
        return scopes.read_parameters(context.run_log_store, context.run_id, inside)

    return scope_in


def _decision_kept(
    context: RunContext, node: CompositeNode, step_name: str, map_variables: dict[str, Any]
) -> dict[str, Any]:
    """In a re-run, the parameters the original's fan-out of this step decided on, when no step
    before it ran again (all reused): the re-run then takes the same branch. ``{}`` otherwise,
    and the step decides afresh on the parameters now in scope."""
    try:
        original = context.run_log_store.get_step_log(
            step_name, context.original_run_id, full=False
        )
    except StepLogNotFoundError:
        return {}
    decision = node.recorded_decision(original)
    if decision is None:
        return {}
    assert context.dag is not None
    graph, _ = find_node(context.dag, node.internal_name)
    for before in graph.nodes.values():
        if not isinstance(before, RoutedNode) or node.name not in (
            before.next_node,
            before.on_failure,
        ):
            continue
        try:
            log = context.run_log_store.get_step_log(
                resolve(before.internal_name, map_variables), context.run_id, full=False
            )
        except StepLogNotFoundError:
            continue  # not on the path this run took
        if not log.reused_from:
            return {}  # it ran again: its parameters decide
    logger.info(
        "%s: nothing before it ran again, so it decides as run %s did (%s)",
        step_name,
        context.original_run_id,
        ", ".join(f"{key}={value!r}" for key, value in decision.items()),
    )
    return decision


def fan_in(context: RunContext, node: CompositeNode, map_variables: dict[str, Any]) -> StepLog:
    """Decide the composite's status from its branches and merge their parameters."""
    store = context.run_log_store
    step_name = resolve(node.internal_name, map_variables)
    # The branches' own logs decide; their steps are not needed (a map's may be many).
    step_log = store.get_step_log_with_branches(step_name, context.run_id)
    if step_log.status == FAIL and not step_log.branches:
        return step_log  # fan-out already failed and said why
    # What fan-out was to create, not what happens to be there.
    expected = node.expected_branch_names(step_log, map_variables)
    if isinstance(expected, str):
        problem = expected
    else:
        missing = [name for name in expected if name not in step_log.branches]
        problem = _missing_summary(missing, len(expected)) if missing else ""
    branches = [] if problem else [step_log.branches[name] for name in expected]
    failed = [b for b in branches if b.status != SUCCESS]
    if problem:
        step_log.status = FAIL
        step_log.message = problem
        logger.error("%s: %s", step_name, problem)
    elif failed:
        step_log.status = FAIL
        step_log.message = _failure_summary(failed)
    elif end_problem := node.end_problem(step_log, branches, _scope_reader(context)):
        step_log.status = FAIL
        step_log.message = end_problem
        logger.error("%s: %s", step_name, end_problem)
    else:
        try:
            merged = node.merge_parameters(branches, step_log)
        except Exception as exc:  # a user's reducer: its failure fails the step
            step_log.status = FAIL
            step_log.message = f"merging the branches' parameters failed: {exc}"
            logger.error("%s: %s", step_name, step_log.message)
        else:
            step_log.status = SUCCESS
            step_log.message = ""
            # Recorded so a re-run that reuses this step can carry the same values over.
            step_log.output_parameters = merged
            scopes.write_parameters(store, context.run_id, step_name, merged)
    # the branches are stored on their own; the step's own record is all that changes
    store.add_step_log(step_log.model_copy(update={"branches": {}}), context.run_id)
    return step_log


def _missing_summary(missing: list[str], expected: int) -> str:
    names = ", ".join(missing[:5]) + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
    return (
        f"{len(missing)} of {expected} branches have no branch log ({names}): the fan-out did "
        "not complete or their records were lost"
    )


def _failure_summary(failed: list[BranchLog]) -> str:
    parts = []
    for branch in failed[:5]:
        state = "did not finish" if branch.status == PROCESSING else branch.status
        detail = f": {branch.message}" if branch.message else ""
        parts.append(f"branch {branch.internal_name} {state}{detail}")
    more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
    return "; ".join(parts) + more
