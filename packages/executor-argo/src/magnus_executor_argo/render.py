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
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Hashable
from typing import Any

from hera.workflows import models as m

from magnus.composites import CompositeNode, MapNode, ParallelNode
from magnus.context import RunContext
from magnus.exceptions import ConfigurationError
from magnus.graph import Graph
from magnus.internal_names import to_command_line
from magnus.nodes import BaseNode, ExecutableNode
from magnus.orchestration import (
    ATTEMPT_ENV,
    EXECUTE_SINGLE_NODE,
    FAN,
    FAN_IN,
    FAN_OUT,
    MAP_INDICES_ENV,
    MAP_INDICES_FILE_ENV,
    callback_command,
)
from magnus.parameters import PARAMETER_PREFIX, initial_parameters
from magnus_executor_argo import kubernetes
from magnus_executor_argo.config import ArgoConfig, StepSettings, filled, step_settings
from magnus_executor_argo.document import Workflow, dump_yaml, to_document
from magnus_executor_argo.graph_walk import branch_graphs, dependencies, rendered_nodes
from magnus_executor_argo.naming import dns_label, unique_names

logger = logging.getLogger(__name__)

API_VERSION = "argoproj.io/v1alpha1"
ENTRYPOINT = "magnus-dag"
RUN_ID_ARGUMENT = "run_id"
RUN_ID = "{{workflow.parameters.run_id}}"
#: the command every container runs: the magnus console script of the image
MAGNUS_COMMAND = "magnus"
#: where a map's fan-out container writes the JSON list of element indices (MAP_INDICES_FILE_ENV)
MAP_INDICES_FILE = "/tmp/output.txt"
ITERATE_ON_OUTPUT = "iterate-on"
#: Argo's ``retries`` counts from 0 in a template with a retryStrategy; magnus' attempts from 1
ATTEMPT_EXPRESSION = "{{=asInt(retries) + 1}}"
FAN_OUT_TASK = "fan-out"
FAN_IN_TASK = "fan-in"
#: Argo's pattern for parameter names (inputs and workflow arguments)
_PARAMETER_NAME = re.compile(r"[-a-zA-Z0-9_]+")
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "FATAL"}


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
    """Renders one pipeline; holds what every template shares."""

    def __init__(self, config: ArgoConfig, context: RunContext) -> None:
        if context.dag is None:
            raise ConfigurationError("There is no pipeline to render")
        if not context.pipeline_file:
            raise ConfigurationError(
                "The argo executor renders containers that load the pipeline from its file: "
                "run it with `magnus execute -f <pipeline.yaml>`"
            )
        self.context = context
        self.dag = context.dag
        self.variables = dict(context.variables)
        # As read: each step's settings are resolved from it (filling twice would undo `$$`).
        self.configured = config
        self.config = filled(config, self.variables)
        self.defaults = step_settings(config, None, self.variables)
        self.log_level = _log_level()
        self.templates: list[m.Template] = []
        self.template_names = self._name_templates()
        self.volume_mounts = [
            m.VolumeMount(name=f"executor-{index}", mount_path=volume.mount_path)
            for index, volume in enumerate(self.config.persistent_volumes)
        ]
        self.secret_env = [
            m.EnvVar(
                name=secret.environment_variable,
                value_from=m.EnvVarSource(
                    secret_key_ref=m.SecretKeySelector(
                        name=secret.secret_name, key=secret.secret_key
                    )
                ),
            )
            for secret in self.config.secrets_from_k8s
        ]
        self.exposed = self._exposed_parameters()
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
            arguments=m.Arguments(parameters=self._arguments()),
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

    # ------------------------------------------------------------------ parameters

    def _exposed_parameters(self) -> dict[str, str]:
        """The initial parameters that become workflow arguments: ``{name: argument value}``.

        A value is written as ``MAGNUS_PRM_`` reads it back: JSON text, except a string that
        is not itself JSON text, which stays bare (so ``english`` and not ``"english"``).
        """
        if not self.config.expose_parameters_as_inputs:
            return {}
        parameters = initial_parameters(self.context.parameters_file or None, os.environ)
        exposed: dict[str, str] = {}
        for key in sorted(parameters):
            value = parameters[key]
            if value is None or not isinstance(value, (str, int, float, bool)):
                continue  # lists and mappings stay in the parameters file
            if key == RUN_ID_ARGUMENT or not _PARAMETER_NAME.fullmatch(key):
                logger.warning(
                    "Parameter %r is not exposed as a workflow argument: %s",
                    key,
                    "run_id is magnus' own argument"
                    if key == RUN_ID_ARGUMENT
                    else "Argo parameter names are letters, digits, '-' and '_'",
                )
                continue
            exposed[key] = _argument_value(value)
        return exposed

    def _arguments(self) -> list[m.Parameter]:
        arguments = [m.Parameter(name=RUN_ID_ARGUMENT, value="{{workflow.uid}}")]
        arguments += [m.Parameter(name=key, value=value) for key, value in self.exposed.items()]
        return arguments

    def _parameter_env(self) -> list[m.EnvVar]:
        # Only the first container starts the run: submit-time values reach the run log there.
        return [
            m.EnvVar(name=f"{PARAMETER_PREFIX}{key}", value=f"{{{{workflow.parameters.{key}}}}}")
            for key in self.exposed
        ]

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

    # ------------------------------------------------------------------ graphs and composites

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
                    template=self.template_names[(kind, node.internal_name)],
                    depends=depends.get(node.name),
                    arguments=_pass_down(scope),
                )
            )
        self.templates.append(
            m.Template(
                name=name,
                inputs=_inputs(scope),
                dag=m.DAGTemplate(tasks=tasks, fail_fast=True if root else None),
            )
        )
        for node in nodes:
            first = root and node.name == graph.start_at
            if isinstance(node, CompositeNode):
                self._composite_templates(node, scope, first)
            else:
                self.templates.append(self._leaf_template(node, scope, first))

    def _composite_templates(
        self, node: CompositeNode, scope: tuple[str, ...], first: bool
    ) -> None:
        """A composite: its DAG (fan-out, branches, fan-in), the fan containers, its branches."""
        settings = self._settings(node)
        branches = branch_graphs(node)
        branch_scope = scope
        if isinstance(node, MapNode):
            branch_scope = (*scope, self._iterate_as(node, scope))
            branch_tasks = [
                m.DAGTask(
                    name="map",
                    template=self.template_names[("branch", node.branch.internal_branch_name)],
                    depends=f"{FAN_OUT_TASK}.Succeeded",
                    with_param=f"{{{{tasks.{FAN_OUT_TASK}.outputs.parameters.{ITERATE_ON_OUTPUT}}}}}",
                    arguments=m.Arguments(
                        parameters=[
                            *_scope_parameters(scope),
                            m.Parameter(name=node.iterate_as, value="{{item}}"),
                        ]
                    ),
                )
            ]
        else:
            keys = (
                list(node.branches) if isinstance(node, ParallelNode) else ["dag"]
            )  # a dag step's single branch is called dag
            names = unique_names(
                ((key, dns_label(key), key) for key in keys), reserved=[FAN_OUT_TASK, FAN_IN_TASK]
            )
            branch_tasks = [
                m.DAGTask(
                    name=names[key],
                    template=self.template_names[("branch", graph.internal_branch_name)],
                    depends=f"{FAN_OUT_TASK}.Succeeded",
                    arguments=_pass_down(scope),
                )
                for key, graph in zip(keys, branches, strict=True)
            ]
        # Skipped: a map over an empty list expands to no task at all.
        ended = ["Succeeded", "Failed", "Errored"] + (
            ["Skipped"] if isinstance(node, MapNode) else []
        )
        all_ended = " && ".join(
            "(" + " || ".join(f"{task.name}.{state}" for state in ended) + ")"
            for task in branch_tasks
        )
        if len(branch_tasks) > 1:
            all_ended = f"({all_ended})"
        tasks = [
            m.DAGTask(
                name=FAN_OUT_TASK,
                template=self.template_names[("fan-out", node.internal_name)],
                arguments=_pass_down(scope),
            ),
            *branch_tasks,
            m.DAGTask(
                name=FAN_IN_TASK,
                template=self.template_names[("fan-in", node.internal_name)],
                depends=f"{FAN_OUT_TASK}.Failed || {all_ended}",
                arguments=_pass_down(scope),
            ),
        ]
        parallelism = settings.parallelism
        self.templates.append(
            m.Template(
                name=self.template_names[("composite", node.internal_name)],
                inputs=_inputs(scope),
                parallelism=parallelism if parallelism != self.defaults.parallelism else None,
                dag=m.DAGTemplate(
                    tasks=tasks,
                    fail_fast=settings.fail_fast if isinstance(node, MapNode) else None,
                ),
            )
        )
        out_env = self._parameter_env() if first else []
        outputs = None
        if isinstance(node, MapNode):
            out_env.append(m.EnvVar(name=MAP_INDICES_FILE_ENV, value=MAP_INDICES_FILE))
            outputs = m.Outputs(
                parameters=[
                    m.Parameter(
                        name=ITERATE_ON_OUTPUT,
                        # An empty list if the fan-out failed before writing: fan-in still runs.
                        value_from=m.ValueFrom(path=MAP_INDICES_FILE, default="[]"),
                    )
                ]
            )
        for mode, env in ((FAN_OUT, out_env), (FAN_IN, [])):
            template = self._container_template(
                name=self.template_names[(f"fan-{mode}", node.internal_name)],
                settings=settings,
                command=self._command(FAN, node.internal_name, scope, mode=mode),
                scope=scope,
                env=env,
                retry=kubernetes.retry_strategy(settings.retry_strategy)
                if settings.retry_strategy != self.defaults.retry_strategy
                else None,
                outputs=outputs if mode == FAN_OUT else None,
            )
            self.templates.append(template)
        for graph in branches:
            self._graph_template(
                graph, self.template_names[("branch", graph.internal_branch_name)], branch_scope
            )

    def _iterate_as(self, node: MapNode, scope: tuple[str, ...]) -> str:
        name = node.iterate_as
        if not _PARAMETER_NAME.fullmatch(name):
            raise ConfigurationError(
                f"Map step {node.internal_name!r}: iterate_as {name!r} cannot be an Argo "
                "parameter name (letters, digits, '-' and '_')"
            )
        if name in scope:
            raise ConfigurationError(
                f"Map step {node.internal_name!r} iterates as {name!r}, like a map it is nested "
                "in: nested maps need different iterate_as names"
            )
        return name

    # ------------------------------------------------------------------ leaves

    def _leaf_template(self, node: BaseNode, scope: tuple[str, ...], first: bool) -> m.Template:
        settings = self._settings(node)
        env = self._parameter_env() if first else []
        retry = None
        attempts = node.max_attempts if isinstance(node, ExecutableNode) else 1
        override_limit = settings.retry_strategy.limit
        if override_limit and override_limit != self.defaults.retry_strategy.limit:
            logger.warning(
                "Step %s: retry_strategy.limit is not used for a task step; it is retried "
                "max_attempts - 1 times (max_attempts: %s)",
                node.internal_name,
                attempts,
            )
        if attempts > 1 or self.defaults.retry_strategy.limit:
            # Argo retries the container; magnus records each attempt once, numbered by Argo.
            # A template of its own also keeps a workflow-wide limit off task steps.
            retry = kubernetes.retry_strategy(settings.retry_strategy, limit=attempts - 1)
            if attempts > 1:
                env.append(m.EnvVar(name=ATTEMPT_ENV, value=ATTEMPT_EXPRESSION))
        return self._container_template(
            name=self.template_names[("leaf", node.internal_name)],
            settings=settings,
            command=self._command(EXECUTE_SINGLE_NODE, node.internal_name, scope),
            scope=scope,
            env=env,
            retry=retry,
        )

    def _container_template(
        self,
        *,
        name: str,
        settings: StepSettings,
        command: list[str],
        scope: tuple[str, ...],
        env: list[m.EnvVar],
        retry: m.RetryStrategy | None,
        outputs: m.Outputs | None = None,
    ) -> m.Template:
        """A container template; template-level settings only where they differ from the spec's."""
        defaults = self.defaults
        env = ([m.EnvVar(name=MAP_INDICES_ENV, value="1")] if scope else []) + env
        env += self.secret_env
        duration = settings.max_step_duration_in_seconds
        return m.Template(
            name=name,
            inputs=_inputs(scope),
            outputs=outputs,
            container=m.Container(
                image=settings.image,
                command=command,
                env=env or None,
                image_pull_policy=settings.image_pull_policy or None,
                resources=kubernetes.resources(settings.resources),
                volume_mounts=list(self.volume_mounts) or None,
            ),
            active_deadline_seconds=m.IntOrString(duration)
            if duration != defaults.max_step_duration_in_seconds
            else None,
            # Argo accepts timeout on leaf templates only, so it is set here, not in
            # templateDefaults (which reach DAG templates too): an hour beyond the deadline.
            timeout=f"{duration + 3600}s",
            retry_strategy=retry,
            tolerations=kubernetes.tolerations(settings.tolerations)
            if settings.tolerations != defaults.tolerations
            else None,
            node_selector=settings.node_selector
            if settings.node_selector != defaults.node_selector
            else None,
        )

    def _command(
        self, verb: str, internal_name: str, scope: tuple[str, ...], mode: str = ""
    ) -> list[str]:
        context = self.context
        return callback_command(
            [MAGNUS_COMMAND],
            verb,
            RUN_ID,
            to_command_line(internal_name),
            log_level=self.log_level,
            mode=mode,
            pipeline_file=context.pipeline_file,
            map_variable=_map_variable(scope) if scope else "",
            configuration_file=context.configuration_file,
            parameters_file=context.parameters_file,
            tag=context.tag,
        )

    def _settings(self, node: BaseNode) -> StepSettings:
        return step_settings(self.configured, node, self.variables)


