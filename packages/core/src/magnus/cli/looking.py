"""Commands that look at runs and pipelines: ``runs show|list|diff``, ``explain``, ``report``,
``dag`` and ``plugins``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from magnus.cli.common import (
    cli,
    config_option,
    friendly_errors,
)


@cli.group()
def runs() -> None:
    """Look at recorded runs."""


def _store(config_file: str | None) -> Any:
    from magnus import config as config_mod
    from magnus.entrypoints import build_services
    from magnus.plugins import get_plugins

    services = build_services(config_mod.configuration_file_for_cli(config_file), get_plugins())
    return services["run_log_store"]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a command reads and shows a run log.

    Such a command makes hundreds of thousands of objects and frees none until it ends: each
    pass of the collector would walk all of them again (a run of 10,000 steps: ~40% of
    ``runs show``), to find nothing.
    """
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
@friendly_errors
def runs_show(run_id: str, config_file: str | None, as_json: bool, step_name: str) -> None:
    """Print the run log of RUN_ID (or one step of it)."""
    with _collector_paused():
        _show(run_id, config_file, as_json, step_name)


def _show(run_id: str, config_file: str | None, as_json: bool, step_name: str) -> None:
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
@friendly_errors
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

    with _collector_paused():
        store = _store(config_file)
        listed = store.list_run_summaries()
        runs = newest_first(filter_runs(listed, status=status, tag=tag, since=since))
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
@friendly_errors
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
@friendly_errors
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
@friendly_errors
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
@friendly_errors
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
@friendly_errors
def plugins() -> None:
    """List installed plugins: distribution, version, services and hooks."""
    from magnus.plugins import get_plugins
    from magnus.reports import render_plugins

    render_plugins(get_plugins().infos())
