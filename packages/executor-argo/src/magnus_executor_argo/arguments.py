"""The workflow's arguments: magnus' run id, and the initial parameters exposed as inputs.

With ``expose_parameters_as_inputs`` the initial parameters that Argo can hold become workflow
arguments, editable at submit time; the container that starts the run reads them back through
``MAGNUS_PRM_`` variables.
"""

from __future__ import annotations

import json
import logging
import os
import re

from hera.workflows import models as m

from magnus.context import RunContext
from magnus.parameters import PARAMETER_PREFIX, initial_parameters
from magnus_executor_argo.config import ArgoConfig

# Every message of rendering comes from one logger, whichever module of the renderer says it.
logger = logging.getLogger("magnus_executor_argo.render")

RUN_ID_ARGUMENT = "run_id"
#: Argo's pattern for parameter names (inputs and workflow arguments)
PARAMETER_NAME = re.compile(r"[-a-zA-Z0-9_]+")


def exposed_parameters(config: ArgoConfig, context: RunContext) -> dict[str, str]:
    """The initial parameters that become workflow arguments: ``{name: argument value}``.

    A value is written as ``MAGNUS_PRM_`` reads it back: JSON text, except a string that
    is not itself JSON text, which stays bare (so ``english`` and not ``"english"``).
    """
    if not config.expose_parameters_as_inputs:
        return {}
    parameters = initial_parameters(context.parameters_file or None, os.environ)
    exposed: dict[str, str] = {}
    for key in sorted(parameters):
        value = parameters[key]
        if value is None or not isinstance(value, (str, int, float, bool)):
            continue  # lists and mappings stay in the parameters file
        if key == RUN_ID_ARGUMENT or not PARAMETER_NAME.fullmatch(key):
            logger.warning(
                "Parameter %r is not exposed as a workflow argument: %s",
                key,
                "run_id is magnus' own argument"
                if key == RUN_ID_ARGUMENT
                else "Argo parameter names are letters, digits, '-' and '_'",
            )
            continue
        exposed[key] = _argument_value(value)
    return exposed


def workflow_arguments(exposed: dict[str, str]) -> list[m.Parameter]:
    """The workflow's arguments: the run id (the workflow's uid), then the exposed parameters."""
    arguments = [m.Parameter(name=RUN_ID_ARGUMENT, value="{{workflow.uid}}")]
    arguments += [m.Parameter(name=key, value=value) for key, value in exposed.items()]
    return arguments


def parameter_env(exposed: dict[str, str]) -> list[m.EnvVar]:
    """The ``MAGNUS_PRM_`` variables handing the exposed parameters to a container."""
    return [
        m.EnvVar(name=f"{PARAMETER_PREFIX}{key}", value=f"{{{{workflow.parameters.{key}}}}}")
        for key in exposed
    ]


def _argument_value(value: str | int | float | bool) -> str:
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value  # not JSON: MAGNUS_PRM_ keeps it as the string it is
    return json.dumps(value)
