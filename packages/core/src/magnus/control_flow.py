"""Conditional and loop steps: composites whose branches are chosen by parameters as they run.

``conditional`` runs one of its named branches, chosen by the value of a parameter::

    route:
      type: conditional
      parameter: size              # a parameter in scope when the step starts
      branches:
        small: {start_at: ..., steps: ...}
        large: {start_at: ..., steps: ...}
      default: {start_at: ..., steps: ...}   # optional: runs when no branch is named so
      next: report

The branch whose name is the value (``str(value)``; ``true``/``false`` for booleans) runs as
``route.small``; with no such branch, the ``default`` branch runs as ``route.default``; with no
default, the step fails naming the value and the branches. What the branch produced flows to
the enclosing scope, as a parallel's branches do. The step log records ``chosen_branch`` and the
value it was chosen by (``condition_value``).

``loop`` runs its branch again and again until a boolean parameter is true::

    train:
      type: loop
      branch: {start_at: ..., steps: ...}
      break_on: converged          # a boolean parameter, read after each iteration
      max_iterations: 10           # then the step fails ...
      on_exhausted: fail           # ... or succeeds with ``succeed``
      index_as: loop_iteration     # the iteration's map variable (default)

Iteration ``i`` is its own branch, ``train.<i>`` (``train.0``, ``train.1``, ...), so each
iteration's steps, attempts and execution logs are kept apart. The iteration number reaches the
branch's steps as the map variable ``index_as`` (an argument of that name, ``MAGNUS_LOOP_ITERATION``
and :func:`magnus.get_loop_iteration`). Each iteration starts with the parameters the previous one
ended with; the last iteration's flow on to the step after the loop. The step log records how
many iterations started (``iterations``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from magnus.composites import (
    BranchRun,
    IteratingNode,
    NamedBranchesNode,
    enclosing_iterations,
)
from magnus.graph import Graph
from magnus.internal_names import resolve
from magnus.nodes import GraphBuilder
from magnus.runlog.models import SUCCESS, BranchLog, StepLog

#: the branch a conditional runs when its parameter names none of the others
DEFAULT_BRANCH = "default"
#: the map variable a loop's iteration number goes by, unless ``index_as`` names another
DEFAULT_INDEX_AS = "loop_iteration"


def branch_key_of(value: Any) -> str:
    """The branch name a conditional's parameter value selects (YAML's booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ConditionalNode(NamedBranchesNode):
    """Runs the one branch named by the value of ``parameter`` (or ``default``)."""

    node_type: ClassVar[str] = "conditional"
    reads_parameters: ClassVar[bool] = True
    branches_role: ClassVar[str] = "a mapping of value to graph"

    parameter: str
    default: Any = None

    @classmethod
    def _key_of(cls, raw: Any) -> str:
        return branch_key_of(raw)

    @classmethod
    def _key_problem(cls, key: str) -> str:
        if key == DEFAULT_BRANCH:
            return (
                f"branch name {DEFAULT_BRANCH!r} is the default branch: give it as "
                f"'{DEFAULT_BRANCH}:' beside 'branches'"
            )
        return super()._key_problem(key)

    @classmethod
    def _branches_from(
        cls,
        definition: dict[str, Any],
        internal_name: str,
        builder: GraphBuilder,
        problems: list[str],
        from_dump: bool,
    ) -> dict[str, Any]:
        raw_default = definition.pop(DEFAULT_BRANCH, None)
        fields = super()._branches_from(definition, internal_name, builder, problems, from_dump)
        if raw_default is not None:
            name = f"{internal_name}.{DEFAULT_BRANCH}"
            fields[DEFAULT_BRANCH] = builder.branch(raw_default, name, problems, from_dump)
        return fields

    def definition(self) -> dict[str, Any]:
        found = {**super().definition(), "parameter": self.parameter}
        if self.default is not None:
            found[DEFAULT_BRANCH] = self.default.dump()
        return found

    def branch_graph(self, key: str) -> Graph:
        if key == DEFAULT_BRANCH and self.default is not None:
            return self.default
        return self.branches[key]

    def branch_graphs(self) -> list[Graph]:
        return [*self.branches.values(), *([self.default] if self.default is not None else [])]

    def branch_runs(
        self, parameters: dict[str, Any], map_variables: dict[str, Any]
    ) -> list[BranchRun] | str:
        step_name = resolve(self.internal_name, map_variables)
        if self.parameter not in parameters:
            return (
                f"conditional {step_name!r} chooses by parameter {self.parameter!r}, which is "
                "not set at this point of the pipeline"
            )
        value = parameters[self.parameter]
        key = branch_key_of(value)
        graph = self.branches.get(key) if not isinstance(value, (dict, list)) else None
        if graph is None:
            if self.default is None:
                return (
                    f"conditional {step_name!r}: parameter {self.parameter!r} is {value!r}, "
                    f"which names none of its branches ({', '.join(self.branches)}), and it "
                    "has no default branch"
                )
            graph = self.default
        name = resolve(graph.internal_branch_name, map_variables)
        return [BranchRun(graph, name, map_variables, chosen_by={self.parameter: value})]

    def record_fan_out(self, step_log: StepLog, runs: list[BranchRun]) -> None:
        # What was chosen, and by which value: fan-in, re-runs and readers need both.
        step_log.chosen_branch = runs[0].graph.internal_branch_name.rsplit(".", 1)[-1]
        step_log.condition_value = runs[0].chosen_by[self.parameter]

    def expected_branch_names(
        self, step_log: StepLog, map_variables: dict[str, Any]
    ) -> list[str] | str:
        chosen = step_log.chosen_branch
        if chosen is None:
            return (
                f"conditional {step_log.internal_name!r} has no recorded choice "
                "(chosen_branch): its fan-out did not complete"
            )
        return [f"{step_log.internal_name}.{chosen}"]

    def recorded_decision(self, step_log: StepLog) -> dict[str, Any] | None:
        if step_log.chosen_branch is None:
            return None
        return {self.parameter: step_log.condition_value}


