"""A job (``magnus execute-job``) under ``executor: argo``: rendered as a Workflow, or a
CronWorkflow with a schedule, whose container runs the job's step from the job file; played, it
records the job's run log.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from executor_argo.argo_harness import SUCCEEDED, play
from executor_argo.argo_helpers import CONFIGS, command_of, option, templates_by_name
from helpers import show_run

from magnus import entrypoints

JOB_FILE = "examples/job.yaml"


def _render(job_file: str | Path, config: str | Path) -> dict[str, Any]:
    """What ``magnus execute-job -f job_file -c config`` renders."""
    run = entrypoints.prepare_job(configuration_file=str(config), job_file=str(job_file))
    executor: Any = run.executor  # the argo executor, which renders
    document: dict[str, Any] = yaml.safe_load(executor.render(run.context))
    return document


def test_a_job_renders_as_a_workflow_or_a_cron_workflow_running_its_step(
    in_repo: Path,
    write_yaml: Callable[[str, Any], Path],
    check_workflow: Callable[[dict[str, Any]], None],
) -> None:
    config = CONFIGS / "argo.yaml"
    document = _render(JOB_FILE, config)
    check_workflow(document)
    assert document["kind"] == "Workflow"
    command = command_of(templates_by_name(document)["prepare"])
    assert command[:4] == [
        "magnus",
        "execute_single_node",
        "{{workflow.parameters.run_id}}",
        "prepare",
    ]
    assert option(command, "--file") == JOB_FILE
    assert option(command, "--config-file") == str(config)

    scheduled = yaml.safe_load(config.read_text())
    scheduled["executor"]["config"]["schedule"] = "0 6 * * *"
    cron = _render(JOB_FILE, write_yaml("cron.yaml", scheduled))
    check_workflow(cron)
    assert cron["kind"] == "CronWorkflow"
    assert cron["spec"]["schedules"] == ["0 6 * * *"]
    assert command_of(templates_by_name(cron)["prepare"])[:4] == command[:4]


def test_a_played_job_workflow_records_the_job_s_run_log(
    tmp_path: Path, write_yaml: Callable[[str, Any], Path]
) -> None:
    # The stores on a claim every pod mounts: here the folder every played container shares.
    volume = {"name": "magnus-volume", "mount_path": str(tmp_path)}
    config = write_yaml(
        "argo.yaml",
        {
            "executor": {
                "type": "argo",
                "config": {"image": "img:1", "persistent_volumes": [volume]},
            },
            "run_log_store": {
                "type": "chunked-fs",
                "config": {"log_folder": str(tmp_path / "logs")},
            },
            "catalog": {
                "type": "file-system",
                "config": {"catalog_location": str(tmp_path / "cat")},
            },
        },
    )
    job = write_yaml(
        "count.yaml",
        {
            "job": {
                "command_type": "shell",
                "command": "echo counted > counted.txt",
                "catalog": {"put": ["counted.txt"]},
            }
        },
    )
    result = play(_render(job, config), cwd=tmp_path, uid="played-job")
    assert result.phase == SUCCEEDED, result.trace()
    run = show_run("played-job", tmp_path, "-c", str(config))
    assert run["status"] == "SUCCESS"
    assert run["run_config"]["execution_plan"] == "unchained"
    assert run["run_config"]["executor"]["service_name"] == "argo"
    step = run["steps"]["count"]  # named after the file's stem
    assert [a["status"] for a in step["attempts"]] == ["SUCCESS"]
    assert "counted.txt" in {entry["name"] for entry in step["data_catalog"]}
