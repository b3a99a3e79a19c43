"""Two versions of our core, side by side: ``magnus execute`` of the same workloads, alternating.

    .nox/bench/bin/python bench/side_by_side.py --cells noop:1000,map:1000 --repeat 3

"Before" is the core of a commit (``--before-commit``, default ``HEAD``: ``git archive`` of its
``packages/core/src`` into ``bench/.work/core-<commit>``) or a folder holding a ``magnus`` package
(``--before``); "after" is the working tree's. Both run in the bench virtualenv, the version under
test put first on ``PYTHONPATH``; each repetition alternates which goes first, so that both see the
same load. Prints, per cell, the median wall time and the median CPU time (user + system of the
process and its children: less sensitive to other work on the machine than the wall time) and the
load average over the cell's runs. Stores are the workloads' own (``config-<store>.yaml``), removed
before every run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tarfile
import time
from io import BytesIO
from pathlib import Path

import workloads

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"


def core_of_commit(commit: str) -> Path:
    """``packages/core/src`` of ``commit``, unpacked once into ``bench/.work/core-<commit>``."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", commit],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    folder = WORK / f"core-{sha}"
    if not (folder / "magnus").is_dir():
        archive = subprocess.run(
            ["git", "archive", sha, "packages/core/src/magnus"],
            cwd=REPO,
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(folder / "tree", filter="data")
        (folder / "tree" / "packages/core/src/magnus").rename(folder / "magnus")
    return folder


def run_once(
    folder: Path, workload: workloads.Workload, n: int, store: str, core: Path
) -> tuple[float, float]:
    """Wall and CPU seconds of one ``magnus execute`` with ``core`` first on the path."""
    workloads.clean_run_outputs(folder)
    subprocess.run(["sync"], check=False)  # the previous run's files written out first
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAGNUS_")}
    env["PYTHONPATH"] = str(core)
    command = [
        str(REPO / ".nox/bench/bin/python"),
        "-m",
        "magnus.cli",
        "execute",
        "-f",
        "pipeline-ours.yaml",
        "-c",
        f"config-{store}.yaml",
    ]
    if workloads.parameters(workload, n):
        command += ["-p", "parameters.yaml"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {folder}:\n{result.stderr[-3000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="noop:1000,params:1000,map:1000")
    parser.add_argument("--store", default="chunked-fs", choices=workloads.STORES)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a folder holding the 'before' magnus package")
    parser.add_argument("--before-commit", default="HEAD")
    args = parser.parse_args()
    cores = {
        "before": args.before.resolve() if args.before else core_of_commit(args.before_commit),
        "after": REPO / "packages/core/src",
    }
    print(f"before: {cores['before']}; after: {cores['after']}; store {args.store}")
    print(
        "| workload | N | before s | after s | before/after | before CPU s | after CPU s "
        "| before/after (CPU) | load (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for cell in args.cells.split(","):
        key, n_text = cell.split(":")
        workload, n = workloads.WORKLOADS[key], int(n_text)
        folder = workloads.generate(WORK / "side-by-side", workload, n)
        walls: dict[str, list[float]] = {"before": [], "after": []}
        cpus: dict[str, list[float]] = {"before": [], "after": []}
        loads = []
        for repetition in range(args.repeat):
            order = ("before", "after") if repetition % 2 == 0 else ("after", "before")
            for side in order:
                loads.append(os.getloadavg()[0])
                wall, cpu = run_once(folder, workload, n, args.store, cores[side])
                walls[side].append(wall)
                cpus[side].append(cpu)
        wall_b, wall_a = statistics.median(walls["before"]), statistics.median(walls["after"])
        cpu_b, cpu_a = statistics.median(cpus["before"]), statistics.median(cpus["after"])
        print(
            f"| {workload.label} | {n} | {wall_b:.2f} | {wall_a:.2f} | {wall_b / wall_a:.2f}x "
            f"| {cpu_b:.2f} | {cpu_a:.2f} | {cpu_b / cpu_a:.2f}x | {statistics.mean(loads):.1f} |",
            flush=True,
        )
        workloads.clean_run_outputs(folder)


if __name__ == "__main__":
    main()
