"""The executor contract and graph traversal.

Traversing executors (``local``) walk the graph in this process; transpiling executors render it
for an orchestrator that calls magnus back per step (``execute_single_node``, ``fan``). Either
way every leaf step goes through the same leaf wrapper (``magnus.executors.leaf``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from magnus.composites import BranchRun, CompositeNode
from magnus.exceptions import StepLogNotFoundError
from magnus.executors import rerun
from magnus.executors.fanning import fan_in, fan_next, fan_out
from magnus.executors.leaf import execute_leaf
from magnus.executors.pending import processing_record
from magnus.internal_names import resolve
from magnus.orchestration import ATTEMPT_ENV
from magnus.runlog.models import FAIL, PROCESSING, SUCCESS, StepLog
from magnus.services import BaseService

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.graph import Graph
    from magnus.nodes import BaseNode


class BaseExecutor(BaseService):
    """Base of every executor."""

    service_type: ClassVar[str] = "executor"
    #: whether ``execute`` walks the graph here (False: it renders it for an orchestrator)
    traverses: ClassVar[bool] = True

    @property
    def runs_in_one_process(self) -> bool:
        """Whether every step runs in the process that traverses (then memory stores work)."""
        return True

    def execute_graph(
        self,
        context: RunContext,
        graph: Graph,
        map_variables: dict[str, Any] | None = None,
    ) -> None:
        """Walk ``graph`` from ``start_at`` to its success or fail step, iteratively."""
        self._traverse(context, graph, map_variables)

    def _traverse(
        self,
        context: RunContext,
        graph: Graph,
        map_variables: dict[str, Any] | None = None,
    ) -> str:
        """Walk ``graph`` to its end; the status that end gives it (SUCCESS or FAIL)."""
        node = graph.start_node
        while True:
            step_log = self.execute_from_graph(context, node, map_variables)
            if node.is_terminal:
                return SUCCESS if node.node_type == "success" else FAIL
            node = graph.next_after(node, failed=step_log.status == FAIL)

    def create_step_log(
        self, context: RunContext, node: BaseNode, map_variables: dict[str, Any] | None
    ) -> StepLog:
        """A PROCESSING step log for ``node`` with this process' code identity.

        When an orchestrator retries a step (``MAGNUS_STEP_ATTEMPT`` above 1), the log of its
        earlier attempts is continued, so every attempt is recorded once.
        """
        import os

        name = resolve(node.internal_name, map_variables)
        if int(os.environ.get(ATTEMPT_ENV, "1") or 1) > 1 and not node.is_composite:
            try:
                step_log = context.run_log_store.get_step_log(name, context.run_id, full=False)
            except StepLogNotFoundError:
                pass
            else:
                step_log.status = PROCESSING
                return step_log
        step_log = context.run_log_store.create_step_log(node.name, name)
        step_log.step_type = node.node_type
        step_log.status = PROCESSING
        # The run's identities are not changed once recorded: each step's list holds the same.
        step_log.code_identities = list(context.code_identities)
        return step_log

    def execute_from_graph(
        self,
        context: RunContext,
        node: BaseNode,
        map_variables: dict[str, Any] | None = None,
    ) -> StepLog:
        """Create the step's log and run the step: a leaf here, a composite's branches."""
        map_variables = map_variables or {}
        step_log = self.create_step_log(context, node, map_variables)
        if context.use_cached and not node.is_terminal:
            original_step = rerun.reusable_step(
                context, node, step_log.internal_name, map_variables
            )
            if original_step is not None:
                return rerun.reuse(context, node, step_log, original_step)
        if isinstance(node, CompositeNode):
            # Stored before running so that a killed run shows where it stopped.
            context.run_log_store.add_step_log(step_log, context.run_id)
            runs = fan_out(context, node, map_variables)
            context.observers.before_composite(
                step_log=step_log, node=node, branches=len(runs), context=context
            )
            while runs:
                self.run_branches(context, node, runs)
                runs = fan_next(context, node, map_variables, runs[-1].name)
            step_log = fan_in(context, node, map_variables)
            context.observers.after_composite(step_log=step_log, node=node, context=context)
            return step_log
        if node.is_terminal:
            return self.trigger_job(context, node, step_log, map_variables)

        # A leaf's starting record is stored only if it runs long enough to be worth showing.
        with processing_record(context, step_log):
            return self.trigger_job(context, node, step_log, map_variables)

    def run_branches(self, context: RunContext, node: CompositeNode, runs: list[BranchRun]) -> None:
        """Run a composite's branches; here one after another, in declaration order."""
        for run in runs:
            # The status the walk ended with is the branch's: no need to read it back.
            status = self._traverse(context, run.graph, run.map_variables)
            context.observers.after_branch(
                branch_name=run.name, status=status, node=node, context=context
            )

    def trigger_job(
        self,
        context: RunContext,
        node: BaseNode,
        step_log: StepLog,
        map_variables: dict[str, Any] | None = None,
    ) -> StepLog:
        """Run a leaf step; ``local`` runs it in this process."""
        return execute_leaf(context, node, step_log, map_variables)
