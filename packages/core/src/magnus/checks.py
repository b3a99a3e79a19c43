"""What ``magnus validate`` checks beyond a pipeline's shape: that its commands can run here.

For every task step at any depth:

* ``python``: the module imports and has the function; the parameters known before the run
  (the parameters file, ``MAGNUS_PRM_*``) and the map variables in scope can bind its arguments.
  A required argument that nothing known provides is a warning when no step before it can set a
  parameter (only a value given at run time could bind it); after such a step it could be set
  at run time, which cannot be known before, so nothing is said.
* ``notebook``: the ``.ipynb`` file exists (and, when importing, papermill is installed).
* ``shell``: a command whose first word is a path (``./run.sh``, ``scripts/x.sh``) names a file
  that exists and can be executed.
* map steps: a custom reducer imports; the list to iterate on is known or can be set before.

Importing user modules runs their top-level code: that is what validation is for. ``imports``
false (``--no-import``, for a pipeline meant for another image) checks only files. Errors are
what certainly fails (a missing module, function or file); warnings what may fail.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import shlex
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magnus import parameters as params_mod
from magnus.building import reducer_problems
from magnus.composites import CompositeNode, MapNode
from magnus.control_flow import ConditionalNode
from magnus.exceptions import MagnusError
from magnus.graph import Graph
from magnus.nodes import BaseNode, ExecutableNode, RoutedNode, TaskNode
from magnus.secret_parameters import is_reference
from magnus.tasks import NotebookTaskType, PythonTaskType, ShellTaskType, import_function
from magnus.tasks.notebook import INSTALL_HINT


@dataclass
class CommandChecks:
    """What checking a pipeline's commands found: errors fail validation, warnings do not."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Scope:
    """What a step can count on: map variables around it, whether a step before may set any."""

    map_names: frozenset[str] = frozenset()
    set_before: bool = False


def check_commands(
    graph: Graph, initial_parameters: Mapping[str, Any], imports: bool = True
) -> CommandChecks:
    """Check every task step's command, and every map step, of ``graph`` at any depth."""
    found = CommandChecks()
    if imports:
        found.errors.extend(reducer_problems(graph))
    for node, scope in _steps(graph):
        read = _read_by_fan_out(node)
        if read is not None:
            key, parameter = read
            if parameter not in initial_parameters and not scope.set_before:
                found.warnings.append(
                    f"step {node.internal_name!r}: {key} {parameter!r} is not an "
                    "initial parameter and no step before it can set it"
                )
            continue
        if not isinstance(node, TaskNode):
            continue
        task = node.task()
        label = f"step {node.internal_name!r}: command {task.command!r}"
        if isinstance(task, PythonTaskType):
            if imports:
                _check_python(task.command, label, initial_parameters, scope, found)
        elif isinstance(task, NotebookTaskType):
            _check_notebook(task.command, label, imports, found)
        elif isinstance(task, ShellTaskType):
            _check_shell(task.command, label, found)
    return found


def _read_by_fan_out(node: BaseNode) -> tuple[str, str] | None:
    """The parameter a composite decides its branches by (``(key, name)``), if any."""
    if isinstance(node, MapNode):
        return "iterate_on", node.iterate_on
    if isinstance(node, ConditionalNode):
        return "parameter", node.parameter
    return None


# ------------------------------------------------------------------------------ walking


def _steps(graph: Graph) -> Iterator[tuple[BaseNode, _Scope]]:
    """Every step at any depth, with what it can count on."""
    stack: list[tuple[Graph, _Scope]] = [(graph, _Scope())]
    while stack:
        current, outer = stack.pop()
        after_setter = _after_a_setter(current)
        for name, node in current.nodes.items():
            scope = _Scope(outer.map_names, outer.set_before or name in after_setter)
            yield node, scope
            if isinstance(node, CompositeNode):
                inner = scope
                if node.branch_variable is not None:
                    inner = _Scope(scope.map_names | {node.branch_variable}, scope.set_before)
                stack.extend((branch, inner) for branch in node.branch_graphs())


