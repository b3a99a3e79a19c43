"""Readable views of run logs and plugins for the terminal: trees and tables.

They are written line by line as rich draws them (rich itself is imported only to wrap a table
too wide for the terminal, and to measure wide characters).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
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


#: one piece of a line: (style, text); style "" is plain, else a key of ``_ANSI``
Part = tuple[str, str]
#: ANSI codes of the styles the views use
_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33"}
#: the controls rich drops from text (bell, backspace, vertical tab, form feed, carriage return)
_DROPPED = dict.fromkeys((7, 8, 11, 12, 13))
#: a tree's guides (space, continue, fork, end), as rich draws them; plain ASCII if need be
_GUIDES = ("    ", "│   ", "├── ", "└── ")
_ASCII_GUIDES = ("    ", "|   ", "+-- ", "`-- ")
#: the widest a view is when standard output is not a terminal (piped into grep or a file)
_PIPED_WIDTH = 200


def _width() -> int:
    """The columns a line may take: the terminal's, else :data:`_PIPED_WIDTH`."""
    import shutil

    return shutil.get_terminal_size().columns if sys.stdout.isatty() else _PIPED_WIDTH


def _unicode_out() -> bool:
    """Whether standard output takes more than ASCII (rich's test: a UTF encoding)."""
    return (getattr(sys.stdout, "encoding", None) or "utf-8").lower().startswith("utf")


def _cells(text: str) -> int:
    """How many terminal columns ``text`` takes (East Asian wide characters take two)."""
    if text.isascii():
        return len(text)
    from rich.cells import cell_len

    return int(cell_len(text))


def _cropped(parts: list[Part], width: int) -> list[Part]:
    """``parts`` cut to ``width`` columns, as rich crops a line of a tree."""
    kept: list[Part] = []
    left = width
    for style, text in parts:
        size = _cells(text)
        if size < left:
            kept.append((style, text))
            left -= size
            continue
        if text.isascii():
            kept.append((style, text[:left]))
        else:
            from rich.cells import set_cell_size

            kept.append((style, set_cell_size(text, left)))
        break
    return kept


def _clean(text: str) -> str:
    """Text as rich shows it: the controls it drops removed, tabs expanded."""
    if text.isprintable():
        return text
    text = text.translate(_DROPPED)
    return text.expandtabs(8) if "\t" in text else text


def _label_lines(parts: list[Part]) -> list[list[Part]]:
    """A label's lines: its parts split where its text has a newline."""
    lines: list[list[Part]] = [[]]
    for style, text in parts:
        for index, piece in enumerate(_clean(text).split("\n")):
            if index:
                lines.append([])
            if piece:
                lines[-1].append((style, piece))
    return lines


class _Writer:
    """Writes lines of parts to standard output, in colour when colour is wanted.

    The views are written line by line rather than laid out by rich: a run of 10,000 steps is
    30,000 lines, which rich takes seconds to lay out.
    """

    def __init__(self) -> None:
        from magnus.console import _wants_colour

        self.colour = _wants_colour(sys.stdout)
        self.out = sys.stdout

    def line(self, parts: list[Part]) -> str:
        if not self.colour:
            return "".join(text for _, text in parts)
        return "".join(
            f"\x1b[{_ANSI[style]}m{text}\x1b[0m" if style and text else text
            for style, text in parts
        )

    def write(self, lines: Iterable[list[Part]]) -> None:
        self.out.writelines(self.line(parts) + "\n" for parts in lines)
        self.out.flush()


class Node:
    """A node of a tree view: its label (parts) and the nodes under it."""

    __slots__ = ("children", "label")

    def __init__(self, *label: Part) -> None:
        self.label = list(label)
        self.children: list[Node] = []

    def add(self, *label: Part) -> Node:
        """A new node under this one, labelled ``label``."""
        child = Node(*label)
        self.children.append(child)
        return child

    def lines(
        self, width: int, guides: tuple[str, str, str, str] = _GUIDES
    ) -> Iterator[list[Part]]:
        """The tree as rich draws it: guides before each label, each line cropped to ``width``."""
        yield from self._label(self.label, "", "", width)
        yield from self._below(self, "", width, guides)

    @classmethod
    def _below(
        cls, node: Node, prefix: str, width: int, guides: tuple[str, str, str, str]
    ) -> Iterator[list[Part]]:
        space, carry_on, fork, end = guides
        last = len(node.children) - 1
        for index, child in enumerate(node.children):
            inner = prefix + (space if index == last else carry_on)
            yield from cls._label(
                child.label, prefix + (end if index == last else fork), inner, width
            )
            if child.children:
                yield from cls._below(child, inner, width, guides)

    @staticmethod
    def _label(label: list[Part], first: str, then: str, width: int) -> Iterator[list[Part]]:
        room = max(width - len(first), 0)
        text = "".join(text for _, text in label)
        if text.isascii() and text.isprintable() and len(text) <= room:
            # Nearly every label: one line of plain text that fits, nothing to clean or crop.
            yield [("", first), *label]
            return
        for index, parts in enumerate(_label_lines(label)):
            yield [("", then if index else first), *_cropped(parts, room)]


