"""The report workload's run: one map over 10,000 no-op elements, kept for ``magnus report``.

``bench/.work/report-10000/`` is workload (c)'s pipeline (generated the same way, in a folder of
its own). Once per benchmark run, ``prepare`` runs it with our magnus and the ``chunked-fs``
store under a fixed run id (untimed, its files synced to disk); the timed jobs then write its
report and paint it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import workloads
from tools import Tool

ELEMENTS = 10_000
PIPELINE = workloads.Workload("report", "report", "noop", is_map=True, parallel=False)
STORE = "chunked-fs"
RUN_ID = "bench-report"
#: the report's file, in the workload's folder
REPORT = "report.html"


def folder(work: Path) -> Path:
    return work / f"{PIPELINE.key}-{ELEMENTS}"


def report_command(tool: Tool) -> list[str]:
    """``magnus report`` of the kept run, written to :data:`REPORT`."""
    return [str(tool.magnus), "report", RUN_ID, "-o", REPORT, "-c", f"config-{STORE}.yaml"]


def prepare(work: Path, tool: Tool) -> Path:
    """Generate the pipeline and run it once (from scratch): the run whose report is measured."""
    here = workloads.generate(work, PIPELINE, ELEMENTS)
    workloads.clean_run_outputs(here)
    command = [str(tool.magnus), "execute", "-f", "pipeline-ours.yaml"]
    command += ["-c", f"config-{STORE}.yaml", "-p", "parameters.yaml", "--run-id", RUN_ID]
    subprocess.run(command, cwd=here, env=tool.env(), check=True, stdout=subprocess.DEVNULL)
    # The run created some 40,000 files: written out now, the first timed report does not pay.
    os.sync()
    return here
