"""``magnus runs diff``: only what differs between two runs, as text and as JSON."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import run_magnus

pytestmark = pytest.mark.e2e

STEPS = """
from pathlib import Path

from magnus import track_this


def make(x: int):
    Path("data").mkdir(exist_ok=True)
    Path("data/rows.csv").write_text(Path("rows.txt").read_text())
    return {"y": x + 1}


def fit(y: int):
    rows = Path("data/rows.csv").read_text().splitlines()
    track_this(loss=1 / len(rows))
    return {"z": y * 10}


def use(item: int, x: int):
    print(item * x)


def report(name: str):
    print(name)
"""

PIPELINE = """
dag:
  start_at: make
  steps:
    make: {type: task, command: steps.make, catalog: {put: [data/rows.csv]}, next: fit}
    fit: {type: task, command: steps.fit, catalog: {get: [data/rows.csv]}, next: each}
    each:
      type: map
      iterate_on: items
      iterate_as: item
      next: report
      branch:
        start_at: use
        steps:
          use: {type: task, command: steps.use, next: success}
          success: {type: success}
          fail: {type: fail}
    report: {type: task, command: steps.report, next: success}
    success: {type: success}
    fail: {type: fail}
"""


def _execute(project: Path, run_id: str, x: int, *options: str) -> None:
    (project / "params.yaml").write_text(f"x: {x}\nname: a\nitems: [1, 2]\n")
    result = run_magnus("execute", "-p", "params.yaml", "--run-id", run_id, *options, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr


def _diff(project: Path, *args: str) -> str:
    result = run_magnus("runs", "diff", *args, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project, six runs: ``base``; ``x2`` with x=2; ``same`` as ``base``; ``extra`` of a
    pipeline with one more step; ``again`` reusing what they did; ``rows`` with another rows
    file."""
    project = tmp_path_factory.mktemp("diff")
    (project / "steps.py").write_text(STEPS)
    (project / "pipeline.yaml").write_text(PIPELINE)
    extra = PIPELINE.replace(
        "report: {type: task, command: steps.report, next: success}",
        "report: {type: task, command: steps.report, next: extra}\n"
        "    extra: {type: task, command_type: shell, command: echo extra, next: success}",
    )
    (project / "extra.yaml").write_text(extra)
    (project / "rows.txt").write_text("a\n")
    _execute(project, "base", 1, "-f", "pipeline.yaml")
    _execute(project, "x2", 2, "-f", "pipeline.yaml")
    _execute(project, "same", 1, "-f", "pipeline.yaml")
    _execute(project, "extra", 1, "-f", "extra.yaml")
    _execute(project, "again", 1, "-f", "pipeline.yaml", "--reuse")
    (project / "rows.txt").write_text("a\nb\n")
    _execute(project, "rows", 1, "-f", "pipeline.yaml")
    return project


def test_one_parameter_shows_itself_and_what_it_changed_downstream_only(runs: Path) -> None:
    # report consumes only `name`: it does not appear; no time, run id or execution log does.
    assert _diff(runs, "base", "x2") == (
        "base → x2\n"
        "run\n"
        "  initial parameter x 1 → 2\n"
        "  parameter x 1 → 2\n"
        "  parameter y 2 → 3\n"
        "  parameter z 20 → 30\n"
        "step make\n"
        "  consumed x 1 → 2\n"
        "  produced y 2 → 3\n"
        "  fingerprint: parameters changed\n"
        "step fit\n"
        "  consumed y 2 → 3\n"
        "  produced z 20 → 30\n"
        "  fingerprint: parameters changed\n"
        "step each.1.use\n"
        "  consumed x 1 → 2\n"
        "  fingerprint: parameters changed\n"
        "step each.2.use\n"
        "  consumed x 1 → 2\n"
        "  fingerprint: parameters changed\n"
    )

    diff = json.loads(_diff(runs, "base", "x2", "--json"))
    x = {"name": "x", "change": "changed", "before": 1, "after": 2}
    y = {"name": "y", "change": "changed", "before": 2, "after": 3}
    z = {"name": "z", "change": "changed", "before": 20, "after": 30}
    assert diff["before"] == "base" and diff["after"] == "x2" and diff["identical"] is False
    assert diff["run"] == {
        "status": None,
        "tag": None,
        "dag_hash": None,
        "code": None,
        "initial_parameters": [x],
        "parameters": [x, y, z],
        "environment": [],
    }
    unchanged = {
        "only_in": None,
        "status": None,
        "metrics": [],
        "catalog": [],
        "reused_from": None,
        "map_values": None,
        "fingerprint": ["parameters"],
    }
    assert diff["steps"] == [
        {"step": "make", **unchanged, "consumed": [x], "produced": [y]},
        {"step": "fit", **unchanged, "consumed": [y], "produced": [z]},
        {"step": "each.1.use", **unchanged, "consumed": [x], "produced": []},
        {"step": "each.2.use", **unchanged, "consumed": [x], "produced": []},
    ]