def _print_tree(tree: Node) -> None:
    unicode_out = _unicode_out()
    _Writer().write(tree.lines(_width(), _GUIDES if unicode_out else _ASCII_GUIDES))


def _status(status: str) -> Part:
    colour = {"SUCCESS": "green", "FAIL": "red", ABANDONED: "red", UNREADABLE: "red"}.get(
        status, "yellow"
    )
    return (colour, status)


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
    started = parse_time(start)
    took = duration_text((parse_time(end) - started).total_seconds()) if end else ""
    return ", ".join(part for part in (took, f"started {time_text(started)}") if part)


def _add_step(tree: Node, step: StepLog) -> None:
    node = tree.add(
        ("", f"{step.name} "),
        ("dim", step.step_type),
        ("", " "),
        _status(step.status),
        *((("", " "), ("dim", "(mocked)")) if step.mock else ()),
    )
    if step.message:
        node.add(("red", step.message))
    if step.chosen_branch is not None:
        node.add(
            ("dim", "chose"),
            ("", f" {step.chosen_branch} "),
            ("dim", "by value"),
            ("", f" {_short(step.condition_value)}"),
        )
    if step.iterations is not None:
        node.add(("dim", "iterations"), ("", f" {step.iterations}"))
    for attempt in step.attempts:
        times = _attempt_times(attempt.start_time, attempt.end_time)
        line = [("", f"attempt {attempt.attempt_number} "), _status(attempt.status)]
        line.append(("", f" {times}"))
        if attempt.message:
            line += [("", " "), ("red", attempt.message)]
        branch = node.add(*line)
        if attempt.parameters:
            branch.add(("dim", "parameters"), ("", f" {_short(attempt.parameters)}"))
        if attempt.output_parameters:
            branch.add(("dim", "produced"), ("", f" {_short(attempt.output_parameters)}"))
    for entry in step.data_catalog:
        node.add(("dim", entry.stage), ("", f" {entry.name} "), ("dim", entry.data_hash[:12]))
    if step.user_defined_metrics:
        node.add(("dim", "metrics"), ("", f" {_short(step.user_defined_metrics)}"))
    for branch_log in step.branches.values():
        _add_branch(node, branch_log)


def _add_branch(tree: Node, branch: BranchLog) -> None:
    node = tree.add(("", f"branch {branch.internal_name} "), _status(branch.status))
    for step in branch.steps.values():
        _add_step(node, step)


def render_run_log(run_log: RunLog) -> None:
    """The run log as a tree: steps, attempts, parameters, catalog entries, branches."""
    status = status_of(run_log)
    started = f", started {time_text(parse_time(run_log.start_time))}" if run_log.start_time else ""
    tree = Node(
        ("bold", run_log.run_id),
        ("", " "),
        _status(status),
        ("", f" {duration_of(run_log)}{started}" + (f" tag={run_log.tag}" if run_log.tag else "")),
    )
    if status == ABANDONED:
        owner = describe_owner(run_log.run_config.get("owner"))
        tree.add(
            (
                "red",
                f"still PROCESSING in the log, but {owner} that ran it is gone "
                f"(killed?); `magnus retry {run_log.run_id}` resumes it",
            )
        )
    if run_log.message:
        tree.add(("red", run_log.message))
    code = next((s.code_identities[0] for s in run_log.steps.values() if s.code_identities), None)
    if code is not None:
        dependable = "clean" if code.code_identifier_dependable else "dirty"
        tree.add(("dim", "code"), ("", f" {code.code_identifier} ({dependable})"))
    if run_log.parameters:
        tree.add(("dim", "parameters"), ("", f" {_short(run_log.parameters, 200)}"))
    for step in run_log.steps.values():
        _add_step(tree, step)
    _print_tree(tree)


def render_step(step: StepLog) -> None:
    """One step's attempts, parameters, catalog entries and branches, as a tree."""
    tree = Node(("bold", step.internal_name))
    _add_step(tree, step)
    _print_tree(tree)


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
                initial: dict[str, Any] = {}
                if any(n not in final for n in params):
                    # A listed run may hold only a summary of its run_config.
                    config = store.get_run_config(run_log.run_id)
                    initial = config.get("initial_parameters") or {}
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


