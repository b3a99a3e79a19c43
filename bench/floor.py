"""The plain-Python floor: the workload's functions called in a loop in one process.

Run from a workload folder as ``python floor.py WORKLOAD N``. It is timed like the pipelines (a
child process, from start to exit), so subtracting it removes the interpreter's own start-up and
the functions' cost, leaving what a tool adds. Standard library only: it also runs where only
the interpreter is known.
"""

from __future__ import annotations

import importlib
import os
import sys


def main(workload: str, n: int) -> None:
    # The functions live in the workload folder (the working directory), as for the pipelines.
    sys.path.insert(0, os.getcwd())
    functions = importlib.import_module("bench_fns_ours")
    if workload == "params":
        x = 0
        for _ in range(n):
            x = functions.inc(x=x)["x"]
        assert x == n, f"parameter passing went wrong: {x} != {n}"
    elif workload in ("map", "map-parallel"):
        for _item in range(n):
            functions.noop()
    else:
        for _ in range(n):
            functions.noop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
