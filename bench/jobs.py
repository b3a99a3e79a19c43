"""What to run for one tool in one cell: the command line, its environment, how to clean up."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import catalog_data
import catalog_s3_env
import html_report_data
import looking_data
import reuse_data
import workloads
from report import Cell
from tools import FLOOR, KEDRO, OLD, OURS, Tool

BENCH = Path(__file__).resolve().parent
#: the largest N Kedro is run at
KEDRO_MAX_N = 1000


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
    if tool == KEDRO:
        kedro = tools[KEDRO]
        command = [str(kedro.python), str(BENCH / "kedro_pipeline.py"), cell.workload, str(cell.n)]
        return Job(command, kedro.env())
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


def catalog_s3_job(cell: Cell, tool: str) -> Job | None:
    """Ours (the ``s3`` catalog) or the floor (raw boto3), in the S3 virtualenv; not 0.5.1."""
    if tool not in (OURS, FLOOR):
        return None
    python = catalog_s3_env.ensure(BENCH / ".work")
    driver = str(BENCH / "catalog_s3_driver.py")
    command = [str(python), driver, tool, catalog_data.S3_PATHS[cell.workload]]
    return Job(command, Tool(tool, python).env(), reports_json=True)


#: reuse workload -> how many earlier runs its store holds (none: it starts empty)
REUSE_RUNS = {"reuse-miss": 0, "reuse-hit-1": 1, "reuse-hit-1000": 1000}
#: lookup workload -> how many earlier runs its store holds
LOOKUP_RUNS = {"lookup-1": 1, "lookup-1000": 1000}
#: stat-cache workload -> (our driver's mode, the floor's)
STAT_CACHE_MODES = {
    "stat-first": ("first", "floor-first"),
    "stat-check": ("check", "floor-check"),
    "stat-check-put": ("check-put", "floor-check"),
}


def reuse_job(cell: Cell, tool: str, tools: dict[str, Tool]) -> Job | None:
    """A ``--reuse`` run of the reuse pipeline, from a fresh copy of its store (ours only)."""
    ours = tools[OURS]
    if tool == FLOOR:
        command = [str(ours.python), str(BENCH / "floor.py"), "params", str(cell.n)]
        return Job(command, ours.env())
    if tool != OURS:
        return None
    earlier = REUSE_RUNS[cell.workload]

    def fresh_store(folder: Path) -> None:
        reuse_data.restore(folder.parent, cell.n, earlier)

    return Job(reuse_data.run_command(ours, reuse=True), ours.env(), clean=fresh_store)


def lookup_job(cell: Cell, tool: str, tools: dict[str, Tool], folder: Path) -> Job | None:
    if tool != OURS:
        return None
    store = reuse_data.stores(folder.parent, cell.n, LOOKUP_RUNS[cell.workload])
    driver = [str(tools[OURS].python), str(BENCH / "reuse_driver.py"), "lookup"]
    return Job([*driver, str(store / ".run_log_store")], tools[OURS].env(), reports_json=True)


def stat_cache_job(cell: Cell, tool: str, tools: dict[str, Tool]) -> Job | None:
    if tool == OLD:
        return None
    ours_mode, floor_mode = STAT_CACHE_MODES[cell.workload]
    mode = ours_mode if tool == OURS else floor_mode
    command = [str(tools[OURS].python), str(BENCH / "stat_cache_driver.py"), mode]
    # The first hash starts from an empty cache; a check fills it first (untimed) if missing.
    clean = _remove_catalog if mode == "first" else _nothing
    return Job(command, tools[OURS].env(), reports_json=True, clean=clean)


def report_job(cell: Cell, tool: str, tools: dict[str, Tool]) -> Job | None:
    """Ours only: write the kept run's report, or paint the report written (it is kept)."""
    if tool != OURS:
        return None
    ours = tools[OURS]
    if cell.workload == "report-write":
        return Job(html_report_data.report_command(ours), ours.env())
    driver = [str(ours.python), str(BENCH / "html_report_driver.py"), html_report_data.REPORT]
    return Job(driver, ours.env(), reports_json=True)


def looking_job(cell: Cell, tool: str, tools: dict[str, Tool]) -> Job | None:
    """Ours: ``runs show`` / ``runs list`` (output to the log, as when piped); the floor: the
    same JSON parsed and a line printed per step or run."""
    what = cell.workload.removeprefix("looking-")
    if tool == FLOOR:
        return Job(looking_data.floor_command(tools[OURS], what), tools[OURS].env())
    if tool != OURS:
        return None
    command = looking_data.show_command if what == "show" else looking_data.list_command
    return Job(command(tools[OURS]), tools[OURS].env())


def job_for(
    cell: Cell, tool: str, tools: dict[str, Tool], folder: Path, repetition: int
) -> Job | None:
    """The job of ``tool`` in ``cell``, or None when the tool has nothing to run there."""
    if tool == KEDRO:
        # Kedro runs the sequential and map workloads only (it has no parallel map of its own),
        # up to N = 1,000, where the targets compare: its runner's cost grows with the square
        # of the number of nodes (10,000 no-op nodes run past the 120 s cap).
        if cell.workload in workloads.KEDRO_WORKLOADS and cell.n <= KEDRO_MAX_N:
            return pipeline_job(cell, tool, tools, folder)
        return None
    if cell.workload in workloads.WORKLOADS:
        return pipeline_job(cell, tool, tools, folder)
    if cell.workload in catalog_data.S3_PATHS:
        return catalog_s3_job(cell, tool)
    if catalog_data.data_set(cell.workload) in catalog_data.PATTERNS:
        return catalog_job(cell, tool, tools, repetition)
    if cell.workload in REUSE_RUNS:
        return reuse_job(cell, tool, tools)
    if cell.workload in LOOKUP_RUNS:
        return lookup_job(cell, tool, tools, folder)
    if cell.workload in STAT_CACHE_MODES:
        return stat_cache_job(cell, tool, tools)
    if cell.workload.startswith("report-"):
        return report_job(cell, tool, tools)
    if cell.workload.startswith("looking-"):
        return looking_job(cell, tool, tools)
    if cell.workload == "help":
        if tool == FLOOR:
            # The floor of a command line: an interpreter that starts and stops.
            return Job([str(tools[OURS].python), "-c", "pass"], tools[OURS].env())
        return Job([str(tools[tool].magnus), "--help"], tools[tool].env())
    if cell.workload == "import" and tool in (OURS, OLD):
        probe = [str(tools[tool].python), str(BENCH / "probe_import.py")]
        return Job(probe, tools[tool].env(), reports_json=True)
    return None
