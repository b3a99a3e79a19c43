"""Node kinds are plugins: a third party's kind builds, runs and re-runs like magnus' own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_magnus

ECHO_PLUGIN = """
from typing import ClassVar

from magnus import hookimpl
from magnus.nodes import ExecutableNode
from magnus.tasks import ShellTaskType


class EchoNode(ExecutableNode):
    \"\"\"Says its message, and passes it on as the parameter ``said``.\"\"\"

    node_type: ClassVar[str] = "echo"

    message: str

    def definition(self):
        return {**super().definition(), "message": self.message}

    def task(self):
        return ShellTaskType(command=f"echo {self.message}; export MAGNUS_PRM_said={self.message}")


@hookimpl
def register_node_types():
    return [EchoNode]
"""

PIPELINE = """
dag:
  start_at: greet
  steps:
    greet: {type: echo, message: hello, next: check}
    check:
      type: task
      command_type: shell
      command: "test $MAGNUS_PRM_said = '\\"hello\\"'"
      next: success
    success: {type: success}
    fail: {type: fail}
"""

SDK = """
from magnus import Pipeline, ShellTask
from magnus.sdk import Step

pipeline = Pipeline(
    steps=[
        Step(name="greet", type="echo", message="hello"),
        ShellTask(name="check", command="test $MAGNUS_PRM_said = '\\"hello\\"'"),
    ]
)
run_log = pipeline.execute(run_id="from-sdk")
print("STATUS", run_log.status)
"""


@pytest.fixture
def echo_project(project: Path) -> Path:
    (project / "echo_plugin.py").write_text(ECHO_PLUGIN)
    (project / "p.yaml").write_text(PIPELINE)
    (project / "sdk_echo.py").write_text(SDK)
    return project


ENV = {"MAGNUS_PLUGINS": "echo_plugin"}


def _shown(run_id: str, cwd: Path) -> dict:
    result = run_magnus("runs", "show", run_id, "--json", cwd=cwd, env=ENV)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_node_kind_from_a_plugin_runs_from_yaml(echo_project: Path) -> None:
    result = run_magnus(
        "execute", "-f", "p.yaml", "--run-id", "from-yaml", cwd=echo_project, env=ENV
    )
    assert result.returncode == 0, result.stdout + result.stderr
    log = _shown("from-yaml", echo_project)
    greet = log["steps"]["greet"]
    assert greet["step_type"] == "echo" and greet["status"] == "SUCCESS"
    assert greet["attempts"][0]["output_parameters"] == {"said": "hello"}
    assert log["steps"]["check"]["status"] == "SUCCESS"
    assert log["run_config"]["dag"]["steps"]["greet"]["message"] == "hello"
    output = echo_project / ".catalog" / "from-yaml" / "greet.execution.log"
    assert output.read_text().strip() == "hello"


def test_a_node_kind_from_a_plugin_runs_from_the_sdk(echo_project: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "sdk_echo.py"],
        cwd=echo_project,
        env={**__import__("os").environ, **ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "STATUS SUCCESS" in result.stdout, result.stdout + result.stderr
    log = _shown("from-sdk", echo_project)
    assert log["steps"]["greet"]["step_type"] == "echo"
    assert log["parameters"]["said"] == "hello"


def test_a_run_of_a_plugin_kind_is_rebuilt_from_its_log_and_retried(echo_project: Path) -> None:
    (echo_project / "p.yaml").write_text(PIPELINE.replace(r"\"hello\"", r"\"bye\""))
    failed = run_magnus("execute", "-f", "p.yaml", "--run-id", "fails", cwd=echo_project, env=ENV)
    assert failed.returncode == 1
    # The retry rebuilds the pipeline from run_config.dag, the echo step included.
    retried = run_magnus("retry", "fails", "--run-id", "again", cwd=echo_project, env=ENV)
    assert retried.returncode == 1, retried.stderr
    log = _shown("again", echo_project)
    assert log["steps"]["greet"]["mock"] is True  # reused: it succeeded in the original
    assert log["steps"]["check"]["status"] == "FAIL"


def test_an_unknown_kind_names_the_installed_ones(echo_project: Path) -> None:
    result = run_magnus("validate", "-f", "p.yaml", cwd=echo_project)
    assert result.returncode == 2
    assert "unknown type 'echo'" in result.stderr
    assert "task" in result.stderr and "map" in result.stderr
