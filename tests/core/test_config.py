"""Configuration files: the resolution order, unknown keys, variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from magnus import config as config_mod
from magnus.entrypoints import build_services
from magnus.exceptions import ConfigurationError
from magnus.plugins import get_plugins


def test_built_in_defaults_without_any_file(tmp_path: Path) -> None:
    blocks = config_mod.resolve_services(None, tmp_path)
    assert {k: b.type for k, b in blocks.items()} == {
        "executor": "local",
        "run_log_store": "chunked-fs",
        "catalog": "file-system",
        "secrets": "do-nothing",
        "experiment_tracker": "do-nothing",
    }


def test_file_beats_project_defaults_beats_built_ins(tmp_path: Path) -> None:
    (tmp_path / "magnus-config.yaml").write_text(
        "defaults:\n"
        "  run_log_store: {type: file-system, config: {log_folder: project-logs}}\n"
        "  catalog: {type: do-nothing}\n"
    )
    chosen = tmp_path / "run.yaml"
    chosen.write_text("catalog:\n  type: file-system\n  config: {catalog_location: here}\n")
    blocks = config_mod.resolve_services(str(chosen), tmp_path)
    assert blocks["catalog"].type == "file-system"
    assert blocks["catalog"].config == {"catalog_location": "here"}
    assert blocks["run_log_store"].config == {"log_folder": "project-logs"}
    assert blocks["executor"].type == "local"


def test_an_empty_block_falls_through(tmp_path: Path) -> None:
    chosen = tmp_path / "run.yaml"
    chosen.write_text("catalog:\nexecutor:\n  type: local\n  config:\n")
    blocks = config_mod.resolve_services(str(chosen), tmp_path)
    assert blocks["catalog"].type == "file-system"
    assert blocks["executor"].config == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("catalogue:\n  type: file-system\n", "unknown key 'catalogue'"),
        ("catalog:\n  type: file-system\n  settings: {}\n", "unknown key 'catalog.settings'"),
        ("catalog:\n  config: {}\n", "missing required key 'catalog.type'"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    chosen = tmp_path / "bad.yaml"
    chosen.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        config_mod.resolve_services(str(chosen), tmp_path)
    assert fragment in str(info.value)
    assert "bad.yaml" in str(info.value)


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        (
            "catalog: {type: file-system, config: {colour: red}}",
            "catalog service 'file-system': unknown key 'colour'",
        ),
        (
            "run_log_store: {type: chunked-fs, config: {folder: x}}",
            "run_log_store service 'chunked-fs': unknown key 'folder'",
        ),
        (
            "executor: {type: local, config: {enable_parallel: maybe}}",
            "executor service 'local': key 'enable_parallel'",
        ),
        (
            "secrets: {type: do-nothing, config: {location: .env}}",
            "secrets service 'do-nothing': unknown key 'location'",
        ),
        (
            "experiment_tracker: {type: do-nothing, config: {x: 1}}",
            "experiment_tracker service 'do-nothing': unknown key 'x'",
        ),
        (
            "catalog: {type: s4}",
            "No catalog service of type 's4' is installed (installed: do-nothing, file-system",
        ),
    ],
)
def test_every_service_rejects_unknown_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: str, fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    chosen = tmp_path / "c.yaml"
    chosen.write_text(block + "\n")
    with pytest.raises(ConfigurationError) as info:
        build_services(str(chosen), get_plugins())
    assert fragment in str(info.value)


def test_configuration_file_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_mod.configuration_file_for_cli(None) is None
    monkeypatch.setenv("MAGNUS_CONFIGURATION_FILE", "env.yaml")
    assert config_mod.configuration_file_for_cli(None) == "env.yaml"
    assert config_mod.configuration_file_for_cli("explicit.yaml") == "explicit.yaml"
    assert config_mod.configuration_file_for_sdk("argument.yaml") == "env.yaml"
    monkeypatch.delenv("MAGNUS_CONFIGURATION_FILE")
    assert config_mod.configuration_file_for_sdk("argument.yaml") == "argument.yaml"


def test_variables_and_strict_substitution() -> None:
    variables = config_mod.collect_variables(
        {"MAGNUS_VAR_Image": "magnus:demo", "MAGNUS_PRM_x": "1", "HOME": "/root"}
    )
    assert variables == {"Image": "magnus:demo"}
    data = {"image": "$Image", "args": ["${Image}-x", "$$literal"], "n": 3}
    assert config_mod.substitute_variables(data, variables, "executor") == {
        "image": "magnus:demo",
        "args": ["magnus:demo-x", "$literal"],
        "n": 3,
    }
    with pytest.raises(
        ConfigurationError, match=r"executor.image: variable \$missing .*MAGNUS_VAR_missing"
    ):
        config_mod.substitute_variables({"image": "$missing"}, variables, "executor")
