"""The executor contract and graph traversal.

Traversing executors (``local``) walk the graph in this process; transpiling executors render it
for an orchestrator that calls ``execute_node`` back per step. Either way every leaf step goes
through the same leaf wrapper (``magnus.executors.leaf``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from magnus.executors.leaf import execute_leaf
from magnus.runlog.models import FAIL, PROCESSING, StepLog
from magnus.services import BaseService

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.graph import Graph
    from magnus.nodes import BaseNode


def resolve_name(internal_name: str, map_variables: dict[str, Any] | None) -> str:
    """Replace each map placeholder, outermost first, with the current map value's name."""
    return internal_name


class BaseExecutor(BaseService):
    """Base of every executor."""

    service_type: ClassVar[str] = "executor"
    #: whether every step runs in the process that traverses (an in-memory store is enough)
    runs_in_one_process: ClassVar[bool] = True

    def execute_graph(
        self,
        context: RunContext,
        graph: Graph,
        map_variables: dict[str, Any] | None = None,
    ) -> None:
        """Walk ``graph`` from ``start_at`` to its success or fail step, iteratively."""
        node = graph.start_node
        while True:
            step_log = self.execute_from_graph(context, node, map_variables)
            if node.is_terminal:
                return
            node = graph.next_after(node, failed=step_log.status == FAIL)

    def execute_from_graph(
        self,
        context: RunContext,
        node: BaseNode,
        map_variables: dict[str, Any] | None = None,
    ) -> StepLog:
        """Create the step's log (PROCESSING, code identity) and run the step."""
        store = context.run_log_store
        step_log = store.create_step_log(node.name, resolve_name(node.internal_name, map_variables))
        step_log.step_type = node.node_type
        step_log.status = PROCESSING
        step_log.code_identities = [identity.model_copy() for identity in context.code_identities]
        if not node.is_terminal:
            # Stored before running so that a killed run shows where it stopped.
            store.add_step_log(step_log, context.run_id)
        return self.trigger_job(context, node, step_log, map_variables)

    def trigger_job(
        self,
        context: RunContext,
        node: BaseNode,
        step_log: StepLog,
        map_variables: dict[str, Any] | None = None,
    ) -> StepLog:
        """Run a leaf step; ``local`` runs it in this process."""
        return execute_leaf(context, node, step_log, map_variables)
