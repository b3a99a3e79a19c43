"""Building a run's context and running a pipeline: what the CLI and the SDK both call."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from magnus import config as config_mod
from magnus.context import RunContext, current_run
from magnus.exceptions import RunLogExistsError
from magnus.executors.ending import end_run, end_scope
from magnus.graph import Graph, dag_hash, load_pipeline_file
from magnus.integration import Problem, collect_problems, enforce
from magnus.interrupts import signals_deferred, stoppable
from magnus.owner import current_owner
from magnus.plugins import MagnusPlugins, get_plugins
from magnus.runlog.models import PROCESSING, RunLog, StepLog
from magnus.secrets import mask_secrets_served_in_run

logger = logging.getLogger(__name__)


def build_services(configuration_file: str | None, plugins: MagnusPlugins) -> dict[str, Any]:
    """Instantiate the five services the configuration resolves to."""
    from magnus.exceptions import ConfigurationError

    services = {}
    for key, block in config_mod.resolve_services(configuration_file).items():
        try:
            services[key] = plugins.service_class(key, block.type).from_config(block.config)
        except ConfigurationError as exc:
            if not block.source:
                raise
            raise ConfigurationError(f"{block.source}: {exc}") from None
    return services


def build_context(
    *,
    configuration_file: str | None = None,
    pipeline_file: str = "",
    graph: Graph | None = None,
    parameters_file: str = "",
    run_id: str = "",
    tag: str = "",
    execution_plan: str = "chained",
    use_cached: str = "",
    strict_cache: bool = False,
) -> RunContext:
    """Everything a run needs, checked: services, graph, run id. Nothing is written yet.

    ``use_cached`` names a run to re-run: steps that succeeded there are reused.
    """
    from magnus.names import generate_run_id, validate_run_id

    plugins = get_plugins()
    services = build_services(configuration_file, plugins)
    if graph is None:
        graph = load_pipeline_file(pipeline_file, plugins)
    return RunContext(
        executor=services["executor"],
        run_log_store=services["run_log_store"],
        catalog=services["catalog"],
        secrets=services["secrets"],
        experiment_tracker=services["experiment_tracker"],
        plugins=plugins,
        run_id=validate_run_id(run_id) if run_id else generate_run_id(),
        tag=tag or "",
        pipeline_file=pipeline_file or "",
        parameters_file=parameters_file or "",
        configuration_file=configuration_file or "",
        variables=config_mod.collect_variables(),
        dag=graph,
        dag_hash=dag_hash(graph),
        execution_plan=execution_plan,
        use_cached=bool(use_cached),
        original_run_id=validate_run_id(use_cached) if use_cached else "",
        strict_cache=strict_cache,
    )


def _services(context: RunContext) -> list[Any]:
    return [
        context.run_log_store,
        context.catalog,
        context.secrets,
        context.experiment_tracker,
    ]


def check_compatibility(context: RunContext) -> list[Problem]:
    """Raise on incompatible services; return the warnings."""
    return enforce(collect_problems(context.plugins, context.executor, _services(context)))


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
    from magnus import identity

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
                    code.code_identifier_diff = entry.catalog_relative_path  # type: ignore[attr-defined]
                except Exception as exc:  # a diff we cannot store must not stop the run
                    logger.warning("Could not store the diff of the working tree: %s", exc)
    context.code_identities = [code]


def prepare_for_execution(context: RunContext) -> None:
    """Let integrations adapt each service to where steps execute (once per process)."""
    for service in _services(context):
        context.plugins.hook.configure_for_execution(executor=context.executor, service=service)


def export_run_environment(context: RunContext) -> None:
    """The variables 0.5 exports for user code: run id, tag, configuration file."""
    os.environ["MAGNUS_RUN_ID"] = context.run_id
    if context.tag:
        os.environ["MAGNUS_RUN_TAG"] = context.tag
    if context.configuration_file:
        os.environ["MAGNUS_CONFIG_FILE"] = context.configuration_file


def start_run(context: RunContext) -> RunLog:
    """Create the run log: parameters, run_config, code and environment identity."""
    from magnus import identity
    from magnus.parameters import initial_parameters

    store = context.run_log_store
    if store.run_exists(context.run_id):
        raise RunLogExistsError(context.run_id)
    parameters = initial_parameters(context.parameters_file or None, os.environ)
    if context.use_cached:
        from magnus import rerun

        original = rerun.require_original(context)
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


def execute(context: RunContext) -> RunLog | None:
    """Run the whole pipeline of ``context`` and return its complete run log.

    An executor that does not traverse (it renders the pipeline for an orchestrator) gets the
    graph and nothing else: no run log is created, nothing runs, and ``None`` is returned.
    """
    for warning in check_compatibility(context):
        logger.warning(warning.message)
    for service in _services(context):
        context.plugins.hook.configure_for_traversal(executor=context.executor, service=service)
    if not context.executor.traverses:
        assert context.dag is not None
        context.executor.execute_graph(context, context.dag)
        return None
    if context.executor.runs_in_one_process:
        # Steps execute in this very process: it is also where they need their services adapted.
        prepare_for_execution(context)
    export_run_environment(context)
    context.owner = current_owner()
    token = current_run.set(context)
    try:
        with stoppable():
            try:
                run_log = start_run(context)
                context.plugins.notify("before_run", run_log=run_log, context=context)
                assert context.dag is not None
                context.executor.execute_graph(context, context.dag)
            except RunLogExistsError:
                raise  # another run's log: not this process' to end
            except BaseException as error:
                return _end_stopped_run(context, error)
            run_log = _notify_run_ended(context)
    finally:
        current_run.reset(token)
    return run_log


def _notify_run_ended(context: RunContext) -> RunLog:
    """``after_run`` with the complete run log, which is returned."""
    run_log = context.run_log_store.get_run_log_by_id(context.run_id, full=True)
    context.plugins.notify("after_run", run_log=run_log, context=context)
    return run_log


def _end_stopped_run(context: RunContext, error: BaseException) -> RunLog:
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
        run_log = _notify_run_ended(context)
    except Exception as exc:  # the original error matters more than this one
        logger.warning("Observers were not told that run %s stopped: %s", context.run_id, exc)
        raise error from None
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        raise error
    return run_log


# ------------------------------------------------------------------------------ orchestrator calls
#
# What an orchestrator (or the local executor's parallel mode) calls back for one step, one branch
# or one composite's fan-out/fan-in of a run that exists or is being started.


def context_for_run(
    run_id: str,
    *,
    configuration_file: str | None = None,
    pipeline_file: str = "",
    parameters_file: str = "",
    tag: str = "",
) -> RunContext:
    """The context of an existing run; the graph from ``pipeline_file`` or ``run_config.dag``.

    Without a pipeline file the run must exist: its recorded graph is the one that runs (so SDK
    pipelines work in other processes). With one, a run that does not exist yet is started.
    """
    from magnus.exceptions import RunLogNotFoundError
    from magnus.graph import graph_from_dump
    from magnus.names import validate_run_id

    plugins = get_plugins()
    services = build_services(configuration_file, plugins)
    store = services["run_log_store"]
    if pipeline_file:
        graph = load_pipeline_file(pipeline_file, plugins)
    else:
        run_config = store.get_run_config(run_id)
        if not run_config.get("dag"):
            raise RunLogNotFoundError(run_id, store.location(run_id))
        graph = graph_from_dump(run_config["dag"], plugins)
    context = RunContext(
        executor=services["executor"],
        run_log_store=store,
        catalog=services["catalog"],
        secrets=services["secrets"],
        experiment_tracker=services["experiment_tracker"],
        plugins=plugins,
        run_id=validate_run_id(run_id),
        tag=tag,
        pipeline_file=pipeline_file,
        parameters_file=parameters_file,
        configuration_file=configuration_file or "",
        variables=config_mod.collect_variables(),
        dag=graph,
        dag_hash=dag_hash(graph),
    )
    if store.run_exists(run_id):
        # A process joining a run (a branch, an orchestrated step) shares its re-run setting.
        head = store.get_run_log_by_id(run_id, full=False)
        context.use_cached = head.use_cached
        context.original_run_id = head.original_run_id
        context.strict_cache = bool(head.run_config.get("strict_cache", False))
    return context


MAP_INDICES_ENV = "MAGNUS_MAP_INDICES"
MAP_INDICES_FILE_ENV = "MAGNUS_MAP_INDICES_FILE"


def resolve_map_indices(
    context: RunContext, internal_name: str, map_variables: dict[str, Any] | None
) -> dict[str, Any]:
    """Map values from indices, when an orchestrator passes indices (``MAGNUS_MAP_INDICES=1``).

    Orchestrators pass each enclosing map's element by index (parameters have size limits); the
    element is read from the map step's ``map_values`` in the run log, outermost map first, so
    names and ``MAGNUS_MAP_VARIABLE`` are exactly those of a local run. ``internal_name`` is the
    step or branch whose enclosing maps the indices are for.
    """
    from magnus.exceptions import MagnusError
    from magnus.graph import enclosing_maps
    from magnus.naming import resolve

    if not map_variables or os.environ.get(MAP_INDICES_ENV, "") in ("", "0"):
        return dict(map_variables or {})
    assert context.dag is not None
    maps = enclosing_maps(context.dag, internal_name + ".x")  # the name's own maps included
    values: dict[str, Any] = {}
    for node in maps:
        if node.iterate_as not in map_variables:
            raise MagnusError(f"--map-variable has no index for map {node.internal_name!r}")
        index = map_variables[node.iterate_as]
        step_name = resolve(node.internal_name, values)
        step_log = context.run_log_store.get_step_log(step_name, context.run_id, full=False)
        elements = getattr(step_log, "map_values", None)
        if not isinstance(index, int) or not isinstance(elements, list):
            raise MagnusError(f"map {step_name!r}: {index!r} is not an index of its elements")
        if not 0 <= index < len(elements):
            raise MagnusError(
                f"map {step_name!r}: index {index} is out of range ({len(elements)} elements)"
            )
        values[node.iterate_as] = elements[index]
    return values


def _run_fail_step_after(
    context: RunContext, graph: Any, node: Any, map_variables: dict[str, Any] | None
) -> Any:
    """When a failure leads to its graph's fail step, run it: the run (or branch) ends FAIL.

    Returns the fail step that ran, or ``None``.
    """
    following = graph.next_after(node, failed=True)
    if following.node_type != "fail":
        return None
    context.executor.execute_from_graph(context, following, map_variables)
    return following


def _notify_if_run_ended(context: RunContext, graph: Any, terminal: Any) -> None:
    """``after_run`` once an orchestrated run's own success or fail step (``terminal``) has run.

    An orchestrator runs the pipeline's last step in a container of its own; that is where the
    run ends, so observers close there what they opened for the run (an MLflow parent run).
    ``terminal`` is ``None`` when no terminal step ran; one of a branch's graph ends no run.
    """
    if terminal is not None and graph is context.dag:
        _notify_run_ended(context)


@contextlib.contextmanager
def _ending(context: RunContext, *, branch: str = "", step: str = "") -> Iterator[None]:
    """Around the part of a run one process runs: if it stops, what it had open ends FAIL.

    A signal (an orchestrator stopping the pod, the parent of parallel branches stopping its
    children) is raised again, for the process to exit 128 + its number. After an unexpected
    error the branch or step is FAIL and the process goes on to report it, as for any failure.
    """
    try:
        with stoppable():
            yield
    except BaseException as error:
        end_scope(context.run_log_store, context.run_id, error, branch=branch, step=step)
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        logger.error("%s failed inside magnus: %s", step or branch, error)
        logger.debug("Where magnus failed", exc_info=error)


def _enter(context: RunContext) -> Any:
    """Set up this process for running steps of ``context``'s run; returns the reset token.

    The process that starts the run (an orchestrator's first container) also tells observers
    ``before_run``, once, before any step: so what they make for the run (an MLflow parent
    run) exists and is recorded before the orchestrator starts steps side by side.
    """
    for warning in check_compatibility(context):
        logger.info(warning.message)
    started = None
    if not context.run_log_store.run_exists(context.run_id):
        started = start_run(context)
    else:
        record_identity(context, store_diff=False)
    prepare_for_execution(context)
    mask_secrets_served_in_run(context)  # secrets served by the run's other processes
    export_run_environment(context)
    token = current_run.set(context)
    if started is not None:
        try:
            context.plugins.notify("before_run", run_log=started, context=context)
        except BaseException:
            current_run.reset(token)
            raise
    return token


def execute_single_node(
    context: RunContext, step_name: str, map_variables: dict[str, Any] | None = None
) -> StepLog:
    """Run one step. A failed step whose failure leads to its graph's fail step runs that too.

    An orchestrator renders on_failure routes as dependencies, but a graph's own fail step is not
    a task of its own: running it here is what makes the run (or branch) end FAIL.
    """
    from magnus.executors.leaf import ATTEMPT_ENV
    from magnus.graph import find_node
    from magnus.naming import from_command_line, resolve
    from magnus.runlog.models import FAIL

    assert context.dag is not None
    graph, node = find_node(context.dag, from_command_line(step_name))
    token = _enter(context)
    try:
        map_variables = resolve_map_indices(context, node.internal_name, map_variables)
        name = resolve(node.internal_name, map_variables)
        step_log: StepLog | None = None
        with _ending(context, step=name):
            step_log = context.executor.execute_from_graph(context, node, map_variables)
        if step_log is None:  # magnus failed in the step, which _ending recorded
            step_log = context.run_log_store.get_step_log(name, context.run_id, full=False)
        attempt = int(os.environ.get(ATTEMPT_ENV, "1") or 1)
        # The orchestrator retries a failed attempt; only the last one routes to failure.
        last_attempt = attempt >= getattr(node, "max_attempts", 1)
        terminal = node if node.is_terminal else None
        if step_log.status == FAIL and not node.is_terminal and last_attempt:
            terminal = _run_fail_step_after(context, graph, node, map_variables)
        _notify_if_run_ended(context, graph, terminal)
    finally:
        current_run.reset(token)
    return step_log


def execute_single_branch(
    context: RunContext, branch_name: str, map_variables: dict[str, Any] | None = None
) -> str:
    """Run one branch graph to its end; returns the branch's status."""
    from magnus.graph import find_branch
    from magnus.naming import from_command_line, resolve
    from magnus.runlog.models import BranchLog

    assert context.dag is not None
    graph = find_branch(context.dag, from_command_line(branch_name))
    token = _enter(context)
    try:
        map_variables = resolve_map_indices(context, graph.internal_branch_name, map_variables)
        with _ending(context, branch=resolve(graph.internal_branch_name, map_variables)):
            context.executor.execute_graph(context, graph, map_variables)
    finally:
        current_run.reset(token)
    branch = context.run_log_store.get_branch_log(
        resolve(graph.internal_branch_name, map_variables), context.run_id, full=False
    )
    assert isinstance(branch, BranchLog)
    return branch.status


def fan(
    context: RunContext, step_name: str, mode: str, map_variables: dict[str, Any] | None = None
) -> StepLog:
    """Fan a composite step out (create its step and branch logs) or in (decide its status)."""
    import json

    from magnus.composites import CompositeNode
    from magnus.exceptions import MagnusError
    from magnus.graph import find_node
    from magnus.naming import from_command_line, resolve
    from magnus.runlog.models import FAIL

    assert context.dag is not None
    graph, node = find_node(context.dag, from_command_line(step_name))
    if not isinstance(node, CompositeNode):
        raise MagnusError(f"Step {node.internal_name!r} is a {node.node_type}, not a composite")
    if mode not in ("in", "out"):
        raise MagnusError(f"fan mode must be 'in' or 'out', not {mode!r}")
    store = context.run_log_store
    token = _enter(context)
    try:
        # A map's own elements are not in its --map-variable: only its enclosing maps' are.
        map_variables = resolve_map_indices(context, node.internal_name, map_variables)
        if mode == "out":
            step_log = context.executor.create_step_log(context, node, map_variables)
            store.add_step_log(step_log, context.run_id)
            runs: list[Any] = []
            with _ending(context, step=step_log.internal_name):
                runs = node.fan_out(context, map_variables)
            indices_file = os.environ.get(MAP_INDICES_FILE_ENV)
            if indices_file:
                Path(indices_file).write_text(json.dumps(list(range(len(runs)))))
            return store.get_step_log(
                resolve(node.internal_name, map_variables), context.run_id, full=False
            )
        name = resolve(node.internal_name, map_variables)
        fanned_in: StepLog | None = None
        with _ending(context, step=name):
            fanned_in = node.fan_in(context, map_variables)
        step_log = fanned_in or store.get_step_log(name, context.run_id, full=False)
        if step_log.status == FAIL:
            fail_step = _run_fail_step_after(context, graph, node, map_variables)
            _notify_if_run_ended(context, graph, fail_step)
        return step_log
    finally:
        current_run.reset(token)
