"""The run context: the services and state of the run this process works on.

It holds no executor and no plugin manager: the composition root (``magnus.entrypoints``) keeps
those, and hands the engine what it needs. Observers are told through the typed relay the
context carries.

The interaction API (``get_parameter``, ``put_in_catalog``, ...) reads the current run and step
from context variables, not globals, so nothing leaks between runs in one process.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from magnus.building import NodeKinds
from magnus.exceptions import NoRunContextError
from magnus.observers import Observers
from magnus.services import SERVICE_ROLES

if TYPE_CHECKING:
    from magnus.catalog import BaseCatalog
    from magnus.graph import Graph
    from magnus.nodes import BaseNode
    from magnus.runlog.base import BaseRunLogStore
    from magnus.runlog.models import CodeIdentity, StepLog
    from magnus.secrets import BaseSecrets
    from magnus.tracking import BaseExperimentTracker


@dataclass
class RunContext:
    """Everything a process needs to run steps of one run."""

    run_log_store: BaseRunLogStore
    catalog: BaseCatalog
    secrets: BaseSecrets
    experiment_tracker: BaseExperimentTracker
    #: tells the observer plugins what happens (``context.observers.before_step(...)``)
    observers: Observers[RunContext]
    run_id: str
    #: the node kinds and task types installed: what this run's graphs are built with
    kinds: NodeKinds = field(default_factory=NodeKinds)
    #: whether every step runs in the process that traverses (not so under enable_parallel)
    runs_in_one_process: bool = True
    #: the executor's configuration, as ``run_config.executor`` records it
    executor_record: dict[str, Any] = field(default_factory=dict)
    tag: str = ""
    pipeline_file: str = ""
    parameters_file: str = ""
    configuration_file: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    use_cached: bool = False
    original_run_id: str = ""
    dag: Graph | None = None
    dag_hash: str = ""
    execution_plan: str = "chained"
    #: computed once per process and copied into every step log
    code_identities: list[CodeIdentity] = field(default_factory=list)
    #: python, platform and installed distributions, recorded once per run
    environment: dict[str, Any] = field(default_factory=dict)
    #: the parameters the run started with (a re-run starts from the original's)
    initial_parameters: dict[str, Any] = field(default_factory=dict)
    #: a re-run refuses to reuse a step whose definition or code changed
    strict_cache: bool = False
    #: what this process loaded of the original run (``magnus.executors.rerun``)
    original: Any = None
    #: a step whose fingerprint matches an earlier success is reused, unless its ``cache`` is
    #: false (``--reuse``, the configuration's ``reuse``); recorded so every process agrees
    reuse: bool = False
    #: the process that traverses the run (``magnus.owner``); empty when an orchestrator does
    owner: dict[str, Any] = field(default_factory=dict)

    def run_config(self) -> dict[str, Any]:
        """What the run log records as ``run_config``: never a secret value."""
        services = {
            role.recorded_as: getattr(self, role.key).record()
            for role in SERVICE_ROLES
            if role.key != "executor"
        }
        return {
            "executor": dict(self.executor_record),
            **services,
            "pipeline_file": self.pipeline_file,
            "parameters_file": self.parameters_file,
            "configuration_file": self.configuration_file,
            "tag": self.tag,
            "run_id": self.run_id,
            "variables": dict(self.variables),
            "use_cached": self.use_cached,
            "original_run_id": self.original_run_id,
            "dag": self.dag.dump() if self.dag else {},
            "dag_hash": self.dag_hash,
            "execution_plan": self.execution_plan,
            "environment": self.environment,
            "initial_parameters": self.initial_parameters,
            "strict_cache": self.strict_cache,
            "reuse": self.reuse,
            **({"owner": self.owner} if self.owner else {}),
        }


@dataclass
class StepContext:
    """The step a task is running in: what the interaction API reads and records into."""

    run: RunContext
    node: BaseNode
    step_log: StepLog
    parameters: dict[str, Any]
    map_variables: dict[str, Any] = field(default_factory=dict)
    #: ``track_this`` values by key, then by step index
    metrics: dict[str, dict[int, Any]] = field(default_factory=dict)
    #: names of the parameters the task read through the interaction API (``*``: all)
    parameters_read: set[str] = field(default_factory=set)


current_run: ContextVar[RunContext | None] = ContextVar("magnus_run", default=None)
current_step: ContextVar[StepContext | None] = ContextVar("magnus_step", default=None)


def require_run() -> RunContext:
    """The current run, or a clear error when called outside one."""
    run = current_run.get()
    if run is None:
        raise NoRunContextError(
            "This magnus function works inside a running pipeline step; no run is active"
        )
    return run


def require_step() -> StepContext:
    """The current step, or a clear error when called outside one."""
    step = current_step.get()
    if step is None:
        raise NoRunContextError(
            "This magnus function works inside a running pipeline step; no step is active"
        )
    return step
