"""Profile our catalog's put + get of a catalog workload with cProfile: where the time goes.

``python bench/profile_catalog.py [catalog-10k|catalog-10k-absent|catalog-1g|...]`` (with the
interpreter of the nox ``bench`` virtualenv) makes the workload's data if missing, then profiles
what ``catalog_driver.py ours`` times: ``FileSystemCatalog.put`` then ``get`` of its pattern,
with the originals removed between them (untimed) for the ``-absent`` workloads. Prints the share
of each file and of each of our functions, and counts the system calls that make a copy's cost;
the full profile is kept in ``bench/.work/profile-<workload>.prof``.
"""

from __future__ import annotations

import cProfile
import glob
import os
import pstats
import shutil
import sys
from pathlib import Path

import catalog_data
from profile_ours import by_file, ours_cumulative

BENCH = Path(__file__).resolve().parent
CATALOG = ".catalog"


def main(workload: str = "catalog-10k-absent") -> None:
    folder = catalog_data.prepare(BENCH / ".work", workload)
    os.chdir(folder)
    shutil.rmtree(CATALOG, ignore_errors=True)
    pattern = catalog_data.PATTERNS[catalog_data.data_set(workload)]
    originals = [name for name in glob.glob(pattern) if Path(name).is_file()]
    from magnus.catalog import FileSystemCatalog

    catalog = FileSystemCatalog(catalog_location=CATALOG)
    profiler = cProfile.Profile()
    profiler.runcall(catalog.put, pattern, "profile")
    if catalog_data.get_mode(workload) == "absent":
        for name in originals:
            os.unlink(name)
    profiler.runcall(catalog.get, pattern, "profile")
    shutil.rmtree(CATALOG, ignore_errors=True)
    target = BENCH / ".work" / f"profile-{workload}.prof"
    profiler.dump_stats(target)
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"{workload}: put + get {total:.2f} s profiled; full profile in {target}\n")
    print("own time by file (built-ins by name):")
    for share, name in by_file(stats, total)[:15]:
        print(f"  {share:5.1f}%  {name}")
    print("\nour functions by cumulative time (callees included):")
    for share, name in ours_cumulative(stats, total)[:25]:
        print(f"  {share:5.1f}%  {name}")
    print("\ncalls per file moved, of the system calls a copy is made of:")
    calls: dict[str, int] = {}
    for (_filename, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        for syscall in ("stat", "lstat", "fstat", "open", "mkdir", "replace", "rename", "sendfile"):
            if name in (f"<built-in method posix.{syscall}>", f"<built-in method io.{syscall}>"):
                calls[syscall] = calls.get(syscall, 0) + row[1]
    for syscall, count in sorted(calls.items()):
        print(f"  {syscall:<9} {count / (2 * len(originals)):.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