def _table_lines(
    headers: Sequence[str], rows: list[list[list[Part]]], width: int
) -> list[list[Part]]:
    """A table as rich draws its default (heavy head) table, or ``[]`` if rich must lay it out.

    A row has a cell per column, a cell one line of parts. Laid out here when every column takes
    its widest cell and the table still fits in ``width``, and every cell is printable text;
    otherwise rich shrinks columns and wraps cells, which only rich can say how.
    """
    if not _unicode_out():
        return []
    rows = list(rows)  # cells are cleaned in this copy, not in the caller's
    widths = [_cells(header) for header in headers]
    for index, row in enumerate(rows):
        texts = ["".join(text for _, text in cell) for cell in row]
        if not all(text.isprintable() for text in texts):
            rows[index] = row = [[(style, _clean(text)) for style, text in cell] for cell in row]
            texts = ["".join(text for _, text in cell) for cell in row]
            if not all(text.isprintable() for text in texts):
                return []
        widths = [max(size, _cells(text)) for size, text in zip(widths, texts, strict=True)]
    if sum(widths) + 3 * len(widths) + 1 > width:
        return []

    def rule(left: str, line: str, middle: str, right: str) -> list[Part]:
        return [("", left + middle.join(line * (size + 2) for size in widths) + right)]

    def cells(row: list[list[Part]], bar: str) -> list[Part]:
        line: list[Part] = [("", bar)]
        for cell, size in zip(row, widths, strict=True):
            used = sum(_cells(text) for _, text in cell)
            line += [("", " "), *cell, ("", " " * (size - used + 1) + bar)]
        return line

    lines = [rule("┏", "━", "┳", "┓"), cells([[("bold", h)] for h in headers], "┃")]
    lines.append(rule("┡", "━", "╇", "┩"))
    lines += [cells(row, "│") for row in rows]
    lines.append(rule("└", "─", "┴", "┘"))
    return lines


def _print_table(
    headers: Sequence[str], rows: list[list[list[Part]]], after: Iterable[Part] = ()
) -> None:
    """The table, then a line for each of ``after``."""
    width = _width()
    writer = _Writer()
    lines = _table_lines(headers, rows, width)
    if not lines:
        _print_with_rich(headers, rows, width, writer.colour)
    writer.write([*lines, *(line for part in after for line in _label_lines([part]))])


def _print_with_rich(
    headers: Sequence[str], rows: list[list[list[Part]]], width: int, colour: bool
) -> None:
    """The table laid out by rich: columns shrunk and cells wrapped to fit ``width``."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for header in headers:
        table.add_column(Text(header))
    for row in rows:
        table.add_row(*(Text.assemble(*((text, style) for style, text in cell)) for cell in row))
    console = Console(
        highlight=False,
        soft_wrap=True,
        width=width,
        color_system="auto" if colour else None,
        force_terminal=colour or None,
    )
    console.print(table)


def render_run_list(
    rows: list[RunRow], params: Sequence[str] = (), metrics: Sequence[str] = ()
) -> None:
    """A table of runs in the order given: one column per parameter and metric asked for."""
    cells = []
    for row in rows:
        run_log = row.run_log
        cells.append(
            [
                [("", run_log.run_id)],
                [_status(status_of(run_log))],
                [("", run_log.start_time[:19])],
                [("", duration_of(run_log))],
                [("", run_log.tag)],
                *([("", _cell(row.params.get(n)))] for n in params),
                *([("", _cell(row.metrics.get(n)))] for n in metrics),
            ]
        )
    unreadable = [
        ("red", f"{r.run_log.run_id} cannot be read: {r.run_log.message}")
        for r in rows
        if r.run_log.status == UNREADABLE
    ]
    headers = ["run id", "status", "start", "duration", "tag", *params, *metrics]
    _print_table(headers, cells, unreadable)


def render_plugins(infos: list[PluginInfo]) -> None:
    """A table of plugins with their services and hooks."""
    rows = []
    for info in infos:
        services = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(info.services.items()))
        rows.append(
            [
                [("", info.name), *((("", " "), ("red", "(disabled)")) if info.blocked else ())],
                [("", info.distribution)],
                [("", info.version)],
                [("", services)],
                # What a plugin provides shows under services; its other hooks are listed here.
                [("", ", ".join(h for h in info.hooks if h not in PROVIDER_HOOKS.values()))],
            ]
        )
    _print_table(["plugin", "distribution", "version", "services", "hooks"], rows)
