"""The ``magnus`` command line.

Only click is imported at start-up; everything else is imported by the command that needs it, so
``magnus --help`` stays fast. Errors reach the user as one message, never a traceback (unless
``--log-level DEBUG``). Exit status: 0 success, 1 the run failed, 2 bad input.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from magnus import __version__, orchestration

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "FATAL", "CRITICAL"]
F = TypeVar("F", bound=Callable[..., Any])


def _pypi_magnus_installed() -> str:
    """Where PyPI's ``magnus`` (0.5 and earlier) is installed beside this one, or ``""``.

    Both distributions install the ``magnus`` import package, so one overwrites the other's
    files. Read from the folders on ``sys.path`` (a directory listing each), not through
    ``importlib.metadata``, which costs tens of milliseconds on every command.
    """
    import os
    import re

    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        if any(re.fullmatch(r"magnus-\d[^/]*\.(dist|egg)-info", name) for name in names):
            return entry or "."
    return ""


def _setup_logging(level: str) -> None:
    where = _pypi_magnus_installed()
    if where:
        click.echo(
            f"warning: magnus from PyPI is installed in {where} beside magnus-core; both "
            "provide the `magnus` package and one overwrites the other's files: "
            "pip uninstall magnus magnus-core, then pip install ./packages/core again",
            err=True,
        )
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("magnus").setLevel(level)
    from magnus.redaction import RedactingFilter

    # On handlers, not loggers: a handler sees the records of every logger below it.
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())


def _friendly_errors(function: F) -> F:
    """Turn magnus' errors into one line on stderr and exit status 2."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from magnus.exceptions import MagnusError

        try:
            return function(*args, **kwargs)
        except KeyboardInterrupt as exc:
            # Whatever was running recorded that it stopped; exit as a shell expects.
            from magnus.interrupts import signal_of

            signum = signal_of(exc)
            print(f"Interrupted by {signal.Signals(signum).name}", file=sys.stderr)
            sys.exit(128 + signum)
        except MagnusError as exc:
            if logging.getLogger("magnus").isEnabledFor(logging.DEBUG):
                raise
            from magnus.console import print_error

            print_error(str(exc))
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


log_level_option = click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="WARNING",
    show_default=True,
    help="How much magnus itself logs.",
)
config_option = click.option(
    "-c",
    "--config-file",
    default=None,
    help="Configuration file (default: $MAGNUS_CONFIGURATION_FILE, magnus-config.yaml, built-ins).",
)


