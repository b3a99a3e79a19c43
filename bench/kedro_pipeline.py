"""The pipeline workloads as Kedro pipelines, run with Kedro's ``SequentialRunner``.

Run from a workload folder as ``python kedro_pipeline.py WORKLOAD N`` with the interpreter of
``bench/.work/venv-kedro``. It is timed like the pipelines (a child process, from start to exit).
The same functions as the floor's and ours are called (``bench_fns_ours``), with Kedro's
in-memory datasets between nodes: Kedro persists nothing, records no run log and no code
identity, and keeps no catalog of files. Its per-node INFO lines are turned off: through its
rich handler they cost about 20 ms a node, which would measure the terminal, not the pipeline.

(a) ``noop``: N nodes in a chain, each passing a token on (Kedro refuses to save ``None``).
(b) ``params``: N nodes in a chain, ``inc(x)`` each, ``x`` starting from ``params:x`` = 0.
(c) ``map``: Kedro has no map step; N nodes, each given the whole list and its index, as a
map's elements are.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any


def main(workload: str, n: int) -> None:
    logging.disable(logging.INFO)
    sys.path.insert(0, os.getcwd())
    functions = importlib.import_module("bench_fns_ours")

    from kedro.io import DataCatalog, MemoryDataset  # type: ignore[import-not-found]
    from kedro.pipeline import Pipeline, node  # type: ignore[import-not-found]
    from kedro.runner import SequentialRunner  # type: ignore[import-not-found]

    def passed_on(*_previous: Any) -> int:
        functions.noop()
        return 0

    def inc(x: int) -> int:
        result: int = functions.inc(x=x)["x"]
        return result

    def element(index: int) -> Any:
        def call(items: list[Any]) -> int:
            functions.noop()
            return int(items[index])

        call.__name__ = f"element_{index}"
        return call

    catalog = DataCatalog()
    if workload == "params":
        catalog["x0"] = MemoryDataset(0)
        nodes = [node(inc, f"x{i}", f"x{i + 1}", name=f"step{i}") for i in range(n)]
    elif workload == "map":
        catalog["items"] = MemoryDataset(list(range(n)))
        nodes = [node(element(i), "items", f"out{i}", name=f"element{i}") for i in range(n)]
    else:
        nodes = [
            node(passed_on, None if i == 0 else f"d{i - 1}", f"d{i}", name=f"step{i}")
            for i in range(n)
        ]
    outputs = SequentialRunner().run(Pipeline(nodes), catalog)
    if workload == "params":
        final = outputs[f"x{n}"]
        value = final.load() if hasattr(final, "load") else final
        assert value == n, f"parameter passing went wrong: {value} != {n}"


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
