"""``magnus execute -c argo.yaml`` renders the workflow and runs nothing."""

from __future__ import annotations

from pathlib import Path

import helpers
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


def test_execute_writes_the_workflow_and_creates_no_run_log(tmp_path: Path) -> None:
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
    }
    (tmp_path / "argo.yaml").write_text(yaml.safe_dump(config))
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