reuse_option = click.option(
    "--reuse/--no-reuse",
    default=None,
    help="Reuse the result of any earlier run of a step with the same fingerprint (default: "
    "the configuration's 'reuse'); a step's own 'cache' decides for it.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="magnus")
def cli() -> None:
    """magnus: run data science pipelines anywhere, and record everything to reproduce them."""


@cli.command()
@click.option(
    "-f",
    "--file",
    "pipeline_file",
    default="pipeline.yaml",
    show_default=True,
    help="The pipeline definition (YAML).",
)
@config_option
@click.option("-p", "--parameters-file", default="", help="Initial parameters (YAML).")
@log_level_option
@click.option("--tag", default="", help="A free-text tag recorded in the run log.")
@click.option("--run-id", default="", help="Run id (default: generated, adjective-name-HHMM).")
@click.option(
    "--use-cached",
    default="",
    metavar="RUN_ID",
    help="Re-run RUN_ID: reuse the steps that succeeded there.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="With --use-cached: run again steps whose fingerprint changed.",
)
@reuse_option
@_friendly_errors
def execute(
    pipeline_file: str,
    config_file: str | None,
    parameters_file: str,
    log_level: str,
    tag: str,
    run_id: str,
    use_cached: str,
    strict: bool,
    reuse: bool | None,
) -> None:
    """Run a pipeline; exit status 0 when it succeeds, 1 when it fails."""
    _setup_logging(log_level)
    from magnus import config as config_mod
    from magnus import entrypoints

    run = entrypoints.prepare_run(
        configuration_file=config_mod.configuration_file_for_cli(config_file),
        pipeline_file=pipeline_file,
        parameters_file=parameters_file,
        run_id=run_id,
        tag=tag,
        use_cached=use_cached,
        strict_cache=strict,
        reuse=reuse,
    )
    _refuse_run_id_where_nothing_runs(run, run_id)
    _run(run)


def _refuse_run_id_where_nothing_runs(run: Any, run_id: str) -> None:
    """``--run-id`` for an executor that renders the pipeline for an orchestrator is refused.

    Nothing runs here: each run of the rendered workflow takes its id when it starts there, so
    the id given here would be silently dropped.
    """
    from magnus.exceptions import ConfigurationError

    if run_id and not run.executor.traverses:
        raise ConfigurationError(
            f"--run-id {run_id}: the {run.executor.service_name!r} executor does not run the "
            "pipeline here, it renders it; give the run id where the run starts (the "
            "orchestrator's run_id argument)"
        )


@cli.command(name="execute-job")
@click.option(
    "-f",
    "--file",
    "job_file",
    default="job.yaml",
    show_default=True,
    help="The job definition (YAML): one task under a top-level 'job'.",
)
@config_option
@click.option("-p", "--parameters-file", default="", help="Initial parameters (YAML).")
@log_level_option
@click.option("--tag", default="", help="A free-text tag recorded in the run log.")
@click.option("--run-id", default="", help="Run id (default: generated, adjective-name-HHMM).")
@reuse_option
@_friendly_errors
def execute_job(
    job_file: str,
    config_file: str | None,
    parameters_file: str,
    log_level: str,
    tag: str,
    run_id: str,
    reuse: bool | None,
) -> None:
    """Run a single task without a pipeline; exit status 0 when it succeeds, 1 when it fails.

    Its run log is a pipeline's: `magnus runs show`, `magnus retry` and the services work alike.
    """
    _setup_logging(log_level)
    from magnus import config as config_mod
    from magnus import entrypoints

    run = entrypoints.prepare_job(
        configuration_file=config_mod.configuration_file_for_cli(config_file),
        job_file=job_file,
        parameters_file=parameters_file,
        run_id=run_id,
        tag=tag,
        reuse=reuse,
    )
    _refuse_run_id_where_nothing_runs(run, run_id)
    _run(run)


@cli.command()
@click.argument("original_run_id")
@click.option(
    "-f",
    "--file",
    "pipeline_file",
    default="",
    help="A (fixed) pipeline file; default: the graph recorded in the original run.",
)
@config_option
@click.option(
    "-p",
    "--parameters-file",
    default="",
    help="Parameters to override the original's initial parameters.",
)
@log_level_option
@click.option("--tag", default="", help="Tag of the new run (default: the original's).")
@click.option("--run-id", default="", help="Run id of the new run (default: generated).")
@click.option(
    "--strict",
    is_flag=True,
    help="Run again steps whose fingerprint (code, definition, parameters, data, environment) "
    "changed since the original.",
)
@reuse_option
@_friendly_errors
def retry(
    original_run_id: str,
    pipeline_file: str,
    config_file: str | None,
    parameters_file: str,
    log_level: str,
    tag: str,
    run_id: str,
    strict: bool,
    reuse: bool | None,
) -> None:
    """Re-run ORIGINAL_RUN_ID under a new run id, reusing the steps that succeeded there."""
    _setup_logging(log_level)
    from magnus import config as config_mod
    from magnus import entrypoints

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
    _run(run)


def _run(run: Any) -> None:
    """Run a prepared run with the console reporter; exit 1 when it fails."""
    from magnus.console import print_interrupted, run_with_reporter
    from magnus.interrupts import signal_of
    from magnus.runlog.models import SUCCESS

    try:
        run_log = run_with_reporter(run)
    except KeyboardInterrupt as interruption:
        signum = signal_of(interruption)
        print_interrupted(run.context, signum)
        sys.exit(128 + signum)
    if run_log is not None and run_log.status != SUCCESS:
        sys.exit(1)


@cli.command()
@click.option("-f", "--file", "pipeline_file", default="pipeline.yaml", show_default=True)
@config_option
@click.option("-p", "--parameters-file", default="", help="Initial parameters (YAML).")
@click.option(
    "--no-import",
    is_flag=True,
    help="Do not import python commands (a pipeline for another image); files are still checked.",
)
@log_level_option
@_friendly_errors
def validate(
    pipeline_file: str,
    config_file: str | None,
    parameters_file: str,
    no_import: bool,
    log_level: str,
) -> None:
    """Check a pipeline, its configuration, their compatibility and the commands it runs
    (python functions and the arguments they need, notebooks, shell scripts), running nothing.
    """
    _setup_logging(log_level)
    import os

    from magnus import config as config_mod
    from magnus import entrypoints
    from magnus.checks import check_commands
    from magnus.exceptions import PipelineValidationError
    from magnus.parameters import initial_parameters

    run = entrypoints.prepare_run(
        configuration_file=config_mod.configuration_file_for_cli(config_file),
        pipeline_file=pipeline_file,
    )
    context = run.context
    warnings = entrypoints.check_compatibility(run)
    assert context.dag is not None
    parameters = initial_parameters(parameters_file or None, os.environ)
    checks = check_commands(context.dag, parameters, imports=not no_import)
    if checks.errors:
        raise PipelineValidationError(checks.errors, pipeline_file)
    for warning in [*context.dag.warnings, *(w.message for w in warnings), *checks.warnings]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"{pipeline_file} is valid: {len(context.dag.nodes)} steps; executor "
        f"{run.executor.service_name}, run log store {context.run_log_store.service_name}, "
        f"catalog {context.catalog.service_name}"
    )