def _after_a_setter(graph: Graph) -> set[str]:
    """The steps of ``graph`` that may run after a step that can set parameters succeeded.

    A step that fails writes no parameter, so its ``on_failure`` step is not one of them unless
    another path leads there.
    """
    routed = {n: node for n, node in graph.nodes.items() if isinstance(node, RoutedNode)}
    following = {
        name: {graph.next_after(node, False).name, graph.next_after(node, True).name}
        for name, node in routed.items()
    }
    frontier = [graph.next_after(node, False).name for node in routed.values() if _may_set(node)]
    reached: set[str] = set()
    while frontier:
        name = frontier.pop()
        if name not in reached:
            reached.add(name)
            frontier.extend(following.get(name, ()))
    return reached


def _may_set(node: BaseNode) -> bool:
    """Whether a step can set parameters: a task, or a composite with a task inside."""
    if isinstance(node, ExecutableNode):
        return node.task() is not None
    if isinstance(node, CompositeNode):
        return any(_may_set(n) for g in node.branch_graphs() for n in g.nodes.values())
    return False


# ------------------------------------------------------------------------------ task types


def _check_python(
    command: str,
    label: str,
    initial_parameters: Mapping[str, Any],
    scope: _Scope,
    found: CommandChecks,
) -> None:
    try:
        function = import_function(command)
    except MagnusError as exc:
        found.errors.append(f"{label}: {exc}{_suggestion(command)}")
        return
    except SystemExit as exc:  # a module that exits while it is imported
        found.errors.append(f"{label}: importing it called sys.exit({exc.code!r})")
        return
    # A secret's reference is resolved at run time: its value cannot be checked now.
    later = scope.map_names | {k for k, v in initial_parameters.items() if is_reference(v)}
    try:
        forecast = params_mod.forecast_binding(function, initial_parameters, later)
    except (TypeError, ValueError) as exc:  # no signature to inspect
        found.warnings.append(f"{label}: cannot inspect its arguments: {exc}")
        return
    found.errors.extend(f"{label}: {message}" for message in forecast.impossible)
    found.warnings.extend(f"{label}: {message}" for message in forecast.unfit)
    if not scope.set_before:
        found.warnings.extend(
            f"{label}: argument {name!r} has no default and is not an initial parameter, and "
            "no step before it can set it"
            for name in forecast.missing
        )


def _suggestion(command: str) -> str:
    """`` (did you mean 'x'?)`` when the module imports and has a name close to the one given."""
    module_name, _, attribute = command.rpartition(".")
    # Only a module that imported has names to suggest; one that failed is not imported again.
    module = sys.modules.get(module_name)
    if module is None:
        return ""
    names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
    close = difflib.get_close_matches(attribute, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_notebook(command: str, label: str, imports: bool, found: CommandChecks) -> None:
    if not Path(command).is_file():
        found.errors.append(f"{label}: the notebook {command} does not exist in {os.getcwd()}")
    if imports and importlib.util.find_spec("papermill") is None:
        found.warnings.append(f"{label}: papermill is not installed here. {INSTALL_HINT}")


def _check_shell(command: str, label: str, found: CommandChecks) -> None:
    program = _program(command)
    if program is None:
        return
    path = Path(program)
    if not path.is_file():
        found.errors.append(f"{label}: {program} does not exist in {os.getcwd()}")
    elif not os.access(path, os.X_OK):
        found.warnings.append(f"{label}: {program} is not executable (chmod +x {program})")


def _program(command: str) -> str | None:
    """The first word of a shell command when it is a path to a file, else ``None``.

    Leading ``NAME=value`` assignments are skipped; a word the shell would expand first
    (``$DIR/run.sh``, a glob) is not checked.
    """
    try:
        words = shlex.split(command.strip().splitlines()[0] if command.strip() else "")
    except ValueError:  # unbalanced quotes: the shell will say so
        return None
    for word in words:
        name, equals, _ = word.partition("=")
        if equals and name.isidentifier():
            continue
        # ``./run.sh;`` or ``./run.sh&&...``: the program ends where an operator starts.
        word = re.split(r"[;|&<>()]", word, maxsplit=1)[0]
        if "/" not in word or any(c in word for c in "$`*?[{~"):
            return None
        return word
    return None
