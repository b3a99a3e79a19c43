"""Turn measurements into the results table and the verdicts on the issue's targets."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from measure import OK, Measurement
from tools import FLOOR, KEDRO, OLD, OURS


@dataclass
class Cell:
    """One row of the table: a workload at one size with one store, measured for every tool."""

    workload: str
    label: str
    n: int
    store: str
    runs: dict[str, list[Measurement]] = field(default_factory=dict)
    #: per tool: why it was not run at all (a smaller N already hit the cap, say)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class Summary:
    """A tool's result in a cell: the medians when every run worked, else what went wrong."""

    status: str
    seconds: float | None = None
    rss_mb: float | None = None
    error: str = ""
    runs: int = 0


def summarise(cell: Cell, tool: str) -> Summary | None:
    if tool in cell.skipped:
        return Summary("skipped", error=cell.skipped[tool])
    runs = cell.runs.get(tool)
    if not runs:
        return None
    bad = [run for run in runs if run.status != OK]
    if bad:
        # One failure is enough to report: the harness stops repeating a tool once it fails.
        return Summary(bad[0].status, bad[0].seconds, bad[0].rss_mb, bad[0].error, len(runs))
    return Summary(
        OK,
        statistics.median(run.seconds for run in runs),
        statistics.median(run.rss_mb for run in runs),
        runs=len(runs),
    )


def overhead_ms(cell: Cell, tool: str) -> float | None:
    """(time - floor) / N in milliseconds, when both worked."""
    mine, floor = summarise(cell, tool), summarise(cell, FLOOR)
    if not (mine and floor and mine.status == OK and floor.status == OK):
        return None
    assert mine.seconds is not None and floor.seconds is not None
    return (mine.seconds - floor.seconds) / cell.n * 1000


class Footnotes:
    """Numbers each distinct error message once, so the table stays narrow."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self.notes:
            self.notes.append(text)
        return f"[{self.notes.index(text) + 1}]"


def _seconds(summary: Summary | None, notes: Footnotes) -> str:
    if summary is None:
        return "-"
    if summary.status == OK:
        assert summary.seconds is not None
        return f"{summary.seconds:.3f}"
    return f"{summary.status.upper()} {notes.mark(summary.error)}"


def _mb(summary: Summary | None) -> str:
    if summary is None or summary.rss_mb is None or summary.status == "skipped":
        return "-"
    return f"{summary.rss_mb:.0f}"


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


HEADER = (
    "| workload | N | store | ours s | ours MB | 0.5.1 s | 0.5.1 MB | Kedro s | Kedro MB "
    "| floor s | ours ms/step | 0.5.1 ms/step | Kedro ms/step | 0.5.1/ours | Kedro/ours |"
)


def _ratio(other: Summary | None, ours: Summary | None) -> str:
    """How many times ours is faster than ``other`` (both must have worked)."""
    if not (ours and other and ours.status == OK and other.status == OK):
        return "-"
    assert ours.seconds and other.seconds is not None
    return f"{other.seconds / ours.seconds:.1f}x"


def table(cells: list[Cell]) -> str:
    """The markdown table, with footnotes for failures."""
    notes = Footnotes()
    lines = [HEADER, "|" + "---|" * 15]
    for cell in cells:
        ours, old, kedro, floor = (summarise(cell, tool) for tool in (OURS, OLD, KEDRO, FLOOR))
        row = [
            cell.label,
            str(cell.n),
            cell.store or "-",
            _seconds(ours, notes),
            _mb(ours),
            _seconds(old, notes),
            _mb(old),
            _seconds(kedro, notes),
            _mb(kedro),
            _seconds(floor, notes),
            _number(overhead_ms(cell, OURS)),
            _number(overhead_ms(cell, OLD)),
            _number(overhead_ms(cell, KEDRO)),
            _ratio(old, ours),
            _ratio(kedro, ours),
        ]
        lines.append("| " + " | ".join(row) + " |")
    if notes.notes:
        lines.append("")
        # Footnotes sit outside the table, but a "|" would still confuse some renderers.
        lines += [
            f"[{index}] {text.replace('|', '/')}" for index, text in enumerate(notes.notes, start=1)
        ]
    return "\n".join(lines)
