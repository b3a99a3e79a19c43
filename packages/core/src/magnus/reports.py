"""Readable views of run logs and plugins for the terminal (rich, imported lazily)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from magnus.exceptions import RunLogNotFoundError, RunLogStoreError
from magnus.hookspecs import PROVIDER_HOOKS
from magnus.owner import describe_owner, owner_gone
from magnus.runlog.models import PROCESSING, UNREADABLE, parse_time
from magnus.time_text import duration_text, time_text
from magnus.tracking import iter_metric_points

if TYPE_CHECKING:
    from magnus.plugins import PluginInfo
    from magnus.runlog.base import BaseRunLogStore
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


def seconds_of(run_log: RunLog) -> float | None:
    """Seconds between start and end (or now, for a run still going); ``None`` if not started."""
    if not run_log.start_time:
        return None
    end = parse_time(run_log.end_time) if run_log.end_time else datetime.now()
    return (end - parse_time(run_log.start_time)).total_seconds()


def duration_of(run_log: RunLog) -> str:
    """Seconds between start and end (or now, for a run still going)."""
    seconds = seconds_of(run_log)
    return "" if seconds is None else duration_text(seconds)


def _attempt_times(start: str, end: str) -> str:
    """``1.50s, started 2026-12-06 12:01:02 UTC+01:00``: its duration, and when it started."""
    if not start:
        return ""
    took = duration_text((parse_time(end) - parse_time(start)).total_seconds()) if end else ""
    return ", ".join(part for part in (took, f"started {time_text(parse_time(start))}") if part)


def _add_step(tree: Any, step: StepLog) -> None:
    from rich.markup import escape

    node = tree.add(
        f"{escape(step.name)} [dim]{step.step_type}[/dim] {_status(step.status)}"
        + (" [dim](mocked)[/dim]" if step.mock else "")
    )
    if step.message:
        node.add(f"[red]{escape(step.message)}[/red]")
    if step.chosen_branch is not None:
        node.add(
            f"[dim]chose[/dim] {escape(step.chosen_branch)} [dim]by value[/dim] "
            f"{escape(_short(step.condition_value))}"
        )
    if step.iterations is not None:
        node.add(f"[dim]iterations[/dim] {step.iterations}")
    for attempt in step.attempts:
        times = _attempt_times(attempt.start_time, attempt.end_time)
        line = f"attempt {attempt.attempt_number} {_status(attempt.status)} {times}"
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
        + (f", started {time_text(parse_time(run_log.start_time))}" if run_log.start_time else "")
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


def newest_first(run_logs: list[RunLog]) -> list[RunLog]:
    """Runs by start time, newest first (ties by run id, so the order is stable)."""
    return sorted(run_logs, key=lambda r: (r.start_time, r.run_id), reverse=True)


def steps_in_order(run_log: RunLog) -> Iterator[StepLog]:
    """Every step log of the run, composites and the steps of their branches, in run order."""
    for step_log, _ in steps_with_elements(run_log.steps):
        yield step_log


def steps_with_elements(steps: dict[str, StepLog]) -> Iterator[tuple[StepLog, dict[str, Any]]]:
    """Every step log of ``steps`` and of their branches, in run order, each with the map
    elements around it (``{iterate_as: value}`` of every enclosing map)."""
    pending: list[tuple[StepLog, dict[str, Any]]] = [(s, {}) for s in reversed(steps.values())]
    while pending:
        step_log, elements = pending.pop()
        yield step_log, elements
        for branch in reversed(step_log.branches.values()):
            inner = {**elements, **(branch.map_variable or {})}
            pending.extend((s, inner) for s in reversed(branch.steps.values()))


def last_metric(run_log: RunLog, name: str) -> Any:
    """The last value of metric ``name`` in a run (read with its steps), or ``None``.

    The step that records it last in run order wins (inside a map, the last element); of a
    metric tracked at several indices (epochs), the value at the highest index.
    """
    found = None
    for step_log in steps_in_order(run_log):
        if name in step_log.user_defined_metrics:
            points = list(iter_metric_points({name: step_log.user_defined_metrics[name]}))
            if points:
                found = points[-1][2]
    return found


@dataclass
class RunRow:
    """One row of ``magnus runs list``: a run and the parameters and metrics asked for."""

    run_log: RunLog
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The object ``magnus runs list --json`` prints for this run."""
        run_log = self.run_log
        return {
            "run_id": run_log.run_id,
            "status": status_of(run_log),
            "start_time": run_log.start_time,
            "end_time": run_log.end_time,
            "duration_seconds": seconds_of(run_log),
            "tag": run_log.tag,
            "message": run_log.message,
            "params": dict(self.params),
            "metrics": dict(self.metrics),
        }


def run_rows(
    store: BaseRunLogStore,
    run_logs: list[RunLog],
    params: Sequence[str] = (),
    metrics: Sequence[str] = (),
) -> list[RunRow]:
    """The rows of ``runs list``, reading only what the columns need.

    Without ``params`` and ``metrics`` nothing more than the listing is read; ``params`` read
    each run's parameters (the final value, else the initial one), ``metrics`` each run's steps.
    A value not found is ``None``.
    """
    rows = []
    for run_log in run_logs:
        row = RunRow(run_log, dict.fromkeys(params), dict.fromkeys(metrics))
        rows.append(row)
        if run_log.status == UNREADABLE or not (params or metrics):
            continue
        try:
            if params:
                final = store.get_parameters(run_log.run_id)
                initial = run_log.run_config.get("initial_parameters") or {}
                row.params = {n: final.get(n, initial.get(n)) for n in params}
            if metrics:
                full = store.get_run_log_by_id(run_log.run_id, full=True)
                row.metrics = {n: last_metric(full, n) for n in metrics}
        except (RunLogNotFoundError, RunLogStoreError):
            # Deleted, or half written, since it was listed: its row shows what was read.
            pass
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else _short(value, 40)


def render_run_list(
    rows: list[RunRow], params: Sequence[str] = (), metrics: Sequence[str] = ()
) -> None:
    """A table of runs in the order given: one column per parameter and metric asked for."""
    from rich.markup import escape
    from rich.table import Table

    columns = [escape(name) for name in (*params, *metrics)]
    table = Table("run id", "status", "start", "duration", "tag", *columns)
    unreadable = []
    for row in rows:
        run_log = row.run_log
        table.add_row(
            escape(run_log.run_id),
            _status(status_of(run_log)),
            run_log.start_time[:19],
            duration_of(run_log),
            escape(run_log.tag),
            *(escape(_cell(row.params.get(n))) for n in params),
            *(escape(_cell(row.metrics.get(n))) for n in metrics),
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