# ------------------------------------------------------------------ orchestrator entry points


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
@_friendly_errors
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
    _setup_logging(log_level)
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
@_friendly_errors
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
    _setup_logging(log_level)
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
@_friendly_errors
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
    _setup_logging(log_level)
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
@_friendly_errors
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
    _setup_logging(log_level)
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
@_friendly_errors
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
    _setup_logging(log_level)
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


@cli.group()
def runs() -> None:
    """Look at recorded runs."""


def _store(config_file: str | None) -> Any:
    from magnus import config as config_mod
    from magnus.entrypoints import build_services
    from magnus.plugins import get_plugins

    services = build_services(config_mod.configuration_file_for_cli(config_file), get_plugins())
    return services["run_log_store"]


@runs.command("show")
@click.argument("run_id")
@config_option
@click.option("--json", "as_json", is_flag=True, help="The whole run log as JSON.")
@click.option(
    "--step",
    "step_name",
    default="",
    help="Only this step (its internal name, e.g. train.left.fit or report.10.render).",
)
@_friendly_errors
def runs_show(run_id: str, config_file: str | None, as_json: bool, step_name: str) -> None:
    """Print the run log of RUN_ID (or one step of it)."""
    import json

    store = _store(config_file)
    if step_name:
        step_log = store.get_step_log(step_name, run_id, full=True)
        if as_json:
            click.echo(json.dumps(step_log.model_dump(mode="json"), indent=2))
            return
        from magnus.reports import render_step

        render_step(step_log)
        return
    run_log = store.get_run_log_by_id(run_id, full=True)
    if as_json:
        from pydantic_core import to_json

        # What json.dumps(indent=2) writes (text as UTF-8 rather than escaped), several times as
        # fast: a run of 10,000 steps is 20,000 lines.
        click.echo(to_json(run_log.to_json_dict(), indent=2, inf_nan_mode="constants"))
        return
    from magnus.reports import render_run_log

    render_run_log(run_log)


