"""From a magnus graph to an Argo Workflow, built with hera's generated models of Argo's API.

Shape (magnus 0.5's, with the changes of the argo issue):

* the entry point ``magnus-dag`` is a DAG template; every graph (the pipeline, each branch)
  becomes a DAG template whose tasks are its steps, walked from ``start_at`` along ``next`` and
  ``on_failure``; a task depends on ``<previous>.Succeeded`` and, for an ``on_failure`` target,
  on ``<failed step>.Failed``, joined with `` || ``;
* a leaf step (task, stub, success, fail) is a container template running
  ``magnus execute_single_node``; a graph's own fail step is not a task of its own unless a
  ``next`` leads to it: a failing step runs it inside its container (core's
  ``execute_single_node``), which is what ends the run or branch in FAIL; likewise a graph's
  success step is run by the container of each step leading to it (``--then-success``);
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
from pathlib import Path
from typing import Any

from hera.workflows import models as m

from magnus.composites import CompositeNode
from magnus.context import RunContext
from magnus.exceptions import ConfigurationError
from magnus.graph import Graph
from magnus.orchestrated_lifecycle import reused_before_start
from magnus_executor_argo import kubernetes
from magnus_executor_argo.arguments import exposed_parameters, workflow_arguments
from magnus_executor_argo.composite_templates import composite_templates
from magnus_executor_argo.config import ArgoConfig, Metadata, filled, step_settings
from magnus_executor_argo.containers import PIPELINE_LABEL, TMP_VOLUME, ContainerTemplates
from magnus_executor_argo.control_flow_templates import (
    control_flow_template_kinds,
    control_flow_templates,
    is_control_flow,
)
from magnus_executor_argo.document import Workflow, dump_yaml, to_document
from magnus_executor_argo.exit_handler import END_RUN_TEMPLATE, EXIT_HANDLER, exit_handler
from magnus_executor_argo.graph_walk import (
    branch_graphs,
    dependencies,
    leads_to_folded_success,
    rendered_nodes,
    single_leaf,
)
from magnus_executor_argo.map_scope import inputs, pass_down
from magnus_executor_argo.naming import dns_label, unique_names
from magnus_executor_argo.rerun_start import (
    RERUN_START,
    RERUN_START_TASK,
    first_to_run,
    rerun_start,
)

logger = logging.getLogger(__name__)

API_VERSION = "argoproj.io/v1alpha1"
ENTRYPOINT = "magnus-dag"
#: the longest pipeline label in a generated name: Kubernetes adds 5 characters to a
#: generateName of at most 58
_NAME_ROOM = 52

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
        _warn_of_host_paths(context)
        variables = dict(context.variables)
        # Steps' settings are resolved from the configuration as read (filling twice would
        # undo `$$`); the workflow's own keys come filled.
        self.config = filled(config, variables)
        self.defaults = step_settings(config, None, variables)
        self.templates: list[m.Template] = []
        template_names = self._name_templates()
        self.exposed = exposed_parameters(self.config, context)
        # A re-run: the steps it reuses first cost no pod (rerun_start).
        self.rerun = context.use_cached
        self.reused = reused_before_start(context)
        self.containers = ContainerTemplates(
            context, config, self.config, variables, self.defaults, template_names, self.exposed
        )
        # Named after the pipeline (or job) file unless configured: `argo list` tells runs apart.
        self.pipeline_label = dns_label(Path(context.pipeline_file).stem)[:_NAME_ROOM].strip("-")
        self.name = self.config.name if self.config.name is not None else f"{self.pipeline_label}-"
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
        self.templates.extend(exit_handler(self.containers))
        config, defaults = self.config, self.defaults
        where = "executor service 'argo'"
        pipeline = {PIPELINE_LABEL: self.pipeline_label}
        spec = m.WorkflowSpec(
            active_deadline_seconds=config.max_workflow_duration_in_seconds,
            affinity=self.containers.affinity(defaults, where),
            archive_logs=config.archive_logs,
            arguments=m.Arguments(parameters=workflow_arguments(self.exposed)),
            entrypoint=ENTRYPOINT,
            image_pull_secrets=[m.LocalObjectReference(name=s) for s in config.image_pull_secrets]
            or None,
            on_exit=EXIT_HANDLER,
            node_selector=defaults.node_selector,
            parallelism=defaults.parallelism,
            pod_gc=kubernetes.pod_gc(config.pod_gc),
            pod_metadata=_metadata(config.pod_metadata, pipeline),
            pod_priority_class_name=defaults.priority_class_name,
            pod_spec_patch=kubernetes.pod_spec_patch(defaults.pod_spec_patch),
            # Only a limit above 0 is written: task steps never take the workflow's retries.
            retry_strategy=kubernetes.retry_strategy(defaults.retry_strategy)
            if defaults.retry_strategy.limit
            else None,
            security_context=None
            if config.pod_security_context is None
            else kubernetes.kubernetes_object(
                m.PodSecurityContext,
                config.pod_security_context,
                f"{where}, key 'pod_security_context'",
            ),
            service_account_name=config.service_account_name,
            template_defaults=self.containers.template_defaults(),
            templates=self.templates,
            tolerations=kubernetes.tolerations(defaults.tolerations),
            ttl_strategy=kubernetes.ttl_strategy(config.ttl_strategy),
            volumes=self._volumes(),
            workflow_metadata=_workflow_metadata(config.workflow_metadata, pipeline),
        )
        annotations = config.annotations or None
        labels = {**pipeline, **config.labels}
        schedule = config.schedule
        if schedule is None:
            return m.Workflow(
                api_version=API_VERSION,
                kind="Workflow",
                metadata=m.ObjectMeta(
                    generate_name=self.name,
                    namespace=config.namespace,
                    annotations=annotations,
                    labels=labels,
                ),
                spec=spec,
            )
        # A CronWorkflow is applied by name (kubectl/argo cron create); its runs get the
        # controller's generated names.
        return m.CronWorkflow(
            api_version=API_VERSION,
            kind="CronWorkflow",
            metadata=m.ObjectMeta(
                name=self.name.rstrip("-.") or self.pipeline_label,
                namespace=config.namespace,
                annotations=annotations,
                labels=labels,
            ),
            spec=m.CronWorkflowSpec(
                schedules=[schedule] if isinstance(schedule, str) else list(schedule),
                concurrency_policy=config.concurrency_policy,
                timezone=config.timezone,
                starting_deadline_seconds=config.starting_deadline_seconds,
                successful_jobs_history_limit=config.successful_jobs_history_limit,
                failed_jobs_history_limit=config.failed_jobs_history_limit,
                workflow_spec=spec,
            ),
        )

    def _volumes(self) -> list[m.Volume] | None:
        volumes = [
            m.Volume(
                name=f"executor-{index}",
                persistent_volume_claim=m.PersistentVolumeClaimVolumeSource(claim_name=volume.name),
            )
            for index, volume in enumerate(self.config.persistent_volumes)
        ]
        if self.containers.read_only:
            volumes.append(m.Volume(name=TMP_VOLUME, empty_dir=m.EmptyDirVolumeSource()))
        return volumes or None

    def _check_name(self) -> None:
        name = self.name
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
                        ("batch", "-batch"),
                        *control_flow_template_kinds(node),
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
        return unique_names(
            items, reserved=[ENTRYPOINT, EXIT_HANDLER, END_RUN_TEMPLATE, RERUN_START]
        )

    # ------------------------------------------------------------------ graphs

    def _graph_template(
        self, graph: Graph, name: str, scope: tuple[str, ...], root: bool = False
    ) -> None:
        """The DAG template of a graph, then the templates of its steps."""
        nodes = rendered_nodes(graph)
        tasks = []
        rerun = root and self.rerun
        if rerun:
            start = first_to_run(graph, self.reused)
            nodes = rendered_nodes(graph, start.name) if start is not None else []
            tasks.append(m.DAGTask(name=RERUN_START_TASK, template=RERUN_START))
            self.templates.append(rerun_start(self.containers, self.containers.context))
        reserved = [RERUN_START_TASK] if rerun else []
        task_names = unique_names(
            ((n.name, dns_label(n.name), n.name) for n in nodes), reserved=reserved
        )
        depends = dependencies(nodes, task_names, graph)
        if rerun and nodes:
            depends[nodes[0].name] = f"{RERUN_START_TASK}.Succeeded"
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
            first = root and node.name == graph.start_at and not rerun
            then_success = leads_to_folded_success(graph, node)
            if not isinstance(node, CompositeNode):
                self.templates.append(self.containers.leaf(node, scope, first, then_success))
                continue
            build = control_flow_templates if is_control_flow(node) else composite_templates
            composite = build(node, scope, first, self.containers, then_success)
            self.templates += composite.templates
            for branch in composite.branches:
                self._branch_templates(branch, composite.branch_scope)

    def _branch_templates(self, branch: Graph, scope: tuple[str, ...]) -> None:
        """A branch's templates: its DAG's, or only its step's when it is one leaf step."""
        leaf = single_leaf(branch)
        if leaf is not None:
            then_success = leads_to_folded_success(branch, leaf)
            self.templates.append(self.containers.leaf(leaf, scope, False, then_success))
            return
        name = self.containers.template_names[("branch", branch.internal_branch_name)]
        self._graph_template(branch, name, scope)


def _warn_of_host_paths(context: RunContext) -> None:
    """Warn of the files the containers read at an absolute path of this machine.

    Every container runs from the image's working directory: a path absolute here (a home
    folder, a checkout) rarely exists in the image, and the pods would fail to start the step.
    """
    files = (
        ("pipeline", context.pipeline_file),
        ("configuration", context.configuration_file),
        ("parameters", context.parameters_file),
    )
    for what, path in files:
        if path and Path(path).is_absolute():
            logger.warning(
                "The %s file %s is an absolute path on this machine: every container reads it "
                "at that path in its image; give it relative to the project (the image's "
                "working directory)",
                what,
                path,
            )


def _metadata(config: Metadata, labels: dict[str, str]) -> m.Metadata:
    """Pod metadata: magnus' labels, then the configured ones."""
    return m.Metadata(labels={**labels, **config.labels}, annotations=config.annotations or None)


def _workflow_metadata(config: Metadata, labels: dict[str, str]) -> m.WorkflowMetadata:
    """The metadata of the Workflow objects a run creates (a CronWorkflow's runs too)."""
    return m.WorkflowMetadata(
        labels={**labels, **config.labels}, annotations=config.annotations or None
    )
