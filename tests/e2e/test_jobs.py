"""Jobs: a single task without a pipeline, run from a job file or the SDK, with a pipeline's run log.

One test per behaviour, sharing runs where a run proves several things: the YAML job's run log
(code identity, parameters, catalog hashes, execution log, the unchained plan), its SDK twin
recording the same graph, shell and notebook jobs, a job failing with two attempts and
``magnus retry`` of it after the input is fixed, and bad job files refused in one line.
"""

from __future__ import annotations

import hashlib
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import run_magnus, show_run

pytestmark = pytest.mark.e2e

JOB_RUN = "yaml-job"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _catalog(step: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in step["data_catalog"]}


def test_a_yaml_job_records_what_a_pipeline_step_does_and_its_sdk_twin_the_same_graph(
    project: Path,
) -> None:
    result = run_magnus(
        "execute-job",
        "-f",
        "examples/job.yaml",
        "-p",
        "examples/parameters.yaml",
        "--run-id",
        JOB_RUN,
        "--tag",
        "nightly",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    run = show_run(JOB_RUN, project)
    assert run["status"] == "SUCCESS"
    assert run["tag"] == "nightly"
    assert run["run_config"]["execution_plan"] == "unchained"
    assert run["run_config"]["pipeline_file"] == "examples/job.yaml"
    assert run["run_config"]["dag"]["start_at"] == "prepare"
    assert sorted(run["steps"]) == ["prepare", "success"]
    step = run["steps"]["prepare"]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    code = step["code_identities"][0]
    assert (code["code_identifier"], code["code_identifier_dependable"]) == (head, True)
    (attempt,) = step["attempts"]
    assert attempt["parameters"] == {"rows": 5}
    assert attempt["output_parameters"] == {"rows": 5, "source": "data/rows.csv"}
    assert run["parameters"]["source"] == "data/rows.csv"
    catalog = _catalog(step)
    assert catalog["data/rows.csv"]["data_hash"] == _sha256(project / "data" / "rows.csv")
    log = catalog["prepare.execution.log"]
    stored = project / ".catalog" / log["catalog_relative_path"]
    assert log["data_hash"] == _sha256(stored)
    assert "prepared 5 rows" in stored.read_text()

    # The SDK twin of examples/job.yaml builds the same one-step graph.
    from examples.functions import prepare

    from magnus import Catalog, PythonJob

    twin = PythonJob(name="prepare", function=prepare, catalog=Catalog(put=["data/rows.csv"]))
    run_log = twin.execute(parameters_file="examples/parameters.yaml", run_id="sdk-job")
    assert run_log is not None and run_log.status == "SUCCESS"
    assert run_log.run_config["execution_plan"] == "unchained"
    assert run_log.dag_hash == run["dag_hash"]
    assert run_log.steps["prepare"].attempts[0].parameters == {"rows": 5}


def test_shell_and_notebook_jobs_from_the_sdk(project: Path) -> None:
    from magnus import Catalog, NotebookJob, ShellJob

    (project / "rows.yaml").write_text("rows: 7\n")
    shell = ShellJob(
        command="mkdir -p data && echo rows=$MAGNUS_PRM_rows > data/shell.txt",
        catalog=Catalog(put=["data/shell.txt"]),
    )
    run_log = shell.execute(parameters_file="rows.yaml")
    assert run_log is not None and run_log.status == "SUCCESS"
    assert list(run_log.steps) == ["job", "success"]  # a job's step is "job" unless named
    written = project / "data" / "shell.txt"
    assert written.read_text() == "rows=7\n"
    catalog = {entry.name: entry for entry in run_log.steps["job"].data_catalog}
    assert catalog["data/shell.txt"].data_hash == _sha256(written)

    notebook = NotebookJob(name="greet", notebook="examples/notebooks/greet.ipynb")
    run_log = notebook.execute()
    assert run_log is not None and run_log.status == "SUCCESS"
    assert run_log.run_config["execution_plan"] == "unchained"
    assert run_log.parameters["message"] == "Hello, world!"
    names = {entry.name for entry in run_log.steps["greet"].data_catalog}
    assert "examples/notebooks/greet_out.ipynb" in names


DIVIDE = """
def divide(numerator: int, divisor: int) -> dict:
    return {"quotient": numerator // divisor}
"""

FLAKY_JOB = """
job:
  name: divide
  command: steps.divide
  max_attempts: 2
"""


def test_a_failing_job_records_its_attempts_and_a_retry_with_fixed_input_succeeds(
    project: Path,
) -> None:
    (project / "steps.py").write_text(DIVIDE)
    (project / "divide.yaml").write_text(FLAKY_JOB)
    (project / "zero.yaml").write_text("numerator: 12\ndivisor: 0\n")
    (project / "fixed.yaml").write_text("divisor: 4\n")
    failed = run_magnus(
        "execute-job", "-f", "divide.yaml", "-p", "zero.yaml", "--run-id", "div-0", cwd=project
    )
    assert failed.returncode == 1, failed.stderr
    run = show_run("div-0", project)
    assert run["status"] == "FAIL"
    attempts = run["steps"]["divide"]["attempts"]
    assert [(a["attempt_number"], a["status"]) for a in attempts] == [(1, "FAIL"), (2, "FAIL")]
    assert all("ZeroDivisionError" in a["message"] for a in attempts), attempts

    retried = run_magnus("retry", "div-0", "-p", "fixed.yaml", "--run-id", "div-4", cwd=project)
    assert retried.returncode == 0, retried.stderr
    run = show_run("div-4", project)
    assert run["status"] == "SUCCESS"
    assert (run["original_run_id"], run["use_cached"]) == ("div-0", True)
    assert run["run_config"]["execution_plan"] == "unchained"
    (attempt,) = run["steps"]["divide"]["attempts"]
    assert attempt["parameters"] == {"numerator": 12, "divisor": 4}
    assert run["parameters"]["quotient"] == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "job:\n  command: examples.functions.prepare\n  next: report\n",
            "bad.yaml: job: key 'next'",
        ),
        ("job:\n  command_type: shell\n", "bad.yaml: job: missing required key 'command'"),
        ("job:\n  command: x.y\n  max_attempts: 0\n", "bad.yaml: job: key 'max_attempts'"),
        ("dag:\n  start_at: a\n", "bad.yaml: there is no top-level 'job' mapping"),
    ],
    ids=["next", "no-command", "max-attempts", "a-pipeline"],
)
def test_a_bad_job_file_exits_2_with_one_line_and_records_nothing(
    project: Path, content: str, expected: str
) -> None:
    (project / "bad.yaml").write_text(textwrap.dedent(content))
    result = run_magnus("execute-job", "-f", "bad.yaml", cwd=project)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (project / ".run_log_store").exists()
