"""``magnus runs list``: newest first, --limit, --json, and columns of parameters and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_magnus

pytestmark = pytest.mark.e2e

STEPS = """
from magnus import track_this


def train(x: int):
    # Tracked at two epochs: the list shows the value of the last one.
    track_this(step=0, loss=x * 100)
    track_this(step=1, loss=x / 10)
    return {"y": x * 2}
"""

PIPELINE = """
dag:
  start_at: train
  steps:
    train: {type: task, command: steps.train, next: success}
    success: {type: success}
    fail: {type: fail}
"""


def _list(project: Path, *args: str) -> str:
    result = run_magnus("runs", "list", *args, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs, oldest first: ``one`` (x=1), ``two`` (x=2), ``three`` (x=3)."""
    project = tmp_path_factory.mktemp("list")
    (project / "steps.py").write_text(STEPS)
    (project / "pipeline.yaml").write_text(PIPELINE)
    for x, run_id in enumerate(["one", "two", "three"], start=1):
        (project / "params.yaml").write_text(f"x: {x}\n")
        result = run_magnus(
            "execute", "-f", "pipeline.yaml", "-p", "params.yaml", "--run-id", run_id, "--tag",
            "t" if x > 1 else "", cwd=project,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    return project


def test_json_keeps_the_newest_with_the_chosen_parameters_and_metrics(runs: Path) -> None:
    rows = json.loads(_list(runs, "--param", "x", "--metric", "loss", "--json", "--limit", "2"))
    assert [r["run_id"] for r in rows] == ["three", "two"]
    assert [(r["params"], r["metrics"]) for r in rows] == [
        ({"x": 3}, {"loss": 0.3}),
        ({"x": 2}, {"loss": 0.2}),
    ]
    three = rows[0]
    assert three["status"] == "SUCCESS" and three["tag"] == "t"
    assert three["start_time"] < three["end_time"] and three["duration_seconds"] >= 0
    assert set(three) == {
        "run_id", "status", "start_time", "end_time", "duration_seconds", "tag", "message",
        "params", "metrics",
    }  # fmt: skip

    # The limit counts after the filters; a parameter produced by a step, or not recorded.
    rows = json.loads(_list(runs, "--tag", "", "--param", "y", "--param", "nope", "--json"))
    assert [(r["run_id"], r["params"], r["metrics"]) for r in rows] == [
        ("one", {"y": 2, "nope": None}, {})
    ]


def test_the_table_has_a_column_per_parameter_and_metric(runs: Path) -> None:
    lines = _list(runs, "--param", "x", "--metric", "loss").splitlines()
    header = next(line for line in lines if "run id" in line)
    cells = [cell.strip() for cell in header.strip("┃│ ").split("┃")]
    assert cells == ["run id", "status", "start", "duration", "tag", "x", "loss"]
    rows = [[cell.strip() for cell in line.strip("│ ").split("│")] for line in lines if "│" in line]
    assert [(r[0], r[5], r[6]) for r in rows] == [
        ("three", "3", "0.3"),
        ("two", "2", "0.2"),
        ("one", "1", "0.1"),
    ]
    # Without them, the columns are as they always were.
    plain = _list(runs, "--limit", "1")
    assert "three" in plain and "two" not in plain and "loss" not in plain
