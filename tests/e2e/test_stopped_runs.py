"""A run that magnus itself fails in the middle of ends FAIL with the reason, never PROCESSING."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_hooks_seen, run_magnus, write_run_hooks

pytestmark = pytest.mark.e2e

# A run-log store that breaks in a way no store should: an unexpected error (not a magnus
# error) when the step "boom" is recorded as ended. Everything else it stores as chunked-fs.
BREAKING_STORE = """
from typing import ClassVar

from magnus import hookimpl
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore


class BreakingStore(ChunkedFileSystemRunLogStore):
    service_name: ClassVar[str] = "breaking-fs"

    def add_step_log(self, step_log, run_id):
        if step_log.name == "boom" and step_log.status == "SUCCESS":
            raise RuntimeError("the disk is on fire")
        super().add_step_log(step_log, run_id)


@hookimpl
def register_run_log_stores():
    return [BreakingStore]
"""

STEPS = """
def one():
    return {"x": 1, "items": [0, 1]}


def boom(x: int):
    return {"y": x + 1}
"""

PIPELINE = """
dag:
  start_at: one
  steps:
    one: {type: task, command: steps.one, next: fan}
    fan:
      type: map
      iterate_on: items
      iterate_as: item
      next: after
      branch:
        start_at: boom
        steps:
          boom: {type: task, command: steps.boom, next: success}
          success: {type: success}
          fail: {type: fail}
    after: {type: task, command: steps.one, next: success}
    success: {type: success}
    fail: {type: fail}
"""

CONFIG = """
run_log_store: {{type: breaking-fs}}
executor: {{type: local, config: {{enable_parallel: {parallel}, max_workers: 2}}}}
"""


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
def test_an_unexpected_error_inside_magnus_ends_the_run_fail_with_the_reason(
    project: Path, parallel: bool
) -> None:
    (project / "breaking_store.py").write_text(BREAKING_STORE)
    (project / "p.yaml").write_text(PIPELINE)
    (project / "c.yaml").write_text(CONFIG.format(parallel=str(parallel).lower()))
    write_run_hooks(project)
    (project / "steps.py").write_text(STEPS)
    env = {"MAGNUS_PLUGINS": "breaking_store,run_hooks"}

    result = run_magnus(
        "execute", "-f", "p.yaml", "-c", "c.yaml", "--run-id", "broken", cwd=project, env=env
    )

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "the disk is on fire" in result.stdout + result.stderr
    shown = run_magnus("runs", "show", "broken", "--json", "-c", "c.yaml", cwd=project, env=env)
    log = json.loads(shown.stdout)
    assert log["status"] == "FAIL"
    statuses = {}
    for name, step in log["steps"].items():
        statuses[name] = step["status"]
        for branch_name, branch in step.get("branches", {}).items():
            statuses[branch_name] = branch["status"]
            for inner, inner_step in branch["steps"].items():
                statuses[inner] = inner_step["status"]
    assert "PROCESSING" not in statuses.values() and "CREATED" not in statuses.values()
    assert statuses["one"] == "SUCCESS"
    assert statuses["fan.0.boom"] == statuses["fan.0"] == statuses["fan.1"] == "FAIL"
    boom = log["steps"]["fan"]["branches"]["fan.0"]["steps"]["fan.0.boom"]
    assert "the disk is on fire" in boom["message"]
    ended = [seen for seen in run_hooks_seen(project) if seen["hook"] == "after_run"]
    assert [seen["status"] for seen in ended] == ["FAIL"]
    if not parallel:
        # In one process the error stops the traversal: the run itself says why.
        assert log["message"] == "magnus stopped: RuntimeError: the disk is on fire"
        assert "after" not in log["steps"]
