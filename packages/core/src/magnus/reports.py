"""Readable views of run logs and plugins for the terminal (rich, imported lazily)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from magnus.hookspecs import PROVIDER_HOOKS
from magnus.owner import describe_owner, owner_gone
from magnus.runlog.models import PROCESSING, UNREADABLE, parse_time

if TYPE_CHECKING:
    from magnus.plugins import PluginInfo
    from magnus.runlog.models import BranchLog, RunLog, StepLog


def _console() -> Any:
    import sys

    from rich.console import Console

    # Piped into grep or a file, a table must not be cut to 80 columns.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, soft_wrap=True, width=width)


def _status(status: str) -> str:
    colour = {"SUCCESS": "green", "FAIL": "red", ABANDONED: "red", UNREADABLE: "red"}.get(
        status, "yellow"
    )
    return f"[{colour}]{status}[/{colour}]"


#: how a PROCESSING run whose process is gone is shown (never stored: see ``magnus.owner``)
ABANDONED = "ABANDONED"


def status_of(run_log: RunLog) -> str:
    """The run's status as people are shown it: a PROCESSING run whose owner is gone is ABANDONED.

    Worked out when read; the run log is not written to.
    """
    if run_log.status == PROCESSING and owner_gone(run_log.run_config.get("owner")):
        return ABANDONED
    return run_log.status


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration_of(run_log: RunLog) -> str:
    """Seconds between start and end (or now, for a run still going)."""
    if not run_log.start_time:
        return ""
    end = parse_time(run_log.end_time) if run_log.end_time else datetime.now()
    return f"{(end - parse_time(run_log.start_time)).total_seconds():.2f}s"


def _add_step(tree: Any, step: StepLog) -> None:
    from rich.markup import escape

    node = tree.add(
        f"{escape(step.name)} [dim]{step.step_type}[/dim] {_status(step.status)}"
        + (" [dim](mocked)[/dim]" if step.mock else "")
    )
    if step.message:
        node.add(f"[red]{escape(step.message)}[/red]")
    for attempt in step.attempts:
        line = f"attempt {attempt.attempt_number} {_status(attempt.status)} {attempt.duration}"
        if attempt.message:
            line += f" [red]{escape(attempt.message)}[/red]"
        branch = node.add(line)
        if attempt.parameters:
            branch.add(f"[dim]parameters[/dim] {escape(_short(attempt.parameters))}")
        if attempt.output_parameters:
            branch.add(f"[dim]produced[/dim] {escape(_short(attempt.output_parameters))}")
    for entry in step.data_catalog:
        node.add(f"[dim]{entry.stage}[/dim] {escape(entry.name)} [dim]{entry.data_hash[:12]}[/dim]")
    if step.user_defined_metrics:
        node.add(f"[dim]metrics[/dim] {escape(_short(step.user_defined_metrics))}")
    for branch_log in step.branches.values():
        _add_branch(node, branch_log)


def _add_branch(tree: Any, branch: BranchLog) -> None:
    from rich.markup import escape

    node = tree.add(f"branch {escape(branch.internal_name)} {_status(branch.status)}")
    for step in branch.steps.values():
        _add_step(node, step)


def render_run_log(run_log: RunLog) -> None:
    """The run log as a tree: steps, attempts, parameters, catalog entries, branches."""
    from rich.markup import escape
    from rich.tree import Tree

    status = status_of(run_log)
    tree = Tree(
        f"[bold]{run_log.run_id}[/bold] {_status(status)} {duration_of(run_log)}"
        + (f" tag={escape(run_log.tag)}" if run_log.tag else "")
    )
    if status == ABANDONED:
        owner = describe_owner(run_log.run_config.get("owner"))
        tree.add(
            f"[red]still PROCESSING in the log, but {escape(owner)} that ran it is gone "
            f"(killed?); `magnus retry {escape(run_log.run_id)}` resumes it[/red]"
        )
    if run_log.message:
        tree.add(f"[red]{escape(run_log.message)}[/red]")
    code = next((s.code_identities[0] for s in run_log.steps.values() if s.code_identities), None)
    if code is not None:
        dependable = "clean" if code.code_identifier_dependable else "dirty"
        tree.add(f"[dim]code[/dim] {code.code_identifier} ({dependable})")
    if run_log.parameters:
        tree.add(f"[dim]parameters[/dim] {escape(_short(run_log.parameters, 200))}")
    for step in run_log.steps.values():
        _add_step(tree, step)
    _console().print(tree)


def render_step(step: StepLog) -> None:
    """One step's attempts, parameters, catalog entries and branches, as a tree."""
    from rich.tree import Tree

    tree = Tree(f"[bold]{step.internal_name}[/bold]")
    _add_step(tree, step)
    _console().print(tree)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``3h``/``2d``/``30m``/``45s`` ago, or an ISO date or date-time."""
    import re
    from datetime import timedelta

    from magnus.exceptions import ConfigurationError

    now = now or datetime.now()
    match = re.fullmatch(r"(\d+)\s*([smhdw])", text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
        try:
            return now - timedelta(**{unit[match[2]]: int(match[1])})
        except (OverflowError, ValueError):
            # Further back than any date can be: every run is as recent.
            return datetime.min
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigurationError(
            f"--since {text!r}: give a date (2026-11-26), a date and time, or an age like 3h or 2d"
        ) from None


def filter_runs(
    run_logs: list[RunLog],
    status: str | None = None,
    tag: str | None = None,
    since: str | None = None,
) -> list[RunLog]:
    """The runs that match every filter given."""
    threshold = parse_since(since) if since else None
    kept = []
    for run_log in run_logs:
        if status and status_of(run_log) != status.upper():
            continue
        if tag is not None and run_log.tag != tag:
            continue
        if threshold and (not run_log.start_time or parse_time(run_log.start_time) < threshold):
            continue
        kept.append(run_log)
    return kept


def render_run_list(run_logs: list[RunLog]) -> None:
    """A table of runs, newest first."""
    from rich.markup import escape
    from rich.table import Table

    table = Table("run id", "status", "start", "duration", "tag")
    unreadable = []
    for run_log in sorted(run_logs, key=lambda r: r.start_time, reverse=True):
        table.add_row(
            escape(run_log.run_id),
            _status(status_of(run_log)),
            run_log.start_time[:19],
            duration_of(run_log),
            escape(run_log.tag),
        )
        if run_log.status == UNREADABLE:
            unreadable.append(run_log)
    console = _console()
    console.print(table)
    for run_log in unreadable:
        console.print(f"[red]{escape(run_log.run_id)} cannot be read: {escape(run_log.message)}[/]")


def render_plugins(infos: list[PluginInfo]) -> None:
    """A table of plugins with their services and hooks."""
    from rich.table import Table

    table = Table("plugin", "distribution", "version", "services", "hooks")
    for info in infos:
        services = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(info.services.items()))
        table.add_row(
            info.name + (" [red](disabled)[/red]" if info.blocked else ""),
            info.distribution,
            info.version,
            services,
            # What a plugin provides shows under services; its other hooks are listed here.
            ", ".join(h for h in info.hooks if h not in PROVIDER_HOOKS.values()),
        )
    _console().print(table)