def test_runs_that_did_the_same_have_no_differences(runs: Path) -> None:
    assert _diff(runs, "base", "same") == "no differences between base and same\n"
    assert json.loads(_diff(runs, "base", "same", "--json")) == {
        "before": "base",
        "after": "same",
        "identical": True,
        "run": {
            "status": None,
            "tag": None,
            "dag_hash": None,
            "code": None,
            "initial_parameters": [],
            "parameters": [],
            "environment": [],
        },
        "steps": [],
    }


def test_a_changed_data_file_and_the_metric_it_moved(runs: Path) -> None:
    before = hashlib.sha256(b"a\n").hexdigest()
    after = hashlib.sha256(b"a\nb\n").hexdigest()
    assert _diff(runs, "base", "rows") == (
        "base → rows\n"
        "step make\n"
        f"  put data/rows.csv sha256 {before[:8]}… → {after[:8]}…\n"
        "step fit\n"
        "  metric loss 1.0 → 0.5\n"
        f"  get data/rows.csv sha256 {before[:8]}… → {after[:8]}…\n"
        "  fingerprint: inputs changed\n"
    )
    steps = json.loads(_diff(runs, "base", "rows", "--json"))["steps"]
    fit = steps[1]
    assert fit["metrics"] == [{"name": "loss", "change": "changed", "before": 1.0, "after": 0.5}]
    assert fit["catalog"] == [
        {"name": "get data/rows.csv", "change": "changed", "before": before, "after": after}
    ]


def test_a_step_in_one_run_only(runs: Path) -> None:
    text = _diff(runs, "base", "extra")
    assert "step extra: only in extra (SUCCESS)\n" in text
    # The pipelines differ (the definition is all that does at the run level).
    assert text.startswith("base → extra\nrun\n  pipeline definition (dag_hash) ")
    assert text.count("\n") == 4, text

    diff = json.loads(_diff(runs, "extra", "base", "--json"))
    assert diff["run"]["dag_hash"]["change"] == "changed"
    assert diff["steps"] == [
        {
            "step": "extra",
            "only_in": "before",
            "status": {"name": "status", "change": "removed", "before": "SUCCESS", "after": None},
            "consumed": [],
            "produced": [],
            "metrics": [],
            "catalog": [],
            "reused_from": None,
            "map_values": None,
            "fingerprint": [],
        }
    ]


def test_reused_steps_say_where_from_and_nothing_else_differs(runs: Path) -> None:
    diff = json.loads(_diff(runs, "base", "again", "--json"))
    assert not any(diff["run"].values())
    steps = {s.pop("step"): s for s in diff["steps"]}
    assert list(steps) == ["make", "fit", "each.1.use", "each.2.use", "report"]
    for name, step in steps.items():
        reused = step.pop("reused_from")
        assert reused["change"] == "added" and reused["before"] is None
        assert reused["after"]["run_id"] in {"base", "same", "extra"}
        assert reused["after"]["step"] == name
        assert not any(step.values()), step
    assert "step fit\n  ran → reused from run " in _diff(runs, "base", "again")


def test_an_unknown_run_is_one_line_and_exit_2(runs: Path) -> None:
    result = run_magnus("runs", "diff", "base", "nowhere", cwd=runs)
    assert result.returncode == 2
    assert "nowhere" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
