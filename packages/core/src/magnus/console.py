"""What a run shows on the terminal: one line as each step starts and ends, then a summary.

The reporter is an observer plugin like any other: registered for the run, it sees every step
through ``before_step``/``after_step``. rich is imported only for the summary and run listings.
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


#: ANSI codes of the few styles a step line uses.
_STYLES = {"dim": "2", "green": "32", "red": "31", "cyan": "36"}
#: Stand-ins for the symbols on a terminal whose encoding lacks them.
_PLAIN_SYMBOLS = {"▶": ">", "✔": "+", "✘": "x", "↷": "~"}


def _wants_colour(stream: Any) -> bool:
    """Colour as rich decides it: NO_COLOR and TERM=dumb turn it off, FORCE_COLOR on."""
    import os

    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ConsoleReporter:
    """Prints each step's start and end.

    A line per step is written straight to standard output rather than through rich: rich's
    rendering costs more than a short step, and names and messages are shown as they are (a
    step called ``train[v2]`` is not taken for markup).
    """

    def _print(self, *parts: tuple[str, str]) -> None:
        """Write one line made of (style, text) parts; style "" is plain."""
        stream = sys.stdout
        colour = _wants_colour(stream)
        line = "".join(
            f"\x1b[{_STYLES[style]}m{text}\x1b[0m" if colour and style and text else text
            for style, text in parts
        )
        try:
            stream.write(line + "\n")
        except UnicodeEncodeError:
            for symbol, plain in _PLAIN_SYMBOLS.items():
                line = line.replace(symbol, plain)
            encoding = getattr(stream, "encoding", None) or "ascii"
            stream.write(line.encode(encoding, "replace").decode(encoding) + "\n")
        stream.flush()

    @hookimpl
    def before_step(self, step_log: StepLog, node: BaseNode) -> None:
        if node.is_terminal or step_log.mock:
            return
        self._print(("dim", "▶"), ("", f" {step_log.internal_name}"))

    @hookimpl
    def after_step(self, step_log: StepLog, node: BaseNode) -> None:
        if node.is_terminal:
            return
        name = step_log.internal_name
        if step_log.mock:
            note = f" ({step_log.message})" if step_log.message else " (mocked)"
            self._print(("cyan", "↷"), ("", f" {name}"), ("dim", note))
            return
        attempts = step_log.attempts
        took = ""
        if attempts and attempts[0].start_time and attempts[-1].end_time:
            seconds = (
                parse_time(attempts[-1].end_time) - parse_time(attempts[0].start_time)
            ).total_seconds()
            took = f" {seconds:.2f}s"
        tries = f" (attempt {len(attempts)})" if len(attempts) > 1 else ""
        if step_log.status == SUCCESS:
            self._print(("green", "✔"), ("", f" {name}"), ("dim", took), ("dim", tries))
        else:
            message = f": {step_log.message}" if step_log.message else ""
            self._print(
                ("red", "✘"), ("", f" {name}"), ("dim", took), ("dim", tries), ("red", message)
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
