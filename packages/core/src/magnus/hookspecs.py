"""Every hook a magnus plugin can implement.

A plugin is a module (or object) with functions decorated ``@magnus.hookimpl`` whose names match
the specifications below, registered through the ``magnus`` entry-point group::

    [project.entry-points.magnus]
    my_catalog = "my_package.plugin"

There are three families, kept apart:

**Providers** contribute classes. Each returns a list of service classes; the configuration's
``type`` picks one by its ``service_name``, never hook order. Two classes claiming the same name in
the same family is an error naming both distributions. magnus' own services are registered through
these same hooks.

**Observers** watch a run (Kedro's lifecycle hooks are the model). Every implementation is called;
none can stop another; none is ``firstresult``. An observer that raises is reported as a warning and
never changes the run's outcome.

**Integrations** decide whether an executor can work with a service, and adapt the service to it
(for example rewriting a folder to a mount point inside a container).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from magnus.catalog import BaseCatalog
    from magnus.context import RunContext
    from magnus.executors.base import BaseExecutor
    from magnus.integration import Problem
    from magnus.nodes import BaseNode
    from magnus.objects import BaseObjectSerializer
    from magnus.runlog.base import BaseRunLogStore
    from magnus.runlog.models import RunLog, StepLog
    from magnus.secrets import BaseSecrets
    from magnus.services import BaseService
    from magnus.tasks import BaseTaskType
    from magnus.tracking import BaseExperimentTracker

PROJECT_NAME = "magnus"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------------------------
# Providers: contribute classes, chosen by ``type`` in the configuration.
# --------------------------------------------------------------------------------------------


@hookspec
def register_executors() -> list[type[BaseExecutor]]:  # type: ignore[empty-body]
    """Return executor classes (``service_type = "executor"``).

    An executor traverses a pipeline in this process (like ``local``) or renders it for an
    orchestrator that calls magnus back once per step (like ``argo``).
    """


@hookspec
def register_run_log_stores() -> list[type[BaseRunLogStore]]:  # type: ignore[empty-body]
    """Return run-log store classes (``service_type = "run_log_store"``).

    A store must pass ``magnus.testing.RunLogStoreContract``.
    """


@hookspec
def register_catalogs() -> list[type[BaseCatalog]]:  # type: ignore[empty-body]
    """Return catalog classes (``service_type = "catalog"``).

    A catalog must pass ``magnus.testing.CatalogContract``.
    """


@hookspec
def register_secrets() -> list[type[BaseSecrets]]:  # type: ignore[empty-body]
    """Return secrets-provider classes (``service_type = "secrets"``)."""


@hookspec
def register_experiment_trackers() -> list[type[BaseExperimentTracker]]:  # type: ignore[empty-body]
    """Return experiment-tracker classes (``service_type = "experiment_tracker"``)."""


@hookspec
def register_object_serializers() -> list[type[BaseObjectSerializer]]:  # type: ignore[empty-body]
    """Return serializers for ``put_object``/``get_object`` (``magnus.objects``), by name."""


@hookspec
def register_task_types() -> list[type[BaseTaskType]]:  # type: ignore[empty-body]
    """Return task-type classes, chosen by a task step's ``command_type`` (python, shell, ...)."""


# --------------------------------------------------------------------------------------------
# Observers: watch a run. Called in every process that runs steps; never firstresult.
# --------------------------------------------------------------------------------------------


@hookspec
def before_run(run_log: RunLog, context: RunContext) -> None:
    """Called once the run log of a new run exists, before the first step.

    Called in the process that starts the run: ``magnus execute``, or, in an orchestrated run
    (a process per step), the first step's process, before the orchestrator starts any other.

    Args:
        run_log: the run-level record (status PROCESSING; steps not yet run).
        context: the run's services, identifiers and pipeline graph.
    """


@hookspec
def after_run(run_log: RunLog, context: RunContext) -> None:
    """Called when the top-level traversal ends, whatever the run's status.

    Also called when the run is stopped before its end (SIGINT, SIGTERM, magnus itself failed):
    the run has then been ended FAIL, what it had open closed FAIL, and ``run_log.message``
    says why (``interrupted by SIGINT``, ``magnus stopped: ...``). Only if even that could not
    be written (a broken run-log store) is the status still PROCESSING. In an orchestrated run
    it is called by the process that runs the pipeline's own success or fail step.

    Args:
        run_log: the complete run log, status SUCCESS or FAIL (PROCESSING if it could not
            be ended).
        context: the run's services, identifiers and pipeline graph.
    """


@hookspec
def before_step(step_log: StepLog, node: BaseNode, context: RunContext) -> None:
    """Called before a leaf step runs (once per step, before its first attempt).

    Args:
        step_log: the step's log, status PROCESSING, no attempts yet.
        node: the step's definition (``node.internal_name``, ``node.node_type``, ...).
        context: the run's services, identifiers and pipeline graph.
    """


@hookspec
def after_step(step_log: StepLog, node: BaseNode, context: RunContext) -> None:
    """Called after a leaf step has finished all its attempts, before its log is stored.

    Args:
        step_log: the step's log with every attempt, status SUCCESS or FAIL.
        node: the step's definition.
        context: the run's services, identifiers and pipeline graph.
    """


@hookspec
def on_step_error(
    step_log: StepLog, node: BaseNode, error: BaseException, context: RunContext
) -> None:
    """Called each time an attempt of a leaf step fails (so up to ``max_attempts`` times).

    Args:
        step_log: the step's log, including the failed attempt.
        node: the step's definition.
        error: what went wrong: the exception raised by the task or by magnus around it.
        context: the run's services, identifiers and pipeline graph.
    """


# --------------------------------------------------------------------------------------------
# Integrations: executor x service compatibility and adaptation.
# --------------------------------------------------------------------------------------------


@hookspec
def check_compatibility(executor: BaseExecutor, service: BaseService) -> list[Problem] | None:
    """Return the problems of running ``service`` under ``executor``.

    A problem of level ``error`` stops the run (and fails ``magnus validate``); a ``warning`` is
    shown to the user. Return ``None`` or ``[]`` when the combination is fine or not yours.
    """


@hookspec
def configure_for_traversal(executor: BaseExecutor, service: BaseService) -> None:
    """Adapt ``service`` (or ``executor``) where the pipeline is traversed or rendered.

    Called once per service before traversal, after every compatibility check passed.
    """


@hookspec
def configure_for_execution(executor: BaseExecutor, service: BaseService) -> None:
    """Adapt ``service`` where a step executes (for example inside a container or a pod).

    Called once per service in every process that executes steps, before the first of them.
    """


PROVIDER_HOOKS: dict[str, str] = {
    "executor": "register_executors",
    "run_log_store": "register_run_log_stores",
    "catalog": "register_catalogs",
    "secrets": "register_secrets",
    "experiment_tracker": "register_experiment_trackers",
    "task_type": "register_task_types",
    "object_serializer": "register_object_serializers",
}
