"""What a run shows on the terminal: one line as each step starts and ends, then a summary.

The reporter is an observer plugin like any other: registered for the run, it sees every step
through ``before_step``/``after_step`` and every composite step's branches through
``before_composite``/``after_branch``/``after_composite``, written straight to standard output.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from magnus import entrypoints
from magnus.markers import hookimpl
from magnus.progress import Progress
from magnus.runlog.base import parent_branch_name, parent_step_name
from magnus.runlog.models import SUCCESS, parse_time
from magnus.time_text import duration_text

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.entrypoints import PreparedRun
    from magnus.graph import Graph
    from magnus.nodes import BaseNode
    from magnus.runlog.models import RunLog, StepLog

REPORTER_NAME = "magnus.console"


#: ANSI codes of the few styles a line of a run uses.
_STYLES = {"bold": "1", "dim": "2", "green": "32", "red": "31", "cyan": "36"}
#: Stand-ins for the symbols on a terminal whose encoding lacks them.
_PLAIN_SYMBOLS = {"▶": ">", "✔": "+", "✘": "x", "↷": "~"}
#: what a composite's progress counts, by kind (others: branches)
_UNITS = {"map": "elements", "loop": "iterations", "conditional": "branch"}


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


def _styled(parts: tuple[tuple[str, str], ...], colour: bool) -> str:
    """One line of (style, text) parts, with ANSI codes when ``colour``; style "" is plain."""
    return "".join(
        f"\x1b[{_STYLES[style]}m{text}\x1b[0m" if colour and style and text else text
        for style, text in parts
    )


def _write(text: str) -> None:
    """Write ``text`` to standard output, plain symbols where its encoding lacks ours."""
    stream = sys.stdout
    try:
        stream.write(text)
    except UnicodeEncodeError:
        for symbol, plain in _PLAIN_SYMBOLS.items():
            text = text.replace(symbol, plain)
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, "replace").decode(encoding))
    stream.flush()


def planned_steps(graph: Graph, node: BaseNode) -> int:
    """How many steps a traversal of ``graph`` runs from ``node`` if none of them fails.

    Leaf and composite steps count one each (a composite's branches are its progress, not
    steps of the count); the success and fail steps do not count.
    """
    count = 0
    seen: set[str] = set()
    while not node.is_terminal and node.name not in seen:
        seen.add(node.name)
        count += 1
        node = graph.next_after(node, failed=False)
    return count


def _live(stream: Any) -> bool:
    """Whether a line can be redrawn in place: a terminal, and not one that says it is dumb."""
    import os

    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


class ConsoleReporter:
    """Prints each step's start and end, numbered, and the progress of composite steps.

    A line per step is written straight to standard output rather than through rich: rich's
    rendering costs more than a short step, and names and messages are shown as they are (a
    step called ``train[v2]`` is not taken for markup).

    Given the pipeline's ``graph``, the steps of the top-level pipeline are numbered ``[k/N]``:
    N is how many steps the traversal runs if none fails (``planned_steps``); k counts the
    steps as they start, reused ones too. When a step fails and its ``on_failure`` sends the
    traversal elsewhere, N becomes the steps run so far plus those of the new route, so the
    lines that follow say how far the run still has to go (the failed step's own line keeps the
    N it started with). A composite step of the top-level pipeline shows its branches' progress
    (``magnus.progress``) in place of its steps' lines; a failed step inside it still gets its
    line. Without a graph (a process running one step or branch for an orchestrator or a
    parallel run) every step gets its plain line.
    """

    #: the stream last written to, and whether it takes colour
    _colour_stream: object
    _colour: bool

    def _print(self, *parts: tuple[str, str]) -> None:
        """Write one line made of (style, text) parts; style "" is plain."""
        stream = sys.stdout
        # Asked once per stream: the answer costs an ioctl, and a step prints two lines.
        if self._colour_stream is not stream:
            self._colour = _wants_colour(stream)
            self._colour_stream = stream
        _write(_styled(parts, self._colour) + "\n")

    def __init__(self, graph: Graph | None = None, failures_only: bool = False) -> None:
        #: the last failed attempt's frames in user code, per step
        self._frames: dict[str, list[str]] = {}
        self._colour_stream = None
        self._colour = False
        #: print failed steps only (a parallel branch's process: its parent shows the progress)
        self._failures_only = failures_only
        self._graph = graph
        self._planned = planned_steps(graph, graph.start_node) if graph else 0
        #: top-level steps started so far, and the number each got
        self._started = 0
        self._numbers: dict[str, int] = {}
        #: the running top-level composite's progress, and when it started
        self._progress: Progress | None = None
        self._composite_start = 0.0
        # With enable_parallel, branches end in several threads at once.
        self._lock = threading.Lock()

    def _counted(self, name: str) -> bool:
        return self._graph is not None and not parent_branch_name(name)

    def _number(self, name: str) -> str:
        """``[k/N] `` of a top-level step (numbered as it starts), "" for any other."""
        if not self._counted(name):
            return ""
        if name not in self._numbers:
            self._started += 1
            self._numbers[name] = self._started
        return f"[{self._numbers[name]}/{max(self._planned, self._numbers[name])}] "

    def _after_failure(self, name: str, node: BaseNode) -> None:
        """A top-level step failed: N becomes what ran plus the route its failure takes."""
        if self._graph is not None and self._counted(name):
            following = self._graph.next_after(node, failed=True)
            self._planned = self._started + planned_steps(self._graph, following)

    def _inside_progress(self, name: str) -> bool:
        """Whether a step belongs to the top-level composite whose progress is shown."""
        return self._progress is not None and name.startswith(self._progress.name + ".")

    @hookimpl
    def on_step_error(self, step_log: StepLog, error: BaseException) -> None:
        self._frames[step_log.internal_name] = user_frames(error)

    @hookimpl
    def before_step(self, step_log: StepLog, node: BaseNode) -> None:
        if node.is_terminal:
            return
        name = step_log.internal_name
        number = self._number(name)
        if step_log.mock or self._inside_progress(name) or self._failures_only:
            return
        self._print(("dim", number), ("dim", "▶"), ("", f" {name}"))

    @hookimpl
    def after_step(self, step_log: StepLog, node: BaseNode) -> None:
        if node.is_terminal:
            return
        name = step_log.internal_name
        number = self._number(name)
        if step_log.mock:
            if not self._inside_progress(name) and not self._failures_only:
                note = f" ({step_log.message})" if step_log.message else " (mocked)"
                self._print(("dim", number), ("cyan", "↷"), ("", f" {name}"), ("dim", note))
            return
        quiet = self._inside_progress(name) or self._failures_only
        if step_log.status == SUCCESS and quiet:
            return  # a map's element, say: its composite's progress shows it
        attempts = step_log.attempts
        took = ""
        if attempts and attempts[0].start_time and attempts[-1].end_time:
            seconds = (
                parse_time(attempts[-1].end_time) - parse_time(attempts[0].start_time)
            ).total_seconds()
            took = f" {duration_text(seconds)}"
        tries = f" (attempt {len(attempts)})" if len(attempts) > 1 else ""
        if step_log.status == SUCCESS:
            self._print(
                ("dim", number), ("green", "✔"), ("", f" {name}"), ("dim", took), ("dim", tries)
            )
            return
        message = f": {step_log.message}" if step_log.message else ""
        with self._lock:
            if self._progress is not None:
                self._progress.erase()
            self._print(
                ("dim", number),
                ("red", "✘"),
                ("", f" {name}"),
                ("dim", took),
                ("dim", tries),
                ("red", message),
            )
            self._print_where(step_log)
            if self._progress is not None:
                self._progress.redraw()
        self._after_failure(name, node)

    @hookimpl
    def before_composite(self, step_log: StepLog, node: BaseNode, branches: int) -> None:
        name = step_log.internal_name
        if not self._counted(name):
            return  # inside a branch: its top-level composite's progress covers it
        unit = _UNITS.get(node.node_type, "branches")
        # a loop's iterations are known as they go: it shows how many it may run
        repeats = bool(getattr(node, "repeats", False))
        total = int(getattr(node, "max_iterations", branches)) if repeats else branches
        self._print(
            ("dim", self._number(name)),
            ("dim", "▶"),
            ("", f" {name}"),
            ("dim", f" {'up to ' if repeats else ''}{total} {unit}"),
        )
        self._composite_start = time.monotonic()
        if branches:
            self._progress = Progress(name, total, unit, _write, _live(sys.stdout))
            self._progress.start()

    @hookimpl
    def after_branch(self, branch_name: str, status: str) -> None:
        with self._lock:
            progress = self._progress
            if progress is not None and parent_step_name(branch_name) == progress.name:
                progress.branch_ended(failed=status != SUCCESS)

    @hookimpl
    def after_composite(self, step_log: StepLog, node: BaseNode) -> None:
        name = step_log.internal_name
        if not self._counted(name):
            return
        progress, self._progress = self._progress, None
        if progress is not None:
            progress.finish()
        took = f" {duration_text(time.monotonic() - self._composite_start)}"
        if step_log.status == SUCCESS:
            self._print(
                ("dim", self._number(name)), ("green", "✔"), ("", f" {name}"), ("dim", took)
            )
            return
        message = f": {step_log.message}" if step_log.message else ""
        self._print(
            ("dim", self._number(name)),
            ("red", "✘"),
            ("", f" {name}"),
            ("dim", took),
            ("red", message),
        )
        self._after_failure(name, node)

    @hookimpl
    def after_run(self) -> None:
        # A run stopped in the middle of a composite: its bar is left on a line of its own.
        progress, self._progress = self._progress, None
        if progress is not None:
            progress.finish()

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


def run_with_reporter(
    run: PreparedRun, summary: bool = True, whole_log: bool = True
) -> RunLog | None:
    """Execute a prepared run with a line per step on the terminal, then (``summary``) the end.

    What the command line and the SDK both do; ``None`` for a run rendered for an orchestrator
    (the executor said where). ``whole_log``: as for :func:`magnus.entrypoints.execute`.
    """
    run.plugins.register(ConsoleReporter(run.context.dag), REPORTER_NAME)
    try:
        run_log = entrypoints.execute(run, whole_log)
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
        duration = duration_text((end - parse_time(run_log.start_time)).total_seconds())
    status_style = "green" if run_log.status == SUCCESS else "red"
    colour = _wants_colour(sys.stdout)
    where = context.run_log_store.location(run_log.run_id)
    parts = (
        ("", "Run "),
        ("bold", run_log.run_id),
        ("", " "),
        (status_style, run_log.status),
        ("", f" in {duration}; run log: {where}"),
    )
    lines = [_styled(parts, colour)]
    if run_log.message:
        lines.append(_styled((("red", run_log.message),), colour))
    _write("\n".join(lines) + "\n")


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
