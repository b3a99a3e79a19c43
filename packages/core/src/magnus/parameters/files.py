"""The parameters a run starts with: a YAML parameters file, overridden by the environment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from magnus.exceptions import ParameterError
from magnus.parameters.environment import from_environment
from magnus.parameters.values import PARAMETER_NAME_RULE, is_parameter_name, jsonable_value
from magnus.yaml_reader import read_yaml


def load_parameters_file(path: str | Path) -> dict[str, Any]:
    """The parameters in a YAML file whose top level maps parameter names to values.

    An empty file holds no parameters. Raises ``ParameterError`` naming the file when it
    cannot be read or is not valid YAML (``magnus.yaml_reader``), is not a mapping, or has a
    key that cannot name a parameter or a value that cannot travel as JSON (the key is named).
    """
    file = Path(path)
    data = read_yaml(file, "parameters file", ParameterError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(
            f"The parameters file {file} must map parameter names to values at its top "
            f"level, but it holds a {type(data).__name__}"
        )
    for key in data:
        if not isinstance(key, str):
            raise ParameterError(
                f"The parameters file {file} has the key {key!r} ({type(key).__name__}); "
                f"parameter names must be strings (quote it)"
            )
        if not is_parameter_name(key):
            raise ParameterError(
                f"The parameters file {file} has the key {key!r}, which cannot name a "
                f"parameter: {PARAMETER_NAME_RULE}"
            )
        try:  # refused here, before a run exists, rather than when the run log records it
            jsonable_value(key, data[key], "", "")
        except ParameterError as exc:
            raise ParameterError(
                f"The parameters file {file} has the parameter {key!r}, which a run cannot "
                f"carry: {exc}"
            ) from None
    return data


def initial_parameters(
    parameters_file: str | Path | None, environ: Mapping[str, str]
) -> dict[str, Any]:
    """The parameters a run starts with: the file, overridden by ``MAGNUS_PRM_*`` variables."""
    parameters = load_parameters_file(parameters_file) if parameters_file else {}
    parameters.update(from_environment(environ))
    return parameters
