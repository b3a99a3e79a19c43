"""What a run shows on the terminal: one line as each step starts and ends, then a summary.

The reporter is an observer plugin like any other: registered for the run, it sees every step
through ``before_step``/``after_step``. rich is imported only for the summary and run listings.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from magnus import entrypoints
from magnus.markers import hookimpl
from magnus.runlog.models import SUCCESS, parse_time

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.entrypoints import PreparedRun
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

    def __init__(self) -> None:
        #: the last failed attempt's frames in user code, per step
        self._frames: dict[str, list[str]] = {}

    @hookimpl
    def on_step_error(self, step_log: StepLog, error: BaseException) -> None:
        self._frames[step_log.internal_name] = user_frames(error)

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
            self._print_where(step_log)

    def _print_where(self, step_log: StepLog) -> None:
        """Below a failed step: where in the user's code it failed, and where to read more."""
        from magnus.context import current_run
        from magnus.redaction import redactor

        for line in self._frames.pop(step_log.internal_name, []):
            self._print(("dim", redactor.redact_text(line)))
        log = execution_log_location(step_log)
        if log:
            self._print(("dim", f"  whole output: {log}"))
        context = current_run.get()
        if context is not None:
            self._print(
                ("dim", f"  step record: magnus runs show {context.run_id} --step "),
                ("dim", step_log.internal_name),
            )


#: How many frames of a failing task's traceback the console shows.
TRACEBACK_FRAMES = 3


def user_frames(error: BaseException, limit: int = TRACEBACK_FRAMES) -> list[str]:
    """The last ``limit`` frames of ``error``'s traceback in the user's code, two lines each.

    Frames in magnus and in the standard library are left out: they say how the task was
    called, not where it failed.
    """
    import os
    import sysconfig
    import traceback

    import magnus

    ours = (
        os.path.dirname(os.path.abspath(magnus.__file__)) + os.sep,
        os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep,
    )
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not os.path.abspath(frame.filename).startswith(ours)
    ]
    lines = []
    for frame in frames[-limit:]:
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line}")
    return lines


def execution_log_location(step_log: StepLog) -> str:
    """How to read a step's last execution log: a command for a local file, else its address."""
    import os
    import shlex

    from magnus.catalog import is_execution_log

    logs = [entry for entry in step_log.data_catalog if is_execution_log(entry.name)]
    if not logs or not logs[-1].catalog_handler_location:
        return ""
    where, relative = logs[-1].catalog_handler_location, logs[-1].catalog_relative_path
    if "://" in where:
        return f"{where.rstrip('/')}/{relative}"
    return f"cat {shlex.quote(os.path.join(where, relative))}"


def run_with_reporter(run: PreparedRun, summary: bool = True) -> RunLog | None:
    """Execute a prepared run with a line per step on the terminal, then (``summary``) the end.

    What the command line and the SDK both do; ``None`` for a run rendered for an orchestrator
    (the executor said where).
    """
    run.plugins.register(ConsoleReporter(), REPORTER_NAME)
    try:
        run_log = entrypoints.execute(run)
    finally:
        run.plugins.unregister(REPORTER_NAME)
    if run_log is not None and summary:
        print_summary(run_log, run.context)
    return run_log


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
    if run_log.message:
        from rich.markup import escape

        console.print(f"[red]{escape(run_log.message)}[/red]")


def _resume_hint(context: RunContext, run_id: str) -> str:
    where = context.run_log_store.location(run_id)
    config = f" -c {context.configuration_file}" if context.configuration_file else ""
    return f"run log: {where}\nResume it with: magnus retry {run_id}{config}"


def print_interrupted(context: RunContext, signum: int) -> None:
    """What the terminal shows after a run was stopped by a signal (and so ended FAIL)."""
    import signal

    name = signal.Signals(signum).name
    try:
        status = context.run_log_store.get_run_log_by_id(context.run_id, full=False).status
    except Exception:  # a run stopped before its log was made
        print(f"Interrupted by {name} before run {context.run_id} started", file=sys.stderr)
        return
    print(
        f"Run {context.run_id} interrupted by {name}: {status}; "
        f"{_resume_hint(context, context.run_id)}",
        file=sys.stderr,
    )


def print_error(message: str) -> None:
    """An error for the user, on stderr, without a traceback (and without secrets)."""
    from magnus.redaction import redactor

    print(f"Error: {redactor.redact_text(message)}", file=sys.stderr)
