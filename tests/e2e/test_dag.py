"""``magnus dag``: a pipeline's picture before it runs, from YAML or from an SDK script."""

from __future__ import annotations

import re
from pathlib import Path

from browser import rendered_dom
from helpers import run_magnus

PIPELINE = """
dag:
  start_at: prepare
  steps:
    prepare: {type: task, command_type: shell, command: "true", next: train}
    train:
      type: parallel
      next: each
      branches:
        left:
          start_at: fit
          steps:
            fit: {type: task, command_type: shell, command: "true", next: success}
            success: {type: success}
            fail: {type: fail}
    each:
      type: map
      iterate_on: chunks
      iterate_as: chunk
      next: risky
      branch:
        start_at: render
        steps:
          render: {type: task, command_type: shell, command: "true", next: success}
          success: {type: success}
          fail: {type: fail}
    risky: {type: task, command_type: shell, command: "false", on_failure: mend, next: success}
    mend: {type: task, command_type: shell, command: "true", next: success}
    success: {type: success}
    fail: {type: fail}
"""

SCRIPT = """
from magnus import Pipeline, ShellTask

first = ShellTask(name="first", command="touch ran.marker")
second = ShellTask(name="second", command="false", on_failure="rescue")
rescue = ShellTask(name="rescue", command="true", terminate_with_success=True)
pipeline = Pipeline(steps=[first, second, rescue])
run_log = pipeline.execute()
print(run_log.status)
"""


def _dag(project: Path, *args: str) -> str:
    result = run_magnus("dag", *args, cwd=project)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_mermaid_and_dot_from_yaml(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    mermaid = _dag(tmp_path, "-f", "pipeline.yaml").splitlines()
    assert mermaid[0] == "flowchart TD"
    for edge in [
        "s_prepare --> s_train",
        "s_train --> s_each",
        "s_each --> s_risky",
        "s_risky -. on_failure .-> s_mend",
        "s_train -.-> s_train_left_fit",
        "s_each -.-> s_each_render",
        "s_each_render --> s_each_success",
    ]:
        assert f"  {edge}" in mermaid or f"    {edge}" in mermaid, edge
    assert '  subgraph s_each__0 ["each chunk"]' in mermaid

    dot = _dag(tmp_path, "-f", "pipeline.yaml", "--format", "dot")
    assert dot.startswith("digraph pipeline {")
    assert '"prepare" -> "train";' in dot
    assert '"risky" -> "mend" [style=dashed, color=red, label="on_failure"];' in dot
    assert '"each" -> "each.map_variable_placeholder.render" [style=dotted];' in dot
    assert dot.count("subgraph cluster_") == 2


def test_html_from_yaml_in_a_browser(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    assert _dag(tmp_path, "-f", "pipeline.yaml", "--format", "html", "-o", "dag.html") == (
        "dag.html\n"
    )
    dom = rendered_dom(tmp_path / "dag.html")
    steps = re.findall(r'<g class="step" data-step="([^"]+)"', dom)
    assert {"prepare", "train", "train.left.fit", "each", "risky", "mend", "success"} <= set(steps)
    # Before a run there is no status to colour by; the map starts closed.
    assert "data-status" not in " ".join(re.findall(r'<g class="step"[^>]*>', dom))
    assert "each.map_variable_placeholder.render" not in steps
    assert 'data-edge="risky -&gt; mend"' in dom


def test_from_an_sdk_script_nothing_runs(tmp_path: Path) -> None:
    (tmp_path / "pipeline.py").write_text(SCRIPT)
    mermaid = _dag(tmp_path, "-f", "pipeline.py")
    assert "  s_first --> s_second\n" in mermaid
    assert "  s_second -. on_failure .-> s_rescue\n" in mermaid
    assert "  s_rescue --> s_success\n" in mermaid
    # The script stopped at Pipeline.execute(): no step ran, no run was recorded.
    assert not (tmp_path / "ran.marker").exists()
    assert not (tmp_path / ".run_log_store").exists()


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("x = 1\n")
    for args, named in [
        (["-f", "missing.yaml"], "missing.yaml"),
        (["-f", "empty.py"], "empty.py"),
        (["-f", "missing.yaml", "--format", "png"], "png"),
    ]:
        result = run_magnus("dag", *args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert named in result.stderr, result.stderr
    # magnus' own errors are one line (click's usage errors print the usage too).
    for name in ["missing.yaml", "empty.py"]:
        result = run_magnus("dag", "-f", name, cwd=tmp_path)
        assert result.stderr.strip().count("\n") == 0, result.stderr
