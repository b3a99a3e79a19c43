"""Fan-out and fan-in: what running a composite step writes to the run log, for every executor.

Fan-out creates a PROCESSING branch log for each branch the composite runs (a map's elements are
known only now, from the parameters in scope); the branches then run wherever the executor runs
them; fan-in decides the composite's status from the branch logs fan-out was to create -- not
from whatever happens to be in the store, so a fan-out that crashed half-way or a lost record
fails the step -- and merges what the branches produced into the enclosing scope.
"""

from __future__ import annotations

import logging
from typing import Any

from magnus import scopes
from magnus.composites import BranchRun, CompositeNode
from magnus.context import RunContext
from magnus.internal_names import resolve
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
    runs = node.branch_runs(parameters, map_variables)
    if isinstance(runs, str):
        # Composite steps have no line of their own on the console: say why here.
        logger.error("%s", runs)
        step_log.status = FAIL
        step_log.message = runs
        store.add_step_log(step_log, context.run_id)
        return []
    node.record_fan_out(step_log, runs)
    store.add_step_log(step_log, context.run_id)
    for run in runs:
        branch_log = store.create_branch_log(run.name)
        branch_log.status = PROCESSING
        node.describe_branch(branch_log, run)
        store.add_branch_log(branch_log, context.run_id)
    return runs


def fan_in(context: RunContext, node: CompositeNode, map_variables: dict[str, Any]) -> StepLog:
    """Decide the composite's status from its branches and merge their parameters."""
    store = context.run_log_store
    step_name = resolve(node.internal_name, map_variables)
    step_log = store.get_step_log(step_name, context.run_id, full=True)
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
