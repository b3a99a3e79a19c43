"""Every hook a magnus plugin can implement, in three families.

A plugin is a module (or object) with functions decorated ``@magnus.hookimpl`` whose names match
the specifications below, registered through the ``magnus`` entry-point group::

    [project.entry-points.magnus]
    my_catalog = "my_package.plugin"

An implementation whose name matches no specification (a misspelled hook) is an error when the
plugin is loaded. The families are kept apart, each a class of specifications:

**Providers** (``ProviderSpecs``) contribute classes. Each returns a list of classes; the
configuration's ``type`` (a node's ``type``, a task's ``command_type``) picks one by its name,
never hook order. Two classes claiming the same name in the same family is an error naming both
distributions. magnus' own classes are registered through these same hooks.

**Observers** (``ObserverSpecs``) watch a run (Kedro's lifecycle hooks are the model). Every
implementation is called; none can stop another; none is ``firstresult``. An observer that raises
is reported as a warning and never changes the run's outcome.

**Integrations** (``IntegrationSpecs``) decide whether an executor can work with a service, and
adapt the service to it (for example rewriting a folder to a mount point inside a container).

The lists the rest of magnus works from (``PROVIDERS``, ``OBSERVER_HOOKS``, ...) are derived from
these classes, so a new hook is declared in one place.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

# ``hookimpl`` is re-exported: plugins written against ``magnus.hookspecs.hookimpl`` keep working.
from magnus.markers import PROJECT_NAME, hookimpl, hookspec

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

__all__ = [
    "INTEGRATION_HOOKS",
    "OBSERVER_HOOKS",
    "PROJECT_NAME",
    "PROVIDERS",
    "PROVIDER_HOOKS",
    "SPEC_FAMILIES",
    "IntegrationSpecs",
    "ObserverSpecs",
    "Provider",
    "ProviderSpecs",
    "arguments",
    "hookimpl",
    "hookspec",
    "specs",
]

_Spec = TypeVar("_Spec", bound=Callable[..., Any])


@dataclass(frozen=True)
class Provider:
    """What one provider hook contributes: a family of classes, each named by an attribute."""

    #: the family's key (``catalog``, ``task_type``, ``node_type``, ...)
    family: str
    #: the hook that returns the family's classes
    hook: str
    #: the class attribute holding the name users select a class by
    named_by: str


def provides(family: str, named_by: str = "service_name") -> Callable[[_Spec], _Spec]:
    """Mark a provider specification with the family it fills and how its classes are named."""

    def mark(spec: _Spec) -> _Spec:
        spec.magnus_provides = Provider(family, spec.__name__, named_by)  # type: ignore[attr-defined]
        return hookspec(spec)

    return mark


# --------------------------------------------------------------------------------------------
# Providers: contribute classes, chosen by name in the configuration or the pipeline.
# --------------------------------------------------------------------------------------------


class ProviderSpecs:
    """Hooks that contribute classes; each returns a list of them."""

    @provides("executor")
    def register_executors(self) -> list[type[BaseExecutor]]:  # type: ignore[empty-body]
        """Return executor classes (``service_type = "executor"``).

        An executor traverses a pipeline in this process (like ``local``) or renders it for an
        orchestrator that calls magnus back once per step (like ``argo``).
        """

    @provides("run_log_store")
    def register_run_log_stores(self) -> list[type[BaseRunLogStore]]:  # type: ignore[empty-body]
        """Return run-log store classes (``service_type = "run_log_store"``).

        A store must pass ``magnus.testing.RunLogStoreContract``.
        """

    @provides("catalog")
    def register_catalogs(self) -> list[type[BaseCatalog]]:  # type: ignore[empty-body]
        """Return catalog classes (``service_type = "catalog"``).

        A catalog must pass ``magnus.testing.CatalogContract``.
        """

    @provides("secrets")
    def register_secrets(self) -> list[type[BaseSecrets]]:  # type: ignore[empty-body]
        """Return secrets-provider classes (``service_type = "secrets"``)."""

    @provides("experiment_tracker")
    def register_experiment_trackers(  # type: ignore[empty-body]
        self,
    ) -> list[type[BaseExperimentTracker]]:
        """Return experiment-tracker classes (``service_type = "experiment_tracker"``)."""

    @provides("task_type")
    def register_task_types(self) -> list[type[BaseTaskType]]:  # type: ignore[empty-body]
        """Return task-type classes, chosen by a task step's ``command_type`` (python, shell)."""

    @provides("object_serializer")
    def register_object_serializers(  # type: ignore[empty-body]
        self,
    ) -> list[type[BaseObjectSerializer]]:
        """Return serializers for ``put_object``/``get_object`` (``magnus.objects``), by name."""

    @provides("node_type", named_by="node_type")
    def register_node_types(self) -> list[type[BaseNode]]:  # type: ignore[empty-body]
        """Return node kinds, chosen by a step's ``type`` in a pipeline.

        magnus' own (task, stub, parallel, map, dag, success, fail) register here like any
        third party's. Each class carries its name in ``node_type``; two classes with the same
        name are an error naming both distributions.
        """


