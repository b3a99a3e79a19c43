"""The ``mocked`` executor: traverse the pipeline without running its tasks, except patched ones.

Every task and stub is *mocked* -- recorded with ``mock: true`` and one SUCCESS attempt, its
command not run, no catalog transfer, no parameter written -- unless ``patches`` names it. A
patch replaces the step's command (``{command: "exit 0"}``, or another task type:
``{command_type: shell, command: ...}``); the patched step runs normally. Patches name steps by
internal name: ``train.left.fit`` (one step), ``report.map_variable_placeholder.render`` (that
step in every element of a map), ``report.10.render`` (one element), or a bare ``fit`` (every step
of that name). The most precise match wins.

Uses: check a pipeline's shape and routing; unit-test traversal (patch a failing step to
succeed); debug one step of a failed run with everything else mocked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from magnus.building import step_builder
from magnus.executors.leaf import execute_leaf, record_instant_success
from magnus.executors.local import LocalExecutor
from magnus.nodes import ExecutableNode, TaskNode
from magnus.runlog.models import StepLog

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.nodes import BaseNode


class MockedExecutor(LocalExecutor):
    """Runs only the patched steps; every other task and stub is recorded as mocked."""

    service_name: ClassVar[str] = "mocked"

    patches: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def patch_for(self, node: BaseNode, resolved_name: str) -> dict[str, Any] | None:
        """The patch that applies to a step, most precise first."""
        for key in (resolved_name, node.internal_name, node.name):
            if key in self.patches:
                return self.patches[key]
        return None

    def trigger_job(
        self,
        context: RunContext,
        node: BaseNode,
        step_log: StepLog,
        map_variables: dict[str, Any] | None = None,
    ) -> StepLog:
        if not isinstance(node, ExecutableNode):
            return super().trigger_job(context, node, step_log, map_variables)
        patch = self.patch_for(node, step_log.internal_name)
        if patch is not None:
            return execute_leaf(
                context, self._patched(context, node, patch), step_log, map_variables
            )
        return self._mock(context, node, step_log)

    def _patched(
        self, context: RunContext, node: ExecutableNode, patch: dict[str, Any]
    ) -> BaseNode:
        """A copy of the step with the patch's command (and task type, if it says one)."""
        # The step's routing and catalog stay; a stub's free-form fields do not become a task's.
        definition = ExecutableNode.definition(node)
        if isinstance(node, TaskNode) and "command_type" not in patch:
            definition["command_type"] = node.command_type
            definition.update(node.executable.model_dump(mode="json"))
        definition.update(patch)
        definition.setdefault("command_type", "python")
        return TaskNode.from_definition(
            node.name, definition, node.internal_branch_name, step_builder(context.kinds)
        )

    @staticmethod
    def _mock(context: RunContext, node: BaseNode, step_log: StepLog) -> StepLog:
        step_log.mock = True
        return record_instant_success(context, node, step_log)
