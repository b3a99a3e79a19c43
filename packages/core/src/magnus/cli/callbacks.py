"""What an orchestrator (or a parallel run) calls back: one step, one branch, a composite's fan,
the start of a re-run that spares pods, and the end of a run (an exit handler). Hidden commands:
they are a contract with orchestrators, not for people.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from magnus import orchestration
from magnus.cli.common import (
    F,
    cli,
    config_option,
    friendly_errors,
    log_level_option,
    reuse_option,
    setup_logging,
)


def _map_variable(text: str) -> dict[str, Any]:
    import json

    from magnus.exceptions import ConfigurationError

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"--map-variable is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError("--map-variable must be a JSON object of name to value")
    if os.environ.get(orchestration.MAP_INDICES_ENV, "") not in ("", "0"):
        from magnus.orchestrated_batches import indices_of_items

        return indices_of_items(value)  # an orchestrator's labelled items stand for indices
    return value


def _orchestrated(function: F) -> F:
    """The options every orchestrator entry point shares (0.5's names)."""
    options = [
        click.option("--map-variable", default="", help="JSON of the map values in force."),
        click.option(
            "-f",
            "--file",
            "pipeline_file",
            default="",
            help="Pipeline file (default: the graph recorded in the run log).",
        ),
        config_option,
        click.option("-p", "--parameters-file", default=""),
        log_level_option,
        click.option("--tag", default=""),
        # Read by the process that starts the run only: the others share what it recorded.
        reuse_option,
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _orchestrated_run(
    run_id: str,
    config_file: str | None,
    pipeline_file: str,
    parameters_file: str,
    tag: str,
    reuse: bool | None,
) -> Any:
    from magnus import config as config_mod
    from magnus import orchestrated
    from magnus.console import REPORTER_NAME, ConsoleReporter

    run = orchestrated.prepare_orchestrated_run(
        run_id,
        configuration_file=config_mod.configuration_file_for_cli(config_file),
        pipeline_file=pipeline_file,
        parameters_file=parameters_file,
        tag=tag,
        reuse=reuse,
    )
    # This process ends with the command: the reporter needs no unregistering.
    failures_only = os.environ.get(orchestration.FAILURES_ONLY_ENV) == "1"
    run.plugins.register(ConsoleReporter(failures_only=failures_only), REPORTER_NAME)
    return run


#: the options sparing an orchestrator pods (the callback contract: ``magnus.orchestration``)
_then_success_option = click.option(
    orchestration.THEN_SUCCESS_OPTION,
    is_flag=True,
    help="Once the step succeeded, also run the success step its next leads to.",
)
_batch_size_option = click.option(
    orchestration.BATCH_SIZE_OPTION,
    type=click.IntRange(min=0),
    default=0,
    help="A map's elements run this many per process (0: one per process).",
)


@click.command(hidden=True)
@click.argument("run_id")
@click.argument("step_name")
@_orchestrated
@_then_success_option
@friendly_errors
def execute_single_node(
    run_id: str,
    step_name: str,
    map_variable: str,
    pipeline_file: str,
    config_file: str | None,
    parameters_file: str,
    log_level: str,
    tag: str,
    reuse: bool | None,
    then_success: bool,
) -> None:
    """Run one step of a run (STEP_NAME: internal name, spaces as %). Exit 1 if it fails."""
    setup_logging(log_level)
    from magnus import orchestrated
    from magnus.runlog.models import SUCCESS

    run = _orchestrated_run(run_id, config_file, pipeline_file, parameters_file, tag, reuse)
    step_log = orchestrated.execute_single_node(run, step_name, _map_variable(map_variable))
    if then_success:
        orchestrated.run_success_after(run, step_name, step_log, _map_variable(map_variable))
    if step_log.status != SUCCESS:
        sys.exit(1)


@click.command(hidden=True)
@click.argument("run_id")
@click.argument("branch_name")
@_orchestrated
@_batch_size_option
@friendly_errors
def execute_single_branch(
    run_id: str,
    branch_name: str,
    map_variable: str,
    pipeline_file: str,
    config_file: str | None,
    parameters_file: str,
    log_level: str,
    tag: str,
    reuse: bool | None,
    batch_size: int,
) -> None:
    """Run one branch of a composite step to its end. Exit 1 if the branch fails.

    With --batch-size, the branch is a map's and its --map-variable index a batch number: each
    element of that batch runs in turn (one that already succeeded is not run again); exit 1 if
    any failed.
    """
    setup_logging(log_level)
    from magnus import orchestrated, orchestrated_batches
    from magnus.runlog.models import SUCCESS

    run = _orchestrated_run(run_id, config_file, pipeline_file, parameters_file, tag, reuse)
    variables = _map_variable(map_variable)
    if batch_size:
        status = orchestrated_batches.execute_map_batch(run, branch_name, batch_size, variables)
    else:
        status = orchestrated.execute_single_branch(run, branch_name, variables)
    if status != SUCCESS:
        sys.exit(1)


@click.command(hidden=True)
@click.argument("run_id")
@click.argument("step_name")
@click.option("-m", "--mode", type=click.Choice(orchestration.FAN_MODES), required=True)
@_orchestrated
@_then_success_option
@_batch_size_option
@click.option(
    orchestration.LABELLED_OPTION,
    is_flag=True,
    help="A map's fan-out writes each index with a label of its element (for a UI).",
)
@friendly_errors
def fan(
    run_id: str,
    step_name: str,
    mode: str,
    map_variable: str,
    pipeline_file: str,
    config_file: str | None,
    parameters_file: str,
    log_level: str,
    tag: str,
    reuse: bool | None,
    then_success: bool,
    batch_size: int,
    labelled: bool,
) -> None:
    """Fan a composite step out (create its branch logs) or in (decide its status)."""
    setup_logging(log_level)
    from magnus import orchestrated, orchestrated_batches
    from magnus.runlog.models import FAIL

    run = _orchestrated_run(run_id, config_file, pipeline_file, parameters_file, tag, reuse)
    variables = _map_variable(map_variable)
    if (batch_size or labelled) and mode == orchestration.FAN_OUT:
        step_log = orchestrated_batches.fan_out_items(run, step_name, batch_size or 1, variables)
    else:
        step_log = orchestrated.fan(run, step_name, mode, variables)
    if then_success and mode == orchestration.FAN_IN:
        orchestrated.run_success_after(run, step_name, step_log, variables)
    if step_log.status == FAIL:
        sys.exit(1)


@click.command(hidden=True)
@click.argument("run_id")
@click.argument("workflow_status")
@click.option("--failures", default="", help="JSON list of the workflow's failed nodes.")
@click.option("-f", "--file", "pipeline_file", default="", help="Pipeline file.")
@config_option
@click.option("-p", "--parameters-file", default="")
@log_level_option
@click.option("--tag", default="")
@friendly_errors
def end_run(
    run_id: str,
    workflow_status: str,
    failures: str,
    pipeline_file: str,
    config_file: str | None,
    parameters_file: str,
    log_level: str,
    tag: str,
) -> None:
    """End a run once its workflow is over (WORKFLOW_STATUS: the workflow's phase).

    Closes FAIL what is still open; a run still open ends FAIL with the reason and observers
    hear after_run. Exits 0 unless the run log cannot be written.
    """
    setup_logging(log_level)
    from magnus import orchestrated_lifecycle

    run = _orchestrated_run(run_id, config_file, pipeline_file, parameters_file, tag, None)
    orchestrated_lifecycle.end_orchestrated_run(run, workflow_status, failures)


@click.command(hidden=True)
@click.argument("run_id")
@click.argument("original_run_id")
@click.option("-f", "--file", "pipeline_file", default="", help="Pipeline file.")
@config_option
@click.option("-p", "--parameters-file", default="")
@log_level_option
@click.option("--tag", default="")
@click.option("--strict", is_flag=True, help="Run again steps whose fingerprint changed.")
@reuse_option
@friendly_errors
def start_rerun(
    run_id: str,
    original_run_id: str,
    pipeline_file: str,
    config_file: str | None,
    parameters_file: str,
    log_level: str,
    tag: str,
    strict: bool,
    reuse: bool | None,
) -> None:
    """Start RUN_ID, a re-run of ORIGINAL_RUN_ID whose other steps an orchestrator runs.

    Records reused the steps before the first one that runs again (they cost no pod).
    """
    setup_logging(log_level)
    from magnus import config as config_mod
    from magnus import entrypoints, orchestrated_lifecycle
    from magnus.console import REPORTER_NAME, ConsoleReporter

    run = entrypoints.prepare_run(
        configuration_file=config_mod.configuration_file_for_cli(config_file),
        pipeline_file=pipeline_file,
        parameters_file=parameters_file,
        run_id=run_id,
        tag=tag,
        use_cached=original_run_id,
        strict_cache=strict,
        reuse=reuse,
    )
    run.plugins.register(ConsoleReporter(), REPORTER_NAME)
    orchestrated_lifecycle.start_rerun(run)


for _command, _name in (
    (execute_single_node, orchestration.EXECUTE_SINGLE_NODE),
    (execute_single_branch, orchestration.EXECUTE_SINGLE_BRANCH),
    (fan, orchestration.FAN),
    (end_run, orchestration.END_RUN),
    (start_rerun, orchestration.START_RERUN),
):
    for _alias in orchestration.command_names(_name):
        cli.add_command(_command, _alias)
