"""The templates of conditional and loop steps: branches chosen, or repeated, as the run goes.

A **conditional** is a DAG template ``fan-out`` -> one task per branch (``default`` included)
-> ``fan-in``. The fan-out container writes the key of the branch it chose to
:data:`~.composite_templates.MAP_INDICES_FILE` (the output parameter ``branch``; ``""`` when it
failed); each branch task runs ``when`` that output equals its key, so every other branch is
*Skipped*. The fan-in depends on each branch task having ended or been skipped (or on the
fan-out having failed), so it always runs and decides the step's status.

A **loop** is a DAG template ``fan-out`` -> ``iteration`` -> ``fan-in``, where ``iteration`` is a
template that calls itself: it runs the loop's branch for iteration ``i`` (an input parameter,
handed to the branch as the loop's ``index_as``, as a map hands down its ``iterate_as``), then
``fan --mode next``, whose output is the next iteration's number or ``""`` when the loop is
done (its break parameter is true, ``max_iterations`` ran, or the iteration failed); then
itself, ``when`` that output is not ``""``. magnus decides every iteration, so the recursion is
at most ``max_iterations`` deep. The loop's fan-in runs once the recursion ended, however it
ended, and decides the loop's status.

The branches' own templates are the renderer's, as for any composite.
"""

from __future__ import annotations

import re

from hera.workflows import models as m

from magnus.composites import CompositeNode
from magnus.control_flow import DEFAULT_BRANCH, ConditionalNode, LoopNode
from magnus.exceptions import ConfigurationError
from magnus.orchestration import (
    FAN,
    FAN_IN,
    FAN_NEXT,
    FAN_OUT,
    MAP_INDICES_FILE_ENV,
    THEN_SUCCESS_OPTION,
)
from magnus_executor_argo import kubernetes
from magnus_executor_argo.composite_templates import (
    FAN_IN_TASK,
    FAN_OUT_TASK,
    MAP_INDICES_FILE,
    Composite,
    branch_template,
)
from magnus_executor_argo.config import StepSettings
from magnus_executor_argo.containers import ContainerTemplates
from magnus_executor_argo.map_scope import inputs, pass_down, scope_parameters
from magnus_executor_argo.naming import dns_label, unique_names

#: the conditional fan-out's output: the key of the branch it chose ("" when it failed)
CHOSEN_OUTPUT = "branch"
#: a loop's fan-out and fan-next output: the number of the iteration to run ("" for none)
ITERATION_OUTPUT = "iteration"
#: the task names inside a loop's iteration template
ITERATION_BRANCH_TASK = "branch"
FAN_NEXT_TASK = "fan-next"
NEXT_ITERATION_TASK = "next-iteration"
#: the task of a loop's own DAG that runs the first iteration
FIRST_ITERATION_TASK = "iteration"
#: the fan-next container's and the iteration template's kinds in ``template_names``
FAN_NEXT_KIND = "fan-next"
ITERATION_KIND = "iteration"
#: what a branch key may not hold to be compared in a ``when`` (govaluate ends a string
#: literal at either quote; Argo fills ``{{...}}`` in before evaluating)
_NOT_IN_WHEN = re.compile(r"['\"\\{}\n\r]")
#: how a task that ran may end: failed containers too, so the fan-in still decides
_ENDED = ("Succeeded", "Failed", "Errored")


def is_control_flow(node: CompositeNode) -> bool:
    """Whether ``node`` is rendered here (a conditional or a loop)."""
    return isinstance(node, (ConditionalNode, LoopNode))


def control_flow_template_kinds(node: CompositeNode) -> list[tuple[str, str]]:
    """The templates a step needs beyond a composite's own (``composite``, ``fan-out``,
    ``fan-in``): ``(kind, name suffix)`` each, for the renderer's unique names."""
    if isinstance(node, LoopNode):
        return [(FAN_NEXT_KIND, "-fan-next"), (ITERATION_KIND, "-iteration")]
    return []


