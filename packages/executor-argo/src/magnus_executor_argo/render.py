"""From a magnus graph to an Argo Workflow, built with hera's generated models of Argo's API.

Shape (magnus 0.5's, with the changes of the argo issue):

* the entry point ``magnus-dag`` is a DAG template; every graph (the pipeline, each branch)
  becomes a DAG template whose tasks are its steps, walked from ``start_at`` along ``next`` and
  ``on_failure``; a task depends on ``<previous>.Succeeded`` and, for an ``on_failure`` target,
  on ``<failed step>.Failed``, joined with `` || ``;
* a leaf step (task, stub, success, fail) is a container template running
  ``magnus execute_single_node``; a graph's own fail step is not a task of its own unless a
  ``next`` leads to it: a failing step runs it inside its container (core's
  ``execute_single_node``), which is what ends the run or branch in FAIL;
* a composite step is a DAG template ``fan-out`` -> branch task(s) -> ``fan-in``; the fan-in
  depends on every branch having ended (or the fan-out having failed), so it always runs and
  decides the composite's status;
* a map's fan-out writes the JSON list of *indices* ``[0, ..., n-1]`` of its elements; the
  branch task expands over it with ``withParam`` and each container inside the branch gets the
  indices of every enclosing map as ``--map-variable`` and ``MAGNUS_MAP_INDICES=1``: magnus
  resolves an index to its element through the ``map_values`` the map step's log records.
  Elements never travel through Argo (parameter size limits), and keep their JSON types.

Every name is deterministic (``naming``), so the same pipeline always renders the same bytes.

This module holds the workflow and the DAG template of each graph; the templates of steps are
built by :mod:`.containers` (leaf steps, fan containers) and :mod:`.composite_templates`, the
workflow's arguments by :mod:`.arguments`, the map indices handed between templates by
:mod:`.map_scope`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable
from typing import Any

from hera.workflows import models as m

from magnus.composites import CompositeNode
from magnus.context import RunContext
from magnus.exceptions import ConfigurationError
from magnus.graph import Graph
from magnus_executor_argo import kubernetes
from magnus_executor_argo.arguments import exposed_parameters, workflow_arguments
from magnus_executor_argo.composite_templates import composite_templates
from magnus_executor_argo.config import ArgoConfig, filled, step_settings
from magnus_executor_argo.containers import ContainerTemplates
from magnus_executor_argo.document import Workflow, dump_yaml, to_document
from magnus_executor_argo.graph_walk import branch_graphs, dependencies, rendered_nodes
from magnus_executor_argo.map_scope import inputs, pass_down
from magnus_executor_argo.naming import dns_label, unique_names

logger = logging.getLogger(__name__)

API_VERSION = "argoproj.io/v1alpha1"
ENTRYPOINT = "magnus-dag"

# ---------------------------------------------------------------------------- entry points


def render_model(config: ArgoConfig, context: RunContext) -> Workflow:
    """The workflow (a ``CronWorkflow`` when ``schedule`` is set) as hera models.

    ``config`` is the executor's configuration as read (the executor itself is one):
    placeholders are filled and overrides applied here, with ``context.variables``.
    """
    return _Renderer(config, context).workflow()


def render_document(config: ArgoConfig, context: RunContext) -> dict[str, Any]:
    """The workflow as the plain mapping its YAML holds (``None`` fields left out)."""
    return to_document(render_model(config, context))


def render_yaml(config: ArgoConfig, context: RunContext) -> str:
    """The workflow as YAML text."""
    return dump_yaml(render_document(config, context))


# ---------------------------------------------------------------------------- the renderer


class _Renderer:
    """Renders one pipeline: the workflow, and the DAG template of each graph in it."""

    def __init__(self, config: ArgoConfig, context: RunContext) -> None:
        if context.dag is None:
            raise ConfigurationError("There is no pipeline to render")
        if not context.pipeline_file:
            raise ConfigurationError(
                "The argo executor renders containers that load the pipeline from its file: "
                "run it with `magnus execute -f <pipeline.yaml>`"
            )
        self.dag = context.dag
        variables = dict(context.variables)
        # Steps' settings are resolved from the configuration as read (filling twice would
        # undo `$$`); the workflow's own keys come filled.
        self.config = filled(config, variables)
        self.defaults = step_settings(config, None, variables)
        self.templates: list[m.Template] = []
        template_names = self._name_templates()
        self.exposed = exposed_parameters(self.config, context)
        self.containers = ContainerTemplates(
            context, config, self.config, variables, self.defaults, template_names, self.exposed
        )
        self._check_name()
        if self.defaults.retry_strategy.limit:
            logger.info(
                "retry_strategy.limit %s retries magnus' fan-out and fan-in containers; task "
                "steps are retried max_attempts - 1 times",
                self.defaults.retry_strategy.limit,
            )

    # ------------------------------------------------------------------ workflow

    def workflow(self) -> Workflow:
        self._graph_template(self.dag, ENTRYPOINT, (), root=True)
        spec = m.WorkflowSpec(
            active_deadline_seconds=self.config.max_workflow_duration_in_seconds,
            arguments=m.Arguments(parameters=workflow_arguments(self.exposed)),
            entrypoint=ENTRYPOINT,
            node_selector=self.defaults.node_selector,
            parallelism=self.defaults.parallelism,
            pod_gc=m.PodGC(strategy="OnPodCompletion"),
            retry_strategy=kubernetes.retry_strategy(self.defaults.retry_strategy),
            service_account_name=self.config.service_account_name,
            template_defaults=m.Template(
                active_deadline_seconds=m.IntOrString(self.defaults.max_step_duration_in_seconds)
            ),
            templates=self.templates,
            tolerations=kubernetes.tolerations(self.defaults.tolerations),
            volumes=[
                m.Volume(
                    name=f"executor-{index}",
                    persistent_volume_claim=m.PersistentVolumeClaimVolumeSource(
                        claim_name=volume.name
                    ),
                )
                for index, volume in enumerate(self.config.persistent_volumes)
            ]
            or None,
        )
        annotations = self.config.annotations or None
        labels = self.config.labels or None
        schedule = self.config.schedule
        if schedule is None:
            return m.Workflow(
                api_version=API_VERSION,
                kind="Workflow",
                metadata=m.ObjectMeta(
                    generate_name=self.config.name, annotations=annotations, labels=labels
                ),
                spec=spec,
            )
        # A CronWorkflow is applied by name (kubectl/argo cron create); its runs get the
        # controller's generated names.
        return m.CronWorkflow(
            api_version=API_VERSION,
            kind="CronWorkflow",
            metadata=m.ObjectMeta(
                name=self.config.name.rstrip("-.") or ENTRYPOINT,
                annotations=annotations,
                labels=labels,
            ),
            spec=m.CronWorkflowSpec(
                schedules=[schedule] if isinstance(schedule, str) else list(schedule),
                workflow_spec=spec,
            ),
        )

    def _check_name(self) -> None:
        name = self.config.name
        if not re.fullmatch(r"[a-z0-9][-a-z0-9.]*", name) or len(name) > 63:
            raise ConfigurationError(
                f"executor service 'argo': key 'name': {name!r} is not a valid Kubernetes name "
                "prefix (lower-case letters, digits, '-' and '.', at most 63 characters)"
            )

    # ------------------------------------------------------------------ names

    def _name_templates(self) -> dict[Hashable, str]:
        items: list[tuple[Hashable, str, str]] = []

        def collect(graph: Graph) -> None:
            for node in rendered_nodes(graph):
                label = dns_label(node.internal_name)
                if isinstance(node, CompositeNode):
                    for kind, suffix in (
                        ("composite", ""),
                        ("fan-out", "-fan-out"),
                        ("fan-in", "-fan-in"),
                    ):
                        key = (kind, node.internal_name)
                        items.append((key, f"{label}{suffix}", f"{kind} {node.internal_name}"))
                    for branch in branch_graphs(node):
                        key = ("branch", branch.internal_branch_name)
                        name = branch.internal_branch_name
                        items.append((key, dns_label(name), f"branch {name}"))
                        collect(branch)
                else:
                    key = ("leaf", node.internal_name)
                    items.append((key, label, f"leaf {node.internal_name}"))

        collect(self.dag)
        return unique_names(items, reserved=[ENTRYPOINT])

    # ------------------------------------------------------------------ graphs

    def _graph_template(
        self, graph: Graph, name: str, scope: tuple[str, ...], root: bool = False
    ) -> None:
        """The DAG template of a graph, then the templates of its steps."""
        nodes = rendered_nodes(graph)
        task_names = unique_names((n.name, dns_label(n.name), n.name) for n in nodes)
        depends = dependencies(nodes, task_names, graph)
        tasks = []
        for node in nodes:
            kind = "composite" if isinstance(node, CompositeNode) else "leaf"
            tasks.append(
                m.DAGTask(
                    name=task_names[node.name],
                    template=self.containers.template_names[(kind, node.internal_name)],
                    depends=depends.get(node.name),
                    arguments=pass_down(scope),
                )
            )
        self.templates.append(
            m.Template(
                name=name,
                inputs=inputs(scope),
                dag=m.DAGTemplate(tasks=tasks, fail_fast=True if root else None),
            )
        )
        for node in nodes:
            first = root and node.name == graph.start_at
            if not isinstance(node, CompositeNode):
                self.templates.append(self.containers.leaf(node, scope, first))
                continue
            templates, branch_scope = composite_templates(node, scope, first, self.containers)
            self.templates += templates
            for branch in branch_graphs(node):
                name = self.containers.template_names[("branch", branch.internal_branch_name)]
                self._graph_template(branch, name, branch_scope)
