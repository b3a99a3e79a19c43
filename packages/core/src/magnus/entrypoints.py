"""The composition root: what the CLI and the SDK call to run a pipeline, or part of one.

Here the plugin manager is made, the five services and the graph are built, the executor is
held beside the run's context (the context carries services and state only: the engine and the
observers it tells are handed what they need), a run is started, executed and ended, and an
orchestrator's calls back for one step, branch or fan-out/fan-in are served.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magnus import config as config_mod
from magnus import identity
from magnus.building import graph_from_dump, load_job_file, load_pipeline_file
from magnus.context import RunContext, current_run
from magnus.exceptions import (
    ConfigurationError,
    RunLogExistsError,
)
from magnus.executors import rerun
from magnus.executors.base import BaseExecutor
from magnus.executors.ending import end_run
from magnus.graph import Graph, dag_hash
from magnus.integration import Problem, collect_problems, enforce
from magnus.interrupts import signals_deferred, stoppable
from magnus.jobs import JOB_PLAN, execution_plan_of
from magnus.owner import current_owner
from magnus.parameters import initial_parameters
from magnus.plugins import MagnusPlugins, get_plugins
from magnus.run_ids import generate_run_id, validate_run_id
from magnus.runlog.models import PROCESSING, RunLog
from magnus.tasks.environment import exports_kept

logger = logging.getLogger(__name__)


def build_services(configuration_file: str | None, plugins: MagnusPlugins) -> dict[str, Any]:
    """Instantiate the five services the configuration resolves to.

    ``$name`` placeholders in a service's configuration are filled from ``MAGNUS_VAR_name``
    first, unless the service fills them itself (an orchestrator's executor, per step).
    """
    variables = config_mod.collect_variables()
    services = {}
    for key, block in config_mod.resolve_services(configuration_file).items():
        try:
            cls = plugins.service_class(key, block.type)
            config = block.config
            if not cls.fills_variables_itself:
                config = config_mod.substitute_variables(config, variables, f"{key}.config")
            services[key] = cls.from_config(config)
        except ConfigurationError as exc:
            if not block.source:
                raise
            raise ConfigurationError(f"{block.source}: {exc}") from None
    return services


@dataclass
class PreparedRun:
    """A run ready to go: the context its steps see, and the executor and plugins that run it.

    The context carries services and state only; what runs the run stays here, in the root.
    """

    context: RunContext
    executor: BaseExecutor
    plugins: MagnusPlugins


def prepared_run(
    services: dict[str, Any], plugins: MagnusPlugins, run_id: str, graph: Graph, **state: Any
) -> PreparedRun:
    """The one place a run's context is made, from its services, plugins, graph and state.

    Unless the state says, the execution plan is the file's: a job file's run is ``unchained``.
    """
    executor = services["executor"]
    if not state.get("execution_plan"):
        state["execution_plan"] = execution_plan_of(state.get("pipeline_file", ""), graph)
    context = RunContext(
        run_log_store=services["run_log_store"],
        catalog=services["catalog"],
        secrets=services["secrets"],
        experiment_tracker=services["experiment_tracker"],
        observers=plugins.observers,
        kinds=plugins.kinds(),
        runs_in_one_process=executor.runs_in_one_process,
        executor_record=executor.record(),
        run_id=run_id,
        variables=config_mod.collect_variables(),
        dag=graph,
        dag_hash=dag_hash(graph),
        **state,
    )
    return PreparedRun(context, executor, plugins)


def prepare_run(
    *,
    configuration_file: str | None = None,
    pipeline_file: str = "",
    graph: Graph | None = None,
    parameters_file: str = "",
    run_id: str = "",
    tag: str = "",
    execution_plan: str = "",
    use_cached: str = "",
    strict_cache: bool = False,
    reuse: bool | None = None,
) -> PreparedRun:
    """Everything a run needs, checked: services, graph, run id. Nothing is written yet.

    ``use_cached`` names a run to re-run: steps that succeeded there are reused. ``reuse``
    turns on reuse by fingerprint (``None``: as the configuration says). ``execution_plan``:
    ``unchained`` for a job (default: the file's, or the re-run original's).
    """
    plugins = get_plugins()
    services = build_services(configuration_file, plugins)
    original = None
    if use_cached:
        # Read once, here: the re-run takes its graph (unless given one), starting
        # parameters and, step by step, what it reuses from this.
        original = rerun.load_original(
            services["run_log_store"], validate_run_id(use_cached), plugins.kinds()
        )
    if graph is None and pipeline_file:
        graph = load_pipeline_file(pipeline_file, plugins)
    elif graph is None and original is not None:
        # A retry runs the original's recorded graph (one that cannot be rebuilt says why).
        run_config = original.run_log.run_config
        graph = original.graph or graph_from_dump(run_config.get("dag") or {}, plugins)
        pipeline_file = run_config.get("pipeline_file", "")
        tag = tag or original.run_log.tag
        execution_plan = execution_plan or run_config.get("execution_plan", "")
    elif graph is None:
        graph = load_pipeline_file(pipeline_file, plugins)
    return prepared_run(
        services,
        plugins,
        validate_run_id(run_id) if run_id else generate_run_id(),
        graph,
        tag=tag or "",
        pipeline_file=pipeline_file or "",
        parameters_file=parameters_file or "",
        configuration_file=configuration_file or "",
        execution_plan=execution_plan,
        use_cached=bool(use_cached),
        original_run_id=original.run_id if original else "",
        original=original,
        strict_cache=strict_cache,
        reuse=config_mod.resolve_reuse(configuration_file) if reuse is None else reuse,
    )


def prepare_job(
    *,
    configuration_file: str | None = None,
    job_file: str = "",
    graph: Graph | None = None,
    parameters_file: str = "",
    run_id: str = "",
    tag: str = "",
    reuse: bool | None = None,
) -> PreparedRun:
    """A job (``magnus.jobs``): its one-step graph, from ``job_file`` unless given, prepared to
    run as a pipeline is, its run recorded as ``unchained``.
    """
    if graph is None:
        graph = load_job_file(job_file, get_plugins())
    return prepare_run(
        configuration_file=configuration_file,
        pipeline_file=job_file,
        graph=graph,
        parameters_file=parameters_file,
        run_id=run_id,
        tag=tag,
        execution_plan=JOB_PLAN,
        reuse=reuse,
    )


def _services(context: RunContext) -> list[Any]:
    return [
        context.run_log_store,
        context.catalog,
        context.secrets,
        context.experiment_tracker,
    ]


def check_compatibility(run: PreparedRun) -> list[Problem]:
    """Raise on incompatible services; return the warnings."""
    return enforce(collect_problems(run.plugins, run.executor, _services(run.context)))


def _output_folders(context: RunContext) -> list[str]:
    # magnus' own output (the catalog, the log store) must not make the git tree look dirty.
    folders = []
    for service in _services(context):
        for attribute in ("log_folder", "catalog_location"):
            value = getattr(service, attribute, None)
            if isinstance(value, str) and value:
                folders.append(value)
    return folders


def record_identity(context: RunContext, store_diff: bool) -> None:
    """Compute the code identity once for this process (and store a dirty tree's diff)."""
    ignore = _output_folders(context)
    code = identity.code_identity(".", ignore=ignore)
    if store_diff and not code.code_identifier_dependable and code.code_identifier:
        diff = identity.code_diff(".", ignore=ignore)
        if diff:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "code.diff"
                # surrogateescape: a source file that is not UTF-8 is rebuilt byte for byte
                path.write_text(diff, encoding="utf-8", errors="surrogateescape")
                try:
                    entry = context.catalog.put_file(path, "code.diff", context.run_id)
                    code.code_identifier_diff = entry.catalog_relative_path
                except Exception as exc:  # a diff we cannot store must not stop the run
                    logger.warning("Could not store the diff of the working tree: %s", exc)
    context.code_identities = [code]


def prepare_for_execution(run: PreparedRun) -> None:
    """Let integrations adapt each service to where steps execute (once per process)."""
    for service in _services(run.context):
        run.plugins.hook.configure_for_execution(executor=run.executor, service=service)


def export_run_environment(context: RunContext) -> None:
    """The variables 0.5 exports for user code: run id, tag, configuration file."""
    os.environ["MAGNUS_RUN_ID"] = context.run_id
    if context.tag:
        os.environ["MAGNUS_RUN_TAG"] = context.tag
    if context.configuration_file:
        os.environ["MAGNUS_CONFIG_FILE"] = context.configuration_file


def start_run(context: RunContext) -> RunLog:
    """Create the run log: parameters, run_config, code and environment identity."""
    store = context.run_log_store
    if store.run_exists(context.run_id):
        raise RunLogExistsError(context.run_id)
    parameters = initial_parameters(context.parameters_file or None, os.environ)
    if context.use_cached:
        original = context.original.run_log
        # The original's starting point, with what this re-run was explicitly given on top.
        started_with = original.run_config.get("initial_parameters", original.parameters)
        parameters = {**started_with, **parameters}
    context.initial_parameters = parameters
    context.environment = identity.environment_identity()
    # Created whole or not at all: a run stopped by a signal can always be re-run from its log.
    with signals_deferred():
        store.create_run_log(
            context.run_id,
            dag_hash=context.dag_hash,
            use_cached=context.use_cached,
            tag=context.tag,
            original_run_id=context.original_run_id,
            status=PROCESSING,
        )
        store.set_parameters(context.run_id, parameters)
        store.set_run_config(context.run_id, context.run_config())
    if context.use_cached:
        context.catalog.sync_between_runs(context.original_run_id, context.run_id)
    record_identity(context, store_diff=True)
    return store.get_run_log_by_id(context.run_id, full=False)


def execute(run: PreparedRun, whole_log: bool = True) -> RunLog | None:
    """Run the whole pipeline and return its run log: complete, or (without ``whole_log``) the
    run-level record alone unless an ``after_run`` observer reads the log.

    An executor that does not traverse (it renders the pipeline for an orchestrator) gets the
    graph and nothing else: no run log is created, nothing runs, and ``None`` is returned.
    """
    context, executor = run.context, run.executor
    for warning in check_compatibility(run):
        logger.warning(warning.message)
    for service in _services(context):
        run.plugins.hook.configure_for_traversal(executor=executor, service=service)
    assert context.dag is not None
    if not executor.traverses:
        executor.execute_graph(context, context.dag)
        return None
    if executor.runs_in_one_process:
        # Steps execute in this very process: it is also where they need their services adapted.
        prepare_for_execution(run)
    export_run_environment(context)
    context.owner = current_owner()
    token = current_run.set(context)
    try:
        # Tasks of this process hand parameters on through the environment (MAGNUS_PRM_*):
        # what one task was given stays there for the next until the run ends.
        with stoppable(), exports_kept():
            try:
                run_log = start_run(context)
                context.observers.before_run(run_log=run_log, context=context)
                executor.execute_graph(context, context.dag)
            except RunLogExistsError:
                raise  # another run's log: not this process' to end
            except BaseException as error:
                return _end_stopped_run(context, error, whole_log)
            run_log = notify_run_ended(context, whole_log)
    finally:
        current_run.reset(token)
    return run_log


def notify_run_ended(context: RunContext, whole_log: bool = True) -> RunLog:
    """``after_run`` with the run log, which is returned.

    The log is read whole when the caller asks for it (``whole_log``) or an ``after_run``
    implementation takes ``run_log``; otherwise the run-level record alone is read: reading a
    run of 10,000 steps back costs more than half a second, and the command line needs only
    its status.
    """
    whole = whole_log or context.observers.after_run_reads_the_log()
    run_log = context.run_log_store.get_run_log_by_id(context.run_id, full=whole)
    context.observers.after_run(run_log=run_log, context=context)
    return run_log


def _end_stopped_run(context: RunContext, error: BaseException, whole_log: bool = True) -> RunLog:
    """A run that stopped before its end (a signal, magnus itself failed) ends FAIL, truthfully.

    What it had open is closed FAIL with the reason, observers hear ``after_run`` with that
    record (an MLflow parent run closes), and ``magnus retry`` resumes from what succeeded. An
    interruption is raised again, for the caller to exit as it asks; after any other error the
    ended run log is returned, as for any failed run. A run that was never created (the store
    refused it) has nothing to end: the error is raised as it is.
    """
    store = context.run_log_store
    try:
        created = store.run_exists(context.run_id)
    except Exception:
        created = False
    if not created:
        raise error
    reason = end_run(store, context.run_id, error)
    logger.info("Run %s ended FAIL: %s", context.run_id, reason)
    if not isinstance(error, KeyboardInterrupt):
        logger.debug("Where magnus failed", exc_info=error)
    try:
        run_log = notify_run_ended(context, whole_log)
    except Exception as exc:  # the original error matters more than this one
        logger.warning("Observers were not told that run %s stopped: %s", context.run_id, exc)
        raise error from None
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        raise error
    return run_log
