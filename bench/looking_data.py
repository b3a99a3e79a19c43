"""The looking workload's store: a run of 10,000 steps among 10,000 runs, for ``runs show|list``.

``bench/.work/looking-10000/`` is workload (a)'s pipeline with 10,000 no-op steps (generated the
same way, in a folder of its own). Once per benchmark run, ``prepare`` runs it with our magnus
and the ``chunked-fs`` store under the run id :data:`RUN_ID` (untimed), then adds 9,999 more runs
to the same store through the store's API (``put_run_log``): copies of one real run of a small
pipeline (three int-parameter steps), each with its own id and start time, one in ten failed
and one in five tagged, so that the store holds 10,000 runs as many runs of magnus leave them.
The floor's inputs are written beside them: what ``runs show --json`` and ``runs list --json``
print for the same runs.

``python looking_data.py floor show|list`` is the floor of a cell: an interpreter that parses
that JSON and prints one line per step (or run), which any tool that shows them has to do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import workloads
from tools import Tool

STEPS = 10_000
RUNS = 10_000
STORE = "chunked-fs"
#: the run of 10,000 steps that ``runs show`` shows
RUN_ID = "bench-show"
PIPELINE = workloads.Workload("looking", "looking", "noop", is_map=False, parallel=False)
#: the small pipeline whose one real run is copied into the other 9,999 runs
SMALL = workloads.Workload("looking-small", "looking-small", "inc", is_map=False, parallel=False)
SMALL_STEPS = 3
#: what ``runs show --json`` / ``runs list --json`` printed: the floor parses these
FLOOR_INPUTS = {"show": "show.json", "list": "list.json"}


def folder(work: Path) -> Path:
    return work / f"{PIPELINE.key}-{STEPS}"


def _config() -> list[str]:
    return ["-c", f"config-{STORE}.yaml"]


def show_command(tool: Tool, *extra: str) -> list[str]:
    """``magnus runs show`` of the run of 10,000 steps."""
    return [str(tool.magnus), "runs", "show", RUN_ID, *_config(), *extra]


def list_command(tool: Tool, *extra: str) -> list[str]:
    """``magnus runs list`` of the 10,000 runs."""
    return [str(tool.magnus), "runs", "list", *_config(), *extra]


def floor_command(tool: Tool, what: str) -> list[str]:
    return [str(tool.python), str(Path(__file__).resolve()), "floor", what]


def _copies(work: Path, tool: Tool, into: Path) -> None:
    """Run the small pipeline once, then put copies of its run log into the store ``into``."""
    small = workloads.generate(work, SMALL, SMALL_STEPS)
    command = [str(tool.magnus), "execute", "-f", "pipeline-ours.yaml", *_config()]
    command += ["-p", "parameters.yaml", "--run-id", "small"]
    subprocess.run(command, cwd=small, env=tool.env(), check=True, stdout=subprocess.DEVNULL)
    script = f"""
import sys
from datetime import timedelta

from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
from magnus.runlog.models import FAIL, format_time, parse_time

source = ChunkedFileSystemRunLogStore(log_folder={str(small / ".run_log_store")!r})
target = ChunkedFileSystemRunLogStore(log_folder={str(into)!r})
original = source.get_run_log_by_id("small", full=True)
start = parse_time(original.start_time)
for number in range(1, {RUNS}):
    run_id = f"bench-run-{{number:05d}}"
    # Started a minute apart, before the run of 10,000 steps: that one is listed first.
    shift = timedelta(minutes=number - {RUNS})
    copy = original.model_copy(deep=True)
    copy.run_id = run_id
    copy.run_config["run_id"] = run_id
    copy.start_time = format_time(start + shift)
    copy.end_time = format_time(parse_time(original.end_time) + shift)
    copy.tag = "nightly" if number % 5 == 0 else ""
    if number % 10 == 3:
        copy.status = FAIL
        copy.message = "step0001 failed"
    target.put_run_log(copy)
"""
    subprocess.run(
        [str(tool.python), "-c", script], cwd=small, env=tool.env(), check=True, timeout=1800
    )
    shutil.rmtree(small)


def prepare(work: Path, tool: Tool) -> Path:
    """Generate the pipeline, run it once and add the other runs (from scratch)."""
    here = workloads.generate(work, PIPELINE, STEPS)
    workloads.clean_run_outputs(here)
    command = [str(tool.magnus), "execute", "-f", "pipeline-ours.yaml", *_config()]
    command += ["--run-id", RUN_ID]
    subprocess.run(command, cwd=here, env=tool.env(), check=True, stdout=subprocess.DEVNULL)
    _copies(work, tool, here / ".run_log_store")
    for what, make in (("show", show_command), ("list", list_command)):
        with open(here / FLOOR_INPUTS[what], "w") as out:
            subprocess.run(make(tool, "--json"), cwd=here, env=tool.env(), check=True, stdout=out)
    # Some 50,000 files were just written: written out now, the first timed command does not pay.
    os.sync()
    return here


def floor(what: str) -> None:
    """Parse what the JSON output of ``runs show`` or ``runs list`` holds; a line per item."""
    with open(FLOOR_INPUTS[what], encoding="utf-8") as source:
        data = json.load(source)
    items = data["steps"].values() if what == "show" else data
    name = "name" if what == "show" else "run_id"
    sys.stdout.writelines(f"{item[name]} {item['status']}\n" for item in items)


if __name__ == "__main__":
    if sys.argv[1:2] != ["floor"] or sys.argv[2:] not in (["show"], ["list"]):
        raise SystemExit("usage: looking_data.py floor show|list")
    floor(sys.argv[2])