class LoopNode(IteratingNode):
    """Runs its branch until ``break_on`` is true or ``max_iterations`` iterations ran."""

    node_type: ClassVar[str] = "loop"
    repeats: ClassVar[bool] = True
    branch_role: ClassVar[str] = "the graph each iteration runs"

    break_on: str
    max_iterations: int = Field(ge=1)
    on_exhausted: Literal["fail", "succeed"] = "fail"
    index_as: str = Field(default=DEFAULT_INDEX_AS, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    def definition(self) -> dict[str, Any]:
        return {
            **super().definition(),
            "break_on": self.break_on,
            "max_iterations": self.max_iterations,
            "on_exhausted": self.on_exhausted,
            "index_as": self.index_as,
            "branch": self.branch.dump(),
        }

    @property
    def branch_variable(self) -> str | None:
        return self.index_as

    def iteration_run(self, iteration: int, map_variables: dict[str, Any]) -> BranchRun:
        """The run of iteration ``iteration`` (counted from 0)."""
        variables = {**map_variables, self.index_as: iteration}
        return BranchRun(
            self.branch, resolve(self.branch.internal_branch_name, variables), variables
        )

    def branch_runs(
        self, parameters: dict[str, Any], map_variables: dict[str, Any]
    ) -> list[BranchRun] | str:
        return [self.iteration_run(0, map_variables)]

    def record_fan_out(self, step_log: StepLog, runs: list[BranchRun]) -> None:
        # Counted before the branch log is made: a crash in between shows as a missing branch.
        step_log.iterations = (step_log.iterations or 0) + len(runs)

    def describe_branch(self, branch_log: BranchLog, run: BranchRun) -> None:
        branch_log.map_variable = {self.index_as: run.map_variables[self.index_as]}

    def expected_branch_names(
        self, step_log: StepLog, map_variables: dict[str, Any]
    ) -> list[str] | str:
        if not step_log.iterations:
            return (
                f"loop {step_log.internal_name!r} has no recorded iterations: its fan-out did "
                "not complete"
            )
        return [self.iteration_run(i, map_variables).name for i in range(step_log.iterations)]

    def _broken(self, scope: dict[str, Any], step_name: str) -> bool | str:
        """Whether ``break_on`` is true in ``scope``; a message when it is not a boolean."""
        value = scope.get(self.break_on, False)
        if not isinstance(value, bool):
            return (
                f"loop {step_name!r}: break_on parameter {self.break_on!r} must be a boolean, "
                f"not {type(value).__name__} ({value!r})"
            )
        return value

    def next_runs(
        self,
        step_log: StepLog,
        last: BranchLog,
        map_variables: dict[str, Any],
        scope_in: Callable[[str], dict[str, Any]],
    ) -> list[BranchRun] | str:
        if last.status != SUCCESS:
            return []  # a failed iteration ends the loop: fan-in says so
        broken = self._broken(scope_in(last.internal_name), step_log.internal_name)
        if isinstance(broken, str):
            return broken
        done = step_log.iterations or 0
        if broken or done >= self.max_iterations:
            return []
        return [self.iteration_run(done, map_variables)]

    def carried_parameters(self, previous: BranchLog | None) -> dict[str, Any]:
        return dict(previous.parameters) if previous is not None else {}

    def end_problem(
        self,
        step_log: StepLog,
        branches: list[BranchLog],
        scope_in: Callable[[str], dict[str, Any]],
    ) -> str:
        broken = self._broken(scope_in(branches[-1].internal_name), step_log.internal_name)
        if isinstance(broken, str):
            return broken
        if broken or self.on_exhausted == "succeed":
            return ""
        return (
            f"loop {step_log.internal_name!r} ran max_iterations ({self.max_iterations}) "
            f"without {self.break_on!r} becoming true"
        )

    def merge_parameters(self, branches: list[BranchLog], step_log: StepLog) -> dict[str, Any]:
        # Each iteration starts with what the one before ended with: the last holds them all.
        return dict(branches[-1].parameters)


def loop_iteration_of(
    graph: Graph, internal_name: str, map_variables: dict[str, Any]
) -> int | None:
    """The iteration of the innermost loop around step ``internal_name``, if any."""
    for node in reversed(enclosing_iterations(graph, internal_name)):
        if isinstance(node, LoopNode):
            value = map_variables.get(node.index_as)
            return value if isinstance(value, int) else None
    return None


def dumped_branches(node: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The branch graphs of a dumped composite step (``run_config.dag``) by key: a parallel's
    or conditional's named branches (and a conditional's ``default``); a map's, loop's or dag's
    one ``branch`` under the key ``""``, since it matches whatever a run names it."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    branches = node.get("branches")
    if isinstance(branches, Mapping):
        found += [
            (str(key), graph) for key, graph in branches.items() if isinstance(graph, Mapping)
        ]
    if node.get("type") == ConditionalNode.node_type and isinstance(
        node.get(DEFAULT_BRANCH), Mapping
    ):
        found.append((DEFAULT_BRANCH, node[DEFAULT_BRANCH]))
    if isinstance(node.get("branch"), Mapping):
        found.append(("", node["branch"]))
    return found


def dumped_branch(node: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """The branch graph a segment ``key`` of an internal name selects in a dumped step."""
    for name, graph in dumped_branches(node):
        if name in ("", key):
            return graph
    return None
