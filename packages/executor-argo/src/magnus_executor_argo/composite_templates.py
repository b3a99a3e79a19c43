"""The templates of a composite step (parallel, map, dag): its DAG and its fan containers.

A composite step is a DAG template ``fan-out`` -> branch task(s) -> ``fan-in``; the fan-in
depends on every branch having ended (or the fan-out having failed), so it always runs and
decides the composite's status. A map's fan-out writes the JSON list of the *indices* of its
elements to :data:`MAP_INDICES_FILE`; the branch task expands over it with ``withParam``.
The branches' own templates are the renderer's: a branch is a graph like the pipeline.
"""

from __future__ import annotations

from hera.workflows import models as m

from magnus.composites import CompositeNode, MapNode, ParallelNode
from magnus.exceptions import ConfigurationError
from magnus.orchestration import FAN, FAN_IN, FAN_OUT, MAP_INDICES_FILE_ENV
from magnus_executor_argo import kubernetes
from magnus_executor_argo.arguments import PARAMETER_NAME
from magnus_executor_argo.containers import ContainerTemplates
from magnus_executor_argo.graph_walk import branch_graphs
from magnus_executor_argo.map_scope import inputs, pass_down, scope_parameters
from magnus_executor_argo.naming import dns_label, unique_names

#: where a map's fan-out container writes the JSON list of element indices (MAP_INDICES_FILE_ENV)
MAP_INDICES_FILE = "/tmp/output.txt"
ITERATE_ON_OUTPUT = "iterate-on"
FAN_OUT_TASK = "fan-out"
FAN_IN_TASK = "fan-in"


def composite_templates(
    node: CompositeNode, scope: tuple[str, ...], first: bool, containers: ContainerTemplates
) -> tuple[list[m.Template], tuple[str, ...]]:
    """A composite's DAG template and fan containers, and the scope its branches run in.

    ``first`` says the composite is the pipeline's first step: its fan-out starts the run.
    """
    names = containers.template_names
    defaults = containers.defaults
    settings = containers.settings(node)
    branches = branch_graphs(node)
    branch_scope = scope
    if isinstance(node, MapNode):
        branch_scope = (*scope, _iterate_as(node, scope))
        branch_tasks = [
            m.DAGTask(
                name="map",
                template=names[("branch", node.branch.internal_branch_name)],
                depends=f"{FAN_OUT_TASK}.Succeeded",
                with_param=f"{{{{tasks.{FAN_OUT_TASK}.outputs.parameters.{ITERATE_ON_OUTPUT}}}}}",
                arguments=m.Arguments(
                    parameters=[
                        *scope_parameters(scope),
                        m.Parameter(name=node.iterate_as, value="{{item}}"),
                    ]
                ),
            )
        ]
    else:
        keys = (
            list(node.branches) if isinstance(node, ParallelNode) else ["dag"]
        )  # a dag step's single branch is called dag
        task_names = unique_names(
            ((key, dns_label(key), key) for key in keys), reserved=[FAN_OUT_TASK, FAN_IN_TASK]
        )
        branch_tasks = [
            m.DAGTask(
                name=task_names[key],
                template=names[("branch", graph.internal_branch_name)],
                depends=f"{FAN_OUT_TASK}.Succeeded",
                arguments=pass_down(scope),
            )
            for key, graph in zip(keys, branches, strict=True)
        ]
    # Skipped: a map over an empty list expands to no task at all.
    ended = ["Succeeded", "Failed", "Errored"] + (["Skipped"] if isinstance(node, MapNode) else [])
    all_ended = " && ".join(
        "(" + " || ".join(f"{task.name}.{state}" for state in ended) + ")" for task in branch_tasks
    )
    if len(branch_tasks) > 1:
        all_ended = f"({all_ended})"
    tasks = [
        m.DAGTask(
            name=FAN_OUT_TASK,
            template=names[("fan-out", node.internal_name)],
            arguments=pass_down(scope),
        ),
        *branch_tasks,
        m.DAGTask(
            name=FAN_IN_TASK,
            template=names[("fan-in", node.internal_name)],
            depends=f"{FAN_OUT_TASK}.Failed || {all_ended}",
            arguments=pass_down(scope),
        ),
    ]
    parallelism = settings.parallelism
    templates = [
        m.Template(
            name=names[("composite", node.internal_name)],
            inputs=inputs(scope),
            parallelism=parallelism if parallelism != defaults.parallelism else None,
            dag=m.DAGTemplate(
                tasks=tasks,
                fail_fast=settings.fail_fast if isinstance(node, MapNode) else None,
            ),
        )
    ]
    out_env = containers.first_env(first)
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
        templates.append(
            containers.container(
                name=names[(f"fan-{mode}", node.internal_name)],
                settings=settings,
                command=containers.command(
                    FAN, node.internal_name, scope, mode=mode, first=first and mode == FAN_OUT
                ),
                scope=scope,
                env=env,
                retry=kubernetes.retry_strategy(settings.retry_strategy)
                if settings.retry_strategy != defaults.retry_strategy
                else None,
                outputs=outputs if mode == FAN_OUT else None,
            )
        )
    return templates, branch_scope


def _iterate_as(node: MapNode, scope: tuple[str, ...]) -> str:
    """The map's ``iterate_as``, checked: an Argo parameter name, not yet in ``scope``."""
    name = node.iterate_as
    if not PARAMETER_NAME.fullmatch(name):
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
