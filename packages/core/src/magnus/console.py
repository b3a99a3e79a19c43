"""What a run shows on the terminal: one line as each step starts and ends, then a summary.

The reporter is an observer plugin like any other: registered for the run, it sees every step
through ``before_step``/``after_step``. rich is imported only when something is printed.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from magnus.hookspecs import hookimpl
from magnus.runlog.models import SUCCESS, parse_time

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.nodes import BaseNode
    from magnus.runlog.models import RunLog, StepLog

REPORTER_NAME = "magnus.console"


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


class ConsoleReporter:
    """Prints each step's start and end."""

    def __init__(self) -> None:
        self.console = _console()

    @hookimpl
    def before_step(self, step_log: StepLog, node: BaseNode) -> None:
        if node.is_terminal or step_log.mock:
            return
        self.console.print(f"[dim]▶[/dim] {step_log.internal_name}", markup=True)

    @hookimpl
    def after_step(self, step_log: StepLog, node: BaseNode) -> None:
        if node.is_terminal:
            return
        if step_log.mock:
            note = (
                f" [dim]({step_log.message})[/dim]" if step_log.message else " [dim](mocked)[/dim]"
            )
            self.console.print(f"[cyan]↷[/cyan] {step_log.internal_name}{note}")
            return
        attempts = step_log.attempts
        took = ""
        if attempts and attempts[0].start_time and attempts[-1].end_time:
            seconds = (
                parse_time(attempts[-1].end_time) - parse_time(attempts[0].start_time)
            ).total_seconds()
            took = f" [dim]{seconds:.2f}s[/dim]"
        tries = f" [dim](attempt {len(attempts)})[/dim]" if len(attempts) > 1 else ""
        if step_log.status == SUCCESS:
            self.console.print(f"[green]✔[/green] {step_log.internal_name}{took}{tries}")
        else:
            message = f": {step_log.message}" if step_log.message else ""
            self.console.print(
                f"[red]✘[/red] {step_log.internal_name}{took}{tries}[red]{message}[/red]",
                markup=True,
            )


def print_summary(run_log: RunLog, context: RunContext) -> None:
    """The end of a run: id, status, duration and where the log is."""
    duration = ""
    if run_log.start_time:
        end = parse_time(run_log.end_time) if run_log.end_time else datetime.now()
        duration = f"{(end - parse_time(run_log.start_time)).total_seconds():.2f}s"
    colour = "green" if run_log.status == SUCCESS else "red"
    console = _console()
    console.print(
        f"Run [bold]{run_log.run_id}[/bold] [{colour}]{run_log.status}[/{colour}]"
        f" in {duration}; run log: {context.run_log_store.location(run_log.run_id)}"
    )


def print_error(message: str) -> None:
    """An error for the user, on stderr, without a traceback (and without secrets)."""
    from magnus.redaction import redactor

    print(f"Error: {redactor.redact_text(message)}", file=sys.stderr)
