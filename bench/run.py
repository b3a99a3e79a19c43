"""Benchmark our magnus against magnus 0.5.1 and the plain-Python floor, side by side.

Driven by ``nox -s bench``, which runs this file with the interpreter of the nox virtualenv
(where our core is installed editable) and passes the 0.5.1 interpreter as ``--old-python``.
Each cell runs ours, 0.5.1 and the floor in turn, rotating the order every repetition so that a
slow spell of a noisy machine hits every tool alike, and reports the median. Results go to stdout
and to ``bench/.work/results.md`` (plus the raw runs in ``results.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import catalog_data
import html_report_data
import jobs
import kedro_env
import looking_data
import reuse_data
import stat_cache_data
import targets
import workloads
from measure import FAILED, OK, TIMEOUT, Measurement, run
from report import Cell, table
from targets import check_all
from tools import FLOOR, KEDRO, OLD, OURS, Tool

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_SIZES = (10, 100, 1000)
FULL_SIZES = (10, 100, 1000, 10000)
#: --only names: every pipeline workload, plus the catalog, start-up, reuse, stat-cache, report
#: and looking (``runs show`` / ``runs list``) groups
GROUPS = (
    *workloads.WORKLOADS,
    "catalog",
    "catalog-s3",
    "startup",
    "reuse",
    "stat-cache",
    "report",
    "looking",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="add N=10,000")
    parser.add_argument(
        "--only", action="append", choices=GROUPS, help="run only these workloads (repeatable)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and cell (median)")
    parser.add_argument("--sizes", help="comma-separated N, overriding the defaults")
    parser.add_argument("--timeout", type=float, default=120.0, help="cap per run, seconds")
    parser.add_argument(
        "--no-predict",
        action="store_true",
        help="run cells even when the smaller sizes predict they will hit the cap",
    )
    parser.add_argument(
        "--old-python",
        type=Path,
        default=BENCH / ".work" / "venv-0.5.1" / "bin" / "python",
        help="interpreter of the magnus 0.5.1 virtualenv",
    )
    parser.add_argument("--stores", help="comma-separated run-log stores (default: all three)")
    parser.add_argument(
        "--tools",
        default=",".join((OURS, OLD, KEDRO, FLOOR)),
        help="comma-separated subset of ours,0.5.1,kedro,floor (development)",
    )
    parser.add_argument("--work", type=Path, default=BENCH / ".work", help="scratch folder")
    parser.add_argument("--invoked-as", default="", help="the command line to record")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def check_tools(ours: Tool, old: Tool, selected: list[str]) -> dict[str, dict[str, str]]:
    """Make sure each interpreter runs the magnus it should, before spending time on runs."""
    described = {OURS: ours.describe()}
    if not Path(described[OURS]["location"]).is_relative_to(ROOT / "packages" / "core"):
        raise SystemExit(f"ours is not this repository's core: {described[OURS]}")
    if OLD not in selected:
        return described
    described[OLD] = old.describe()
    if described[OLD]["version"] != "0.5.1":
        raise SystemExit(f"--old-python does not run magnus 0.5.1: {described[OLD]}")
    return described


def plan(args: argparse.Namespace) -> Iterator[Cell]:
    """Every cell, in the order they run and are reported."""
    selected = args.only or list(GROUPS)
    if args.sizes:
        sizes = tuple(int(size) for size in args.sizes.split(","))
    else:
        sizes = FULL_SIZES if args.full else DEFAULT_SIZES
    stores = args.stores.split(",") if args.stores else workloads.STORES
    if "startup" in selected:
        yield Cell("help", "(f) magnus --help", 1, "")
        yield Cell("import", "(f) import magnus", 1, "")
    for key, workload in workloads.WORKLOADS.items():
        if key not in selected:
            continue
        for store in stores:
            for n in sizes:
                if workload.max_n is None or n <= workload.max_n:
                    yield Cell(key, workload.label, n, store)
            if key == "map" and args.full and store == targets.DEFAULT_STORE:
                # A map's element must cost the same whatever the list's length: one more size.
                yield Cell(key, workload.label, targets.BIG_MAP, store)
    if "catalog" in selected:
        small = catalog_data.SMALL_COUNT
        yield Cell("catalog-1g", "(e) catalog 1 GB file", 1, "")
        yield Cell("catalog-1g-absent", "(e) catalog 1 GB file, original removed", 1, "")
        yield Cell("catalog-10k", "(e) catalog 10,000 files", small, "")
        yield Cell("catalog-10k-absent", "(e) catalog 10,000 files, originals removed", small, "")
    if "catalog" in selected or "catalog-s3" in selected:
        yield Cell("catalog-s3-put", "(e) S3 catalog put of 200 MiB (floor: boto3)", 1, "")
    if "reuse" in selected:
        # One pipeline size: the largest selected up to 1,000 (``--sizes 10`` makes it quick).
        steps = max((n for n in sizes if n <= reuse_data.MAX_STEPS), default=reuse_data.MAX_STEPS)
        store = reuse_data.STORE
        yield Cell("lookup-1", "(g) find_fingerprint x N, 1 earlier run", steps, store)
        yield Cell("lookup-1000", "(g) find_fingerprint x N, 1,000 earlier runs", steps, store)
        yield Cell("reuse-miss", "(g) --reuse, empty store (all run)", steps, store)
        yield Cell("reuse-hit-1", "(g) --reuse, all hit, 1 earlier run", steps, store)
        yield Cell("reuse-hit-1000", "(g) --reuse, all hit, 1,000 earlier runs", steps, store)
    if "stat-cache" in selected:
        count = stat_cache_data.COUNT
        yield Cell("stat-first", "(h) stat cache: first hash", count, "")
        yield Cell("stat-check", "(h) stat cache: no-change check", count, "")
        yield Cell("stat-check-put", "(h) catalog put, all unchanged", count, "")
    if "report" in selected:
        # One size, whatever --sizes says: the targets speak of a map over 10,000 elements.
        elements, store = html_report_data.ELEMENTS, html_report_data.STORE
        yield Cell("report-write", "(i) magnus report, map of 10,000", elements, store)
        yield Cell("report-paint", "(i) report painted in chromium", elements, store)
    if "looking" in selected:
        # One size, whatever --sizes says: the targets speak of 10,000 steps and 10,000 runs.
        steps, store = looking_data.STEPS, looking_data.STORE
        yield Cell("looking-show", "(j) magnus runs show, 10,000 steps", steps, store)
        yield Cell("looking-list", "(j) magnus runs list, 10,000 runs", looking_data.RUNS, store)


@dataclass
class Outcome:
    """How a tool fared at one size of a (workload, store): what later sizes are judged by."""

    n: int
    status: str
    seconds: float | None
    error: str


class Harness:
    """Runs the cells, remembering each tool's outcomes so that hopeless runs are not repeated."""

    def __init__(self, args: argparse.Namespace, tools: dict[str, Tool]) -> None:
        self.args = args
        self.tools = tools
        self.heavy: dict[str, list[str]] = {}
        self.prepared: set[tuple[str, int]] = set()
        #: (tool, workload, store) -> outcomes by ascending N
        self.history: dict[tuple[str, str, str], list[Outcome]] = {}

    def prepare(self, cell: Cell) -> Path:
        """The cell's working folder, generated on first use."""
        work: Path = self.args.work
        if cell.workload in workloads.WORKLOADS:
            key = (cell.workload, cell.n)
            folder = work / f"{cell.workload}-{cell.n}"
            if key not in self.prepared:
                workloads.generate(work, workloads.WORKLOADS[cell.workload], cell.n)
                self.prepared.add(key)
            return folder
        if cell.workload.startswith("catalog"):
            return catalog_data.prepare(work, cell.workload)
        if cell.workload.startswith(("reuse", "lookup")):
            if ("reuse", cell.n) not in self.prepared:
                reuse_data.prepare(work, cell.n, self.tools[OURS])
                self.prepared.add(("reuse", cell.n))
            return reuse_data.folder(work, cell.n)
        if cell.workload.startswith("stat-"):
            return stat_cache_data.prepare(work)
        if cell.workload.startswith("report-"):
            if ("report", cell.n) not in self.prepared:
                html_report_data.prepare(work, self.tools[OURS])
                self.prepared.add(("report", cell.n))
            return html_report_data.folder(work)
        if cell.workload.startswith("looking-"):
            if ("looking", 0) not in self.prepared:
                looking_data.prepare(work, self.tools[OURS])
                self.prepared.add(("looking", 0))
            return looking_data.folder(work)
        return work

    def measure(self, cell: Cell) -> None:
        folder = self.prepare(cell)
        tools = [tool for tool in (OURS, OLD, KEDRO, FLOOR) if tool in self.args.tools]
        for tool in tools:
            reason = self.hopeless(tool, cell)
            if reason:
                cell.skipped[tool] = reason
        for repetition in range(self.args.repeat):
            # Rotate the order each repetition: no tool always runs first (cold) or last.
            shift = repetition % len(tools)
            for tool in tools[shift:] + tools[:shift]:
                if tool in cell.skipped:
                    continue
                if any(result.status != OK for result in cell.runs.get(tool, [])):
                    continue  # a failure or a timeout repeats itself: don't pay for it twice
                job = jobs.job_for(cell, tool, self.tools, folder, repetition)
                if job is None:
                    continue
                result = self.run_job(cell, tool, job, folder)
                cell.runs.setdefault(tool, []).append(result)
                log(
                    f"{cell.workload} N={cell.n} {cell.store or '-'} "
                    f"#{repetition + 1} {tool}: {result.status} {result.seconds:.3f} s "
                    f"{result.rss_mb:.0f} MB {result.error}"
                )
        self.remember(cell)

    def remember(self, cell: Cell) -> None:
        for tool, runs in cell.runs.items():
            bad = [result for result in runs if result.status != OK]
            if bad:
                outcome = Outcome(cell.n, bad[0].status, None, bad[0].error)
            else:
                median = statistics.median(result.seconds for result in runs)
                outcome = Outcome(cell.n, OK, median, "")
            self.history.setdefault((tool, cell.workload, cell.store), []).append(outcome)

    def hopeless(self, tool: str, cell: Cell) -> str:
        """Why running ``tool`` in ``cell`` would only burn time, or "" to run it.

        - a smaller N hit the cap: a larger one will too;
        - the two previous sizes failed with the same error: the failure does not depend on N;
        - for 0.5.1 only, the two previous sizes extrapolate linearly beyond the cap. Linear
          extrapolation underestimates any store whose cost per step grows with the run, so
          such a cell would surely be killed. Ours is always run: the targets judge its
          measured numbers, never predicted ones.
        """
        done = self.history.get((tool, cell.workload, cell.store), [])
        timed_out = [outcome.n for outcome in done if outcome.status == TIMEOUT]
        if timed_out:
            return f"not run: timed out at N={timed_out[0]}"
        if len(done) < 2:
            return ""
        first, second = done[-2:]
        if first.status == second.status == FAILED and first.error == second.error:
            return f"not run: failed the same way at N={first.n} and N={second.n}"
        if tool != OLD or self.args.no_predict or first.seconds is None or second.seconds is None:
            return ""
        slope = (second.seconds - first.seconds) / (second.n - first.n)
        predicted = second.seconds + slope * (cell.n - second.n)
        if predicted <= self.args.timeout:
            return ""
        return (
            f"not run: N={first.n} and N={second.n} extrapolate to {predicted:.0f} s, over the "
            f"{self.args.timeout:.0f} s cap (--no-predict runs it)"
        )

    def run_job(self, cell: Cell, tool: str, job: jobs.Job, folder: Path) -> Measurement:
        job.clean(folder)
        log_path = self.args.work / "logs" / f"{cell.workload}-{cell.n}-{cell.store}-{tool}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # The cap is per 10,000 steps: the 100,000-element map gets ten times the time.
        timeout = self.args.timeout * max(1, cell.n // 10_000)
        result = run(job.command, folder, timeout, log_path, job.env)
        if result.status == OK and job.reports_json:
            # The child timed the interesting part itself (no interpreter start-up).
            reported = json.loads(log_path.read_text().strip().splitlines()[-1])
            result.seconds = reported["seconds"]
            result.figures = {
                key: value
                for key, value in reported.items()
                if key != "seconds" and isinstance(value, (int, float))
            }
            if "heavy" in reported:
                self.heavy[tool] = reported["heavy"]
        job.clean(folder)
        return result


def code_state() -> str:
    """The commit of this repository, and whether our core had uncommitted changes."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "packages/core"], capture_output=True, text=True
    )
    state = head.stdout.strip() or "unknown commit"
    return state + (" + uncommitted changes in packages/core" if dirty.stdout.strip() else "")


def machine() -> dict[str, str]:
    with open("/proc/meminfo") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    return {
        "date": datetime.now().astimezone().strftime("%a %d %b %Y %H:%M:%S %Z"),
        "cpus": str(len(os.sched_getaffinity(0))),
        "memory": f"{total_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(
    args: argparse.Namespace,
    cells: list[Cell],
    heavy: dict[str, list[str]],
    described: dict[str, dict[str, str]],
    seconds: float,
) -> str:
    info = machine()
    command = args.invoked_as or "python bench/run.py " + " ".join(sys.argv[1:])
    verdicts = check_all(cells, heavy)
    text = "\n".join(
        [
            f"Date: {info['date']}. Machine: {info['cpus']} CPUs, {info['memory']} memory, "
            f"Python {info['python']} ({info['platform']}).",
            f"Command: `{command}` — {args.repeat} repetitions, cap {args.timeout:.0f} s per run, "
            f"took {seconds / 60:.1f} min. Load average (5 min) at start "
            f"{args.load_at_start:.1f}, at end {os.getloadavg()[1]:.1f}.",
            f"ours: magnus-core {described[OURS]['version']} at {code_state()}; 0.5.1: "
            + (f"magnus {described[OLD]['version']} from PyPI" if OLD in described else "not run")
            + f"; Kedro: {kedro_env.KEDRO if KEDRO in args.tools else 'not run'}.",
            "",
            table(cells),
            "",
            "`import magnus` loads, of boto3/hvac/mlflow/git/papermill: "
            + (
                "; ".join(f"{tool}: {', '.join(mods) or 'none'}" for tool, mods in heavy.items())
                or "not measured"
            ),
            "",
            "Targets:",
            "",
            *(verdict.line() for verdict in verdicts),
            "",
        ]
    )
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "results.md").write_text(text)
    raw = [dataclasses.asdict(cell) for cell in cells]
    (args.work / "results.json").write_text(json.dumps({"machine": info, "cells": raw}, indent=1))
    return text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.tools = args.tools.split(",")
    args.work = args.work.resolve()
    ours = Tool(OURS, Path(sys.executable))
    old = Tool(OLD, args.old_python)
    described = check_tools(ours, old, args.tools)
    log(f"ours: {described[OURS]}; 0.5.1: {described.get(OLD, 'not run')}")
    tools = {OURS: ours, OLD: old}
    if KEDRO in args.tools:
        tools[KEDRO] = Tool(KEDRO, kedro_env.ensure(args.work))
    harness = Harness(args, tools)
    cells = list(plan(args))
    # Other work on the machine shows in every number: say how busy it was.
    args.load_at_start = os.getloadavg()[1]
    start = time.perf_counter()
    for cell in cells:
        harness.measure(cell)
    text = write_results(args, cells, harness.heavy, described, time.perf_counter() - start)
    print(text)
    log(f"written to {args.work / 'results.md'}")


if __name__ == "__main__":
    main()
