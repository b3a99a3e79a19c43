"""The ``mocked`` executor: traverse the pipeline without running its tasks, except patched ones.

Every task and stub is *mocked* -- recorded with ``mock: true`` and one SUCCESS attempt, its
command not run, no parameter written -- unless ``patches`` names it. A mocked step still gets and
puts its catalog data, as magnus 0.5 does, so a patched step after it finds the files it expects
(made by an earlier real run, or placed by hand); a transfer that matches nothing, or fails, is
logged as a warning and the step still succeeds.

A patch replaces the step's command (``{command: "exit 0"}``, or another task type:
``{command_type: shell, command: ...}``) and may replace its ``catalog``; the patched step runs
normally. Patches name steps by internal name: ``train.left.fit`` (one step),
``report.map_variable_placeholder.render`` (that step in every element of a map),
``report.10.render`` (one element), or a bare ``fit`` (every step of that name). The most precise
match wins.

Uses: check a pipeline's shape and routing; unit-test traversal (patch a failing step to
succeed); debug one step of a failed run with everything else mocked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from magnus.building import step_builder
from magnus.exceptions import CatalogError, PluginError
from magnus.executors.leaf import execute_leaf, record_instant_success
from magnus.executors.local import LocalExecutor
from magnus.nodes import ExecutableNode, TaskNode
from magnus.runlog.models import DataCatalog, StepLog

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.nodes import BaseNode

logger = logging.getLogger(__name__)


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
        settings = node.catalog if isinstance(node, ExecutableNode) else None
        if settings is not None:
            synced: list[DataCatalog] = []
            for pattern in settings.get:
                synced += _transfer(context, step_log, "get", pattern)
            step_log.add_data_catalogs(synced)
            for pattern in settings.put:
                step_log.add_data_catalogs(_transfer(context, step_log, "put", pattern, synced))
        return record_instant_success(context, node, step_log)


def _transfer(
    context: RunContext,
    step_log: StepLog,
    stage: str,
    pattern: str,
    synced: list[DataCatalog] | None = None,
) -> list[DataCatalog]:
    """One catalog get or put of a mocked step; a failure is a warning, the step runs nothing."""
    catalog = context.catalog
    try:
        if stage == "get":
            return catalog.get(pattern, context.run_id)
        return catalog.put(pattern, context.run_id, synced_catalogs=synced)
    except (CatalogError, PluginError) as exc:
        logger.warning(
            "Mocked step %s: catalog %s of %r skipped: %s",
            step_log.internal_name,
            stage,
            pattern,
            exc,
        )
        return []
