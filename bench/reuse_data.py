"""The reuse workloads: a pipeline of N int-parameter steps and its stores of earlier runs.

``bench/.work/reuse-<N>/`` is workload (b)'s pipeline (generated the same way, in a folder of its
own). Once per benchmark run, ``prepare`` runs it once with our magnus and keeps what that left
(``.run_log_store`` and ``.catalog``) as the store with one earlier run, then copies it and adds
999 earlier runs of a few steps, every step's fingerprint indexed, through the store's API
(``reuse_driver.py populate``): the store with 1,000. A timed run starts from a fresh copy of
one of them (:func:`restore`), so every repetition finds the same store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import workloads
from tools import Tool

BENCH = Path(__file__).resolve().parent
#: numbers of earlier runs the stores hold
EARLIER_RUNS = (1, 1000)
#: steps of each earlier run ``populate`` adds
EARLIER_STEPS = 5
#: the largest pipeline the reuse workloads run (N of a run of --sizes above is capped to it)
MAX_STEPS = 1000
PIPELINE = workloads.Workload("reuse", "reuse", "inc", is_map=False, parallel=False)
STORE = "chunked-fs"
_KEPT = (".run_log_store", ".catalog")


def folder(work: Path, steps: int) -> Path:
    return work / f"reuse-{steps}"


def stores(work: Path, steps: int, earlier: int) -> Path:
    """Where the store with ``earlier`` runs is kept, untouched by the timed runs."""
    return work / f"reuse-{steps}-stores" / str(earlier)


def run_command(tool: Tool, reuse: bool) -> list[str]:
    command = [str(tool.magnus), "execute", "-f", "pipeline-ours.yaml"]
    command += ["-c", f"config-{STORE}.yaml", "-p", "parameters.yaml"]
    return command + (["--reuse"] if reuse else [])


def restore(work: Path, steps: int, earlier: int) -> None:
    """Put a fresh copy of the store with ``earlier`` runs (and its catalog) in the folder.

    With ``earlier`` 0, the folder is left with no store at all. The copy is written out to disk
    before the timed run starts: otherwise the run pays for writing back a copy whose size
    grows with the number of runs in it, which is not what is measured.
    """
    target = folder(work, steps)
    workloads.clean_run_outputs(target)
    if earlier:
        for name in _KEPT:
            shutil.copytree(stores(work, steps, earlier) / name, target / name, symlinks=True)
    os.sync()


def prepare(work: Path, steps: int, tool: Tool) -> Path:
    """Generate the pipeline and make both stores of earlier runs (from scratch)."""
    here = workloads.generate(work, PIPELINE, steps)
    workloads.clean_run_outputs(here)
    subprocess.run(
        run_command(tool, reuse=False),
        cwd=here,
        env=tool.env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    shutil.rmtree(work / f"reuse-{steps}-stores", ignore_errors=True)
    for earlier in EARLIER_RUNS:
        kept = stores(work, steps, earlier)
        kept.mkdir(parents=True)
        for name in _KEPT:
            shutil.copytree(here / name, kept / name, symlinks=True)
        if earlier > 1:
            populate = [str(tool.python), str(BENCH / "reuse_driver.py"), "populate"]
            populate += [str(kept / ".run_log_store"), str(earlier - 1), str(EARLIER_STEPS)]
            subprocess.run(populate, cwd=here, env=tool.env(), check=True)
    workloads.clean_run_outputs(here)
    return here
