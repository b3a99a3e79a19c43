"""The workflow's exit handler: the run log ends truthfully however the workflow ended.

Argo runs ``spec.onExit`` once the workflow is over -- succeeded, failed, stopped with
``argo stop``, past its ``activeDeadlineSeconds``, or with a pod evicted, OOM-killed or
deleted -- with the workflow's phase in ``{{workflow.status}}`` and its failed nodes in
``{{workflow.failures}}``. Its container runs ``magnus end_run`` (``magnus.orchestration``):
what is still open in the run log is closed FAIL with that reason, and a run its success or
fail step did not end ends FAIL, observers hearing ``after_run`` then (an MLflow parent run
closes). A run that ended is left as it is, so observers hear of its end once.

Ending the run never depends on the failed nodes: their list grows with the workflow (about
250 bytes a node), and Linux refuses to start a process with one argument or environment
variable over 128 KiB -- nor can Argo's own init container start, which carries the whole
template in one variable. So the handler is a DAG of two calls of one container: ``end-run``
gets the first :data:`FAILURES_BYTES` of the list (cut by an Argo expression: magnus reads
the failed nodes a cut list still names), and ``end-run-without-failures`` runs only when that
one failed or could not start, ending the run with the workflow's phase alone.
"""

from __future__ import annotations

from hera.workflows import models as m

from magnus.orchestration import END_RUN, callback_command
from magnus_executor_argo import kubernetes
from magnus_executor_argo.containers import MAGNUS_COMMAND, RUN_ID, ContainerTemplates

#: the exit handler (``spec.onExit``): a DAG
EXIT_HANDLER = "magnus-exit-handler"
#: the container template both of its tasks call
END_RUN_TEMPLATE = "magnus-end-run"
END_RUN_TASK = "end-run"
FALLBACK_TASK = "end-run-without-failures"
WORKFLOW_STATUS = "{{workflow.status}}"
#: how much of ``{{workflow.failures}}`` reaches the container: far below Linux's 128 KiB for
#: one argument, even once Argo escaped it again inside the template it hands its executor
FAILURES_BYTES = 16384
#: the failed nodes, cut to :data:`FAILURES_BYTES` (Argo 3.5 and later evaluate expressions on
#: ``workflow.failures`` in the exit handler; the fallback covers an Argo that does not)
FAILURES_EXPRESSION = f"{{{{=sprig.trunc({FAILURES_BYTES}, workflow.failures)}}}}"
FAILURES_INPUT = "failures"
#: ending the run is idempotent: a handler that could not reach the run-log store is retried
RETRIES = 2


def exit_handler(containers: ContainerTemplates) -> list[m.Template]:
    """The exit handler's templates: its DAG, then the container both of its tasks call."""
    dag = m.Template(
        name=EXIT_HANDLER,
        dag=m.DAGTemplate(
            tasks=[
                _end_run_task(END_RUN_TASK, FAILURES_EXPRESSION),
                _end_run_task(
                    FALLBACK_TASK, "", depends=f"{END_RUN_TASK}.Failed || {END_RUN_TASK}.Errored"
                ),
            ]
        ),
    )
    return [dag, _end_run_container(containers)]


def _end_run_task(name: str, failures: str, depends: str | None = None) -> m.DAGTask:
    return m.DAGTask(
        name=name,
        template=END_RUN_TEMPLATE,
        depends=depends,
        arguments=m.Arguments(parameters=[m.Parameter(name=FAILURES_INPUT, value=failures)]),
    )


def _end_run_container(containers: ContainerTemplates) -> m.Template:
    """``magnus end_run``, with the workflow's own settings and the failures it is given."""
    context = containers.context
    command = callback_command(
        [MAGNUS_COMMAND],
        END_RUN,
        RUN_ID,
        WORKFLOW_STATUS,
        log_level=containers.log_level,
        pipeline_file=context.pipeline_file,
        configuration_file=context.configuration_file,
        parameters_file=context.parameters_file,
        tag=context.tag,
    )
    template = containers.container(
        name=END_RUN_TEMPLATE,
        settings=containers.defaults,
        command=[*command, "--failures", f"{{{{inputs.parameters.{FAILURES_INPUT}}}}}"],
        scope=(),
        env=[],
        retry=kubernetes.retry_strategy(containers.defaults.retry_strategy, limit=RETRIES),
    )
    template.inputs = m.Inputs(parameters=[m.Parameter(name=FAILURES_INPUT)])
    return template