# ---------------------------------------------------------------------------- small pieces


def _scope_parameters(scope: tuple[str, ...]) -> list[m.Parameter]:
    return [m.Parameter(name=name, value=f"{{{{inputs.parameters.{name}}}}}") for name in scope]


def _pass_down(scope: tuple[str, ...]) -> m.Arguments | None:
    """The map indices in force, handed from a template to the templates it calls."""
    return m.Arguments(parameters=_scope_parameters(scope)) if scope else None


def _inputs(scope: tuple[str, ...]) -> m.Inputs | None:
    return m.Inputs(parameters=[m.Parameter(name=name) for name in scope]) if scope else None


def _map_variable(scope: tuple[str, ...]) -> str:
    """The ``--map-variable`` JSON: each index is a bare number once Argo has filled it in."""
    entries = ", ".join(f'"{name}": {{{{inputs.parameters.{name}}}}}' for name in scope)
    return "{" + entries + "}"


def _argument_value(value: str | int | float | bool) -> str:
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value  # not JSON: MAGNUS_PRM_ keeps it as the string it is
    return json.dumps(value)


def _log_level() -> str:
    """The level magnus logs at here, for the containers to log at the same level."""
    level = logging.getLevelName(logging.getLogger("magnus").getEffectiveLevel())
    level = "FATAL" if level == "CRITICAL" else str(level)
    return level if level in _LOG_LEVELS else "WARNING"
