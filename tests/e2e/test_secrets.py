"""Secrets reach tasks and appear nowhere else: run log, execution logs, catalog, console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import show_run

pytestmark = pytest.mark.e2e

SECRET = "pa55-word-xyzzy"

STEPS = """
import sys

import magnus


def leak():
    secret = magnus.get_secret("API_TOKEN")
    print(f"the token is {secret}")
    print(f"split {secret[:5]}", end="")
    print(f"{secret[5:]} done", file=sys.stderr)
    magnus.track_this(token=secret, length=len(secret))
    return {"leaked": secret, "nested": {"inside": [f"x{secret}y"]}}


def explode():
    raise ValueError(f"cannot use {magnus.get_secret('API_TOKEN')}")


def missing():
    return magnus.get_secret("NOT_THERE")
"""

PIPELINE = """
dag:
  start_at: leak
  steps:
    leak: {type: task, command: steps.leak, next: explode}
    explode: {type: task, command: steps.explode, on_failure: missing, next: success}
    missing: {type: task, command: steps.missing, next: success}
    success: {type: success}
    fail: {type: fail}
"""


def _everything_written(project: Path) -> str:
    texts = []
    for folder in (project / ".run_log_store", project / ".catalog"):
        for path in folder.rglob("*"):
            if path.is_file():
                texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def test_a_secret_served_to_a_task_is_masked_everywhere(project: Path, run_magnus: Any) -> None:
    (project / "steps.py").write_text(STEPS)
    (project / "p.yaml").write_text(PIPELINE)
    (project / ".env").write_text(f'export API_TOKEN="{SECRET}"  # the token\n')
    (project / "c.yaml").write_text("secrets: {type: dotenv, config: {location: .env}}\n")
    result = run_magnus(
        "execute", "-f", "p.yaml", "-c", "c.yaml", "--run-id", "secret-run", cwd=project
    )
    assert result.returncode == 1, result.stdout + result.stderr
    console = result.stdout + result.stderr
    written = _everything_written(project)
    assert SECRET not in console
    assert SECRET not in written
    assert SECRET[:5] not in written.replace("********", "")  # no half-secret either

    log = show_run("secret-run", project, "-c", "c.yaml")
    leak = log["steps"]["leak"]
    assert leak["status"] == "SUCCESS"
    # a returned secret is recorded as a reference to it, resolved again by the step reading it
    assert log["parameters"]["leaked"] == {"__magnus_secret__": "API_TOKEN"}
    assert log["parameters"]["nested"] == {
        "inside": [{"__magnus_secret__": ["x", "API_TOKEN", "y"]}]
    }
    assert leak["user_defined_metrics"] == {"token": "********", "length": len(SECRET)}
    explode = log["steps"]["explode"]["attempts"][0]
    assert explode["message"] == "ValueError: cannot use ********"
    missing = log["steps"]["missing"]
    assert missing["status"] == "FAIL"
    assert "NOT_THERE" in missing["attempts"][0]["message"]
    assert "dotenv" in missing["attempts"][0]["message"]
    execution_log = (project / ".catalog" / "secret-run" / "leak.execution.log").read_text()
    assert "the token is ********" in execution_log
    assert "split ******** done" in execution_log
    # the secrets provider's configuration is recorded; no value is
    assert log["run_config"]["secrets_handler"] == {
        "service_name": "dotenv",
        "service_type": "secrets",
        "location": ".env",
    }
