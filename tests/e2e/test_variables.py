"""``MAGNUS_VAR_<name>`` fills ``$name`` placeholders in every service's configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_magnus

pytestmark = pytest.mark.e2e

CONFIG = """
run_log_store: {type: chunked-fs, config: {log_folder: $logs}}
catalog: {type: file-system, config: {catalog_location: "${where}/catalog"}}
secrets: {type: dotenv, config: {location: "${where}/$$secrets.env"}}
"""


def test_placeholders_fill_every_service_and_are_recorded(project: Path) -> None:
    (project / "vars.yaml").write_text(CONFIG)
    env = {"MAGNUS_VAR_logs": "my-logs", "MAGNUS_VAR_where": "shared"}
    result = run_magnus(
        "execute",
        "-f",
        "examples/python-tasks.yaml",
        "-c",
        "vars.yaml",
        "--run-id",
        "filled",
        cwd=project,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / "my-logs" / "filled" / "RunLog.json").is_file()
    assert any((project / "shared" / "catalog" / "filled").iterdir())
    shown = run_magnus("runs", "show", "filled", "--json", "-c", "vars.yaml", cwd=project, env=env)
    run_config = json.loads(shown.stdout)["run_config"]
    assert run_config["variables"] == {"logs": "my-logs", "where": "shared"}
    assert run_config["run_log_store"]["log_folder"] == "my-logs"
    assert run_config["catalog_handler"]["catalog_location"] == "shared/catalog"
    # $$ stands for a dollar sign itself
    assert run_config["secrets_handler"]["location"] == "shared/$secrets.env"


def test_an_undefined_variable_names_the_file_service_and_variable(project: Path) -> None:
    (project / "vars.yaml").write_text(CONFIG)
    result = run_magnus(
        "execute",
        "-f",
        "examples/python-tasks.yaml",
        "-c",
        "vars.yaml",
        cwd=project,
        env={"MAGNUS_VAR_where": "shared"},
    )
    assert result.returncode == 2
    assert "vars.yaml" in result.stderr and "run_log_store.config.log_folder" in result.stderr
    assert "MAGNUS_VAR_logs" in result.stderr and "Traceback" not in result.stderr
    assert not (project / ".run_log_store").exists() and not (project / "shared").exists()


def test_a_pypi_magnus_beside_magnus_core_is_warned_about(project: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "magnus-0.5.1.dist-info").mkdir(parents=True)
    (site / "magnus-0.5.1.dist-info" / "METADATA").write_text("Name: magnus\nVersion: 0.5.1\n")
    result = run_magnus(
        "validate", "-f", "examples/python-tasks.yaml", cwd=project, env={"PYTHONPATH": str(site)}
    )
    assert result.returncode == 0, result.stderr
    assert f"magnus from PyPI is installed in {site}" in result.stderr
    clean = run_magnus("validate", "-f", "examples/python-tasks.yaml", cwd=project)
    assert "PyPI" not in clean.stderr