@runs.command("list")
@config_option
@click.option(
    "--status",
    type=click.Choice(
        ["SUCCESS", "FAIL", "PROCESSING", "ABANDONED", "UNREADABLE"], case_sensitive=False
    ),
    help="Only runs with this status (ABANDONED: PROCESSING, but its process is gone).",
)
@click.option("--tag", default=None, help="Only runs with this tag.")
@click.option(
    "--since",
    default=None,
    metavar="WHEN",
    help="Only runs started since WHEN: a date (2026-11-26), a time, or 3h / 2d / 30m ago.",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME",
    help="A column with this parameter's final value (else its initial one); repeatable.",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="A column with the last value recorded for this metric; repeatable (reads steps).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Only the newest N (after the other filters).",
)
@click.option("--json", "as_json", is_flag=True, help="A list of objects, one per run.")
@_friendly_errors
def runs_list(
    config_file: str | None,
    status: str | None,
    tag: str | None,
    since: str | None,
    params: tuple[str, ...],
    metrics: tuple[str, ...],
    limit: int | None,
    as_json: bool,
) -> None:
    """List the runs of the run log store, newest first: id, status, start, duration, tag, and
    a column per --param and --metric.

    \b
    A --metric column holds the last value recorded for it: of the steps that record it, the
    last in run order (inside a map, the last element); of a metric tracked at several indices
    (epochs), the value at the highest index.

    \b
    --json prints a list of objects, one per run:
      run_id, status, start_time, end_time, tag, message (why the run ended so, or why it
      cannot be read), duration_seconds (a number, null if it has not started),
      params         {NAME: value or null} for each --param
      metrics        {NAME: value or null} for each --metric
    """
    import json

    from magnus.reports import filter_runs, newest_first, render_run_list, run_rows

    store = _store(config_file)
    runs = newest_first(filter_runs(store.list_runs(), status=status, tag=tag, since=since))
    rows = run_rows(store, runs[:limit], params, metrics)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=2, default=str))
    else:
        render_run_list(rows, params, metrics)


