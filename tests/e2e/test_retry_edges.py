"""Re-runs at their edges: an original with nothing in the catalog, re-runs that cannot start,
and branches reused whole under ``enable_parallel``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import show_run

pytestmark = pytest.mark.e2e

STEPS = """
from pathlib import Path


def items(count: int = 6):
    return {"items": list(range(count))}


def element(item: int):
    if item == 2 and not Path("fixed").exists():
        raise RuntimeError("element 2 is broken")
    return {"value": item * 10}


def fragile():
    if not Path("fixed").exists():
        raise RuntimeError("not fixed yet")
    return {"done": True}
"""

# Loaded by every magnus process of a run (children inherit MAGNUS_PLUGINS): each one that
# starts says what it was started for.
CENSUS = """
import os
import sys

with open("processes.log", "a", encoding="utf-8") as log:
    log.write(f"{os.getpid()} {' '.join(sys.argv[1:3])}\\n")
"""

MAP = """
dag:
  start_at: make
  steps:
    make: {type: task, command: steps.items, next: fan}
    fan:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: work
        steps:
          work: {type: task, command: steps.element, next: check}
          check: {type: stub, next: success}
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""

NOTHING_PUT = """
dag:
  start_at: first
  steps:
    first: {type: stub, next: second}
    second: {type: task, command: steps.fragile, next: success}
    success: {type: success}
    fail: {type: fail}
"""


@pytest.fixture
def retry_project(project: Path) -> Path:
    (project / "steps.py").write_text(STEPS)
    (project / "census.py").write_text(CENSUS)
    (project / "map.yaml").write_text(MAP)
    (project / "nothing.yaml").write_text(NOTHING_PUT)
    (project / "parallel.yaml").write_text(
        "executor: {type: local, config: {enable_parallel: true, max_workers: 2}}\n"
    )
    (project / ".gitignore").write_text("__pycache__/\nfixed\nprocesses.log\n")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "steps"], cwd=project, check=True)
    return project


def _runs(project: Path) -> set[str]:
    folder = project / ".run_log_store"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _catalogs(project: Path) -> set[str]:
    folder = project / ".catalog"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_retry_of_a_run_with_no_catalog_folder(retry_project: Path, run_magnus: Any) -> None:
    # The do-nothing catalog of the original put nothing anywhere; the retry uses file-system.
    (retry_project / "none.yaml").write_text("catalog: {type: do-nothing}\n")
    first = run_magnus(
        "execute", "-f", "nothing.yaml", "-c", "none.yaml", "--run-id", "orig", cwd=retry_project
    )
    assert first.returncode == 1
    assert "orig" not in _catalogs(retry_project)
    (retry_project / "fixed").write_text("")
    again = run_magnus("retry", "orig", "--run-id", "again", cwd=retry_project)
    assert again.returncode == 0, again.stdout + again.stderr
    log = show_run("again", retry_project)
    assert log["status"] == "SUCCESS"
    assert log["steps"]["first"]["mock"] is True
    assert log["steps"]["second"]["mock"] is False


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["-f", "broken.yaml"], id="bad-pipeline"),
        pytest.param(["-p", "broken-parameters.yaml"], id="bad-parameters-file"),
        pytest.param(["-f", "missing.yaml"], id="missing-pipeline-file"),
        pytest.param(["-c", "missing-config.yaml"], id="missing-config-file"),
    ],
)
def test_a_retry_that_cannot_start_leaves_no_run_behind(
    retry_project: Path, run_magnus: Any, args: list[str]
) -> None:
    (retry_project / "broken.yaml").write_text("dag:\n  start_at: nowhere\n  steps: {}\n")
    (retry_project / "broken-parameters.yaml").write_text("count: [1, 2\n")
    assert (
        run_magnus(
            "execute", "-f", "nothing.yaml", "--run-id", "orig", cwd=retry_project
        ).returncode
        == 1
    )
    before = (_runs(retry_project), _catalogs(retry_project))
    result = run_magnus("retry", "orig", "--run-id", "never", *args, cwd=retry_project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert (_runs(retry_project), _catalogs(retry_project)) == before


def test_a_retry_of_a_missing_original_leaves_no_run_behind(
    retry_project: Path, run_magnus: Any
) -> None:
    for args in ([], ["-f", "map.yaml"]):
        result = run_magnus("retry", "never-ran", "--run-id", "ghost", *args, cwd=retry_project)
        assert result.returncode == 2
        assert "Expected a run log with id: never-ran" in result.stderr
        assert "ghost" not in _runs(retry_project) | _catalogs(retry_project)


def _comparable(branch: dict[str, Any]) -> dict[str, Any]:
    """A branch record without what differs between two runs of it (times, run ids)."""
    steps = {
        name: {k: v for k, v in step.items() if k not in ("data_catalog", "code_identities")}
        for name, step in branch["steps"].items()
    }
    return {**branch, "steps": steps}


def test_reused_branches_start_no_process(retry_project: Path, run_magnus: Any) -> None:
    env = {"MAGNUS_PLUGINS": "census"}
    first = run_magnus(
        "execute",
        "-f",
        "map.yaml",
        "-c",
        "parallel.yaml",
        "--run-id",
        "orig",
        cwd=retry_project,
        env=env,
    )
    assert first.returncode == 1
    census = retry_project / "processes.log"
    branch_processes = [
        line for line in census.read_text().splitlines() if "execute_single_branch" in line
    ]
    assert len(branch_processes) == 6  # one per element in the original
    census.unlink()

    (retry_project / "fixed").write_text("")
    result = run_magnus(
        "retry", "orig", "-c", "parallel.yaml", "--run-id", "again", cwd=retry_project, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    started = census.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in started] == [
        "retry orig",
        "execute_single_branch again",
    ]

    log = show_run("again", retry_project)
    assert log["status"] == "SUCCESS"
    assert log["parameters"]["value"] == [0, 10, 20, 30, 40, 50]
    branches = log["steps"]["fan"]["branches"]
    mocked = {name: [s["mock"] for s in b["steps"].values()] for name, b in branches.items()}
    assert mocked["fan.2"] == [False, False, False]
    assert all(mocked[f"fan.{i}"] == [True, True, False] for i in (0, 1, 3, 4, 5))

    # What this process recorded for a reused branch is what a branch process records.
    sequential = run_magnus("retry", "orig", "--run-id", "sequential", cwd=retry_project)
    assert sequential.returncode == 0, sequential.stdout + sequential.stderr
    reference = show_run("sequential", retry_project)["steps"]["fan"]["branches"]
    for name in ("fan.0", "fan.5"):
        ours, theirs = _comparable(branches[name]), _comparable(reference[name])
        for record in (ours, theirs):
            for step in record["steps"].values():
                for attempt in step["attempts"]:
                    for key in ("start_time", "end_time", "duration"):
                        attempt.pop(key)
        assert ours == theirs