def control_flow_templates(
    node: CompositeNode,
    scope: tuple[str, ...],
    first: bool,
    containers: ContainerTemplates,
    then_success: bool = False,
) -> Composite:
    """A conditional's or a loop's templates, and the scope its branches run in.

    As :func:`~.composite_templates.composite_templates`: ``first`` says the step is the
    pipeline's first (its fan-out starts the run), ``then_success`` that its ``next`` is its
    graph's success step, which the fan-in runs once the step succeeded.
    """
    if isinstance(node, ConditionalNode):
        return _conditional(node, scope, first, containers, then_success)
    if isinstance(node, LoopNode):
        return _loop(node, scope, first, containers, then_success)
    raise ConfigurationError(f"Step {node.internal_name!r} is neither a conditional nor a loop")


# ---------------------------------------------------------------------------- conditional


def _conditional(
    node: ConditionalNode,
    scope: tuple[str, ...],
    first: bool,
    containers: ContainerTemplates,
    then_success: bool,
) -> Composite:
    names = containers.template_names
    graphs = dict(node.branches)
    if node.default is not None:
        graphs[DEFAULT_BRANCH] = node.default
    task_names = unique_names(
        ((key, dns_label(key), key) for key in graphs), reserved=[FAN_OUT_TASK, FAN_IN_TASK]
    )
    chosen = f"{{{{tasks.{FAN_OUT_TASK}.outputs.parameters.{CHOSEN_OUTPUT}}}}}"
    branch_tasks = [
        m.DAGTask(
            name=task_names[key],
            template=branch_template(graph, names),
            depends=f"{FAN_OUT_TASK}.Succeeded",
            when=f"{quoted(chosen)} == {quoted(_key_for_when(node, key))}",
            arguments=pass_down(scope),
        )
        for key, graph in graphs.items()
    ]
    # A branch not chosen is Skipped: the fan-in waits for the chosen one alone.
    ended = " && ".join(_ended(task.name, "Skipped") for task in branch_tasks)
    fan_in_depends = f"{FAN_OUT_TASK}.Failed || {FAN_OUT_TASK}.Errored || ({ended})"
    return _composite(
        node, scope, first, containers, then_success, CHOSEN_OUTPUT, branch_tasks, fan_in_depends
    )


def _key_for_when(node: ConditionalNode, key: str) -> str:
    if _NOT_IN_WHEN.search(key):
        raise ConfigurationError(
            f"Conditional step {node.internal_name!r}: branch name {key!r} cannot be compared "
            "in an Argo 'when' expression: use a name without quotes, backslashes or braces"
        )
    return key


def quoted(text: str) -> str:
    """``text`` as a string literal of govaluate, the language of Argo's ``when``.

    ``text`` holds no quote, backslash or line break (branch names are checked; Argo fills
    ``{{...}}`` references in before evaluating, with values of the same kind).
    """
    return f"'{text}'"


# ---------------------------------------------------------------------------- loop


def _loop(
    node: LoopNode,
    scope: tuple[str, ...],
    first: bool,
    containers: ContainerTemplates,
    then_success: bool,
) -> Composite:
    names = containers.template_names
    index_as = node.index_as  # an Argo parameter name, unlike the names around it (core checks)
    branch_scope = (*scope, index_as)
    iteration_template = names[(ITERATION_KIND, node.internal_name)]
    first_iteration = _iteration_task(
        FIRST_ITERATION_TASK, iteration_template, scope, index_as, FAN_OUT_TASK
    )
    # However the recursion ended, the fan-in decides the loop's status.
    fan_in_depends = (
        f"{FAN_OUT_TASK}.Failed || {FAN_OUT_TASK}.Errored || "
        f"{_ended(FIRST_ITERATION_TASK, 'Skipped')}"
    )
    composite = _composite(
        node,
        scope,
        first,
        containers,
        then_success,
        ITERATION_OUTPUT,
        [first_iteration],
        fan_in_depends,
    )
    next_iteration = _iteration_task(
        NEXT_ITERATION_TASK, iteration_template, scope, index_as, FAN_NEXT_TASK
    )
    iteration = m.Template(
        name=iteration_template,
        inputs=inputs(branch_scope),
        dag=m.DAGTemplate(
            tasks=[
                m.DAGTask(
                    name=ITERATION_BRANCH_TASK,
                    template=branch_template(node.branch, names),
                    arguments=pass_down(branch_scope),
                ),
                m.DAGTask(
                    name=FAN_NEXT_TASK,
                    template=names[(FAN_NEXT_KIND, node.internal_name)],
                    # A failed iteration too: fan-next records that the loop is done.
                    depends=_ended(ITERATION_BRANCH_TASK),
                    arguments=pass_down(scope),
                ),
                next_iteration,
            ]
        ),
    )
    fan_next = _fan_container(
        node, scope, containers, FAN_NEXT, first=False, output=ITERATION_OUTPUT
    )
    composite.templates += [iteration, fan_next]
    composite.branch_scope = branch_scope
    return composite


