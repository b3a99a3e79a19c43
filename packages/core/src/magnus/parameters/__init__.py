"""Parameters: binding them to python function arguments, reading returns, moving them around.

Parameters are a flat mapping of string keys to JSON values. They reach python functions as
keyword arguments (``binding``), come back as the function's return value (``values``), cross
process boundaries as ``MAGNUS_PRM_<key>`` environment variables holding JSON text
(``environment``) and start a run from a YAML file (``files``). The names below are what the rest
of magnus and plugins import from ``magnus.parameters``.
"""

from magnus.parameters.binding import (
    BindingForecast,
    _cached_plan,  # noqa: F401  (tests look at the cache of inspected signatures)
    bind_arguments,
    cast_value,
    consumed_parameters,
    forecast_binding,
)
from magnus.parameters.environment import (
    PARAMETER_PREFIX,
    changed_in_environment,
    changed_parameters,
    from_environment,
    to_environment,
)
from magnus.parameters.files import initial_parameters, load_parameters_file
from magnus.parameters.values import PARAMETER_NAME_RULE, is_parameter_name, returned_parameters

__all__ = [
    "PARAMETER_NAME_RULE",
    "PARAMETER_PREFIX",
    "BindingForecast",
    "bind_arguments",
    "cast_value",
    "changed_in_environment",
    "changed_parameters",
    "consumed_parameters",
    "forecast_binding",
    "from_environment",
    "initial_parameters",
    "is_parameter_name",
    "load_parameters_file",
    "returned_parameters",
    "to_environment",
]