@runs.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@config_option
@click.option("--json", "as_json", is_flag=True, help="The differences as one object (above).")
@_friendly_errors
def runs_diff(run_a: str, run_b: str, config_file: str | None, as_json: bool) -> None:
    """Show only what differs between RUN_A (before) and RUN_B (after).

    \b
    The run: status, tag, pipeline (dag_hash), initial and final parameters, code identity
    (commit, clean or dirty), python and distributions. Each step, by internal name: status,
    parameters consumed and produced, metrics, catalog data hashes, reuse, map elements, the
    fingerprint parts that differ; and the steps present in one run only. Times, durations,
    run ids and execution logs always differ and are never shown. Exit 0 whether or not
    anything differs.

    \b
    --json prints one object:
      before, after    the run ids; identical: true when nothing differs
      run              {"status", "tag", "dag_hash", "code": CHANGE or null,
                        "initial_parameters", "parameters", "environment": [CHANGE]}
      steps            [{"step", "only_in": null|"before"|"after", "status",
                        "reused_from", "map_values": CHANGE or null, "consumed",
                        "produced", "metrics", "catalog": [CHANGE], "fingerprint": [part]}]
    where CHANGE is {"name", "change": "changed"|"added"|"removed", "before", "after"}.
    """
    import json

    from magnus.run_diff import diff_runs, render_text

    diff = diff_runs(_store(config_file), run_a, run_b)
    if as_json:
        click.echo(json.dumps(diff.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        click.echo(render_text(diff))


@cli.command()
@click.argument("run_id")
@click.option(
    "--step",
    "step_name",
    default="",
    help="Only this step and the steps inside it (internal name, e.g. train or train.left.fit).",
)
@click.option(
    "--against",
    default=None,
    metavar="RUN_ID",
    help="Compare with this run (default: the original run of a re-run, else the latest "
    "earlier run of each step).",
)
@click.option("--json", "as_json", is_flag=True, help="A list of objects, one per step.")
@config_option
@_friendly_errors
def explain(
    run_id: str, step_name: str, against: str | None, as_json: bool, config_file: str | None
) -> None:
    """Say why each step of RUN_ID ran or was reused.

    \b
    A step was reused from an earlier run, or it ran: then what changed since the run it is
    compared with is named (a function, a notebook cell, the command, a definition key, a
    parameter, an input's hash, a distribution's version).

    \b
    --json prints a list of objects, one per step:
      step            internal name
      decision        "ran" | "reused" | "failed" | "unknown" (no fingerprint recorded)
      fingerprint     the key of its last attempt, or null
      reasons         the lines the text shows
      baseline        {"run_id", "step"} compared with, or null
      reused_from     {"run_id", "step"}, or null
      not_reused      why an earlier result was refused, or null
      changed_parts   fingerprint parts that differ: code, definition, parameters, inputs,
                      environment
      changes         {"code": [text], "definition", "parameters", "map_variables", "inputs",
                      "environment": [{"name", "change": "changed"|"added"|"removed",
                      "before", "after"}]}
    """
    import json

    from magnus.explaining import explain_run, render_text

    explanations = explain_run(_store(config_file), run_id, step=step_name, against=against)
    if as_json:
        click.echo(
            json.dumps(
                [e.to_json() for e in explanations], indent=2, ensure_ascii=False, default=str
            )
        )
    else:
        click.echo(render_text(explanations))


@cli.command()
@click.argument("run_id")
@click.option(
    "-o", "--output", default="", help="The HTML file to write (default: report-RUN_ID.html)."
)
@config_option
@_friendly_errors
def report(run_id: str, output: str, config_file: str | None) -> None:
    """Write the report of RUN_ID: one self-contained HTML file (no network needed).

    \b
    The pipeline drawn by status (click parallel, map and dag steps to open them), a map's
    elements summed up, a timeline of every attempt, and per step its attempts, parameters,
    catalog data, metrics, errors and reuse; the run's code, environment and configuration.
    Prints the file's path.
    """
    from pathlib import Path

    from magnus.report_data import retry_chain
    from magnus.report_html import render_report

    store = _store(config_file)
    run_log = store.get_run_log_by_id(run_id, full=True)
    path = Path(output or f"report-{run_id}.html")
    path.write_text(render_report(run_log, retry_chain(store, run_log)), encoding="utf-8")
    click.echo(str(path))


@cli.command()
@click.option(
    "-f",
    "--file",
    "pipeline_file",
    default="pipeline.yaml",
    show_default=True,
    help="A pipeline YAML file, or an SDK script (.py): the script runs with "
    "MAGNUS_DAG_DEFINITION_FILE set, which makes its Pipeline.execute() write the definition "
    "and end the script before any step runs.",
)
@click.option(
    "--format",
    "picture_format",
    type=click.Choice(["mermaid", "dot", "html"]),
    default="mermaid",
    show_default=True,
    help="mermaid or graphviz dot text, or a self-contained HTML page.",
)
@click.option("-o", "--output", default="", help="Write to this file (default: the terminal).")
@_friendly_errors
def dag(pipeline_file: str, picture_format: str, output: str) -> None:
    """Draw a pipeline before running it: its steps, next and on_failure edges, branches."""
    from pathlib import Path

    from magnus.pictures import dump_of_file, picture_of, to_dot, to_mermaid
    from magnus.report_html import render_picture

    dump = dump_of_file(pipeline_file)
    if picture_format == "html":
        text = render_picture(dump, f"pipeline {pipeline_file}")
    else:
        text = (to_dot if picture_format == "dot" else to_mermaid)(picture_of(dump))
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(output)
    else:
        click.echo(text, nl=False)


@cli.command()
@_friendly_errors
def plugins() -> None:
    """List installed plugins: distribution, version, services and hooks."""
    from magnus.plugins import get_plugins
    from magnus.reports import render_plugins

    render_plugins(get_plugins().infos())


def main() -> None:
    """The console-script entry point."""
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
