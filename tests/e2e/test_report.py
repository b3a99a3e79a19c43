"""``magnus report``: one self-contained HTML file, checked in a real headless browser.

One run holds what a report must show: a parallel step, a map over 1,000 elements, a step
retried after its first attempt failed, a failed step routed by ``on_failure`` and stepped
metrics. Its report is rendered once by chromium; the tests read the DOM its script drew.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from browser import rendered_dom, screenshot
from helpers import run_magnus

STEPS = """
import os

import magnus


def make(count: int = 1000):
    return {"items": list(range(count))}


def fit():
    for epoch in range(5):
        magnus.track_this(step=epoch, loss=1.0 / (epoch + 1))


def square(item: int):
    return {"sq": item * item}


def flaky():
    if not os.path.exists("flaky.marker"):
        open("flaky.marker", "w").close()
        raise RuntimeError("first attempt fails on purpose")


def broken():
    raise ValueError("this step is broken beyond repair")


def recover():
    return None
"""

PIPELINE = """
dag:
  start_at: make
  steps:
    make: {type: task, command: steps.make, next: train}
    train:
      type: parallel
      next: squares
      branches:
        left:
          start_at: fit
          steps:
            fit: {type: task, command: steps.fit, next: success}
            success: {type: success}
            fail: {type: fail}
        right:
          start_at: fit
          steps:
            fit: {type: task, command_type: shell, command: "sleep 0.2", next: success}
            success: {type: success}
            fail: {type: fail}
    squares:
      type: map
      iterate_on: items
      iterate_as: item
      next: flaky
      branch:
        start_at: square
        steps:
          square: {type: task, command: steps.square, next: success}
          success: {type: success}
          fail: {type: fail}
    flaky: {type: task, command: steps.flaky, max_attempts: 2, next: broken}
    broken: {type: task, command: steps.broken, on_failure: recover, next: success}
    recover: {type: task, command: steps.recover, next: success}
    success: {type: success}
    fail: {type: fail}
"""


class Report:
    """The report file of the run and the DOM chromium drew from it."""

    def __init__(self, page: Path, dom: str) -> None:
        self.page = page
        self.html = page.read_text(encoding="utf-8")
        self.dom = dom

    def statuses(self) -> dict[str, str]:
        """Each step drawn in the graph, with its status (``""`` for a step that never ran)."""
        found = {}
        for tag in re.findall(r'<g class="step"[^>]*>', self.dom):
            step = re.search(r'data-step="([^"]*)"', tag)
            status = re.search(r'data-status="([^"]*)"', tag)
            assert step
            found[step[1]] = status[1] if status else ""
        return found

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.dom))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    project = tmp_path_factory.mktemp("report")
    (project / "steps.py").write_text(STEPS)
    (project / "pipeline.yaml").write_text(PIPELINE)
    run = run_magnus("execute", "-f", "pipeline.yaml", "--run-id", "seen", cwd=project)
    assert run.returncode == 0, run.stdout + run.stderr
    made = run_magnus("report", "seen", cwd=project)
    assert made.returncode == 0, made.stderr
    page = project / made.stdout.strip()
    assert page.name == "report-seen.html"
    print(f"\nreport of a 1,000-element map: {page.stat().st_size / 1024:.0f} KiB")
    print(f"screenshot: {screenshot(page, project / 'report-seen.png')}")
    return Report(page, rendered_dom(page))


def test_every_step_is_drawn_with_its_status(report: Report) -> None:
    statuses = report.statuses()
    assert {
        "make": "SUCCESS",
        "train": "SUCCESS",
        "train.left.fit": "SUCCESS",
        "train.right.fit": "SUCCESS",
        "squares": "SUCCESS",
        "flaky": "SUCCESS",
        "broken": "FAIL",
        "recover": "SUCCESS",
        "success": "SUCCESS",
    }.items() <= statuses.items()
    # The map starts closed: its 1,000 elements are one box with their counts.
    assert report.count(r'data-map-counts="1000 SUCCESS"') >= 1
    assert "squares.map_variable_placeholder.square" not in statuses
    # The on_failure edge is drawn.
    assert 'data-edge="broken -&gt; recover"' in report.dom


def test_timeline_bars(report: Report) -> None:
    # One bar per attempt: 1,000 map elements, make, two fits, two of flaky, broken, recover.
    assert report.count(r"<rect [^>]*data-bar=") == 1000 + 7
    bars = {
        label: float(x)
        for x, label in re.findall(
            r'<rect class="bar \w+" x="([\d.]+)"[^>]*data-bar="([^"]+)"', report.dom
        )
    }
    # Bars are placed by start time: the steps in the order they ran.
    assert bars["make"] <= bars["train.left.fit"] <= bars["train.right.fit"] < bars["flaky"]
    assert bars["squares.0.square"] < bars["squares.999.square"] <= bars["broken"]
    assert report.count(r'<rect [^>]*data-bar="flaky" data-attempt="\d" data-status="FAIL"') == 1
    # A row per step; the local executor ran one step at a time, so nothing needed a second row.
    assert 'data-lanes="7"' in report.dom


def test_step_details(report: Report) -> None:
    dom = report.dom
    flaky = dom[dom.index('data-detail="flaky"') :]
    flaky = flaky[: flaky.index("</div>")]
    assert 'data-attempt="1" data-status="FAIL"' in flaky
    assert 'data-attempt="2" data-status="SUCCESS"' in flaky
    assert re.search(r'data-error="broken"[^>]*>ValueError: this step is broken beyond repair', dom)
    points = re.findall(r'data-point="([^"]+)"', dom)
    assert points == ["0,1", "1,0.5", "2,0.3333333333333333", "3,0.25", "4,0.2"]
    # The map's elements: counted, the slowest ten listed.
    assert re.search(r'<div data-map-counts="1000 SUCCESS">', dom)
    assert report.count(r"<tr data-slow=") == 10
    # Catalog data with its hash, the run's identity.
    assert re.search(r'data-catalog="make.execution.log"', dom)
    assert 'data-run-status="SUCCESS"' in dom


def test_the_file_loads_nothing_from_elsewhere(report: Report) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?[a-z]+://""", report.html, re.IGNORECASE)
    assert "<link" not in report.html and "@import" not in report.html
    embedded = re.search(r'id="magnus-data">(.*?)</script>', report.html, re.DOTALL)
    assert embedded and json.loads(embedded[1])["run"]["run_id"] == "seen"


