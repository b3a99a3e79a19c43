"""The workflow's exit handler: the run log ends truthfully however the workflow ended.

Argo runs ``spec.onExit`` once the workflow is over -- succeeded, failed, stopped with
``argo stop``, past its ``activeDeadlineSeconds``, or with a pod evicted, OOM-killed or
deleted -- with the workflow's phase in ``{{workflow.status}}`` and its failed nodes in
``{{workflow.failures}}``. Its container runs ``magnus end_run`` (``magnus.orchestration``):
what is still open in the run log is closed FAIL with that reason, and a run its success or
fail step did not end ends FAIL, observers hearing ``after_run`` then (an MLflow parent run
closes). A run that ended is left as it is, so observers hear of its end once.
"""

from __future__ import annotations

from hera.workflows import models as m

from magnus.orchestration import END_RUN, callback_command
from magnus_executor_argo import kubernetes
from magnus_executor_argo.containers import MAGNUS_COMMAND, RUN_ID, ContainerTemplates

#: the exit handler's template (``spec.onExit``)
EXIT_HANDLER = "magnus-exit-handler"
WORKFLOW_STATUS = "{{workflow.status}}"
WORKFLOW_FAILURES = "{{workflow.failures}}"
#: ending the run is idempotent: a handler that could not reach the run-log store is retried
RETRIES = 2


def exit_handler(containers: ContainerTemplates) -> m.Template:
    """The exit handler's container template, with the workflow's own settings."""
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
    return containers.container(
        name=EXIT_HANDLER,
        settings=containers.defaults,
        command=[*command, "--failures", WORKFLOW_FAILURES],
        scope=(),
        env=[],
        retry=kubernetes.retry_strategy(containers.defaults.retry_strategy, limit=RETRIES),
    )
