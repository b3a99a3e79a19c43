"""The example observer plugin sees every step of every executor, in every process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
def test_the_step_timer_sees_every_step(project: Path, run_magnus: Any, parallel: bool) -> None:
    args = ["execute", "-f", "examples/map.yaml", "--run-id", "timed"]
    if parallel:
        args += ["-c", "examples/configs/parallel.yaml"]
    result = run_magnus(*args, cwd=project, env={"MAGNUS_PLUGINS": "examples.plugins.step_timer"})
    assert result.returncode == 0, result.stdout + result.stderr
    records = [
        json.loads(line) for line in (project / "step-timings.jsonl").read_text().splitlines()
    ]
    steps = {r["step"]: r for r in records}
    expected = {"make chunks", "summarise", "success"} | {
        f"render all.{i}.{s}" for i in (0, 10, 20) for s in ("render", "shout", "success")
    }
    assert set(steps) == expected
    assert all(r["status"] == "SUCCESS" and r["run_id"] == "timed" for r in records)
    assert all(r["seconds"] is not None and r["seconds"] >= 0 for r in records)
    pids = {r["pid"] for r in records}
    assert (len(pids) > 1) is parallel  # branches ran in other processes, and were seen there


def test_the_step_timer_sees_failures(project: Path, run_magnus: Any) -> None:
    result = run_magnus(
        "execute",
        "-f",
        "examples/on-failure.yaml",
        cwd=project,
        env={"MAGNUS_PLUGINS": "examples.plugins.step_timer"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    records = {
        r["step"]: r
        for r in map(json.loads, (project / "step-timings.jsonl").read_text().splitlines())
    }
    assert records["flaky step"]["errors"] == ["RuntimeError"]
    assert records["flaky step"]["status"] == "SUCCESS"
    assert records["risky step"]["errors"] == ["TaskError"]
    assert records["risky step"]["status"] == "FAIL"


def test_a_plugin_module_that_does_not_import_is_a_clear_error(
    project: Path, run_magnus: Any
) -> None:
    result = run_magnus(
        "execute",
        "-f",
        "examples/on-failure.yaml",
        cwd=project,
        env={"MAGNUS_PLUGINS": "examples.plugins.nope"},
    )
    assert result.returncode == 2
    assert "Plugin module 'examples.plugins.nope' named in MAGNUS_PLUGINS failed to import" in (
        result.stderr
    )