def _iteration_task(
    name: str, template: str, scope: tuple[str, ...], index_as: str, source: str
) -> m.DAGTask:
    """A task running iteration ``{{tasks.<source>.outputs.parameters.iteration}}`` once
    ``source`` succeeded, unless it wrote ``""`` (the loop is done)."""
    number = f"{{{{tasks.{source}.outputs.parameters.{ITERATION_OUTPUT}}}}}"
    return m.DAGTask(
        name=name,
        template=template,
        depends=f"{source}.Succeeded",
        when=f"{quoted(number)} != {quoted('')}",
        arguments=m.Arguments(
            parameters=[*scope_parameters(scope), m.Parameter(name=index_as, value=number)]
        ),
    )


# ---------------------------------------------------------------------------- shared


def _ended(task: str, *more: str) -> str:
    return "(" + " || ".join(f"{task}.{state}" for state in (*_ENDED, *more)) + ")"


def _composite(
    node: CompositeNode,
    scope: tuple[str, ...],
    first: bool,
    containers: ContainerTemplates,
    then_success: bool,
    output: str,
    branch_tasks: list[m.DAGTask],
    fan_in_depends: str,
) -> Composite:
    """The step's DAG (fan-out -> ``branch_tasks`` -> fan-in) and its two fan containers."""
    names = containers.template_names
    settings = containers.settings(node)
    parallelism = settings.parallelism
    dag = m.Template(
        name=names[("composite", node.internal_name)],
        inputs=inputs(scope),
        parallelism=parallelism if parallelism != containers.defaults.parallelism else None,
        dag=m.DAGTemplate(
            tasks=[
                m.DAGTask(
                    name=FAN_OUT_TASK,
                    template=names[("fan-out", node.internal_name)],
                    arguments=pass_down(scope),
                ),
                *branch_tasks,
                m.DAGTask(
                    name=FAN_IN_TASK,
                    template=names[("fan-in", node.internal_name)],
                    depends=fan_in_depends,
                    arguments=pass_down(scope),
                ),
            ]
        ),
    )
    fan_out = _fan_container(node, scope, containers, FAN_OUT, first=first, output=output)
    fan_in = _fan_container(node, scope, containers, FAN_IN, then_success=then_success)
    return Composite([dag, fan_out, fan_in], scope, node.branch_graphs())


def _fan_container(
    node: CompositeNode,
    scope: tuple[str, ...],
    containers: ContainerTemplates,
    mode: str,
    *,
    first: bool = False,
    output: str = "",
    then_success: bool = False,
) -> m.Template:
    """A ``magnus fan --mode <mode>`` container; with ``output``, the parameter of that name
    holds what it wrote to its output file (``""`` if it wrote nothing)."""
    settings: StepSettings = containers.settings(node)
    env = containers.first_env(first)
    outputs = None
    if output:
        env.append(m.EnvVar(name=MAP_INDICES_FILE_ENV, value=MAP_INDICES_FILE))
        outputs = m.Outputs(
            parameters=[
                m.Parameter(name=output, value_from=m.ValueFrom(path=MAP_INDICES_FILE, default=""))
            ]
        )
    command = containers.command(FAN, node.internal_name, scope, mode=mode, first=first)
    if then_success:
        command.append(THEN_SUCCESS_OPTION)
    return containers.container(
        name=containers.template_names[(f"fan-{mode}", node.internal_name)],
        settings=settings,
        command=command,
        scope=scope,
        env=env,
        retry=kubernetes.retry_strategy(settings.retry_strategy)
        if settings.retry_strategy != containers.defaults.retry_strategy
        else None,
        outputs=outputs,
    )