# --------------------------------------------------------------------------------------------
# Observers: watch a run. Called in every process that runs steps; never firstresult.
# --------------------------------------------------------------------------------------------


class ObserverSpecs:
    """Hooks that watch a run; ``magnus.observers.Observers`` calls them, isolating each."""

    @hookspec
    def before_run(self, run_log: RunLog, context: RunContext) -> None:
        """Called once the run log of a new run exists, before the first step.

        Called in the process that starts the run: ``magnus execute``, or, in an orchestrated run
        (a process per step), the first step's process, before the orchestrator starts any other.

        Args:
            run_log: the run-level record (status PROCESSING; steps not yet run).
            context: the run's services, identifiers and pipeline graph.
        """

    @hookspec
    def after_run(self, run_log: RunLog, context: RunContext) -> None:
        """Called when the top-level traversal ends, whatever the run's status.

        Also called when the run is stopped before its end (SIGINT, SIGTERM, magnus itself failed):
        the run has then been ended FAIL, what it had open closed FAIL, and ``run_log.message``
        says why (``interrupted by SIGINT``, ``magnus stopped: ...``). Only if even that could not
        be written (a broken run-log store) is the status still PROCESSING. In an orchestrated run
        it is called by the process that runs the pipeline's own success or fail step or, for a
        run the workflow left open (stopped, past its deadline, a pod lost), by its exit handler
        (``magnus.orchestrated.end_orchestrated_run``): once per run.

        The complete log is read back from the store for implementations that name
        ``run_log``; one that needs only to know the run ended should leave it out, which
        spares ``magnus execute`` reading a large run back.

        Args:
            run_log: the complete run log, status SUCCESS or FAIL (PROCESSING if it could not
                be ended).
            context: the run's services, identifiers and pipeline graph.
        """

    @hookspec
    def before_step(self, step_log: StepLog, node: BaseNode, context: RunContext) -> None:
        """Called before a leaf step runs (once per step, before its first attempt).

        Args:
            step_log: the step's log, status PROCESSING, no attempts yet.
            node: the step's definition (``node.internal_name``, ``node.node_type``, ...).
            context: the run's services, identifiers and pipeline graph.
        """

    @hookspec
    def after_step(self, step_log: StepLog, node: BaseNode, context: RunContext) -> None:
        """Called after a leaf step has finished all its attempts, before its log is stored.

        Args:
            step_log: the step's log with every attempt, status SUCCESS or FAIL.
            node: the step's definition.
            context: the run's services, identifiers and pipeline graph.
        """

    @hookspec
    def on_step_error(
        self, step_log: StepLog, node: BaseNode, error: BaseException, context: RunContext
    ) -> None:
        """Called each time an attempt of a leaf step fails (so up to ``max_attempts`` times).

        Args:
            step_log: the step's log, including the failed attempt.
            node: the step's definition.
            error: what went wrong: the exception raised by the task or by magnus around it.
            context: the run's services, identifiers and pipeline graph.
        """

    @hookspec
    def before_composite(
        self, step_log: StepLog, node: BaseNode, branches: int, context: RunContext
    ) -> None:
        """Called when a composite step (parallel, map, dag) has fanned out, before its branches.

        Called where the branches are traversed (by ``local``, not for a step an orchestrator
        fans out); its branches' steps then get ``before_step``/``after_step`` where they run.

        Args:
            step_log: the composite's log (a map's ``map_values`` recorded).
            node: the composite's definition.
            branches: how many branches will run (0 when they could not be known: the step
                has failed, ``step_log.message`` says why).
            context: the run's services, identifiers and pipeline graph.
        """

    @hookspec
    def after_branch(
        self, branch_name: str, status: str, node: BaseNode, context: RunContext
    ) -> None:
        """Called as each branch of a composite step ends.

        With ``enable_parallel`` the branches run in processes of their own: this is called in
        the process that started them, as each ends, from one of several threads.

        Args:
            branch_name: the branch's internal name (a map's: with its element).
            status: the branch's status, SUCCESS or FAIL.
            node: the composite's definition.
            context: the run's services, identifiers and pipeline graph.
        """

    @hookspec
    def after_composite(self, step_log: StepLog, node: BaseNode, context: RunContext) -> None:
        """Called when a composite step's branches have all ended and its outcome is decided.

        Args:
            step_log: the composite's log, status SUCCESS or FAIL (``message`` says which
                branches failed), with its branch logs; their own steps may be left out (a
                map's may be many): ``context.run_log_store.get_step_log(name, run_id)`` reads
                them all.
            node: the composite's definition.
            context: the run's services, identifiers and pipeline graph.
        """


