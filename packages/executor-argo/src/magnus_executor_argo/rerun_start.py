"""A re-run rendered for Argo: ``magnus execute -c argo.yaml --use-cached ORIGINAL``.

The steps the re-run reuses before its first step to run again -- from ``start_at`` along
``next``, each that succeeded in the original (``magnus.orchestrated.reused_before_start``) --
become no task and cost no pod. One container, the DAG's first task, starts the re-run
(``magnus start_rerun <run id> <original>``): it creates the run log (with the exposed
parameters, and ``--reuse``/``--no-reuse``, as the first container of any run), copies the
original's catalog and records those steps reused. The first step to run again depends on it;
every later container joins the run and shares its original, deciding reuse as a local re-run
does (inside a composite that runs again, each step whose container finds it reusable records
it so). With ``--strict`` nothing is skipped: a step's fingerprint decides, once the run exists.
"""

from __future__ import annotations

from hera.workflows import models as m

from magnus.context import RunContext
from magnus.graph import Graph
from magnus.nodes import BaseNode
from magnus.orchestration import START_RERUN, callback_command
from magnus_executor_argo.containers import MAGNUS_COMMAND, RUN_ID, ContainerTemplates

#: the template of the container that starts a re-run, and its task
RERUN_START = "magnus-rerun-start"
RERUN_START_TASK = "rerun-start"


def first_to_run(graph: Graph, reused: list[BaseNode]) -> BaseNode | None:
    """The pipeline's first step a re-run runs again after ``reused``; ``None`` when that is
    its success step (every step reused), which the starting container runs itself."""
    node = graph.next_after(reused[-1], failed=False) if reused else graph.start_node
    return None if node.node_type == "success" else node


def rerun_start(containers: ContainerTemplates, context: RunContext) -> m.Template:
    """The container template that starts the re-run of ``context.original_run_id``."""
    command = callback_command(
        [MAGNUS_COMMAND],
        START_RERUN,
        RUN_ID,
        context.original_run_id,
        log_level=containers.log_level,
        pipeline_file=context.pipeline_file,
        configuration_file=context.configuration_file,
        parameters_file=context.parameters_file,
        tag=context.tag,
        reuse=context.reuse,
    )
    if context.strict_cache:
        command.append("--strict")
    return containers.container(
        name=RERUN_START,
        settings=containers.defaults,
        command=command,
        scope=(),
        env=containers.first_env(True),
        retry=None,
    )