def test_unknown_run_is_one_line(tmp_path: Path) -> None:
    result = run_magnus("report", "no-such-run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no-such-run" in result.stderr


PARALLEL = """
dag:
  start_at: both
  steps:
    both:
      type: parallel
      next: each
      branches:
        left:
          start_at: nap
          steps:
            nap: {type: task, command_type: shell, command: "sleep 0.5", next: success}
            success: {type: success}
            fail: {type: fail}
        right:
          start_at: nap
          steps:
            nap: {type: task, command_type: shell, command: "sleep 0.5", next: success}
            success: {type: success}
            fail: {type: fail}
    each:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: nap
        steps:
          nap: {type: task, command_type: shell, command: "sleep 0.5", next: success}
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""

PARALLEL_CONFIG = """
executor:
  type: local
  config:
    enable_parallel: true
    max_workers: 4
"""


def test_attempts_that_ran_at_once_overlap(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PARALLEL)
    (tmp_path / "parameters.yaml").write_text("items: [1, 2, 3, 4]\n")
    (tmp_path / "config.yaml").write_text(PARALLEL_CONFIG)
    config = ("-c", "config.yaml")
    run = run_magnus(
        "execute",
        "-f",
        "pipeline.yaml",
        "-p",
        "parameters.yaml",
        "--run-id",
        "wide",
        *config,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    made = run_magnus("report", "wide", "-o", "wide.html", *config, cwd=tmp_path)
    assert made.returncode == 0 and made.stdout == "wide.html\n", made.stderr
    dom = rendered_dom(tmp_path / "wide.html")
    screenshot(tmp_path / "wide.html", tmp_path / "wide.png")
    spans = {
        label: (float(x), float(x) + float(width))
        for x, width, label in re.findall(
            r'<rect class="bar \w+" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]*data-bar="([^"]+)"',
            dom,
        )
    }
    assert set(spans) == {
        "both.left.nap",
        "both.right.nap",
        *(f"each.{i}.nap" for i in range(1, 5)),
    }

    def overlap(labels: list[str]) -> bool:
        return max(spans[label][0] for label in labels) < min(spans[label][1] for label in labels)

    assert overlap(["both.left.nap", "both.right.nap"])
    assert overlap([f"each.{i}.nap" for i in range(1, 5)])
    # The four elements of the map ran at once: four rows for its step, one per branch above.
    assert 'data-lanes="6"' in dom


def test_a_retry_names_the_runs_it_retried(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(
        "dag:\n  start_at: check\n  steps:\n"
        '    check: {type: task, command_type: shell, command: "test -f ok", next: success}\n'
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    assert run_magnus("execute", "-f", "pipeline.yaml", "--run-id", "one", cwd=tmp_path).returncode
    assert run_magnus("retry", "one", "--run-id", "two", cwd=tmp_path).returncode
    (tmp_path / "ok").touch()
    assert run_magnus("retry", "two", "--run-id", "three", cwd=tmp_path).returncode == 0
    assert run_magnus("report", "three", cwd=tmp_path).returncode == 0
    dom = rendered_dom(tmp_path / "report-three.html")
    assert '<tr data-original-run="two" data-retry-chain="two one">' in dom
    assert re.search(r'data-step="check" data-type="task" data-status="SUCCESS"', dom)