# --------------------------------------------------------------------------------------------
# Integrations: executor x service compatibility and adaptation.
# --------------------------------------------------------------------------------------------


class IntegrationSpecs:
    """Hooks that fit services to an executor."""

    @hookspec
    def check_compatibility(
        self, executor: BaseExecutor, service: BaseService
    ) -> list[Problem] | None:
        """Return the problems of running ``service`` under ``executor``.

        A problem of level ``error`` stops the run (and fails ``magnus validate``); a ``warning``
        is shown to the user. Return ``None`` or ``[]`` when the combination is fine or not yours.
        """

    @hookspec
    def configure_for_traversal(self, executor: BaseExecutor, service: BaseService) -> None:
        """Adapt ``service`` (or ``executor``) where the pipeline is traversed or rendered.

        Called once per service before traversal, after every compatibility check passed.
        """

    @hookspec
    def configure_for_execution(self, executor: BaseExecutor, service: BaseService) -> None:
        """Adapt ``service`` where a step executes (for example inside a container or a pod).

        Called once per service in every process that executes steps, before the first of them.
        """


SPEC_FAMILIES: tuple[type, ...] = (ProviderSpecs, ObserverSpecs, IntegrationSpecs)


def specs(family: type) -> dict[str, Callable[..., Any]]:
    """``{hook name: specification}`` of one family, in the order they are declared."""
    marker = f"{PROJECT_NAME}_spec"
    return {name: spec for name, spec in vars(family).items() if hasattr(spec, marker)}


def arguments(spec: Callable[..., Any]) -> list[str]:
    """The argument names a hook passes to its implementations (without ``self``)."""
    return [name for name in inspect.signature(spec).parameters if name != "self"]


#: every provider family by its key, with its hook and naming attribute
PROVIDERS: dict[str, Provider] = {
    spec.magnus_provides.family: spec.magnus_provides  # type: ignore[attr-defined]
    for spec in specs(ProviderSpecs).values()
}
#: ``{family: provider hook name}``
PROVIDER_HOOKS: dict[str, str] = {family: p.hook for family, p in PROVIDERS.items()}
OBSERVER_HOOKS: tuple[str, ...] = tuple(specs(ObserverSpecs))
INTEGRATION_HOOKS: tuple[str, ...] = tuple(specs(IntegrationSpecs))
