"""What an orchestrator (or the local executor's parallel mode) calls back: one step, one branch,
or one composite's fan-out or fan-in, of a run that exists or is being started.

Each call is a process of its own joining the run: it rebuilds the run's graph (from the pipeline
file or ``run_config.dag``), sets itself up for running steps, and runs its part; if it is
stopped, what it had open ends FAIL (``magnus.executors.ending``). The process that runs the
pipeline's own success or fail step ends the run for observers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from magnus import config as config_mod
from magnus.building import graph_from_dump, load_pipeline_file
from magnus.composites import CompositeNode, MapNode, enclosing_iterations
from magnus.context import RunContext, current_run
from magnus.entrypoints import (
    PreparedRun,
    build_services,
    check_compatibility,
    export_run_environment,
    notify_run_ended,
    prepare_for_execution,
    prepared_run,
    record_identity,
    start_run,
)
from magnus.exceptions import MagnusError, RunLogNotFoundError
from magnus.executors import rerun
from magnus.executors.ending import end_scope
from magnus.executors.fanning import fan_in, fan_next, fan_out
from magnus.graph import find_branch, find_node
from magnus.internal_names import from_command_line, resolve
from magnus.interrupts import stoppable
from magnus.orchestration import (
    ATTEMPT_ENV,
    FAN_MODES,
    FAN_NEXT,
    FAN_OUT,
    MAP_INDICES_ENV,
    MAP_INDICES_FILE_ENV,
)
from magnus.plugins import get_plugins
from magnus.run_ids import validate_run_id
from magnus.runlog.models import FAIL, SUCCESS, BranchLog, StepLog
from magnus.secrets import mask_secrets_served_in_run

logger = logging.getLogger(__name__)


def prepare_orchestrated_run(
    run_id: str,
    *,
    configuration_file: str | None = None,
    pipeline_file: str = "",
    parameters_file: str = "",
    tag: str = "",
    reuse: bool | None = None,
) -> PreparedRun:
    """A run joined by one process; the graph from ``pipeline_file`` or ``run_config.dag``.

    ``reuse`` applies to a run this process starts (``None``: as the configuration says); a
    process joining a run shares the run's recorded setting.

    Without a pipeline file the run must exist: its recorded graph is the one that runs (so SDK
    pipelines work in other processes). With one, a run that does not exist yet is started.
    """
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
    state: dict[str, Any] = {
        "reuse": config_mod.resolve_reuse(configuration_file) if reuse is None else reuse
    }
    if store.run_exists(run_id):
        # A process joining a run (a branch, an orchestrated step) shares its re-run setting.
        head = store.get_run_log_by_id(run_id, full=False)
        state = {
            "use_cached": head.use_cached,
            "original_run_id": head.original_run_id,
            "strict_cache": bool(head.run_config.get("strict_cache", False)),
            "reuse": bool(head.run_config.get("reuse", False)),
        }
        if head.use_cached:
            state["original"] = rerun.load_original(store, head.original_run_id, plugins.kinds())
    return prepared_run(
        services,
        plugins,
        validate_run_id(run_id),
        graph,
        tag=tag,
        pipeline_file=pipeline_file,
        parameters_file=parameters_file,
        configuration_file=configuration_file or "",
        **state,
    )


def resolve_map_indices(
    context: RunContext, internal_name: str, map_variables: dict[str, Any] | None
) -> dict[str, Any]:
    """Map values from indices, when an orchestrator passes indices (``MAGNUS_MAP_INDICES=1``).

    Orchestrators pass each enclosing map's element by index (parameters have size limits); the
    element is read from the map step's ``map_values`` in the run log, outermost map first, so
    names and ``MAGNUS_MAP_VARIABLE`` are exactly those of a local run. ``internal_name`` is the
    step or branch whose enclosing maps the indices are for.
    """
    if not map_variables or os.environ.get(MAP_INDICES_ENV, "") in ("", "0"):
        return dict(map_variables or {})
    assert context.dag is not None
    # the name's own maps and loops included
    around = enclosing_iterations(context.dag, internal_name + ".x")
    values: dict[str, Any] = {}
    for node in around:
        variable = node.branch_variable
        assert variable is not None
        if variable not in map_variables:
            raise MagnusError(f"--map-variable has no value for step {node.internal_name!r}")
        index = map_variables[variable]
        if not isinstance(node, MapNode):
            values[variable] = index  # a loop's iteration is its own value
            continue
        step_name = resolve(node.internal_name, values)
        step_log = context.run_log_store.get_step_log(step_name, context.run_id, full=False)
        elements = step_log.map_values
        if not isinstance(index, int) or not isinstance(elements, list):
            raise MagnusError(f"map {step_name!r}: {index!r} is not an index of its elements")
        if not 0 <= index < len(elements):
            raise MagnusError(
                f"map {step_name!r}: index {index} is out of range ({len(elements)} elements)"
            )
        values[node.iterate_as] = elements[index]
    return values


def _run_fail_step_after(
    run: PreparedRun, graph: Any, node: Any, map_variables: dict[str, Any] | None
) -> Any:
    """When a failure leads to its graph's fail step, run it: the run (or branch) ends FAIL.

    Returns the fail step that ran, or ``None``.
    """
    following = graph.next_after(node, failed=True)
    if following.node_type != "fail":
        return None
    run.executor.execute_from_graph(run.context, following, map_variables)
    return following


def notify_if_run_ended(context: RunContext, graph: Any, terminal: Any) -> None:
    """``after_run`` once an orchestrated run's own success or fail step (``terminal``) has run.

    An orchestrator runs the pipeline's last step in a container of its own; that is where the
    run ends, so observers close there what they opened for the run (an MLflow parent run).
    ``terminal`` is ``None`` when no terminal step ran; one of a branch's graph ends no run.
    """
    if terminal is not None and graph is context.dag:
        notify_run_ended(context)


@contextlib.contextmanager
def ending(context: RunContext, *, branch: str = "", step: str = "") -> Iterator[None]:
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


def enter_run(run: PreparedRun) -> Any:
    """Set up this process for running steps of ``context``'s run; returns the reset token.

    The process that starts the run (an orchestrator's first container) also tells observers
    ``before_run``, once, before any step: so what they make for the run (an MLflow parent
    run) exists and is recorded before the orchestrator starts steps side by side.
    """
    context = run.context
    for warning in check_compatibility(run):
        logger.info(warning.message)
    started = None
    if not context.run_log_store.run_exists(context.run_id):
        started = start_run(context)
    else:
        record_identity(context, store_diff=False)
    prepare_for_execution(run)
    mask_secrets_served_in_run(context)  # secrets served by the run's other processes
    export_run_environment(context)
    token = current_run.set(context)
    if started is not None:
        try:
            context.observers.before_run(run_log=started, context=context)
        except BaseException:
            current_run.reset(token)
            raise
    return token


def execute_single_node(
    run: PreparedRun, step_name: str, map_variables: dict[str, Any] | None = None
) -> StepLog:
    """Run one step. A failed step whose failure leads to its graph's fail step runs that too.

    An orchestrator renders on_failure routes as dependencies, but a graph's own fail step is not
    a task of its own: running it here is what makes the run (or branch) end FAIL.
    """
    context = run.context
    assert context.dag is not None
    graph, node = find_node(context.dag, from_command_line(step_name))
    token = enter_run(run)
    try:
        map_variables = resolve_map_indices(context, node.internal_name, map_variables)
        name = resolve(node.internal_name, map_variables)
        step_log: StepLog | None = None
        with ending(context, step=name):
            step_log = run.executor.execute_from_graph(context, node, map_variables)
        if step_log is None:  # magnus failed in the step, which ending() recorded
            step_log = context.run_log_store.get_step_log(name, context.run_id, full=False)
        attempt = int(os.environ.get(ATTEMPT_ENV, "1") or 1)
        # The orchestrator retries a failed attempt; only the last one routes to failure.
        last_attempt = attempt >= getattr(node, "max_attempts", 1)
        terminal = node if node.is_terminal else None
        if step_log.status == FAIL and not node.is_terminal and last_attempt:
            terminal = _run_fail_step_after(run, graph, node, map_variables)
        notify_if_run_ended(context, graph, terminal)
    finally:
        current_run.reset(token)
    return step_log


def execute_single_branch(
    run: PreparedRun, branch_name: str, map_variables: dict[str, Any] | None = None
) -> str:
    """Run one branch graph to its end; returns the branch's status."""
    context = run.context
    assert context.dag is not None
    graph = find_branch(context.dag, from_command_line(branch_name))
    token = enter_run(run)
    try:
        map_variables = resolve_map_indices(context, graph.internal_branch_name, map_variables)
        with ending(context, branch=resolve(graph.internal_branch_name, map_variables)):
            run.executor.execute_graph(context, graph, map_variables)
    finally:
        current_run.reset(token)
    branch = context.run_log_store.get_branch_log(
        resolve(graph.internal_branch_name, map_variables), context.run_id, full=False
    )
    assert isinstance(branch, BranchLog)
    return branch.status


def fan(
    run: PreparedRun, step_name: str, mode: str, map_variables: dict[str, Any] | None = None
) -> StepLog:
    """Fan a composite step out (create its step and branch logs) or in (decide its status)."""
    context = run.context
    assert context.dag is not None
    graph, node = find_node(context.dag, from_command_line(step_name))
    if not isinstance(node, CompositeNode):
        raise MagnusError(f"Step {node.internal_name!r} is a {node.node_type}, not a composite")
    if mode not in FAN_MODES:
        raise MagnusError(f"fan mode must be one of {', '.join(FAN_MODES)}, not {mode!r}")
    store = context.run_log_store
    token = enter_run(run)
    try:
        # A map's own elements are not in its --map-variable: only its enclosing maps' are.
        map_variables = resolve_map_indices(context, node.internal_name, map_variables)
        if mode == FAN_OUT:
            step_log = run.executor.create_step_log(context, node, map_variables)
            store.add_step_log(step_log, context.run_id)
            runs: list[Any] = []
            with ending(context, step=step_log.internal_name):
                runs = fan_out(context, node, map_variables)
            _write_fan_output(node, runs)
            return store.get_step_log(
                resolve(node.internal_name, map_variables), context.run_id, full=False
            )
        if mode == FAN_NEXT:
            name = resolve(node.internal_name, map_variables)
            runs = []
            with ending(context, step=name):
                step_log = store.get_step_log(name, context.run_id, full=False)
                expected = node.expected_branch_names(step_log, map_variables)
                if isinstance(expected, list) and expected:
                    runs = fan_next(context, node, map_variables, expected[-1])
            _write_fan_output(node, runs)
            return store.get_step_log(name, context.run_id, full=False)
        name = resolve(node.internal_name, map_variables)
        fanned_in: StepLog | None = None
        with ending(context, step=name):
            fanned_in = fan_in(context, node, map_variables)
        step_log = fanned_in or store.get_step_log(name, context.run_id, full=False)
        if step_log.status == FAIL:
            fail_step = _run_fail_step_after(run, graph, node, map_variables)
            notify_if_run_ended(context, graph, fail_step)
        return step_log
    finally:
        current_run.reset(token)


def _write_fan_output(node: CompositeNode, runs: list[Any]) -> None:
    """Tell the orchestrator what to run next, in the file it names (``MAP_INDICES_FILE_ENV``).

    A map: the JSON list of its element indices. Any other composite: the key (the last segment
    of the branch name) of the one branch to run -- a conditional's choice, a loop's iteration
    -- or ``""`` when there is none (fan-out failed, a loop is done).
    """
    output_file = os.environ.get(MAP_INDICES_FILE_ENV)
    if not output_file:
        return
    if isinstance(node, MapNode):
        text = json.dumps(list(range(len(runs))))
    else:
        text = runs[0].name.rsplit(".", 1)[-1] if len(runs) == 1 else ""
    Path(output_file).write_text(text)


def run_success_after(
    run: PreparedRun, step_name: str, step_log: StepLog, map_variables: dict[str, Any] | None
) -> StepLog | None:
    """After ``step_name`` succeeded, run the success step its ``next`` leads to, if it does.

    That records what the success step's own process would (its step log, the branch or the run
    ending SUCCESS, observers' ``after_run`` for the pipeline's own). Returns its step log, or
    ``None`` when nothing ran: the step did not succeed, or leads elsewhere.
    """
    context = run.context
    assert context.dag is not None
    graph, node = find_node(context.dag, from_command_line(step_name))
    if step_log.status != SUCCESS or node.is_terminal:
        return None
    following = graph.next_after(node, failed=False)
    if following.node_type != "success":
        return None
    token = enter_run(run)
    try:
        values = resolve_map_indices(context, node.internal_name, map_variables)
        name = resolve(following.internal_name, values)
        ran: StepLog | None = None
        with ending(context, step=name):
            ran = run.executor.execute_from_graph(context, following, values)
        notify_if_run_ended(context, graph, following)
    finally:
        current_run.reset(token)
    return ran or context.run_log_store.get_step_log(name, context.run_id, full=False)
