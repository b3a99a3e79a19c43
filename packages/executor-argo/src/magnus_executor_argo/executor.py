"""The ``argo`` executor: renders a pipeline as an Argo Workflow instead of running it.

Nothing runs where ``magnus execute -c argo.yaml`` is called: the workflow's containers call
magnus back, one step (``execute_single_node``) or one composite's fan-out/fan-in (``fan``) at
a time, so every step goes through the same leaf wrapper as a local run and the run log has the
same structure. Inside those containers the same configuration builds this executor again, and
it runs the one leaf step it is asked to run, in its own process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

from magnus.context import RunContext
from magnus.executors.base import BaseExecutor
from magnus.graph import Graph
from magnus_executor_argo.config import EXECUTOR_NAME, ArgoConfig, filled

logger = logging.getLogger(__name__)


class ArgoExecutor(BaseExecutor, ArgoConfig):
    """Renders the pipeline as an Argo ``Workflow`` (or a ``CronWorkflow`` with ``schedule``).

    Its keys are :class:`~magnus_executor_argo.config.ArgoConfig`'s, each described in the
    package README. String values may use ``$name`` placeholders filled from
    ``MAGNUS_VAR_name`` when the workflow is rendered.
    """

    service_name: ClassVar[str] = EXECUTOR_NAME
    #: a transpiler: ``execute`` renders the graph, an orchestrator runs it
    traverses: ClassVar[bool] = False
    #: placeholders are filled per step, after the step's overrides are applied
    fills_variables_itself: ClassVar[bool] = True

    @property
    def runs_in_one_process(self) -> bool:
        """Every step runs in a pod of its own."""
        return False

    def render(self, context: RunContext) -> str:
        """The workflow of ``context``'s pipeline as YAML. Nothing runs, nothing is written."""
        # Imported here: the renderer loads hera's models of the whole Argo API, which the pods
        # that build this executor again to run one step never need.
        from magnus_executor_argo.render import render_yaml

        return render_yaml(self, context)

    def write(self, context: RunContext) -> Path:
        """Render and write the workflow to ``output_file``; returns its path."""
        text = self.render(context)
        path = Path(filled(self, context.variables).output_file)
        if path.parent != Path():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def execute_graph(
        self,
        context: RunContext,
        graph: Graph,
        map_variables: dict[str, Any] | None = None,
    ) -> None:
        """Render the pipeline (the whole graph only); a branch graph is traversed here.

        ``magnus execute`` hands the pipeline's graph: it is rendered and written, and nothing
        runs. A branch graph only reaches here through ``execute_single_branch`` in a pod,
        which the rendered workflow never calls; it is then run as the local executor would.
        """
        if graph is context.dag and not map_variables:
            path = self.write(context)
            print(f"Wrote the Argo workflow of {context.pipeline_file} to {path}")
            return
        super().execute_graph(context, graph, map_variables)
