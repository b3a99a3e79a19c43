"""``magnus execute -c argo.yaml`` renders the workflow and runs nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helpers
import pytest
import yaml

PIPELINE = {
    "dag": {
        "start_at": "a",
        "steps": {
            "a": {"type": "stub", "next": "success"},
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
}


def _project(tmp_path: Path, **top_level: Any) -> None:
    """``pipeline.yaml`` and an ``argo.yaml`` whose stores are on a (pretended) volume."""
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE))
    config = {
        "executor": {
            "type": "argo",
            "config": {
                "image": "img:1",
                "persistent_volumes": [{"name": "claim", "mount_path": str(tmp_path)}],
            },
        },
        "run_log_store": {"type": "chunked-fs", "config": {"log_folder": str(tmp_path / "logs")}},
        "catalog": {"type": "file-system", "config": {"catalog_location": str(tmp_path / "cat")}},
        **top_level,
    }
    (tmp_path / "argo.yaml").write_text(yaml.safe_dump(config))


def test_execute_writes_the_workflow_and_creates_no_run_log(tmp_path: Path) -> None:
    _project(tmp_path)
    result = helpers.run_magnus("execute", "-f", "pipeline.yaml", "-c", "argo.yaml", cwd=tmp_path)
    assert "argo-pipeline.yaml" in result.stdout
    assert yaml.safe_load((tmp_path / "argo-pipeline.yaml").read_text())["kind"] == "Workflow"
    assert not (tmp_path / "logs").exists(), "rendering created a run log"
    assert result.returncode == 0, result.stderr


def test_execute_refuses_an_incompatible_store_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE))
    config = {"executor": {"type": "argo", "config": {"image": "img:1"}}}
    (tmp_path / "argo.yaml").write_text(yaml.safe_dump(config))
    result = helpers.run_magnus("execute", "-f", "pipeline.yaml", "-c", "argo.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "'chunked-fs' run log store keeps its data in '.run_log_store'" in result.stderr
    assert not (tmp_path / "argo-pipeline.yaml").exists()
    assert not (tmp_path / ".run_log_store").exists()


def test_a_run_id_given_where_nothing_runs_is_refused(tmp_path: Path) -> None:
    _project(tmp_path)
    result = helpers.run_magnus(
        "execute", "-f", "pipeline.yaml", "-c", "argo.yaml", "--run-id", "mine", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "--run-id mine" in result.stderr and "run_id argument" in result.stderr
    assert not (tmp_path / "argo-pipeline.yaml").exists()


def test_validate_reports_the_incompatibility(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE))
    config = {"executor": {"type": "argo", "config": {"image": "img:1"}}}
    (tmp_path / "argo.yaml").write_text(yaml.safe_dump(config))
    result = helpers.run_magnus("validate", "-f", "pipeline.yaml", "-c", "argo.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "persistent_volumes" in result.stderr


def test_magnus_plugins_lists_the_argo_executor(tmp_path: Path) -> None:
    result = helpers.run_magnus("plugins", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "magnus-executor-argo" in result.stdout
    assert "argo" in result.stdout


@pytest.mark.parametrize(
    ("options", "configured", "flag"),
    [
        (["--reuse"], {}, "--reuse"),
        ([], {"reuse": True}, "--reuse"),
        (["--no-reuse"], {"reuse": True}, "--no-reuse"),
    ],
)
def test_the_run_level_reuse_reaches_the_container_that_starts_the_run(
    tmp_path: Path, options: list[str], configured: dict[str, Any], flag: str
) -> None:
    _project(tmp_path, **configured)
    result = helpers.run_magnus(
        "execute", *options, "-f", "pipeline.yaml", "-c", "argo.yaml", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    workflow = yaml.safe_load((tmp_path / "argo-pipeline.yaml").read_text())
    commands = {
        t["name"]: t["container"]["command"]
        for t in workflow["spec"]["templates"]
        if "container" in t
    }
    # The first container creates the run log, recording run_config.reuse; the others read it.
    assert flag in commands["a"]
    assert [name for name, command in commands.items() if flag in command] == ["a"]
