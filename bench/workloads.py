"""Generate the pipeline workloads into scratch git repositories.

Each ``bench/.work/<workload>-<N>/`` holds one pipeline per tool, a configuration per run-log
store, the parameters and one function module per tool, committed to a fresh git repository:
both tools record the git commit of the code, and a clean repository costs both the same.
The two pipelines differ only in the module they call, because magnus 0.5 insists that a
function returns a pydantic model while ours takes a plain dict.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

STORES = ("buffered", "file-system", "chunked-fs")

#: Tool key -> function module written into every workload folder.
MODULES = {"ours": "bench_fns_ours", "0.5.1": "bench_fns_051"}

_FUNCTIONS_OURS = '''"""Benchmark steps for our magnus: plain functions, dicts out."""


def noop() -> None:
    """Do nothing: what is left is the pipeline's own cost."""


def inc(x: int) -> dict:
    """Pass an integer parameter on, one more each step."""
    return {"x": x + 1}
'''

_FUNCTIONS_051 = '''"""Benchmark steps for magnus 0.5.1, which wants pydantic models returned."""

from pydantic import BaseModel


class Counter(BaseModel):
    x: int


def noop() -> None:
    """Do nothing: what is left is the pipeline's own cost."""


def inc(x: int) -> Counter:
    """Pass an integer parameter on, one more each step."""
    return Counter(x=x + 1)
'''

# What a run leaves behind; ignored so that the repository stays clean for every run.
_GITIGNORE = ".run_log_store/\n.catalog/\n*.execution.log*\n__pycache__/\n*.log\ndata/\n"


@dataclass(frozen=True)
class Workload:
    """A pipeline shape: which function each step calls and how the steps are laid out."""

    key: str
    label: str
    function: str
    is_map: bool
    parallel: bool
    max_n: int | None = None


WORKLOADS: dict[str, Workload] = {
    "noop": Workload("noop", "(a) sequential no-op", "noop", is_map=False, parallel=False),
    "params": Workload("params", "(b) sequential int param", "inc", is_map=False, parallel=False),
    "map": Workload("map", "(c) map, no-op", "noop", is_map=True, parallel=False),
    "map-parallel": Workload(
        "map-parallel", "(d) map, enable_parallel", "noop", is_map=True, parallel=True, max_n=1000
    ),
}


#: The workloads Kedro runs too (``bench/kedro_pipeline.py``), whatever the store.
KEDRO_WORKLOADS = ("noop", "params", "map")


def step_names(n: int) -> list[str]:
    """Zero-padded names of equal width.

    0.5's chunked-fs store finds a step's file by name prefix, so ``step1`` would also match
    ``step10``; equal widths keep every name from being a prefix of another.
    """
    width = len(str(max(n - 1, 0)))
    return [f"step{i:0{width}d}" for i in range(n)]


def terminal_steps() -> dict[str, dict[str, str]]:
    return {"success": {"type": "success"}, "fail": {"type": "fail"}}


def sequential_dag(n: int, command: str) -> dict[str, object]:
    """``n`` python tasks in a chain, each calling ``command``."""
    names = step_names(n)
    steps: dict[str, object] = {}
    for index, name in enumerate(names):
        following = names[index + 1] if index + 1 < n else "success"
        steps[name] = {"type": "task", "command": command, "next": following}
    steps.update(terminal_steps())
    return {"dag": {"start_at": names[0], "steps": steps}}


def map_dag(command: str) -> dict[str, object]:
    """One map step over the ``items`` parameter whose branch is a single python task."""
    branch = {
        "start_at": "work",
        "steps": {"work": {"type": "task", "command": command, "next": "success"}}
        | terminal_steps(),
    }
    fan = {
        "type": "map",
        "iterate_on": "items",
        "iterate_as": "item",
        "next": "success",
        "branch": branch,
    }
    return {"dag": {"start_at": "fan", "steps": {"fan": fan, **terminal_steps()}}}


def pipeline(workload: Workload, n: int, tool: str) -> dict[str, object]:
    command = f"{MODULES[tool]}.{workload.function}"
    return map_dag(command) if workload.is_map else sequential_dag(n, command)


def parameters(workload: Workload, n: int) -> dict[str, object]:
    if workload.is_map:
        return {"items": list(range(n))}
    return {"x": 0} if workload.function == "inc" else {}


def configuration(store: str, parallel: bool) -> dict[str, object]:
    """Same catalog (the default file-system one) for both tools; only the store changes."""
    config: dict[str, object] = {
        "run_log_store": {"type": store},
        "catalog": {"type": "file-system"},
    }
    if parallel:
        config = {"executor": {"type": "local", "config": {"enable_parallel": True}}, **config}
    return config


def _write_yaml(path: Path, data: object) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def git_commit(folder: Path, message: str) -> None:
    """Make ``folder`` a git repository with everything in it committed and an ``origin``.

    The remote is never contacted (both tools only read its URL), but it must exist: without
    one, 0.5.1 logs a full rich traceback ("Error getting git remote") twice per step, which
    makes its steps about 6x slower than in a real project's repository.
    """
    identity = ["-c", "user.name=magnus bench", "-c", "user.email=bench@localhost"]
    for args in (
        ["init", "-q", "-b", "main"],
        ["remote", "add", "origin", "https://example.invalid/magnus-bench.git"],
        ["add", "-A"],
        [*identity, "commit", "-q", "-m", message],
    ):
        subprocess.run(["git", *args], cwd=folder, check=True, stdout=subprocess.DEVNULL)


def write_functions(folder: Path) -> None:
    (folder / f"{MODULES['ours']}.py").write_text(_FUNCTIONS_OURS)
    (folder / f"{MODULES['0.5.1']}.py").write_text(_FUNCTIONS_051)
    (folder / ".gitignore").write_text(_GITIGNORE)


def generate(root: Path, workload: Workload, n: int) -> Path:
    """(Re)create ``root/<workload>-<n>/`` from scratch and commit it."""
    folder = root / f"{workload.key}-{n}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write_functions(folder)
    for tool in MODULES:
        _write_yaml(folder / f"pipeline-{tool}.yaml", pipeline(workload, n, tool))
    _write_yaml(folder / "parameters.yaml", parameters(workload, n))
    for store in STORES:
        _write_yaml(folder / f"config-{store}.yaml", configuration(store, workload.parallel))
    git_commit(folder, f"{workload.key} with N={n}")
    return folder


def clean_run_outputs(folder: Path) -> None:
    """Remove what a run left, so every run starts from the same (empty) stores."""
    for name in (".run_log_store", ".catalog", "data"):
        shutil.rmtree(folder / name, ignore_errors=True)
    for leftover in folder.glob("*.execution.log*"):
        leftover.unlink()
