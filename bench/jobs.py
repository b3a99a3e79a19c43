"""What to run for one tool in one cell: the command line, its environment, how to clean up."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import catalog_data
import workloads
from report import Cell
from tools import FLOOR, OLD, OURS, Tool

BENCH = Path(__file__).resolve().parent


def _remove_catalog(folder: Path) -> None:
    shutil.rmtree(folder / ".catalog", ignore_errors=True)


def _nothing(_folder: Path) -> None:
    """Nothing to clean."""


@dataclass
class Job:
    """One command to measure."""

    command: list[str]
    env: dict[str, str]
    #: the child prints ``{"seconds": ...}`` last: its own timing replaces the wall time
    reports_json: bool = False
    #: called before and after the run, untimed, so that every run starts from the same state
    clean: Callable[[Path], None] = field(default=_nothing)


def pipeline_job(cell: Cell, tool: str, tools: dict[str, Tool], folder: Path) -> Job:
    ours = tools[OURS]
    if tool == FLOOR:
        command = [str(ours.python), str(BENCH / "floor.py"), cell.workload, str(cell.n)]
        return Job(command, ours.env())
    runner = tools[tool]
    command = [
        str(runner.magnus),
        "execute",
        "-f",
        f"pipeline-{tool}.yaml",
        "-c",
        f"config-{cell.store}.yaml",
    ]
    # An empty parameters file is not something a user would pass; don't test how it is read.
    if workloads.parameters(workloads.WORKLOADS[cell.workload], cell.n):
        command += ["-p", "parameters.yaml"]
    return Job(command, runner.env(), clean=workloads.clean_run_outputs)


def catalog_job(cell: Cell, tool: str, tools: dict[str, Tool], repetition: int) -> Job:
    # The floor runs in our interpreter: it uses nothing but the standard library.
    runner = tools[OURS] if tool == FLOOR else tools[tool]
    pattern = catalog_data.PATTERNS[catalog_data.data_set(cell.workload)]
    run_id = f"bench-{tool}-{repetition}"
    mode = catalog_data.get_mode(cell.workload)
    command = [str(runner.python), str(BENCH / "catalog_driver.py"), tool, pattern, run_id, mode]
    return Job(command, runner.env(), reports_json=True, clean=_remove_catalog)


def job_for(
    cell: Cell, tool: str, tools: dict[str, Tool], folder: Path, repetition: int
) -> Job | None:
    """The job of ``tool`` in ``cell``, or None when the tool has nothing to run there."""
    if cell.workload in workloads.WORKLOADS:
        return pipeline_job(cell, tool, tools, folder)
    if catalog_data.data_set(cell.workload) in catalog_data.PATTERNS:
        return catalog_job(cell, tool, tools, repetition)
    if cell.workload == "help":
        if tool == FLOOR:
            # The floor of a command line: an interpreter that starts and stops.
            return Job([str(tools[OURS].python), "-c", "pass"], tools[OURS].env())
        return Job([str(tools[tool].magnus), "--help"], tools[tool].env())
    if cell.workload == "import" and tool in (OURS, OLD):
        probe = [str(tools[tool].python), str(BENCH / "probe_import.py")]
        return Job(probe, tools[tool].env(), reports_json=True)
    return None
