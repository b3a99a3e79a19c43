"""Profile one run of our ``magnus execute`` with cProfile and print where the time goes.

``python bench/profile_ours.py WORKLOAD N STORE`` (with the interpreter of the nox ``bench``
virtualenv, after ``nox -s bench`` made the workload folders) profiles the run in-process and
prints the top functions by own time and the share of each of our source files. The full profile
is kept in ``bench/.work/profile-<workload>-<N>-<store>.prof`` for snakeviz or pstats.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import sys
from collections import defaultdict
from pathlib import Path

import workloads

BENCH = Path(__file__).resolve().parent


def by_file(stats: pstats.Stats, total: float) -> list[tuple[float, str]]:
    """Own time summed per source file, as a share of the whole run."""
    shares: dict[str, float] = defaultdict(float)
    for (filename, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        # Built-ins have no file ("~"): name them, since they are often the real cost (open()).
        shares[name if filename == "~" else _short(filename)] += row[2]
    return sorted(((own / total * 100, name) for name, own in shares.items()), reverse=True)


def _short(filename: str) -> str:
    """Our files relative to the package, others by their last two path parts."""
    marker = f"{os.sep}magnus{os.sep}"
    if "packages" in filename and marker in filename:
        return "magnus/" + filename.split(marker, 1)[1]
    return "/".join(Path(filename).parts[-2:])


def ours_cumulative(stats: pstats.Stats, total: float) -> list[tuple[float, str]]:
    """Our functions by cumulative time (callees included), as a share of the whole run."""
    rows = []
    for (filename, line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        short = _short(filename)
        if short.startswith("magnus/"):
            rows.append((row[3] / total * 100, f"{short}:{line}:{name}"))
    return sorted(rows, reverse=True)


def main(workload: str, n: int, store: str) -> None:
    folder = BENCH / ".work" / f"{workload}-{n}"
    if not folder.is_dir():
        workloads.generate(BENCH / ".work", workloads.WORKLOADS[workload], n)
    workloads.clean_run_outputs(folder)
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    argv = ["magnus", "execute", "-f", "pipeline-ours.yaml", "-c", f"config-{store}.yaml"]
    if workloads.parameters(workloads.WORKLOADS[workload], n):
        argv += ["-p", "parameters.yaml"]
    sys.argv = argv
    from magnus.cli import main as magnus_main

    profiler = cProfile.Profile()
    # Our own progress lines would drown the report: keep them out of the way.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        profiler.runcall(magnus_main)
    workloads.clean_run_outputs(folder)
    target = BENCH / ".work" / f"profile-{workload}-{n}-{store}.prof"
    profiler.dump_stats(target)
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"total {total:.2f} s profiled; full profile in {target}\n\nown time by file:")
    for share, name in by_file(stats, total)[:15]:
        print(f"  {share:5.1f}%  {name}")
    print("\nour functions by cumulative time (callees included):")
    for share, name in ours_cumulative(stats, total)[:30]:
        print(f"  {share:5.1f}%  {name}")
    print("\nown time, top 20:")
    stats.sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
