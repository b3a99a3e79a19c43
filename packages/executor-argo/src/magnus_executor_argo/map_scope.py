"""The map indices in force at a template: its inputs, what it hands down, ``--map-variable``.

A template inside one or more maps takes the index of each enclosing map as an input parameter
named after the map's ``iterate_as``; the scope is the tuple of those names, outermost first.
"""

from __future__ import annotations

from hera.workflows import models as m


def scope_parameters(scope: tuple[str, ...]) -> list[m.Parameter]:
    """Each index in force, passed on as the value of the template's own input."""
    return [m.Parameter(name=name, value=f"{{{{inputs.parameters.{name}}}}}") for name in scope]


def pass_down(scope: tuple[str, ...]) -> m.Arguments | None:
    """The map indices in force, handed from a template to the templates it calls."""
    return m.Arguments(parameters=scope_parameters(scope)) if scope else None


def inputs(scope: tuple[str, ...]) -> m.Inputs | None:
    """The inputs of a template: one parameter per index in force."""
    return m.Inputs(parameters=[m.Parameter(name=name) for name in scope]) if scope else None


def map_variable(scope: tuple[str, ...]) -> str:
    """The ``--map-variable`` JSON: each index is a bare number once Argo has filled it in."""
    entries = ", ".join(f'"{name}": {{{{inputs.parameters.{name}}}}}' for name in scope)
    return "{" + entries + "}"
