"""The templates of a composite step (parallel, map, dag): its DAG and its fan containers.

A composite step is a DAG template ``fan-out`` -> branch task(s) -> ``fan-in``; the fan-in
depends on every branch having ended (or the fan-out having failed), so it always runs and
decides the composite's status. A map's fan-out writes the JSON list of the *indices* of its
elements to :data:`MAP_INDICES_FILE`; the branch task expands over it with ``withParam``.
The branches' own templates are the renderer's: a branch is a graph like the pipeline; a branch
of one leaf step needs no DAG, its task calls the step's container (:func:`branch_template`).
A map with a ``batch_size`` expands over batch numbers instead, into containers that each run a
slice of its elements through the whole branch (``execute_single_branch --batch-size``).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from hera.workflows import models as m

from magnus.composites import CompositeNode, MapNode, ParallelNode
from magnus.exceptions import ConfigurationError
from magnus.graph import Graph
from magnus.orchestration import (
    BATCH_SIZE_OPTION,
    EXECUTE_SINGLE_BRANCH,
    FAN,
    FAN_IN,
    FAN_OUT,
    LABELLED_OPTION,
    MAP_INDICES_FILE_ENV,
    THEN_SUCCESS_OPTION,
)
from magnus_executor_argo import kubernetes
from magnus_executor_argo.arguments import PARAMETER_NAME
from magnus_executor_argo.config import override_key
from magnus_executor_argo.containers import ContainerTemplates, logger
from magnus_executor_argo.graph_walk import branch_graphs, single_leaf
from magnus_executor_argo.map_scope import inputs, pass_down, scope_parameters
from magnus_executor_argo.naming import dns_label, unique_names

#: where a map's fan-out container writes the JSON list of element indices (MAP_INDICES_FILE_ENV)
MAP_INDICES_FILE = "/tmp/output.txt"
ITERATE_ON_OUTPUT = "iterate-on"
FAN_OUT_TASK = "fan-out"
FAN_IN_TASK = "fan-in"
#: the task of a map that expands over its elements (or its batches)
MAP_TASK = "map"


@dataclass
class Composite:
    """What a composite step renders to, and what the renderer still has to render."""

    templates: list[m.Template]
    #: the map indices in force inside the composite's branches
    branch_scope: tuple[str, ...]
    #: the branch graphs whose own templates the renderer renders (not a batched map's, whose
    #: batch containers run them)
    branches: list[Graph]


def branch_template(graph: Graph, names: dict[Hashable, str]) -> str:
    """The template a branch task calls: the branch's DAG, or its only step's container.

    A branch of one leaf step (whose container also runs the branch's success step) needs no
    DAG of its own: one node fewer in the workflow's status per branch, and per map element.
    """
    leaf = single_leaf(graph)
    if leaf is not None:
        return names[("leaf", leaf.internal_name)]
    return names[("branch", graph.internal_branch_name)]


def composite_templates(
    node: CompositeNode,
    scope: tuple[str, ...],
    first: bool,
    containers: ContainerTemplates,
    then_success: bool = False,
) -> Composite:
    """A composite's DAG template and fan containers, and the scope its branches run in.

    ``first`` says the composite is the pipeline's first step: its fan-out starts the run.
    ``then_success``: the composite's ``next`` is its graph's success step, which the fan-in
    runs once the composite succeeded.
    """
    names = containers.template_names
    defaults = containers.defaults
    settings = containers.settings(node)
    branches = branch_graphs(node)
    branch_scope = scope
    # 0 for a map without batches; None for another composite
    batch_size = (settings.batch_size or 0) if isinstance(node, MapNode) else None
    extra: list[m.Template] = []
    if isinstance(node, MapNode):
        branch_scope = (*scope, _iterate_as(node, scope))
        target = branch_template(node.branch, names)
        if batch_size:
            target = names[("batch", node.internal_name)]
            extra.append(_batch_container(node, branch_scope, batch_size, containers))
            branches = []
        branch_tasks = [
            m.DAGTask(
                name=MAP_TASK,
                template=target,
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
                template=branch_template(graph, names),
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
            # An evicted or deleted fan-out pod is Errored: the fan-in still decides the step.
            depends=f"{FAN_OUT_TASK}.Failed || {FAN_OUT_TASK}.Errored || {all_ended}",
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
    # A map's items may carry a label of their element (or batch): Argo's UI shows it.
    labelled = [LABELLED_OPTION] if settings.label_map_elements and batch_size == 0 else []
    options = {
        FAN_OUT: [BATCH_SIZE_OPTION, str(batch_size)] if batch_size else labelled,
        FAN_IN: [THEN_SUCCESS_OPTION] if then_success else [],
    }
    for mode, env in ((FAN_OUT, out_env), (FAN_IN, [])):
        templates.append(
            containers.container(
                name=names[(f"fan-{mode}", node.internal_name)],
                settings=settings,
                command=containers.command(
                    FAN, node.internal_name, scope, mode=mode, first=first and mode == FAN_OUT
                )
                + options[mode],
                scope=scope,
                env=env,
                retry=kubernetes.retry_strategy(settings.retry_strategy)
                if settings.retry_strategy != defaults.retry_strategy
                else None,
                outputs=outputs if mode == FAN_OUT else None,
            )
        )
    return Composite(templates + extra, branch_scope, branches)


def _batch_container(
    node: MapNode, branch_scope: tuple[str, ...], batch_size: int, containers: ContainerTemplates
) -> m.Template:
    """The container running one batch of a map's elements, each through its whole branch.

    It runs with the map's own settings: the branch's steps run in it, one after the other.
    """
    for step in node.branch.nodes.values():
        if override_key(containers.configured, step) is not None:
            logger.warning(
                "Step %s: its override is not used: map %s runs its elements in batches "
                "(batch_size %s), in containers with the map's own settings",
                step.internal_name,
                node.internal_name,
                batch_size,
            )
    settings = containers.settings(node)
    command = containers.command(
        EXECUTE_SINGLE_BRANCH, node.branch.internal_branch_name, branch_scope
    )
    return containers.container(
        name=containers.template_names[("batch", node.internal_name)],
        settings=settings,
        command=[*command, BATCH_SIZE_OPTION, str(batch_size)],
        scope=branch_scope,
        env=[],
        retry=kubernetes.retry_strategy(settings.retry_strategy)
        if settings.retry_strategy != containers.defaults.retry_strategy
        else None,
    )


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
