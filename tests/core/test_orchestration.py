"""The orchestrator callback contract: the command line accepts what ``orchestration`` names."""

from __future__ import annotations

from typing import Any

import click
import pytest

from magnus import orchestrated, orchestration
from magnus.cli import cli
from magnus.executors import leaf


def _parse(line: list[str]) -> dict[str, Any]:
    """The parameters the command line gives the command ``line`` calls (nothing runs)."""
    command = cli.commands[line[0]]
    with click.Context(cli) as parent:
        return dict(command.make_context(line[0], line[1:], parent=parent).params)


@pytest.mark.parametrize("command", orchestration.COMMANDS)
def test_every_command_and_its_alias_is_registered_hidden(command: str) -> None:
    names = orchestration.command_names(command)
    assert names[0] == command
    assert all(name in cli.commands and cli.commands[name].hidden for name in names)
    assert {cli.commands[name] for name in names} == {cli.commands[command]}


def test_hyphenated_aliases() -> None:
    assert orchestration.command_names("execute_single_node") == (
        "execute_single_node",
        "execute-single-node",
    )
    assert orchestration.command_names("fan") == ("fan",)


def test_fan_accepts_exactly_the_fan_modes() -> None:
    mode = next(p for p in cli.commands[orchestration.FAN].params if p.name == "mode")
    assert isinstance(mode.type, click.Choice)
    assert tuple(mode.type.choices) == orchestration.FAN_MODES


def test_a_full_callback_command_parses_as_written() -> None:
    line = orchestration.callback_command(
        ["magnus"],
        orchestration.FAN,
        "run-1",
        "outer.map_variable_placeholder.inner%step",
        log_level="INFO",
        mode=orchestration.FAN_OUT,
        pipeline_file="pipeline.yaml",
        map_variable='{"chunk": 3}',
        configuration_file="argo.yaml",
        parameters_file="parameters.yaml",
        tag="nightly",
        reuse=True,
    )
    assert line[0] == "magnus"
    assert _parse(line[1:]) == {
        "run_id": "run-1",
        "step_name": "outer.map_variable_placeholder.inner%step",
        "mode": "out",
        "map_variable": '{"chunk": 3}',
        "pipeline_file": "pipeline.yaml",
        "config_file": "argo.yaml",
        "parameters_file": "parameters.yaml",
        "log_level": "INFO",
        "tag": "nightly",
        "reuse": True,
        # options a renderer appends after the callback command, left at their defaults
        "then_success": False,
        "batch_size": 0,
        "labelled": False,
    }


@pytest.mark.parametrize("command", orchestration.COMMANDS[:2])
def test_empty_options_are_left_out(command: str) -> None:
    line = orchestration.callback_command([], command, "r", "step", log_level="WARNING")
    assert line == [command, "r", "step", "--log-level", "WARNING"]
    assert _parse(line)["pipeline_file"] == ""


def test_the_names_core_used_before_stay_importable() -> None:
    assert orchestrated.MAP_INDICES_ENV == orchestration.MAP_INDICES_ENV == "MAGNUS_MAP_INDICES"
    assert orchestrated.MAP_INDICES_FILE_ENV == "MAGNUS_MAP_INDICES_FILE"
    assert leaf.ATTEMPT_ENV == orchestration.ATTEMPT_ENV == "MAGNUS_STEP_ATTEMPT"
