"""Commands that run: ``execute``, ``execute-job``, ``retry`` and ``validate``."""

from __future__ import annotations

import sys
from typing import Any

import click

from magnus.cli.common import (
    cli,
    config_option,
    friendly_errors,
    log_level_option,
    parameters_option,
    reuse_option,
    run_id_option,
    setup_logging,
    tag_option,
)


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
@parameters_option
@log_level_option
@tag_option
@run_id_option
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
@friendly_errors
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
    setup_logging(log_level)
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
@parameters_option
@log_level_option
@tag_option
@run_id_option
@reuse_option
@friendly_errors
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
    setup_logging(log_level)
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
@friendly_errors
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
    setup_logging(log_level)
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
        # The command line needs the run's status, not its steps read back.
        run_log = run_with_reporter(run, whole_log=False)
    except KeyboardInterrupt as interruption:
        signum = signal_of(interruption)
        print_interrupted(run.context, signum)
        sys.exit(128 + signum)
    if run_log is not None and run_log.status != SUCCESS:
        sys.exit(1)


@cli.command()
@click.option("-f", "--file", "pipeline_file", default="pipeline.yaml", show_default=True)
@config_option
@parameters_option
@click.option(
    "--no-import",
    is_flag=True,
    help="Do not import python commands (a pipeline for another image); files are still checked.",
)
@log_level_option
@friendly_errors
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
    setup_logging(log_level)
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
